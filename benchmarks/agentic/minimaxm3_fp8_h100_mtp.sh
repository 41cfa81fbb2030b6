#!/usr/bin/env bash
# Agentic launch template for config entry minimaxm3-fp8-h100-vllm-agentic-mtp
# (configs/2026/nvidia-master.yaml): MiniMax-M3 FP8 on 8×H100, vLLM with the EAGLE3 draft
# Inferact/MiniMax-M3-EAGLE3-GQA (3 tokens, throughput at the synthetic acceptance length
# 2.78), Mooncake's store (embedded, RDMA) for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/minimaxm3_fp8_h100_mtp.sh at 843c6254f
# (InferenceX names it without the framework; the lookup falls back to this name).
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# The reference replays the 1M corpus for this model (WEKA_LOADER_OVERRIDE), which is also
# infmax's default for the minimaxm3 prefix.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export PYTHONNOUSERSITE=1

offload_args=()
if agentic_offload_with mooncake; then
  gib=$((TOTAL_CPU_DRAM_GB * 1000000000 / 1073741824))
# Per-rank segment: (budget in GiB − 414 GiB of checkpoint page cache)/TP − 26 GiB of
# weights offloaded to the CPU (--cpu-offload-gb) − 4 GiB local buffer.
  export PYTHONHASHSEED=0 MC_WORKERS_PER_CTX=4
  mooncake_embedded_store $(((gib - 414) / TP - 26 - 4)) 4 rdma "" 0.80
  offload_args=(--kv-transfer-config
    '{"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both","kv_connector_extra_config":{"load_async":true}}')
fi

draft=Inferact/MiniMax-M3-EAGLE3-GQA
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\": \"eagle3\", \"model\": \"$draft\", \"num_speculative_tokens\": 3, \"attention_backend\": \"FLASH_ATTN\"}"
else
  spec_config="{\"method\": \"eagle3\", \"model\": \"$draft\", \"num_speculative_tokens\": 3, \"attention_backend\": \"FLASH_ATTN\", \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": 2.78}"
fi
max_seqs=$((2 * CONC))

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tensor-parallel-size "$TP" --data-parallel-size 1 \
  --gpu-memory-utilization 0.90 \
  --cpu-offload-gb 26 \
  --kv-cache-dtype fp8 --attention-backend TRITON_ATTN --block-size 128 \
  --language-model-only --enable-prefix-caching --enable-prompt-tokens-details \
  --default-chat-template-kwargs '{"thinking_mode":"enabled"}' \
  --max-num-seqs "$max_seqs" --max-cudagraph-capture-size $((max_seqs * 4)) \
  --speculative-config "$spec_config" \
  --tool-call-parser minimax_m3 --reasoning-parser minimax_m3 --enable-auto-tool-choice \
  --safetensors-load-strategy lazy \
  --trust-remote-code \
  "${offload_args[@]}"
