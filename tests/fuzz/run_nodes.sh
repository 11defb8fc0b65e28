#!/bin/sh
# run_nodes.sh - runs node types' libFuzzer targets (build-fuzz, -DRM_FUZZ=ON), two at a
# time under nice, each for its share of seconds; after a crash, leak, OOM or timeout the
# artifact is kept and the target starts again on its grown corpus until its time is up.
#   tests/fuzz/run_nodes.sh OUT_DIR Type:SECONDS...
# OUT_DIR/<Type>/ gets the grown corpus, the artifacts, log.txt (every session) and
# execs.txt (executions of each session). tests/fuzz/README.md says how to minimise the
# corpus into tests/fuzz/corpus/<Type>/ afterwards.
set -eu
cd "$(dirname "$0")/../.."
out=$1
shift
run_one() {
  t=${1%%:*}
  end=$(($(date +%s) + ${1##*:}))
  d="$out/$t"
  mkdir -p "$d/corpus" "$d/artifacts"
  sessions=0
  while [ "$(date +%s)" -lt "$end" ] && [ "$sessions" -lt 30 ]; do
    sessions=$((sessions + 1))
    left=$((end - $(date +%s)))
    nice -n 10 "build-fuzz/tests/fuzz/fuzz_node_$t" -max_total_time="$left" -rss_limit_mb=2048 \
      -malloc_limit_mb=256 -timeout=10 -max_len=16384 -print_final_stats=1 \
      -dict="tests/fuzz/dict/$t.dict" -artifact_prefix="$d/artifacts/" "$d/corpus" \
      "tests/fuzz/corpus/$t" >"$d/session.txt" 2>&1 || true
    cat "$d/session.txt" >>"$d/log.txt"
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/session.txt")
    [ -n "$n" ] || n=$(grep -a -o '^#[0-9]*' "$d/session.txt" | tail -1 | tr -d '#')
    echo "${n:-0}" >>"$d/execs.txt"
  done
}
lane() {
  for spec in "$@"; do
    run_one "$spec"
  done
}
a=""
b=""
i=0
for spec in "$@"; do
  if [ $((i % 2)) -eq 0 ]; then a="$a $spec"; else b="$b $spec"; fi
  i=$((i + 1))
done
# shellcheck disable=SC2086
lane $a &
# shellcheck disable=SC2086
lane $b
wait
