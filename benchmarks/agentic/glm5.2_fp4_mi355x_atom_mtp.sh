#!/usr/bin/env bash
# Agentic launch template for config entry glm5.2-fp4-mi355x-atom-agentic-mtp
# (configs/2026/amd-master.yaml): GLM-5.2 FP4 on MI355X, ATOM with MTP (throughput at the
# golden acceptance length 2.99), ATOM's LMCache offload for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/glm5.2_fp4_mi355x_atom_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="atom:"
export PYTHONNOUSERSITE=1
export AITER_QUICK_REDUCE_QUANTIZATION=INT4
export AITER_USE_FLYDSL_MOE_SORTING=1

offload_args=()
if agentic_offload_with lmcache; then
  # ATOM's in-process LMCache: one local CPU pool of the whole budget.
  export PYTHONHASHSEED=0
  export LMCACHE_LOCAL_CPU=True
  export LMCACHE_MAX_LOCAL_CPU_SIZE=$TOTAL_CPU_DRAM_GB
  export LMCACHE_CHUNK_SIZE=256
  export OFFLOAD_MIN_LOAD_TOKENS=8192
  offload_args=(--kv-transfer-config '{"kv_connector":"lmcache_offload","kv_role":"offload"}')
fi

# The reference's tuned graph batch lists; other concurrencies are not supported.
case $CONC in
  1) graphs='[1,2]' ;;
  2) graphs='[1,2,4]' ;;
  4) graphs='[1,2,4,8]' ;;
  8) graphs='[1,2,4,8,12,16]' ;;
  10) graphs='[1,2,4,8,12,16,20]' ;;
  12) graphs='[1,2,4,8,12,16,20,24]' ;;
  16) graphs='[1,2,4,8,12,16,20,24,28,32]' ;;
  *) agentic_die "CONC=$CONC is not supported by this recipe (1, 2, 4, 8, 10, 12, 16)" ;;
esac

parallel_args=(--tensor-parallel-size "$TP")
if [[ $DP_ATTENTION == true ]]; then
  parallel_args+=(--enable-dp-attention)
  (( EP_SIZE > 1 )) && parallel_args+=(--enable-expert-parallel)
fi
spec_args=(--method mtp --num-speculative-tokens 3)
# Acceptance rate = (AL − 1) / draft tokens = (2.99 − 1) / 3.
[[ ${EVAL_ONLY:-false} != true ]] && spec_args+=(--spec-decode-acceptance-rate 0.663333)

set -x
exec python -m atom.entrypoints.openai_server \
  --model "$MODEL" \
  --host 0.0.0.0 --server-port "$PORT" \
  "${parallel_args[@]}" \
  --online_quant_config '{"global_quant_config":"ptpc_fp8","exclude_layer":["lm_head","model.embed_tokens","*.mlp.gate","*expert*"]}' \
  --max-num-seqs $((2 * CONC)) \
  --cudagraph-capture-sizes "$graphs" \
  --max-num-batched-tokens 16384 --kv_cache_dtype fp8 \
  "${spec_args[@]}" "${offload_args[@]}"
