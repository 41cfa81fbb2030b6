#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry dsr1-fp4-mi355x-sglang (.github/configs/amd-master.yaml).
# Image: rocm/7.0:rocm7.0_ubuntu_22.04_sgl-dev-v0.5.2-rocm7.0-mi35x-20250915
# Flags: InferenceMAX benchmarks/dsr1_fp4_mi355x_docker.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_mi355x-amd.sh ran for this entry (the _slurm.sh variant has the same flags).
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int ISL "${ISL:?missing input}"
need_int OSL "${OSL:?missing input}"
need_int CONC "${CONC:?missing input}"

export SGLANG_USE_AITER=1

# Prefill budget: 196608 tokens, but 32768 for 8k/1k above concurrency 32 to lower the GPU
# memory need (InferenceMAX a25544f, "reduce gpu mem req for config 8k 1k fp4 con64").
prefill=196608
if [[ $ISL == 8192 && $OSL == 1024 && $CONC -gt 32 ]]; then
  prefill=32768
fi

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --trust-remote-code \
  --tensor-parallel-size "$TP" \
  --chunked-prefill-size "$prefill" \
  --max-prefill-tokens "$prefill" \
  --mem-fraction-static 0.8 \
  --disable-radix-cache \
  --num-continuous-decode-steps 4 \
  --cuda-graph-max-bs 128
