"""Payloads read in place and answered without copies (issue 11): big requests come back
byte for byte whatever the payload's offset in the message (aligned or not for its samples),
through nodes that read them (Gain) and nodes that pass them on (PassThrough), alone and
concurrently, and the server releases what the responses pointed at."""
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from conftest import assert_serving, chain, f32, manifest, ps, set_audio
from remotemedia.v1 import pipeline_service_pb2_grpc as psg
from rmtest.server import RunningServer

BIG = 262144 + 7  # f32 samples: a little over 1 MiB, above --inline-max-bytes (runs on a worker)


def big_request(m, name_pad, node="src", samples=None):
    m.name = "views" + "x" * name_pad  # moves the payload's offset in the message
    req = ps.ExecuteRequest(manifest=m)
    rng = np.random.default_rng(name_pad)
    s = rng.uniform(-0.9, 0.9, BIG).astype(np.float32) if samples is None else samples
    set_audio(req.inputs[node], s, rate=48000)
    return req, s


def test_passthrough_returns_the_bytes_at_every_offset(stub):
    for pad in range(4):
        req, s = big_request(chain(("src", "PassThrough", {})), pad)
        r = stub.ExecutePipeline(req, timeout=60)
        out = r.outputs["src"].items[0]
        assert out.audio.samples == req.inputs["src"].audio.samples
        assert (out.audio.sample_rate, out.audio.channels, out.audio.format) == (48000, 1, 1)


def test_gain_reads_misaligned_samples_exactly(stub):
    for pad in range(4):
        req, s = big_request(chain(("src", "Gain", {"db": 6.0206})), pad)
        r = stub.ExecutePipeline(req, timeout=60)
        got = f32(r.outputs["src"].items[0])
        assert got.shape == s.shape
        np.testing.assert_allclose(got, s * np.float32(10 ** (6.0206 / 20)), rtol=1e-6)


def test_binary_and_tensor_payloads_in_place(stub):
    blob = bytes(range(256)) * 4100
    req = ps.ExecuteRequest(manifest=chain(("b", "PassThrough", {}), name="bin"))
    req.inputs["b"].binary.data = blob
    req.inputs["b"].binary.mime_type = "application/octet-stream"
    r = stub.ExecutePipeline(req, timeout=60)
    out = r.outputs["b"].items[0].binary
    assert out.data == blob and out.mime_type == "application/octet-stream"
    t = np.arange(3 * 70001, dtype=np.float64).reshape(3, 70001)
    req = ps.ExecuteRequest(manifest=chain(("t", "PassThrough", {}), name="tensor"))
    req.inputs["t"].tensor.data = t.tobytes()
    req.inputs["t"].tensor.shape.extend(t.shape)
    req.inputs["t"].tensor.dtype = 2
    r = stub.ExecutePipeline(req, timeout=60)
    out = r.outputs["t"].items[0].tensor
    assert list(out.shape) == [3, 70001] and out.dtype == 2 and out.data == t.tobytes()


def test_concurrent_big_calls_each_get_their_own_bytes(stub):
    reqs = [big_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0})), pad)
            for pad in range(8)]
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda rs: stub.ExecutePipeline(rs[0], timeout=120), reqs))
    for (req, s), r in zip(reqs, results):
        np.testing.assert_array_equal(f32(r.outputs["g"].items[0]), s)
    assert_serving(stub)


def test_payloads_either_side_of_the_copy_threshold(stub):
    """Payloads from 32 KiB on are read and answered in place, smaller ones copied
    (RM_VIEW_MIN_BYTES): whichever way a size takes, the bytes come back exactly, through a
    node that passes them on and one that reads them, at and around the threshold and in one
    response that mixes a copied and a borrowed payload. (Which way a size takes is not
    visible from outside; the speed difference is bench/wire_bench.py's.)"""
    rng = np.random.default_rng(7)
    for n in (8191, 8192, 8193):  # f32 samples: 32 KiB - 4 B, 32 KiB, 32 KiB + 4 B
        s = rng.uniform(-0.9, 0.9, n).astype(np.float32)
        req = ps.ExecuteRequest(manifest=chain(("src", "PassThrough", {}),
                                               ("g", "Gain", {"db": 6.0206})))
        set_audio(req.inputs["src"], s, rate=48000)
        r = stub.ExecutePipeline(req, timeout=60)
        np.testing.assert_allclose(f32(r.outputs["g"].items[0]),
                                   s * np.float32(10 ** (6.0206 / 20)), rtol=1e-6)
    for n in (32767, 32768, 32769):
        blob = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        req = ps.ExecuteRequest(manifest=chain(("b", "PassThrough", {}), name="bin"))
        req.inputs["b"].binary.data = blob
        assert stub.ExecutePipeline(req, timeout=60).outputs["b"].items[0].binary.data == blob
    small, big = (rng.uniform(-0.9, 0.9, n).astype(np.float32) for n in (100, 9000))
    m = manifest([("a", "PassThrough", {}), ("b", "PassThrough", {})], [])
    req = ps.ExecuteRequest(manifest=m)
    set_audio(req.inputs["a"], small, rate=48000)
    set_audio(req.inputs["b"], big, rate=48000)
    r = stub.ExecutePipeline(req, timeout=60)
    np.testing.assert_array_equal(f32(r.outputs["a"].items[0]), small)
    np.testing.assert_array_equal(f32(r.outputs["b"].items[0]), big)
    assert_serving(stub)


def test_forwarded_payloads_come_back_exactly(stub, channel):
    """A pipeline of PassThroughs forwards the first payload of a request that came in several
    slices straight from those slices (bytebuf.c's gap: it is never copied in). Every way the
    forwarded bytes leave, and every way they must be copied in after all, gives the request's
    bytes: a cached pipeline's second call with metrics, two payloads merged by a fan-in (the
    second one copied), a Gain reading what a PassThrough also returns, and bytes after the
    payload that are no message (unpacked whole, so copied in first, and refused)."""
    m = chain(("src", "PassThrough", {}), name="forward")
    req, s = big_request(m, 0)
    req.enable_metrics = True
    for _ in range(2):  # compiled, then from the cache
        r = stub.ExecutePipeline(req, timeout=60)
        assert r.outputs["src"].items[0].audio.samples == req.inputs["src"].audio.samples
        assert r.metrics.node_metrics[0].node_id == "src"
    fan = manifest([("a", "PassThrough", {}), ("b", "PassThrough", {}), ("m", "PassThrough", {})],
                   [("a", "m"), ("b", "m")], name="fan")
    req = ps.ExecuteRequest(manifest=fan, output_nodes=["m"])
    rng = np.random.default_rng(3)
    first, second = (rng.uniform(-0.9, 0.9, n).astype(np.float32) for n in (BIG, 20000))
    set_audio(req.inputs["a"], first, rate=48000)
    set_audio(req.inputs["b"], second, rate=48000)
    items = stub.ExecutePipeline(req, timeout=60).outputs["m"].items
    assert len(items) == 2
    np.testing.assert_array_equal(f32(items[0]), first)
    np.testing.assert_array_equal(f32(items[1]), second)
    req, s = big_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 6.0206})), 1)
    req.output_nodes.extend(["src", "g"])
    r = stub.ExecutePipeline(req, timeout=60)
    np.testing.assert_array_equal(f32(r.outputs["src"].items[0]), s)
    np.testing.assert_allclose(f32(r.outputs["g"].items[0]), s * np.float32(10 ** (6.0206 / 20)),
                               rtol=1e-6)
    raw = channel.unary_unary("/remotemedia.v1.PipelineService/ExecutePipeline")
    req, s = big_request(m, 2)
    with pytest.raises(grpc.RpcError) as e:
        raw(req.SerializeToString() + b"\x0f", timeout=60)  # field 1, wire type 7: none such
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExecuteRequest" in e.value.details()
    # A field numbered 0 in a non-minimal tag: protobuf-c skips it, the skeleton walker
    # refuses it, so the request is unpacked whole, its payload copied in first.
    r = ps.ExecuteResponse.FromString(raw(req.SerializeToString() + b"\x80\x00\x00", timeout=60))
    assert r.outputs["src"].items[0].audio.samples == req.inputs["src"].audio.samples
    assert_serving(stub)


def test_only_passthrough_pipelines_leave_the_payload_uncopied():
    """The debug line pipeline_start says how many payload bytes the run forwards without
    their being copied in: a PassThrough's (or PassThrough then Delay's) whole first payload
    when the request came in several slices, none when a node reads it (Gain), none when the
    request came in one slice (nothing is copied then anyway)."""
    with RunningServer(["--log-level", "debug"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        for name, nodes in (("fwd", [("src", "PassThrough", {})]),
                            ("fwd-delay", [("src", "PassThrough", {}), ("d", "Delay", {"ms": 1})]),
                            ("read", [("src", "PassThrough", {}), ("g", "Gain", {"db": 0})])):
            req, s = big_request(chain(*nodes), 0)
            req.manifest.name = name
            r = stub.ExecutePipeline(req, timeout=60)
            np.testing.assert_array_equal(f32(r.outputs[nodes[-1][0]].items[0]), s)
            ev = srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == name)
            assert ev["forwarded_bytes"] == (0 if name == "read" else BIG * 4), ev
        small = ps.ExecuteRequest(manifest=chain(("src", "PassThrough", {}), name="small"))
        set_audio(small.inputs["src"], np.zeros(100, np.float32))
        stub.ExecutePipeline(small, timeout=60)
        ev = srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "small")
        assert ev["forwarded_bytes"] == 0, ev
