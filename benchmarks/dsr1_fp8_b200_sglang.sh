#!/usr/bin/env bash
set -euo pipefail
# Engine launch template for config entry dsr1-fp8-b200-sglang (.github/configs/nvidia-master.yaml).
# Image: lmsysorg/sglang:v0.5.5-cu129-amd64
# Flags: InferenceMAX benchmarks/dsr1_fp8_b200_docker.sh at 3c3d199 (2025-11-29), the script
#   runners/launch_b200-{nvd,dgxc}.sh ran for this entry; NCCL_GRAPH_REGISTER and
#   TORCH_CUDA_ARCH_LIST come from those runner scripts' `docker run -e` list. Unlike the FP4
#   entry, the reference passes no --trust-remote-code here; kept as is.
# Starts the engine in the foreground and nothing else; inputs and rules: benchmarks/README.md.

die() { echo "${0##*/}: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "input $1 must be a positive integer, got '$2'"; }
: "${MODEL:?missing input}"
need_int PORT "${PORT:?missing input}"
need_int TP "${TP:?missing input}"
need_int EP_SIZE "${EP_SIZE:?missing input}"
need_int CONC "${CONC:?missing input}"

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

# The scheduler polls for new requests every 10 iterations, relaxed to 30 from concurrency 16.
recv_interval=10
if [[ $CONC -ge 16 ]]; then
  recv_interval=30
fi

# NCCL_GRAPH_REGISTER=0: no automatic NCCL user-buffer registration with CUDA graphs (slower,
# but the reference found vLLM/SGLang crash-free with it).
export NCCL_GRAPH_REGISTER=0
export TORCH_CUDA_ARCH_LIST=10.0
export PYTHONNOUSERSITE=1
# DeepGEMM JIT off, FlashInfer GEMMs on (as the reference).
export SGL_ENABLE_JIT_DEEPGEMM=false
export SGLANG_ENABLE_FLASHINFER_GEMM=true

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 \
  --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --data-parallel-size 1 \
  --ep-size "$EP_SIZE" \
  --quantization fp8 \
  --kv-cache-dtype fp8_e4m3 \
  --cuda-graph-max-bs 128 \
  --max-running-requests 128 \
  --mem-fraction-static 0.82 \
  --chunked-prefill-size 32768 \
  --max-prefill-tokens 32768 \
  --enable-flashinfer-allreduce-fusion \
  --scheduler-recv-interval "$recv_interval" \
  --disable-radix-cache \
  --attention-backend trtllm_mla \
  --moe-runner-backend flashinfer_trtllm \
  --stream-interval 30
