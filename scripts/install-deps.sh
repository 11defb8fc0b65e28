#!/bin/sh
# install-deps.sh - installs, with apt-get, every Debian package the build, the server,
# the clients and the tests need; installs nothing when all are present. Run as root.
#   scripts/install-deps.sh               build + tests (what scripts/dev.sh test needs)
#   scripts/install-deps.sh --build-only  only what compiling the server and the CLI needs
#                                         (deploy/Dockerfile's build stage: no test tools)
set -eu

mode=all
case "${1:-}" in
  "") ;;
  --build-only) mode=build ;;
  *)
    echo "usage: install-deps.sh [--build-only]" >&2
    exit 2
    ;;
esac

# Compiling: the C toolchain, code generators, the libraries' headers. CUnit and the python3
# interpreter too: CMake's configure step looks for them whether or not tests are built.
BUILD_PACKAGES="
build-essential cmake pkg-config ca-certificates python3
libgrpc-dev libssl-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev grpc-proto
golang-github-gogo-googleapis-dev
libprotobuf-c-dev protobuf-c-compiler
libjansson-dev libcunit1-dev
libsndfile1-dev libsoxr-dev libebur128-dev libspeexdsp-dev libopus-dev libfftw3-dev
libmicrohttpd-dev
"
# Testing: the Python client and pytest, format check, audio tools, and the deployment
# tests (tests/integration/test_docker.py, test_deploy_files.py, test_nginx_lb.py): the
# Docker engine and debootstrap for the image, nginx for load balancing, docker-compose
# and python3-yaml to check the compose and Kubernetes files.
TEST_PACKAGES="
python3-grpcio python3-protobuf python3-numpy python3-pytest
python3-setuptools python3-wheel python3-venv python3-pip python3-mypy
openssl procps clang-format
prometheus nghttp2-client
espeak-ng sox
docker.io debootstrap nginx docker-compose python3-yaml
"

PACKAGES=$BUILD_PACKAGES
if [ "$mode" = all ]; then
  PACKAGES="$PACKAGES $TEST_PACKAGES"
  # `kubectl kustomize` renders deploy/k8s; Debian's kubectl comes with kubernetes-client,
  # unless another kubectl is installed already (both own /usr/bin/kubectl).
  command -v kubectl >/dev/null 2>&1 || PACKAGES="$PACKAGES kubernetes-client"
fi

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
# Optional extras for sanitizer/valgrind runs and benchmarks (bench/speech compares WebRTC's
# audio processing when libwebrtc-audio-processing-dev is present): RM_EXTRA_PACKAGES=1.
if [ "${RM_EXTRA_PACKAGES:-0}" = 1 ]; then
  for p in valgrind clang libclang-rt-14-dev libwebrtc-audio-processing-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
fi

if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run as root" >&2
    exit 1
  fi
  echo "install-deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
