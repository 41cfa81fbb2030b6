#!/usr/bin/env bash
# Agentic launch template for config entry kimik3-fp4-mi355x-vllm-agentic-mtp
# (configs/2026/amd-master.yaml): Kimi-K3 MXFP4 on 8×MI355X, vLLM (AITER) with DSpark
# speculative decoding (2 draft tokens, throughput at the synthetic acceptance length 2.51),
# SimpleCPUOffloadConnector (`vllm-simple`) for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/kimik3_fp4_mi355x_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# Not carried over: the reference's container patch script (apply_k3_container_patches.sh:
# use an image with those fixes) and its MEC firmware probe (it sets HSA_NO_SCRATCH_RECLAIM=1
# below firmware 177; set it in the environment where that applies).

(( TP == 8 )) || agentic_die "Kimi-K3 MXFP4 needs TP=8 on MI355X, got TP=$TP"
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export VLLM_ROCM_AITER_MLA_ASM_PADDING=asm
export VLLM_ROCM_USE_AITER=1
export SAFETENSORS_FAST_GPU=1
export VLLM_ROCM_USE_AITER_MOE_SITUV2_A8W4=1
export AITER_BF16_FP8_MOE_BOUND=0
export VLLM_USE_BREAKABLE_CUDAGRAPH=0
export VLLM_ENGINE_READY_TIMEOUT_S="${VLLM_ENGINE_READY_TIMEOUT_S:-7200}"
export PYTHONNOUSERSITE=1
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS="${VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS:-1200}"

offload_args=()
if agentic_offload_with vllm-simple; then
  export PYTHONHASHSEED=42
  offload_args=(--kv-transfer-config
    "{\"kv_connector\":\"SimpleCPUOffloadConnector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"cpu_bytes_to_use_per_rank\":$((TOTAL_CPU_DRAM_GB * 1000000000 / TP)),\"lazy_offload\":false}}")
fi
ep_args=()
(( EP_SIZE > 1 )) && ep_args=(--enable-expert-parallel)

if [[ ${EVAL_ONLY:-false} == true ]]; then
  accept='"rejection_sample_method": "block"'
else
  accept='"rejection_sample_method": "synthetic", "synthetic_acceptance_length": 2.51'
fi
spec_config="{\"model\":\"Inferact/Kimi-K3-DSpark\",\"num_speculative_tokens\":2,\"method\":\"dspark\",\"attention_backend\":\"TRITON_MLA\",\"kv_cache_dtype\":\"auto\",\"draft_sample_method\":\"probabilistic\",${accept}}"
sizes=$(seq -s, 1 60)

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --moe-backend auto --tensor-parallel-size "$TP" "${ep_args[@]}" \
  --load-format fastsafetensors --gpu-memory-utilization 0.9 \
  --language-model-only --max-num-seqs 20 \
  --enable-auto-tool-choice --tool-call-parser kimi_k3 --reasoning-parser kimi_k3 \
  --max-model-len 1048576 --enable-prefix-caching --kv-cache-dtype fp8 \
  --compilation-config "{\"mode\":3,\"cudagraph_mode\":\"FULL_AND_PIECEWISE\",\"max_cudagraph_capture_size\":60,\"custom_ops\":[\"+fused_rms_norm_gated\"],\"cudagraph_capture_sizes\":[${sizes}]}" \
  --speculative-config "$spec_config" \
  "${offload_args[@]}"
