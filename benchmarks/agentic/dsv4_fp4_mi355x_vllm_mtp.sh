#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-mi355x-vllm-agentic-mtp
# (configs/2026/amd-master.yaml): DeepSeek-V4-Pro FP4 on MI355X, vLLM (AITER) with MTP
# (throughput at the synthetic acceptance length 2.49), without KV offloading.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_mi355x_vllm_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# Not carried over: the reference's vllm-native/mooncake/lmcache branches (this entry ships
# only kv-offloading none), its vllm-router in front of DP ranks (infmax sends to the engine
# port directly) and its fixed 180 s sleep before the server starts.

agentic_no_offload
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="vllm:"
export VLLM_ENGINE_READY_TIMEOUT_S=10800
export VLLM_PREFIX_CACHE_RETENTION_INTERVAL=32768
export VLLM_ROCM_USE_AITER=1
export VLLM_ROCM_QUICK_REDUCE_QUANTIZATION=INT4
export VLLM_ROCM_USE_AITER_MOE=1
export VLLM_ROCM_USE_AITER_FUSION_SHARED_EXPERTS=1

parallel_args=(--tensor-parallel-size "$TP" --data-parallel-size 1)
sched_args=()
max_seqs=$((2 * CONC))
if [[ $DP_ATTENTION == true ]]; then
  parallel_args=(--tensor-parallel-size 1 --data-parallel-size "$TP")
  sched_args=(--prefill-schedule-interval 8 --long-prefill-token-threshold 16384)
  max_seqs=$CONC
fi
ep_args=()
(( EP_SIZE > 1 )) && ep_args=(--enable-expert-parallel)

spec_tokens=3
if [[ ${EVAL_ONLY:-false} == true ]]; then
  spec_config="{\"method\": \"mtp\", \"num_speculative_tokens\": $spec_tokens}"
else
  spec_config="{\"method\": \"mtp\", \"num_speculative_tokens\": $spec_tokens, \"rejection_sample_method\": \"synthetic\", \"synthetic_acceptance_length\": 2.49}"
fi

set -x
exec vllm serve "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --async-scheduling --distributed-executor-backend mp \
  --kv-cache-dtype fp8 --max-num-batched-tokens 8192 \
  "${parallel_args[@]}" "${ep_args[@]}" "${sched_args[@]}" \
  --gpu-memory-utilization 0.86 --moe-backend aiter \
  --compilation-config '{"mode":3,"cudagraph_mode":"FULL_AND_PIECEWISE"}' \
  --speculative-config "$spec_config" \
  --tokenizer-mode deepseek_v4 --tool-call-parser deepseek_v4 --reasoning-parser deepseek_v4 \
  --enable-auto-tool-choice --enable-prefix-caching --no-disable-hybrid-kv-cache-manager \
  --max-num-seqs "$max_seqs"
