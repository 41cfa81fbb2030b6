#!/usr/bin/env bash
# A real GPU job on an NVIDIA H200 host with no network (issue 18): llama.cpp's llama-server
# built with CUDA for sm_90 from the same llama-cpp-python sdist the tests use, a random-weight
# Llama-shaped model of 1.17 B parameters, `runner exec` / `runner batch` with telemetry from
# the real nvidia-smi, and the load client's self-test at 1,024 and 2,048 streams × 2 ms.
#
# Two halves, because the GPU host has no network and no Rust toolchain:
#
#   scripts/gpu-h200.sh prepare   # here: release runner/scheduler, a trimmed llama.cpp tree
#                                 # and the gguf wheel into .gpu/ (git-ignored; ~25 MB)
#   scripts/gpu-h200.sh device STEP...   # there, in the repository root, with .gpu carried
#       build     CUDA llama-server (sm_90) into /tmp/infmax-gpu/build, 4-5 min on 16 cores
#       model     the 1.17 B GGUF into /tmp/infmax-gpu/model (made there: 2.3 GB never travels)
#       exec      runner exec at conc 16 on the GPU
#       batch     runner batch at conc 1,8,32, then runner report
#       selftest  runner bench --self-test at 1, 64, 1024 and 2048 streams × 2 ms
#   Results go to $OUT (the device tool's folder that comes back): logs and tarballs.
#
# This workplace's device tool (10 minutes a command; the machine stays warm 30 s between
# calls) ran it as three calls:
#   run(command="bash scripts/gpu-h200.sh device build model exec", carry=[".gpu"])
#   run(command="bash scripts/gpu-h200.sh device build model batch", carry=[".gpu"])
#   run(command="bash scripts/gpu-h200.sh device selftest", carry=[".gpu"])
# CI never runs this script (CI has no GPU); the README shows what it recorded.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gpu="${repo}/.gpu"
# Built and generated there, outside the carried .gpu (a carried path replaces its folder on
# every call, which would throw the build away); kept while the machine stays warm.
work="${INFMAX_GPU_WORK:-/tmp/infmax-gpu}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# The model's shape: TinyLlama-like width on the repository's 8,192-token vocabulary.
SHAPE=(--layers 24 --embd 2048 --heads 16 --kv-heads 8 --ff 5632 --name infmax-llama-1.2b-random)

log() { printf 'gpu-h200: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

prepare() {
  cd "${repo}"
  local exclude
  exclude="$(git rev-parse --git-path info/exclude)"
  grep -qx '/.gpu/' "${exclude}" 2>/dev/null ||
    echo '/.gpu/' >>"${exclude}"
  mkdir -p "${gpu}"
  log "release build of runner and scheduler"
  cargo build --release --locked --bin runner --bin scheduler
  cp target/release/runner "${gpu}/runner"
  strip "${gpu}/runner"
  # The baselines this binary reads (the tree that travels may be newer than the binary).
  rm -rf "${gpu}/baselines"
  cp -r baselines "${gpu}/baselines"

  # The llama.cpp tree vendored in the sdist, without what a CUDA llama-server build never
  # reads (docs, vocab test models, tests, other backends): 176 MB → about 10 MB as tar.xz.
  local sdist="${HOME}/.cache/infmax/sdist/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz"
  [[ -f "${sdist}" ]] || scripts/llama-server.sh env >/dev/null
  local tmp
  tmp="$(mktemp -d)"
  tar -xzf "${sdist}" -C "${tmp}"
  local src="${tmp}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"
  rm -rf "${src:?}"/{docs,models,tests,benches,media,pocs,ci,gguf-py,skills,examples/*/} \
    "${src}/tools/ui/node_modules"
  local b
  for b in "${src}"/ggml/src/ggml-*/; do
    case "$(basename "${b}")" in ggml-cpu | ggml-cuda) ;; *) rm -rf "${b}" ;; esac
  done
  # examples/CMakeLists.txt is only read with LLAMA_BUILD_EXAMPLES=ON.
  tar -C "$(dirname "${src}")" -cJf "${gpu}/llama.cpp.tar.xz" llama.cpp
  rm -rf "${tmp}"

  # gguf (pure Python) for the model writer; numpy, pyyaml, requests and tqdm are there.
  rm -rf "${gpu}/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "${gpu}/whl" gguf==0.19.0
  du -sh "${gpu}"/* >&2
}

device_build() {
  local build="${work}/build"
  if [[ -x "${build}/bin/llama-server" ]]; then
    log "llama-server already built"
    return
  fi

  mkdir -p "${work}/src"
  tar -xJf "${gpu}/llama.cpp.tar.xz" -C "${work}/src"
  local start=${SECONDS}
  # sm_90 only; static; no NCCL (one GPU); the server's web UI is not needed.
  cmake -S "${work}/src/llama.cpp" -B "${build}" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DGGML_CUDA_NCCL=OFF \
    -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF >"${OUT:-/tmp}/cmake-configure.log" 2>&1 ||
    {
      tail -40 "${OUT:-/tmp}/cmake-configure.log"
      die "cmake configure failed"
    }
  cmake --build "${build}" --target llama-server -j "$(nproc)" >"${OUT:-/tmp}/cmake-build.log" 2>&1 ||
    {
      grep -m 20 -B 2 -A 6 'error' "${OUT:-/tmp}/cmake-build.log" || tail -60 "${OUT:-/tmp}/cmake-build.log"
      die "the CUDA build failed"
    }
  log "llama-server built with CUDA in $((SECONDS - start)) s"
}

device_model() {
  local dir="${work}/model"
  if [[ -f "${dir}/model.gguf" ]]; then
    return
  fi
  mkdir -p "${dir}" /tmp/gguf-site
  python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/gguf-site "${gpu}"/whl/*.whl
  local start=${SECONDS}
  PYTHONPATH=/tmp/gguf-site python3 scripts/make-tiny-gguf.py "${dir}/model.gguf.tmp" "${SHAPE[@]}"
  mv "${dir}/model.gguf.tmp" "${dir}/model.gguf"
  log "model written in $((SECONDS - start)) s: $(du -h "${dir}/model.gguf" | cut -f1)"
}

# Environment and flags shared by the jobs; machine facts for the README.
jobs_env() {
  export LLAMA_SERVER="${work}/build/bin/llama-server" LLAMA_GGUF="${work}/model/model.gguf"
  [[ -x "${LLAMA_SERVER}" && -f "${LLAMA_GGUF}" ]] || die "run the build and model steps first"
  common=(--config examples/llama1b-f16-h200-llamacpp-1k1k-conc16.json --profile local
    --tokenizer infmax/embedded --ready-timeout 600 --baselines "${gpu}/baselines")
  mkdir -p "${work}/results"
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv
    nvcc --version | tail -2
    "${gpu}/runner" --version
    nproc
  } >"${OUT:-/tmp}/machine.txt" 2>&1
}

# `runner exec|batch` into .gpu/results/$1, its log and files back as $OUT/$1.tar.gz.
device_job() {
  local what="$1"
  shift
  local common
  jobs_env
  local dir="${work}/results/${what}" rc=0
  rm -rf "${dir}"
  "${gpu}/runner" "${what}" "${common[@]}" "$@" --out "${dir}" >"${OUT:-/tmp}/${what}.log" 2>&1 || rc=$?
  if [[ "${what}" == batch ]]; then
    "${gpu}/runner" report --dir "${dir}" --out "${dir}/report" --baselines "${gpu}/baselines" >>"${OUT:-/tmp}/${what}.log" 2>&1 || rc=$?
  fi
  tail -25 "${OUT:-/tmp}/${what}.log"
  tar -C "${work}/results" -czf "${OUT:-/tmp}/${what}.tar.gz" "${what}"
  log "${what}: exit ${rc}"
  return "${rc}"
}

device_selftest() {
  {
    "${gpu}/runner" bench --self-test --self-test-streams 1,64,1024,2048
    echo "# the same with the old fixed choice (one engine thread, one client thread):"
    "${gpu}/runner" bench --self-test --self-test-streams 1024 \
      --self-test-engine-threads 1 --self-test-client-threads 1
  } 2>&1 | tee "${OUT:-/tmp}/selftest.txt"
}

case "${1:-}" in
prepare) prepare ;;
device)
  shift
  cd "${repo}"
  [[ -d "${gpu}" ]] || die ".gpu/ was not carried (run 'prepare' here, carry .gpu)"
  for step in "$@"; do
    case "${step}" in
    build) device_build ;;
    model) device_model ;;
    exec) device_job exec ;;
    batch) device_job batch --conc 1,8,32 ;;
    selftest) device_selftest ;;
    *) die "unknown step ${step}" ;;
    esac
  done
  ;;
*)
  sed -n '2,20p' "$0"
  exit 2
  ;;
esac
