"""Limits are enforced with RESOURCE_EXHAUSTED, configurable, and a request may lower them
but never raise them."""
import json
import threading

import grpc
import numpy as np
import pytest

from conftest import assert_serving, audio_request, chain, trailers
from rmtest.server import RunningServer
from remotemedia.v1 import pipeline_service_pb2_grpc as psg

RE = grpc.StatusCode.RESOURCE_EXHAUSTED


def err_of(stub, req, timeout=30):
    with pytest.raises(grpc.RpcError) as e:
        stub.ExecutePipeline(req, timeout=timeout)
    return e.value


def test_oversize_message_is_resource_exhausted():
    with RunningServer(["--max-message-bytes", "1048576"]) as srv, srv.channel(
            options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}))
        err = err_of(stub, audio_request(m, samples=np.zeros(300_000, np.float32)))  # 1.2 MB
        assert err.code() == RE
        # just under the limit passes
        r = stub.ExecutePipeline(audio_request(m, samples=np.zeros(200_000, np.float32)), timeout=30)
        assert len(r.outputs["g"].items[0].audio.samples) == 800_000
        assert_serving(stub)


@pytest.mark.parametrize("tokens", [False, True], ids=["read-with-the-call", "read-after-auth"])
def test_a_message_above_max_message_bytes_is_answered_counted_and_logged_by_the_server(tokens):
    """The server checks the size of each message it receives (the core's own check, which comes
    once it has taken the message in too, failed the call unseen: nothing counted or logged
    without tokens, "CANCELLED, client_cancelled" with them): RESOURCE_EXHAUSTED with field
    max_message_bytes, counted and logged as such with the peer, for ExecutePipeline, a health
    Check and a reflection stream; the server serves on."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g
    from rmtest.server import grpc_counter
    args = ["--max-message-bytes", "4096", "--metrics-listen", "127.0.0.1:0"]
    md = None
    if tokens:
        args += ["--auth-tokens", "tok-1"]
        md = [("authorization", "Bearer tok-1")]
    with RunningServer(args, ready_metadata=md) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), name="oversize")
        req = audio_request(m, samples=np.zeros(2000, np.float32))
        size = req.ByteSize()
        with pytest.raises(grpc.RpcError) as e:
            stub.ExecutePipeline(req, metadata=md, timeout=30)
        err = e.value
        assert err.code() == RE
        assert err.details() == f"the request message is {size} bytes, above max-message-bytes 4096"
        t = trailers(err)
        assert (t["rm-error-kind"], t["rm-field"], t["grpc-retry-pushback-ms"]) == \
            ("limit_exceeded", "max_message_bytes", "-1")
        check = health_pb2.HealthCheckRequest(service="x" * 5000)
        with pytest.raises(grpc.RpcError) as e:
            health_pb2_grpc.HealthStub(ch).Check(check, metadata=md, timeout=30)
        assert e.value.code() == RE
        assert e.value.details() == \
            f"the request message is {check.ByteSize()} bytes, above max-message-bytes 4096"
        refl = r1.ServerReflectionRequest(file_containing_symbol="y" * 5000)
        with pytest.raises(grpc.RpcError) as e:
            list(r1g.ServerReflectionStub(ch).ServerReflectionInfo(iter([refl]), metadata=md,
                                                                    timeout=30))
        assert e.value.code() == RE
        assert trailers(e.value)["rm-field"] == "max_message_bytes"
        text = srv.metrics_text()
        for method in ("ExecutePipeline", "Check", "ServerReflectionInfo"):
            assert grpc_counter(text, "grpc_server_handled_total", method,
                                grpc_code="ResourceExhausted") == 1, method
        line = srv.wait_for_event("call", 10, lambda c: c["status"] == "RESOURCE_EXHAUSTED"
                                  and c["method"].endswith("/ExecutePipeline"))
        assert line["error_kind"] == "limit_exceeded" and line["error"] == err.details()
        assert line["peer"].startswith("ipv4:127.0.0.1:")
        assert "client_cancelled" not in line and "client_gone" not in line
        r = stub.ExecutePipeline(audio_request(m, samples=np.zeros(100, np.float32)),
                                 metadata=md, timeout=30)
        assert len(r.outputs["src"].items[0].audio.samples) == 400


def test_response_too_large_is_resource_exhausted():
    # Chunk of 1-frame items multiplies per-item overhead: the response outgrows the limit
    # (with the item limit raised out of the way).
    with RunningServer(["--max-message-bytes", "1048576", "--max-items", "1000000"]) as srv, \
            srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), ("c", "Chunk", {"frames": 1}))
        err = err_of(stub, audio_request(m, samples=np.zeros(200_000, np.float32)))
        assert err.code() == RE
        assert "above max-message-bytes 1048576" in err.details()
        assert trailers(err)["rm-field"] == "max_message_bytes"
        assert_serving(stub)


def test_too_many_nodes():
    with RunningServer(["--max-nodes", "4"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        nodes = [("src", "PassThrough", {})] + [("g%d" % i, "Gain", {"db": 0}) for i in range(4)]
        err = err_of(stub, audio_request(chain(*nodes)))
        assert err.code() == RE
        assert err.details() == "pipeline has 5 nodes, above the limit of 4"
        assert trailers(err)["rm-error-kind"] == "limit_exceeded"
        stub.ExecutePipeline(audio_request(chain(*nodes[:4])))  # 4 is fine
        # the request may lower the limit
        req = audio_request(chain(*nodes[:4]))
        req.limits.max_nodes = 3
        assert err_of(stub, req).details() == "pipeline has 4 nodes, above the limit of 3"
        # but not raise it
        req = audio_request(chain(*nodes))
        req.limits.max_nodes = 1000
        assert err_of(stub, req).details() == "pipeline has 5 nodes, above the limit of 4"


def test_audio_samples_and_input_bytes():
    with RunningServer(["--max-audio-samples", "1000", "--max-input-bytes", "8000"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}))
        err = err_of(stub, audio_request(m, samples=np.zeros(1001, np.float32)))
        assert err.code() == RE
        assert err.details() == "input for node 'src' holds 1001 audio samples, above the limit of 1000"
        assert (trailers(err)["rm-failing-node"], trailers(err)["rm-field"]) == ("src", "samples")
        err = err_of(stub, audio_request(m, samples=np.zeros(2001, np.int32).astype(np.float32)))
        assert err.code() == RE
        assert err.details() == "the inputs hold 8004 bytes, above the limit of 8000"
        # buffers a node produces are limited too: stereo doubles the samples
        mono_to_stereo = chain(("src", "PassThrough", {}), ("st", "ChannelMix", {"mode": "stereo"}))
        err = err_of(stub, audio_request(mono_to_stereo, samples=np.zeros(600, np.float32)))
        assert err.code() == RE
        assert err.details() == "node 'st' (ChannelMix): output holds 1200 audio samples, above the limit of 1000"
        req = audio_request(m, samples=np.zeros(600, np.float32))
        req.limits.max_audio_samples = 500
        assert err_of(stub, req).code() == RE
        req.limits.max_audio_samples = 0  # 0 = server default
        stub.ExecutePipeline(req)
        assert_serving(stub)


def test_concurrency_overflow_is_immediate():
    with RunningServer(["--max-concurrent", "2", "--log-level", "debug"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 1500}), name="slow")
        futures = [stub.ExecutePipeline.future(audio_request(slow)) for _ in range(2)]
        assert srv.wait_for_count("pipeline_start", 2, 10, lambda e: e["pipeline"] == "slow")
        # both slots are taken until the Delays end: a third call is refused at once
        err = err_of(stub, audio_request(chain(("src", "PassThrough", {}), name="third")), timeout=1.0)
        assert err.code() == RE
        assert err.details() == ("the server is already running its limit of 2 pipelines (max-concurrent); "
                                 "retry later")
        assert trailers(err)["rm-field"] == "max_concurrent"
        for f in futures:
            assert f.result(timeout=30).node_results[1].state == 1
        assert_serving(stub)


def test_slow_pipelines_do_not_block_fast_calls():
    """Heavy pipelines run on workers: a fast call completes while slow ones are running."""
    with RunningServer(["--threads", "1", "--workers", "3", "--log-level", "debug"]) as srv, \
            srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 3000}), name="slow")
        futures = [stub.ExecutePipeline.future(audio_request(slow)) for _ in range(3)]
        assert srv.wait_for_count("pipeline_start", 3, 10, lambda e: e["pipeline"] == "slow")
        done = threading.Event()
        fast = stub.ExecutePipeline.future(audio_request(chain(("src", "PassThrough", {}), name="fast")))
        fast.add_done_callback(lambda f: done.set())
        assert done.wait(30)
        assert fast.result().outputs["src"].items[0].audio.sample_rate == 16000
        # the fast call finished before any slow one
        assert not any(f.done() for f in futures)
        for f in futures:
            f.result(timeout=30)


def test_items_and_connections_are_bounded():
    with RunningServer(["--max-items", "100", "--max-nodes", "4"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        m = chain(("src", "PassThrough", {}), ("c", "Chunk", {"frames": 1}))
        err = err_of(stub, audio_request(m, samples=np.zeros(101, np.float32)))
        assert err.code() == RE
        assert err.details() == "node 'c' (Chunk): the run produced more than 100 items, the limit"
        assert (trailers(err)["rm-failing-node"], trailers(err)["rm-field"]) == ("c", "items")
        ok = stub.ExecutePipeline(audio_request(m, samples=np.zeros(99, np.float32)))
        assert len(ok.outputs["c"].items) == 99  # 99 chunks + the request's own item
        # 4 nodes may have at most 64 connections
        from conftest import manifest
        many = manifest([("src", "PassThrough", {}), ("p", "PassThrough", {})], [("src", "p")] * 65)
        err = err_of(stub, audio_request(many))
        assert err.code() == RE
        assert err.details() == "pipeline has 65 connections, above the limit of 64"
        assert_serving(stub)


def test_request_of_many_tiny_parts_is_refused_before_it_is_expanded(stub):
    # 300k one-byte output_nodes: a 0.9 MB message that would unpack into ~7 MB of structs
    req = audio_request(chain(("src", "PassThrough", {})))
    req.output_nodes.extend(["x"] * 300_000)
    err = err_of(stub, req)
    assert err.code() == RE
    assert "too many small parts" in err.details()
    assert trailers(err)["rm-error-kind"] == "limit_exceeded"
    assert trailers(err)["rm-field"] == "structures"
    # counts are checked before anything is parsed or compiled
    req = audio_request(chain(("src", "PassThrough", {})))
    req.output_nodes.extend(["src"] * 300)
    err = err_of(stub, req)
    assert err.details() == "the request names 300 output_nodes, above the limit of 256"
    m = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}))
    m.nodes[1].params = json.dumps({"db": 0, "pad": "x" * (1 << 20)})
    err = err_of(stub, audio_request(m))
    assert err.code() == RE and err.details().startswith("node params total 10")
    assert_serving(stub)
