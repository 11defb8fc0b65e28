"""Every kind of bad request gets the right gRPC status, a message naming node and field,
the detail in trailing metadata, and the server keeps serving."""
import json
import threading

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2

from conftest import assert_serving, audio_request, chain, json_request, manifest, set_audio, trailers
from rmtest.server import RunningServer
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg

IA = grpc.StatusCode.INVALID_ARGUMENT


def call_error(stub, req, timeout=10):
    with pytest.raises(grpc.RpcError) as e:
        stub.ExecutePipeline(req, timeout=timeout)
    return e.value


GOOD = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}))

# (name, manifest, code, kind, node, field, message)
MANIFEST_CASES = [
    ("empty", manifest([]), IA, "invalid_manifest", None, "nodes", "pipeline has no nodes"),
    ("duplicate id", manifest([("src", "PassThrough", {}), ("src", "Gain", {})]), IA, "invalid_manifest",
     "src", "id", "duplicate node id 'src'"),
    ("bad id", manifest([("a b", "PassThrough", {})]), IA, "invalid_manifest", "a b", "id", None),
    ("unknown type", manifest([("src", "NoSuchNode", {})]), grpc.StatusCode.NOT_FOUND, "unknown_node_type",
     "src", "node_type", "node 'src': unknown node type 'NoSuchNode'"),
    ("missing node", manifest([("src", "PassThrough", {})], [("src", "ghost")]), IA, "invalid_manifest",
     "ghost", "to", "connection 0 (src -> ghost): node 'ghost' does not exist"),
    ("missing port", manifest([("src", "PassThrough", {}), ("g", "Gain", {})], [("src", "g", "nope", "")]), IA,
     "invalid_manifest", "src", "from_port", None),
    ("cycle", manifest([("a", "Gain", {}), ("b", "Gain", {})], [("a", "b"), ("b", "a")]), IA,
     "invalid_manifest", "a", "connections", "cycle detected: a -> b -> a"),
    ("kinds", manifest([("src", "PassThrough", {}), ("calc", "Calculator", None), ("g", "Gain", {})],
                       [("src", "calc"), ("calc", "g")]), IA, "invalid_manifest", "g", "connections",
     "connection calc -> g: 'calc' produces json but 'g' (Gain) accepts audio"),
    ("unknown param", chain(("src", "PassThrough", {}), ("g", "Gain", {"gain": 1})), IA, "invalid_params", "g",
     "gain", "node 'g': unknown param 'gain'"),
    ("param type", chain(("src", "PassThrough", {}), ("g", "Gain", {"db": "loud"})), IA, "invalid_params", "g",
     "db", "node 'g' param 'db': expected number, got string"),
    ("param range", chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 1000})), IA, "invalid_params", "g",
     "db", "node 'g' param 'db': 1000 is out of range [-120, 60]"),
    ("missing required", chain(("src", "PassThrough", {}), ("f", "AudioFormat", {})), IA, "invalid_params", "f",
     "format", "node 'f': missing required param 'format'"),
]


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_errors(stub, case):
    _, m, code, kind, node, field, message = case
    err = call_error(stub, audio_request(m))
    assert err.code() == code
    t = trailers(err)
    assert t["rm-error-kind"] == kind
    assert t.get("rm-failing-node") == node
    assert t.get("rm-field") == field
    if message:
        assert err.details() == message
    if node:
        assert node in err.details()
    assert_serving(stub)


def test_cycle_message_names_the_cycle(stub):
    m = manifest([("src", "PassThrough", {}), ("a", "Gain", {}), ("b", "Gain", {}), ("c", "Gain", {})],
                 [("a", "b"), ("b", "c"), ("c", "a")])
    err = call_error(stub, audio_request(m))
    assert err.details() == "cycle detected: a -> b -> c -> a"
    assert trailers(err)["rm-failing-node"] == "a"


def test_params_not_json(stub):
    m = chain(("src", "PassThrough", {}), ("g", "Gain", {}))
    m.nodes[1].params = "{db: 3"
    err = call_error(stub, audio_request(m))
    assert err.code() == IA
    assert err.details().startswith("node 'g': params are not valid JSON")
    assert (trailers(err)["rm-failing-node"], trailers(err)["rm-field"]) == ("g", "params")


def violations(err):
    """The BadRequest field violations of the status details: [(field, description)]."""
    st = status_pb2.Status()
    st.ParseFromString(trailers(err)["grpc-status-details-bin"])
    out = []
    for any_ in st.details:
        if any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            any_.Unpack(br)
            out += [(v.field, v.description) for v in br.field_violations]
    return out


def test_strings_holding_nul_or_not_utf8_are_refused(stub, channel):
    """protobuf-c keeps no length for a string: one holding a NUL byte was read as the part
    before it (text "a\0b" came back "a"; params '{"db":1}\0garbage' were accepted), and it
    does not check UTF-8, which proto3 strings must be."""
    tail = ": strings must be UTF-8 without NUL bytes (send such data as binary)"
    req = ps.ExecuteRequest(manifest=chain(("src", "PassThrough", {})))
    req.inputs["src"].text.text = "a\x00b"
    err = call_error(stub, req)
    assert err.code() == IA
    assert err.details() == ("input for node 'src': string field 'text.text' holds a NUL byte "
                             "at byte 1" + tail)
    t = trailers(err)
    assert (t["rm-failing-node"], t["rm-field"], t["rm-error-kind"]) == (
        "src", "text.text", "invalid_input")
    assert violations(err) == [("inputs[src].text.text", err.details())]

    m = chain(("src", "PassThrough", {}), ("g", "Gain", {}))
    m.nodes[1].params = '{"db":1}\x00garbage'
    err = call_error(stub, audio_request(m))
    assert err.code() == IA
    assert err.details() == "node 'g': string field 'params' holds a NUL byte at byte 8" + tail
    t = trailers(err)
    assert (t["rm-failing-node"], t["rm-field"], t["rm-error-kind"]) == (
        "g", "params", "invalid_params")
    assert violations(err) == [("manifest.nodes[g].params", err.details())]

    # not UTF-8 (Python's protobuf cannot build it: patch the bytes of a placeholder)
    req = ps.ExecuteRequest(manifest=chain(("src", "PassThrough", {})))
    req.inputs["src"].json.json = '"QQQQ"'
    raw = req.SerializeToString().replace(b"QQQQ", b"ok\xc3\x28")
    with pytest.raises(grpc.RpcError) as e:
        channel.unary_unary("/remotemedia.v1.PipelineService/ExecutePipeline")(raw, timeout=10)
    assert e.value.code() == IA
    assert e.value.details() == ("input for node 'src': string field 'json.json' is not valid "
                                 "UTF-8 at byte 3" + tail)
    assert_serving(stub)


def test_input_errors(stub):
    # input keyed to a node that does not exist
    req = audio_request(GOOD, node="ghost")
    err = call_error(stub, req)
    assert err.code() == IA and trailers(err)["rm-error-kind"] == "invalid_input"
    assert "ghost" in err.details()
    # input keyed to a node with incoming connections
    req = audio_request(GOOD)
    set_audio(req.inputs["g"], np.float32([0.5]))
    err = call_error(stub, req)
    assert err.code() == IA
    assert err.details() == "input for node 'g': the node has incoming connections, its data comes from them"
    assert trailers(err)["rm-failing-node"] == "g"
    # a source without input
    err = call_error(stub, ps.ExecuteRequest(manifest=GOOD))
    assert err.code() == IA and trailers(err)["rm-failing-node"] == "src"
    # wrong data kind for the node
    req = json_request(chain(("g", "Gain", {})), "g", {"x": 1})
    err = call_error(stub, req)
    assert err.details() == "input for node 'g': Gain accepts audio, got json"
    assert_serving(stub)


@pytest.mark.parametrize("mutate,field", [
    (lambda a: setattr(a, "format", 0), "format"),
    (lambda a: setattr(a, "format", 9), "format"),
    (lambda a: setattr(a, "sample_rate", 0), "sample_rate"),
    (lambda a: setattr(a, "channels", 0), "channels"),
    (lambda a: setattr(a, "channels", 65), "channels"),
    (lambda a: setattr(a, "samples", b"\x00\x00\x80"), "samples"),  # not whole f32 samples
])
def test_malformed_audio(stub, mutate, field):
    req = audio_request(GOOD)
    mutate(req.inputs["src"].audio)
    err = call_error(stub, req)
    assert err.code() == IA
    t = trailers(err)
    assert (t["rm-error-kind"], t["rm-failing-node"], t["rm-field"]) == ("invalid_input", "src", field)
    assert err.details().startswith("input for node 'src': ")
    assert_serving(stub)


def test_empty_data_buffer(stub):
    req = ps.ExecuteRequest(manifest=GOOD)
    req.inputs["src"].SetInParent()
    err = call_error(stub, req)
    assert err.code() == IA and trailers(err)["rm-field"] == "kind"


def test_tensor_shape_mismatch(stub):
    req = ps.ExecuteRequest(manifest=manifest([("p", "PassThrough", {})]))
    t = req.inputs["p"].tensor
    t.data, t.dtype = np.zeros(5, np.float32).tobytes(), ps.data__pb2.TENSOR_DTYPE_F32 if hasattr(ps, "data__pb2") else 1
    t.shape.extend([2, 3])
    err = call_error(stub, req)
    assert err.code() == IA and trailers(err)["rm-field"] == "data"


def test_node_failure_is_invalid_argument_naming_node(stub):
    m = manifest([("calc", "Calculator", None)])
    err = call_error(stub, json_request(m, "calc", {"operation": "divide", "operands": [1, 0]}))
    assert err.code() == IA
    assert err.details() == "node 'calc' (Calculator): division by zero (operands[1] is 0)"
    t = trailers(err)
    assert (t["rm-error-kind"], t["rm-failing-node"], t["rm-field"]) == ("node_failed", "calc", "operands")
    assert_serving(stub)


def test_unknown_output_node(stub):
    err = call_error(stub, audio_request(GOOD, output_nodes=["nope"]))
    assert err.code() == IA and trailers(err)["rm-field"] == "output_nodes"


def test_no_manifest(stub):
    err = call_error(stub, ps.ExecuteRequest())
    assert err.code() == IA
    assert err.details() == "request has no manifest"


def test_deadline_stops_the_pipeline():
    with RunningServer(["--log-level", "debug"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        # 1.5 s leaves time for the call to reach even a server under valgrind before its
        # deadline (a call that expires in the transport never reaches the application)
        m = chain(("src", "PassThrough", {}), ("slow", "Delay", {"ms": 20000}))
        err = call_error(stub, audio_request(m), timeout=1.5)
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        ev = srv.wait_for_event("call", 30, lambda e: e.get("status") == "DEADLINE_EXCEEDED")
        assert ev is not None, [e for e in srv.events() if e["event"] in ("call", "pipeline_start")]
        # the server stopped at the deadline, not after the node's 20 s
        assert ev["duration_us"] < 10_000_000
        assert ev["error_kind"] == "deadline_exceeded"
        assert_serving(stub)


def test_client_cancel_stops_the_pipeline():
    with RunningServer(["--log-level", "debug"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), ("slow", "Delay", {"ms": 5000}), name="cancel-me")
        fut = stub.ExecutePipeline.future(audio_request(m))
        assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "cancel-me")
        fut.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            fut.result()
        ev = srv.wait_for_event("call", 10, lambda e: e.get("pipeline") == "cancel-me")
        assert ev is not None
        assert ev["status"] == "CANCELLED" and ev["client_cancelled"] is True
        assert ev["duration_us"] < 2_000_000
        assert_serving(stub)


def test_execution_time_limit_is_resource_exhausted():
    with RunningServer(["--max-execution-ms", "200"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), ("slow", "Delay", {"ms": 3000}))
        err = call_error(stub, audio_request(m), timeout=20)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details().startswith("the pipeline ran longer than the execution time limit of 200 ms")
        assert trailers(err)["rm-field"] == "max_execution_ms"
        # a request may lower the limit, never raise it
        req = audio_request(m)
        req.limits.max_execution_ms = 100000
        err = call_error(stub, req, timeout=20)
        assert "200 ms" in err.details()
        req.limits.max_execution_ms = 50
        err = call_error(stub, req, timeout=20)
        assert "of 50 ms" in err.details()
        assert_serving(stub)


def test_many_bad_requests_in_parallel_leave_server_healthy(stub):
    bad = [audio_request(manifest([])), audio_request(chain(("src", "Nope", {}))),
           json_request(manifest([("calc", "Calculator", None)]), "calc", {"operation": "divide", "operands": [1, 0]}),
           audio_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": "x"})))]
    errors = []

    def worker(i):
        for k in range(25):
            try:
                stub.ExecutePipeline(bad[(i + k) % len(bad)], timeout=10)
                errors.append("unexpected success")
            except grpc.RpcError as e:
                if e.code() not in (IA, grpc.StatusCode.NOT_FOUND):
                    errors.append(e.code())
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_serving(stub)
