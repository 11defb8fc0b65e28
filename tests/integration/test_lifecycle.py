"""Start-up configuration and the SIGTERM drain: health flips, new calls are refused,
in-flight calls finish, then a clean exit."""
import json
import signal
import socket
import subprocess
import threading

import grpc
import pytest

from conftest import assert_serving, audio_request, chain, trailers
from rmtest.server import RunningServer, server_binary
from remotemedia.v1 import pipeline_service_pb2_grpc as psg
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_drain_finishes_in_flight_and_refuses_new(sig):
    srv = RunningServer(["--grace-ms", "20000", "--log-level", "debug"]).start()
    try:
        with srv.channel() as ch:
            stub = psg.PipelineServiceStub(ch)
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="remotemedia.v1.PipelineService"),
                                 timeout=60)
            assert next(watch).status == SERVING
            slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 1500}), name="in-flight")
            fut = stub.ExecutePipeline.future(audio_request(slow), timeout=60)
            assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "in-flight")
            srv.signal(sig)
            assert next(watch).status == NOT_SERVING  # pushed to watchers
            assert health.Check(health_pb2.HealthCheckRequest()).status == NOT_SERVING
            with pytest.raises(grpc.RpcError) as e:
                stub.ExecutePipeline(audio_request(chain(("src", "PassThrough", {}))), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert trailers(e.value)["rm-error-kind"] == "unavailable"
            assert not fut.done()
            r = fut.result()  # the in-flight call completes normally
            assert [n.state for n in r.node_results] == [1, 1]
            assert r.outputs["d"].items[0].audio.sample_rate == 16000
        assert srv.stop() == 0
    finally:
        srv.kill()
    names = [e["event"] for e in srv.events() if e["event"] in ("draining", "stopping", "stopped")]
    assert names == ["draining", "stopping", "stopped"]
    assert srv.events("draining")[0]["signal"] == ("SIGTERM" if sig == signal.SIGTERM else "SIGINT")
    calls = [e for e in srv.events("call") if e.get("pipeline") == "in-flight"]
    assert len(calls) == 1 and calls[0]["status"] == "OK"


def test_grace_period_expiry_cancels_the_rest():
    srv = RunningServer(["--grace-ms", "300", "--log-level", "debug"]).start()
    try:
        with srv.channel() as ch:
            stub = psg.PipelineServiceStub(ch)
            slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 30000}), name="too-slow")
            fut = stub.ExecutePipeline.future(audio_request(slow), timeout=60)
            assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "too-slow")
            srv.signal(signal.SIGTERM)
            with pytest.raises(grpc.RpcError) as e:
                fut.result()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert srv.stop(timeout=30) == 0
    finally:
        srv.kill()
    call = [e for e in srv.events("call") if e.get("pipeline") == "too-slow"]
    assert len(call) == 1
    assert_cancelled_by_the_server(call[0])
    assert call[0]["duration_us"] < 10_000_000


def assert_cancelled_by_the_server(line):
    """A call line of a call the server cancelled at its stop: logged and counted as what the
    client got (UNAVAILABLE), not as the client's going, with the peer it had."""
    assert (line["status"], line["error_kind"], line["server_cancelled"]) == \
        ("UNAVAILABLE", "unavailable", True), line
    assert line["error"] == ("the server cancelled the call as it stopped (its grace period ran "
                             "out, a second signal, or a stream still open when the drain ended)")
    assert "client_gone" not in line and "client_cancelled" not in line
    assert line["peer"].startswith("ipv4:127.0.0.1:"), line


def test_a_watch_open_at_the_stop_is_logged_as_cancelled_by_the_server():
    """An idle drain ends the streams left (a health Watch) by cancelling every call: the
    client gets NOT_SERVING, then UNAVAILABLE, and the line says the server did it."""
    srv = RunningServer([]).start()
    try:
        with srv.channel() as ch:
            h = health_pb2_grpc.HealthStub(ch)
            watch = h.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
            assert next(watch).status == SERVING
            srv.signal(signal.SIGTERM)
            assert next(watch).status == NOT_SERVING
            with pytest.raises(grpc.RpcError) as e:
                next(watch)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert srv.stop(timeout=30) == 0
    finally:
        srv.kill()
    (line,) = [e for e in srv.events("call") if e["method"].endswith("/Watch")]
    assert_cancelled_by_the_server(line)


def run_server(args, env=None, timeout=30):
    return subprocess.run([server_binary()] + args, capture_output=True, timeout=timeout, env=env)


def test_help_documents_every_option():
    p = run_server(["--help"])
    assert p.returncode == 0
    text = p.stdout.decode()
    for opt in ["--listen", "--threads", "--workers", "--max-message-bytes", "--max-nodes", "--max-audio-samples",
                "--max-input-bytes", "--max-concurrent", "--max-execution-ms", "--grace-ms", "--auth-token-file",
                "--tls-cert", "--tls-key", "--tls-client-ca", "--tls-require-client-cert", "--log-level",
                "--keepalive-time-ms", "--keepalive-timeout-ms", "--max-connection-age-ms", "--config"]:
        assert opt in text, opt
    assert "[default: 127.0.0.1:50051]" in text
    assert "[default: 67108864]" in text


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--max-nodes", "abc"], "--max-nodes: max-nodes must be an integer in 1..1000000, got 'abc'"),
    (["--max-nodes", "0"], "must be an integer in 1..1000000, got '0'"),
    (["--log-level", "loud"], "log-level must be debug, info, warn, error or off, got 'loud'"),
    (["--listen", "nocolon"], "listen must be host:port"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_invalid_config_is_a_clear_startup_error(args, message):
    p = run_server(args)
    assert p.returncode == 2
    assert message in p.stderr.decode()


def test_port_in_use_is_a_startup_error():
    with RunningServer() as srv:
        p = run_server(["--listen", srv.address()])
        assert p.returncode == 1
        assert "cannot listen on %s" % srv.address() in p.stderr.decode()
        with srv.channel() as ch:
            assert_serving(psg.PipelineServiceStub(ch))


def test_config_precedence_file_env_flag(tmp_path):
    cfg = tmp_path / "server.json"
    cfg.write_text(json.dumps({"max_nodes": 3, "grace_ms": 1234, "log_level": "info", "max_concurrent": 7}))
    import os
    env = dict(os.environ, RM_MAX_NODES="4", RM_MAX_CONCURRENT="9")
    with RunningServer(["--config", str(cfg), "--max-nodes", "5"], env=env) as srv:
        pass
    c = srv.events("config")[0]
    assert (c["max_nodes"], c["grace_ms"], c["max_concurrent"], c["config_file"]) == (5, 1234, 9, str(cfg))
    bad = tmp_path / "bad.json"
    bad.write_text('{"max_nodes": "three"}')
    p = run_server(["--config", str(bad)])
    assert p.returncode == 2 and "'max_nodes' must be an integer" in p.stderr.decode()
    bad.write_text('{"no_such_option": 1}')
    p = run_server(["--config", str(bad)])
    assert p.returncode == 2 and "unknown key 'no_such_option'" in p.stderr.decode()
    bad.write_text('{"max_nodes": ')
    p = run_server(["--config", str(bad)])
    assert p.returncode == 2 and str(bad) in p.stderr.decode()
    # an unreadable file is exit 1, as README says (a configuration error is exit 2)
    for path, why in ((tmp_path / "missing.json", "No such file or directory"),
                      (tmp_path, "a directory")):
        p = run_server(["--config", str(path)])
        assert (p.returncode, p.stderr.decode()) == \
            (1, "remotemedia-server: config file %s cannot be read: %s\n" % (path, why))


def test_keepalive_and_connection_age_options_apply():
    # With a short connection age the server sends GOAWAY; the client reconnects and keeps working.
    with RunningServer(["--max-connection-age-ms", "200", "--max-connection-age-grace-ms", "100",
                        "--keepalive-time-ms", "1000"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        for _ in range(5):
            assert_serving(stub)
            threading.Event().wait(0.1)
    c = srv.events("config")[0]
    assert (c["max_connection_age_ms"], c["keepalive_time_ms"]) == (200, 1000)


def test_second_signal_stops_without_waiting_for_the_grace_period():
    srv = RunningServer(["--grace-ms", "60000", "--log-level", "debug"]).start()
    try:
        with srv.channel() as ch:
            stub = psg.PipelineServiceStub(ch)
            slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 30000}), name="stuck")
            fut = stub.ExecutePipeline.future(audio_request(slow), timeout=90)
            assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "stuck")
            srv.signal(signal.SIGTERM)
            assert srv.wait_for_event("draining", 10)
            srv.signal(signal.SIGTERM)
            with pytest.raises(grpc.RpcError) as e:
                fut.result()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert srv.stop(timeout=30) == 0
    finally:
        srv.kill()
    assert [e["event"] for e in srv.events() if e["event"] in ("draining", "forced_stop", "stopped")] == \
        ["draining", "forced_stop", "stopped"]
    call = [e for e in srv.events("call") if e.get("pipeline") == "stuck"]
    assert len(call) == 1 and call[0]["duration_us"] < 20_000_000
    assert_cancelled_by_the_server(call[0])
    assert call[0]["handler_status"] == "CANCELLED"
