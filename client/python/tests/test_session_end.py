"""How a streaming session ends when the server ends it first, or when its opening is
cancelled. Regressions:

- send() waited forever once the server had ended the session (its drain on SIGTERM, its
  idle timeout) while a result was unread: grpc.aio withholds a call's status until every
  message before it has been read, and a write on such a call never completes;
- stream() raised RemoteMediaError with code OK ("the stream has ended") for a session the
  server drained;
- cancelling StreamSession.open() before gRPC had sent the call's headers left the call
  un-cancelled (its status task pending for ever).

A server drained, or with its own idle timeout, is the test's own."""
import asyncio

import grpc
import numpy as np
import pytest

from conftest import arun, sine
from rmtest.server import RunningServer
from remotemedia import (DeadlineExceeded, InvalidArgument, Pipeline, RemoteConfig,
                         StreamSession, Unavailable)
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


def test_stream_keeps_back_pressure_from_a_stalled_consumer(server):
    """A guard on the fix above: a send that waits reads ahead, so that it sees the call's
    end, but stream() must not - its reader reads when its consumer asks - or a consumer
    slower than the server would no longer hold back the chunks (gRPC flow control) and the
    results would pile up in memory. The consumer stalls after the first result: the
    source is pulled only as far as the HTTP/2 windows take (about 11 chunks of 1 MiB
    here), never the 50 that a stream reading ahead reaches within seconds."""
    p = gain(server)
    big = np.zeros(262144, np.float32)  # 1 MiB
    pulled = 0

    def chunks():
        nonlocal pulled
        for _ in range(120):
            pulled += 1
            yield big

    async def main():
        gen = p.stream(chunks(), sample_rate=RATE)
        async for _ in gen:
            for _ in range(100):  # bounded: 10 s at most, ended early only by a regression
                if pulled >= 50:
                    break
                await asyncio.sleep(0.1)
            break
        await gen.aclose()
        await p.close()
    arun(main())
    assert pulled < 50


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


class _Refused(grpc.RpcError):
    """The status of a call the server refused at init, as grpc.aio raises it."""

    def code(self):
        return grpc.StatusCode.INVALID_ARGUMENT

    def details(self):
        return "bad init"

    def trailing_metadata(self):
        return ()


class _RefusedCall:
    """A grpc.aio call whose status came in before its init was written: the write fails
    (grpc.aio raises the status once it has it) and the read raises the status."""

    def __init__(self):
        self.cancelled = False

    async def write(self, request):
        raise _Refused()

    async def read(self):
        raise _Refused()

    def cancel(self):
        self.cancelled = True
        return True


def test_open_of_a_stream_whose_init_write_fails_raises_the_status():
    """Regression (found while fixing the above): stream()'s session waits for the end its
    reader meets instead of reading ahead, but open() runs before that reader: when the
    server's refusal arrived before the init's write completed, open() waited for ever."""
    call = _RefusedCall()
    s = StreamSession(lambda on_close: call, init=None)
    s._reads_ahead = False  # as Pipeline.stream() sets it

    async def main():
        with pytest.raises(InvalidArgument) as ei:
            await asyncio.wait_for(s.open(), HANG_S)
        return ei.value
    e = arun(main())
    assert (e.message, call.cancelled) == ("bad init", True)
