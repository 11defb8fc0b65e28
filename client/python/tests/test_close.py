"""The client's channels per event loop. Regression: one client used from two event loops
(two threads) replaced its single grpc.aio channel at every switch of loop, opening a new
channel each time and never closing the old."""
import asyncio
import threading

import numpy as np

from remotemedia import Client, Pipeline
from remotemedia.nodes import Gain

HANG_S = 60.0  # a bound only a hang reaches
RATE = 16000


def gain(client):
    p = Pipeline("g", remote=client)
    p.add_node(Gain(db=-6.0206, node_id="g"))
    return p


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
