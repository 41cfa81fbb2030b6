#!/usr/bin/env bash
# Agentic launch template for config entry qwen3.5-fp8-b200-sglang-agentic-mtp
# (configs/2026/nvidia-master.yaml): Qwen3.5 FP8 on B200, SGLang with NEXTN MTP (throughput
# at the golden acceptance length 3.39), HiCache for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/qwen3.5_fp8_b200_sglang_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# The replay uses the 256k corpus for this model (WEKA_LOADER_OVERRIDE in the reference).

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export TORCH_CUDA_ARCH_LIST=10.0
export PYTHONNOUSERSITE=1
export NCCL_NVLS_ENABLE=1
export SGL_ENABLE_JIT_DEEPGEMM=false
export SGLANG_ENABLE_FLASHINFER_GEMM=true
export SGLANG_TIMEOUT_KEEP_ALIVE=1800
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=3.39
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

cache_args=()
if agentic_offload_with hicache; then
  # --hicache-size applies to the target KV and Mamba pools alike, and NEXTN's draft pool
  # adds 1/15 of the target's bytes: per rank at most (budget − 1 GB/rank)·15/31.
  usable=$((TOTAL_CPU_DRAM_GB - TP))
  (( usable >= 1 )) || agentic_die "TOTAL_CPU_DRAM_GB=$TOTAL_CPU_DRAM_GB leaves nothing after the HiCache alignment reserve"
  sglang_hicache_args $((usable * 15 / TP / 31))
  cache_args=("${AGENTIC_ARGS[@]}")
fi

graph_bs=$CONC
(( graph_bs > 64 )) && graph_bs=64
sglang_metrics_args
metrics_args=("${AGENTIC_ARGS[@]}")

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --tp "$TP" --dp 1 --ep-size "$EP_SIZE" \
  --tokenizer-worker-num 6 \
  --enable-symm-mem --quantization fp8 --kv-cache-dtype fp8_e4m3 --mamba-ssm-dtype bfloat16 \
  --attention-backend trtllm_mha --moe-runner-backend flashinfer_trtllm \
  --cuda-graph-max-bs "$graph_bs" \
  --max-running-requests $((2 * CONC)) \
  --max-prefill-tokens 16384 --chunked-prefill-size 16384 \
  --mem-fraction-static 0.80 --stream-interval 50 --scheduler-recv-interval 10 \
  --tokenizer-path "$MODEL" --reasoning-parser qwen3 --tool-call-parser qwen3_coder \
  --speculative-algorithm NEXTN --speculative-num-steps 3 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  "${metrics_args[@]}" \
  "${cache_args[@]}"
