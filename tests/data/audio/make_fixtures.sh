#!/bin/sh
# make_fixtures.sh - regenerates the small audio fixtures committed beside it. The WAV files
# are written by Python's standard library (no libsndfile involved), FLAC by the reference
# `flac` encoder and Ogg Vorbis by `oggenc` (Debian: flac, vorbis-tools), so decoding them
# tests AudioDecode against independent encoders. Contents (all sines start at phase 0):
#   sine_1k_48k_mono.wav          PCM16, 48 kHz, 1 ch, 0.5 s, 1 kHz at 0.5 peak
#   sine_440_16k_stereo_pcm24.wav PCM24, 16 kHz, 2 ch, 0.25 s, 440 Hz at 0.5 (R = -L)
#   sine_1k_8k_mono_pcm32.wav     PCM32, 8 kHz, 1 ch, 0.5 s, 1 kHz at 0.5
#   sine_1k_16k_mono_float.wav    IEEE float32, 16 kHz, 1 ch, 0.25 s, 1 kHz at 0.5
#   sine_1k_22k05_stereo.flac     FLAC 16-bit, 22.05 kHz, 2 ch, 0.5 s, 1 kHz at 0.5 (R = -L)
#   sine_1k_16k_mono_24bit.flac   FLAC 24-bit, 16 kHz, 1 ch, 0.25 s, 1 kHz at 0.5
#   sine_1k_48k_stereo.ogg        Ogg Vorbis q4, 48 kHz, 2 ch, 1 s, 1 kHz at 0.5 (R = -L)
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import math, struct, sys, wave
tmp = sys.argv[1]

def sine(freq, rate, secs, ch, amp=0.5):
    n = int(round(secs * rate))
    out = []
    for i in range(n):
        v = amp * math.sin(2 * math.pi * freq * i / rate)
        out.append([v, -v][:ch] if ch == 2 else [v])
    return out

def pcm(path, frames, rate, width):
    scale = 2 ** (8 * width - 1)
    with wave.open(path, "wb") as w:
        w.setnchannels(len(frames[0])); w.setsampwidth(width); w.setframerate(rate)
        data = bytearray()
        for fr in frames:
            for v in fr:
                q = max(-scale, min(scale - 1, int(round(v * scale))))
                data += q.to_bytes(width, "little", signed=True)
        w.writeframes(bytes(data))

def float_wav(path, frames, rate):
    ch = len(frames[0])
    data = b"".join(struct.pack("<f", v) for fr in frames for v in fr)
    fmt = struct.pack("<HHIIHH", 3, ch, rate, rate * ch * 4, ch * 4, 32)
    fact = struct.pack("<I", len(frames))
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + \
        struct.pack("<I", 4) + fact + b"data" + struct.pack("<I", len(data)) + data
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)

pcm("sine_1k_48k_mono.wav", sine(1000, 48000, 0.5, 1), 48000, 2)
pcm("sine_440_16k_stereo_pcm24.wav", sine(440, 16000, 0.25, 2), 16000, 3)
pcm("sine_1k_8k_mono_pcm32.wav", sine(1000, 8000, 0.5, 1), 8000, 4)
float_wav("sine_1k_16k_mono_float.wav", sine(1000, 16000, 0.25, 1), 16000)
pcm(tmp + "/flac16.wav", sine(1000, 22050, 0.5, 2), 22050, 2)
pcm(tmp + "/flac24.wav", sine(1000, 16000, 0.25, 1), 16000, 3)
pcm(tmp + "/ogg.wav", sine(1000, 48000, 1.0, 2), 48000, 2)
PY
flac -s -f -8 --no-padding -o sine_1k_22k05_stereo.flac "$tmp/flac16.wav"
flac -s -f -8 --no-padding -o sine_1k_16k_mono_24bit.flac "$tmp/flac24.wav"
oggenc -Q -q 4 -o sine_1k_48k_stereo.ogg "$tmp/ogg.wav"
ls -l
