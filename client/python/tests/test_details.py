"""Issue 14 in the Python client: the standard error details (grpc-status-details-bin)
read into the typed exceptions, with the old trailers as the fallback; and
Pipeline.validate(), the ValidatePipeline dry run."""
import pickle

import grpc
import numpy as np
import pytest

from conftest import arun, sine, venv  # noqa: F401 (venv is a fixture)
from test_wheel import run
from remotemedia import (InvalidArgument, Node, NotFound, Pipeline, RemoteConfig,
                         ResourceExhausted)
from remotemedia.errors import error_from_rpc
from remotemedia.nodes import Delay, Gain, PassThrough
from rmtest.server import RunningServer


def bad_gain_pipeline(remote):
    p = Pipeline(remote=remote)
    p.add_node(PassThrough(node_id="src")).add_node(Node("Gain", {"db": 100}, node_id="g",
                                                         validate=False))
    return p


def test_details_of_a_params_error(server):
    remote = RemoteConfig(server.address(), timeout=30, metadata=[("x-request-id", "py-7")])
    with bad_gain_pipeline(remote) as p, pytest.raises(InvalidArgument) as e:
        p.run_sync(sine(100, 8000), sample_rate=8000)
    err = e.value
    assert (err.reason, err.domain) == ("INVALID_PARAMS", "remotemedia.v1")
    assert err.metadata == {"node": "g", "field": "db", "request_id": "py-7"}
    assert err.request_id == "py-7"
    assert err.field_violations == [("manifest.nodes[g].params.db", err.message)]
    assert (err.kind, err.node_id, err.field) == ("invalid_params", "g", "db")
    assert err.trailers["rm-error-kind"] == "invalid_params"  # the old trailers stay
    again = pickle.loads(pickle.dumps(err))
    assert (again.reason, again.metadata, again.field_violations) == \
        (err.reason, err.metadata, err.field_violations)


def test_details_of_an_unknown_type(remote):
    with Pipeline(remote=remote) as p, pytest.raises(NotFound) as e:
        p.add_node(Node("NoSuchNode", {}, node_id="x", validate=False))
        p.run_sync(sine(10, 8000), sample_rate=8000)
    assert e.value.reason == "UNKNOWN_NODE_TYPE"
    assert e.value.field_violations == [("manifest.nodes[x].node_type", e.value.message)]


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailers):
        self._c, self._d, self._t = code, details, trailers

    def code(self):
        return self._c

    def details(self):
        return self._d

    def trailing_metadata(self):
        return self._t


def test_old_trailers_are_the_fallback():
    """A server without grpc-status-details-bin (or with one that does not decode)."""
    old = [("rm-error-kind", "invalid_params"), ("rm-failing-node", "g"), ("rm-field", "db")]
    for extra in ([], [("grpc-status-details-bin", b"\xff\xff not a status")]):
        e = error_from_rpc(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad", old + extra))
        assert isinstance(e, InvalidArgument)
        assert (e.kind, e.node_id, e.field) == ("invalid_params", "g", "db")
        assert (e.reason, e.domain, e.metadata, e.field_violations) == (None, None, {}, [])


def test_a_per_request_limit_is_not_retried():
    """The client retries RESOURCE_EXHAUSTED by default, but not one marked with
    grpc-retry-pushback-ms: -1: the server sees one attempt."""
    with RunningServer(["--max-nodes", "2", "--log-level", "info"]) as srv:
        p = Pipeline(remote=RemoteConfig(srv.address(), timeout=30))
        p.add_node(PassThrough(node_id="src")).add_node(Gain(node_id="a")).add_node(Gain(node_id="b"))
        with p, pytest.raises(ResourceExhausted) as e:
            p.run_sync(sine(10, 8000), sample_rate=8000)
        assert e.value.trailers["grpc-retry-pushback-ms"] == "-1"
        assert e.value.field == "nodes"
        limit = lambda ev: ev.get("error_kind") == "limit_exceeded"  # noqa: E731
        assert srv.wait_for_count("call", 1, 10, limit)
        assert len([ev for ev in srv.events("call") if limit(ev)]) == 1


def test_validate(remote):
    with Pipeline(name="dry", remote=remote) as p:
        p.add_node(PassThrough(node_id="src")).add_node(Delay(ms=30000, node_id="d")) \
            .add_node(Gain(db=-6, node_id="g"))
        v = p.validate_sync(sine(1000, 16000), sample_rate=16000, timeout=10)
        assert v["pipeline"] == "dry" and v["schedule"] == ["src", "d", "g"]
        assert v["predicted_memory_bytes"] >= 4000
        assert arun(p.validate(sine(1000, 16000), sample_rate=16000, timeout=10)) == v
    with bad_gain_pipeline(remote) as p:
        with pytest.raises(InvalidArgument) as a:
            p.run_sync(sine(100, 8000), sample_rate=8000)
        with pytest.raises(InvalidArgument) as b:
            p.validate_sync(sine(100, 8000), sample_rate=8000)
        assert (b.value.message, b.value.reason, b.value.field_violations) == \
            (a.value.message, a.value.reason, a.value.field_violations)


def test_installed_wheel_reads_details(venv, server, tmp_path):  # noqa: F811
    code = """
import remotemedia
from remotemedia import _proto, InvalidArgument, Node, Pipeline
from remotemedia.nodes import PassThrough
print(_proto.rpc_status_pb2.__name__)
p = Pipeline()
p.add_node(PassThrough(node_id="src")).add_node(Node("Gain", {"db": 100}, node_id="g", validate=False))
try:
    p.run_sync([0.1, 0.2], sample_rate=8000)
except InvalidArgument as e:
    print(e.reason, e.field_violations[0][0])
"""
    assert run(venv, code, server, tmp_path) == [
        "remotemedia._google_rpc.status_pb2", "INVALID_PARAMS manifest.nodes[g].params.db"]
