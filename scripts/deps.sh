#!/usr/bin/env bash
# Installs the Debian packages edistill needs to build, test and run its demo.
# As root, missing packages are installed with apt-get; otherwise the missing ones are named and the
# script exits 1. Usage: scripts/deps.sh [--check]   (--check: never install, only report)
set -euo pipefail

PACKAGES=(
  cmake make gcc pkg-config clang-format
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
  libopenblas-dev libuv1-dev zlib1g-dev libcjson-dev libcmocka-dev libmicrohttpd-dev
  prometheus gnuplot-nox                           # tests/e2e/metrics.sh (Prometheus, promtool), student_trainer plot, make experiments
  dataset-fashion-mnist python3-numpy
  python3-zmq python3-protobuf protobuf-compiler   # tests/e2e/serve.sh: the Python reference client
  docker-compose yamllint python3-yaml python3-kubernetes shellcheck iproute2  # tests/e2e/deploy_*.sh, multihost.sh
  iptables                                         # tests/e2e/blackout.sh: a link blackout in a netns
  slurm-wlm munge                                  # tests/slurm/run.sh (make test-slurm, deploy_slurm.sh)
  clang libclang-rt-dev                            # make fuzz: libFuzzer and the sanitizer runtimes
  python3-torch python3-onnx python3-opencv        # tests/e2e/onnx.sh: PyTorch-made ONNX teachers, onnx.checker, OpenCV dnn
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ "${1:-}" == "--check" || $(id -u) -ne 0 ]]; then
  echo "edistill: missing Debian packages: ${missing[*]}" >&2
  echo "edistill: install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "edistill: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
