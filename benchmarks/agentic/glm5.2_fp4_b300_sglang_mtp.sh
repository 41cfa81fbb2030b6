#!/usr/bin/env bash
# Agentic launch template for config entry glm5.2-fp4-b300-sglang-agentic-mtp
# (configs/2026/nvidia-master.yaml): GLM-5.2 NVFP4 on B300, SGLang with EAGLE MTP (throughput
# at the golden acceptance length 2.99), HiCache for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/glm5.2_fp4_b300_sglang_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# Not carried over: the sglang-router in front of DP-attention ranks (infmax sends to the
# engine port directly) and the reference's checkpoint staging under a download lock.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export PYTHONNOUSERSITE=1
export TORCH_CUDA_ARCH_LIST=10.0
export SGLANG_TIMEOUT_KEEP_ALIVE=900
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=2.99
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

cache_args=()
if agentic_offload_with hicache; then
  cache_args=(--enable-hierarchical-cache --hicache-write-policy write_back
    --hicache-io-backend direct --hicache-mem-layout page_first_direct)
  # The reference tuned a 270 GB/rank host pool; it must fit the budget.
  agentic_fits_budget 270 "$GPU_COUNT"
  cache_args+=(--hicache-size 270)
fi

spec_args=(--speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1
  --speculative-num-draft-tokens 4)
parallel_args=(--tp "$TP" --ep-size "$EP_SIZE")
chunked=8192
graph_args=()
if [[ $DP_ATTENTION == true ]]; then
  chunked=32768
  parallel_args+=(--dp "$TP" --enable-dp-attention --tokenizer-worker-num "$TP"
    --dist-init-addr "127.0.0.1:$((PORT + 2000))")
  spec_args+=(--speculative-moe-a2a-backend none --speculative-moe-runner-backend triton)
else
  parallel_args+=(--kv-cache-dtype fp8_e4m3 --bf16-gemm-backend cutedsl --max-prefill-tokens 8192)
  graph_bs=$((2 * CONC))
  (( graph_bs > 64 )) && graph_bs=64
  graph_args=(--cuda-graph-max-bs "$graph_bs")
fi

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  "${parallel_args[@]}" \
  --quantization modelopt_fp4 --tool-call-parser glm47 --reasoning-parser glm45 \
  --chunked-prefill-size "$chunked" --mem-fraction-static 0.85 \
  --max-running-requests $((2 * CONC)) \
  "${spec_args[@]}" "${graph_args[@]}" "${cache_args[@]}" \
  --watchdog-timeout 1800 --enable-metrics
