#!/usr/bin/python3
"""Writes the seed corpus for the fuzz targets: valid requests for every node type and a
few malformed ones. Run from the repository root with the build's stubs:
    PYTHONPATH=build/python_gen /usr/bin/python3 tests/fuzz/make_corpus.py"""
import io
import json
import os
import wave

import numpy as np

from remotemedia.v1 import pipeline_service_pb2 as ps

HERE = os.path.dirname(os.path.abspath(__file__))


def request(nodes, conns=(), inputs=None, metrics=True):
    req = ps.ExecuteRequest(enable_metrics=metrics)
    req.manifest.name = "fuzz"
    for nid, ntype, params in nodes:
        req.manifest.nodes.add(id=nid, node_type=ntype, params=json.dumps(params) if params else "")
    for a, b in conns:
        c = req.manifest.connections.add()
        setattr(c, "from", a)
        c.to = b
    for nid, buf in (inputs or {}).items():
        req.inputs[nid].CopyFrom(buf)
    return req


def audio(samples, rate=16000, channels=1):
    from remotemedia.v1 import data_pb2
    b = data_pb2.DataBuffer()
    fmt = {np.dtype(np.float32): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float64): 4}
    b.audio.samples = samples.tobytes()
    b.audio.sample_rate, b.audio.channels, b.audio.format = rate, channels, fmt[samples.dtype]
    return b


def json_buf(v):
    from remotemedia.v1 import data_pb2
    b = data_pb2.DataBuffer()
    b.json.json = json.dumps(v)
    return b


def binary(data, mime=""):
    from remotemedia.v1 import data_pb2
    b = data_pb2.DataBuffer()
    b.binary.data, b.binary.mime_type = data, mime
    return b


def wav_bytes(x, rate=16000):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return out.getvalue()


def main():
    t = np.arange(1600) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    src = ("src", "PassThrough", None)
    cases = {
        "gain_chain": request([src, ("g", "Gain", {"db": 6}), ("f", "AudioFormat", {"format": "i16"})],
                              [("src", "g"), ("g", "f")], {"src": audio(tone)}),
        "mix_stereo": request([src, ("st", "ChannelMix", {"mode": "stereo"}), ("mono", "ChannelMix", {})],
                              [("src", "st"), ("st", "mono")], {"src": audio(tone)}),
        "chunk_pad": request([src, ("c", "Chunk", {"frames": 100, "partial": "pad"})], [("src", "c")],
                             {"src": audio(tone[:1050])}),
        "calculator": request([("calc", "Calculator", None)], (),
                              {"calc": json_buf({"operation": "divide", "operands": [1, 3]})}),
        "resample": request([src, ("rs", "AudioResample", {"rate": 8000, "quality": "quick"})],
                            [("src", "rs")], {"src": audio(tone)}),
        "decode": request([("d", "AudioDecode", None)], (), {"d": binary(wav_bytes(tone), "audio/wav")}),
        "encode_flac": request([src, ("e", "AudioEncode", {"container": "flac"})], [("src", "e")],
                               {"src": audio(tone)}),
        "loudness": request([src, ("n", "LoudnessNormalize", {}), ("m", "LoudnessMeter", {})],
                            [("src", "n"), ("n", "m")], {"src": audio(np.tile(tone, 5))}),
        "vad": request([src, ("v", "VAD", {"speech_audio": True})], [("src", "v")], {"src": audio(tone)}),
        "denoise": request([src, ("dn", "Denoise", {})], [("src", "dn")], {"src": audio(tone)}),
        "opus": request([src, ("oe", "OpusEncode", {}), ("od", "OpusDecode", {})],
                        [("src", "oe"), ("oe", "od")], {"src": audio(tone)}),
        "spectra": request([src, ("s", "Spectrogram", {"n_fft": 256}), ("mel", "MelSpectrogram", {"n_mels": 20})],
                           [("src", "s"), ("src", "mel")], {"src": audio(tone)}),
        "trim_mix": request([("a", "PassThrough", None), ("b", "PassThrough", None), ("t", "SilenceTrim", {}),
                             ("mx", "Mixer", {"gains_db": [0, -6]})],
                            [("a", "t"), ("t", "mx"), ("b", "mx")],
                            {"a": audio(np.concatenate([np.zeros(800, np.float32), tone])), "b": audio(tone)}),
        "delay": request([src, ("d", "Delay", {"ms": 1})], [("src", "d")], {"src": audio(tone[:10])}),
        "cycle": request([("a", "Gain", None), ("b", "Gain", None)], [("a", "b"), ("b", "a")]),
        "bad_params": request([src, ("g", "Gain", {"db": "x"})], [("src", "g")], {"src": audio(tone)}),
        "i32_f64": request([src, ("f", "AudioFormat", {"format": "f64"})], [("src", "f")],
                           {"src": audio((tone * 2**30).astype(np.int32))}),
    }
    out_dir = os.path.join(HERE, "corpus", "execute")
    os.makedirs(out_dir, exist_ok=True)
    for name, req in cases.items():
        with open(os.path.join(out_dir, name + ".pb"), "wb") as f:
            f.write(req.SerializeToString())
    man_dir = os.path.join(HERE, "corpus", "manifest")
    os.makedirs(man_dir, exist_ok=True)
    manifests = {
        "chain": {"name": "c", "nodes": [{"id": "a", "node_type": "PassThrough"},
                                          {"id": "g", "node_type": "Gain", "params": {"db": -3}}],
                  "connections": [{"from": "a", "to": "g"}]},
        "ports": {"nodes": [{"id": "a", "node_type": "PassThrough"},
                            {"id": "v", "node_type": "VAD", "params": "{\"speech_audio\": true}"},
                            {"id": "p", "node_type": "PassThrough"}],
                  "connections": [{"from": "a", "to": "v"}, {"from": "v", "to": "p", "from_port": "speech"}]},
        "unknown_key": {"nodes": [], "extra": 1},
    }
    for name, m in manifests.items():
        with open(os.path.join(man_dir, name + ".json"), "w") as f:
            json.dump(m, f)
    with open(os.path.join(man_dir, "truncated.json"), "w") as f:
        f.write('{"nodes": [{"id": "a", "node_ty')


if __name__ == "__main__":
    main()
