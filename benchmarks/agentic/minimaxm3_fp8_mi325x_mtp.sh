#!/usr/bin/env bash
# Agentic launch template for config entry minimaxm3-fp8-mi325x-vllm-agentic-mtp
# (configs/2026/amd-master.yaml): MiniMax-M3 FP8 on MI325X, vLLM with the EAGLE3 draft
# Inferact/MiniMax-M3-EAGLE3-GQA (3 tokens, throughput at the synthetic acceptance length
# 2.78), without KV offloading.
# Flags: InferenceX benchmarks/single_node/agentic/minimaxm3_fp8_mi325x_mtp.sh at 843c6254f
# (InferenceX names it without the framework; the lookup falls back to this name).
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

agentic_no_offload
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export PYTHONNOUSERSITE=1
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=1800
export VLLM_USE_BREAKABLE_CUDAGRAPH=0

draft=Inferact/MiniMax-M3-EAGLE3-GQA
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\": \"eagle3\", \"model\": \"$draft\", \"num_speculative_tokens\": 3, \"attention_backend\": \"TRITON_ATTN\"}"
else
  spec_config="{\"method\": \"eagle3\", \"model\": \"$draft\", \"num_speculative_tokens\": 3, \"attention_backend\": \"TRITON_ATTN\", \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": 2.78}"
fi

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tensor-parallel-size "$TP" --gpu-memory-utilization 0.90 \
  --kv-cache-dtype fp8 --block-size 128 --language-model-only \
  --attention-backend TRITON_ATTN --enable-prefix-caching --enable-chunked-prefill \
  --max-num-batched-tokens 32768 --max-num-seqs $((2 * CONC)) \
  --speculative-config "$spec_config" \
  --tool-call-parser minimax_m3 --reasoning-parser minimax_m3 --enable-auto-tool-choice \
  --default-chat-template-kwargs '{"thinking_mode":"enabled"}' \
  --trust-remote-code --stream-interval 20
