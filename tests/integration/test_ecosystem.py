"""The ecosystem conventions on the wire: grpc-status-details-bin (google.rpc.Status with
ErrorInfo and BadRequest, decoded here by the Python modules generated from the same
protos), grpc-retry-pushback-ms on per-request limits (and gRPC's own retries obeying it),
params as a google.protobuf.Struct, and the ValidatePipeline dry run."""
import json
import threading
import time

import grpc
import numpy as np
import pytest

from conftest import assert_serving, audio_request, chain, f32, json_request, manifest, trailers
from rmtest.server import RunningServer
from google.rpc import error_details_pb2, status_pb2
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg

IA = grpc.StatusCode.INVALID_ARGUMENT
RE = grpc.StatusCode.RESOURCE_EXHAUSTED


def details(err):
    """(Status, ErrorInfo, BadRequest or None) from the error's grpc-status-details-bin."""
    raw = trailers(err)["grpc-status-details-bin"]
    st = status_pb2.Status.FromString(raw)
    assert st.code == err.code().value[0]
    assert st.message == err.details()
    info, bad = None, None
    for any_ in st.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
        else:
            raise AssertionError("unexpected detail %s" % any_.type_url)
    assert info is not None
    return st, info, bad


def call_error(call, req, **kw):
    with pytest.raises(grpc.RpcError) as e:
        call(req, timeout=10, **kw)
    return e.value


# ------------------------------------------------------------------ error details

def test_params_error_details(stub):
    m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 1000}))
    err = call_error(stub.ExecutePipeline, audio_request(m), metadata=[("x-request-id", "req-42")])
    assert err.code() == IA
    st, info, bad = details(err)
    assert st.message == "node 'g' param 'db': 1000 is out of range [-120, 60]"
    assert (info.reason, info.domain) == ("INVALID_PARAMS", "remotemedia.v1")
    assert dict(info.metadata) == {"node": "g", "field": "db", "request_id": "req-42"}
    assert [(v.field, v.description) for v in bad.field_violations] == \
        [("manifest.nodes[g].params.db", st.message)]
    # the old trailers stay
    t = trailers(err)
    assert (t["rm-error-kind"], t["rm-failing-node"], t["rm-field"]) == ("invalid_params", "g", "db")
    assert "grpc-retry-pushback-ms" not in t


@pytest.mark.parametrize("case", [
    ("unknown type", manifest([("src", "NoSuchNode", {})]), grpc.StatusCode.NOT_FOUND,
     "UNKNOWN_NODE_TYPE", {"node": "src", "field": "node_type"}, "manifest.nodes[src].node_type"),
    ("cycle", manifest([("src", "PassThrough", {}), ("a", "Gain", {}), ("b", "Gain", {})],
                       [("a", "b"), ("b", "a")]), IA,
     "INVALID_MANIFEST", {"node": "a", "field": "connections"}, "manifest.nodes[a].connections"),
    ("empty", manifest([]), IA, "INVALID_MANIFEST", {"field": "nodes"}, "manifest.nodes"),
], ids=lambda c: c[0])
def test_manifest_error_details(stub, case):
    _, m, code, reason, metadata, path = case
    err = call_error(stub.ExecutePipeline, audio_request(m))
    assert err.code() == code
    st, info, bad = details(err)
    assert info.reason == reason and dict(info.metadata) == metadata
    assert [v.field for v in bad.field_violations] == [path]


def test_input_error_details(stub):
    req = audio_request(chain(("src", "PassThrough", {})))
    req.inputs["src"].audio.sample_rate = 0
    err = call_error(stub.ExecutePipeline, req)
    st, info, bad = details(err)
    assert info.reason == "INVALID_INPUT"
    assert info.metadata["node"] == "src"
    assert [v.field for v in bad.field_violations] == ["inputs[src].%s" % info.metadata["field"]]


def test_every_error_status_carries_details(server, channel):
    # unknown method, a bad request message, a node failing on its data
    err = call_error(channel.unary_unary("/remotemedia.v1.PipelineService/Nope"), b"")
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    st, info, bad = details(err)
    assert info.reason == "UNIMPLEMENTED" and bad is None
    err = call_error(channel.unary_unary("/remotemedia.v1.PipelineService/ExecutePipeline"),
                     b"\xff\xff")
    assert details(err)[1].reason == "INVALID_REQUEST"
    calc = manifest([("c", "Calculator", None)])
    err = call_error(psg.PipelineServiceStub(channel).ExecutePipeline,
                     json_request(calc, "c", {"operation": "divide", "operands": [1, 0]}))
    st, info, bad = details(err)
    assert info.reason in ("NODE_FAILED", "INVALID_INPUT")
    assert info.metadata["node"] == "c"


# ------------------------------------------------------------------ retry pushback

def attempts(srv, name):
    return len([e for e in srv.events("call") if e.get("pipeline") == name])


RETRYING = json.dumps({"methodConfig": [{
    "name": [{"service": "remotemedia.v1.PipelineService", "method": "ExecutePipeline"}],
    "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE",
                                                                     "RESOURCE_EXHAUSTED"]}}]})


def test_per_request_limit_says_do_not_retry():
    with RunningServer(["--max-nodes", "2", "--log-level", "info"]) as srv:
        with srv.channel(options=[("grpc.enable_retries", 1),
                                  ("grpc.service_config", RETRYING)]) as ch:
            stub = psg.PipelineServiceStub(ch)
            m = chain(("src", "PassThrough", {}), ("a", "Gain", {}), ("b", "Gain", {}),
                      name="too-big")
            err = call_error(stub.ExecutePipeline, audio_request(m))
            assert err.code() == RE
            assert trailers(err)["grpc-retry-pushback-ms"] == "-1"
            assert details(err)[1].reason == "LIMIT_EXCEEDED"
            time.sleep(0.3)  # a retry, were one made, would have arrived by now
            assert attempts(srv, "too-big") == 1


# Backoff waits are random in [0, 2 s]: four of them add up to less than the slow call's
# 0.6 s once in ~3,000 runs.
PATIENT = RETRYING.replace('"0.05s"', '"2s"').replace('"0.2s"', '"2s"').replace(
    '"maxAttempts": 4', '"maxAttempts": 5').replace('"backoffMultiplier": 2', '"backoffMultiplier": 1')


def test_full_server_is_retried():
    with RunningServer(["--max-concurrent", "1", "--log-level", "debug"]) as srv:
        with srv.channel() as plain, srv.channel(options=[("grpc.enable_retries", 1),
                                                          ("grpc.service_config", PATIENT)]) as ch:
            slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 600}), name="slow")
            busy = psg.PipelineServiceStub(plain).ExecutePipeline.future(audio_request(slow),
                                                                        timeout=30)
            assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "slow")
            # without retries: RESOURCE_EXHAUSTED naming max_concurrent, and no pushback
            err = call_error(psg.PipelineServiceStub(plain).ExecutePipeline,
                             audio_request(chain(("src", "PassThrough", {}), name="probe")))
            assert err.code() == RE
            assert trailers(err)["rm-field"] == "max_concurrent"
            assert "grpc-retry-pushback-ms" not in trailers(err)
            # with retries on, the refused call is tried again until the slot frees up
            r = psg.PipelineServiceStub(ch).ExecutePipeline(
                audio_request(chain(("src", "PassThrough", {}), name="retried")), timeout=30)
            assert r.outputs["src"].items
            assert busy.result().outputs["d"].items
            # the probe, then at least one refused attempt of the retried call
            refused = [e for e in srv.events("call") if e.get("error_kind") == "limit_exceeded"]
            assert len(refused) >= 2, srv.events("call")


# ------------------------------------------------------------------ params as a Struct

def test_params_object(stub):
    m = chain(("src", "PassThrough", {}), ("g", "Gain", None))
    m.nodes[1].params_object.update({"db": -6.020599913279624})
    r = stub.ExecutePipeline(audio_request(m))
    np.testing.assert_allclose(f32(r.outputs["g"].items[0]), [0.125, -0.25, 0.0625], rtol=1e-6)
    # integer params take an integral double, and refuse a fraction
    c = chain(("src", "PassThrough", {}), ("c", "Chunk", None))
    c.nodes[1].params_object.update({"frames": 2})
    r = stub.ExecutePipeline(audio_request(c))
    assert [len(i.audio.samples) // 4 for i in r.outputs["c"].items] == [2, 1]
    c.nodes[1].params_object.update({"frames": 2.5})
    err = call_error(stub.ExecutePipeline, audio_request(c))
    assert err.code() == IA
    assert err.details() == "node 'c' param 'frames': expected integer, got 2.5"
    # both forms at once
    c.nodes[1].params = '{"frames": 2}'
    err = call_error(stub.ExecutePipeline, audio_request(c))
    assert err.code() == IA
    assert err.details() == "node 'c': give params (JSON text) or params_object, not both"
    assert (trailers(err)["rm-failing-node"], trailers(err)["rm-field"]) == ("c", "params")
    assert_serving(stub)


# ------------------------------------------------------------------ ValidatePipeline

def test_validate_returns_schedule_and_memory_without_running(server, stub):
    m = manifest([("g2", "Gain", {"db": 1}), ("src", "PassThrough", {}),
                  ("d", "Delay", {"ms": 30000}), ("g1", "Gain", {})],
                 [("src", "d"), ("d", "g1"), ("g1", "g2")], name="dry")
    t0 = time.monotonic()
    r = stub.ValidatePipeline(audio_request(m, samples=np.zeros(1000, np.float32)), timeout=10)
    assert time.monotonic() - t0 < 5  # the 30 s delay never ran
    assert r.pipeline_name == "dry"
    assert list(r.schedule) == ["src", "d", "g1", "g2"]
    assert r.predicted_memory_bytes >= 4000
    assert not server.events("pipeline_start") or \
        all(e.get("pipeline") != "dry" for e in server.events("pipeline_start"))


def test_validate_errors_match_execute(stub):
    cases = [
        audio_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": "loud"}))),
        audio_request(manifest([("src", "NoSuchNode", {})])),
        audio_request(chain(("src", "PassThrough", {}), ("g", "Gain", {})), node="g"),
        audio_request(chain(("src", "PassThrough", {})), output_nodes=["nope"]),
    ]
    for req in cases:
        a = call_error(stub.ExecutePipeline, req)
        b = call_error(stub.ValidatePipeline, req)
        assert (b.code(), b.details()) == (a.code(), a.details())
        ta, tb = trailers(a), trailers(b)
        assert {k: ta[k] for k in ta if k.startswith("rm-")} == \
            {k: tb[k] for k in tb if k.startswith("rm-")}
        assert details(b)[1] == details(a)[1]
