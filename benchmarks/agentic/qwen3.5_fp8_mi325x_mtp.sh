#!/usr/bin/env bash
# Agentic launch template for config entry qwen3.5-fp8-mi325x-sglang-agentic-mtp
# (configs/2026/amd-master.yaml): Qwen3.5 FP8 on MI325X, SGLang (AITER) with EAGLE MTP
# (throughput at the golden acceptance length 3.39), without KV offloading.
# Flags: InferenceX benchmarks/single_node/agentic/qwen3.5_fp8_mi325x_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# The replay uses the 256k corpus for this model (WEKA_LOADER_OVERRIDE in the reference).

agentic_no_offload
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export PYTHONNOUSERSITE=1
export SGLANG_USE_AITER=1
export SGLANG_USE_AITER_UNIFIED_ATTN=1
export SGLANG_TIMEOUT_KEEP_ALIVE=1800
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=3.39
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

tokenizer_args=()
(( TP >= 4 )) && tokenizer_args=(--tokenizer-worker-num 6)
graph_bs=$CONC
(( graph_bs > 64 )) && graph_bs=64
mem=0.80
(( TP == 2 )) && mem=0.95

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --tp "$TP" --dp 1 --ep-size "$EP_SIZE" \
  --attention-backend aiter --quantization fp8 --kv-cache-dtype fp8_e4m3 \
  --mamba-ssm-dtype bfloat16 --mem-fraction-static "$mem" \
  --model-loader-extra-config '{"enable_multithread_load": true}' \
  --watchdog-timeout 1200 --enable-aiter-allreduce-fusion --page-size 16 \
  --cuda-graph-max-bs "$graph_bs" \
  --max-running-requests $((2 * CONC)) \
  --max-prefill-tokens 32768 --chunked-prefill-size 32768 \
  --scheduler-recv-interval 30 --stream-interval 50 \
  "${tokenizer_args[@]}" --tokenizer-path "$MODEL" \
  --reasoning-parser qwen3 --tool-call-parser qwen3_coder \
  --speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  --enable-metrics --enable-cache-report
