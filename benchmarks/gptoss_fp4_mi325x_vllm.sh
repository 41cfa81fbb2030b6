#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry gptoss-fp4-mi325x-vllm (.github/configs/amd-master.yaml).
# Image: rocm/7.0:rocm7.0_ubuntu_22.04_vllm_0.10.1_instinct_20250927_rc1
# Flags: InferenceMAX benchmarks/gptoss_fp4_mi325x_slurm.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_mi325x-{amd,tw}.sh ran for this entry (the _docker.sh variant has the same
#   flags and env; unlike MI300X, no VLLM_ROCM_QUICK_REDUCE_QUANTIZATION).
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int MAX_MODEL_LEN "${MAX_MODEL_LEN:?missing input}"

# HSA_NO_SCRATCH_RECLAIM: with MEC firmware older than 177 (or unknown) RCCL cannot reclaim
# some memory, so the reference disables scratch reclaim to avoid crashes (ROCm 6.4.3 notes).
mec_fw=$(rocm-smi --showfw 2>/dev/null | awk '/MEC/ {print $NF; exit}') || true
if ! [[ $mec_fw =~ ^[0-9]+$ ]] || ((10#$mec_fw < 177)); then
  export HSA_NO_SCRATCH_RECLAIM=1
fi

export VLLM_USE_AITER_UNIFIED_ATTENTION=1
export VLLM_ROCM_USE_AITER_MHA=0
export VLLM_ROCM_USE_AITER_TRITON_BF16_GEMM=0

set -x
exec vllm serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --gpu-memory-utilization 0.95 \
  --max-model-len "$MAX_MODEL_LEN" \
  --max-seq-len-to-capture "$MAX_MODEL_LEN" \
  --compilation-config '{"cudagraph_mode": "FULL_AND_PIECEWISE"}' \
  --block-size 64 \
  --no-enable-prefix-caching \
  --disable-log-requests \
  --async-scheduling
