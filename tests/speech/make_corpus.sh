#!/bin/sh
# make_corpus.sh - synthesizes the speech corpus of the speech-node tests and benchmark:
# utterances (target talkers) and babble talkers with espeak-ng, resampled by sox to 8, 16
# and 48 kHz as 32-bit float WAV (no dither, so every run writes the same bytes).
#   make_corpus.sh OUTDIR
# Writes OUTDIR/{utt,bab}_NN_<rate>.wav and OUTDIR/stamp; does nothing when OUTDIR/stamp
# matches this script (the corpus is cached in the build tree). Mixing with noise, pauses
# and ground truth are done in C (tests/speech/corpus.c) from fixed seeds.
set -eu
out=${1:?usage: make_corpus.sh OUTDIR}
self=$0
sum=$(cksum <"$self" | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$sum" ]; then
  exit 0
fi
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || {
    echo "make_corpus: $tool is missing (scripts/install-deps.sh installs it)" >&2
    exit 1
  }
done
mkdir -p "$out"
rm -f "$out/stamp"
tmp="$out/tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# say NAME VOICE WORDS_PER_MINUTE TEXT: one utterance at every rate.
say() {
  espeak-ng -v "$2" -s "$3" -w "$tmp/$1.wav" "$4"
  for rate in 8000 16000 48000; do
    sox -v 0.5 "$tmp/$1.wav" -e floating-point -b 32 "$out/$1_$rate.wav" rate -h "$rate"
  done
}

# Target talkers: four voices (two English, German, Spanish), rates 130-190 wpm.
say utt_00 en 160 "The quick brown fox jumps over the lazy dog."
say utt_01 en+f3 175 "Please call Stella and ask her to bring these things with her from the store."
say utt_02 de 140 "Guten Morgen, wie geht es dir heute? Das Wetter ist wirklich schön."
say utt_03 en-us+m3 190 "Six spoons of fresh snow peas, five thick slabs of blue cheese."
say utt_04 es+f2 150 "El perro de San Roque no tiene rabo porque Ramón Ramírez se lo ha cortado."
say utt_05 en 130 "We also need a small plastic snake and a big toy frog for the kids."
say utt_06 en+f3 150 "She can scoop these things into three red bags, and we will go meet her."
say utt_07 de 165 "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich."
say utt_08 en-us+m3 145 "Yes."
say utt_09 es+f2 180 "La música y la lluvia llenan la tarde de silencio."
say utt_10 en 175 "A large fawn jumped quickly over white zinc boxes, then stopped."
say utt_11 en+f3 140 "Thank you, that is all for today."

# Babble talkers: other voices, languages and texts, summed by the mixer.
say bab_00 fr+m7 170 "Le vif renard brun saute par-dessus le chien paresseux. Il fait beau aujourd'hui et nous allons au marché acheter des pommes."
say bab_01 it+f4 160 "Ma la volpe, col suo balzo, ha raggiunto il quieto Fido. Domani andiamo al mare con tutta la famiglia."
say bab_02 en-gb-x-rp+m2 155 "Pack my box with five dozen liquor jugs. The museum opens at nine and closes late on Thursdays."
say bab_03 nl+f1 165 "Pa's wijze lynx bezag vroom het fikse aquaduct. Wij gaan morgen naar de stad met de trein."
say bab_04 pt+m4 150 "Um pequeno jabuti xereta viu dez cegonhas felizes. Amanhã vamos ao parque com os amigos."
say bab_05 en-us+f5 185 "How vexingly quick daft zebras jump. The train leaves from platform four in ten minutes."

echo "$sum" >"$out/stamp"
