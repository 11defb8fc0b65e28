#!/bin/sh
# test_remotemedia_run.sh - runs remotemedia-run (the alias of `remotemedia run`) on the
# shipped examples and checks what it prints, the files it writes and its exit status.
#   usage: test_remotemedia_run.sh path/to/remotemedia-run SOURCE_DIR
# RM_RUN_WRAPPER (e.g. a valgrind command line) is put in front of every run.
set -u
RUN=$1
SRC=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run EXPECTED_STATUS ARGS...: runs the runner from SRC, output in $tmp/out and $tmp/err
run() {
  want=$1
  shift
  # shellcheck disable=SC2086
  (cd "$SRC" && ${RM_RUN_WRAPPER:-} "$RUN" "$@") >"$tmp/out" 2>"$tmp/err"
  got=$?
  if [ "$got" != "$want" ]; then
    fail "remotemedia-run $*: exit $got, expected $want"
    sed 's/^/  stdout: /' "$tmp/out" >&2
    sed 's/^/  stderr: /' "$tmp/err" >&2
  fi
}

# has FILE LINE: FILE holds exactly this line
has() {
  grep -Fqx -- "$2" "$1" || {
    fail "$(basename "$1") lacks the line: $2"
    sed 's/^/  got: /' "$1" >&2
  }
}

# contains FILE TEXT: some line of FILE contains TEXT
contains() {
  grep -Fq -- "$2" "$1" || {
    fail "$(basename "$1") lacks: $2"
    sed 's/^/  got: /' "$1" >&2
  }
}

wav=tests/data/audio/sine_1k_48k_mono.wav # 0.5 s, 1 kHz, i16, peak 0.5

# remotemedia-run is `remotemedia run`: stdout is the run's JSON document (indented by 2),
# with --metrics the per-node table on stderr, with --metrics-json the seed's metrics in it.
# ITEM_AUDIO: the lines describing the -6 dB output of the sine (AudioFormat keeps i16).
item_audio() { # peak
  for l in '"kind": "audio",' '"sample_rate": 48000,' '"channels": 1,' '"format": "i16",' \
    '"frames": 24000,'; do
    contains "$tmp/out" "$l"
  done
  contains "$tmp/out" "\"peak\": $1"
}

# ---- the local runner on the example pipeline (README "Local runner")
run 0 examples/gain_chain.json --input src=$wav --metrics
has "$tmp/out" '  "pipeline": "gain_chain",'
has "$tmp/out" '    "pcm16": ['
item_audio 0.25
contains "$tmp/err" "pipeline gain_chain: 1 execution(s) in "
for node in src gain pcm16; do
  grep -Eq "^$node +1 +1 +0 +100.0%" "$tmp/err" || fail "metrics table: no row for $node"
done

# ---- --metrics-json: the seed's keys, once each, in the document
run 0 examples/gain_chain.json --metrics-json --input src=$wav
for key in pipeline_id total_executions total_duration_us total_duration_ms peak_memory_bytes \
  peak_memory_mb metrics_overhead_us node_metrics; do
  [ "$(grep -c "^    \"$key\": " "$tmp/out")" = 1 ] || fail "metrics: top-level key $key not once"
done
for key in node_id execution_count success_count error_count success_rate total_duration_us \
  avg_duration_us min_duration_us max_duration_us; do
  [ "$(grep -c "^        \"$key\": " "$tmp/out")" = 3 ] || fail "metrics: node key $key not 3 times"
done
has "$tmp/out" '    "pipeline_id": "gain_chain",'
has "$tmp/out" '    "total_executions": 1,'
# the i16 input (48000 bytes) and Gain's i16 output (48000) are held at once; AudioFormat
# passes Gain's buffer on without a copy
has "$tmp/out" '    "peak_memory_bytes": 96000,'
has "$tmp/out" '        "node_id": "src",'
has "$tmp/out" '        "node_id": "gain",'
has "$tmp/out" '        "node_id": "pcm16",'
[ "$(grep -c '"success_rate": 1.0,' "$tmp/out")" = 3 ] || fail "metrics: success_rate not 1.0 x3"
# reals in their shortest form: no 17-digit noise
grep -Eq '[0-9]\.[0-9]{16}' "$tmp/out" && fail "a real printed with 17 digits"

# ---- WAV out, and back in: the written file is the output
run 0 examples/gain_chain.json --input src=$wav --output-dir "$tmp/wav"
item_audio 0.25
contains "$tmp/out" "\"file\": \"$tmp/wav/pcm16.wav\""
[ "$(wc -c <"$tmp/wav/pcm16.wav")" = 48044 ] || fail "pcm16.wav is not 44 + 24000 * 2 bytes"
run 0 examples/gain_chain.json --input "src=$tmp/wav/pcm16.wav"
item_audio 0.125

# ---- the calculator example
run 0 examples/calculator.json --input calc=examples/calculator_request.json --output-dir "$tmp/calc"
has "$tmp/out" '          "result": 2.5'
contains "$tmp/out" "\"file\": \"$tmp/calc/result.json\""
has "$tmp/calc/result.json" '{"operation":"mean","operands":[1,2,3,4],"result":2.5}'

printf '{"operation": "divide", "operands": [1, 0]}' >"$tmp/div0.json"
run 1 examples/calculator.json --input "calc=$tmp/div0.json" --metrics
has "$tmp/err" "remotemedia: error: INVALID_ARGUMENT kind=node_failed node=calc field=operands: node 'calc' (Calculator): division by zero (operands[1] is 0)"

# ---- pipeline errors: exit 1, status, kind and message
run 1 examples/gain_chain.json
has "$tmp/err" "remotemedia: error: INVALID_ARGUMENT kind=invalid_input node=src field=inputs: node 'src' has no input: a node without incoming connections needs one in the request's inputs"
run 1 examples/gain_chain.json --input ghost=$wav
has "$tmp/err" "remotemedia: error: INVALID_ARGUMENT kind=invalid_input field=inputs: input for node 'ghost': the pipeline has no such node"
run 1 examples/gain_chain.json --input src=examples/calculator_request.json
contains "$tmp/err" "kind=invalid_input node=gain"
contains "$tmp/err" "node 'gain' (Gain): input from 'src' is json, but port 'in' accepts audio"
printf '{"nodes": [{"id": "g", "node_type": "Gain", "params": {"db": 99}}]}' >"$tmp/m.json"
run 1 "$tmp/m.json" --input g=$wav
has "$tmp/err" "remotemedia: error: INVALID_ARGUMENT kind=invalid_params node=g field=db: node 'g' param 'db': 99 is out of range [-120, 60]"

# ---- files that cannot be used: exit 2 (usage), naming the file
run 2 examples/missing.json --input src=$wav
has "$tmp/err" "remotemedia: examples/missing.json: unable to open examples/missing.json: No such file or directory"
run 2 examples/gain_chain.json --input src=tests/data/audio/none.wav
contains "$tmp/err" "tests/data/audio/none.wav"
head -c 20000 "$SRC/$wav" >"$tmp/cut.wav" # the header announces 24000 frames, 9978 are there
run 2 examples/gain_chain.json --input "src=$tmp/cut.wav"
has "$tmp/err" "remotemedia: audio file $tmp/cut.wav is truncated (9978 frames, its header says more)"
printf '{"operation": ' >"$tmp/bad.json"
run 2 examples/calculator.json --input "calc=$tmp/bad.json"
contains "$tmp/err" "$tmp/bad.json is not valid JSON: "

# ---- a document that cannot be written is not a success: exit 2, one line (stdout full)
if [ -w /dev/full ]; then
  # shellcheck disable=SC2086
  (cd "$SRC" && ${RM_RUN_WRAPPER:-} "$RUN" examples/gain_chain.json --input src=$wav) \
    >/dev/full 2>"$tmp/err"
  got=$?
  [ "$got" = 2 ] || fail "remotemedia-run with stdout on /dev/full: exit $got, expected 2"
  grep -v '^==[0-9]*==' "$tmp/err" >"$tmp/err.own"
  [ "$(wc -l <"$tmp/err.own")" = 1 ] || fail "stdout on /dev/full: not one error line"
  has "$tmp/err.own" "remotemedia: cannot write stdout: No space left on device"
fi

# ---- usage errors: exit 2
run 2
run 2 examples/gain_chain.json --bogus
contains "$tmp/err" "unknown option '--bogus'"
run 2 examples/gain_chain.json --input src
contains "$tmp/err" "--input wants NODE=FILE, not 'src'"
run 2 examples/gain_chain.json --input src=notes.xyz
contains "$tmp/err" "cannot tell the type of notes.xyz"
run 2 examples/gain_chain.json examples/calculator.json
run 0 --help
contains "$tmp/out" "usage: remotemedia run MANIFEST.json"

if [ "$failures" != 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "remotemedia-run: all checks passed"
