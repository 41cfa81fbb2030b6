#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry dsr1-fp8-b200-trt (.github/configs/nvidia-master.yaml).
# Image: nvcr.io#nvidia/tensorrt-llm/release:1.1.0rc2.post2
# Flags: InferenceMAX benchmarks/dsr1_fp8_b200_trt_slurm.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_b200-{nv,nb}.sh ran for this entry (runner type b200-trt). The reference
#   let trtllm-serve bind its default host (localhost); here it binds 0.0.0.0 like every template.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int EP_SIZE "${EP_SIZE:?missing input}"
need_int CONC "${CONC:?missing input}"
need_int ISL "${ISL:?missing input}"
need_int MAX_MODEL_LEN "${MAX_MODEL_LEN:?missing input}"
case "${DP_ATTENTION:?missing input}" in
  true | false) ;;
  *) die "input DP_ATTENTION must be true or false, got '$DP_ATTENTION'" ;;
esac

# MoE backend: DEEPGEMM for every row.
moe_backend=DEEPGEMM

# Token budget per iteration: concurrency + ISL + 64, rounded up to a multiple of 64.
conc=$CONC isl=$ISL
max_num_tokens=$(((conc + isl + 64 + 63) / 64 * 64))

extra_options=$(mktemp "${TMPDIR:-/tmp}/dsr1_fp8_b200_trt.XXXXXX")
cat >"$extra_options" <<EOF
cuda_graph_config:
  enable_padding: true
  max_batch_size: 256
enable_attention_dp: $DP_ATTENTION
print_iter_log: true
kv_cache_config:
  dtype: fp8
  free_gpu_memory_fraction: 0.8
  enable_block_reuse: false
stream_interval: 10
moe_config:
  backend: $moe_backend
EOF
if [[ $DP_ATTENTION == true ]]; then
  cat >>"$extra_options" <<EOF
attention_dp_config:
  batching_wait_iters: 0
  enable_balance: true
  timeout_iters: 60
EOF
fi
echo "extra LLM API options ($extra_options):" >&2
cat "$extra_options" >&2

set -x
exec mpirun -n 1 --oversubscribe --allow-run-as-root \
  trtllm-serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --trust_remote_code \
  --backend pytorch \
  --max_seq_len "$MAX_MODEL_LEN" \
  --max_num_tokens "$max_num_tokens" \
  --tp_size "$TP" \
  --ep_size "$EP_SIZE" \
  --extra_llm_api_options "$extra_options"
