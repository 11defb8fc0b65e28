#!/usr/bin/python3
"""Writes the seed corpus (corpus/<Type>/) and dictionary (dict/<Type>.dict) of each node
type's fuzz target (fuzz_node.c gives the input layout) from the registry's schema. Run from
the repository root after a build:
    /usr/bin/python3 tests/fuzz/make_node_corpus.py build/python_gen/remotemedia/node_schema.json
Seeds are small on purpose (tens of milliseconds of audio): libFuzzer grows them."""
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KIND = {"audio": 0, "tensor": 1, "json": 2, "text": 3, "binary": 4}
FMT = {"f32": (1, "<f"), "i16": (2, "<h"), "i32": (3, "<i"), "f64": (4, "<d")}
RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 96000]
# Types whose empty-audio seed still fails a sanitizer build (pending/README.md): none now
# (Denoise's NULL + 0 was fixed, test_denoise_empty_audio_null_offset).
PENDING_EMPTY = set()
MIMES = {None: 0, "audio/wav": 1, "audio/flac": 2, "audio/ogg": 3}


def seed(kind, params, payload, chunks=1, b1=0, b2=0, budget=12, metrics=0, fan_in=0):
    b0 = KIND[kind] | (chunks - 1) << 3 | metrics << 5 | fan_in << 6
    return bytes([b0, b1, b2, budget]) + json.dumps(params).encode() + b"\0" + payload


def tone(frames, fmt="f32", channels=1, rate=16000, freq=440.0, amp=0.3):
    code, pack = FMT[fmt]
    scale = {"i16": 32767, "i32": 2**31 - 1}.get(fmt, 1)
    out = bytearray()
    for i in range(frames):
        v = amp * math.sin(2 * math.pi * freq * i / rate)
        for c in range(channels):
            x = v * (1 if c == 0 else 0.5)
            out += struct.pack(pack, int(x * scale) if scale != 1 else x)
    return bytes(out)


def audio_seed(params, frames=320, fmt="f32", channels=1, rate=16000, **kw):
    b1 = (FMT[fmt][0] - 1) | (channels - 1) << 2
    return seed("audio", params, tone(frames, fmt, channels, rate), b1=b1, b2=RATES.index(rate), **kw)


def opus_stream(rate=16000, channels=1, packets=3):
    head = b"RMOP" + bytes([1, channels]) + struct.pack(">HII", 312, rate, rate // 50)
    body = b"".join(struct.pack(">H", 1) + bytes([0x08 if rate <= 16000 else 0xF8]) for _ in range(packets))
    return head + body + struct.pack(">HII", 0, 0, packets * rate // 50)


def seeds_for(t):
    name, params = t["name"], t["params"]
    in_kinds = t["inputs"][0]["kinds"] if t["inputs"] else []
    variants = [{}]
    for p in params:
        for v in p.get("enum_values") or []:
            variants.append({p["name"]: v})
        if p["type"] in ("number", "integer") and p.get("has_maximum") and p.get("has_minimum"):
            variants.append({p["name"]: p["minimum"]})
    required = {p["name"] for p in params if p["required"] and p["default_json"] == ""}
    if name == "AudioResample":
        variants = [dict(v, rate=v.get("rate", 8000)) for v in variants] + [{"rate": 48000, "channels": 2}]
    if name == "AudioFormat":
        variants = [v for v in variants if "format" in v]
    if name == "Chunk":
        variants += [{"frames": 100, "partial": "pad"}, {"frames": 7}]
    if name == "Spectrogram" or name == "MelSpectrogram":
        variants += [{"n_fft": 64, "hop": 16}, {"n_fft": 128, "center": False}]
    if name == "Mixer":
        variants += [{"gains_db": [0, -6]}]
    variants = [v for v in variants if required <= set(v)]
    out = []
    if "audio" in in_kinds:
        for i, v in enumerate(variants):
            fmt = ["f32", "i16", "i32", "f64"][i % 4]
            out.append(audio_seed(v, fmt=fmt, channels=1 + (i % 3 == 2)))
        out.append(audio_seed(variants[0], chunks=3, frames=960))
        out.append(audio_seed(variants[0], rate=48000, channels=2, frames=480, metrics=1))
        if name not in PENDING_EMPTY:
            out.append(audio_seed(variants[0], frames=0))
        if t["inputs"][0]["variadic"]:
            out.append(audio_seed(variants[-1], fan_in=1, chunks=2))
    if name == "Calculator":
        for op in ["add", "subtract", "multiply", "divide", "power", "modulo", "min", "max", "mean"]:
            out.append(seed("json", {}, json.dumps({"operation": op, "operands": [7, 3, 2]}).encode()))
    if name == "AudioDecode":
        data_dir = os.path.join(ROOT, "tests", "data", "audio")
        for f, mime in [("sine_1k_8k_mono_pcm32.wav", "audio/wav"), ("sine_1k_16k_mono_24bit.flac", "audio/flac"),
                        ("sine_1k_22k05_stereo.flac", None), ("sine_1k_48k_stereo.ogg", "audio/ogg")]:
            with open(os.path.join(data_dir, f), "rb") as fh:
                blob = fh.read()
            if f.endswith(".wav"):
                blob = blob[:44 + 800]  # a short WAV: the header's data size is larger than what follows
            out.append(seed("binary", {}, blob, b2=MIMES[mime]))
        out.append(seed("binary", {"format": "wav", "max_seconds": 0.01}, b"RIFF\x24\0\0\0WAVEfmt ", b2=1))
    if name == "OpusDecode":
        out.append(seed("binary", {}, opus_stream()))
        out.append(seed("binary", {"rate": 48000, "channels": 2}, opus_stream(48000, 2), chunks=2))
        out.append(seed("binary", {"format": "i16"}, opus_stream(8000)))
    if name in ("PassThrough", "Delay"):
        out.append(seed("json", {}, b'{"a": [1, 2, {"b": null}]}'))
        out.append(seed("text", {}, "héllo".encode()))
        out.append(seed("binary", {}, b"\0\1\2\3", b2=1))
        out.append(seed("tensor", {}, struct.pack("<6f", *range(6)), b1=0 | 1 << 3, b2=2))
        if name == "PassThrough":
            out.append(audio_seed({}, fan_in=1))
    return out


def dictionary(t):
    words = ['"{"', '"}"', '":"', '","', '"["', '"]"', '"true"', '"false"', '"null"', '"0"', '"-1"',
             '"1e308"', '"-1e308"', '"0.5"', '"65536"', '"4294967296"', '"9223372036854775807"']
    for p in t["params"]:
        words.append('"\\"%s\\""' % p["name"])
        for v in p.get("enum_values") or []:
            words.append('"\\"%s\\""' % v)
        for k in ("minimum", "maximum"):
            if p.get("has_" + k):
                words.append('"%s"' % json.dumps(p[k]))
    if t["name"] == "Calculator":
        words += ['"\\"operation\\""', '"\\"operands\\""'] + ['"\\"%s\\""' % op for op in
                  ["add", "subtract", "multiply", "divide", "power", "modulo", "min", "max", "mean"]]
    if t["name"] == "AudioDecode":
        words += ['"RIFF"', '"WAVE"', '"fmt "', '"data"', '"fLaC"', '"OggS"', '"\\x01vorbis"', '"RF64"']
    if t["name"] == "OpusDecode":
        words += ['"RMOP\\x01"', '"\\x00\\x00\\xff\\xff\\xff\\xff"']
    return "# %s: its param keys and values, and JSON tokens (make_node_corpus.py)\n" % t["name"] + \
        "".join("%s\n" % w for w in dict.fromkeys(words))


def main():
    schema = json.load(open(sys.argv[1]))
    for t in schema["node_types"]:
        d = os.path.join(HERE, "corpus", t["name"])
        os.makedirs(d, exist_ok=True)
        for i, s in enumerate(seeds_for(t)):
            with open(os.path.join(d, "seed_%02d" % i), "wb") as f:
                f.write(s)
        os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
        with open(os.path.join(HERE, "dict", t["name"] + ".dict"), "w") as f:
            f.write(dictionary(t))


if __name__ == "__main__":
    main()
