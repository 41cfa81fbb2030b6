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

# For templates whose config entry ships only `kv-offloading: none`: any offload is an error.
agentic_no_offload() {
  [[ $KV_OFFLOADING == none ]] ||
    agentic_die "KV_OFFLOADING=$KV_OFFLOADING is not supported here (this entry runs without KV offloading)"
}

# Stop unless `$1` GB per pool × `$2` pools fits the DRAM budget (for templates whose
# reference sizes its host pools with tuned constants rather than from TOTAL_CPU_DRAM_GB).
agentic_fits_budget() {
  (( $1 * $2 <= TOTAL_CPU_DRAM_GB )) ||
    agentic_die "a CPU pool of $1 GB × $2 exceeds TOTAL_CPU_DRAM_GB=$TOTAL_CPU_DRAM_GB"
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

# vLLM's SimpleCPUOffloadConnector over the budget per rank, with `$1` appended to its extra
# config (needs PYTHONHASHSEED=42, which it exports, so block hashes agree across processes).
vllm_simple_offload_args() {
  export PYTHONHASHSEED=42
  AGENTIC_ARGS=(--kv-transfer-config
    "{\"kv_connector\":\"SimpleCPUOffloadConnector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"cpu_bytes_to_use_per_rank\":$(agentic_cpu_bytes_per_rank)${1:-}}}")
}

# vLLM's SimpleCPUOffloadConnector over the whole budget in one figure
# (`cpu_bytes_to_use` = TOTAL_CPU_DRAM_GB·10⁹, which vLLM splits over the ranks), with
# `$1` appended to its extra config (e.g. `,"lazy_offload":true`); PYTHONHASHSEED=42 as
# agentic.md §5.2 requires with this connector.
vllm_simple_offload_total_args() {
  export PYTHONHASHSEED=42
  AGENTIC_ARGS=(--kv-transfer-config
    "{\"kv_connector\":\"SimpleCPUOffloadConnector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"cpu_bytes_to_use\":$((TOTAL_CPU_DRAM_GB * 1000000000))${1:-}}}")
}

# A private folder for the side files a backend needs (its config), made once per launch.
agentic_scratch() {
  if [[ -z ${AGENTIC_SCRATCH:-} ]]; then
    AGENTIC_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/infmax-agentic.XXXXXX")
  fi
}

# The backend version the row pins (`kv-offload-backend.version`), else the template's `$1`.
agentic_backend_version() {
  local re='"version": *"([^"]+)"'
  if [[ ${KV_OFFLOAD_BACKEND_METADATA:-} =~ $re ]]; then
    echo "${BASH_REMATCH[1]}"
  else
    echo "$1"
  fi
}

# Start a side service (`$1` names it, `$2` is its log, the rest its command line) in the
# background. It stays in the engine's process group, so the runner's teardown stops both;
# one that dies within AGENTIC_SERVICE_SETTLE_S seconds (default 2) stops the launch.
agentic_service() {
  local name=$1 log=$2 pid
  shift 2
  "$@" >"$log" 2>&1 &
  pid=$!
  sleep "${AGENTIC_SERVICE_SETTLE_S:-2}"
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$log" >&2
    agentic_die "$name died during startup"
  fi
}

# Wait (up to `$3` one-second polls) until `$2` answers 2xx; `$1` names the service.
agentic_wait_http() {
  local i
  for ((i = 0; i < $3; i++)); do
    curl -fsS -o /dev/null "$2" && return 0
    sleep 1
  done
  agentic_die "$1 did not become healthy at $2"
}

# Mooncake's distributed store in embedded mode: each GPU rank contributes a global segment
# of `$1` GB (checked against the budget) and a local buffer of `$2` GB, over protocol `$3`
# (`$4`: RDMA device names, may be empty), with a master on PORT+12000 started with the
# eviction high watermark `$5` (the rest: extra master flags). Installs the pinned
# mooncake-transfer-engine (`kv-offload-backend.version`, default 0.3.11.post1) first.
# The template fixes PYTHONHASHSEED so identical prefixes get identical store keys on every
# rank.
mooncake_embedded_store() {
  local seg=$1 buf=$2 proto=$3 dev=$4 high=$5 ver
  shift 5
  (( seg >= 1 )) || agentic_die "Mooncake segment of ${seg} GB/rank: TOTAL_CPU_DRAM_GB=$TOTAL_CPU_DRAM_GB is too small"
  agentic_fits_budget "$seg" "$GPU_COUNT"
  ver=$(agentic_backend_version 0.3.11.post1)
  python3 -m pip install --quiet --no-cache-dir --no-deps --force-reinstall \
    "mooncake-transfer-engine-cuda13==$ver"
  agentic_scratch
  local port=$((PORT + 12000))
  export MOONCAKE_CONFIG_PATH="$AGENTIC_SCRATCH/mooncake_config.json"
  cat >"$MOONCAKE_CONFIG_PATH" <<JSON
{"mode": "embedded", "metadata_server": "P2PHANDSHAKE",
 "master_server_address": "127.0.0.1:$port", "global_segment_size": "${seg}GB",
 "local_buffer_size": "${buf}GB", "protocol": "$proto", "device_name": "$dev",
 "enable_offload": false}
JSON
  export MC_ENABLE_DEST_DEVICE_AFFINITY=1 MC_SLICE_SIZE=1048576
  agentic_service "Mooncake master" "$AGENTIC_SCRATCH/mooncake_master.log" \
    mooncake_master --port "$port" --eviction_high_watermark_ratio="$high" \
    --eviction_ratio=0.10 "$@"
}

# LMCache's multiprocess servers for vLLM's LMCacheMPConnector: `$1` shards of `$2` GB of L1
# each (checked against the budget), on ports 5555+i (HTTP 8080+i), `$3` workers each and
# `$4` GB initial L1; waits for each health check, then sets AGENTIC_ARGS to the connector.
lmcache_mp_servers() {
  local n=$1 gb=$2 workers=$3 init=$4 i urls=()
  (( gb >= 1 )) || agentic_die "LMCache DRAM budget is less than 1 GB per shard"
  agentic_fits_budget "$gb" "$n"
  agentic_scratch
  for ((i = 0; i < n; i++)); do
    agentic_service "LMCache server $i" "$AGENTIC_SCRATCH/lmcache_server_$i.log" \
      lmcache server --host 127.0.0.1 --port $((5555 + i)) \
      --http-host 127.0.0.1 --http-port $((8080 + i)) \
      --l1-size-gb "$gb" --l1-init-size-gb "$init" --l1-read-ttl-seconds 7200 \
      --chunk-size 256 --max-workers "$workers" --eviction-policy LRU \
      --supported-transfer-mode lmcache_driven
    urls+=("tcp://127.0.0.1:$((5555 + i))")
  done
  for ((i = 0; i < n; i++)); do
    agentic_wait_http "LMCache server $i" "http://127.0.0.1:$((8080 + i))/healthcheck" 600
  done
  local csv
  csv=$(IFS=,; echo "${urls[*]}")
  AGENTIC_ARGS=(--kv-transfer-config
    "{\"kv_connector\":\"LMCacheMPConnector\",\"kv_connector_module_path\":\"lmcache.integration.vllm.lmcache_mp_connector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"lmcache.mp.server_urls\":\"$csv\",\"lmcache.mp.mq_timeout\":6000.0}}")
}

# Engine metrics on (AIPerf scrapes /metrics; a missing prefix fails the replay).
sglang_metrics_args() { AGENTIC_ARGS=(--enable-metrics --enable-cache-report); }
# shellcheck disable=SC2034  # read by the template that follows this file in the recipe
AGENTIC_ARGS=()
export AIPERF_FAILED_REQUEST_THRESHOLD="${AIPERF_FAILED_REQUEST_THRESHOLD:-0.10}"
