#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-mi355x-sglang-agentic-mtp
# (configs/2026/amd-master.yaml): DeepSeek-V4-Pro FP4 on MI355X, SGLang with EAGLE MTP
# (throughput at the golden acceptance length 2.49), HiCache for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_mi355x_sglang_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# DSv4's HiCache takes its host pool as a host/device ratio (1.5 here), not --hicache-size.
# Not carried over: the sglang-router in front of DP-attention ranks (infmax sends to the
# engine port directly) and the wait for a previous job's GPU memory to drain.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export PYTHONNOUSERSITE=1
export SGLANG_TIMEOUT_KEEP_ALIVE=900
export SGLANG_DEFAULT_THINKING=1
export SGLANG_DSV4_REASONING_EFFORT=high
export SGLANG_USE_ROCM700A=0
export SGLANG_HACK_FLASHMLA_BACKEND=unified_kv_triton
export AITER_BF16_FP8_MOE_BOUND=0
export SGLANG_ENABLE_UNIFIED_RADIX_TREE=1
export SGLANG_OPT_UNIFIED_CACHE_FREE_OUT_OF_WINDOW_SLOTS=1
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=2.49
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

cache_args=()
if agentic_offload_with hicache; then
  cache_args=(--enable-hierarchical-cache --hicache-ratio 1.5 --hicache-write-policy write_through
    --hicache-io-backend direct --hicache-mem-layout page_first_direct)
fi

parallel_args=(--tensor-parallel-size "$TP")
chunked=8192
if [[ $DP_ATTENTION == true ]]; then
  export SGLANG_SHARED_EXPERT_TP1=1
  export SGLANG_DP_SHARED_EXPERT_LOCAL=1
  export SGLANG_DP_USE_GATHERV=1
  export SGLANG_DP_USE_REDUCE_SCATTER=1
  export GPU_MAX_HW_QUEUES=5
  chunked=$((8192 * TP))
  parallel_args+=(--dp "$TP" --enable-dp-attention --enable-prefill-delayer)
fi
(( EP_SIZE > 1 )) && parallel_args+=(--ep-size "$EP_SIZE")
running=$((2 * CONC))
(( running > 256 )) && running=256
graph_bs=$running
(( graph_bs > 128 )) && graph_bs=128

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  "${parallel_args[@]}" \
  --attention-backend dsv4 --page-size 256 --swa-full-tokens-ratio 0.10 \
  --kv-cache-dtype fp8_e4m3 --disable-shared-experts-fusion \
  --tool-call-parser deepseekv4 --reasoning-parser deepseek-v4 \
  --chunked-prefill-size "$chunked" --mem-fraction-static 0.85 \
  --max-running-requests "$running" --cuda-graph-max-bs "$graph_bs" \
  --speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  "${cache_args[@]}" \
  --watchdog-timeout 3600 --enable-metrics
