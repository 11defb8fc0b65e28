#!/bin/sh
# instructions.sh - CPU instructions the server spends per unary call (1-node PassThrough,
# 100-byte input), against the bare C-core echo server, counted with callgrind. Unlike
# calls/s this does not move with the load of a shared machine. Usage:
#   bench/server/instructions.sh [build-dir]      (CALLS=5000 by default)
set -eu
BUILD=${1:-build}
CALLS=${CALLS:-5000}
. "$(dirname "$0")/common.sh"

# count NAME CALLS -- command...: instructions of the process for CALLS calls
count() {
  name=$1; n=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$TMP/$name.$n.cg" "$@" 2>"$TMP/$name.$n.log" &
  pid=$!
  h2load_grpc "$(wait_port "$TMP/$name.$n.log")" -n "$n" -c 4 -m 32 -t 1 >/dev/null
  kill -TERM $pid; wait $pid || true
  grep -h '^summary:' "$TMP/$name.$n.cg" | awk '{s += $2} END {print s}'
}

# Two runs with different call counts: the difference cancels start-up and shutdown.
per_call() {
  name=$1; shift
  a=$(count "$name" 1000 "$@"); b=$(count "$name" "$CALLS" "$@")
  echo $(( (b - a) / (CALLS - 1000) ))
}

E=$(per_call echo "$BUILD/bench/server/echo_server" 127.0.0.1:0)
R=$(per_call rm "$BUILD/server/remotemedia-server" --listen 127.0.0.1:0 --threads 1 --workers 1 --log-level warn)
RI=$(per_call rmi "$BUILD/server/remotemedia-server" --listen 127.0.0.1:0 --threads 1 --workers 1 --log-level info)
RC=$(per_call rmc "$BUILD/server/remotemedia-server" --listen 127.0.0.1:0 --threads 1 --workers 1 --log-level warn --pipeline-cache=false)
echo "echo server (bare C core):        $E instructions/call"
echo "remotemedia-server (log=warn):    $R instructions/call"
echo "remotemedia-server (log=info):    $RI instructions/call"
echo "remotemedia-server (warn, cache off): $RC instructions/call"
awk -v r="$R" -v e="$E" 'BEGIN {printf "projected throughput at equal IPC: %.1f %% of the echo baseline (log=warn)\n", 100 * e / r}'
awk -v r="$RI" -v e="$E" 'BEGIN {printf "projected throughput at equal IPC: %.1f %% of the echo baseline (log=info)\n", 100 * e / r}'
awk -v r="$R" -v c="$RC" 'BEGIN {printf "compiled-pipeline cache: %.2fx fewer instructions per call with it on\n", c / r}'
