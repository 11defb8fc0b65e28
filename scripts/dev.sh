#!/bin/sh
# dev.sh - the README's two commands.
#   scripts/dev.sh run  [server flags]  installs what is missing, builds, starts the server
#   scripts/dev.sh test                 installs what is missing, builds, runs every test
# BUILD_DIR (default build) and CMAKE_ARGS pass through to CMake.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmd=${1:-}
[ $# -gt 0 ] && shift

./scripts/install-deps.sh
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DRM_WERROR=ON ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"

case "$cmd" in
  run)
    if [ -x "$BUILD_DIR/server/remotemedia-server" ]; then
      exec "$BUILD_DIR/server/remotemedia-server" "$@"
    fi
    exec "$BUILD_DIR/client/c/remotemedia-run" examples/gain_chain.json \
      --input src=tests/data/audio/sine_1k_48k_mono.wav --metrics "$@"
    ;;
  test)
    exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
    ;;
  build) ;;
  *)
    echo "usage: scripts/dev.sh run|test|build" >&2
    exit 2
    ;;
esac
