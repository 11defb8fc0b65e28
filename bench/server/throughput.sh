#!/bin/sh
# throughput.sh - unary calls/s of remotemedia-server (1-node PassThrough, 100-byte input)
# against a bare C-core echo server measured in the same run, both driven by h2load.
# Each server gets one polling thread pinned to CPU 0; h2load runs on CPU 1. Prints the
# median of RUNS runs and the ratio. Needs nghttp2-client (RM_EXTRA_PACKAGES=1
# scripts/install-deps.sh). Usage: bench/server/throughput.sh [build-dir]
set -eu
BUILD=${1:-build}
RUNS=${RUNS:-7}
REQS=${REQS:-200000}
CONC=${CONC:-4}
STREAMS=${STREAMS:-32}
LOG_LEVEL=${LOG_LEVEL:-warn}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; rm -rf "$TMP"' EXIT
H2LOAD="taskset -c 1 h2load"
. "$ROOT/bench/server/common.sh"

load() { # port -> calls/s
  h2load_grpc "$1" -n "$REQS" -c "$CONC" -m "$STREAMS" -t 1 2>/dev/null |
    awk '/^finished in/ {gsub(",", "", $4); print $4}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

taskset -c 0 "$BUILD/bench/server/echo_server" 127.0.0.1:0 2>"$TMP/echo.log" &
PIDS="$PIDS $!"
ECHO_PORT=$(wait_port "$TMP/echo.log")
taskset -c 0 "$BUILD/server/remotemedia-server" --listen 127.0.0.1:0 --threads 1 --workers 1 \
  --log-level "$LOG_LEVEL" 2>"$TMP/rm.log" &
PIDS="$PIDS $!"
RM_PORT=$(wait_port "$TMP/rm.log")

load "$ECHO_PORT" >/dev/null; load "$RM_PORT" >/dev/null  # warm up
: >"$TMP/echo.txt"; : >"$TMP/rm.txt"
for _ in $(seq 1 "$RUNS"); do   # interleaved so drift hits both alike
  load "$ECHO_PORT" >>"$TMP/echo.txt"
  load "$RM_PORT" >>"$TMP/rm.txt"
done
E=$(median <"$TMP/echo.txt"); R=$(median <"$TMP/rm.txt")
echo "echo server (bare C core):      $E calls/s  runs: $(tr '\n' ' ' <"$TMP/echo.txt")"
echo "remotemedia-server (log=$LOG_LEVEL): $R calls/s  runs: $(tr '\n' ' ' <"$TMP/rm.txt")"
awk -v r="$R" -v e="$E" 'BEGIN {printf "ratio: %.1f %% of the echo baseline\n", 100 * r / e}'
