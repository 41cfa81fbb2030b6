#!/usr/bin/env bash
# Agentic launch template for config entry kimik3-fp4-mi355x-atom-agentic-mtp
# (configs/2026/amd-master.yaml): Kimi-K3 MXFP4 on 8×MI355X, ATOM with DSpark speculative
# decoding (throughput at the golden acceptance length: 3.75 with 6 draft tokens at conc 1,
# 2.51 with 2 otherwise), ATOM's LMCache offload for kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/kimik3_fp4_mi355x_atom_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

# The 1.56 TB checkpoint fits only at TP8 on 288 GB parts.
(( TP == 8 )) || agentic_die "Kimi-K3 MXFP4 needs TP=8 on MI355X, got TP=$TP"
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="atom:"

offload_args=()
if agentic_offload_with lmcache; then
  # ATOM's in-process LMCache: a local CPU pool of the budget per TP rank.
  export PYTHONHASHSEED=0
  export LMCACHE_LOCAL_CPU=True
  export LMCACHE_MAX_LOCAL_CPU_SIZE=$((TOTAL_CPU_DRAM_GB / TP))
  export LMCACHE_CHUNK_SIZE=256
  export OFFLOAD_STATE=1
  export OFFLOAD_STATE_STAGING_GROUPS=8
  export OFFLOAD_STATE_MIN_LOAD_TOKENS=0
  export OFFLOAD_GPU_STAGING_CHUNKS=16
  offload_args=(--kv-transfer-config '{"kv_connector":"lmcache_offload","kv_role":"offload"}')
fi

export PYTHONNOUSERSITE=1
export AITER_LOG_LEVEL="${AITER_LOG_LEVEL:-WARNING}"
export AITER_SITUV2_A4W4=1
export AITER_QUICK_REDUCE_QUANTIZATION=INT4
export AITER_FLYDSL_STAGE2_FP8=1
export ATOM_MLA_MAX_SPLIT_PER_BATCH=256
export ATOM_STATE_CHECKPOINT_DEMAND=0
# The reference's tuned settings per concurrency; others are not supported.
ckpt_args=()
case $CONC in
  1 | 4)
    max_seqs=32 batched=8192 mem=0.88
    export ATOM_ENABLE_REPLAYSSM=0
    ;;
  8)
    max_seqs=16 batched=8192 mem=0.88
    export ATOM_ENABLE_REPLAYSSM=1
    ckpt_args=(--state-checkpoint-slots 16)
    ;;
  10)
    max_seqs=16 batched=4096 mem=0.90
    export ATOM_ENABLE_REPLAYSSM=0
    ckpt_args=(--state-checkpoint-slots 16)
    ;;
  *) agentic_die "CONC=$CONC is not supported by this recipe (1, 4, 8, 10)" ;;
esac

draft_tokens=2 al=2.51
(( CONC == 1 )) && draft_tokens=6 al=3.75
spec_args=(--method dspark --draft-model Inferact/Kimi-K3-DSpark --num-speculative-tokens "$draft_tokens")
[[ ${EVAL_ONLY:-false} != true ]] && spec_args+=(--spec-decode-acceptance-length "$al")

set -x
exec python -m atom.entrypoints.openai_server \
  --model "$MODEL" \
  --host 0.0.0.0 --server-port "$PORT" --trust-remote-code \
  --tensor-parallel-size "$TP" \
  --kv_cache_dtype fp8 --block-size 128 \
  --max-num-seqs "$max_seqs" --max-num-batched-tokens "$batched" \
  --gpu-memory-utilization "$mem" \
  --enable_prefix_caching --state-checkpoint-interval-tokens -1 \
  "${ckpt_args[@]}" \
  --online_quant_config '{"global_quant_config":"ptpc_fp8","exclude_layer":["lm_head","model.embed_tokens","*self_attn.[qkv]_conv1d*","*block_sparse_moe.experts*","*block_sparse_moe.routed_expert_*","*vision_tower*","*mm_projector*"]}' \
  "${spec_args[@]}" "${offload_args[@]}"
