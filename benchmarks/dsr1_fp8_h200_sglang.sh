#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry dsr1-fp8-h200-sglang (.github/configs/nvidia-master.yaml).
# Image: lmsysorg/sglang:v0.5.5-cu129-amd64
# Flags: InferenceMAX benchmarks/dsr1_fp8_h200_slurm.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_h200-{cw,nb,nv}.sh ran for this entry.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int ISL "${ISL:?missing input}"
need_int OSL "${OSL:?missing input}"

# Batch limit (max running requests and CUDA-graph batch size): 512 for 1k/1k, else 256.
max_bs=256
if [[ $ISL == 1024 && $OSL == 1024 ]]; then
  max_bs=512
fi

export TORCH_CUDA_ARCH_LIST=9.0
export PYTHONNOUSERSITE=1

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --tokenizer-path "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --trust-remote-code \
  --tensor-parallel-size "$TP" \
  --data-parallel-size 1 \
  --disable-radix-cache \
  --max-running-requests "$max_bs" \
  --cuda-graph-max-bs "$max_bs" \
  --chunked-prefill-size 32768 \
  --max-prefill-tokens 32768 \
  --mem-fraction-static 0.82 \
  --attention-backend flashinfer \
  --stream-interval 10 \
  --decode-log-interval 1
