#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-b300-vllm-agentic-mtp
# (configs/2026/nvidia-master.yaml): DeepSeek-V4-Pro FP4 on B300, vLLM with MTP (throughput at
# the synthetic acceptance length 2.49), SimpleCPUOffloadConnector (`vllm-simple`) for
# kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_b300_vllm_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# Not carried over: the reference's mooncake branch (this entry ships only vllm-simple) and
# its vllm-router in front of DP ranks (infmax sends to the engine port directly).

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export VLLM_USE_V2_MODEL_RUNNER=1
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_PREFIX_CACHE_RETENTION_INTERVAL=32768
export VLLM_DSV4_MEGA_FP8_COMBINE=1
export NCCL_NVLS_ENABLE=1
export VLLM_USE_RUST_FRONTEND=1
export TORCH_CUDA_ARCH_LIST=10.0
export PYTHONNOUSERSITE=1
export VLLM_FLOAT32_MATMUL_PRECISION=high

dep8=false
[[ $DP_ATTENTION == true ]] && (( TP == 8 )) && dep8=true
if [[ $DP_ATTENTION == true ]] && (( 2 * CONC % TP != 0 )); then
  agentic_die "DEP needs 2·CONC divisible by TP, got CONC=$CONC TP=$TP"
fi

offload_args=()
if agentic_offload_with vllm-simple; then
  # Plain TP offloads lazily; DEP offloads eagerly for cross-rank block-hash stability.
  lazy=false
  [[ $DP_ATTENTION != true ]] && lazy=true
  export PYTHONHASHSEED=42
  offload_args=(--kv-transfer-config
    "{\"kv_connector\":\"SimpleCPUOffloadConnector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"cpu_bytes_to_use\":$(agentic_cpu_bytes_per_rank),\"enable_cross_layers_blocks\":\"true\",\"lazy_offload\":$lazy}}")
fi

cp_args=()
(( DCP_SIZE > 1 )) && cp_args+=(--decode-context-parallel-size "$DCP_SIZE")
(( PCP_SIZE > 1 )) && cp_args+=(--prefill-context-parallel-size "$PCP_SIZE")

parallel_args=(--tensor-parallel-size "$TP" --data-parallel-size 1)
tp_args=()
max_seqs=$((2 * CONC))
if [[ $DP_ATTENTION == true ]]; then
  parallel_args=(--tensor-parallel-size 1 --data-parallel-size "$TP")
  export PYTORCH_ALLOC_CONF=expandable_segments:True
  max_seqs=$((2 * CONC / TP))
else
  export VLLM_ALLREDUCE_USE_FLASHINFER=1
  export VLLM_FLASHINFER_ALLREDUCE_BACKEND=auto
  tp_args=(--disable-custom-all-reduce)
fi
mode_args=()
if (( EP_SIZE > 1 )); then
  mode_args+=(--enable-expert-parallel --enable-ep-weight-filter --moe-backend deep_gemm_amxf4_mega_moe)
fi
if [[ $DP_ATTENTION == true ]]; then
  mode_args+=(--prefill-schedule-interval 8 --long-prefill-token-threshold 512)
  if [[ $dep8 == true ]]; then
    mode_args+=(--max-num-batched-tokens 16384)
  else
    mode_args+=(--max-num-batched-tokens 8192)
  fi
fi

spec_tokens=3
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\": \"mtp\", \"num_speculative_tokens\": $spec_tokens}"
else
  spec_config="{\"method\": \"mtp\", \"num_speculative_tokens\": $spec_tokens, \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": 2.49}"
fi
# One decode graph per batch of 1..max_seqs sequences, each verifying 1+N tokens.
capture=$(seq -s, "$((1 + spec_tokens))" "$((1 + spec_tokens))" "$((max_seqs * (1 + spec_tokens)))")
mem=0.95
[[ $dep8 == true ]] && mem=0.92

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --gpu-memory-utilization "$mem" --trust-remote-code \
  --no-enable-flashinfer-autotune --no-disable-hybrid-kv-cache-manager \
  --max-num-seqs "$max_seqs" \
  --kv-cache-dtype fp8 --block-size 256 --max-model-len 1048576 \
  --attention-config '{"use_fp4_indexer_cache":true,"backend":"FLASHINFER_MLA_SPARSE_DSV4","use_prefill_query_quantization":true}' \
  --speculative-config "$spec_config" \
  --disable-uvicorn-access-log \
  --tokenizer-mode deepseek_v4 --tool-call-parser deepseek_v4 --enable-auto-tool-choice \
  --reasoning-parser deepseek_v4 \
  --compilation-config "{\"cudagraph_mode\":\"FULL_DECODE_ONLY\",\"cudagraph_capture_sizes\":[${capture}],\"mode\":0}" \
  "${parallel_args[@]}" "${cp_args[@]}" "${tp_args[@]}" "${mode_args[@]}" "${offload_args[@]}"
