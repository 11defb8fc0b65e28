"""Every error path raises its typed exception, with the gRPC code, the message and the
failing node and field from the server's trailers."""
import json
import pickle
import re

import grpc
import numpy as np
import pytest

from conftest import arun, sine
from rmtest.server import RunningServer
from remotemedia import (Cancelled, Client, DeadlineExceeded, InvalidArgument, Json, Node,
                         NotFound, Pipeline, RemoteConfig, RemoteMediaError, ResourceExhausted,
                         Unauthenticated, Unavailable)
from remotemedia.nodes import Delay, Gain, PassThrough

TOKEN = "py-client-token.1"


def test_bad_param_from_the_server(remote):
    # validate=False: the client sends it, so the server's own check answers
    with Pipeline(remote=remote) as p:
        p.add_node(PassThrough(node_id="src")).add_node(Node("Gain", {"db": 100}, node_id="g",
                                                             validate=False))
        with pytest.raises(InvalidArgument) as e:
            p.run_sync(sine(100, 8000), sample_rate=8000)
    err = e.value
    assert err.from_server
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.node_id, err.field, err.kind) == ("g", "db", "invalid_params")
    assert "node 'g'" in err.message and "'db'" in err.message
    assert err.trailers["rm-failing-node"] == "g"
    assert isinstance(err, RemoteMediaError)


def test_bad_param_async(remote):
    p = Pipeline(remote=remote)
    p.add_node(Node("Gain", {"db": "loud"}, node_id="g", validate=False))

    async def main():
        try:
            await p.run(sine(100, 8000), sample_rate=8000)
        finally:
            await p.close()
    with pytest.raises(InvalidArgument) as e:
        arun(main())
    assert (e.value.node_id, e.value.field) == ("g", "db")
    assert "expected number, got string" in e.value.message


def test_bad_param_caught_by_the_client_first():
    with pytest.raises(InvalidArgument) as e:
        Gain(db=100, node_id="g")
    err = e.value
    assert not err.from_server
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.node_id, err.field, err.kind) == ("g", "db", "invalid_params")
    assert err.message == "node 'g' param 'db': 100 is out of range [-120, 60]"
    with pytest.raises(InvalidArgument) as e:
        Gain(gain=3)
    assert e.value.field == "gain" and "unknown param 'gain'" in e.value.message
    with pytest.raises(InvalidArgument) as e:
        Node("Gain", {"db": True})
    assert e.value.message == "Gain param 'db': expected number, got boolean"


def test_unknown_node_type(remote):
    with Pipeline(remote=remote) as p:
        p.add_node(Node("NoSuchNode", node_id="x"))
        with pytest.raises(NotFound) as e:
            p.run_sync(sine(10, 8000), sample_rate=8000)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert e.value.node_id == "x"
    assert e.value.kind == "unknown_node_type"
    assert "NoSuchNode" in e.value.message


def test_deadline(remote):
    with Pipeline(remote=remote) as p:
        p.add_node(Delay(ms=2000, node_id="d"))
        with pytest.raises(DeadlineExceeded) as e:
            p.run_sync(sine(10, 8000), sample_rate=8000, timeout=0.2)
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        # the server stays usable
        p.node("d").params["ms"] = 0
        assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.5]


def test_deadline_async(remote):
    p = Pipeline(remote=remote)
    p.add_node(Delay(ms=2000, node_id="d"))

    async def main():
        try:
            await p.run(sine(10, 8000), sample_rate=8000, timeout=0.2)
        finally:
            await p.close()
    with pytest.raises(DeadlineExceeded):
        arun(main())


def test_default_timeout_from_config(server):
    cfg = RemoteConfig(server.address(), timeout=0.2)
    with Pipeline(remote=cfg) as p:
        p.add_node(Delay(ms=2000))
        with pytest.raises(DeadlineExceeded):
            p.run_sync(sine(10, 8000), sample_rate=8000)



BAD_TIMEOUTS = [float("nan"), 0, -1, float("-inf"), "5", True]
TIMEOUT_RULE = r"must be a number of seconds > 0 \(None or inf: no deadline\), not "


@pytest.mark.parametrize("bad", BAD_TIMEOUTS, ids=repr)
def test_bad_timeouts_are_refused(remote, bad):
    """Regression (P2): nan, 0 and negative timeouts (per call or in RemoteConfig) went to
    gRPC and every call failed at once with DeadlineExceeded; they are ValueErrors naming
    the argument, raised before anything is sent."""
    with pytest.raises(ValueError, match="^RemoteConfig: timeout " + TIMEOUT_RULE):
        RemoteConfig(remote.address, timeout=bad)
    with Pipeline(remote=remote) as p:
        p.add_node(PassThrough())
        with pytest.raises(ValueError, match="^timeout " + TIMEOUT_RULE):
            p.run_sync(sine(10, 8000), sample_rate=8000, timeout=bad)
        with pytest.raises(ValueError, match="^timeout " + TIMEOUT_RULE):
            arun(p.run(sine(10, 8000), sample_rate=8000, timeout=bad))
        with pytest.raises(ValueError, match="^timeout " + TIMEOUT_RULE):
            p.health_check_sync(timeout=bad)
        with pytest.raises(ValueError, match="^timeout " + TIMEOUT_RULE):
            list(p.stream_sync([sine(10, 8000)], sample_rate=8000, timeout=bad))


def test_infinite_timeout_is_no_deadline(server):
    """Regression (P2): RemoteConfig(timeout=inf) passed the check, then gRPC made every
    call's deadline one that had already passed (DeadlineExceeded at once). inf means no
    deadline, in RemoteConfig and per call (where it also lifts the config's)."""
    inf = float("inf")
    with Pipeline(remote=RemoteConfig(server.address(), timeout=inf)) as p:
        p.add_node(PassThrough())
        assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.5]
        assert arun(p.run(np.float32([0.5]), sample_rate=8000)).samples.tolist() == [0.5]
        assert p.health_check_sync() == "SERVING"
    with Pipeline(remote=RemoteConfig(server.address(), timeout=0.1)) as p:
        p.add_node(Delay(ms=300))
        out = p.run_sync(np.float32([0.5]), sample_rate=8000, timeout=inf)
        assert out.samples.tolist() == [0.5]
        results = list(p.stream_sync([np.float32([0.5])], sample_rate=8000, timeout=inf))
        assert results[-1].flushed

def test_cancelled_task(remote):
    import asyncio

    async def main():
        async with Pipeline(remote=remote) as p:
            p.add_node(Delay(ms=5000))
            task = asyncio.ensure_future(p.run(sine(10, 8000), sample_rate=8000))
            await asyncio.sleep(0)  # let the call start
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the channel still works after the cancelled call
            p2 = Pipeline(remote=p.client)
            p2.add_node(Gain(db=0))
            out = await p2.run(np.float32([0.25]), sample_rate=8000)
            assert out.samples.tolist() == [0.25]
    arun(main())


def test_bad_input(remote):
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=0, node_id="g"))
        with pytest.raises(InvalidArgument) as e:
            p.run_sync({"not": "audio"})
    assert e.value.node_id == "g"
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=0, node_id="g"))
        with pytest.raises(InvalidArgument) as e:
            p.run_sync(inputs={"nobody": np.float32([0])}, sample_rate=8000)
    assert e.value.kind in ("invalid_input", "invalid_manifest")
    assert "nobody" in e.value.message


def test_resource_exhausted():
    with RunningServer(["--max-nodes", "2"]) as srv, \
            Pipeline(remote=RemoteConfig(srv.address(), timeout=60)) as p:
        p.add_node(PassThrough()).add_node(PassThrough()).add_node(PassThrough())
        with pytest.raises(ResourceExhausted) as e:
            p.run_sync(np.float32([0]), sample_rate=8000)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert e.value.kind == "limit_exceeded"
        # a per-call limit may lower the server's
        q = Pipeline(remote=p.client)
        q.add_node(PassThrough()).add_node(PassThrough())
        with pytest.raises(ResourceExhausted):
            q.run_sync(np.float32([0]), sample_rate=8000, limits={"max_nodes": 1})
        assert q.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.5]


def test_execution_time_limit_names_the_node(remote):
    with Pipeline(remote=remote) as p:
        p.add_node(PassThrough(node_id="src")).add_node(Delay(ms=2000, node_id="slow"))
        with pytest.raises(ResourceExhausted) as e:
            p.run_sync(np.float32([0]), sample_rate=8000, limits={"max_execution_ms": 50})
    assert (e.value.node_id, e.value.field, e.value.kind) == ("slow", "max_execution_ms",
                                                              "limit_exceeded")
    assert "50 ms" in e.value.message


def test_token():
    with RunningServer(["--auth-tokens", TOKEN]) as srv:
        good = RemoteConfig(srv.address(), token=TOKEN, timeout=60)
        bad = RemoteConfig(srv.address(), token="not-the-token", timeout=60)
        none = RemoteConfig(srv.address(), timeout=60)
        for cfg, expect in ((bad, "the bearer token is not valid"),
                            (none, "missing bearer token")):
            with Pipeline(remote=cfg) as p:
                p.add_node(Gain(db=0))
                with pytest.raises(Unauthenticated) as e:
                    p.run_sync(np.float32([0.5]), sample_rate=8000)
                assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
                assert e.value.kind == "unauthenticated"
                assert expect in e.value.message
                with pytest.raises(Unauthenticated):
                    p.list_node_types_sync()
                assert p.health_check_sync() == "SERVING"  # health is open to probes
        with Pipeline(remote=good) as p:
            p.add_node(Gain(db=HALF)).add_node(PassThrough())
            assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.25]
            assert "Gain" in {t.name for t in p.list_node_types_sync()}

            async def main():
                return await p.run(np.float32([1.0]), sample_rate=8000)
            assert arun(main()).samples.tolist() == [0.5]
    # the server's own log lines (not a wrapper's echo of its command line) never show it
    assert TOKEN not in "\n".join(json.dumps(ev) for ev in srv.events())


HALF = -6.020599913279624  # exactly 20*log10(0.5)


def test_unavailable(tmp_path):
    cfg = RemoteConfig("unix:" + str(tmp_path / "no-server.sock"), timeout=30)
    with Client(cfg) as c:
        with pytest.raises(Unavailable) as e:
            c.health_check_sync()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE

        async def main():
            try:
                await c.get_version()
            finally:
                await c.close()
        with pytest.raises(Unavailable):
            arun(main())


def test_errors_pickle_and_print():
    err = InvalidArgument("node 'g' param 'db': bad", grpc.StatusCode.INVALID_ARGUMENT,
                          node_id="g", field="db", kind="invalid_params")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is InvalidArgument
    assert (back.code, back.node_id, back.field, back.kind, back.message) == (
        err.code, "g", "db", "invalid_params", err.message)
    assert str(err) == "INVALID_ARGUMENT: node 'g' param 'db': bad (node=g, field=db, kind=invalid_params)"
    assert issubclass(Cancelled, RemoteMediaError)


U32, U64 = 2**32 - 1, 2**64 - 1
# (limits=, the ValueError's message): QA 7 saw protobuf's own errors, naming no limit, and
# a float truncated
BAD_LIMITS = [
    ({"max_nodes": -1}, "limits: max_nodes must be an integer 0..%d (0: the server's own "
     "limit), not -1" % U32),
    ({"max_audio_samples": 2**70}, "limits: max_audio_samples must be an integer 0..%d (0: "
     "the server's own limit), not %d" % (U64, 2**70)),
    ({"max_execution_ms": U32 + 1}, "limits: max_execution_ms must be an integer 0..%d (0: "
     "the server's own limit), not %d" % (U32, U32 + 1)),
    ({"max_execution_ms": 1.5}, "limits: max_execution_ms must be an integer 0..%d (0: the "
     "server's own limit), not 1.5" % U32),
    ({"max_input_bytes": 2.0}, "limits: max_input_bytes must be an integer 0..%d (0: the "
     "server's own limit), not 2.0" % U64),
    ({"max_memory_bytes": "1"}, "limits: max_memory_bytes must be an integer 0..%d (0: the "
     "server's own limit), not '1'" % U64),
    ({"max_nodes": True}, "limits: max_nodes must be an integer 0..%d (0: the server's own "
     "limit), not True" % U32),
    ({"max_nodes": 1, "bogus": 1, "other": 2}, "unknown limits: bogus, other"),
]


@pytest.mark.parametrize("limits, message", BAD_LIMITS, ids=repr)
def test_bad_limits_are_named_here(limits, message):
    p = Pipeline(remote="127.0.0.1:1")  # nothing is sent
    p.add_node(PassThrough())
    pattern = "^%s$" % re.escape(message)
    with pytest.raises(ValueError, match=pattern):
        p.run_sync(np.float32([0]), sample_rate=8000, limits=limits)
    with pytest.raises(ValueError, match=pattern):
        p.build_request(np.float32([0]), sample_rate=8000, limits=limits)
    with pytest.raises(ValueError, match=pattern):
        p.session(limits=limits)
    with pytest.raises(ValueError, match=pattern):
        next(p.stream_sync([np.float32([0])], sample_rate=8000, limits=limits))


def test_good_limits_are_sent_as_given():
    p = Pipeline()
    p.add_node(PassThrough())
    req = p.build_request(np.float32([0]), sample_rate=8000,
                          limits={"max_nodes": np.uint32(U32), "max_memory_bytes": U64,
                                  "max_execution_ms": 0})
    assert (req.limits.max_nodes, req.limits.max_memory_bytes) == (U32, U64)
    assert not p.build_request(np.float32([0]), sample_rate=8000, limits={}).HasField("limits")
    with pytest.raises(TypeError, match=r"^limits must be a dict \{name: int\}, not list$"):
        p.build_request(np.float32([0]), sample_rate=8000, limits=[("max_nodes", 1)])


def test_none_is_no_data():
    """QA 10: a bare None is no data (the parameter's default); JSON null is Json(None)."""
    p = Pipeline()
    p.add_node(PassThrough())
    with pytest.raises(ValueError, match=re.escape(
            "run() needs data (for the source node) or inputs={node_id: data} "
            "(data=None is no data: send JSON null as Json(None))") + "$"):
        p.run_sync(None)
    for req in (p.build_request(Json(None)), p.build_request(inputs={"pass_through": None})):
        assert req.inputs["pass_through"].json.json == "null"


def test_a_request_above_max_message_bytes_is_refused_here(remote):
    """Regression (QA 9): gRPC refused it itself, after serialising it, and it was reported
    with from_server=True. Nothing listens at 127.0.0.1:1: the refusal is the client's."""
    big = np.zeros(50000, np.float32)  # 200,000 bytes of audio
    message = ("the request is 200108 bytes, above RemoteConfig.max_message_bytes (100000): "
               "send long audio in chunks with Pipeline.stream()")
    cfg = RemoteConfig("127.0.0.1:1", max_message_bytes=100000)
    assert cfg.send_limit() == 100000
    assert RemoteConfig("127.0.0.1:1", max_message_bytes=-1).send_limit() is None
    with Pipeline(remote=cfg) as p:
        p.add_node(PassThrough())
        calls = [lambda: p.run_sync(big, sample_rate=16000),
                 lambda: p.validate_sync(big, sample_rate=16000),
                 lambda: arun(p.run(big, sample_rate=16000)),
                 lambda: arun(p.validate(big, sample_rate=16000))]
        for call in calls:
            with pytest.raises(ResourceExhausted) as e:
                call()
            err = e.value
            assert err.message == message
            assert (err.code, err.field, err.from_server, err.node_id, err.kind) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED, "max_message_bytes", False, None, None)
    # under the limit it is sent (and the server answers)
    small = RemoteConfig(remote.address, timeout=60, max_message_bytes=100000)
    with Pipeline(remote=small) as p:
        p.add_node(PassThrough())
        assert p.run_sync(big[:20000], sample_rate=16000).frames == 20000
