#!/usr/bin/env bash
# Materialised by infmax 0.1.0 from benchmarks/llama1b_f16_h200_llamacpp.sh. Inputs are single-quoted; secrets come from the environment.
export MODEL='infmax/llama-1.2b-random'
export IMAGE='ghcr.io/ggml-org/llama.cpp:server-cuda'
export PORT='38775'
export TP='1'
export EP_SIZE='1'
export DP_ATTENTION='false'
export CONC='16'
export ISL='1024'
export OSL='1024'
export MAX_MODEL_LEN='2248'
export PRECISION='f16'
export FRAMEWORK='llamacpp'
export EXP_NAME='llama1b_1k1k'
export MODEL_PREFIX='llama1b'
export RUNNER_NAME='h200'
export RESULT_FILENAME='llama1b_1k1k_f16_llamacpp_tp1_ep1_dpa_false_conc16_h200'
# ---- template ----
# llama.cpp's llama-server on one NVIDIA GPU (issue 18): a CUDA build of the llama-server the
# tests use on CPU, serving a random-weight Llama-shaped GGUF (1.17 B parameters, F16).
# Not an InferenceX entry: the proof that the pipeline meets a real GPU, its telemetry and
# a real engine's timing. `scripts/gpu-h200.sh` builds both and runs this with
# `runner exec --profile local`.
#
# Reads MODEL (the name it serves under), PORT, CONC and MAX_MODEL_LEN. From the
# environment: LLAMA_GGUF, the weights (host paths never enter a row), and LLAMA_SERVER,
# the binary (else `llama-server` on PATH). The model's vocabulary is the repository's
# tokenizer: run the client with `--tokenizer infmax/embedded`.
set -euo pipefail
: "${LLAMA_GGUF:?set LLAMA_GGUF to the model file (scripts/gpu-h200.sh writes one)}"

# One slot per concurrent request, each with the row's whole context; every layer on the
# GPU; flash attention; one continuous batch of up to 2,048 tokens per step.
exec "${LLAMA_SERVER:-llama-server}" \
  -m "${LLAMA_GGUF}" --alias "${MODEL}" \
  --host 0.0.0.0 --port "${PORT}" \
  -np "${CONC}" -c "$((MAX_MODEL_LEN * CONC))" \
  -ngl 999 -fa on -b 2048 -ub 512 \
  --no-webui
