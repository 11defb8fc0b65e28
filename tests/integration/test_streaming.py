"""StreamPipeline end to end: sessions over the real server with raw grpcio stubs (protocol,
equivalence with one unary call, limits, flow control, memory, auth, drain)."""
import asyncio
import json
import os
import queue
import re
import signal
import threading
import time

import grpc
import numpy as np
import pytest

from conftest import audio_request, chain, f32, set_audio, trailers
from rmtest.server import RunningServer
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg
from google.rpc import error_details_pb2, status_pb2

CLOSE = ps.StreamControl.KIND_CLOSE
FLUSH = ps.StreamControl.KIND_FLUSH
DEADLINE = 120  # generous: the machine is shared
VALGRIND = bool(os.environ.get("RM_SERVER_WRAPPER"))


class Session:
    """One StreamPipeline call driven message by message from a queue."""

    def __init__(self, stub, init=None, metadata=None, timeout=DEADLINE, first=None):
        self.q = queue.Queue()
        self.sent = 0
        if first is not None:
            self.q.put(first)
        elif init is not None:
            self.q.put(ps.StreamRequest(init=init))
        self.call = stub.StreamPipeline(self._requests(), timeout=timeout, metadata=metadata)

    def _requests(self):
        while True:
            r = self.q.get()
            if r is None:
                return
            self.sent += 1
            yield r

    def recv(self):
        return next(self.call)

    def data(self, samples, seq, node="", rate=16000, channels=1):
        r = ps.StreamRequest()
        r.data.sequence = seq
        r.data.node_id = node
        set_audio(r.data.buffer, samples, rate=rate, channels=channels)
        self.q.put(r)

    def control(self, kind):
        self.q.put(ps.StreamRequest(control=ps.StreamControl(kind=kind)))

    def half_close(self):
        self.q.put(None)

    def rest(self):
        """Every remaining response, then the status (the call must end)."""
        out = list(self.call)
        return out, self.call.code()

    def error(self):
        """Reads until the call fails; returns the RpcError."""
        with pytest.raises(grpc.RpcError) as ei:
            while True:
                self.recv()
        self.half_close()
        return ei.value


def stub_for(srv):
    ch = srv.channel()
    return ch, psg.PipelineServiceStub(ch)


STREAM_METHOD = "/remotemedia.v1.PipelineService/StreamPipeline"


def is_session(e):
    """A session's `call` line (written once it released everything)."""
    return e.get("method") == STREAM_METHOD


def session_end(srv, session_id, timeout=30):
    ev = srv.wait_for_event("call", timeout, lambda e: is_session(e) and e.get("session_id") == session_id)
    assert ev is not None, "no call line for session %s" % session_id
    return ev


def session_ends(srv, count, timeout=60):
    assert srv.wait_for_count("call", count, timeout, is_session)
    return [e for e in srv.events("call") if is_session(e)]


def audio_chunks(x, frames):
    return [x[i:i + frames] for i in range(0, len(x), frames)]


def stream_all(stub, m, chunks, rate, channels=1, outputs=(), metrics=False):
    """One session over chunks; returns (ready, [results], [metrics], status)."""
    s = Session(stub, ps.StreamInit(manifest=m, enable_metrics=metrics, output_nodes=list(outputs)))
    ready = s.recv()
    assert ready.WhichOneof("message") == "ready"
    results = []
    for i, c in enumerate(chunks):
        s.data(c, i + 1, rate=rate, channels=channels)
        r = s.recv()
        assert r.WhichOneof("message") == "result"
        assert r.result.sequence == i + 1 and not r.result.flushed
        results.append(r.result)
    s.control(CLOSE)
    rest, code = s.rest()
    s.half_close()
    assert code == grpc.StatusCode.OK
    results += [r.result for r in rest if r.WhichOneof("message") == "result"]
    mets = [r.metrics for r in rest if r.WhichOneof("message") == "metrics"]
    return ready.ready, results, mets


def concat_audio(results, key):
    parts = [f32(it) for r in results if key in r.outputs for it in r.outputs[key].items]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def unary(stub, m, x, rate, channels=1, outputs=()):
    req = ps.ExecuteRequest(manifest=m, output_nodes=list(outputs))
    set_audio(req.inputs["src"], x, rate=rate, channels=channels)
    return stub.ExecutePipeline(req, timeout=DEADLINE)


def speechy(seconds, rate, seed=1):
    """Bursts of a harmonic tone over a quiet noise floor: clear segments for the VAD."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.001 * rng.standard_normal(t.size)
    for start in np.arange(0.5, seconds - 1, 1.7):
        on = (t >= start) & (t < start + 0.6 + 0.1 * (start % 3))
        x[on] += 0.3 * np.sin(2 * np.pi * 220 * t[on]) + 0.1 * np.sin(2 * np.pi * 660 * t[on])
    return x.astype(np.float32)


def sanitized(pid):
    """AddressSanitizer keeps freed memory in quarantine: RSS figures mean nothing there."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


@pytest.fixture(scope="module")
def srv():
    with RunningServer() as s:
        yield s


@pytest.fixture(scope="module")
def stub(srv):
    ch, st = stub_for(srv)
    yield st
    ch.close()


# ---------------------------------------------------------------- protocol


def test_init_ready_data_result_close(srv, stub):
    m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}), name="basic")
    s = Session(stub, ps.StreamInit(manifest=m, enable_metrics=True))
    ready = s.recv().ready
    assert ready.pipeline_name == "basic" and len(ready.session_id) == 32
    assert [(x.node_id, x.node_type, list(x.kinds)) for x in ready.sources] == \
        [("src", "PassThrough", [ps.DATA_KIND_AUDIO, ps.DATA_KIND_TENSOR, ps.DATA_KIND_JSON,
                                 ps.DATA_KIND_TEXT, ps.DATA_KIND_BINARY])]
    for seq in (1, 5, 9):  # gaps are allowed
        s.data(np.float32([0.25, -0.5, seq]), seq)
        r = s.recv().result
        assert r.sequence == seq and not r.flushed and r.processing_ns > 0
        np.testing.assert_array_equal(f32(r.outputs["g"].items[0]), np.float32([0.25, -0.5, seq]))
    s.control(FLUSH)
    r = s.recv().result
    assert r.flushed and r.sequence == 9
    s.data(np.float32([1]), 10)  # the session goes on after a flush
    assert s.recv().result.sequence == 10
    s.control(CLOSE)
    rest, code = s.rest()
    s.half_close()
    assert code == grpc.StatusCode.OK
    assert [x.WhichOneof("message") for x in rest] == ["result", "metrics"]
    assert rest[0].result.flushed and rest[0].result.sequence == 10
    met = rest[1].metrics
    assert met.final and met.metrics.pipeline_id == "basic"
    assert met.metrics.total_executions == 6  # 4 chunks and 2 flushes
    assert {n.node_id: n.execution_count for n in met.metrics.node_metrics} == {"src": 6, "g": 6} \
        or {n.node_id: n.execution_count for n in met.metrics.node_metrics} == {"src": 4, "g": 4}
    ev = session_end(srv, ready.session_id)
    assert (ev["status"], ev["chunks"]) == ("OK", 4)


def test_flush_sequence_is_unset_only_before_any_chunk(stub):
    """Regression: a flush after chunk 0 answered sequence 0, which docs/streaming.md said a
    flush before any chunk answers. StreamResult.sequence has presence now: set on every
    result (even to 0) but a flush's that no chunk came before."""
    m = chain(("src", "PassThrough", {}), ("c", "Chunk", {"frames": 1000, "partial": "keep"}))
    s = Session(stub, ps.StreamInit(manifest=m))
    s.recv()

    def result():
        r = s.recv().result
        return r.flushed, r.HasField("sequence"), r.sequence

    s.control(FLUSH)
    assert result() == (True, False, 0)  # no chunk yet: unset
    s.data(np.ones(300, np.float32), 0)  # sequences may start at 0
    assert result() == (False, True, 0)
    s.control(FLUSH)
    r = s.recv().result
    assert (r.flushed, r.HasField("sequence"), r.sequence) == (True, True, 0)
    assert f32(r.outputs["c"].items[0]).size == 300  # what chunk 0 left in Chunk
    s.data(np.ones(300, np.float32), 7)
    assert result() == (False, True, 7)
    s.control(FLUSH)
    assert result() == (True, True, 7)
    s.control(CLOSE)  # no chunk since the last flush: still the session's last one
    rest, code = s.rest()
    s.half_close()
    assert code == grpc.StatusCode.OK
    r = rest[0].result
    assert (r.flushed, r.HasField("sequence"), r.sequence) == (True, True, 7)


def test_periodic_metrics_every_n_chunks(stub):
    m = chain(("src", "PassThrough", {}), name="periodic")
    s = Session(stub, ps.StreamInit(manifest=m, enable_metrics=True, metrics_every_chunks=2))
    s.recv()
    kinds = []
    for seq in range(1, 6):
        s.data(np.float32([seq]), seq)
        kinds.append(s.recv().WhichOneof("message"))
        if seq % 2 == 0:
            msg = s.recv()
            assert msg.WhichOneof("message") == "metrics" and not msg.metrics.final
            assert msg.metrics.metrics.total_executions == seq
    assert kinds == ["result"] * 5
    s.control(CLOSE)
    rest, code = s.rest()
    s.half_close()
    assert code == grpc.StatusCode.OK and rest[-1].metrics.final


def test_no_metrics_unless_enabled(stub):
    m = chain(("src", "PassThrough", {}))
    s = Session(stub, ps.StreamInit(manifest=m, metrics_every_chunks=1))
    s.recv()
    s.data(np.float32([1]), 1)
    assert s.recv().WhichOneof("message") == "result"
    s.control(CLOSE)
    rest, code = s.rest()
    s.half_close()
    assert code == grpc.StatusCode.OK
    assert [x.WhichOneof("message") for x in rest] == ["result"]


def test_half_close_is_a_close(stub):
    m = chain(("src", "PassThrough", {}))
    s = Session(stub, ps.StreamInit(manifest=m))
    s.recv()
    s.data(np.float32([1]), 1)
    s.recv()
    s.half_close()
    rest, code = s.rest()
    assert code == grpc.StatusCode.OK
    assert [x.result.flushed for x in rest] == [True]


# ---------------------------------------------------------------- equivalence


def test_resample_vad_stream_equals_unary(stub):
    rate = 48000
    x = speechy(10, rate)
    m = chain(("src", "PassThrough", {}), ("rs", "AudioResample", {"rate": 16000}),
              ("vad", "VAD", {"mode": "energy", "frame_ms": 20}), name="rsvad")
    outs = ["rs", "vad"]
    u = unary(stub, m, x, rate, outputs=outs)
    whole = f32(u.outputs["rs"].items[0])
    segs_u = json.loads(u.outputs["vad"].items[0].json.json)
    assert len(segs_u) >= 4
    _, results, _ = stream_all(stub, m, audio_chunks(x, rate // 50), rate, outputs=outs)
    streamed = concat_audio(results, "rs")
    assert streamed.size == whole.size
    assert np.max(np.abs(streamed - whole)) <= 1e-6
    seg_items = [it for r in results if "vad" in r.outputs for it in r.outputs["vad"].items]
    assert len(seg_items) == 1 and results[-1].flushed  # segments come with the close
    segs_s = json.loads(seg_items[0].json.json)
    assert len(segs_s) == len(segs_u)
    for a, b in zip(segs_s, segs_u):  # within one 20 ms frame
        assert abs(a["start_ms"] - b["start_ms"]) <= 20 and abs(a["end_ms"] - b["end_ms"]) <= 20


def test_opus_stream_equals_unary(stub):
    rate = 48000
    x = speechy(4, rate, seed=2)
    m = chain(("src", "PassThrough", {}), ("enc", "OpusEncode", {}), ("dec", "OpusDecode", {}),
              name="opus")
    whole = f32(unary(stub, m, x, rate).outputs["dec"].items[0])
    _, results, _ = stream_all(stub, m, audio_chunks(x, rate // 50), rate)
    streamed = concat_audio(results, "dec")
    assert streamed.size == whole.size
    assert np.max(np.abs(streamed - whole)) <= 1e-6


def test_chunk_stream_equals_unary(stub):
    rate = 16000
    x = speechy(2, rate, seed=3)
    m = chain(("src", "PassThrough", {}), ("c", "Chunk", {"frames": 300, "partial": "keep"}))
    items_u = [f32(it) for it in unary(stub, m, x, rate).outputs["c"].items]
    _, results, _ = stream_all(stub, m, audio_chunks(x, rate // 50), rate)
    items_s = [f32(it) for r in results if "c" in r.outputs for it in r.outputs["c"].items]
    assert len(items_s) == len(items_u)
    for a, b in zip(items_s, items_u):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- violations


def clean_session(srv, stub):
    m = chain(("src", "PassThrough", {}), ("rs", "AudioResample", {"rate": 8000}))
    ready, _, _ = stream_all(stub, m, [np.zeros(1600, np.float32)] * 3, 16000)
    return session_end(srv, ready.session_id)["server_memory_used"]


def violation(stub, steps):
    """Runs init + steps on a resampling session, returns (session_id, error)."""
    m = chain(("src", "PassThrough", {}), ("rs", "AudioResample", {"rate": 8000}))
    s = Session(stub, ps.StreamInit(manifest=m))
    sid = s.recv().ready.session_id
    for step in steps:
        step(s)
    return sid, s.error()


def details(err):
    st = status_pb2.Status()
    st.ParseFromString(trailers(err)["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    st.details[0].Unpack(info)
    return dict(info.metadata)


def text_chunk(text, seq):
    r = ps.StreamRequest()
    r.data.sequence = seq
    r.data.buffer.text.text = text
    return r


def test_protocol_violations_end_with_their_status_and_free_the_session(srv, stub):
    base = clean_session(srv, stub)
    good = lambda seq: (lambda s: (s.data(np.zeros(160, np.float32), seq), s.recv()))  # noqa: E731
    cases = [
        ("second init", [lambda s: s.q.put(ps.StreamRequest(init=ps.StreamInit()))],
         grpc.StatusCode.INVALID_ARGUMENT, "a second init", None),
        ("repeated sequence", [good(4), lambda s: s.data(np.zeros(160, np.float32), 4)],
         grpc.StatusCode.INVALID_ARGUMENT, "chunk 4: sequence 4 is not above", "4"),
        ("sequence going back", [good(4), lambda s: s.data(np.zeros(160, np.float32), 3)],
         grpc.StatusCode.INVALID_ARGUMENT, "chunk 3: sequence 3 is not above", "3"),
        ("unknown source", [lambda s: s.data(np.zeros(160, np.float32), 1, node="nope")],
         grpc.StatusCode.INVALID_ARGUMENT, "chunk 1: node 'nope' is not a source node", "1"),
        ("not a source", [lambda s: s.data(np.zeros(160, np.float32), 1, node="rs")],
         grpc.StatusCode.INVALID_ARGUMENT, "chunk 1: node 'rs' is not a source node", "1"),
        ("bad chunk", [good(1), lambda s: s.data(np.zeros(160, np.float32), 2, rate=0)],
         grpc.StatusCode.INVALID_ARGUMENT, "chunk 2: input for node 'src'", "2"),
        ("rate change", [good(1), lambda s: s.data(np.zeros(160, np.float32), 2, rate=8000)],
         grpc.StatusCode.INVALID_ARGUMENT, "chunk 2: ", "2"),
        ("bad control", [lambda s: s.q.put(ps.StreamRequest(control=ps.StreamControl()))],
         grpc.StatusCode.INVALID_ARGUMENT, "control.kind must be", None),
        ("empty message", [lambda s: s.q.put(ps.StreamRequest())],
         grpc.StatusCode.INVALID_ARGUMENT, "carries none of", None),
        # protobuf-c would read the text as "a"
        ("string with NUL", [lambda s: s.q.put(text_chunk("a\x00b", 1))],
         grpc.StatusCode.INVALID_ARGUMENT,
         "string field 'data.buffer.text.text' holds a NUL byte at byte 1", None),
    ]
    for name, steps, code, text, seq in cases:
        sid, err = violation(stub, steps)
        assert err.code() == code, name
        assert text in err.details(), (name, err.details())
        t = trailers(err)
        if seq is None:
            assert "rm-sequence" not in t, name
        else:
            assert t["rm-sequence"] == seq, name
            assert details(err)["sequence"] == seq, name
        assert "rm-flushed" not in t and "flushed" not in details(err), name  # not a flush's
        ev = session_end(srv, sid)
        assert ev["status"] == code.name and ev["server_memory_used"] == base, (name, ev)


def test_data_before_init_and_init_errors(srv, stub):
    s = Session(stub, first=ps.StreamRequest(data=ps.StreamData(sequence=1)))
    err = s.error()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "data before init" in err.details()
    s = Session(stub, first=ps.StreamRequest(control=ps.StreamControl(kind=CLOSE)))
    assert s.error().code() == grpc.StatusCode.INVALID_ARGUMENT
    m = chain(("src", "PassThrough", {}), ("x", "NoSuchNode", {}))
    s = Session(stub, ps.StreamInit(manifest=m))
    assert s.error().code() == grpc.StatusCode.NOT_FOUND
    m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": "loud"}))
    err = Session(stub, ps.StreamInit(manifest=m)).error()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and trailers(err)["rm-failing-node"] == "g"
    m = chain(("src", "PassThrough", {}))
    err = Session(stub, ps.StreamInit(manifest=m, output_nodes=["zz"])).error()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "output_nodes[0]" in err.details()
    s = Session(stub, first=None)  # the client ends the stream before init
    s.half_close()
    err = s.error()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "before init" in err.details()


def test_several_sources_are_refused_at_init(srv, stub):
    """A chunk feeds one node and a run needs every source fed: a pipeline with several
    sources could never run a chunk, so init refuses it, naming them (it used to be accepted
    and fail every chunk with "node 'b' has no input")."""
    m = ps.ExecuteRequest().manifest
    m.name = "two"
    m.nodes.add(id="a", node_type="PassThrough")
    m.nodes.add(id="b", node_type="PassThrough")
    m.nodes.add(id="mix", node_type="Mixer")
    for f in ("a", "b"):
        c = m.connections.add()
        setattr(c, "from", f)
        c.to = "mix"
    s = Session(stub, ps.StreamInit(manifest=m))
    err = s.error()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(err)["rm-field"] == "sources"
    assert err.details().startswith("the pipeline has 2 source nodes ('a', 'b'): "), err.details()
    ev = srv.wait_for_event("call", 30, lambda e: is_session(e) and e.get("pipeline") == "two")
    assert (ev["status"], ev["chunks"]) == ("INVALID_ARGUMENT", 0)


def test_per_chunk_limits(stub):
    m = chain(("src", "PassThrough", {}))
    lim = ps.ExecutionLimits(max_input_bytes=400)
    s = Session(stub, ps.StreamInit(manifest=m, limits=lim))
    s.recv()
    s.data(np.zeros(100, np.float32), 1)
    s.recv()
    s.data(np.zeros(101, np.float32), 2)
    err = s.error()
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers(err)["rm-field"] == "max_input_bytes" and trailers(err)["rm-sequence"] == "2"
    s = Session(stub, ps.StreamInit(manifest=m, limits=ps.ExecutionLimits(max_audio_samples=50)))
    s.recv()
    s.data(np.zeros(51, np.float32), 7)
    err = s.error()
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and trailers(err)["rm-sequence"] == "7"


def test_a_flush_above_a_limit_is_identified_as_the_flush(srv, stub):
    """Regression: LoudnessNormalize holds the whole stream and emits it at the flush; above
    max_audio_samples that failed without rm-sequence, unlike a chunk's failure. A flush's
    failure is identified as its result would have been: "flush after chunk N", rm-sequence
    N (the last chunk's), rm-flushed true, and the same in ErrorInfo."""
    m = chain(("src", "PassThrough", {}), ("ln", "LoudnessNormalize", {}), name="whole-stream")
    s = Session(stub, ps.StreamInit(manifest=m, limits=ps.ExecutionLimits(max_audio_samples=5000)))
    sid = s.recv().ready.session_id
    noise = (0.1 * np.random.default_rng(7).standard_normal(4000)).astype(np.float32)
    for seq in (1, 2, 3):  # each chunk is within the limit, and LoudnessNormalize holds it
        s.data(noise, seq)
        r = s.recv().result
        assert (r.sequence, len(r.outputs["ln"].items)) == (seq, 0)
    s.control(FLUSH)
    err = s.error()
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.details() == ("flush after chunk 3: node 'ln' (LoudnessNormalize): output holds "
                             "12000 audio samples, above the limit of 5000")
    t = trailers(err)
    assert (t["rm-failing-node"], t["rm-field"], t["rm-sequence"], t["rm-flushed"]) == \
        ("ln", "samples", "3", "true")
    assert details(err) == {"node": "ln", "field": "samples", "sequence": "3", "flushed": "true"}
    ev = session_end(srv, sid)
    assert (ev["status"], ev["error"], ev["chunks"]) == ("RESOURCE_EXHAUSTED", err.details(), 3)


def test_a_flush_result_above_max_message_bytes_is_the_flush_s_failure():
    """A flush's result too big to send (two whole streams, each within the buffer limit)
    used to be reported as the last chunk's failure ("chunk 3: ...", no sign of the flush)."""
    from conftest import manifest
    with RunningServer(["--max-message-bytes", "200000"]) as srv:
        ch, stub = stub_for(srv)
        m = manifest([("src", "PassThrough", {}), ("a", "LoudnessNormalize", {}),
                      ("b", "LoudnessNormalize", {})], [("src", "a"), ("src", "b")], name="two")
        s = Session(stub, ps.StreamInit(manifest=m))
        sid = s.recv().ready.session_id
        noise = (0.1 * np.random.default_rng(8).standard_normal(10000)).astype(np.float32)
        for seq in (1, 2, 3):
            s.data(noise, seq)
            assert s.recv().result.sequence == seq
        s.control(CLOSE)
        err = s.error()
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details().startswith("flush after chunk 3: the response would be "), err.details()
        assert err.details().endswith(" bytes, above max-message-bytes 200000")
        t = trailers(err)
        assert (t["rm-field"], t["rm-sequence"], t["rm-flushed"]) == ("max_message_bytes", "3", "true")
        assert details(err) == {"field": "max_message_bytes", "sequence": "3", "flushed": "true"}
        assert session_end(srv, sid)["status"] == "RESOURCE_EXHAUSTED"
        ch.close()


def test_session_memory_budget(stub):
    """max_memory_bytes bounds what the session holds at once (its pipeline's budget)."""
    m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 1}))
    s = Session(stub, ps.StreamInit(manifest=m, limits=ps.ExecutionLimits(max_memory_bytes=1 << 20)))
    s.recv()
    s.data(np.zeros(1000, np.float32), 1)
    s.recv()
    s.data(np.zeros(200000, np.float32), 2)  # 800 kB in, 800 kB out: above 1 MiB
    err = s.error()
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers(err)["rm-field"] == "max_memory_bytes" and trailers(err)["rm-sequence"] == "2"
    # the session's budget, sized by init.limits (it said "the request's budget")
    assert re.fullmatch(r"chunk 2: node 'g' \(Gain\) needs \d+ more bytes of memory, above the "
                        r"session's budget: \d+ of its 1048576 bytes in use "
                        r"\(init\.limits\.max_memory_bytes\)", err.details()), err.details()


def test_session_memory_budget_from_the_server_names_its_option():
    """A session without limits.max_memory_bytes has --max-request-memory's budget, and its
    refusals (a node's, the chunk's input's) name the session's budget and that option."""
    with RunningServer(["--max-request-memory", "1048576"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 1}))
        lim = ps.ExecutionLimits(max_memory_bytes=4 << 20)  # above the server's: no effect
        for limits in (None, lim):
            s = Session(stub, ps.StreamInit(manifest=m, limits=limits))
            s.recv()
            s.data(np.zeros(200000, np.float32), 1)
            err = s.error()
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert trailers(err)["rm-field"] == "max_memory_bytes"
            assert re.fullmatch(r"chunk 1: node 'g' \(Gain\) needs \d+ more bytes of memory, above "
                                r"the session's budget: \d+ of its 1048576 bytes in use "
                                r"\(max-request-memory\)", err.details()), err.details()
        s = Session(stub, ps.StreamInit(manifest=m))
        s.recv()
        s.data(np.zeros(300000, np.float32), 1)  # the input alone is above 1 MiB
        err = s.error()
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert re.fullmatch(r"chunk 1: the session's inputs hold 1200000 bytes, above its memory "
                            r"budget of 1048576 bytes \(max-request-memory\) with \d+ in use",
                            err.details()), err.details()
        ch.close()


def test_a_message_the_server_budget_cannot_hold_is_refused_before_its_copy():
    """A stream message's received bytes and their copy into one piece are asked of the
    server's budget (--max-memory) before the copy is made, as a unary request's are: 26 MB
    arriving in many slices would be 52 MB with its copy, above 48 MiB. The refusal names
    max_memory; every session, refused or not, ends with the budget where it was before it
    (the session's call line's server_memory_used), and a 10 MB message runs after the refusal."""
    with RunningServer(["--max-memory", "48M", "--warm-bytes", "0"]) as srv:
        ch = srv.channel([("grpc.max_receive_message_length", -1)])
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}))

        def one(samples):
            """A session with one data message: (its session_id, the result or the error)."""
            s = Session(stub, ps.StreamInit(manifest=m))
            sid = s.recv().ready.session_id
            s.data(samples, 1)
            try:
                r = s.recv()
            except grpc.RpcError as e:
                s.half_close()
                return sid, e
            s.control(CLOSE)
            s.half_close()
            assert s.rest()[1] == grpc.StatusCode.OK
            return sid, r

        sid, r = one(np.float32([1, 2, 3]))
        base = session_end(srv, sid)["server_memory_used"]
        big = np.zeros(26_000_000 // 4, np.float32)
        sid, err = one(big)
        assert isinstance(err, grpc.RpcError), err
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailers(err)["rm-field"] == "max_memory"
        sent = ps.StreamRequest()
        sent.data.sequence = 1
        set_audio(sent.data.buffer, big)
        # the received bytes and their copy (with 63 bytes of alignment slack)
        # more than the whole budget: not told to retry later
        assert err.details() == (f"the message needs {2 * sent.ByteSize() + 63} bytes, more "
                                 "than the server's whole memory budget of 50331648 bytes "
                                 "(max-memory): it cannot be served here"), err.details()
        assert session_end(srv, sid)["server_memory_used"] == base
        x = np.arange(2_500_000, dtype=np.float32)  # 10 MB: 30 MB with its copy and unpacking
        sid, r = one(x)
        assert r.WhichOneof("message") == "result", r
        np.testing.assert_array_equal(f32(r.result.outputs["src"].items[0]), x)
        assert session_end(srv, sid)["server_memory_used"] == base
        ch.close()


def test_client_cancel_releases_the_session(srv, stub):
    m = chain(("src", "PassThrough", {}), ("rs", "AudioResample", {"rate": 8000}))
    s = Session(stub, ps.StreamInit(manifest=m))
    sid = s.recv().ready.session_id
    s.data(np.zeros(1600, np.float32), 1)
    s.recv()
    s.call.cancel()
    s.half_close()
    ev = session_end(srv, sid)
    assert (ev["status"], ev["error_kind"], ev.get("client_gone")) == ("CANCELLED", "cancelled", True), ev


def test_a_cancelled_session_does_not_run_its_close():
    """A client's cancel is not a half-close: the session ends without running the close's
    flush (LoudnessNormalize would emit the whole stream for nobody)."""
    with RunningServer(["--metrics-listen", "127.0.0.1:0"]) as srv:
        ch, stub = stub_for(srv)

        def runs():  # LoudnessNormalize invocations, whatever their status
            found = re.findall(r'^remotemedia_node_executions_total\{node_type="LoudnessNormalize",'
                               r'status="[a-z_]+"\} (\S+)$', srv.metrics_text(), re.M)
            return sum(int(float(v)) for v in found)

        m = chain(("src", "PassThrough", {}), ("ln", "LoudnessNormalize", {}))
        s = Session(stub, ps.StreamInit(manifest=m))
        sid = s.recv().ready.session_id
        n = 3
        for seq in range(n):
            s.data(np.full(1600, 0.1, np.float32), seq)
            assert s.recv().WhichOneof("message") == "result"
        s.call.cancel()
        s.half_close()
        ev = session_end(srv, sid)
        assert (ev["status"], ev["error_kind"], ev["chunks"]) == ("CANCELLED", "cancelled", n), ev
        assert runs() == n
        ch.close()


def test_call_deadline(srv, stub):
    """The call's deadline is logged as what the client got, DEADLINE_EXCEEDED (the line used
    to say CANCELLED)."""
    m = chain(("src", "PassThrough", {}))
    s = Session(stub, ps.StreamInit(manifest=m), timeout=5.0)
    sid = s.recv().ready.session_id
    err = s.error()
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    ev = session_end(srv, sid)
    assert (ev["status"], ev["code"], ev["client_gone"]) == ("DEADLINE_EXCEEDED", 4, True)


def test_call_deadline_is_counted_as_deadline_exceeded():
    """grpc_server_handled_total counts a session its deadline ended as DEADLINE_EXCEEDED, as
    the client saw it and the log line says (it counted CANCELLED)."""
    import re
    with RunningServer(["--metrics-listen", "127.0.0.1:0"]) as srv:
        ch, stub = stub_for(srv)
        s = Session(stub, ps.StreamInit(manifest=chain(("src", "PassThrough", {}))), timeout=2.0)
        sid = s.recv().ready.session_id
        assert s.error().code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert session_end(srv, sid)["status"] == "DEADLINE_EXCEEDED"
        body = srv.metrics_text()
        handled = dict(re.findall(r'^grpc_server_handled_total\{[^}]*grpc_method="StreamPipeline",'
                                  r'grpc_code="(\w+)"\} (\S+)$', body, re.M))
        assert {k: float(v) for k, v in handled.items() if float(v)} == {"DeadlineExceeded": 1}


def test_a_message_above_max_message_bytes_is_refused_by_the_server():
    """The server checks each message's size itself (the core's check, after taking the message
    in too, ended the call unseen: the session was logged and counted CANCELLED, client_gone):
    RESOURCE_EXHAUSTED with field max_message_bytes, the session logged and counted as such,
    and everything it held released."""
    with RunningServer(["--max-message-bytes", "100000", "--metrics-listen", "127.0.0.1:0"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}), name="oversize")
        _, results, _ = stream_all(stub, m, [np.zeros(1000, np.float32)], 16000)
        base = session_ends(srv, 1)[0]["server_memory_used"]
        s = Session(stub, ps.StreamInit(manifest=m))
        sid = s.recv().ready.session_id
        s.data(np.zeros(30000, np.float32), 1)  # 120 kB
        err = s.error()
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert re.fullmatch(r"the message is \d+ bytes, above max-message-bytes 100000",
                            err.details()), err.details()
        t = trailers(err)
        assert (t["rm-error-kind"], t["rm-field"]) == ("limit_exceeded", "max_message_bytes")
        ev = session_end(srv, sid)
        assert (ev["status"], ev["chunks"]) == ("RESOURCE_EXHAUSTED", 0), ev
        assert "client_gone" not in ev
        assert ev["server_memory_used"] == base
        assert active_sessions(srv) == 0
        handled = dict(re.findall(r'^grpc_server_handled_total\{[^}]*grpc_method="StreamPipeline",'
                                  r'grpc_code="(\w+)"\} (\S+)$', srv.metrics_text(), re.M))
        assert {k: float(v) for k, v in handled.items() if float(v)} == \
            {"OK": 1, "ResourceExhausted": 1}
        ch.close()


def test_a_session_is_logged_as_one_call_line_with_its_request_id():
    """docs/observability.md: every call gets one `call` line with request_id, peer and
    pipeline, and the request id is in every line logged while the call is handled. A session
    used to log only `session_end` (no request id, peer, pipeline or error text)."""
    with RunningServer(["--log-level", "debug"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}), name="logged-stream")
        s = Session(stub, ps.StreamInit(manifest=m), metadata=[("x-request-id", "stream-rid-42")])
        sid = s.recv().ready.session_id
        s.data(np.float32([1, 2]), 1)
        s.recv()
        s.data(np.float32([3]), 1)  # not above the previous: the session fails
        err = s.error()
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(s.call.initial_metadata())["x-request-id"] == "stream-rid-42"
        ev = session_end(srv, sid)
        assert ev["level"] == "info"
        assert ev["method"] == STREAM_METHOD and ev["request_id"] == "stream-rid-42"
        assert (ev["status"], ev["code"], ev["pipeline"]) == ("INVALID_ARGUMENT", 3, "logged-stream")
        assert ev["peer"].startswith("ipv4:127.0.0.1:")
        assert ev["error_kind"] == "invalid_input"
        assert ev["error"] == err.details()
        assert (ev["chunks"], ev["session_id"]) == (1, sid) and ev["duration_us"] > 0
        assert "client_gone" not in ev
        # one line per call: no session_end any more, and every line of the session has its id
        lines = [e for e in srv.events() if e.get("session_id") == sid]
        assert [e["event"] for e in lines] == ["session_start", "call"]
        assert all(e["request_id"] == "stream-rid-42" for e in lines)
        assert not srv.events("session_end")
        ch.close()


# ---------------------------------------------------------------- server limits


def test_idle_timeout():
    with RunningServer(["--session-idle-timeout-ms", "300"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}))
        s = Session(stub, ps.StreamInit(manifest=m))
        s.recv()
        t0 = time.monotonic()
        err = s.error()
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert trailers(err)["rm-field"] == "session_idle_timeout_ms"
        assert time.monotonic() - t0 >= 0.3
        ch.close()


def test_max_session_ms():
    with RunningServer(["--max-session-ms", "1500"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}))
        s = Session(stub, ps.StreamInit(manifest=m))
        s.recv()
        seq = 0
        with pytest.raises(grpc.RpcError) as ei:
            while True:  # a busy session, never idle, is still held to max-session-ms
                seq += 1
                s.data(np.float32([1]), seq)
                s.recv()
                time.sleep(0.05)
        s.half_close()
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailers(ei.value)["rm-field"] == "max_session_ms"
        ch.close()


def stalled_reader(stub, m, chunk, n=48):
    """A session whose client sends init and n chunks, reads `ready` and then nothing: the
    server's result writes (each the size of chunk) fill the HTTP/2 windows and stop
    completing. Returns (session, session_id)."""
    s = Session(stub, ps.StreamInit(manifest=m))
    sid = s.recv().ready.session_id
    for seq in range(1, n + 1):
        s.data(chunk, seq)
    return s, sid


def active_sessions(srv):
    import re
    return int(re.search(r"^remotemedia_stream_sessions_active (\d+)$", srv.metrics_text(), re.M).group(1))


def stalled_session_ends(args, status, kind, text):
    """A client that stops reading is ended by the limit in args (it used to stay open, its
    result write stuck behind flow control, and keep its --max-sessions slot for as long as
    it liked): the call is cancelled with status and text, the session's memory and slot go
    back, and a new session gets in. Returns the seconds from the session's start to its
    call line."""
    with RunningServer(args + ["--max-sessions", "1", "--metrics-listen", "127.0.0.1:0"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}), name="stalled")
        base = clean_session(srv, stub)
        t0 = time.monotonic()
        s, sid = stalled_reader(stub, m, np.zeros(1 << 18, np.float32))  # 1 MiB results
        ev = session_end(srv, sid, timeout=60)
        took = time.monotonic() - t0
        assert (ev["status"], ev["error_kind"]) == (status, kind), ev
        assert text in ev["error"], ev
        assert ev["server_memory_used"] == base, ev
        assert 0 < ev["chunks"] < 48, ev  # the writes did get stuck
        assert active_sessions(srv) == 0
        n = Session(stub, ps.StreamInit(manifest=m))  # the slot is free
        assert n.recv().WhichOneof("message") == "ready"
        n.control(CLOSE)
        assert n.rest()[1] == grpc.StatusCode.OK
        n.half_close()
        # the stalled client, reading at last, finds the status (without trailers: cancelled)
        with pytest.raises(grpc.RpcError) as ei:
            for _ in s.call:
                pass
        s.half_close()
        assert ei.value.code().name == status and text in ei.value.details(), ei.value
        ch.close()
        return took


def test_max_session_ms_ends_a_client_that_stopped_reading():
    took = stalled_session_ends(["--max-session-ms", "1500", "--session-idle-timeout-ms", "60000"],
                                "RESOURCE_EXHAUSTED", "limit_exceeded",
                                "the session has been open for its limit of 1500 ms (max-session-ms)")
    assert 1.5 <= took < 30, took


def test_a_result_not_read_for_the_idle_timeout_ends_the_session():
    took = stalled_session_ends(["--session-idle-timeout-ms", "1000"], "DEADLINE_EXCEEDED",
                                "deadline_exceeded",
                                "the client read no result for 1000 ms (session-idle-timeout-ms)")
    assert 1.0 <= took < 30, took


def test_max_sessions():
    with RunningServer(["--max-sessions", "2"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}))
        a, b = Session(stub, ps.StreamInit(manifest=m)), Session(stub, ps.StreamInit(manifest=m))
        a.recv(), b.recv()
        err = Session(stub, ps.StreamInit(manifest=m)).error()
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailers(err)["rm-field"] == "max_sessions"
        assert "grpc-retry-pushback-ms" not in trailers(err)  # a retry may pass
        a.control(CLOSE)
        assert a.rest()[1] == grpc.StatusCode.OK
        a.half_close()
        session_ends(srv, 2, 30)  # a's, and the refused one's
        c = Session(stub, ps.StreamInit(manifest=m))
        assert c.recv().WhichOneof("message") == "ready"
        for s in (b, c):
            s.control(CLOSE)
            assert s.rest()[1] == grpc.StatusCode.OK
            s.half_close()
        # unary calls are not counted against sessions
        r = stub.ExecutePipeline(audio_request(m))
        assert "src" in r.outputs
        ch.close()


def test_auth_applies_to_the_stream(tmp_path):
    with RunningServer(["--auth-tokens", "tok-1"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}))
        err = Session(stub, ps.StreamInit(manifest=m)).error()
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        err = Session(stub, ps.StreamInit(manifest=m), metadata=[("authorization", "Bearer no")]).error()
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        s = Session(stub, ps.StreamInit(manifest=m), metadata=[("authorization", "Bearer tok-1")])
        assert s.recv().WhichOneof("message") == "ready"
        s.control(CLOSE)
        assert s.rest()[1] == grpc.StatusCode.OK
        s.half_close()
        ch.close()


def test_sigterm_flushes_and_closes_open_sessions():
    with RunningServer(["--grace-ms", "20000", "--log-level", "debug"]) as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}), ("c", "Chunk", {"frames": 1000, "partial": "keep"}),
                  name="drain")
        sessions = []
        for i in range(5):
            s = Session(stub, ps.StreamInit(manifest=m, enable_metrics=True))
            s.recv()
            s.data(np.ones(300, np.float32), 1)  # Chunk holds it until the flush
            assert len(s.recv().result.outputs["c"].items) == 0
            sessions.append(s)
        # a unary call in flight keeps the drain going until after the sessions have ended, so
        # the new session below meets a draining server (not the core's own shutdown, which
        # cancels calls that race it: see the note on issue 12)
        slow = stub.ExecutePipeline.future(audio_request(chain(
            ("src", "PassThrough", {}), ("d", "Delay", {"ms": 3000}), name="in-flight")), timeout=DEADLINE)
        assert srv.wait_for_count("pipeline_start", 1, 30, lambda e: e.get("pipeline") == "in-flight")
        srv.signal(signal.SIGTERM)
        for s in sessions:
            rest, code = s.rest()
            s.half_close()
            assert code == grpc.StatusCode.OK
            assert [x.WhichOneof("message") for x in rest] == ["result", "metrics"]
            assert rest[0].result.flushed
            assert f32(rest[0].result.outputs["c"].items[0]).size == 300
            assert rest[1].metrics.final
        # new sessions are refused while the server drains, or cannot connect once it stopped
        err = Session(stub, ps.StreamInit(manifest=m), timeout=10).error()
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in err.details()
        assert not slow.done()  # the drain was still going on
        assert slow.result(timeout=DEADLINE).outputs["d"].items  # and the call in flight ended OK
        assert srv.proc.wait(60) == 0
        ch.close()


# ---------------------------------------------------------------- flow control and memory


def test_fast_client_cannot_grow_server_memory():
    """The server reads a message only once the previous result was sent: a client that
    writes 1 MiB chunks as fast as it can and reads nothing is held back by flow control."""
    with RunningServer() as srv:
        ch, stub = stub_for(srv)
        m = chain(("src", "PassThrough", {}))
        chunk = np.zeros(1 << 18, np.float32)  # 1 MiB
        pulled = [0]
        init = ps.StreamRequest(init=ps.StreamInit(manifest=m))

        def requests():
            yield init
            for i in range(150):
                r = ps.StreamRequest()
                r.data.sequence = i + 1
                set_audio(r.data.buffer, chunk)
                pulled[0] += 1
                yield r
            r = ps.StreamRequest(control=ps.StreamControl(kind=CLOSE))
            yield r

        call = stub.StreamPipeline(requests(), timeout=DEADLINE)
        assert next(call).WhichOneof("message") == "ready"
        time.sleep(3)  # not reading: the client would write 150 MiB if nothing held it back
        held = pulled[0]
        rss = proc_status(srv.proc.pid)["VmRSS"]
        assert held < 32, held
        if not VALGRIND and not sanitized(srv.proc.pid):
            assert rss < 100 << 20, rss
        n = sum(1 for r in call if r.WhichOneof("message") == "result")
        assert n == 151 and call.code() == grpc.StatusCode.OK
        ch.close()


def test_result_free_race_pipelined_chunks_keep_the_pipeline_account():
    """Regression (D1): a chunk's result was freed after its write was posted; the write's
    completion posted the next read, and the next chunk ran on another worker while the first
    still unreferenced the result's buffers in the pipeline's single-threaded byte account,
    whose figures then went wrong (peak_memory_bytes off, or wrapped to ~1.8e19) and whose
    buffers could be freed under the run. Results of thousands of items (Chunk frames=1) make
    the free long, a Delay branch makes the pipeline heavy (chunks on workers), and the
    clients queue every chunk up front. Each session's final peak_memory_bytes must be what a
    session sending one chunk at a time reports."""
    with RunningServer(["--workers", "4", "--threads", "2"]) as srv:
        ch = srv.channel([("grpc.max_receive_message_length", -1)])
        stub = psg.PipelineServiceStub(ch)
        from conftest import manifest
        m = manifest([("src", "PassThrough", {}), ("ck", "Chunk", {"frames": 1}),
                      ("d", "Delay", {"ms": 0})], [("src", "ck"), ("src", "d")], name="race")
        x = np.zeros(3000, np.float32)
        _, _, mets = stream_all(stub, m, [x] * 3, 16000, metrics=True)  # one chunk at a time
        serial = mets[-1].metrics.peak_memory_bytes
        assert x.nbytes <= serial <= 4 * x.nbytes, serial
        peaks, codes = {}, {}

        def pipelined(k, chunks=300):
            s = Session(stub, ps.StreamInit(manifest=m, enable_metrics=True))
            for seq in range(1, chunks + 1):
                s.data(x, seq)
            s.control(CLOSE)
            s.half_close()
            try:
                out, codes[k] = s.rest()
            except grpc.RpcError as e:
                codes[k] = (e.code(), e.details())
                return
            peaks[k] = [r.metrics.metrics.peak_memory_bytes for r in out
                        if r.WhichOneof("message") == "metrics"]
            assert sum(1 for r in out if r.WhichOneof("message") == "result") == chunks + 1

        for _ in range(2):
            threads = [threading.Thread(target=pipelined, args=(k,)) for k in range(3)]
            [t.start() for t in threads]
            [t.join(DEADLINE) for t in threads]
            assert codes == {k: grpc.StatusCode.OK for k in range(3)}, codes
            assert peaks == {k: [serial] for k in range(3)}, (peaks, serial)
        assert all(e["status"] == "OK" for e in session_ends(srv, 7))
        ch.close()


@pytest.mark.skipif(VALGRIND, reason="a load test: minutes under valgrind")
def test_long_audio_in_one_session_with_bounded_memory():
    """10 minutes of 48 kHz stereo (230 MB of f32) through AudioResample -> LoudnessMeter."""
    with RunningServer() as srv:
        ch, stub = stub_for(srv)
        rate, secs = 48000, 600
        m = chain(("src", "PassThrough", {}), ("rs", "AudioResample", {"rate": 16000}),
                  ("lm", "LoudnessMeter", {}), name="long")
        rng = np.random.default_rng(5)
        block = (0.1 * rng.standard_normal(rate * 2)).astype(np.float32)  # 1 s, stereo
        total = rate * 2 * secs * 4
        s = Session(stub, ps.StreamInit(manifest=m, output_nodes=["lm"]))
        s.recv()
        for i in range(secs):
            s.data(block, i + 1, rate=rate, channels=2)
            assert s.recv().result.sequence == i + 1
        s.control(CLOSE)
        rest, code = s.rest()
        s.half_close()
        assert code == grpc.StatusCode.OK
        report = json.loads(rest[0].result.outputs["lm"].items[0].json.json)
        assert -30 < report["integrated_lufs"] < -10
        st = proc_status(srv.proc.pid)
        print("long audio: input %d bytes, server %s" % (total, st))
        if not sanitized(srv.proc.pid):
            assert st["VmHWM"] < total / 4, (st, total)
        ch.close()


@pytest.mark.skipif(VALGRIND, reason="a load test: minutes under valgrind")
def test_100_concurrent_sessions_at_real_time_pace():
    """100 sessions, 10 s of audio each in 100 ms chunks sent at real-time pace."""
    n, secs, rate, step = 100, 10, 16000, 1600
    m = chain(("src", "PassThrough", {}), ("rs", "AudioResample", {"rate": 8000}),
              ("vad", "VAD", {"mode": "energy"}), name="rt")
    x = speechy(secs, rate)

    async def one(stub, k):
        call = stub.StreamPipeline()
        await call.write(ps.StreamRequest(init=ps.StreamInit(manifest=m, output_nodes=["rs", "vad"])))
        assert (await call.read()).WhichOneof("message") == "ready"
        t0 = time.monotonic()
        got = 0
        for i, c in enumerate(audio_chunks(x, step)):
            r = ps.StreamRequest()
            r.data.sequence = i + 1
            set_audio(r.data.buffer, c, rate=rate)
            await call.write(r)
            res = await call.read()
            got += f32(res.result.outputs["rs"].items[0]).size if res.result.outputs["rs"].items else 0
            delay = t0 + (i + 1) * step / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await call.write(ps.StreamRequest(control=ps.StreamControl(kind=CLOSE)))
        await call.done_writing()
        while (res := await call.read()) != grpc.aio.EOF:
            if res.WhichOneof("message") == "result":
                got += sum(f32(it).size for it in res.result.outputs["rs"].items)
        assert await call.code() == grpc.StatusCode.OK
        return got

    async def main(addr):
        async with grpc.aio.insecure_channel(addr) as ch:
            stub = psg.PipelineServiceStub(ch)
            return await asyncio.wait_for(asyncio.gather(*(one(stub, k) for k in range(n))), 600)

    with RunningServer() as srv:
        got = asyncio.run(main(srv.address()))
        assert got == [secs * 8000] * n
        assert all(e["status"] == "OK" for e in session_ends(srv, n, 60))
        st = proc_status(srv.proc.pid)
        if not sanitized(srv.proc.pid):
            assert st["VmHWM"] < 200 << 20, st


def test_sessions_and_chunks_are_counted_in_prometheus():
    """The streaming counters (issue 12's endpoint): sessions opened and open, chunks and their
    latency histogram, and the gRPC method's own counters for the bidirectional call."""
    import re
    with RunningServer(["--metrics-listen", "127.0.0.1:0"]) as srv:
        stub = psg.PipelineServiceStub(grpc.insecure_channel(srv.address()))
        m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}), name="counted")
        x = speechy(1, 16000)
        _, results, _ = stream_all(stub, m, audio_chunks(x, 320), 16000)  # 50 chunks
        assert len(results) == 51  # and the close's flushed result
        _, results, _ = stream_all(stub, m, audio_chunks(x[:3200], 320), 16000)  # 10 chunks
        session_ends(srv, 2)
        body = srv.metrics_text()

        def value(series):
            m = re.search(r"^%s (\S+)$" % re.escape(series), body, re.M)
            assert m, "no series %s in the scrape" % series
            return float(m.group(1))

        assert value("remotemedia_stream_sessions_total") == 2
        assert value("remotemedia_stream_sessions_active") == 0
        assert value("remotemedia_stream_chunks_total") == 60
        assert value("remotemedia_stream_chunk_duration_seconds_count") == 60
        labels = ('grpc_type="bidi_stream",grpc_service="remotemedia.v1.PipelineService",'
                  'grpc_method="StreamPipeline"')
        assert value("grpc_server_started_total{%s}" % labels) == 2
        assert value('grpc_server_handled_total{%s,grpc_code="OK"}' % labels) == 2
        # init, the chunks and the close; ready, a result per chunk and the flushed one
        assert value("grpc_server_msg_received_total{%s}" % labels) == 2 + 60 + 2
        assert value("grpc_server_msg_sent_total{%s}" % labels) == 2 + 60 + 2


def test_stream_node_invocations_are_counted_like_unary_ones():
    """Chunk runs count in remotemedia_node_executions_total and GetStatistics' node types as
    unary runs do (they were not counted at all), and equal the session's own metrics;
    remotemedia_inflight_runs is back to 0 after them."""
    import re
    with RunningServer(["--metrics-listen", "127.0.0.1:0"]) as srv:
        ch, stub = stub_for(srv)

        def counters():
            body = srv.metrics_text()
            found = re.search(r'^remotemedia_node_executions_total\{node_type="Gain",status="ok"\} '
                              r'(\S+)$', body, re.M)  # a type is listed once it ran
            prom = int(float(found.group(1))) if found else 0
            inflight = int(re.search(r"^remotemedia_inflight_runs (\d+)$", body, re.M).group(1))
            st = {n.node_type: n for n in stub.GetStatistics(ps.GetStatisticsRequest(), timeout=30).node_types}
            g = st.get("Gain")
            return prom, (g.execution_count, g.stats.success.count) if g else (0, 0), inflight

        before = counters()
        m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": -6}), name="counted-nodes")
        n = 7
        _, results, mets = stream_all(stub, m, [np.float32([0.5] * 160)] * n, 16000, metrics=True)
        assert len(results) == n + 1
        per_node = {x.node_id: x.execution_count for x in mets[-1].metrics.node_metrics}
        assert per_node["g"] == n  # Gain has no flush(): the close invokes it no more
        after = counters()
        assert after[0] - before[0] == n
        assert (after[1][0] - before[1][0], after[1][1] - before[1][1]) == (n, n)
        assert after[2] == 0
        ch.close()
