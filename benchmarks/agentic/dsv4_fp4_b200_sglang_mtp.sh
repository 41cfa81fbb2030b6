#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-b200-sglang-agentic-hicache-mtp
# (configs/2026/nvidia-master.yaml): DeepSeek-V4-Pro FP4 on 8×B200, SGLang with EAGLE MTP
# (throughput at the golden acceptance length 2.49), HiCache for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_b200_sglang_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# DSv4's HiCache takes its host pool as a host/device ratio (8 on B200), not --hicache-size.
# Not carried over: the sglang-router in front of DP-attention ranks (infmax sends to the
# engine port directly), the repository chat template file (deepseek_v4_thinking.jinja) and
# the TRITON_PTXAS_PATH probe.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export SGLANG_ENABLE_UNIFIED_RADIX_TREE=1
export SGLANG_OPT_UNIFIED_CACHE_FREE_OUT_OF_WINDOW_SLOTS=1
export PYTHONNOUSERSITE=1
export TORCH_CUDA_ARCH_LIST=10.0
export SGLANG_TIMEOUT_KEEP_ALIVE=900
export SGLANG_JIT_DEEPGEMM_FAST_WARMUP=1
export SGLANG_OPT_SWA_SPLIT_LEAF_ON_INSERT=1
export SGLANG_OPT_USE_JIT_NORM=1
export SGLANG_OPT_USE_JIT_INDEXER_METADATA=1
export SGLANG_OPT_USE_TOPK_V2=1
export SGLANG_OPT_USE_CUSTOM_ALL_REDUCE_V2=1
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
  export SGLANG_OPT_DEEPGEMM_MEGA_MOE_USE_FP4_ACTS=1
  export SGLANG_OPT_DEEPGEMM_MEGA_MOE_USE_MXF4_KIND=1
  export SGLANG_OPT_DEEPGEMM_MEGA_MOE_NUM_MAX_TOKENS_PER_RANK=8320
  parallel_args+=(--dp "$TP" --tokenizer-worker-num "$TP" --enable-prefill-delayer
    --prefill-decode-interval 10 --enable-dp-attention
    --enable-dp-attention-local-control-broadcast --incremental-streaming-output
    --stream-interval 20 --dist-init-addr "127.0.0.1:$((PORT + 2000))"
    --ep-size "$EP_SIZE" --moe-a2a-backend megamoe
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
  --weight-loader-prefetch-checkpoints \
  "${metrics_args[@]}" \
  "${cache_args[@]}"
