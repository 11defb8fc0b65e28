"""Fixtures for the server's end-to-end tests: a real server on an ephemeral port, stubs,
and request builders."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from rmtest.server import RunningServer  # noqa: E402
from remotemedia.v1 import manifest_pb2, pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with RunningServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def channel(server):
    with server.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return psg.PipelineServiceStub(channel)


@pytest.fixture(scope="module")
def health(channel):
    return health_pb2_grpc.HealthStub(channel)


def manifest(nodes, connections=(), name="test"):
    """nodes: [(id, type, params-dict)], connections: [(from, to)] or [(from, to, from_port, to_port)]."""
    m = manifest_pb2.PipelineManifest(name=name)
    for nid, ntype, params in nodes:
        m.nodes.add(id=nid, node_type=ntype, params=json.dumps(params) if params is not None else "")
    for c in connections:
        conn = m.connections.add()
        setattr(conn, "from", c[0])
        conn.to = c[1]
        if len(c) > 2:
            conn.from_port, conn.to_port = c[2], c[3]
    return m


def chain(*nodes, name="test"):
    """A linear pipeline of (id, type, params)."""
    return manifest(nodes, [(a[0], b[0]) for a, b in zip(nodes, nodes[1:])], name=name)


def set_audio(buf, samples, rate=16000, channels=1):
    samples = np.asarray(samples)
    fmt = {np.dtype(np.float32): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
           np.dtype(np.float64): 4}[samples.dtype]
    buf.audio.samples = samples.tobytes()
    buf.audio.sample_rate = rate
    buf.audio.channels = channels
    buf.audio.format = fmt


def audio_request(m, node="src", samples=(0.25, -0.5, 0.125), metrics=False, **kw):
    req = ps.ExecuteRequest(manifest=m, enable_metrics=metrics, **kw)
    set_audio(req.inputs[node], np.asarray(samples, dtype=np.float32))
    return req


def json_request(m, node, value, metrics=False):
    req = ps.ExecuteRequest(manifest=m, enable_metrics=metrics)
    req.inputs[node].json.json = json.dumps(value)
    return req


def f32(buf):
    assert buf.WhichOneof("kind") == "audio"
    assert buf.audio.format == 1
    return np.frombuffer(buf.audio.samples, dtype=np.float32)


def sigterm_with_a_call_held(srv, ch, metadata=None):
    """Starts an ExecutePipeline call on ch that takes 1.5 s (a Delay node), waits until srv
    runs it (needs --log-level debug) and sends SIGTERM: the drain starts with the call in
    flight. The call's future."""
    slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 1500}), name="held")
    fut = psg.PipelineServiceStub(ch).ExecutePipeline.future(audio_request(slow),
                                                             metadata=metadata, timeout=60)
    assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "held")
    srv.signal()
    return fut


def trailers(err):
    return {k: v for k, v in (err.trailing_metadata() or ())}


def assert_serving(stub, token=None):
    """The server still answers correctly after whatever just happened."""
    md = [("authorization", "Bearer " + token)] if token else None
    r = stub.ExecutePipeline(audio_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}))),
                             metadata=md)
    np.testing.assert_array_equal(f32(r.outputs["g"].items[0]), np.float32([0.25, -0.5, 0.125]))
