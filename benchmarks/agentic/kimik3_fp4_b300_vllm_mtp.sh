#!/usr/bin/env bash
# Agentic launch template for config entry kimik3-fp4-b300-vllm-agentic-dspark
# (configs/2026/nvidia-master.yaml): Kimi-K3 FP4 on 8×B300, vLLM with DSpark speculative
# decoding (7 draft tokens at AL 3.84 up to conc 8, 3 at AL 3.00 up to conc 16, none above),
# decode context parallelism, and Mooncake's store (embedded, RDMA) for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/kimik3_fp4_b300_vllm_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

(( TP == 8 )) || agentic_die "Kimi-K3 on B300 requires TP=8, got TP=$TP"
(( EP_SIZE == 1 )) || agentic_die "this recipe is the pure-TP8 profile; EP_SIZE=$EP_SIZE is not wired"
[[ $SPEC_DECODING == mtp ]] || agentic_die "this recipe expects spec-decoding mtp, got '$SPEC_DECODING'"
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export VLLM_ALLREDUCE_USE_FLASHINFER=1
export VLLM_ENABLE_K3_LATENT_MOE_TAIL_FUSION=1
export VLLM_USE_V2_MODEL_RUNNER=1
export VLLM_USE_DIRECT_DCP_A2A=1
export VLLM_USE_DIRECT_DCP_Q_GATHER=1
export VLLM_USE_DIRECT_DCP_KV_GATHER=1
export VLLM_ENGINE_READY_TIMEOUT_S=3600
export VLLM_RPC_TIMEOUT=600000
export VLLM_PREFIX_CACHE_RETENTION_INTERVAL=0
export VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0
export PYTHONNOUSERSITE=1
export TORCH_CUDA_ARCH_LIST=10.0
export PYTHONHASHSEED=42
export VLLM_HTTP_TIMEOUT_KEEP_ALIVE=900

cp_args=()
(( DCP_SIZE > 1 )) && cp_args=(--decode-context-parallel-size "$DCP_SIZE" --dcp-comm-backend a2a)

offload_args=()
if agentic_offload_with mooncake; then
  # The first active RDMA rail of the node carries the store's traffic.
  rail=
  for d in mlx5_0 mlx5_1 mlx5_2 mlx5_3 mlx5_4 mlx5_5 mlx5_8 mlx5_9 \
    mlx5_10 mlx5_11 mlx5_16 mlx5_17 mlx5_20 mlx5_21 mlx5_22 mlx5_23; do
    if grep -q ACTIVE "/sys/class/infiniband/$d/ports/1/state" 2>/dev/null; then
      rail=$d
      break
    fi
  done
  [[ -n $rail ]] || rail=${MOONCAKE_RDMA_DEVICE:-}
  [[ -n $rail ]] || agentic_die "no active RDMA rail on this node (set MOONCAKE_RDMA_DEVICE); Mooncake cannot start"
  export MC_GID_INDEX=3 MC_STORE_MEMCPY=1 MC_WORKERS_PER_CTX=4 WITH_NVIDIA_PEERMEM=0
  export VLLM_MOONCAKE_LOAD_RECV_THREADS=4
  mooncake_embedded_store $((TOTAL_CPU_DRAM_GB / TP)) 4 rdma "$rail" 0.95
  offload_args=(--kv-transfer-config
    '{"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both","kv_load_failure_policy":"recompute","kv_connector_extra_config":{"load_async":true,"lookup_async":true,"enable_offload":false}}')
fi

if (( CONC <= 8 )); then
  draft_tokens=7 al=3.84
elif (( CONC <= 16 )); then
  draft_tokens=3 al=3.00
else
  draft_tokens=0 al=
fi
spec_args=()
if (( draft_tokens > 0 )); then
  if [[ ${EVAL_ONLY:-false} == true ]]; then
    accept='"rejection_sample_method": "block"'
  else
    accept="\"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": $al"
  fi
  spec_args=(--speculative-config "{\"method\": \"dspark\", \"model\": \"Inferact/Kimi-K3-DSpark\", \"num_speculative_tokens\": $draft_tokens, \"attention_backend\": \"TOKENSPEED_MLA\", \"draft_sample_method\": \"probabilistic\", $accept}")
fi
max_seqs=$((2 * CONC))
mem=0.92
(( CONC >= 56 )) && mem=0.90
# Dense decode graphs (1+N tokens per sequence, up to 128 sequences), then the larger
# powers of two for mixed batches.
step=$((1 + draft_tokens))
dense=$max_seqs
(( dense > 128 )) && dense=128
sizes=$(seq -s, "$step" "$step" "$((dense * step))")
for t in 64 128 256 512 1024 2048 4096 8192; do
  (( t > dense * step )) && sizes+=",$t"
done

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tensor-parallel-size "$TP" "${cp_args[@]}" \
  --max-num-seqs "$max_seqs" --gpu-memory-utilization "$mem" \
  --max-num-batched-tokens 16384 --trust-remote-code --language-model-only \
  --load-format fastsafetensors --moe-backend auto --no-enable-flashinfer-autotune \
  --enable-cumem-allocator --enable-prefix-caching --prefix-match-unit 128 \
  --kv-cache-dtype fp8 --stream-interval 10 --attention-backend TOKENSPEED_MLA \
  --attention-config '{"mla_prefill_backend":"TRTLLM_RAGGED","use_prefill_query_quantization":true}' \
  "${spec_args[@]}" \
  --compilation-config "{\"cudagraph_mode\":\"FULL_AND_PIECEWISE\",\"cudagraph_capture_sizes\":[${sizes}]}" \
  --disable-uvicorn-access-log \
  "${offload_args[@]}"
