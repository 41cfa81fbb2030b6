#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry dsr1-fp8-mi325x-sglang (.github/configs/amd-master.yaml).
# Image: rocm/7.0:rocm7.0_ubuntu_22.04_sgl-dev-v0.5.2-rocm7.0-mi30x-20250915
# Flags: InferenceMAX benchmarks/dsr1_fp8_mi325x_slurm.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_mi325x-{amd,tw}.sh ran for this entry (the _docker.sh variant has the
#   same flags; neither sets HSA_NO_SCRATCH_RECLAIM on MI325X).
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"

export SGLANG_USE_AITER=1

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --trust-remote-code \
  --tensor-parallel-size "$TP" \
  --chunked-prefill-size 196608 \
  --max-prefill-tokens 196608 \
  --mem-fraction-static 0.8 \
  --disable-radix-cache \
  --num-continuous-decode-steps 4 \
  --cuda-graph-max-bs 128
