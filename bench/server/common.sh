# common.sh - sourced by the server benchmarks (BUILD set by the caller): the run-size
# defaults (RUNS, REQS, CONC, STREAMS, LOG_LEVEL), a temporary directory TMP removed at exit
# with the servers listed in PIDS killed; checks for h2load, writes the request body to
# $TMP/req.bin and defines wait_port, h2load_grpc, load and median.

RUNS=${RUNS:-7}
REQS=${REQS:-200000}
CONC=${CONC:-4}
STREAMS=${STREAMS:-32}
LOG_LEVEL=${LOG_LEVEL:-warn}
TMP=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; rm -rf "$TMP"' EXIT

command -v h2load >/dev/null || { echo "h2load missing: RM_EXTRA_PACKAGES=1 scripts/install-deps.sh" >&2; exit 2; }

# The request body: gRPC framing (flag + 4-byte length) around an ExecuteRequest with a
# 1-node PassThrough pipeline and a 100-byte input.
PYTHONPATH="$BUILD/python_gen" /usr/bin/python3 - "$TMP/req.bin" <<'PY'
import struct, sys
from remotemedia.v1 import pipeline_service_pb2 as ps
req = ps.ExecuteRequest()
req.manifest.name = "bench"
req.manifest.nodes.add(id="p", node_type="PassThrough")
req.inputs["p"].binary.data = bytes(100)
body = req.SerializeToString()
open(sys.argv[1], "wb").write(struct.pack(">BI", 0, len(body)) + body)
PY

wait_port() { # log-file -> the port the server printed (servers under valgrind start slowly)
  for _ in $(seq 1 400); do
    p=$(grep -o '"port":[0-9]*' "$1" 2>/dev/null | head -1 | cut -d: -f2)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.05
  done
  echo "server did not start" >&2; exit 1
}

h2load_grpc() { # port h2load-options... -> h2load's report, ExecutePipeline with req.bin
  port=$1; shift                             # (H2LOAD may put a command in front, e.g. taskset)
  ${H2LOAD:-h2load} "$@" -H 'content-type: application/grpc' -H 'te: trailers' -d "$TMP/req.bin" \
    "http://127.0.0.1:$port/remotemedia.v1.PipelineService/ExecutePipeline"
}

# One h2load run of REQS calls (CONC connections, STREAMS streams each) -> calls/s.
load() { # port -> calls/s
  h2load_grpc "$1" -n "$REQS" -c "$CONC" -m "$STREAMS" -t 1 2>/dev/null |
    awk '/^finished in/ {gsub(",", "", $4); print $4}'
}

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
