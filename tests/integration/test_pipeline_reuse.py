"""Heavy pipelines reused across calls: a worker keeps the compiled media chain of a big
request and runs the next identical manifest on it, and what it answers equals, byte for
byte, what a fresh server answers to the same request (other rates, channel counts and a
failed call in between)."""
import grpc
import numpy as np

from conftest import manifest, ps
from rmtest.server import RunningServer

ARGS = ["--workers", "1", "--log-level", "debug"]


def media_chain():
    """10 s style chain of the issue, shorter: resample to 16 kHz mono, then loudness, VAD
    and a spectrogram."""
    return manifest([("rs", "AudioResample", {"rate": 16000, "channels": 1}),
                     ("lm", "LoudnessMeter", {}),
                     ("vad", "VAD", {"speech_audio": True, "min_speech_ms": 0}),
                     ("sp", "Spectrogram", {"n_fft": 256})],
                    [("rs", "lm"), ("rs", "vad"), ("rs", "sp")], name="reuse")


def request(rate, channels, seconds, seed):
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)
    tone[: n // 5] = 0
    tone[-n // 5:] = 0
    x = np.repeat(tone[:, None], channels, axis=1) + 0.05 * rng.standard_normal((n, channels))
    req = ps.ExecuteRequest(manifest=media_chain())
    a = req.inputs["rs"].audio
    a.samples = x.astype(np.float32).tobytes()
    a.sample_rate = rate
    a.channels = channels
    a.format = 1
    return req


def outputs(resp):
    """Every output item's wire bytes, by key."""
    return {k: [item.SerializeToString() for item in v.items] for k, v in resp.outputs.items()}


def fresh(req):
    with RunningServer(ARGS) as srv, srv.channel() as ch:
        from remotemedia.v1 import pipeline_service_pb2_grpc as psg
        return outputs(psg.PipelineServiceStub(ch).ExecutePipeline(req, timeout=60))


def test_heavy_pipeline_is_reused_and_equals_a_fresh_one():
    from remotemedia.v1 import pipeline_service_pb2_grpc as psg
    first = request(48000, 2, 1.5, 1)        # above inline-max-bytes: runs on the worker
    other = request(44100, 1, 3.0, 2)        # another rate and channel count
    third = request(48000, 2, 1.2, 3)
    bad = request(48000, 2, 1.5, 4)
    bad.inputs["rs"].audio.sample_rate = 4000  # AudioResample refuses it
    with RunningServer(ARGS) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        stub.ExecutePipeline(first, timeout=60)
        got_other = outputs(stub.ExecutePipeline(other, timeout=60))
        try:
            stub.ExecutePipeline(bad, timeout=60)
            assert False, "a 4 kHz input must be refused"
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        got_third = outputs(stub.ExecutePipeline(third, timeout=60))
        assert srv.wait_for_count("pipeline_start", 4, 20, lambda e: e["pipeline"] == "reuse")
        starts = [e for e in srv.events("pipeline_start") if e["pipeline"] == "reuse"]
        # compiled once, then the worker's cached instance serves every later call
        assert [e["reused"] for e in starts] == [False, True, True, True]
    assert sorted(got_other) == ["lm", "sp", "vad", "vad.speech"]
    assert got_other == fresh(other)
    assert got_third == fresh(third)
