#!/usr/bin/env bash
# The agentic (AgentX) launch contract, inlined by the runner in front of every template in
# benchmarks/agentic/ (the role InferenceX's benchmarks/benchmark_lib.sh plays for its
# agentic scripts; agentic.md §5.1–5.2). It checks the environment the workflow gives an
# agentic point before anything starts, and derives the CPU offload pools from
# TOTAL_CPU_DRAM_GB. The *_args functions set AGENTIC_ARGS (in this shell, so their checks
# stop the script).
set -euo pipefail

agentic_die() { echo "${0##*/}: $*" >&2; exit 2; }
agentic_need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || agentic_die "input $1 must be a positive integer, got '$2'"; }

# Agentic replays run at the model's native context: no inherited cap reaches the engine.
unset MAX_MODEL_LEN

: "${MODEL:?missing input}" "${PORT:?missing input}" "${SCENARIO_TYPE:?missing input}"
[[ $SCENARIO_TYPE == agentic-coding ]] || agentic_die "SCENARIO_TYPE must be agentic-coding, got '$SCENARIO_TYPE'"
[[ ${IS_AGENTIC:-} == 1 ]] || agentic_die "IS_AGENTIC must be 1, got '${IS_AGENTIC:-}'"
for v in PORT TP PP_SIZE DCP_SIZE PCP_SIZE EP_SIZE CONC DURATION GPU_COUNT; do
  agentic_need_int "$v" "${!v:-}"
done
[[ ${DP_ATTENTION:-} == true || ${DP_ATTENTION:-} == false ]] ||
  agentic_die "DP_ATTENTION must be true or false, got '${DP_ATTENTION:-}'"
(( GPU_COUNT == TP * PP_SIZE * PCP_SIZE )) ||
  agentic_die "GPU_COUNT=$GPU_COUNT is not TP·PP·PCP = $((TP * PP_SIZE * PCP_SIZE))"
(( TP % DCP_SIZE == 0 )) || agentic_die "TP=$TP is not a multiple of DCP_SIZE=$DCP_SIZE"
[[ ${TOTAL_CPU_DRAM_GB:-} =~ ^[0-9]+$ ]] ||
  agentic_die "TOTAL_CPU_DRAM_GB must be a non-negative integer, got '${TOTAL_CPU_DRAM_GB:-}'"
case ${KV_OFFLOADING:-} in
  none)
    [[ -z ${KV_OFFLOAD_BACKEND:-} ]] || agentic_die "KV_OFFLOAD_BACKEND must be empty when KV_OFFLOADING=none"
    ;;
  dram)
    [[ -n ${KV_OFFLOAD_BACKEND:-} && ${KV_OFFLOAD_BACKEND} != none ]] ||
      agentic_die "KV_OFFLOAD_BACKEND is required when KV_OFFLOADING=dram"
    [[ $TOTAL_CPU_DRAM_GB =~ ^[1-9][0-9]*$ ]] ||
      agentic_die "DRAM KV offloading requires a positive TOTAL_CPU_DRAM_GB, got '$TOTAL_CPU_DRAM_GB'"
    ;;
  *) agentic_die "KV_OFFLOADING must be none or dram, got '${KV_OFFLOADING:-}'" ;;
esac

# True when offloading is on with one of the named backends, false when it is off; any other
# backend is an error (the template does not implement it).
agentic_offload_with() {
  [[ $KV_OFFLOADING == dram ]] || return 1
  local b
  for b in "$@"; do
    [[ $KV_OFFLOAD_BACKEND == "$b" ]] && return 0
  done
  agentic_die "KV_OFFLOAD_BACKEND=$KV_OFFLOAD_BACKEND is not supported here (supported: $*)"
}

# Decimal bytes of the DRAM budget per GPU rank (TOTAL_CPU_DRAM_GB·10⁹ / GPU_COUNT).
agentic_cpu_bytes_per_rank() { echo $((TOTAL_CPU_DRAM_GB * 1000000000 / GPU_COUNT)); }

# SGLang HiCache flags with a host pool of `$1` GB per rank (default: the budget per rank).
sglang_hicache_args() {
  local gb=${1:-$((TOTAL_CPU_DRAM_GB / GPU_COUNT))}
  (( gb >= 1 )) || agentic_die "HiCache host pool of ${gb} GB/rank: TOTAL_CPU_DRAM_GB=$TOTAL_CPU_DRAM_GB is too small for $GPU_COUNT ranks"
  AGENTIC_ARGS=(--page-size 64 --enable-hierarchical-cache --hicache-size "$gb"
    --hicache-io-backend kernel --hicache-mem-layout page_first
    --hicache-write-policy write_through_selective)
}

# vLLM's SimpleCPUOffloadConnector over the budget per rank (needs PYTHONHASHSEED=42, which
# it exports, so block hashes agree across processes).
vllm_simple_offload_args() {
  export PYTHONHASHSEED=42
  AGENTIC_ARGS=(--kv-transfer-config
    "{\"kv_connector\":\"SimpleCPUOffloadConnector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"cpu_bytes_to_use_per_rank\":$(agentic_cpu_bytes_per_rank)}}")
}

# Engine metrics on (AIPerf scrapes /metrics; a missing prefix fails the replay).
sglang_metrics_args() { AGENTIC_ARGS=(--enable-metrics --enable-cache-report); }
# shellcheck disable=SC2034  # read by the template that follows this file in the recipe
AGENTIC_ARGS=()
export AIPERF_FAILED_REQUEST_THRESHOLD="${AIPERF_FAILED_REQUEST_THRESHOLD:-0.10}"
