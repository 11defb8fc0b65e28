"""How a streaming session ends when the server ends it first, or when its opening is
cancelled. Regressions:

- send() waited forever once the server had ended the session (its drain on SIGTERM, its
  idle timeout) while a result was unread: grpc.aio withholds a call's status until every
  message before it has been read, and a write on such a call never completes;
- stream() raised RemoteMediaError with code OK ("the stream has ended") for a session the
  server drained;
- cancelling StreamSession.open() before gRPC had sent the call's headers left the call
  un-cancelled (its status task pending for ever).

Each server here is the test's own (it is drained, or needs its own idle timeout)."""
import asyncio

import grpc
import pytest

from conftest import arun, sine
from rmtest.server import RunningServer
from remotemedia import DeadlineExceeded, Pipeline, RemoteConfig, Unavailable
from remotemedia.nodes import Gain

HANG_S = 60.0  # a bound only a hang reaches: these waits end at once when the code is right
RATE = 16000
CHUNK = sine(1600, RATE)
DRAINED = ("the server ended the session before the client closed it (status OK, as a "
           "draining server does)")


def gain(srv):
    p = Pipeline("g", remote=RemoteConfig(srv.address(), timeout=HANG_S))
    p.add_node(Gain(db=-6, node_id="g"))
    return p


def session_ended(srv):
    """The server's log line for the session, written once it has released it."""
    ev = srv.wait_for_event("call", HANG_S,
                            lambda e: e.get("method", "").endswith("/StreamPipeline"))
    assert ev is not None, srv.raw_log()
    return ev


def test_send_after_a_drain_with_an_unread_result_raises_unavailable():
    """A caller that paces itself (send, receive, send, ...); the server drains between two
    chunks, flushing and closing the session: its flushed result is unread when the next
    send() comes. That send raises Unavailable; receive() still returns the flushed result."""
    with RunningServer(["--grace-ms", "60000"]) as srv:
        p = gain(srv)

        async def main():
            s = await p.session().open()
            assert await s.send(CHUNK, sample_rate=RATE) == 1
            first = await s.receive()
            srv.signal()
            assert srv.wait_exit(HANG_S) == 0  # the drain has closed the session: status OK
            with pytest.raises(Unavailable) as ei:
                await asyncio.wait_for(s.send(CHUNK, sample_rate=RATE), HANG_S)
            rest = [await asyncio.wait_for(s.receive(), HANG_S) for _ in range(2)]
            await p.close()
            return first, ei.value, rest
        first, e, rest = arun(main())
    assert (first.sequence, first.flushed) == (1, False)
    assert (e.code, e.message, e.from_server) == (grpc.StatusCode.UNAVAILABLE, DRAINED, False)
    assert (rest[0].sequence, rest[0].flushed, rest[1]) == (1, True, None)


def test_send_after_an_idle_timeout_with_an_unread_result_raises_its_status():
    """The server's idle timeout ends a session whose result the client has not read: the
    next send() raises that status (DeadlineExceeded), then receive() returns the result
    that had arrived, then None."""
    with RunningServer(["--session-idle-timeout-ms", "300"]) as srv:
        p = gain(srv)

        async def main():
            s = await p.session().open()
            await s.send(CHUNK, sample_rate=RATE)
            assert session_ended(srv)["status"] == "DEADLINE_EXCEEDED"
            with pytest.raises(DeadlineExceeded) as ei:
                await asyncio.wait_for(s.send(CHUNK, sample_rate=RATE), HANG_S)
            rest = [await asyncio.wait_for(s.receive(), HANG_S) for _ in range(2)]
            await p.close()
            return ei.value, rest
        e, rest = arun(main())
    assert (e.message, e.field) == ("no message for 300 ms (session-idle-timeout-ms)",
                                    "session_idle_timeout_ms")
    assert (rest[0].sequence, rest[0].flushed, rest[1]) == (1, False, None)


def test_stream_of_a_drained_session_raises_unavailable_after_its_results():
    """pipeline.stream() over a paced source; the server drains after three chunks. The
    iteration yields the three results and the drain's flushed result, then raises
    Unavailable (never an error with code OK), so the caller can reconnect."""
    with RunningServer(["--grace-ms", "60000"]) as srv:
        p = gain(srv)

        async def main():
            drained = asyncio.Event()

            async def chunks():
                for _ in range(3):
                    yield CHUNK
                await drained.wait()
                while True:
                    yield CHUNK

            got = []
            with pytest.raises(Unavailable) as ei:
                async for r in p.stream(chunks(), sample_rate=RATE):
                    got.append(r)
                    if len(got) == 3:
                        srv.signal()
                        assert srv.wait_exit(HANG_S) == 0
                        drained.set()
            await p.close()
            return got, ei.value
        got, e = arun(asyncio.wait_for(main(), HANG_S))
    assert [(r.sequence, r.flushed) for r in got] == [(1, False), (2, False), (3, False),
                                                      (3, True)]
    assert (e.code, e.message, e.from_server) == (grpc.StatusCode.UNAVAILABLE, DRAINED, False)


def test_cancelling_open_before_the_headers_cancels_the_call():
    """open() cancelled right after it made the call (gRPC has not sent the headers yet):
    the call is cancelled, not left to the server's idle timeout."""
    with RunningServer(["--session-idle-timeout-ms", "600000"]) as srv:
        p = gain(srv)

        async def main():
            s = p.session()
            t = asyncio.ensure_future(s.open())
            await asyncio.sleep(0)  # open() has made the call and waits on gRPC
            assert s._call is not None and not s._call.done()
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            for _ in range(int(HANG_S / 0.05)):  # the cancel reaches grpc.aio's call soon
                if s._call.done():
                    break
                await asyncio.sleep(0.05)
            cancelled = s._call.cancelled()
            await p.close()
            return cancelled
        assert arun(main()) is True
