"""Streaming sessions (StreamPipeline) from the Python client against a real server:
pipeline.stream over sync and async iterables, the session form (send / receive / flush /
close, receive timeouts), stream_sync, metrics after close in the seed's shape, equality
with the unary result, and errors raised as run() raises them (with the chunk's sequence)."""
import asyncio

import numpy as np
import pytest

from conftest import arun, sine
from remotemedia import (FLUSH, AudioBuffer, Binary, InvalidArgument, NotFound, Pipeline,
                         RemoteConfig, ResourceExhausted, StreamResult, StreamSession)
from remotemedia.nodes import Node
from remotemedia.pipeline import METRICS_KEYS, NODE_METRICS_KEYS

RATE = 48000
CHUNK = 960  # 20 ms
SIGNAL = sine(RATE, RATE)  # 1 s: 50 chunks
CHUNKS = [SIGNAL[i:i + CHUNK] for i in range(0, len(SIGNAL), CHUNK)]


def resampler(remote, metrics=False):
    p = Pipeline("rs-stream", remote=remote, enable_metrics=metrics)
    p.add_node(Node("AudioResample", {"rate": 16000}, node_id="rs"))
    return p


def joined(results, key="rs"):
    parts = [r.audio(key) for r in results]
    return np.concatenate([a.samples for a in parts if a is not None])


def check_sequence(results, n):
    assert [r.sequence for r in results] == list(range(1, n + 1)) + [n]
    assert [r.flushed for r in results] == [False] * n + [True]
    assert all(isinstance(r, StreamResult) for r in results)
    assert all(r.processing_ns > 0 for r in results[:n])


def test_stream_sync_iterable_equals_unary(remote):
    p = resampler(remote, metrics=True)

    async def main():
        out = [r async for r in p.stream(CHUNKS, sample_rate=RATE)]
        whole = await p.run(SIGNAL, sample_rate=RATE)
        await p.close()
        return out, whole
    results, whole = arun(main())
    check_sequence(results, len(CHUNKS))
    streamed = joined(results)
    assert streamed.shape == whole.samples.shape == (16000,)
    assert np.max(np.abs(streamed - whole.samples)) <= 1e-6
    m = p.get_metrics()  # the unary run's now: the session's were read before it
    assert list(m) == list(METRICS_KEYS)


def test_stream_metrics_after_close(remote):
    p = resampler(remote, metrics=True)

    async def main():
        out = [r async for r in p.stream(CHUNKS[:10], sample_rate=RATE)]
        await p.close()
        return out
    results = arun(main())
    check_sequence(results, 10)
    m = p.get_metrics()
    assert list(m) == list(METRICS_KEYS)
    assert m["pipeline_id"] == "rs-stream"
    assert m["total_executions"] == 11  # ten chunks and the closing flush
    assert [list(n) for n in m["node_metrics"]] == [list(NODE_METRICS_KEYS)]
    assert m["node_metrics"][0]["node_id"] == "rs"
    assert m["node_metrics"][0]["execution_count"] == 11


def test_stream_async_iterable_of_audio_buffers_with_flush(remote):
    p = resampler(remote)

    async def chunks():
        for i, c in enumerate(CHUNKS[:6]):
            if i == 3:
                yield FLUSH
            yield AudioBuffer(c, RATE)

    async def main():
        out = [r async for r in p.stream(chunks())]
        await p.close()
        return out
    results = arun(main())
    assert [(r.sequence, r.flushed) for r in results] == [
        (1, False), (2, False), (3, False), (3, True), (4, False), (5, False), (6, False),
        (6, True)]


def test_stream_sync_generator(remote):
    with resampler(remote, metrics=True) as p:
        results = list(p.stream_sync(iter(CHUNKS), sample_rate=RATE))
        whole = p.run_sync(SIGNAL, sample_rate=RATE)
    check_sequence(results, len(CHUNKS))
    assert np.max(np.abs(joined(results) - whole.samples)) <= 1e-6


def test_stream_sync_metrics(remote):
    with resampler(remote, metrics=True) as p:
        results = list(p.stream_sync(CHUNKS[:4], sample_rate=RATE))
        assert len(results) == 5
        assert p.get_metrics()["total_executions"] == 5


def test_session_form(remote):
    p = resampler(remote, metrics=True)

    async def main():
        async with p.session() as s:
            assert isinstance(s, StreamSession)
            assert s.pipeline_name == "rs-stream"
            assert len(s.session_id) > 0
            assert [(x.node_id, x.node_type, x.kinds) for x in s.sources] == [
                ("rs", "AudioResample", ["audio"])]
            with pytest.raises(asyncio.TimeoutError):
                await s.receive(timeout=0.05)  # nothing sent yet
            assert await s.send(CHUNKS[0], sample_rate=RATE) == 1
            first = await s.receive(timeout=60)  # the read that timed out, completed
            assert (first.sequence, first.flushed) == (1, False)
            assert await s.send(CHUNKS[1], sample_rate=RATE, sequence=10) == 10
            assert (await s.receive()).sequence == 10
            await s.flush()
            flushed = await s.receive()
            assert (flushed.sequence, flushed.flushed) == (10, True)
            assert await s.send(CHUNKS[2], sample_rate=RATE) == 11
            rest = await s.close()
            assert [(r.sequence, r.flushed) for r in rest] == [(11, False), (11, True)]
            assert await s.receive() is None
            with pytest.raises(RuntimeError):
                await s.send(CHUNKS[3], sample_rate=RATE)
            return s.metrics
    metrics = arun(main())
    assert metrics["total_executions"] == 5
    assert p.get_metrics() == metrics


def test_flush_error_is_flushed(remote):
    """A failed flush raises with .flushed and the last chunk's .sequence (LoudnessNormalize
    emits the whole stream at the close's flush, above max_audio_samples)."""
    from remotemedia import ResourceExhausted
    p = Pipeline("whole", remote=remote)
    p.add_node(Node("LoudnessNormalize", {}, node_id="ln"))
    chunks = [sine(4000, 16000, amp=0.1)] * 3

    async def main():
        return [r async for r in p.stream(chunks, sample_rate=16000,
                                          limits={"max_audio_samples": 5000})]
    with pytest.raises(ResourceExhausted) as ei:
        arun(main())
    e = ei.value
    assert (e.flushed, e.sequence, e.node_id, e.field) == (True, 3, "ln", "samples")
    assert e.message.startswith("flush after chunk 3: node 'ln' (LoudnessNormalize): ")


def test_flush_sequence_none_before_any_chunk(remote):
    """A flushed result's sequence is None when no chunk came before the flush, and 0 after
    chunk 0 (both used to be 0)."""
    p = resampler(remote)

    async def main():
        async with p.session() as s:
            await s.flush()
            before = await s.receive(timeout=60)
            assert await s.send(CHUNKS[0], sample_rate=RATE, sequence=0) == 0
            chunk = await s.receive(timeout=60)
            await s.flush()
            after = await s.receive(timeout=60)
            rest = await s.close()
        return [(r.sequence, r.flushed) for r in [before, chunk, after] + rest], repr(before)
    got, text = arun(main())
    assert got == [(None, True), (0, False), (0, True), (0, True)]
    assert text.startswith("StreamResult(sequence=None, flushed, outputs=")


def test_error_repeated_sequence(remote):
    p = resampler(remote)

    async def main():
        async with p.session() as s:
            await s.send(CHUNKS[0], sample_rate=RATE, sequence=5)
            await s.send(CHUNKS[1], sample_rate=RATE, sequence=5)
            assert (await s.receive()).sequence == 5
            await s.receive()
    with pytest.raises(InvalidArgument) as ei:
        arun(main())
    e = ei.value
    assert e.sequence == 5
    assert e.field == "sequence"
    assert "sequence 5" in e.message


def test_an_error_handled_inside_the_session_is_not_raised_again():
    """The server ends an idle session (DEADLINE_EXCEEDED); the send that finds it ended
    raises that once, the caller handles it, and leaving `async with` raises nothing."""
    from rmtest.server import RunningServer
    from remotemedia import DeadlineExceeded, RemoteConfig
    with RunningServer(["--session-idle-timeout-ms", "200"]) as srv:
        p = resampler(RemoteConfig(srv.address(), timeout=60))

        async def main():
            caught = []
            async with p.session() as s:
                await s.send(CHUNKS[0], sample_rate=RATE)
                assert (await s.receive()).sequence == 1
                srv.wait_for_event("call", 30, lambda e: e.get("method", "").endswith("/StreamPipeline"))
                for _ in range(100):  # the end reaches the client's call soon after
                    try:
                        await s.send(CHUNKS[1], sample_rate=RATE)
                    except DeadlineExceeded as e:
                        caught.append(e)
                        break
                    await asyncio.sleep(0.05)
            return caught
        caught = arun(main())
    assert len(caught) == 1 and caught[0].field == "session_idle_timeout_ms", caught


def test_error_bad_params_at_open(remote):
    p = Pipeline("bad", remote=remote)
    p.add_node(Node("AudioResample", {"rate": -5}, node_id="rs", validate=False))

    async def main():
        async for _ in p.stream(CHUNKS[:2], sample_rate=RATE):
            pass
    with pytest.raises(InvalidArgument) as ei:
        arun(main())
    assert ei.value.node_id == "rs"
    assert ei.value.field == "rate"
    with pytest.raises(InvalidArgument) as ei:
        list(p.stream_sync(CHUNKS[:2], sample_rate=RATE))
    assert ei.value.node_id == "rs"


def test_error_unknown_node_type(remote):
    p = Pipeline("bad", remote=remote)
    p.add_node(Node("NoSuchNode", {}, node_id="x", validate=False))
    with pytest.raises(NotFound) as ei:
        list(p.stream_sync(CHUNKS[:1], sample_rate=RATE))
    assert ei.value.node_id == "x"


def test_error_unknown_source(remote):
    p = resampler(remote)

    async def main():
        async for _ in p.stream(CHUNKS[:2], sample_rate=RATE, node_id="nope"):
            pass
    with pytest.raises(InvalidArgument) as ei:
        arun(main())
    assert "nope" in ei.value.message
    assert ei.value.sequence == 1


def test_local_error_in_chunks_is_raised(remote):
    """A chunk that cannot be converted raises its own error, and the session is cancelled."""
    p = resampler(remote)
    bad = CHUNKS[:2] + [np.zeros(4, dtype=np.float32)]  # a bare array without sample_rate

    async def main():
        async for _ in p.stream(bad):
            pass
    with pytest.raises(TypeError, match="sample_rate"):
        arun(main())
    with pytest.raises(TypeError, match="sample_rate"):
        list(p.stream_sync(bad))


def test_breaking_out_cancels(remote):
    p = resampler(remote)

    async def main():
        got = []
        async for r in p.stream(CHUNKS, sample_rate=RATE):
            got.append(r)
            if len(got) == 3:
                break
        # the pipeline (and its channel) stays usable
        again = [r async for r in p.stream(CHUNKS[:2], sample_rate=RATE)]
        await p.close()
        return got, again
    got, again = arun(main())
    assert [r.sequence for r in got] == [1, 2, 3]
    assert [r.sequence for r in again] == [1, 2, 2]


def test_readme_streaming_example(server):
    """The README's streaming block, run as written against the test server ($RM_SERVER)."""
    import os
    import re
    import subprocess
    from conftest import repo_root
    with open(os.path.join(repo_root(), "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"<!-- doc-test: stream -->\n```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 1
    env = dict(os.environ, RM_SERVER=server.address())
    p = subprocess.run(["/usr/bin/python3", "-c", blocks[0]], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert re.fullmatch(r"StreamResult\(sequence=50, flushed, outputs=\{'audio_resample': \d\}, "
                        r"processing_ns=\d+\)", lines[0]), lines[0]
    assert lines[1:] == ["16000", "51"]


def test_ghz_stream_recipe(remote, tmp_path):
    """docs/load-testing.md's ghz data file: written by its block, parsed back from JSON
    (as ghz does) and sent through one session: a result per chunk, then OK."""
    import json
    import os
    import re
    import subprocess
    from google.protobuf.json_format import ParseDict
    from conftest import repo_root
    from remotemedia import Client
    from remotemedia._proto import pipeline_service_pb2 as pb
    with open(os.path.join(repo_root(), "docs", "load-testing.md"), encoding="utf-8") as f:
        blocks = re.findall(r"<!-- doc-test: ghz-stream -->\n```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 1
    p = subprocess.run(["/usr/bin/python3", "-c", blocks[0]], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["52"]
    with open(tmp_path / "stream.json", encoding="utf-8") as f:
        msgs = [ParseDict(d, pb.StreamRequest()) for d in json.load(f)]
    assert [m.WhichOneof("message") for m in msgs] == ["init"] + ["data"] * 50 + ["control"]
    with Client(remote) as c:
        out = list(c.stream_sync(iter(msgs), timeout=60))
    kinds = [m.WhichOneof("message") for m in out]
    assert kinds == ["ready"] + ["result"] * 51
    assert [m.result.sequence for m in out[1:]] == list(range(1, 51)) + [50]
    assert out[-1].result.flushed


def test_a_failed_stream_leaves_no_metrics(remote):
    """Regression (P1): after a successful session, a stream that failed (at the server, or
    before sending) left that session's metrics in get_metrics(); it is None, as after a
    failed run."""
    p = resampler(remote, metrics=True)
    low = sine(480, 4000)  # below AudioResample's 8 kHz: the server refuses the chunk

    def ok_then(fail):
        list(p.stream_sync(CHUNKS[:2], sample_rate=RATE))
        assert p.get_metrics()["total_executions"] == 3
        fail()
        return p.get_metrics()

    with pytest.raises(InvalidArgument) as ei:
        ok_then(lambda: list(p.stream_sync([low], sample_rate=4000)))
    assert ei.value.node_id == "rs" and ei.value.sequence == 1
    assert p.get_metrics() is None
    with pytest.raises(ValueError, match="^unknown limits: bogus$"):
        ok_then(lambda: list(p.stream_sync(CHUNKS[:1], sample_rate=RATE, limits={"bogus": 1})))
    assert p.get_metrics() is None

    async def stream(chunks, rate, **kw):
        return [r async for r in p.stream(chunks, sample_rate=rate, **kw)]

    with pytest.raises(InvalidArgument):
        ok_then(lambda: arun(stream([low], 4000)))
    assert p.get_metrics() is None
    with pytest.raises(ValueError, match="^unknown limits: bogus$"):
        ok_then(lambda: arun(stream(CHUNKS[:1], RATE, limits={"bogus": 1})))
    assert p.get_metrics() is None

    async def session():
        async with p.session() as s:
            await s.send(low, sample_rate=4000)
            await s.receive()
    with pytest.raises(InvalidArgument):
        ok_then(lambda: arun(session()))
    assert p.get_metrics() is None

    async def periodic_then_error():
        async with p.session(metrics_every_chunks=1) as s:
            for chunk in CHUNKS[:2]:
                await s.send(chunk, sample_rate=RATE)
                await s.receive()
            assert p.get_metrics() is not None  # a periodic one
            await s.send(low, sample_rate=4000)
            await s.receive()
    with pytest.raises(InvalidArgument):
        arun(periodic_then_error())
    assert p.get_metrics() is None
    arun(p.close())


@pytest.mark.parametrize("case", ["cancelled", "left_early", "session_raised",
                                  "sync_left_early"])
def test_an_aborted_stream_leaves_no_metrics(remote, case):
    """Regression: a stream cut short kept its periodic metrics in get_metrics() - its
    consumer cancelled, the iteration left early (and the generator closed), an exception
    inside `async with session`, stream_sync left early; it is None, as after a run that
    raised."""
    p = resampler(remote, metrics=True)

    async def cancelled():
        reached = asyncio.Event()

        async def two_then_wait():
            for c in CHUNKS[:2]:
                yield c
            await asyncio.Event().wait()

        async def consume():
            async for r in p.stream(two_then_wait(), sample_rate=RATE, metrics_every_chunks=1):
                if r.sequence == 2:
                    reached.set()  # then waits inside stream() for a third result
        t = asyncio.ensure_future(consume())
        await asyncio.wait_for(reached.wait(), 60)
        periodic = p.get_metrics()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return periodic, p.get_metrics()

    async def left_early():
        gen = p.stream(CHUNKS, sample_rate=RATE, metrics_every_chunks=1)
        async for r in gen:
            if r.sequence == 2:
                break
        periodic = p.get_metrics()
        await gen.aclose()  # what `async for` leaves to the garbage collector
        return periodic, p.get_metrics()

    async def session_raised():
        with pytest.raises(KeyError):
            async with p.session(metrics_every_chunks=1) as s:
                for c in CHUNKS[:2]:
                    await s.send(c, sample_rate=RATE)
                    await s.receive()
                periodic = p.get_metrics()
                raise KeyError("the caller's")
        return periodic, p.get_metrics()

    def sync_left_early():
        gen = p.stream_sync(CHUNKS, sample_rate=RATE, metrics_every_chunks=1)
        for r in gen:
            if r.sequence == 2:
                break
        periodic = p.get_metrics()
        gen.close()
        return periodic, p.get_metrics()

    cases = {"cancelled": lambda: arun(cancelled()), "left_early": lambda: arun(left_early()),
             "session_raised": lambda: arun(session_raised()),
             "sync_left_early": sync_left_early}
    periodic, after = cases[case]()
    p.close_sync()
    assert periodic is not None and periodic["pipeline_id"] == "rs-stream"
    assert after is None


def test_a_run_that_raises_after_a_concurrent_one_leaves_no_metrics(remote):
    """Regression: run A in flight, run B of the same pipeline finishes and sets its
    metrics, then A raises (here: it is cancelled): get_metrics() kept B's metrics; after a
    run that raised it is None."""
    p = Pipeline("ab", remote=remote, enable_metrics=True)
    p.add_node(Node("Delay", {"ms": 60000}, node_id="d"))

    async def main():
        a = asyncio.ensure_future(p.run(CHUNKS[0], sample_rate=RATE, timeout=120))
        await asyncio.sleep(0)  # A's request (a minute's delay) is built and on its way
        p.node("d").params["ms"] = 0
        await p.run(CHUNKS[0], sample_rate=RATE)  # B
        b = p.get_metrics()
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        after = p.get_metrics()
        await p.close()
        return b, after
    b, after = arun(main())
    assert b is not None and b["total_executions"] == 1
    assert after is None


@pytest.mark.parametrize("call", ["send", "flush", "close", "close_send", "receive"])
def test_session_calls_before_open(remote, call):
    """Regression (P5): send/flush/close before open() raised AttributeError ('NoneType'
    object has no attribute 'write'); every call says what receive() says."""
    p = resampler(remote)
    s = p.session()
    args = (CHUNKS[0], RATE) if call == "send" else ()
    with pytest.raises(RuntimeError,
                       match=r"^the session is not open: use `async with` or await open\(\)$"):
        arun(getattr(s, call)(*args))
    arun(p.close())


def test_one_sample_rate_serves_a_stream_of_mixed_chunks(remote):
    """Regression: stream(chunks, sample_rate=) applied the rate rule to each chunk, so a JSON
    or text chunk among audio chunks raised ValueError, though any value run() accepts may
    be a chunk. run(inputs=...)'s rule holds across the stream: the rate serves every chunk
    that takes one, the others pass, and it must serve at least one (checked when the chunks
    end, before CLOSE)."""
    p = Pipeline(remote=remote)
    p.add_node(Node("PassThrough", node_id="pt"))
    chunks = [np.float32([0.5]), {"a": 1}, "hi", [0.25], FLUSH, b"\x00"]
    for results in (list(p.stream_sync(chunks, sample_rate=8000)),
                    arun(collect(p.stream(chunks, sample_rate=8000)))):
        assert [r.sequence for r in results if not r.flushed] == [1, 2, 3, 4, 5]
        outs = [r.outputs["pt"] for r in results if not r.flushed]
        assert [o.samples.tolist() for o in (outs[0][0], outs[3][0])] == [[0.5], [0.25]]
        assert (outs[0][0].sample_rate, outs[3][0].sample_rate) == (8000, 8000)
        assert [outs[1], outs[2], outs[4]] == [[{"a": 1}], ["hi"], [Binary(b"\x00")]]
    none = (r"^sample_rate=8000 was given, but none of the stream's 2 chunks is audio that "
            r"takes it$")
    with pytest.raises(ValueError, match=none):
        list(p.stream_sync([{"a": 1}, "hi"], sample_rate=8000))
    with pytest.raises(ValueError, match=none):
        arun(collect(p.stream([{"a": 1}, FLUSH, "hi"], sample_rate=8000)))
    with pytest.raises(ValueError, match=r"^sample_rate=8000 conflicts with the AudioBuffer's "
                       r"own rate 16000: give the rate once$"):
        list(p.stream_sync([np.float32([0.5]), AudioBuffer(np.float32([0.5]), 16000)],
                           sample_rate=8000))
    p.close_sync()


async def collect(aiter):
    return [r async for r in aiter]


@pytest.mark.parametrize("bad", [-1, 1.5, 2.0, True, "3", 2**64], ids=repr)
def test_a_bad_sequence_is_named_here(remote, bad):
    """Regression (QA 7): sequence=-1 gave protobuf's "Value out of range: -1"; 1.5 was sent
    as 1. Nothing is sent, and the session goes on."""
    p = resampler(remote)

    async def main():
        async with p.session() as s:
            with pytest.raises(ValueError) as e:
                await s.send(CHUNKS[0], sample_rate=RATE, sequence=bad)
            assert str(e.value) == ("sequence must be an integer 0..18446744073709551615, "
                                    "not %r" % (bad,))
            assert await s.send(CHUNKS[0], sample_rate=RATE,
                                sequence=np.uint64(2**64 - 1)) == 2**64 - 1
            assert (await s.receive()).sequence == 2**64 - 1
    arun(main())


def test_a_chunk_above_max_message_bytes_is_refused_here(remote):
    """QA 9's case for a session: gRPC refused the chunk itself (from_server=True); the
    client refuses it first, naming max_message_bytes. A session's send() goes on."""
    cfg = RemoteConfig(remote.address, timeout=60, max_message_bytes=100000)
    big, small = np.zeros(50000, np.float32), np.zeros(100, np.float32)
    p = Pipeline(remote=cfg)
    p.add_node(Node("PassThrough", node_id="pt"))

    def check(err, n):
        assert type(err) is ResourceExhausted
        assert err.message == ("chunk %d is 200025 bytes, above RemoteConfig.max_message_bytes "
                               "(100000): send smaller chunks" % n)
        assert (err.field, err.from_server) == ("max_message_bytes", False)

    with pytest.raises(ResourceExhausted) as e:
        list(p.stream_sync([small, big], sample_rate=16000))
    check(e.value, 2)

    async def main():
        with pytest.raises(ResourceExhausted) as e:
            [r async for r in p.stream([small, big], sample_rate=16000)]
        check(e.value, 2)
        async with p.session() as s:
            with pytest.raises(ResourceExhausted) as e:
                await s.send(big, sample_rate=16000)
            check(e.value, 1)
            assert await s.send(small, sample_rate=16000) == 1
            assert (await s.receive()).audio("pt").frames == 100
        await p.close()
    arun(main())
