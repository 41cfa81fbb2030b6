#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry gptoss-fp4-b200-vllm (.github/configs/nvidia-master.yaml).
# Image: vllm/vllm-openai:v0.11.0
# Flags: InferenceMAX benchmarks/gptoss_fp4_b200_docker.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_b200-{nvd,dgxc}.sh ran for this entry; NCCL_GRAPH_REGISTER comes from those
#   runner scripts' `docker run -e` list. The reference passed the engine options through a
#   `--config config.yaml` file; here they are the equivalent command-line flags.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int ISL "${ISL:?missing input}"
need_int OSL "${OSL:?missing input}"
need_int MAX_MODEL_LEN "${MAX_MODEL_LEN:?missing input}"

# CI-stability patch the reference applies inside this image: drop the lock-file cleanup in
# flashinfer's jit/cubin_loader.py (a 1%-of-runs race, fixed upstream in flashinfer#1779).
# The reference deletes lines 102-108 blindly; this edits the file only if it still holds
# exactly that block, so another flashinfer version or a second run is left untouched.
fi_loader=/usr/local/lib/python3.12/dist-packages/flashinfer/jit/cubin_loader.py
if [[ -w $fi_loader ]]; then
  python3 - "$fi_loader" <<'PY'
import sys
path = sys.argv[1]
block = """    finally:
        # Clean up the lock file
        if os.path.exists(lock_path):
            os.remove(lock_path)
            logger.info(f"Lock file {lock_path} removed.")
"""
with open(path) as f:
    src = f.read()
if block in src:
    with open(path, "w") as f:
        f.write(src.replace(block, "", 1))
    print(f"patched {path}: removed the lock-file cleanup (flashinfer#1779)", file=sys.stderr)
PY
fi

# Context length: ISL+OSL+20 for 1k/1k, ISL+OSL+200 when either side is 8k, else MAX_MODEL_LEN.
isl=$ISL osl=$OSL
if [[ $ISL == 1024 && $OSL == 1024 ]]; then
  max_model_len=$((isl + osl + 20))
elif [[ $ISL == 8192 || $OSL == 8192 ]]; then
  max_model_len=$((isl + osl + 200))
else
  max_model_len=$MAX_MODEL_LEN
fi

# NCCL_GRAPH_REGISTER=0: no automatic NCCL user-buffer registration with CUDA graphs (slower,
# but the reference found vLLM/SGLang crash-free with it).
export NCCL_GRAPH_REGISTER=0
export TORCH_CUDA_ARCH_LIST=10.0
export PYTHONNOUSERSITE=1
export VLLM_FLASHINFER_ALLREDUCE_FUSION_THRESHOLDS_MB='{"2":32,"4":32,"8":8}'
export VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1

set -x
exec vllm serve "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --gpu-memory-utilization 0.9 \
  --max-model-len "$max_model_len" \
  --max-num-seqs 512 \
  --max-num-batched-tokens 8192 \
  --cuda-graph-sizes 2048 \
  --compilation-config '{"pass_config":{"enable_fi_allreduce_fusion":true,"enable_attn_fusion":true,"enable_noop":true},"custom_ops":["+rms_norm"],"cudagraph_mode":"FULL_AND_PIECEWISE"}' \
  --async-scheduling \
  --no-enable-prefix-caching \
  --disable-log-requests
