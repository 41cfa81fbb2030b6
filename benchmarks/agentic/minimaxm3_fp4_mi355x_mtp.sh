#!/usr/bin/env bash
# Agentic launch template for config entry minimaxm3-fp4-mi355x-vllm-agentic-mtp
# (configs/2026/amd-master.yaml): MiniMax-M3 FP4 on MI355X, vLLM with the EAGLE3 draft
# Inferact/MiniMax-M3-EAGLE3-GQA (3 tokens, throughput at the synthetic acceptance length
# 2.78), LMCache's multiprocess servers (one per TP rank, ROCm build of the pinned version)
# for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/minimaxm3_fp4_mi355x_mtp.sh at 843c6254f
# (InferenceX names it without the framework; the lookup falls back to this name).
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export PYTHONNOUSERSITE=1
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=1800
export VLLM_USE_BREAKABLE_CUDAGRAPH=0
export VLLM_ROCM_USE_AITER=1
export VLLM_ROCM_USE_AITER_MOE=1
export VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS=1
if (( TP == 4 )); then
  export VLLM_ROCM_SHUFFLE_KV_CACHE_LAYOUT=1
else
  export VLLM_ROCM_SHUFFLE_KV_CACHE_LAYOUT=0
fi
export VLLM_ROCM_QUICK_REDUCE_QUANTIZATION=INT4
export VLLM_ROCM_QUICK_REDUCE_CAST_BF16_TO_FP16=0
export VLLM_ROCM_QUICK_REDUCE_QUANTIZATION_MIN_SIZE_KB=256

offload_args=()
if agentic_offload_with lmcache; then
  ver=$(agentic_backend_version 0.5.3)
  python3 -m pip install --quiet --no-cache-dir --no-deps \
    sortedcontainers==2.4.0 opentelemetry-exporter-prometheus==0.61b0 cupy-rocm-7-0==14.1.1 \
    "lmcache==$ver" --find-links "https://github.com/LMCache/LMCache/releases/expanded_assets/v${ver}-rocm"
  # The L1 pools live in /dev/shm: stop when they would take more than 90 % of it.
  shm_free=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
  if [[ -n $shm_free ]] && (( shm_free > 0 && TOTAL_CPU_DRAM_GB > shm_free * 90 / 100 )); then
    agentic_die "LMCache L1 of ${TOTAL_CPU_DRAM_GB} GB exceeds 90 % of free /dev/shm (${shm_free} GB)"
  fi
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
  --block-size 128 --gpu-memory-utilization 0.85 --enable-chunked-prefill \
  --max-num-batched-tokens 32768 --language-model-only --enable-prefix-caching \
  --attention-backend TRITON_ATTN --moe-backend aiter --kv-cache-dtype fp8 \
  --tool-call-parser minimax_m3 --enable-auto-tool-choice \
  --default-chat-template-kwargs '{"thinking_mode":"enabled"}' \
  --max-num-seqs $((2 * CONC)) --stream-interval 20 \
  --hf-overrides '{"text_config": {"use_index_cache": true, "index_topk_freq": 4}}' \
  --speculative-config "$spec_config" \
  "${offload_args[@]}"
