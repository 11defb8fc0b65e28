"""The issue's example end to end against a real server: Gain and AudioResample chained with
add_node, run with asyncio and synchronously, and the seed-form metrics dict."""
import numpy as np
import pytest

from conftest import arun, sine
from remotemedia import AudioBuffer, Pipeline, RemoteConfig
from remotemedia.nodes import Gain, PassThrough

HALF_DB = -6.0206  # 20*log10(0.5) = -6.02060: halves the amplitude

SEED_KEYS = ["pipeline_id", "total_executions", "total_duration_us", "total_duration_ms",
             "peak_memory_bytes", "peak_memory_mb", "metrics_overhead_us", "node_metrics"]
SEED_NODE_KEYS = ["node_id", "execution_count", "success_count", "error_count", "success_rate",
                  "total_duration_us", "avg_duration_us", "min_duration_us", "max_duration_us"]


def test_gain_halves_amplitude(remote):
    x = sine(4800, 48000)
    pipeline = Pipeline(remote=remote, enable_metrics=True)
    assert pipeline.add_node(Gain(db=HALF_DB)) is pipeline

    async def main():
        try:
            return await pipeline.run(x, sample_rate=48000)
        finally:
            await pipeline.close()
    out = arun(main())
    assert isinstance(out, AudioBuffer)
    assert (out.sample_rate, out.channels, out.frames, out.format) == (48000, 1, 4800, "f32")
    np.testing.assert_allclose(out.samples, x * 0.5, rtol=0, atol=1e-6)
    assert np.max(np.abs(out.samples)) == pytest.approx(0.25, abs=1e-6)


def test_add_node_chains_by_default(remote):
    pipeline = Pipeline(remote=remote)
    pipeline.add_node(Gain(db=HALF_DB)).add_node(Gain(db=HALF_DB)).add_node(PassThrough())
    assert [n.id for n in pipeline.nodes] == ["gain", "gain_2", "pass_through"]
    assert [(c.source, c.target) for c in pipeline.connections] == [("gain", "gain_2"),
                                                                    ("gain_2", "pass_through")]
    x = sine(1000, 16000)
    out = pipeline.run_sync(x, sample_rate=16000)
    pipeline.close_sync()
    np.testing.assert_allclose(out.samples, x * 0.25, rtol=0, atol=1e-6)


def test_issue_example_with_resample(remote, server_types):
    if "AudioResample" not in server_types:
        pytest.skip("the server does not list AudioResample (media nodes not built in)")
    from remotemedia.nodes import AudioResample
    # exactly the issue's lines, the address aside
    pipeline = Pipeline(remote=RemoteConfig(remote.address, token=None), enable_metrics=True)
    pipeline.add_node(Gain(db=-6)).add_node(AudioResample(target_rate=16000))   # chains by default
    audio = AudioBuffer(sine(48000, 48000, freq=440.0), 48000)

    async def main():
        try:
            return await pipeline.run(audio)
        finally:
            await pipeline.close()
    result = arun(main())
    assert isinstance(result, AudioBuffer)
    assert (result.sample_rate, result.channels, result.format) == (16000, 1, "f32")
    assert result.frames == 16000  # round(48000 * 16000 / 48000), exact
    m = pipeline.get_metrics()
    assert [n["node_id"] for n in m["node_metrics"]] == ["gain", "audio_resample"]
    # the resampled 440 Hz tone keeps its frequency and the -6 dB level (10^(-6/20))
    spectrum = np.abs(np.fft.rfft(result.samples[1000:15000].astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / 14000
    assert abs(peak_hz - 440.0) <= 16000 / 14000
    rms = np.sqrt(np.mean(result.samples[1000:15000].astype(np.float64) ** 2))
    assert rms == pytest.approx(0.5 * 10 ** (-6 / 20) / np.sqrt(2), rel=1e-2)


def test_resample_with_server_param_name(remote, server_types):
    if "AudioResample" not in server_types:
        pytest.skip("the server does not list AudioResample (media nodes not built in)")
    from remotemedia.nodes import AudioResample
    with Pipeline(remote=remote) as pipeline:
        pipeline.add_node(AudioResample(rate=8000, node_id="rs"))
        out = pipeline.run_sync(sine(44100, 44100, dtype=np.int16, amp=10000), sample_rate=44100)
    assert (out.sample_rate, out.frames, out.format) == (8000, 8000, "i16")


def test_metrics_dict_has_the_seed_keys(remote):
    with Pipeline("metrics-check", remote=remote, enable_metrics=True) as pipeline:
        pipeline.add_node(PassThrough(node_id="src")).add_node(Gain(db=HALF_DB, node_id="g"))
        x = sine(48000, 48000)
        result = pipeline.execute_sync(x, sample_rate=48000)
        m = pipeline.get_metrics()
    assert m is result.metrics
    assert list(m) == SEED_KEYS
    assert m["pipeline_id"] == "metrics-check"
    assert m["total_executions"] == 1  # pipeline runs covered: this request's one
    assert m["total_duration_us"] > 0
    assert m["total_duration_ms"] == pytest.approx(m["total_duration_us"] / 1000, rel=1e-9)
    assert m["peak_memory_bytes"] >= 2 * x.nbytes  # the input and Gain's output both live
    assert m["peak_memory_mb"] == pytest.approx(m["peak_memory_bytes"] / 2**20, rel=1e-9)
    assert m["metrics_overhead_us"] > 0
    assert [n["node_id"] for n in m["node_metrics"]] == ["src", "g"]
    for n in m["node_metrics"]:
        assert list(n) == SEED_NODE_KEYS
        assert (n["execution_count"], n["success_count"], n["error_count"]) == (1, 1, 0)
        assert n["success_rate"] == 1.0
        assert n["total_duration_us"] > 0
        assert 0 < n["min_duration_us"] <= n["avg_duration_us"] <= n["max_duration_us"]
        assert n["avg_duration_us"] == pytest.approx(n["total_duration_us"] / n["execution_count"])
    assert sum(n["total_duration_us"] for n in m["node_metrics"]) <= m["total_duration_us"]
    assert [r["node_id"] for r in result.node_results] == ["src", "g"]
    assert all(r["state"] == "ok" and r["invocations"] == 1 for r in result.node_results)
    np.testing.assert_allclose(result.output("g").samples, x * 0.5, atol=1e-6)


def test_metrics_of_a_node_invoked_per_chunk(remote):
    from remotemedia.nodes import Chunk
    with Pipeline(remote=remote, enable_metrics=True) as pipeline:
        pipeline.add_node(Chunk(frames=100, node_id="c")).add_node(Gain(db=0, node_id="g"))
        result = pipeline.execute_sync(sine(1000, 8000), sample_rate=8000)
    m = result.metrics
    by_id = {n["node_id"]: n for n in m["node_metrics"]}
    assert by_id["g"]["execution_count"] == 10 == by_id["g"]["success_count"]
    assert by_id["c"]["success_rate"] == 1.0
    assert by_id["g"]["min_duration_us"] <= by_id["g"]["avg_duration_us"] <= by_id["g"]["max_duration_us"]
    assert m["total_executions"] == 1
    assert by_id["c"]["execution_count"] == 1
    assert sum(n["total_duration_us"] for n in m["node_metrics"]) <= m["total_duration_us"]
    assert len(result.outputs["g"]) == 10


def test_metrics_are_none_when_off(remote):
    with Pipeline(remote=remote) as pipeline:
        pipeline.add_node(Gain(db=0))
        assert pipeline.get_metrics() is None
        result = pipeline.execute_sync(sine(10, 8000), sample_rate=8000)
        assert result.metrics is None
        assert pipeline.get_metrics() is None
        assert not result.response.HasField("metrics")


def test_a_failed_run_leaves_no_metrics(remote):
    """get_metrics() after a run that raised is None, not the previous run's figures."""
    from remotemedia import InvalidArgument
    from remotemedia.nodes import AudioResample
    with Pipeline(remote=remote, enable_metrics=True) as pipeline:
        pipeline.add_node(AudioResample(rate=16000))
        pipeline.run_sync(sine(480, 48000), sample_rate=48000)
        assert pipeline.get_metrics()["total_executions"] == 1
        with pytest.raises(InvalidArgument):
            pipeline.run_sync(sine(480, 4000), sample_rate=4000)  # below AudioResample's 8 kHz
        assert pipeline.get_metrics() is None

        async def again():
            with pytest.raises(InvalidArgument):
                await pipeline.run(sine(480, 4000), sample_rate=4000)
            return pipeline.get_metrics()
        pipeline.run_sync(sine(480, 48000), sample_rate=48000)
        assert arun(again()) is None



def test_a_run_failing_before_sending_leaves_no_metrics(remote):
    """Regression (P1): a run refused client-side (int8 audio, an unknown limits key) left
    the previous run's metrics in get_metrics(); the docs promise None after a run that
    raised."""
    from remotemedia.nodes import AudioResample
    with Pipeline(remote=remote, enable_metrics=True) as pipeline:
        pipeline.add_node(AudioResample(rate=16000))
        pipeline.run_sync(sine(480, 48000), sample_rate=48000)
        assert pipeline.get_metrics()["total_executions"] == 1
        with pytest.raises(TypeError, match="must be float32, int16, int32 or float64, not int8"):
            pipeline.run_sync(np.zeros(4, np.int8), sample_rate=48000)
        assert pipeline.get_metrics() is None
        pipeline.run_sync(sine(480, 48000), sample_rate=48000)
        with pytest.raises(ValueError, match="^unknown limits: bogus$"):
            pipeline.run_sync(sine(480, 48000), sample_rate=48000, limits={"bogus": 1})
        assert pipeline.get_metrics() is None

        async def again():
            with pytest.raises(ValueError, match="^unknown limits: bogus$"):
                await pipeline.execute(sine(480, 48000), sample_rate=48000, limits={"bogus": 1})
            return pipeline.get_metrics()
        pipeline.run_sync(sine(480, 48000), sample_rate=48000)
        assert arun(again()) is None

def test_health_and_version(remote):
    with Pipeline(remote=remote) as pipeline:
        assert pipeline.health_check_sync() == "SERVING"
        assert arun(pipeline.health_check()) == "SERVING"
        v = arun(pipeline.get_version())
    assert v["protocol_version"] == "1.0"
    assert "remotemedia.v1.PipelineService" in v["services"]
    assert "grpc.health.v1.Health" in v["services"]


def test_health_watch(remote):
    from remotemedia import Client, NotFound

    async def main():
        async with Client(remote) as c:
            watch = c.watch_health()
            first = await watch.__anext__()
            await watch.aclose()
            with pytest.raises(NotFound):
                await c.health_check("no.such.Service")
            return first, await c.health_check("remotemedia.v1.PipelineService")
    assert arun(main()) == ("SERVING", "SERVING")
