#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry gptoss-fp4-h200-vllm (.github/configs/nvidia-master.yaml).
# Image: vllm/vllm-openai:v0.11.0
# Flags: InferenceMAX benchmarks/gptoss_fp4_h200_slurm.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_h200-{cw,nb,nv}.sh ran for this entry. The reference passed the engine
#   options through a `--config config.yaml` file; here they are the equivalent flags.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int CONC "${CONC:?missing input}"
need_int ISL "${ISL:?missing input}"
need_int OSL "${OSL:?missing input}"
need_int MAX_MODEL_LEN "${MAX_MODEL_LEN:?missing input}"

# Context length: ISL+OSL+20 for 1k/1k, ISL+OSL+200 when either side is 8k, else MAX_MODEL_LEN.
isl=$ISL osl=$OSL
if [[ $ISL == 1024 && $OSL == 1024 ]]; then
  max_model_len=$((isl + osl + 20))
elif [[ $ISL == 8192 || $OSL == 8192 ]]; then
  max_model_len=$((isl + osl + 200))
else
  max_model_len=$MAX_MODEL_LEN
fi

export TORCH_CUDA_ARCH_LIST=9.0
export PYTHONNOUSERSITE=1

set -x
# --max-num-seqs is the row's concurrency: the engine never batches more than the client sends.
exec vllm serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --gpu-memory-utilization 0.9 \
  --max-model-len "$max_model_len" \
  --max-num-seqs "$CONC" \
  --max-num-batched-tokens 8192 \
  --cuda-graph-sizes 2048 \
  --compilation-config '{"cudagraph_mode":"PIECEWISE"}' \
  --async-scheduling \
  --no-enable-prefix-caching \
  --disable-log-requests
