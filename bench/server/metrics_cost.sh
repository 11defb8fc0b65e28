#!/bin/sh
# metrics_cost.sh - what the observability costs (1-node PassThrough, 100-byte input, h2load):
# three servers of the same binary, runs interleaved, medians -
#   on:  Prometheus endpoint on and scraped every second (counters on),
#   off: endpoint off (counters on, the default),
#   cut: counters cut out (RM_BENCH_NO_COUNTERS=1, a benchmark switch: no counting and none of
#        the clock readings taken only for the counters),
# and optionally another build (BASE). One polling thread pinned to CPU 0; h2load on CPU 1.
# Reported: calls/s and server CPU time per call (the threads' run time from
# /proc/PID/task/*/schedstat, which a busy machine disturbs less than calls/s), with the
# per-round ratios' median and spread (the rounds are interleaved, so a ratio within a round
# sees the same load). INSTR=1 adds the instructions per call with the counters on and cut,
# counted with callgrind: they do not move with the load (a clock reading counts as the few
# instructions of its vDSO code, not its ~30 ns).
# Usage: bench/server/metrics_cost.sh [build-dir] [base-build-dir]   (env RUNS, REQS, INSTR)
set -eu
BUILD=${1:-build}
BASE=${2:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
H2LOAD="taskset -c 1 h2load"
. "$ROOT/bench/server/common.sh"

start() { # binary log-file extra-options...   (env: CUT=1 cuts the counters)
  bin=$1; log=$2; shift 2
  RM_BENCH_NO_COUNTERS=${CUT:-0} taskset -c 0 "$bin" --listen 127.0.0.1:0 --threads 1 --workers 1 --log-level "$LOG_LEVEL" \
    "$@" 2>"$log" &
  PIDS="$PIDS $!"
  echo $! >"$log.pid"
}
# CPU time of every thread of the process in ns (/proc/PID/task/*/schedstat, first field):
# the tick counts of /proc/PID/stat resolve 10 ms, too coarse for a 1 % difference
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }

start "$BUILD/server/remotemedia-server" "$TMP/on.log" --metrics-listen 127.0.0.1:0
start "$BUILD/server/remotemedia-server" "$TMP/off.log"
CUT=1
start "$BUILD/server/remotemedia-server" "$TMP/cut.log"
CUT=0
ON=$(wait_port "$TMP/on.log")
OFF=$(wait_port "$TMP/off.log")
CUTP=$(wait_port "$TMP/cut.log")
cp "$TMP/on.log.pid" "$TMP/$ON.pid"
cp "$TMP/off.log.pid" "$TMP/$OFF.pid"
cp "$TMP/cut.log.pid" "$TMP/$CUTP.pid"
MPORT=$(grep -o '"metrics_port":[0-9]*' "$TMP/on.log" | cut -d: -f2)
ports="$ON $OFF $CUTP"
if [ -n "$BASE" ]; then
  start "$BASE/server/remotemedia-server" "$TMP/base.log"
  BP=$(wait_port "$TMP/base.log")
  cp "$TMP/base.log.pid" "$TMP/$BP.pid"
  ports="$ports $BP"
fi
# a scraper, as Prometheus would be (every second, on CPU 1 with h2load)
(while :; do taskset -c 1 curl -s -o /dev/null "http://127.0.0.1:$MPORT/metrics"; sleep 1; done) &
PIDS="$PIDS $!"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for p in $ports; do load "$p" >/dev/null; done # warm up
round=0
for _ in $(seq 1 "$RUNS"); do # interleaved so drift hits all alike; the order alternates
  round=$((round + 1))
  order=$ports
  [ $((round % 2)) -eq 0 ] && order=$(echo "$ports" | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}')
  for p in $order; do
    t0=$(cpu_ns "$(cat "$TMP/$p.pid")")
    load "$p" >>"$TMP/$p.txt"
    t1=$(cpu_ns "$(cat "$TMP/$p.pid")")
    awk -v a="$t0" -v b="$t1" -v n="$REQS" 'BEGIN {printf "%.3f\n", (b - a) / n / 1e3}' \
      >>"$TMP/$p.cpu"
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
set -- $ports
# per-round ratios a/b of the lines of two files -> "median (min .. max)"
ratios() { paste "$1" "$2" | awk '{print $1 / $2}' | sort -n |
  awk '{a[NR]=$1} END {printf "%.4f (%.4f .. %.4f)", a[int((NR+1)/2)], a[1], a[NR]}'; }
line() { # label port
  echo "$1 $(median <"$TMP/$2.txt") calls/s, CPU $(median <"$TMP/$2.cpu") us/call" \
    " runs: $(tr '\n' ' ' <"$TMP/$2.txt")| cpu: $(tr '\n' ' ' <"$TMP/$2.cpu")"
}
echo "metrics_cost: $RUNS interleaved rounds of $REQS calls; load average $load_start at start," \
  "$load_end at the end"
line "endpoint on, scraped every 1 s:" "$1"
line "endpoint off (counters on):    " "$2"
line "counters cut out:              " "$3"
echo "per-round ratios, median (min .. max):"
echo "  calls/s  on/off $(ratios "$TMP/$1.txt" "$TMP/$2.txt")   off/cut $(ratios "$TMP/$2.txt" "$TMP/$3.txt")   on/cut $(ratios "$TMP/$1.txt" "$TMP/$3.txt")"
echo "  CPU/call on/off $(ratios "$TMP/$1.cpu" "$TMP/$2.cpu")   off/cut $(ratios "$TMP/$2.cpu" "$TMP/$3.cpu")   on/cut $(ratios "$TMP/$1.cpu" "$TMP/$3.cpu")"
if [ -n "$BASE" ]; then
  line "base build ($BASE):" "$4"
  echo "  calls/s  off/base $(ratios "$TMP/$2.txt" "$TMP/$4.txt")   CPU/call off/base $(ratios "$TMP/$2.cpu" "$TMP/$4.cpu")"
fi
if [ "${INSTR:-0}" = 1 ]; then
  # instructions of a server process for n calls; two counts cancel start-up and shutdown
  count() { # cut n
    RM_BENCH_NO_COUNTERS=$1 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$1.$2" \
      "$BUILD/server/remotemedia-server" --listen 127.0.0.1:0 --threads 1 --workers 1 \
      --log-level "$LOG_LEVEL" 2>"$TMP/cg.$1.$2.log" &
    pid=$!
    h2load_grpc "$(wait_port "$TMP/cg.$1.$2.log")" -n "$2" -c 4 -m 32 -t 1 >/dev/null
    kill -TERM $pid; wait $pid || true
    grep -h '^summary:' "$TMP/cg.$1.$2" | awk '{s += $2} END {print s}'
  }
  per_call() { a=$(count "$1" 1000); b=$(count "$1" 6000); echo $(((b - a) / 5000)); }
  I_ON=$(per_call 0)
  I_CUT=$(per_call 1)
  awk -v a="$I_ON" -v b="$I_CUT" 'BEGIN {printf "instructions per call (callgrind): counters on %d, cut %d, difference %d (%+.2f %%)\n", a, b, a - b, 100 * (a - b) / b}'
fi
