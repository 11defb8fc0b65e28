#!/bin/sh
# run_nodes.sh - runs every node type's libFuzzer target (build-fuzz, -DRM_FUZZ=ON) for a
# while, two at a time under nice, each in fork mode so a crash is saved and the run goes on.
#   tests/fuzz/run_nodes.sh SECONDS_PER_TYPE OUT_DIR [TYPE...]
# OUT_DIR/<Type>/ gets the grown corpus, the crash/oom/timeout artifacts and log.txt, whose
# last "#N: cov: C ft: F" line is the type's figure. The committed corpus is only read:
# minimise OUT_DIR/<Type>/corpus into tests/fuzz/corpus/<Type> with -merge=1 afterwards.
set -eu
cd "$(dirname "$0")/../.."
secs=$1
out=$2
shift 2
types=${*:-"PassThrough Gain AudioFormat ChannelMix Chunk Calculator Delay AudioResample
  LoudnessMeter LoudnessNormalize AudioDecode AudioEncode OpusEncode OpusDecode Spectrogram
  MelSpectrogram VAD Denoise SilenceTrim Mixer"}
run_one() {
  t=$1
  mkdir -p "$out/$t/corpus" "$out/$t/artifacts"
  nice -n 10 "build-fuzz/tests/fuzz/fuzz_node_$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 \
    -ignore_timeouts=1 -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=256 \
    -timeout=10 -max_len=16384 -dict="tests/fuzz/dict/$t.dict" \
    -artifact_prefix="$out/$t/artifacts/" "$out/$t/corpus" "tests/fuzz/corpus/$t" \
    >"$out/$t/log.txt" 2>&1 || true
}
lane() {
  for t in "$@"; do
    run_one "$t"
  done
}
i=0
a=""
b=""
for t in $types; do
  if [ $((i % 2)) -eq 0 ]; then a="$a $t"; else b="$b $t"; fi
  i=$((i + 1))
done
# shellcheck disable=SC2086
lane $a &
# shellcheck disable=SC2086
lane $b
wait
