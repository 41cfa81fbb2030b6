#!/usr/bin/env bash
# Agentic launch template for config entry minimaxm3-fp4-b200-trtllm-agentic-mtp
# (configs/2026/nvidia-master.yaml): MiniMax-M3 NVFP4 on B200, TensorRT-LLM (trtllm-serve)
# with the EAGLE3 draft Inferact/MiniMax-M3-EAGLE3-GQA (3 tokens; throughput forces 1.78
# accepted tokens, AL 2.78), TensorRT-LLM's own host KV cache (`native`) for
# kv-offloading dram.
# Flags: InferenceX benchmarks/single_node/agentic/minimaxm3_fp4_b200_trt_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.
# The host cache per rank is the reference's tuned size (200 GiB at TP8, 250 GiB otherwise)
# capped at the DRAM budget per rank, which the reference's constant exceeds on some shapes.
# Not carried over: --chat_template $MODEL_PATH/chat_template.jinja (the model's own
# template is used).

agentic_offload_with native ||
  agentic_die "this recipe runs with TensorRT-LLM's host cache (kv-offloading dram, backend native)"
export TLLM_LOG_LEVEL=INFO
export TRTLLM_SERVER_DISABLE_GC=1
export TRTLLM_WORKER_DISABLE_GC=1
export TLLM_PROFILE_LOG_RANKS=all
export PYTHONNOUSERSITE=1
export TRTLLM_ENABLE_PDL=1
export ENROOT_ALLOW_DEV=yes
export NCCL_GRAPH_MIXING_SUPPORT=0
export MIMALLOC_PURGE_DELAY=0
export TQDM_DISABLE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export TRTLLM_SERVE_ENABLE_MSGSPEC=1
export TRTLLM_TORCH_COMPILE_CONTEXT_ONLY=1
if [[ ${EVAL_ONLY:-false} == true ]]; then
  unset TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS
else
  export TLLM_SPEC_DECODE_FORCE_NUM_ACCEPTED_TOKENS=1.78
fi

case $CONC in
  25) batches="$(seq -s, 1 15),17,19,21,23,25" ;;
  30) batches="$(seq -s, 1 12),$(seq -s, 14 2 24),27,30" ;;
  35) batches="$(seq -s, 1 11),$(seq -s, 14 3 35)" ;;
  40) batches=$(seq -s, 2 2 40) ;;
  45) batches="$(seq -s, 2 2 18),$(seq -s, 21 3 45)" ;;
  50) batches="$(seq -s, 2 2 8),11,$(seq -s, 14 2 18),$(seq -s, 21 3 48),50" ;;
  55) batches="$(seq -s, 2 3 14),$(seq -s, 16 2 18),$(seq -s, 21 3 48),50,53,55" ;;
  *)
    (( CONC <= 20 )) || agentic_die "CONC=$CONC has no tuned graph batch list (up to 20, then 25 to 55 in fives)"
    batches=$(seq -s, 1 "$CONC")
    ;;
esac
host_cache=268435456000
(( TP == 8 )) && host_cache=214748364800
budget=$(agentic_cpu_bytes_per_rank)
(( host_cache > budget )) && host_cache=$budget

agentic_scratch
config="$AGENTIC_SCRATCH/trtllm.yaml"
cat >"$config" <<YAML
max_seq_len: 1048576
max_num_tokens: 16384
max_batch_size: $CONC
cuda_graph_config:
  enable_padding: true
  batch_sizes: [$batches]
torch_compile_config:
  enable_fullgraph: true
  enable_inductor: false
  enable_piecewise_cuda_graph: true
  capture_num_tokens: [1, 512, 1024, 2048]
  enable_userbuffers: true
  max_num_streams: 3
moe_config:
  backend: TRTLLM
  use_low_precision_moe_combine: true
sparse_attention_config:
  algorithm: minimax_m3
  implementation: msa
  indexer_kv_dtype: fp8
  sparse_disable_index_value: true
  fuse_qkv_index_projection: true
kv_cache_config:
  free_gpu_memory_fraction: 0.94
  enable_block_reuse: true
  block_reuse_policy: per_conversation
  tokens_per_block: 128
  use_kv_cache_manager_v2: true
  dtype: fp8
  event_buffer_max_size: 0
  host_cache_size: $host_cache
speculative_config:
  decoding_type: Eagle3
  max_draft_len: 3
  speculative_model: Inferact/MiniMax-M3-EAGLE3-GQA
scheduler_config:
  capacity_scheduler_policy: MAX_UTILIZATION
enable_chunked_prefill: true
enable_autotuner: true
trust_remote_code: true
reasoning_parser: minimax_m3
stream_interval: 20
print_iter_log: true
num_postprocess_workers: 8
enable_attention_dp: false
YAML

set -x
exec mpirun -n 1 --oversubscribe --allow-run-as-root \
  trtllm-serve "$MODEL" --tp_size "$TP" --host 0.0.0.0 --port "$PORT" --config "$config"
