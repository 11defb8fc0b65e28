#!/bin/sh
# throughput.sh - unary calls/s of remotemedia-server (1-node PassThrough, 100-byte input)
# with its compiled-pipeline cache on and off (--pipeline-cache=false), against a bare
# C-core echo server, all measured in the same run and driven by h2load. Each server gets
# one polling thread pinned to CPU 0; h2load runs on CPU 1. Prints the median of RUNS runs,
# the ratios to the echo baseline and the cache's worth (on / off). Needs nghttp2-client (RM_EXTRA_PACKAGES=1
# scripts/install-deps.sh). Usage: bench/server/throughput.sh [build-dir]
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
H2LOAD="taskset -c 1 h2load"
. "$ROOT/bench/server/common.sh"

taskset -c 0 "$BUILD/bench/server/echo_server" 127.0.0.1:0 2>"$TMP/echo.log" &
PIDS="$PIDS $!"
ECHO_PORT=$(wait_port "$TMP/echo.log")
start_rm() { # log-file extra-options...: one server in the background (cache on or off)
  log=$1; shift
  taskset -c 0 "$BUILD/server/remotemedia-server" --listen 127.0.0.1:0 --threads 1 --workers 1 \
    --log-level "$LOG_LEVEL" "$@" 2>"$log" &
  PIDS="$PIDS $!"
}
start_rm "$TMP/rm.log"
start_rm "$TMP/nocache.log" --pipeline-cache=false
RM_PORT=$(wait_port "$TMP/rm.log")
NOCACHE_PORT=$(wait_port "$TMP/nocache.log")

load "$ECHO_PORT" >/dev/null; load "$RM_PORT" >/dev/null; load "$NOCACHE_PORT" >/dev/null # warm up
: >"$TMP/echo.txt"; : >"$TMP/rm.txt"; : >"$TMP/nocache.txt"
for _ in $(seq 1 "$RUNS"); do   # interleaved so drift hits all three alike
  load "$ECHO_PORT" >>"$TMP/echo.txt"
  load "$RM_PORT" >>"$TMP/rm.txt"
  load "$NOCACHE_PORT" >>"$TMP/nocache.txt"
done
E=$(median <"$TMP/echo.txt"); R=$(median <"$TMP/rm.txt"); N=$(median <"$TMP/nocache.txt")
echo "echo server (bare C core):      $E calls/s  runs: $(tr '\n' ' ' <"$TMP/echo.txt")"
echo "remotemedia-server (log=$LOG_LEVEL): $R calls/s  runs: $(tr '\n' ' ' <"$TMP/rm.txt")"
echo "  same, --pipeline-cache=false:  $N calls/s  runs: $(tr '\n' ' ' <"$TMP/nocache.txt")"
awk -v r="$R" -v e="$E" 'BEGIN {printf "ratio: %.1f %% of the echo baseline\n", 100 * r / e}'
awk -v n="$N" -v e="$E" -v r="$R" 'BEGIN {
  printf "ratio, cache off: %.1f %% of the echo baseline\n", 100 * n / e
  printf "pipeline cache on/off: %.2f (%+.1f %% calls/s with the cache)\n", r / n, 100 * (r - n) / n }'
