#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry gptoss-fp4-h200-trt (.github/configs/nvidia-master.yaml).
# Image: nvcr.io#nvidia/tensorrt-llm/release:gpt-oss-dev
# Flags: InferenceMAX benchmarks/gptoss_fp4_h200_trt_slurm.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_h200-{cw,nb,nv}.sh ran for this entry. The reference sets no --max_seq_len
#   (the model's own limit applies; MAX_MODEL_LEN is not used), kept as is.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int EP_SIZE "${EP_SIZE:?missing input}"
need_int CONC "${CONC:?missing input}"
case "${DP_ATTENTION:?missing input}" in
  true | false) ;;
  *) die "input DP_ATTENTION must be true or false, got '$DP_ATTENTION'" ;;
esac

# Batch size and CUDA-graph batch size are the row's concurrency, so CONC shapes the engine.
extra_options=$(mktemp "${TMPDIR:-/tmp}/gptoss_fp4_h200_trt.XXXXXX")
cat >"$extra_options" <<EOF
cuda_graph_config:
  enable_padding: true
  max_batch_size: $CONC
enable_attention_dp: $DP_ATTENTION
kv_cache_config:
  dtype: auto
  enable_block_reuse: false
  free_gpu_memory_fraction: 0.85
moe_config:
  backend: TRITON
num_postprocess_workers: 4
print_iter_log: true
stream_interval: 20
EOF
echo "extra LLM API options ($extra_options):" >&2
cat "$extra_options" >&2

export TRTLLM_ENABLE_PDL=1

set -x
exec mpirun -n 1 --oversubscribe --allow-run-as-root \
  trtllm-serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --trust_remote_code \
  --backend pytorch \
  --max_batch_size "$CONC" \
  --max_num_tokens 20000 \
  --tp_size "$TP" \
  --pp_size 1 \
  --ep_size "$EP_SIZE" \
  --gpus_per_node 8 \
  --extra_llm_api_options "$extra_options"
