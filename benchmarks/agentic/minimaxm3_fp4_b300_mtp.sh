#!/usr/bin/env bash
# Agentic launch template for config entry minimaxm3-fp4-b300-vllm-agentic-mtp
# (configs/2026/nvidia-master.yaml): MiniMax-M3 NVFP4 on B300, vLLM with the EAGLE3 draft
# Inferact/MiniMax-M3-EAGLE3-GQA (3 tokens, throughput at the synthetic acceptance length
# 2.78), SimpleCPUOffloadConnector (`vllm-simple`) for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/minimaxm3_fp4_b300_mtp.sh at 843c6254f
# (InferenceX names it without the framework; the lookup falls back to this name).
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# The offload pool is `cpu_bytes_to_use` = TOTAL_CPU_DRAM_GB·10⁹ over all ranks; the
# reference multiplies the decimal-GB budget by 1024³, which overshoots it by 7.4 %.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export PYTHONNOUSERSITE=1
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_FLOAT32_MATMUL_PRECISION=high
export VLLM_FLASHINFER_ALLREDUCE_BACKEND=trtllm

offload_args=()
if agentic_offload_with vllm-simple; then
  export VLLM_USE_SIMPLE_KV_OFFLOAD=1
  vllm_simple_offload_total_args ',"lazy_offload":true'
  offload_args=("${AGENTIC_ARGS[@]}")
fi

draft=Inferact/MiniMax-M3-EAGLE3-GQA
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\":\"eagle3\",\"model\":\"$draft\",\"num_speculative_tokens\":3,\"attention_backend\":\"FLASH_ATTN\"}"
else
  spec_config="{\"method\":\"eagle3\",\"model\":\"$draft\",\"num_speculative_tokens\":3,\"attention_backend\":\"FLASH_ATTN\",\"rejection_sample_method\":\"synthetic\",\"synthetic_acceptance_length\":2.78}"
fi

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tensor-parallel-size "$TP" --gpu-memory-utilization 0.9 \
  --block-size 128 --language-model-only --enable-prefix-caching \
  --no-enable-flashinfer-autotune \
  --reasoning-parser minimax_m3 --tool-call-parser minimax_m3 --enable-auto-tool-choice \
  --default-chat-template-kwargs '{"thinking_mode":"enabled"}' \
  --attention-config '{"backend":"FLASHINFER","use_trtllm_attention":true,"indexer_kv_dtype":"fp8"}' \
  --kv-cache-dtype fp8 --max-cudagraph-capture-size 512 --max-num-batched-tokens 16384 \
  --stream-interval 20 --trust-remote-code \
  --speculative-config "$spec_config" \
  "${offload_args[@]}"
