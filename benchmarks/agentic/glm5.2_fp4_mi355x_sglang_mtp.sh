#!/usr/bin/env bash
# Agentic launch template for config entry glm5.2-fp4-mi355x-sglang-agentic-mtp
# (configs/2026/amd-master.yaml): GLM-5.2 FP4 on MI355X, SGLang with EAGLE MTP (throughput at
# the golden acceptance length 3.61), HiCache for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/glm5.2_fp4_mi355x_sglang_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# HiCache is sized as a host/device ratio (0.5 with DP attention, 1.5 without), as the
# reference tuned it.
# Not carried over: the reference's HiCache+Mooncake branch (this entry ships only hicache),
# its sglang-router in front of DP-attention ranks (infmax sends to the engine port directly)
# and its wait for a previous job's GPU memory to drain.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export PYTHONNOUSERSITE=1
export SGLANG_TIMEOUT_KEEP_ALIVE=900
export SGLANG_OPT_USE_TOPK_V2=false
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=3.61
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

cache_args=()
if agentic_offload_with hicache; then
  ratio=1.5
  [[ $DP_ATTENTION == true ]] && ratio=0.5
  cache_args=(--enable-hierarchical-cache --hicache-ratio "$ratio" --hicache-write-policy write_through
    --hicache-io-backend direct --hicache-mem-layout page_first_direct)
fi

parallel_args=(--tp "$TP" --ep-size "$EP_SIZE")
if [[ $DP_ATTENTION == true ]]; then
  parallel_args+=(--dp "$TP" --enable-dp-attention)
  export SGLANG_DP_USE_GATHERV=1
  export SGLANG_DP_USE_REDUCE_SCATTER=1
  export GPU_MAX_HW_QUEUES=5
fi
running=$CONC
(( running > 256 )) && running=256

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  "${parallel_args[@]}" \
  --kv-cache-dtype fp8_e4m3 --dsa-prefill-backend tilelang --dsa-decode-backend tilelang \
  --tool-call-parser glm47 --reasoning-parser glm45 \
  --chunked-prefill-size 32768 --mem-fraction-static 0.85 \
  --max-running-requests "$running" --cuda-graph-max-bs "$running" \
  --speculative-algorithm EAGLE --speculative-num-steps 5 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 6 \
  "${cache_args[@]}" \
  --watchdog-timeout 1800 --enable-metrics
