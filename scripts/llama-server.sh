#!/usr/bin/env bash
# Real engines for the test suite: llama.cpp's `llama-server`, built from the llama.cpp tree
# vendored in PyPI's llama-cpp-python sdist, llama-cpp-python's own server
# (`python -m llama_cpp.server`) built from the same sdist, and a tiny random-weight GGUF
# whose vocabulary is our shipped tokenizer. Each is built once per machine and cached; a
# second run only checks the cache.
#
# usage: scripts/llama-server.sh [bin|model|env|python]
#   bin     (default) ensure the llama-server binary; print its path as the last line
#   model   ensure the tiny model; print its path as the last line
#   env     ensure both; print `INFMAX_LLAMA_SERVER=PATH` and `INFMAX_TINY_GGUF=PATH` lines
#   python  ensure llama-cpp-python's server and the tiny model; print
#           `INFMAX_LLAMA_CPP_PYTHON=PATH` (a python that runs `-m llama_cpp.server`) and
#           `INFMAX_TINY_GGUF=PATH` lines
#
# Cache: ${INFMAX_CACHE:-$HOME/.cache/infmax}
#   venv/                              python for the tools (gguf, numpy; cmake, ninja if missing)
#   sdist/llama_cpp_python-VERSION.tar.gz      the source of both servers, downloaded once
#   llama-server-VERSION/bin/llama-server       (+ .cpu: the CPU it was built for)
#   llama-server-VERSION/models/tiny-HASH.gguf   (HASH of the generator script + tokenizer)
#   llama-cpp-python-VERSION/venv/     llama_cpp[server], its libllama/libggml built for this
#                                      CPU (+ .infmax-stamp: CPU and requirements)
#   logs/llama-server-build.log, logs/llama-cpp-python-build.log   the compilers' output
#                                      (the last lines are shown when a build fails)
# Progress goes to stderr; stdout carries only the result lines.
set -euo pipefail

readonly LLAMA_CPP_PYTHON_VERSION=0.3.36
# Tool versions for the venv; changing this string rebuilds the venv.
readonly VENV_REQUIREMENTS="gguf==0.19.0 numpy>=2.2.6,<3"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${INFMAX_CACHE:-${HOME}/.cache/infmax}"
root="${cache}/llama-server-${LLAMA_CPP_PYTHON_VERSION}"
bin="${root}/bin/llama-server"
venv="${cache}/venv"
sdist="${cache}/sdist/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz"
pyroot="${cache}/llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}"
pyvenv="${pyroot}/venv"
# What the llama-cpp-python venv holds besides the package; changing it rebuilds the venv.
readonly PY_SERVER_EXTRA="server"

log() { printf 'llama-server.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Run a build step with its output (tens of thousands of compiler lines) appended to the log
# file $1 instead of the terminal; on failure show the log's last lines and where it is.
quietly() {
  local logfile="$1"
  shift
  mkdir -p "$(dirname "${logfile}")"
  printf '\n$ %s\n' "$*" >>"${logfile}"
  if ! "$@" >>"${logfile}" 2>&1; then
    log "failed: $*; the last lines of ${logfile}:"
    tail -n 40 "${logfile}" >&2
    die "build step failed (full log: ${logfile})"
  fi
}

# Serialise concurrent runs (two CI jobs on one machine) on a lock in the cache directory.
lock() {
  mkdir -p "${cache}"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${cache}/.lock"
    flock 9
  fi
}

# A venv under the cache (never the system python) holding the pinned requirements.
ensure_venv() {
  local stamp="${venv}/.infmax-requirements"
  if [[ -x "${venv}/bin/python" ]] && [[ "$(cat "${stamp}" 2>/dev/null)" == "${VENV_REQUIREMENTS}" ]]; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed (with the venv module)"
  log "creating ${venv}"
  rm -rf "${venv}"
  python3 -m venv "${venv}" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # the requirement list is split on purpose
  "${venv}/bin/python" -m pip install --quiet ${VENV_REQUIREMENTS} >&2
  printf '%s' "${VENV_REQUIREMENTS}" >"${stamp}"
}

# cmake >= 3.14 and ninja: the system's if present, otherwise from PyPI into the venv.
ensure_build_tools() {
  local need=()
  if ! command -v cmake >/dev/null 2>&1 ||
    ! cmake --version | awk 'NR==1 { split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 14)) }'; then
    need+=(cmake)
  fi
  command -v ninja >/dev/null 2>&1 || need+=(ninja)
  if ((${#need[@]})); then
    log "installing ${need[*]} from PyPI into ${venv}"
    "${venv}/bin/python" -m pip install --quiet "${need[@]}" >&2
  fi
}

# ggml is built for the build machine's CPU (-march=native), so the binary is stamped with
# the CPU's feature flags and rebuilt if the cache turns up on a different CPU.
cpu_id() {
  local flags
  flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m)"
  printf '%s' "${flags}" | sha256sum | cut -c1-16
}

binary_ok() {
  [[ -x "${bin}" ]] &&
    [[ "$(cat "${bin}.cpu" 2>/dev/null)" == "$(cpu_id)" ]] &&
    "${bin}" --version >/dev/null 2>&1
}

ensure_bin() {
  if binary_ok; then
    return
  fi
  lock
  if binary_ok; then # built by a concurrent run while we waited
    return
  fi
  ensure_venv
  export PATH="${PATH}:${venv}/bin"
  ensure_build_tools

  # A failed or interrupted build leaves `work` behind; the next run resumes from it.
  local work="${cache}/build-llama-server-${LLAMA_CPP_PYTHON_VERSION}"
  unpack_sdist "${work}"
  local src="${work}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"

  local buildlog="${cache}/logs/llama-server-build.log"
  mkdir -p "${cache}/logs"
  : >"${buildlog}"
  log "building llama-server (several minutes on 2 cores; output in ${buildlog})"
  local start=${SECONDS}
  # Static, server only, no TLS, and no web UI download (the default fetches a prebuilt one).
  quietly "${buildlog}" cmake -S "${src}" -B "${work}/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF
  quietly "${buildlog}" cmake --build "${work}/build" --target llama-server -j2
  log "built in $((SECONDS - start)) s"

  mkdir -p "${root}/bin"
  cp "${work}/build/bin/llama-server" "${bin}.tmp"
  mv -f "${bin}.tmp" "${bin}"
  cpu_id >"${bin}.cpu"
  binary_ok || die "the built ${bin} does not run"
  rm -rf "${work}"
}

# The llama-cpp-python sdist (it vendors the whole llama.cpp tree), downloaded once.
ensure_sdist() {
  if [[ -f "${sdist}" ]]; then
    return
  fi
  local dl="${cache}/sdist/download"
  log "downloading the llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} sdist (~76 MB)"
  rm -rf "${dl}"
  "${venv}/bin/python" -m pip download --quiet --no-deps \
    --no-binary llama-cpp-python "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" \
    -d "${dl}" >&2
  mv "${dl}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz" "${sdist}"
  rm -rf "${dl}"
}

# The sdist unpacked under $1 (kept if a previous, interrupted run unpacked it already).
unpack_sdist() {
  local work="$1"
  ensure_sdist
  mkdir -p "${work}"
  if [[ ! -f "${work}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/CMakeLists.txt" ]]; then
    rm -rf "${work}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}"
    tar -xzf "${sdist}" -C "${work}"
  fi
}

# What the llama-cpp-python venv was built for: this CPU, the package version and extras.
python_stamp() {
  printf '%s %s[%s]' "$(cpu_id)" "${LLAMA_CPP_PYTHON_VERSION}" "${PY_SERVER_EXTRA}"
}

python_ok() {
  [[ -x "${pyvenv}/bin/python" ]] &&
    [[ "$(cat "${pyvenv}/.infmax-stamp" 2>/dev/null)" == "$(python_stamp)" ]] &&
    "${pyvenv}/bin/python" -c 'import llama_cpp, llama_cpp.server.app; llama_cpp.llama_backend_init()' >/dev/null 2>&1
}

# llama-cpp-python's server in a venv of its own. pip would compile llama.cpp inside the
# wheel build together with the `llama-common` library and the multimodal `mtmd` one, which
# the server does not load; instead the shared libllama and libggml* (all the package's
# ctypes bindings load) are built here with everything else off, pip builds the package with
# its native part off (LLAMA_BUILD=OFF, LLAVA_BUILD=OFF: pure Python), and the libraries go
# where the bindings look for them (llama_cpp/lib).
ensure_python() {
  if python_ok; then
    return
  fi
  lock
  if python_ok; then
    return
  fi
  ensure_venv
  export PATH="${PATH}:${venv}/bin"
  ensure_build_tools

  local work="${cache}/build-llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}"
  unpack_sdist "${work}"
  local pkg="${work}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}"

  local buildlog="${cache}/logs/llama-cpp-python-build.log"
  mkdir -p "${cache}/logs"
  : >"${buildlog}"
  log "building libllama and libggml for llama-cpp-python (minutes on 2 cores; output in ${buildlog})"
  local start=${SECONDS}
  # shellcheck disable=SC2016 # $ORIGIN is for the dynamic linker, not the shell
  quietly "${buildlog}" cmake -S "${pkg}/vendor/llama.cpp" -B "${work}/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_INSTALL_RPATH='$ORIGIN' \
    -DLLAMA_BUILD_COMMON=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF
  quietly "${buildlog}" cmake --build "${work}/build" -j2
  rm -rf "${work}/install"
  quietly "${buildlog}" cmake --install "${work}/build" --prefix "${work}/install"
  local libs=$((SECONDS - start))

  log "installing llama-cpp-python[${PY_SERVER_EXTRA}] into ${pyvenv}"
  start=${SECONDS}
  rm -rf "${pyvenv}"
  python3 -m venv "${pyvenv}" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  quietly "${buildlog}" env CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
    "${pyvenv}/bin/python" -m pip install "${sdist}[${PY_SERVER_EXTRA}]"
  local site
  site="$("${pyvenv}/bin/python" -c 'import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))' 2>/dev/null ||
    "${pyvenv}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"] + "/llama_cpp")')"
  mkdir -p "${site}/lib"
  cp -a "${work}/install/lib/"lib*.so* "${site}/lib/"
  log "built in $((libs + SECONDS - start)) s (libraries ${libs} s, package $((SECONDS - start)) s)"
  python_stamp >"${pyvenv}/.infmax-stamp"
  python_ok || die "the llama-cpp-python in ${pyvenv} does not load"
  rm -rf "${work}"
}

ensure_model() {
  local script="${repo}/scripts/make-tiny-gguf.py"
  local tok="${repo}/assets/tokenizer"
  local hash
  hash="$(cat "${script}" "${tok}/tokenizer.json" "${tok}/tokenizer_config.json" | sha256sum | cut -c1-16)"
  model="${root}/models/tiny-${hash}.gguf"
  if [[ -s "${model}" ]]; then
    return
  fi
  lock
  if [[ -s "${model}" ]]; then
    return
  fi
  ensure_venv
  mkdir -p "${root}/models"
  log "writing ${model}"
  "${venv}/bin/python" "${script}" "${model}.tmp" >&2
  mv -f "${model}.tmp" "${model}"
}

model=""
# Sourced (tests/it/cli.rs checks `quietly`): functions only.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then return 0; fi

case "${1:-bin}" in
  bin)
    ensure_bin
    printf '%s\n' "${bin}"
    ;;
  model)
    ensure_model
    printf '%s\n' "${model}"
    ;;
  env)
    ensure_bin
    ensure_model
    printf 'INFMAX_LLAMA_SERVER=%s\n' "${bin}"
    printf 'INFMAX_TINY_GGUF=%s\n' "${model}"
    ;;
  python)
    ensure_python
    ensure_model
    printf 'INFMAX_LLAMA_CPP_PYTHON=%s\n' "${pyvenv}/bin/python"
    printf 'INFMAX_TINY_GGUF=%s\n' "${model}"
    ;;
  -h | --help)
    sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    ;;
  *)
    die "unknown command '$1' (bin, model, env or python)"
    ;;
esac
