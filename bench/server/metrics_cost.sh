#!/bin/sh
# metrics_cost.sh - what the observability costs in unary calls/s (1-node PassThrough,
# 100-byte input, h2load): remotemedia-server with its Prometheus endpoint on and scraped
# every second, the same with the endpoint off, and optionally another build (BASE, e.g. one
# from before the counters existed), interleaved runs, medians. One polling thread pinned to
# CPU 0; h2load on CPU 1. Also the server CPU time per call (user + system, from /proc),
# which a busy machine disturbs less than calls/s. Usage: bench/server/metrics_cost.sh [build-dir] [base-build-dir]
set -eu
BUILD=${1:-build}
BASE=${2:-}
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

start() { # binary log-file extra-options...
  bin=$1; log=$2; shift 2
  taskset -c 0 "$bin" --listen 127.0.0.1:0 --threads 1 --workers 1 --log-level "$LOG_LEVEL" \
    "$@" 2>"$log" &
  PIDS="$PIDS $!"
  echo $! >"$log.pid"
}
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; } # utime + stime

start "$BUILD/server/remotemedia-server" "$TMP/on.log" --metrics-listen 127.0.0.1:0
start "$BUILD/server/remotemedia-server" "$TMP/off.log"
ON=$(wait_port "$TMP/on.log")
OFF=$(wait_port "$TMP/off.log")
cp "$TMP/on.log.pid" "$TMP/$ON.pid"
cp "$TMP/off.log.pid" "$TMP/$OFF.pid"
MPORT=$(grep -o '"metrics_port":[0-9]*' "$TMP/on.log" | cut -d: -f2)
ports="$ON $OFF"
if [ -n "$BASE" ]; then
  start "$BASE/server/remotemedia-server" "$TMP/base.log"
  BP=$(wait_port "$TMP/base.log")
  cp "$TMP/base.log.pid" "$TMP/$BP.pid"
  ports="$ports $BP"
fi
# a scraper, as Prometheus would be (every second, on CPU 1 with h2load)
(while :; do taskset -c 1 curl -s -o /dev/null "http://127.0.0.1:$MPORT/metrics"; sleep 1; done) &
PIDS="$PIDS $!"

for p in $ports; do load "$p" >/dev/null; done # warm up
for _ in $(seq 1 "$RUNS"); do                  # interleaved so drift hits all alike
  for p in $ports; do
    t0=$(cpu_ticks "$(cat "$TMP/$p.pid")")
    load "$p" >>"$TMP/$p.txt"
    t1=$(cpu_ticks "$(cat "$TMP/$p.pid")")
    awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v n="$REQS" \
      'BEGIN {printf "%.2f\n", (b - a) / hz / n * 1e6}' >>"$TMP/$p.cpu"
  done
done
set -- $ports
echo "(CPU-per-call lines: endpoint on, off, base, in that order)"
A=$(median <"$TMP/$1.txt"); B=$(median <"$TMP/$2.txt")
echo "endpoint on, scraped every 1 s: $A calls/s  runs: $(tr '\n' ' ' <"$TMP/$1.txt")"
echo "endpoint off:                   $B calls/s  runs: $(tr '\n' ' ' <"$TMP/$2.txt")"
awk -v a="$A" -v b="$B" 'BEGIN {printf "on/off: %.4f (%+.2f %%)\n", a / b, 100 * (a - b) / b}'
if [ -n "$BASE" ]; then
  C=$(median <"$TMP/$3.txt")
  echo "base build ($BASE):     $C calls/s  runs: $(tr '\n' ' ' <"$TMP/$3.txt")"
  awk -v a="$A" -v b="$B" -v c="$C" 'BEGIN {
    printf "off/base: %.4f (%+.2f %%: counters and request ids)\n", b / c, 100 * (b - c) / c
    printf "on/base:  %.4f (%+.2f %%)\n", a / c, 100 * (a - c) / c }'
fi
for p in $ports; do
  echo "server CPU per call (port $p): median $(median <"$TMP/$p.cpu") us  runs: $(tr '\n' ' ' <"$TMP/$p.cpu")"
done
