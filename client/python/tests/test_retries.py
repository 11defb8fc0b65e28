"""ExecutePipeline is retried by the channel's service config (RemoteConfig.retry): against a
small grpcio PipelineService that answers UNAVAILABLE (as a draining replica does) or
RESOURCE_EXHAUSTED (a full server) a given number of times, then succeeds, counting the
attempts it saw."""
import json
import re
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

from conftest import arun
from remotemedia import (Client, InvalidArgument, Pipeline, RemoteConfig, ResourceExhausted,
                         RetryPolicy, Unavailable)
from remotemedia import _proto
from remotemedia.nodes import Gain

pb = _proto.pipeline_service_pb2


class FlakyServer:
    """PipelineService on 127.0.0.1:<ephemeral>: the first `failures` ExecutePipeline calls
    fail with `code`, the others answer with the request's input as the output of node "g"."""

    def __init__(self):
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.attempts = 0
        self.list_attempts = 0
        self._lock = threading.Lock()
        handlers = {
            "ExecutePipeline": grpc.unary_unary_rpc_method_handler(
                self._execute, request_deserializer=pb.ExecuteRequest.FromString,
                response_serializer=pb.ExecuteResponse.SerializeToString),
            "ListNodeTypes": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=pb.ListNodeTypesRequest.FromString,
                response_serializer=pb.ListNodeTypesResponse.SerializeToString),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "remotemedia.v1.PipelineService", handlers)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def reset(self, failures, code=grpc.StatusCode.UNAVAILABLE):
        with self._lock:
            self.failures, self.code, self.attempts, self.list_attempts = failures, code, 0, 0

    def _execute(self, request, context):
        with self._lock:
            self.attempts += 1
            fail = self.attempts <= self.failures
        if fail:
            context.abort(self.code, "draining: retry on another replica")
        resp = pb.ExecuteResponse(pipeline_name=request.manifest.name)
        out = resp.outputs["g"]
        out.node_id = "g"
        out.items.add().CopyFrom(next(iter(request.inputs.values())))
        return resp

    def _list(self, request, context):
        with self._lock:
            self.list_attempts += 1
        context.abort(grpc.StatusCode.UNAVAILABLE, "draining")

    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.server.stop(None)


@pytest.fixture(scope="module")
def flaky():
    srv = FlakyServer()
    yield srv
    srv.stop()


def run_gain(remote, asynchronous=False):
    p = Pipeline("retry", remote=remote)
    p.add_node(Gain(db=0, node_id="g"))
    x = np.float32([0.5, -0.5])
    if asynchronous:
        async def main():
            try:
                return await p.run(x, sample_rate=8000)
            finally:
                await p.close()
        return arun(main())
    with p:
        return p.run_sync(x, sample_rate=8000)


FAST = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)


def test_the_default_policy():
    cfg = RemoteConfig("h:1")
    assert cfg.retry == RetryPolicy()
    sc = json.loads(dict(cfg.channel_options())["grpc.service_config"])
    assert sc == {"methodConfig": [{
        "name": [{"service": "remotemedia.v1.PipelineService", "method": "ExecutePipeline"}],
        "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "2s",
                        "backoffMultiplier": 2.0,
                        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]}}]}
    opts = dict(cfg.channel_options())
    assert (opts["grpc.enable_retries"], opts["grpc.per_rpc_retry_buffer_size"]) == (1, 16 << 20)
    off = dict(RemoteConfig("h:1", retry=None).channel_options())
    assert "grpc.service_config" not in off and off["grpc.enable_retries"] == 0


@pytest.mark.parametrize("asynchronous", [False, True])
def test_unavailable_is_retried(flaky, asynchronous):
    flaky.reset(failures=2)
    out = run_gain(RemoteConfig(flaky.address(), retry=FAST, timeout=30), asynchronous)
    assert out.samples.tolist() == [0.5, -0.5]
    assert flaky.attempts == 3


def test_resource_exhausted_is_retried(flaky):
    flaky.reset(failures=1, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert run_gain(RemoteConfig(flaky.address(), retry=FAST, timeout=30)).frames == 2
    assert flaky.attempts == 2


def test_attempts_are_bounded(flaky):
    flaky.reset(failures=10)
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)
    with pytest.raises(Unavailable, match="draining"):
        run_gain(RemoteConfig(flaky.address(), retry=policy, timeout=30))
    assert flaky.attempts == 3


def test_retries_off(flaky):
    flaky.reset(failures=1)
    with pytest.raises(Unavailable):
        run_gain(RemoteConfig(flaky.address(), retry=None, timeout=30))
    assert flaky.attempts == 1


def test_only_the_listed_codes_are_retried(flaky):
    flaky.reset(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(InvalidArgument):
        run_gain(RemoteConfig(flaky.address(), retry=FAST, timeout=30))
    assert flaky.attempts == 1
    flaky.reset(failures=1, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    only_unavailable = RetryPolicy(initial_backoff_s=0.01, retryable_codes=("UNAVAILABLE",))
    with pytest.raises(ResourceExhausted):
        run_gain(RemoteConfig(flaky.address(), retry=only_unavailable, timeout=30))
    assert flaky.attempts == 1


def test_only_execute_pipeline_is_retried(flaky):
    flaky.reset(failures=0)
    with Client(RemoteConfig(flaky.address(), retry=FAST, timeout=30)) as c:
        with pytest.raises(Unavailable):
            c.list_node_types_sync()
    assert flaky.list_attempts == 1


def test_policy_checks():
    for bad in ({"max_attempts": 1}, {"max_attempts": 6}, {"initial_backoff_s": 0},
                {"max_backoff_s": 0.01}, {"backoff_multiplier": float("nan")},
                {"retryable_codes": ("OK",)}, {"retryable_codes": ("NOPE",)},
                {"retryable_codes": ()}, {"per_rpc_buffer_bytes": -1}):
        with pytest.raises(ValueError, match="RetryPolicy"):
            RetryPolicy(**bad)
    with pytest.raises(ValueError, match="retry must be a RetryPolicy or None"):
        RemoteConfig("h:1", retry=3)
    p = RetryPolicy(max_attempts=5, initial_backoff_s=0.25, max_backoff_s=1.5,
                    backoff_multiplier=1.5, retryable_codes=["UNAVAILABLE"])
    assert p.method_config()["retryPolicy"] == {
        "maxAttempts": 5, "initialBackoff": "0.25s", "maxBackoff": "1.5s",
        "backoffMultiplier": 1.5, "retryableStatusCodes": ["UNAVAILABLE"]}


def test_options_replace_the_clients_own_channel_arguments(flaky):
    """RemoteConfig.options "applied last" did not override: gRPC keeps the first value of an
    argument given twice, so grpc.enable_retries=0 here still retried. The caller's value
    replaces the client's; the message sizes are max_message_bytes' alone."""
    cfg = RemoteConfig(flaky.address(), retry=FAST, timeout=30,
                       options=[("grpc.enable_retries", 0), ("grpc.primary_user_agent", "mine")])
    opts = cfg.channel_options()
    assert [v for k, v in opts if k == "grpc.enable_retries"] == [0]
    assert [v for k, v in opts if k == "grpc.primary_user_agent"] == ["mine"]
    flaky.reset(failures=1)
    with pytest.raises(Unavailable):
        run_gain(cfg)
    assert flaky.attempts == 1
    for key in ("grpc.max_send_message_length", "grpc.max_receive_message_length"):
        with pytest.raises(ValueError, match=re.escape(
                "RemoteConfig: options may not set %s: set max_message_bytes (the largest "
                "request or response)" % key) + "$"):
            RemoteConfig("h:1", options=[(key, 1 << 20)])
