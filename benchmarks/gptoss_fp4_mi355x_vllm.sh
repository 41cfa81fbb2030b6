#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry gptoss-fp4-mi355x-vllm (.github/configs/amd-master.yaml).
# Image: rocm/7.0:rocm7.0_ubuntu_22.04_vllm_0.10.1_instinct_20250927_rc1
# Flags: InferenceMAX benchmarks/gptoss_fp4_mi355x_docker.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_mi355x-amd.sh ran for this entry (the _slurm.sh variant has the same flags).
#   The reference passed the compilation config through a `--config config.yaml` file holding
#   only `compilation-config: '<json>'`; here it is the equivalent `--compilation-config` flag.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int MAX_MODEL_LEN "${MAX_MODEL_LEN:?missing input}"

# torch.compile sizes: 1, 2..128 step 2, then 256 512 1024 2048 8192.
# CUDA-graph capture sizes: 1, 2..128 step 2, 136..1024 step 8, then 2048 4096 8192.
small=1
for ((n = 2; n <= 128; n += 2)); do small+=",$n"; done
compile_sizes="$small,256,512,1024,2048,8192"
capture_sizes=$small
for ((n = 136; n <= 1024; n += 8)); do capture_sizes+=",$n"; done
capture_sizes+=",2048,4096,8192"
compilation_config="{\"compile_sizes\":[$compile_sizes],\"cudagraph_capture_sizes\":[$capture_sizes],\"cudagraph_mode\":\"FULL_AND_PIECEWISE\"}"

export VLLM_USE_AITER_UNIFIED_ATTENTION=1
export VLLM_ROCM_USE_AITER_MHA=0
export VLLM_ROCM_USE_AITER_FUSED_MOE_A16W4=1

set -x
exec vllm serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --gpu-memory-utilization 0.95 \
  --max-model-len "$MAX_MODEL_LEN" \
  --max-seq-len-to-capture "$MAX_MODEL_LEN" \
  --compilation-config "$compilation_config" \
  --block-size 64 \
  --no-enable-prefix-caching \
  --disable-log-requests \
  --async-scheduling
