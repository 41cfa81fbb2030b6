#!/usr/bin/env bash
# Agentic launch template for config entries qwen3.5-fp8-h200-sglang-agentic-mtp and
# qwen3.5-fp8-h200-sglang-agentic-hicache-mtp
# (configs/2026/nvidia-master.yaml): Qwen3.5 FP8 on H200, SGLang with EAGLE MTP (throughput at the golden
# acceptance length 3.39), HiCache for
# kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/qwen3.5_fp8_h200_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# Not carried over: the reference's in-place sed patch of SGLang's multi_tokenizer_mixin.py
# (it forwards cached_tokens_details through the tokenizer workers; use an image that has it)
# and its corpus override (WEKA_LOADER_OVERRIDE=…_with_subagents_256k; infmax picks the corpus
# in the client, `--traces`).

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export PYTHONNOUSERSITE=1
export SGLANG_ENABLE_SPEC_V2=1
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=3.39
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

cache_args=()
if agentic_offload_with hicache; then
  # Two host pools per rank (target KV + Mamba state) share the budget per rank.
  pools=2
  gb=$((TOTAL_CPU_DRAM_GB / TP / pools))
  sglang_hicache_args "$gb"
  cache_args=("${AGENTIC_ARGS[@]}")
fi

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --tensor-parallel-size "$TP" --data-parallel-size 1 --expert-parallel-size "$EP_SIZE" \
  --quantization fp8 --kv-cache-dtype fp8_e4m3 --mamba-ssm-dtype bfloat16 \
  --attention-backend flashinfer --enable-flashinfer-allreduce-fusion \
  --mem-fraction-static 0.8 --stream-interval 50 --scheduler-recv-interval 10 \
  --tokenizer-worker-num 6 --tokenizer-path "$MODEL" \
  --enable-metrics \
  --speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  "${cache_args[@]}"
