#!/usr/bin/env bash
# Agentic launch template for config entry dsv4-fp4-mi355x-atom-agentic-mtp
# (configs/2026/amd-master.yaml): DeepSeek-V4-Pro FP4 on 8×MI355X, ATOM with MTP (throughput
# at the golden acceptance length 2.49), without KV offloading.
# Flags: InferenceX benchmarks/single_node/agentic/dsv4_fp4_mi355x_atom_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

agentic_no_offload
(( TP == 8 && EP_SIZE == 1 )) && [[ $DP_ATTENTION == false ]] ||
  agentic_die "this recipe requires TP=8, EP_SIZE=1 and DP_ATTENTION=false"
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="atom:"
export AITER_BF16_FP8_MOE_BOUND=0
export AITER_LOG_LEVEL=WARNING
export ATOM_MOE_GU_ITLV=1
export ATOM_DISABLE_MMAP=true
export ATOM_DEBUG_PREFIX_HITS=1
export ATOM_PROFILER_MORE=0
export ATOM_PROFILER_TIMEOUT=1200

spec_args=(--method mtp --num-speculative-tokens 3)
[[ ${EVAL_ONLY:-false} != true ]] && spec_args+=(--spec-decode-acceptance-length 2.49)

set -x
exec python3 -u -m atom.entrypoints.openai_server \
  --model "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --server-port "$PORT" \
  --tensor-parallel-size "$TP" \
  --kv-cache-dtype fp8 --index-cache-dtype fp4 --enable-prefix-caching \
  --gpu-memory-utilization 0.9 \
  --max-num-batched-tokens 16384 --attn-prefill-chunk-size 16384 \
  --state-checkpoint-interval-tokens 8192 \
  --level 3 --cudagraph-mode FULL \
  "${spec_args[@]}" \
  --max-num-seqs $((2 * CONC))
