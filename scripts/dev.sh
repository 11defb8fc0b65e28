#!/bin/sh
# dev.sh - the README's two commands.
#   scripts/dev.sh run  [server flags]  installs what is missing, builds, starts the server
#   scripts/dev.sh test                 installs what is missing, builds, runs every test
#   scripts/dev.sh build                installs what is missing, builds
# BUILD_DIR (default build) and CMAKE_ARGS pass through to CMake.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  run | test | build) ;;
  *) # before anything is installed or built
    echo "usage: scripts/dev.sh run [server flags] | test [ctest args] | build" >&2
    exit 2
    ;;
esac

./scripts/install-deps.sh
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DRM_WERROR=ON ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"

case "$cmd" in
  run)
    exec "$BUILD_DIR/server/remotemedia-server" "$@"
    ;;
  test)
    exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
    ;;
esac
