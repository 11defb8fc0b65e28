"""Client.close() and the client's channels per event loop. Regressions:

- close() said pending calls are cancelled, but an open streaming session survived it
  (it went on sending and receiving), and runs in flight ended with a bare
  asyncio.CancelledError in tasks nobody had cancelled: both raise remotemedia.Cancelled;
- one client used from two event loops (two threads) replaced its single grpc.aio channel
  at every switch of loop, opening a new channel each time and never closing the old;
- a session dropped with a read pending (a receive() that timed out, or a send() whose
  result came before its write was done) was kept alive by that read, and its call ended
  only at the server's idle timeout (30 s), not cancelled."""
import asyncio
import gc
import threading

import grpc
import numpy as np
import pytest

from conftest import arun, sine
from remotemedia import Cancelled, Client, Pipeline, RemoteConfig
from remotemedia.nodes import Delay, Gain

HANG_S = 60.0  # a bound only a hang reaches
RATE = 16000
CHUNK = sine(1600, RATE)


def gain(client):
    p = Pipeline("g", remote=client)
    p.add_node(Gain(db=-6.0206, node_id="g"))
    return p


def check_closed(e):
    assert type(e) is Cancelled, repr(e)
    assert (e.code, e.message, e.from_server) == (grpc.StatusCode.CANCELLED,
                                                  "the client was closed", False)


def test_close_cancels_an_open_session(server):
    remote = RemoteConfig(server.address(), timeout=HANG_S,
                          metadata=[("x-request-id", "close-session")])

    async def main():
        client = Client(remote)
        p = gain(client)
        s = await p.session().open()
        await s.send(CHUNK, sample_rate=RATE)
        first = await s.receive()
        await client.close()
        with pytest.raises(Cancelled) as ei:
            await asyncio.wait_for(s.send(CHUNK, sample_rate=RATE), HANG_S)
        after = await asyncio.wait_for(s.receive(), HANG_S)  # raised once: then the end
        await client.close()
        return first, ei.value, after
    first, e, after = arun(main())
    assert (first.sequence, after) == (1, None)
    check_closed(e)
    ev = server.wait_for_event("call", HANG_S, lambda e: e.get("request_id") == "close-session")
    assert (ev["method"], ev["status"]) == ("/remotemedia.v1.PipelineService/StreamPipeline",
                                            "CANCELLED")


def dropped_session_end(server, rid, leave_a_read_pending):
    """The server's call line for a session that sent a chunk, received its result and was
    then dropped without being closed (leave_a_read_pending: after a receive() that timed
    out), once the client has run a collection."""
    remote = RemoteConfig(server.address(), timeout=HANG_S, metadata=[("x-request-id", rid)])

    async def main():
        client = Client(remote)
        s = await gain(client).session().open()
        await s.send(CHUNK, sample_rate=RATE)
        await s.receive()
        if leave_a_read_pending:
            with pytest.raises(asyncio.TimeoutError):
                await s.receive(timeout=0.05)
        del s
        gc.collect()
        ev = await asyncio.get_running_loop().run_in_executor(
            None, server.wait_for_event, "call", HANG_S, lambda e: e.get("request_id") == rid)
        await client.close()
        return ev
    return arun(main())


def test_a_dropped_session_is_still_cancelled_when_collected(server):
    """The client tracks open sessions for close() weakly: a session dropped without being
    closed is garbage as before, and the call of a collected session is cancelled (the
    server frees it at once, not at its idle timeout)."""
    ev = dropped_session_end(server, "dropped-session", leave_a_read_pending=False)
    assert ev is not None and ev["status"] == "CANCELLED"


def test_a_dropped_session_with_a_read_pending_is_cancelled_when_collected(server):
    """A receive() that timed out leaves its read pending (the next receive picks it up);
    the pending read must not keep a dropped session, and so its call, alive: the server
    sees the call cancelled at once, not ended at its idle timeout. (The read a send()
    starts while it waits for flow control is left the same way when the result came
    before the write was done: the earlier test's rare failure.)"""
    ev = dropped_session_end(server, "dropped-pending", leave_a_read_pending=True)
    assert ev is not None and ev["status"] == "CANCELLED"


def test_close_makes_runs_in_flight_raise_cancelled(remote):
    """Runs in flight (a Delay of a minute) when the client is closed raise
    remotemedia.Cancelled; the pipeline works again afterwards, on a new channel."""
    async def main():
        client = Client(remote)
        slow = Pipeline("slow", remote=client)
        slow.add_node(Delay(ms=60000, node_id="d"))
        runs = [asyncio.ensure_future(slow.run(CHUNK, sample_rate=RATE, timeout=HANG_S * 2))
                for _ in range(3)]
        await client.get_version()  # the runs have been started on the channel
        assert not any(r.done() for r in runs)
        await client.close()
        outcomes = await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), HANG_S)
        again = await gain(client).run(CHUNK, sample_rate=RATE)
        opened = client.channels_opened
        await client.close()
        return outcomes, again, opened
    outcomes, again, opened = arun(main())
    assert len(outcomes) == 3
    for e in outcomes:
        check_closed(e)
    np.testing.assert_allclose(again.samples, CHUNK * np.float32(0.5), rtol=1e-3, atol=1e-6)
    assert opened == 2


def test_two_event_loops_keep_one_channel_each(remote):
    """Two threads, each with its own loop, take turns running one pipeline: A, B, A, B.
    Each loop keeps its channel (two in all), and each loop's close() closes its own."""
    client = Client(remote)
    p = gain(client)
    turns = [threading.Event() for _ in range(4)]  # turns[i] is set when turn i is done
    outs, errors = {}, []

    def worker(name, mine):
        async def main():
            got = []
            for i in mine:
                if i > 0:
                    await asyncio.get_running_loop().run_in_executor(None, turns[i - 1].wait,
                                                                     HANG_S)
                got.append(await p.run(np.full(160, i + 1, np.float32), sample_rate=RATE))
                turns[i].set()
            await asyncio.get_running_loop().run_in_executor(None, turns[3].wait, HANG_S)
            await client.close()
            return got
        try:
            outs[name] = asyncio.run(main())
        except BaseException as e:  # reported below
            errors.append((name, e))
            for t in turns:
                t.set()

    threads = [threading.Thread(target=worker, args=("A", [0, 2])),
               threading.Thread(target=worker, args=("B", [1, 3]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_S * 4)
    assert errors == []
    for name, turns_run in (("A", [0, 2]), ("B", [1, 3])):
        assert len(outs[name]) == 2
        for out, i in zip(outs[name], turns_run):
            np.testing.assert_allclose(out.samples, np.full(160, (i + 1) * 0.5, np.float32),
                                       rtol=1e-4)
    assert client.channels_opened == 2
