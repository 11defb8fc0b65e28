"""Concurrent calls share one channel: 8 asyncio tasks on one grpc.aio channel, and 4 threads
on one blocking channel, each checking its own exact result."""
import asyncio
import threading

import numpy as np

from conftest import arun, sine
from remotemedia import Client, Pipeline
from remotemedia.nodes import Delay, Gain

TASKS = 8
ROUNDS = 5


def expected(i, x):
    return (x.astype(np.float64) * 10 ** (-i / 20)).astype(np.float32)


def test_eight_asyncio_tasks_one_channel(remote):
    x = sine(16000, 16000)

    async def main():
        async with Client(remote) as client:
            pipelines = []
            for i in range(TASKS):
                p = Pipeline("task-%d" % i, remote=client, enable_metrics=True)
                # a short Delay keeps the calls in flight together on the server
                p.add_node(Delay(ms=20, node_id="d")).add_node(Gain(db=-i, node_id="g"))
                pipelines.append(p)

            async def worker(i):
                outs = []
                for _ in range(ROUNDS):
                    r = await pipelines[i].execute(x, sample_rate=16000)
                    outs.append((r.output("g"), r.metrics["pipeline_id"]))
                return outs

            results = await asyncio.gather(*(worker(i) for i in range(TASKS)))
            return results, client.channels_opened
    results, opened = arun(main())
    assert opened == 1
    assert len(results) == TASKS
    for i, outs in enumerate(results):
        assert len(outs) == ROUNDS
        for out, pid in outs:
            assert pid == "task-%d" % i
            np.testing.assert_allclose(out.samples, expected(i, x), rtol=0, atol=1e-6)


def test_four_threads_one_blocking_channel(remote):
    x = sine(8000, 8000)
    errors, results = [], {}
    with Client(remote) as client:
        def worker(i):
            try:
                p = Pipeline(remote=client)
                p.add_node(Gain(db=-i))
                results[i] = [p.run_sync(x, sample_rate=8000) for _ in range(ROUNDS)]
            except Exception as e:  # reported below with the thread's index
                errors.append((i, e))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.channels_opened == 1
    assert errors == []
    for i in range(4):
        for out in results[i]:
            np.testing.assert_allclose(out.samples, expected(i, x), rtol=0, atol=1e-6)
