#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-b200-sglang-agentic-hicache-mtp
# (configs/2026/nvidia-master.yaml): DeepSeek-V4-Pro FP4 on 8×B200, SGLang with EAGLE MTP
# (throughput at the golden acceptance length 2.49), HiCache for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_b200_sglang_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# DSv4's HiCache takes its host pool as a host/device ratio (8 on B200), not --hicache-size.
# DP attention (dp-attn rows) runs without the reference's sglang-router in front: infmax
# sends to the engine port directly.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export SGLANG_ENABLE_UNIFIED_RADIX_TREE=1
export SGLANG_OPT_UNIFIED_CACHE_FREE_OUT_OF_WINDOW_SLOTS=1
export PYTHONNOUSERSITE=1
export TORCH_CUDA_ARCH_LIST=10.0
export SGLANG_TIMEOUT_KEEP_ALIVE=900
export SGLANG_JIT_DEEPGEMM_FAST_WARMUP=1
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=2.49
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

cache_args=()
if agentic_offload_with hicache; then
  cache_args=(--enable-hierarchical-cache --hicache-ratio 8 --hicache-write-policy write_through
    --hicache-io-backend direct --hicache-mem-layout page_first_direct)
fi

parallel_args=(--tp "$TP")
chunked=8192
swa_ratio=0.1
if [[ $DP_ATTENTION == true ]]; then
  parallel_args+=(--dp "$TP" --enable-dp-attention --ep-size "$EP_SIZE" --moe-a2a-backend megamoe
    --enable-deepseek-v4-fp4-indexer --disable-shared-experts-fusion --disable-flashinfer-autotune)
  chunked=$((8192 * TP))
  swa_ratio=0.02
else
  parallel_args+=(--moe-runner-backend flashinfer_mxfp4 --enable-deepseek-v4-fp4-indexer
    --disable-flashinfer-autotune)
fi
sglang_metrics_args
metrics_args=("${AGENTIC_ARGS[@]}")

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  "${parallel_args[@]}" \
  --mem-fraction-static 0.88 \
  --swa-full-tokens-ratio "$swa_ratio" \
  --max-running-requests $((2 * CONC)) \
  --cuda-graph-max-bs $((2 * CONC)) \
  --chunked-prefill-size "$chunked" \
  --tool-call-parser deepseekv4 --reasoning-parser deepseek-v4 \
  --watchdog-timeout 1800 \
  --speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  "${metrics_args[@]}" \
  "${cache_args[@]}"
