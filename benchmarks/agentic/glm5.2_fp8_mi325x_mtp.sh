#!/usr/bin/env bash
# Agentic launch template for config entry glm5.2-fp8-mi325x-sglang-agentic-mtp
# (configs/2026/amd-master.yaml): GLM-5.2 FP8 on MI325X, SGLang with EAGLE MTP (throughput at
# the golden acceptance length 2.99), GPU-resident KV only.
# Flags: InferenceX benchmarks/single_node/agentic/glm5.2_fp8_mi325x_mtp.sh at 843c6254f.
# Starts the engine in the foreground; the contract (benchmarks/agentic/lib.sh) runs first.

agentic_no_offload
export AIPERF_REQUIRED_SERVER_METRIC_PREFIX="sglang:"
export PYTHONNOUSERSITE=1
export SGLANG_TIMEOUT_KEEP_ALIVE=900
export SGLANG_DSA_FUSE_TOPK=false
export SGLANG_OPT_USE_TOPK_V2=false
if [[ ${EVAL_ONLY:-false} != true ]]; then
  export SGLANG_SIMULATE_ACC_LEN=2.99
  export SGLANG_SIMULATE_ACC_METHOD=match-expected
  export SGLANG_SIMULATE_ACC_TOKEN_MODE=real-draft-token
fi

set -x
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" --served-model-name "$MODEL" \
  --host 0.0.0.0 --port "$PORT" --trust-remote-code \
  --tp "$TP" --ep-size "$EP_SIZE" \
  --dsa-prefill-backend tilelang --dsa-decode-backend tilelang --dsa-topk-backend torch \
  --kv-cache-dtype bfloat16 --tool-call-parser glm47 --reasoning-parser glm45 \
  --context-length 1048576 --max-total-tokens 1048576 \
  --chunked-prefill-size 131072 --mem-fraction-static 0.85 \
  --max-running-requests $((2 * CONC)) --cuda-graph-max-bs $((2 * CONC)) \
  --speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  --watchdog-timeout 1800 --enable-metrics --enable-cache-report
