#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the slurm launch profile's tests
# (tests/it/slurm.rs): slurmctld + slurmd + munge with 8 fake GPUs (gres.conf `File=`
# symlinks to /dev/null), every file in one state directory, nothing installed as a service:
# when the Debian packages are installed here, their services are neither started
# (policy-rc.d answers 101 during apt-get) nor enabled for boot.
#
# usage: scripts/slurm-cluster.sh start|stop|env
#   start  install the Debian packages if missing, start munged, slurmctld and slurmd, wait
#          until the node is idle; print `SLURM_CONF=PATH` as the last stdout line
#          (a running cluster is reused)
#   env    print `SLURM_CONF=PATH` of the running cluster (exit 1 if none runs)
#   stop   stop the daemons by the pids recorded at start; remove nothing else
#
# State: ${INFMAX_SLURM_DIR:-${INFMAX_CACHE:-$HOME/.cache/infmax}/slurm}
#   slurm.conf gres.conf fakegpu0..7   configuration
#   munge/ (key, socket, pid, log)     a private munged, so the host's munge is never touched
#   state/ spool/ *.pid *.log          daemon state and logs
# Needs root (slurmd runs jobs as their user) and free ports 6817/6818. Progress goes to
# stderr; stdout carries only the result line.
set -euo pipefail

dir="${INFMAX_SLURM_DIR:-${INFMAX_CACHE:-${HOME}/.cache/infmax}/slurm}"
conf="${dir}/slurm.conf"
readonly GPUS=8

log() { printf 'slurm-cluster.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# The pid recorded in FILE if that process is alive, else nothing.
live_pid() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(tr -dc '0-9' <"$1")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null && printf '%s\n' "${pid}"
}

running() {
  live_pid "${dir}/slurmctld.pid" >/dev/null && live_pid "${dir}/slurmd.pid" >/dev/null &&
    live_pid "${dir}/munge/munged.pid" >/dev/null &&
    SLURM_CONF="${conf}" sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

install_packages() {
  local missing=()
  for tool in slurmctld slurmd salloc munged mungekey; do
    command -v "${tool}" >/dev/null 2>&1 || PATH="${PATH}:/usr/sbin" command -v "${tool}" >/dev/null 2>&1 ||
      missing+=("${tool}")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ "$(id -u)" == 0 ]] || die "missing ${missing[*]}; install slurmctld slurmd slurm-client munge (needs root)"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]}); their system services stay off"
  install_debs slurmctld slurmd slurm-client munge
}

# apt-get install the Debian packages $@ without starting or enabling their services. The
# tests start their own daemons: the packages' services must neither start now nor at the
# next boot of a user's workstation. policy-rc.d answering 101 ("action forbidden") stops
# invoke-rc.d and deb-systemd-invoke from starting them during the install (one the machine
# already has is left alone: it forbids or allows as its owner chose); afterwards what the
# post-install scripts enabled is disabled again, for the packages this run installed only
# (a munge the machine had keeps its settings).
install_debs() {
  local pkgs=("$@") fresh=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' || fresh+=("${p}")
  done
  local policy="${INFMAX_POLICY_RC_D:-/usr/sbin/policy-rc.d}" ours=0
  if [[ ! -e "${policy}" ]]; then
    printf '#!/bin/sh\n# scripts/slurm-cluster.sh: no service starts while it installs packages\nexit 101\n' >"${policy}"
    chmod 755 "${policy}"
    ours=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y \
      --no-install-recommends "${pkgs[@]}" >&2; } || rc=$?
  if ((ours)); then rm -f "${policy}"; fi
  ((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
  for p in "${fresh[@]}"; do
    if command -v deb-systemd-helper >/dev/null 2>&1; then
      deb-systemd-helper disable "${p}.service" >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && [[ -e "/etc/init.d/${p}" ]]; then
      update-rc.d "${p}" disable >/dev/null 2>&1 || true
    fi
  done
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
  local i
  mkdir -p "${dir}/state" "${dir}/spool" "${dir}/munge"
  for ((i = 0; i < GPUS; i++)); do
    ln -sfn /dev/null "${dir}/fakegpu${i}"
  done
  cat >"${dir}/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=${dir}/fakegpu[0-$((GPUS - 1))]
EOF
  cat >"${conf}" <<EOF
# Written by scripts/slurm-cluster.sh: a single-node test cluster with ${GPUS} fake GPUs.
ClusterName=infmax
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${dir}/munge/munge.socket
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
SlurmctldLogFile=${dir}/slurmctld.log
SlurmdLogFile=${dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
KillWait=5
GresTypes=gpu
NodeName=localhost CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000 Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local m="${dir}/munge"
  # Clients of other users connect to the socket: its folder must be world-readable.
  chmod 755 "${m}"
  [[ -s "${m}/munge.key" ]] || mungekey -c -f -k "${m}/munge.key"
  chmod 600 "${m}/munge.key"
  rm -f "${m}/munge.socket" "${m}/munge.socket.lock"
  munged --force --key-file="${m}/munge.key" --socket="${m}/munge.socket" \
    --pid-file="${m}/munged.pid" --log-file="${m}/munged.log" --seed-file="${m}/munged.seed"
}

# Wait up to $2 tenths of a second for command $1 to succeed.
wait_for() {
  local i
  for ((i = 0; i < $2; i++)); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}

start() {
  if running; then
    log "reusing the running cluster in ${dir}"
    printf 'SLURM_CONF=%s\n' "${conf}"
    return 0
  fi
  stop_daemons
  install_packages
  export PATH="${PATH}:/usr/sbin"
  for port in 6817 6818; do
    port_free "${port}" || die "port ${port} is taken (another Slurm running?); stop it first"
  done
  # A fresh controller state: jobs of an earlier run must not come back.
  rm -rf "${dir}/state" "${dir}/spool"
  write_config
  start_munge
  wait_for "[[ -S '${dir}/munge/munge.socket' ]]" 50 || die "munged did not start; see ${dir}/munge/munged.log"
  export SLURM_CONF="${conf}"
  local t0=${SECONDS}
  slurmctld -D -f "${conf}" </dev/null >>"${dir}/slurmctld.out" 2>&1 &
  echo $! >"${dir}/slurmctld.pid"
  slurmd -D -N localhost -f "${conf}" </dev/null >>"${dir}/slurmd.out" 2>&1 &
  echo $! >"${dir}/slurmd.pid"
  if ! wait_for "sinfo -h -o %T 2>/dev/null | grep -qx idle" 300; then
    log "the node did not become idle within 30 s; last log lines:"
    tail -n 20 "${dir}/slurmctld.log" "${dir}/slurmd.log" >&2 || true
    stop_daemons
    exit 1
  fi
  log "cluster up in $((SECONDS - t0)) s: $(sinfo -h -o '%P %N %T %G')"
  printf 'SLURM_CONF=%s\n' "${conf}"
}

stop_daemons() {
  local f pid
  for f in "${dir}/slurmd.pid" "${dir}/slurmctld.pid" "${dir}/munge/munged.pid"; do
    if pid="$(live_pid "${f}")"; then
      kill "${pid}" 2>/dev/null || true
      wait_for "! kill -0 ${pid} 2>/dev/null" 100 || kill -9 "${pid}" 2>/dev/null || true
      log "stopped pid ${pid} ($(basename "${f}" .pid))"
    fi
    rm -f "${f}"
  done
}

# Sourced (tests/it/cli.rs checks install_debs with fake apt tools): functions only.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then return 0; fi

case "${1:-}" in
  start) start ;;
  stop) stop_daemons ;;
  env)
    running || die "no cluster runs in ${dir}; run: scripts/slurm-cluster.sh start"
    printf 'SLURM_CONF=%s\n' "${conf}"
    ;;
  *) die "usage: scripts/slurm-cluster.sh start|stop|env" ;;
esac
