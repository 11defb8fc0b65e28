"""The Python client against a hostile server (rmtest.hostile: the service's methods on an
ephemeral loopback port, answered badly on purpose): every bad answer must come out as the
client's documented errors (remotemedia.Internal for an answer it cannot make sense of),
never as KeyError, ValueError, numpy's or protobuf's exceptions, and never as data handed
over mis-shaped. Each case runs through the blocking and the asyncio API."""
import asyncio

import grpc
import numpy as np
import pytest
from google.protobuf import any_pb2

import remotemedia
from remotemedia import Client, Pipeline, RemoteConfig
from remotemedia._proto import rpc_error_details_pb2, rpc_status_pb2
from rmtest.hostile import (HostileServer, audio_buffer, execute_response, health_pb2, pb,
                            status, tensor_buffer, text_buffer)
from remotemedia.v1 import data_pb2, metrics_pb2

TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def srv():
    with HostileServer() as s:
        yield s


def run_both(srv, answer):
    """Runs a one-node pipeline through run_sync and run (asyncio) against `answer`; returns
    the two exceptions raised (each must be raised)."""
    srv.on("ExecutePipeline", answer)
    p = Pipeline("hostile", remote=RemoteConfig(srv.address, timeout=TIMEOUT_S))
    p.add_node("PassThrough")
    raised = []
    for call in (lambda: p.run_sync(np.zeros(4, np.float32), sample_rate=48000),
                 lambda: asyncio.run(p.run(np.zeros(4, np.float32), sample_rate=48000))):
        with pytest.raises(remotemedia.RemoteMediaError) as info:
            call()
        raised.append(info.value)
    return raised


BAD_OUTPUTS = [
    ("tensor_short", tensor_buffer(b"\0" * 20, [2, 3]),
     "tensor shape [2, 3] needs 6 values of float32 (24 bytes), 20 bytes given"),
    ("tensor_negative", tensor_buffer(b"\0" * 24, [-2, -3]),
     "tensor shape [-2, -3] has a negative dimension"),
    ("tensor_zero_negative", tensor_buffer(b"", [0, -1]),
     "tensor shape [0, -1] has a negative dimension"),
    ("tensor_overflow", tensor_buffer(b"\0" * 4, [2 ** 32, 2 ** 32]),
     "tensor shape [4294967296, 4294967296] needs 18446744073709551616 values of float32 "
     "(73786976294838206464 bytes), 4 bytes given"),
    ("tensor_dtype", tensor_buffer(b"\0" * 4, [1], dtype=77),
     "tensor dtype 77 is not one the protocol defines"),
    ("audio_partial_frame", audio_buffer(b"\0" * 7),
     "audio: 7 bytes is not a whole number of 1-channel f32 frames (4 bytes each)"),
    ("audio_rate_0", audio_buffer(sample_rate=0), "audio sample_rate 0 is not 1..768000 Hz"),
    ("audio_rate_huge", audio_buffer(sample_rate=2 ** 32 - 1),
     "audio sample_rate 4294967295 is not 1..768000 Hz"),
    ("audio_channels_0", audio_buffer(channels=0), "audio channels 0 is not 1..64"),
    ("audio_channels_huge", audio_buffer(b"\0" * 400, channels=100),
     "audio channels 100 is not 1..64"),
    ("audio_format", audio_buffer(fmt=9), "audio format 9 is not one the protocol defines"),
    ("empty_oneof", data_pb2.DataBuffer(), "the buffer carries no data (no kind set)"),
    ("deep_json", data_pb2.DataBuffer(json=data_pb2.JsonBuffer(json="[" * 100000)),
     "json is nested too deeply to decode"),
    ("bad_json", data_pb2.DataBuffer(json=data_pb2.JsonBuffer(json="{nope")),
     "json is not valid JSON: Expecting property name enclosed in double quotes: line 1 "
     "column 2 (char 1)"),
]


@pytest.mark.parametrize("item,why", [c[1:] for c in BAD_OUTPUTS], ids=[c[0] for c in BAD_OUTPUTS])
def test_inconsistent_output_is_internal(srv, item, why):
    # the good item first: the bad one is named by its index
    answer = execute_response({"x": [text_buffer("fine"), item]})
    for e in run_both(srv, lambda req, ctx: answer):
        assert type(e) is remotemedia.Internal
        assert e.code == grpc.StatusCode.INTERNAL and not e.from_server
        assert e.message == "the server's response: output 'x' item 1: " + why


NOT_FINITE = [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")]


def not_finite_metrics(value):
    return metrics_pb2.PipelineMetrics(pipeline_id="p", total_duration_us=1.5, node_metrics=[
        metrics_pb2.NodeMetrics(node_id="a", avg_duration_us=value)])


@pytest.mark.parametrize("value,name", NOT_FINITE, ids=[n for _, n in NOT_FINITE])
def test_metrics_not_finite_is_internal(srv, value, name):
    # as the C client refuses them (they were handed over as the metrics dict)
    answer = execute_response({"x": [text_buffer("fine")]}, metrics=not_finite_metrics(value))
    for e in run_both(srv, lambda req, ctx: answer):
        assert type(e) is remotemedia.Internal and not e.from_server
        assert e.message == ("the server's response: metrics node 'a': avg_duration_us is %s "
                             "(metrics are finite)" % name)
    top = metrics_pb2.PipelineMetrics(pipeline_id="p", peak_memory_mb=value)
    answer = execute_response({"x": [text_buffer("fine")]}, metrics=top)
    for e in run_both(srv, lambda req, ctx: answer):
        assert e.message == ("the server's response: metrics: peak_memory_mb is %s (metrics "
                             "are finite)" % name)


def test_response_that_does_not_decode(srv):
    sync_e, async_e = run_both(srv, lambda req, ctx: b"\xff\xff\xff")
    assert type(sync_e) is remotemedia.Internal  # grpcio's own message
    assert sync_e.message == "Exception deserializing response!"
    # grpc.aio hands back None for it: not an AttributeError on None
    assert type(async_e) is remotemedia.Internal and not async_e.from_server
    assert async_e.message == ("the server's answer to ExecutePipeline does not decode as its "
                               "response message")


def test_undefined_status_code(srv):
    sync_e, async_e = run_both(srv, lambda req, ctx: status(ctx, 99, "weird"))
    assert type(sync_e) is remotemedia.RemoteMediaError
    assert sync_e.code == grpc.StatusCode.UNKNOWN
    # grpc.aio raised KeyError(99) from its status table
    assert type(async_e) is remotemedia.RemoteMediaError
    assert async_e.code == grpc.StatusCode.UNKNOWN
    assert async_e.message == ("the server ended the call with status code 99, which gRPC does "
                               "not define: weird")


def details_bin(*details):
    st = rpc_status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="m")
    for type_url, value in details:
        st.details.append(any_pb2.Any(type_url=type_url, value=value))
    return ("grpc-status-details-bin", st.SerializeToString())


def test_error_details_that_do_not_decode(srv):
    good = rpc_error_details_pb2.ErrorInfo(reason="INVALID_PARAMS", domain="d",
                                           metadata={"node": "g"}).SerializeToString()
    trailer = details_bin(("type.googleapis.com/google.rpc.BadRequest", b"\x0a\x05\xff"),
                          ("type.googleapis.com/google.rpc.ErrorInfo", good),
                          ("type.googleapis.com/google.rpc.ErrorInfo", b"\xff\xff"))
    for e in run_both(srv, lambda req, ctx: status(ctx, grpc.StatusCode.INVALID_ARGUMENT,
                                                   "bad", [trailer])):
        # protobuf's DecodeError escaped from error_from_rpc; the good detail still counts
        assert type(e) is remotemedia.InvalidArgument and e.message == "bad"
        assert (e.reason, e.node_id, e.field_violations) == ("INVALID_PARAMS", "g", [])


@pytest.mark.parametrize("value", ["-5", "1e3", "18446744073709551616", "12x", " 7"])
def test_sequence_trailer_not_a_uint64(srv, value):
    trailers = [("rm-sequence", value), ("rm-flushed", "maybe")]
    for e in run_both(srv, lambda req, ctx: status(ctx, grpc.StatusCode.INVALID_ARGUMENT, "bad",
                                                   trailers)):
        assert type(e) is remotemedia.InvalidArgument
        assert e.sequence is None and e.flushed is False


def test_sequence_trailer_largest(srv):
    trailers = [("rm-sequence", str(2 ** 64 - 1))]
    for e in run_both(srv, lambda req, ctx: status(ctx, grpc.StatusCode.INVALID_ARGUMENT, "bad",
                                                   trailers)):
        assert e.sequence == 2 ** 64 - 1


@pytest.mark.parametrize("state", [99, -1])
def test_health_unknown_serving_state(srv, state):
    srv.on("Check", lambda req, ctx: health_pb2.HealthCheckResponse(status=state))
    with Client(RemoteConfig(srv.address, timeout=TIMEOUT_S)) as c:
        assert c.health_check_sync() == "UNKNOWN"  # was ValueError from the enum
        assert asyncio.run(c.health_check()) == "UNKNOWN"


def test_server_that_never_answers(srv):
    srv.on("ExecutePipeline", lambda req, ctx: srv.hang(ctx))
    p = Pipeline("hostile", remote=RemoteConfig(srv.address, timeout=0.5))
    p.add_node("PassThrough")
    with pytest.raises(remotemedia.DeadlineExceeded):
        p.run_sync("x")
    with pytest.raises(remotemedia.DeadlineExceeded):
        asyncio.run(p.run("x"))


# -- streaming -------------------------------------------------------------------------------

def ready():
    return pb.StreamResponse(ready=pb.StreamReady(session_id="s", pipeline_name="hostile"))


def stream_both(srv, handler):
    """stream_sync and stream (asyncio) of two chunks against `handler`; returns
    (results, exception) of each."""
    srv.on("StreamPipeline", handler)
    p = Pipeline("hostile", remote=RemoteConfig(srv.address))
    p.add_node("PassThrough")
    chunks = [np.zeros(4, np.float32)] * 2
    out = []
    got = []
    try:
        for r in p.stream_sync(chunks, sample_rate=48000, timeout=TIMEOUT_S):
            got.append(r)
        out.append((got, None))
    except Exception as e:  # noqa: BLE001 - the test asserts its type
        out.append((got, e))

    async def go():
        got = []
        try:
            async for r in p.stream(chunks, sample_rate=48000, timeout=TIMEOUT_S):
                got.append(r)
        except Exception as e:  # noqa: BLE001
            return got, e
        return got, None
    out.append(asyncio.run(go()))
    return out


def test_stream_message_that_does_not_decode(srv):
    def handler(requests, ctx):
        next(requests)
        yield ready()
        yield b"\xff\xff"
    (_, sync_e), (_, async_e) = stream_both(srv, handler)
    assert type(sync_e) is remotemedia.Internal
    # grpc.aio's None was read as a message and the session ended as if drained
    assert type(async_e) is remotemedia.Internal
    assert async_e.message == ("the server sent a message that does not decode as a "
                               "StreamResponse")


def test_stream_inconsistent_output(srv):
    def handler(requests, ctx):
        next(requests)
        yield ready()
        res = pb.StreamResponse(result=pb.StreamResult(sequence=1))
        res.result.outputs["x"].items.add().CopyFrom(tensor_buffer(b"\0" * 5, [2]))
        yield res
        srv.hang(ctx)
    for got, e in stream_both(srv, handler):
        assert got == []
        assert type(e) is remotemedia.Internal
        assert e.message == ("the server's response: output 'x' item 0: tensor shape [2] needs "
                             "2 values of float32 (8 bytes), 5 bytes given")


def test_stream_metrics_not_finite(srv):
    def handler(requests, ctx):
        next(requests)
        yield ready()
        yield pb.StreamResponse(metrics=pb.StreamMetrics(metrics=not_finite_metrics(float("nan"))))
        srv.hang(ctx)
    for got, e in stream_both(srv, handler):
        assert got == []
        assert type(e) is remotemedia.Internal and not e.from_server
        assert e.message == ("the server's response: metrics node 'a': avg_duration_us is nan "
                             "(metrics are finite)")


def test_stream_undefined_status_code(srv):
    def handler(requests, ctx):
        next(requests)
        yield ready()
        status(ctx, 99, "weird")
    (_, sync_e), (_, async_e) = stream_both(srv, handler)
    assert sync_e.code == grpc.StatusCode.UNKNOWN
    assert type(async_e) is remotemedia.RemoteMediaError  # was KeyError
    assert async_e.message == ("the server ended the call with status code 99, which gRPC does "
                               "not define: weird")


def test_stream_result_before_ready(srv):
    def handler(requests, ctx):
        next(requests)
        yield pb.StreamResponse(result=pb.StreamResult(sequence=1))
    for got, e in stream_both(srv, handler):
        assert type(e) is remotemedia.RemoteMediaError and e.code == grpc.StatusCode.INTERNAL
        assert e.message == "the server did not answer init with ready"
