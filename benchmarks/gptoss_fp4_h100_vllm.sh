#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry gptoss-fp4-h100-vllm (.github/configs/nvidia-master.yaml).
# Image: vllm/vllm-openai:v0.11.0
# Flags: InferenceMAX benchmarks/gptoss_fp4_h100_docker.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_h100-cr.sh ran for this entry (the _slurm.sh variant run by launch_h100-cw.sh
#   has the same flags; TORCH_CUDA_ARCH_LIST is set by both paths). The reference passed the
#   engine options through a `--config config.yaml` file; here they are the equivalent flags.
#   The context length is a fixed 10240 there (MAX_MODEL_LEN is not used), kept as is.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int CONC "${CONC:?missing input}"

export TORCH_CUDA_ARCH_LIST=9.0
export PYTHONNOUSERSITE=1

set -x
# --max-num-seqs is the row's concurrency: the engine never batches more than the client sends.
exec vllm serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --gpu-memory-utilization 0.9 \
  --max-model-len 10240 \
  --max-num-seqs "$CONC" \
  --max-num-batched-tokens 8192 \
  --cuda-graph-sizes 2048 \
  --compilation-config '{"cudagraph_mode":"PIECEWISE"}' \
  --async-scheduling \
  --no-enable-prefix-caching \
  --disable-log-requests
