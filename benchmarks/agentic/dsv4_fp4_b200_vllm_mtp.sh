#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-b200-vllm-agentic-mtp
# (configs/2026/nvidia-master.yaml): DeepSeek-V4-Pro FP4 on B200, vLLM with MTP (throughput at
# the synthetic acceptance length 2.49), SimpleCPUOffloadConnector (`vllm-simple`) for
# kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_b200_vllm_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# Not carried over: the reference's mooncake branch (this entry ships only vllm-simple) and
# its vllm-router in front of DP ranks (infmax sends to the engine port directly).

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export TORCH_CUDA_ARCH_LIST=10.0
export PYTHONNOUSERSITE=1
export VLLM_FLOAT32_MATMUL_PRECISION=high
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_PREFIX_CACHE_RETENTION_INTERVAL=32768
export VLLM_USE_V2_MODEL_RUNNER=1
export VLLM_USE_RUST_FRONTEND=1
export VLLM_DSV4_MEGA_FP8_COMBINE=1
export VLLM_RPC_TIMEOUT=600000

offload_args=()
if agentic_offload_with vllm-simple; then
  vllm_simple_offload_args ',"enable_cross_layers_blocks":"true","lazy_offload":false'
  offload_args=("${AGENTIC_ARGS[@]}")
fi

cp_args=()
(( DCP_SIZE > 1 )) && cp_args+=(--decode-context-parallel-size "$DCP_SIZE")
(( PCP_SIZE > 1 )) && cp_args+=(--prefill-context-parallel-size "$PCP_SIZE")

parallel_args=(--tensor-parallel-size "$TP" --data-parallel-size 1)
mode_args=()
max_seqs=$((2 * CONC))
if [[ $DP_ATTENTION == true ]]; then
  parallel_args=(--tensor-parallel-size 1 --data-parallel-size "$TP")
  export PYTORCH_ALLOC_CONF=expandable_segments:True
  mode_args+=(--prefill-schedule-interval 8 --long-prefill-token-threshold 512
    --max-num-batched-tokens 8192)
  max_seqs=$((2 * CONC / TP))
fi
if (( EP_SIZE > 1 )); then
  mode_args+=(--enable-expert-parallel --enable-ep-weight-filter --moe-backend deep_gemm_amxf4_mega_moe)
fi

spec_tokens=3
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\": \"mtp\", \"num_speculative_tokens\": $spec_tokens}"
else
  spec_config="{\"method\": \"mtp\", \"num_speculative_tokens\": $spec_tokens, \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": 2.49}"
fi
sizes=()
for ((n = 1; n <= max_seqs; n++)); do
  sizes+=("$((n * (1 + spec_tokens)))")
done
if [[ $DP_ATTENTION != true ]]; then
  sizes+=(100 200 300 400 500)
  mode='"cudagraph_mode":"FULL_AND_PIECEWISE"'
else
  mode='"mode":0,"cudagraph_mode":"FULL_DECODE_ONLY"'
fi
capture=$(printf '%s\n' "${sizes[@]}" | sort -n -u | paste -sd, -)

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --kv-cache-dtype fp8 --block-size 256 --max-model-len 1048576 \
  --gpu-memory-utilization 0.90 --numa-bind --enable-cumem-allocator \
  --no-enable-flashinfer-autotune \
  --tokenizer-mode deepseek_v4 --tool-call-parser deepseek_v4 --enable-auto-tool-choice \
  --reasoning-parser deepseek_v4 \
  --attention-config '{"backend":"FLASHINFER_MLA_SPARSE_DSV4","use_prefill_query_quantization":true,"use_fp4_indexer_cache":true}' \
  --speculative-config "$spec_config" \
  --no-disable-hybrid-kv-cache-manager --disable-uvicorn-access-log \
  --compilation-config "{${mode},\"cudagraph_capture_sizes\":[${capture}]}" \
  --max-num-seqs "$max_seqs" \
  "${parallel_args[@]}" "${cp_args[@]}" "${mode_args[@]}" "${offload_args[@]}"
