#!/usr/bin/env bash
# Agentic launch template for config entry minimaxm3-fp8-mi300x-vllm-agentic-mtp
# (configs/2026/amd-master.yaml): MiniMax-M3 FP8 on MI300X, vLLM with the EAGLE3 draft
# Inferact/MiniMax-M3-EAGLE3-GQA (3 tokens, throughput at the synthetic acceptance length
# 2.78), LMCache's multiprocess servers (one per TP rank, ROCm build of the pinned version)
# for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/minimaxm3_fp8_mi300x_mtp.sh at 843c6254f
# (InferenceX names it without the framework; the lookup falls back to this name).
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export PYTHONNOUSERSITE=1
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=1800
export VLLM_USE_BREAKABLE_CUDAGRAPH=0
export VLLM_ROCM_USE_AITER=1
export VLLM_ROCM_USE_AITER_MHA=0
export TORCH_BLAS_PREFER_HIPBLASLT=1
export NCCL_MIN_NCHANNELS=112
export GPU_MAX_HW_QUEUES=2

offload_args=()
if agentic_offload_with lmcache; then
  ver=$(agentic_backend_version 0.5.3)
  python3 -m pip install --quiet --no-cache-dir --no-deps \
    sortedcontainers==2.4.0 opentelemetry-exporter-prometheus==0.61b0 cupy-rocm-7-0==14.1.1 \
    "lmcache==$ver" --find-links "https://github.com/LMCache/LMCache/releases/expanded_assets/v${ver}-rocm"
  lmcache_mp_servers "$TP" $((TOTAL_CPU_DRAM_GB / TP)) 2 10
  offload_args=("${AGENTIC_ARGS[@]}")
fi
parallel_args=(--tensor-parallel-size "$TP")
(( EP_SIZE > 1 )) && parallel_args+=(--enable-expert-parallel)

draft=Inferact/MiniMax-M3-EAGLE3-GQA
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\": \"eagle3\", \"model\": \"$draft\", \"num_speculative_tokens\": 3, \"attention_backend\": \"TRITON_ATTN\"}"
else
  spec_config="{\"method\": \"eagle3\", \"model\": \"$draft\", \"num_speculative_tokens\": 3, \"attention_backend\": \"TRITON_ATTN\", \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": 2.78}"
fi

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  "${parallel_args[@]}" --trust-remote-code \
  --block-size 128 --gpu-memory-utilization 0.90 --enable-chunked-prefill \
  --max-num-batched-tokens 16384 --language-model-only --enable-prefix-caching \
  --attention-backend TRITON_ATTN --kv-cache-dtype fp8 \
  --tool-call-parser minimax_m3 --reasoning-parser minimax_m3 --enable-auto-tool-choice \
  --default-chat-template-kwargs '{"thinking_mode":"enabled"}' \
  --max-num-seqs $((2 * CONC)) --stream-interval 20 \
  --speculative-config "$spec_config" \
  "${offload_args[@]}"
