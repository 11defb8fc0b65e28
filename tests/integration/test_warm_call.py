"""The server's own warm call (--warm-call, off by default): one ExecutePipeline call to its own
listening address before it reports SERVING, so that a client's first call does not fault in
the transport's and the call path's code. It is not a client's call: not counted, not logged as
a call, its pipeline not cached, and what it used is given back."""
import re

import pytest

from conftest import ps, psg
from rmtest.server import RunningServer

SAMPLES_BYTES = 16384 * 4  # the warm call's PassThrough of f32 samples (server/warm_call.c)


def series(body, name, label=""):
    """Every sample value of the metric `name` in a Prometheus exposition whose labels hold
    `label`."""
    return [float(v) for labels, v in re.findall(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name),
                                                 body, re.M) if label in labels]


def test_the_warm_call_runs_before_serving_and_is_not_a_clients():
    with RunningServer(["--metrics-listen", "127.0.0.1:0", "--warm-bytes", "0", "--warm-call=true"]) as srv:
        (ev,) = srv.events("warm_call")
        assert ev["level"] == "info" and ev["code"] == 0
        assert ev["target"] == f"ipv4:127.0.0.1:{srv.port}"
        # the samples came back, with the response's framing and metrics around them
        assert SAMPLES_BYTES < ev["response_bytes"] < SAMPLES_BYTES + 1024
        order = [e["event"] for e in srv.events()]
        assert order.index("warm_call") < order.index("listening")
        body = srv.metrics_text()
        # (the health checks RunningServer waited with are the only calls counted)
        execute = 'grpc_method="ExecutePipeline"'
        assert series(body, "grpc_server_started_total", execute) == [0.0]
        assert set(series(body, "grpc_server_handled_total", execute)) == {0.0}
        # neither its compiled pipeline (cached, ~128 KB) nor its response (64 KiB) stayed
        # charged: what is left is its call object, kept for the next call (4.5 KB)
        assert int(series(body, "remotemedia_memory_budget_bytes")[0]) < 64 * 1024
        with srv.channel() as ch:
            st = psg.PipelineServiceStub(ch).GetStatistics(ps.GetStatisticsRequest(), timeout=30)
        assert list(st.pipelines) == []
        assert [n.node_type for n in st.node_types if n.stats.compute.count] == []
    # the whole log, flushed at exit: no call line of it (the health checks' are there)
    calls = [e["method"] for e in srv.events("call")]
    assert calls and all(m == "/grpc.health.v1.Health/Check" or m.endswith("GetStatistics")
                         for m in calls), calls


def test_the_warm_call_is_off_by_default():
    with RunningServer() as srv:
        assert srv.events("warm_call") == []
        assert srv.events("listening")


@pytest.mark.parametrize("listen,host", [("0.0.0.0:0", "ipv4:127.0.0.1"),
                                         ("[::]:0", "ipv4:127.0.0.1"),
                                         ("[::1]:0", "ipv6:[::1]")])
def test_the_warm_call_reaches_the_listener_by_address(listen, host):
    """A wildcard host is reached at 127.0.0.1 (gRPC listens on [::] dual-stack); numeric
    addresses go as ipv4:/ipv6: targets, which need no resolver. An http_proxy in the
    environment is not used."""
    with RunningServer(["--listen", listen, "--warm-call=true"], wait_ready=False,
                       env={"http_proxy": "http://127.0.0.1:9", "grpc_proxy": "http://127.0.0.1:9"}) as srv:
        (ev,) = srv.events("warm_call")
        assert ev["code"] == 0 and ev["target"] == f"{host}:{srv.port}"


def test_the_warm_call_reaches_a_unix_socket(tmp_path):
    path = f"unix:{tmp_path}/rm.sock"
    with RunningServer(["--listen", path, "--warm-call=true"], wait_ready=False) as srv:
        (ev,) = srv.events("warm_call")
        assert ev["code"] == 0 and ev["target"] == path


def test_the_warm_call_keeps_within_small_limits():
    """Limits below its 64 KiB: it sends what they allow, and succeeds."""
    with RunningServer(["--max-input-bytes", "1000", "--max-message-bytes", "4096",
                        "--warm-call=true"]) as srv:
        (ev,) = srv.events("warm_call")
        assert ev["code"] == 0 and ev["level"] == "info"
        # 250 samples of 4 bytes came back, with the response's framing and metrics
        assert 1000 < ev["response_bytes"] < 1000 + 1024
