"""Issue 12, observability: the Prometheus endpoint (checked by promtool and scraped by a real
Prometheus), GetStatistics from the same counters, request ids, and the JSON log."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from conftest import audio_request, chain
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg
from rmtest.server import RunningServer, server_binary

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def metrics_server(*args):
    return RunningServer(["--metrics-listen", "127.0.0.1:0", *args])


def metrics_port(srv):
    return srv.events("listening")[0]["metrics_port"]


def http_get(port, path="/metrics", method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(srv):
    status, ctype, body = http_get(metrics_port(srv))
    assert status == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    return body


def sample(body, name, **labels):
    """The value of the series name{labels} (exact label set match on the given labels)."""
    for line in body.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


GOOD = chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0}), name="obs-good")


def bad(name="obs-good"):
    return chain(("src", "PassThrough", {}), ("g", "Gain", {"db": "loud"}), name=name)


def make_calls(stub, n_ok, n_fail, good=GOOD, bad_m=None):
    for _ in range(n_ok):
        stub.ExecutePipeline(audio_request(good), timeout=30)
    for _ in range(n_fail):
        with pytest.raises(grpc.RpcError) as e:
            stub.ExecutePipeline(audio_request(bad_m or bad(good.name)), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---- the endpoint ---------------------------------------------------------------------------

def test_metrics_endpoint_passes_promtool_and_counts_calls():
    with metrics_server() as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        make_calls(stub, 3, 2)
        stub.GetVersion(ps.GetVersionRequest(), timeout=30)
        body = scrape(srv)
        p = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
        ex = dict(grpc_type="unary", grpc_service="remotemedia.v1.PipelineService",
                  grpc_method="ExecutePipeline")
        assert sample(body, "grpc_server_started_total", **ex) == 5
        assert sample(body, "grpc_server_msg_received_total", **ex) == 5
        assert sample(body, "grpc_server_msg_sent_total", **ex) == 3
        assert sample(body, "grpc_server_handled_total", grpc_code="OK", **ex) == 3
        assert sample(body, "grpc_server_handled_total", grpc_code="InvalidArgument", **ex) == 2
        assert sample(body, "grpc_server_handling_seconds_count", **ex) == 5
        assert sample(body, "grpc_server_handled_total", grpc_method="GetVersion",
                      grpc_code="OK") == 1
        # health (the readiness checks) and the streaming methods are listed with their types
        assert sample(body, "grpc_server_handled_total", grpc_service="grpc.health.v1.Health",
                      grpc_method="Check", grpc_code="OK") >= 1
        assert sample(body, "grpc_server_started_total", grpc_method="Watch",
                      grpc_type="server_stream") == 0
        assert sample(body, "grpc_server_started_total", grpc_method="ServerReflectionInfo",
                      grpc_type="bidi_stream") == 0
        assert sample(body, "remotemedia_pipeline_runs_total", pipeline="obs-good", status="OK") == 3
        assert sample(body, "remotemedia_pipeline_runs_total", pipeline="obs-good",
                      status="INVALID_ARGUMENT") == 2
        for t in ("PassThrough", "Gain"):
            assert sample(body, "remotemedia_node_executions_total", node_type=t, status="ok") == 3
            assert sample(body, "remotemedia_node_duration_seconds_count", node_type=t) == 3
            assert sample(body, "remotemedia_node_duration_seconds_bucket", node_type=t,
                          le="+Inf") == 3
        assert sample(body, "remotemedia_inflight_runs") == 0
        assert sample(body, "remotemedia_memory_budget_max_bytes") > 0
        hits = sample(body, "remotemedia_pipeline_cache_hits_total")
        misses = sample(body, "remotemedia_pipeline_cache_misses_total")
        assert hits + misses == 5 and misses >= 1
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_open_fds", "process_max_fds", "process_start_time_seconds",
                     "process_virtual_memory_bytes"):
            assert sample(body, name) > 0, name
        assert abs(sample(body, "process_start_time_seconds") - time.time()) < 3600
        assert sample(body, "remotemedia_stream_sessions_active") == 0


def test_metrics_show_runs_waiting_for_a_worker():
    """Runs beyond --workers queue for a worker; remotemedia_inflight_runs counts only those
    running, so the queue has gauges of its own: with one worker and three 1.5 s Delay runs,
    one runs and two wait, and all is back to 0 after them."""
    slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 1500}), name="queued")
    with RunningServer(["--metrics-listen", "127.0.0.1:0", "--workers", "1",
                        "--log-level", "debug"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        body = scrape(srv)
        assert (sample(body, "remotemedia_workers"), sample(body, "remotemedia_workers_busy"),
                sample(body, "remotemedia_worker_queue_jobs")) == (1, 0, 0)
        futs = [stub.ExecutePipeline.future(audio_request(slow), timeout=60) for _ in range(3)]
        assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "queued")
        deadline = time.monotonic() + 10
        while True:  # the other two calls arrive and queue behind the first
            body = scrape(srv)
            if sample(body, "remotemedia_worker_queue_jobs") == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (sample(body, "remotemedia_workers_busy"),
                sample(body, "remotemedia_worker_queue_jobs"),
                sample(body, "remotemedia_inflight_runs")) == (1, 2, 1)
        for f in futs:
            f.result()
        deadline = time.monotonic() + 10  # a worker ends its job just after its answer left
        while sample(scrape(srv), "remotemedia_workers_busy") and time.monotonic() < deadline:
            time.sleep(0.05)
        body = scrape(srv)
        assert (sample(body, "remotemedia_workers_busy"),
                sample(body, "remotemedia_worker_queue_jobs")) == (0, 0)


def test_metrics_endpoint_paths_and_methods():
    with metrics_server() as srv:
        port = metrics_port(srv)
        assert http_get(port, "/")[0] == 404
        assert http_get(port, "/metricsx")[0] == 404
        assert http_get(port, "/metrics", method="POST")[0] == 405
        assert http_get(port, "/metrics", method="HEAD")[0] == 200


def health_server(sock):
    """A server on the unix socket sock with a metrics port, ready (/readyz 200)."""
    srv = RunningServer(["--listen", "unix:%s" % sock, "--metrics-listen", "127.0.0.1:0"],
                        wait_ready=False).start()
    port = metrics_port(srv)
    deadline = time.monotonic() + float(os.environ.get("RM_TEST_START_TIMEOUT", "60"))
    while http_get(port, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, "never ready:\n" + "\n".join(srv.raw_log())
        time.sleep(0.05)
    return srv, port


def stall_port(sock):
    """Replaces the server's unix socket by one that accepts connections and never answers."""
    os.unlink(str(sock))
    stall = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stall.bind(str(sock))
    stall.listen(16)
    stall.settimeout(30)
    return stall


def probes_waiting_on_a_stalled_check(port, stall, paths):
    """GET paths[0] on its own thread, and once the check it starts reached the stalled port,
    the other paths, each on its own thread. (threads, results by index: (status, body), or
    the error's repr for a connection closed unanswered; the stalled connection)."""
    time.sleep(0.6)  # the last result is stale: the first request starts a check
    results = {}

    def probe(i, path):
        try:
            results[i] = http_get(port, path)[0::2]
        except Exception as e:
            results[i] = repr(e)

    threads = [threading.Thread(target=probe, args=(i, p)) for i, p in enumerate(paths)]
    threads[0].start()
    conn, _ = stall.accept()  # the check is in flight
    for t in threads[1:]:
        t.start()
    return threads, results, conn


def test_health_endpoints_check_through_the_grpc_port(tmp_path):
    """/healthz and /readyz (probes without a token) answer from a health Check through the
    server's own gRPC port: a request after the last result aged past 0.5 s is one Check the
    server counts, and once the port cannot be reached (its unix socket unlinked: the process
    still runs and the status is still SERVING) both answer 503."""
    sock = tmp_path / "rm.sock"
    srv, port = health_server(sock)
    try:
        checks = sample(http_get(port)[2], "grpc_server_started_total", grpc_method="Check")
        answers = []
        for path, method in (("/healthz", "GET"), ("/readyz", "GET"), ("/healthz", "HEAD"),
                             ("/readyz", "HEAD")):
            time.sleep(0.6)  # the last result is stale: a new Check
            answers.append(http_get(port, path, method=method))
        assert answers == [(200, "text/plain; charset=utf-8", "ok\n"),
                           (200, "text/plain; charset=utf-8", "SERVING\n"),
                           (200, "text/plain; charset=utf-8", ""),
                           (200, "text/plain; charset=utf-8", "")]
        assert http_get(port, "/healthz", method="POST")[0] == 405
        assert http_get(port, "/healthz/x")[0] == 404
        body = http_get(port)[2]
        assert sample(body, "grpc_server_started_total", grpc_method="Check") == checks + 4
        assert sample(body, "grpc_server_handled_total", grpc_method="Check",
                      grpc_code="OK") == checks + 4
        os.unlink(str(sock))
        time.sleep(0.6)
        failed = "not ok: the health check through the gRPC port failed\n"
        assert http_get(port, "/healthz")[0::2] == (503, failed)
        assert http_get(port, "/readyz")[0::2] == (503, failed)
        assert srv.wait_for_event("metrics_http", 10, lambda e: "health check" in e["message"])
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_a_stalled_health_check_holds_neither_the_scraper_nor_more_checks(tmp_path):
    """The gRPC port stalls (its unix socket replaced by one that accepts and never answers):
    the health requests wait for the one check in flight and all get 503 "took too long" from
    it, while /metrics is answered before that check ends (checks run on a thread of their
    own; the requests' connections are suspended, not the HTTP thread)."""
    sock = tmp_path / "rm.sock"
    srv, port = health_server(sock)
    stall = None
    try:
        stall = stall_port(sock)
        threads, results, conn = probes_waiting_on_a_stalled_check(
            port, stall, ("/healthz", "/readyz", "/healthz", "/readyz"))
        status, _, body = http_get(port)
        assert status == 200 and "grpc_server_started_total" in body
        assert threads[0].is_alive()  # /metrics came back while the check still waited
        for t in threads:
            t.join(30)
        slow = "not ok: the health check through the gRPC port took too long\n"
        assert results == {i: (503, slow) for i in range(4)}
        stall.settimeout(0.5)
        with pytest.raises(socket.timeout):
            stall.accept()  # one check served all four
        conn.close()
        assert srv.stop() == 0
    finally:
        if stall:
            stall.close()
        srv.kill()


def test_health_requests_waiting_at_a_stop_are_answered(tmp_path):
    """SIGTERM while probes wait for a stalled check: the check is cancelled and each probe is
    answered 503 "the server is stopping" (not "took too long" at the check's deadline, nor a
    connection closed unanswered), and the server exits cleanly."""
    sock = tmp_path / "rm.sock"
    srv, port = health_server(sock)
    stall = None
    try:
        stall = stall_port(sock)
        threads, results, conn = probes_waiting_on_a_stalled_check(
            port, stall, [("/healthz", "/readyz")[i % 2] for i in range(8)])  # MAX_PER_IP is 8
        time.sleep(0.3)  # they reach the server and wait with the first
        srv.signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        stopping = (503, "not ok: the server is stopping\n")
        assert results == {i: stopping for i in range(8)}
        assert srv.wait_exit() == 0
        conn.close()
    finally:
        if stall:
            stall.close()
        srv.kill()


def test_metrics_endpoint_held_connections_cannot_blind_the_scraper():
    """Connections held open with a request never finished (a byte now and then resets the
    inactivity timeout) took all 16 of the endpoint's connections, and every scrape failed for
    as long as the client kept them. One address now gets 8: the rest of its connections are
    closed at once, and a scraper from another address is served."""
    import http.client
    with metrics_server() as srv:
        port = metrics_port(srv)
        held = []
        try:
            for _ in range(16):
                so = socket.create_connection(("127.0.0.1", port), timeout=10)
                so.sendall(b"GET /metr")
                held.append(so)
            closed = []
            for so in held:
                so.settimeout(0.5)
                try:
                    closed.append(so.recv(1) == b"")
                except ConnectionResetError:  # closed with its request unread
                    closed.append(True)
                except socket.timeout:
                    closed.append(False)  # still open, waiting for the rest of its request
            assert closed == [False] * 8 + [True] * 8
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                              source_address=("127.0.0.2", 0))
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200 and b"grpc_server_started_total" in resp.read()
            conn.close()
        finally:
            for so in held:
                so.close()


def test_metrics_off_by_default():
    with RunningServer() as srv:
        assert srv.events("listening")[0]["metrics_port"] == 0


def test_metrics_listen_taken_is_a_startup_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run([server_binary(), "--listen", "127.0.0.1:0", "--metrics-listen",
                            "127.0.0.1:%d" % port], capture_output=True, timeout=60)
    assert p.returncode == 1
    lines = p.stderr.decode().splitlines()
    assert all(json.loads(line) for line in lines)
    assert any(json.loads(line)["event"] == "startup_failed" and "metrics" in
               json.loads(line)["error"] for line in lines)
    # libmicrohttpd's own message names the port asked for, not 0
    mhd = [json.loads(line) for line in lines if "bind" in line.lower()]
    assert mhd and all(("port %d" % port) in json.dumps(e) for e in mhd), lines


def test_pipeline_label_cap():
    with metrics_server("--stats-max-pipelines", "2") as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        for name in ("p1", "p2", "p3", "p4", "p3"):
            stub.ExecutePipeline(audio_request(chain(("src", "PassThrough", {}), name=name)),
                                 timeout=30)
        st = stub.GetStatistics(ps.GetStatisticsRequest(), timeout=30)
        got = {p.name: p.stats.success.count for p in st.pipelines}
        assert got == {"p1": 1, "p2": 1, "other": 3}
        body = scrape(srv)
        assert sample(body, "remotemedia_pipeline_runs_total", pipeline="other", status="OK") == 3
        assert sample(body, "remotemedia_pipeline_runs_total", pipeline="p3") is None


def test_pipeline_named_other_shares_the_overflow_series():
    """A client's pipeline called "other" and the names past the cap are one series: two with
    the same label set would be one sample to Prometheus (it kept 1 of 4 calls)."""
    with metrics_server("--stats-max-pipelines", "1") as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        for name in ("other", "p1", "p2", "p3"):
            stub.ExecutePipeline(audio_request(chain(("src", "PassThrough", {}), name=name)),
                                 timeout=30)
        body = scrape(srv)
        runs = [line for line in body.splitlines()
                if line.startswith("remotemedia_pipeline_runs_total{")]
        assert runs.count('remotemedia_pipeline_runs_total{pipeline="other",status="OK"} 3') == 1
        assert sample(body, "remotemedia_pipeline_runs_total", pipeline="p1", status="OK") == 1
        assert sum('pipeline="other"' in line for line in runs) == 1, runs
        st = stub.GetStatistics(ps.GetStatisticsRequest(), timeout=30)
        assert sorted((p.name, p.stats.success.count) for p in st.pipelines) == [
            ("other", 3), ("p1", 1)]


def test_invalid_pipeline_name_gets_no_label_of_its_own():
    """A name the engine refuses (not UTF-8, control characters) fails INVALID_ARGUMENT and
    counts as "other": its bytes as a label broke promtool, Prometheus' scrape of the whole
    target and GetStatistics' decoding in every client."""
    def request(name):  # Python's protobuf will not build such a name: patch the bytes
        placeholder = b"Q" * len(name)
        raw = audio_request(chain(("src", "PassThrough", {}), name=placeholder.decode()))
        return raw.SerializeToString().replace(placeholder, name)

    with metrics_server() as srv, srv.channel() as ch:
        execute = ch.unary_unary("/remotemedia.v1.PipelineService/ExecutePipeline")
        # not UTF-8: refused as the request is read, before any pipeline counter
        with pytest.raises(grpc.RpcError) as e:
            execute(request(b"bad\xff\xfename"), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith(
            "string field 'manifest.name' is not valid UTF-8 at byte 3")
        # control characters: UTF-8, refused by the engine, counted
        with pytest.raises(grpc.RpcError) as e:
            execute(request(b"ctl\x01\x1b[31mred"), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "pipeline name must be" in e.value.details()
        body = scrape(srv)
        assert sample(body, "remotemedia_pipeline_runs_total", pipeline="other",
                      status="INVALID_ARGUMENT") == 1
        assert sample(body, "grpc_server_handled_total", grpc_code="InvalidArgument",
                      grpc_method="ExecutePipeline") == 2
        check = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                               capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        st = psg.PipelineServiceStub(ch).GetStatistics(ps.GetStatisticsRequest(), timeout=30)
        assert [(p.name, p.stats.fail.count) for p in st.pipelines] == [("other", 1)]


# ---- a real Prometheus ----------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=30) as r:
        doc = json.loads(r.read().decode())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_real_prometheus_counts_the_calls():
    prom = shutil.which("prometheus")
    assert prom, "prometheus is installed by scripts/install-deps.sh"
    with metrics_server() as srv, srv.channel() as ch, tempfile.TemporaryDirectory() as tmp:
        stub = psg.PipelineServiceStub(ch)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: remotemedia\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % metrics_port(srv))
        port = free_port()
        log = open(os.path.join(tmp, "prometheus.log"), "w+")
        p = subprocess.Popen([prom, "--config.file=" + cfg,
                              "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                              "--web.listen-address=127.0.0.1:%d" % port],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            make_calls(stub, 7, 3, good=chain(("src", "PassThrough", {}), name="prom-test"))
            calls_done = time.time()
            q_ok = 'remotemedia_pipeline_runs_total{pipeline="prom-test",status="OK"}'
            deadline = time.monotonic() + 120
            res = []
            while time.monotonic() < deadline:
                assert p.poll() is None, "prometheus exited:\n" + open(log.name).read()
                try:
                    res = prom_query(port, q_ok)
                except (urllib.error.URLError, ConnectionError):
                    res = []
                # a sample scraped after the calls were answered
                if res and float(res[0]["value"][0]) > calls_done + 1.5:
                    break
                time.sleep(0.5)
            assert res, "no scrape reached Prometheus:\n" + open(log.name).read()
            assert float(res[0]["value"][1]) == 7
            r = prom_query(port, 'sum by (grpc_code) (grpc_server_handled_total'
                                 '{grpc_method="ExecutePipeline"})')
            by_code = {x["metric"]["grpc_code"]: float(x["value"][1]) for x in r}
            assert by_code["OK"] == 7 and by_code["InvalidArgument"] == 3
            assert sum(by_code.values()) == 10
            r = prom_query(port, 'remotemedia_node_executions_total{node_type="PassThrough"}')
            assert {x["metric"]["status"]: float(x["value"][1]) for x in r} == {"ok": 7, "error": 0}
            assert float(prom_query(port, 'up{job="remotemedia"}')[0]["value"][1]) == 1
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                assert p.wait(timeout=60) == 0
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                log.close()


# ---- GetStatistics ---------------------------------------------------------------------------

def test_get_statistics_equals_the_calls_made():
    with metrics_server() as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        other = chain(("src", "PassThrough", {}), name="obs-other")
        make_calls(stub, 4, 2)
        stub.ExecutePipeline(audio_request(other), timeout=30)
        st = stub.GetStatistics(ps.GetStatisticsRequest(), timeout=30)
        pipes = {p.name: p for p in st.pipelines}
        assert set(pipes) == {"obs-good", "obs-other"}
        g = pipes["obs-good"]
        assert (g.stats.success.count, g.stats.fail.count, g.execution_count) == (4, 2, 4)
        assert g.stats.compute.count == 4 and g.stats.queue.count == 4
        assert g.stats.success.ns > 0 and g.stats.fail.ns > 0 and g.stats.compute.ns > 0
        assert g.stats.compute.ns <= g.stats.success.ns
        assert abs(g.last_run_ms - time.time() * 1000) < 60000
        nodes = {n.node_type: n for n in st.node_types}
        assert set(nodes) == {"PassThrough", "Gain"}
        assert nodes["PassThrough"].execution_count == 5
        assert nodes["PassThrough"].stats.success.count == 5
        assert nodes["Gain"].execution_count == 4 and nodes["Gain"].stats.fail.count == 0
        assert st.uptime_ms > 0 and abs(st.start_time_ms - time.time() * 1000) < 3600 * 1000
        only = stub.GetStatistics(ps.GetStatisticsRequest(pipeline_name="obs-other"), timeout=30)
        assert [p.name for p in only.pipelines] == ["obs-other"]
        assert only.pipelines[0].stats.success.count == 1
        # the Prometheus view of the same counters
        body = scrape(srv)
        assert sample(body, "remotemedia_node_executions_total", node_type="Gain", status="ok") == 4
        sum_s = sample(body, "remotemedia_node_duration_seconds_sum", node_type="Gain")
        assert abs(sum_s - nodes["Gain"].stats.compute.ns / 1e9) < 1e-6


def test_per_request_metrics_are_the_same_numbers():
    """The node durations a request's metrics report are the very figures added to the
    cumulative counters."""
    with RunningServer() as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        before = {n.node_type: n.stats.compute.ns
                  for n in stub.GetStatistics(ps.GetStatisticsRequest(), timeout=30).node_types}
        r = stub.ExecutePipeline(audio_request(GOOD, metrics=True), timeout=30)
        after = {n.node_type: n.stats.compute.ns
                 for n in stub.GetStatistics(ps.GetStatisticsRequest(), timeout=30).node_types}
        per_node = {m.node_id: round(m.total_duration_us * 1000) for m in r.metrics.node_metrics}
        assert after["Gain"] - before.get("Gain", 0) == per_node["g"]
        assert after["PassThrough"] - before.get("PassThrough", 0) == per_node["src"]


# ---- request ids -----------------------------------------------------------------------------

def call_with_md(stub, req, md):
    resp, call = stub.ExecutePipeline.with_call(req, metadata=md, timeout=30)
    return dict(call.initial_metadata())


def error_info(err):
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(v)
            for d in st.details:
                if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    d.Unpack(info)
                    return info
    return None


def call_lines(srv, rid):
    assert srv.wait_for_event("call", 30, lambda e: e.get("request_id") == rid)
    return [e for e in srv.events("call") if e.get("request_id") == rid]


def test_request_id_given_is_echoed_logged_and_in_error_details():
    with RunningServer() as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        md = call_with_md(stub, audio_request(GOOD), [("x-request-id", "obs-rid-1")])
        assert md["x-request-id"] == "obs-rid-1"
        assert len(call_lines(srv, "obs-rid-1")) == 1
        with pytest.raises(grpc.RpcError) as e:
            stub.ExecutePipeline(audio_request(bad()), metadata=[("x-request-id", "obs-rid-2")],
                                 timeout=30)
        err = e.value
        # in the trailers: a failure stays trailers-only, which gRPC clients may retry
        assert dict(err.trailing_metadata())["x-request-id"] == "obs-rid-2"
        assert "x-request-id" not in dict(err.initial_metadata() or ())
        assert error_info(err).metadata["request_id"] == "obs-rid-2"
        (line,) = call_lines(srv, "obs-rid-2")
        assert line["status"] == "INVALID_ARGUMENT"


def test_request_id_from_traceparent():
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    tp = "00-%s-00f067aa0ba902b7-01" % trace
    with RunningServer() as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        assert call_with_md(stub, audio_request(GOOD), [("traceparent", tp)])["x-request-id"] == trace
        assert len(call_lines(srv, trace)) == 1
        # x-request-id wins over traceparent
        md = call_with_md(stub, audio_request(GOOD), [("traceparent", tp), ("x-request-id", "mine")])
        assert md["x-request-id"] == "mine"
        # invalid traceparents are not used: an id is generated
        for badtp in ("00-%s-00f067aa0ba902b7" % trace,            # too short
                      "00-%s-00f067aa0ba902b7-01" % trace.upper(),  # upper case
                      "ff-%s-00f067aa0ba902b7-01" % trace,         # version ff
                      "00-%s-00f067aa0ba902b7-01" % ("0" * 32),    # zero trace id
                      "00-%s-0000000000000000-01" % trace,         # zero parent id
                      "00-%s-00f067aa0ba902b7-01-x" % trace):      # version 00 with more
            rid = call_with_md(stub, audio_request(GOOD), [("traceparent", badtp)])["x-request-id"]
            assert HEX32.match(rid) and rid != trace, badtp


def test_request_id_generated():
    with RunningServer() as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        ids = [call_with_md(stub, audio_request(GOOD), [])["x-request-id"] for _ in range(5)]
        assert all(HEX32.match(i) for i in ids) and len(set(ids)) == 5
        assert len(call_lines(srv, ids[0])) == 1
        # a generated id is not the client's: ErrorInfo keeps only what the client sent
        with pytest.raises(grpc.RpcError) as e:
            stub.ExecutePipeline(audio_request(bad()), timeout=30)
        rid = dict(e.value.trailing_metadata())["x-request-id"]
        assert HEX32.match(rid) and "request_id" not in error_info(e.value).metadata
        # a value that cannot be echoed (not visible ASCII) is replaced; a long one is cut
        long_id = "L" * 300
        assert call_with_md(stub, audio_request(GOOD), [("x-request-id", long_id)])[
            "x-request-id"] == "L" * 128


def test_request_id_on_other_methods_and_worker_logs():
    with RunningServer(["--log-level", "debug"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        _, call = stub.GetVersion.with_call(ps.GetVersionRequest(), metadata=[("x-request-id", "v-1")],
                                            timeout=30)
        assert dict(call.initial_metadata())["x-request-id"] == "v-1"
        stub.ExecutePipeline(audio_request(GOOD), metadata=[("x-request-id", "dbg-1")], timeout=30)
        # the debug line written while the pipeline ran carries the call's id too
        assert srv.wait_for_event("pipeline_start", 30, lambda e: e.get("request_id") == "dbg-1")


def test_health_watch_and_reflection_streams_get_a_call_line():
    """docs/observability.md: every call gets one `call` line. Watch and reflection streams
    got none: a Watch the client ends is CANCELLED with client_cancelled, a reflection stream
    the client half-closes is OK, each with its request id."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g
    with RunningServer() as srv, srv.channel() as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(
            health_pb2.HealthCheckRequest(service=""), metadata=[("x-request-id", "watch-1")],
            timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        refl = r1g.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([r1.ServerReflectionRequest(list_services="")]),
            metadata=[("x-request-id", "refl-1")], timeout=30)
        assert len(list(refl)) == 1
        w = srv.wait_for_event("call", 30, lambda e: e.get("request_id") == "watch-1")
        assert (w["method"], w["status"], w["code"], w["client_cancelled"]) == (
            "/grpc.health.v1.Health/Watch", "CANCELLED", 1, True)
        r = srv.wait_for_event("call", 30, lambda e: e.get("request_id") == "refl-1")
        assert (r["method"], r["status"], r["code"]) == (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "OK", 0)
        assert r["duration_us"] > 0 and r["peer"].startswith("ipv")


# ---- a call that ends without a message: a half-close, or a client that went -------------------

EXEC = "/remotemedia.v1.PipelineService/ExecutePipeline"
STREAM = "/remotemedia.v1.PipelineService/StreamPipeline"
REFLECT = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def handled(body, method, code):
    service, name = method[1:].split("/")
    return sample(body, "grpc_server_handled_total", grpc_service=service, grpc_method=name,
                  grpc_code=code) or 0


def blocked_requests(release):
    """A request iterator that sends nothing until release is set, then ends."""
    release.wait(60)
    return
    yield


def test_a_call_ended_without_a_message_is_a_bad_request_only_if_the_client_half_closed():
    """The core gives a stream that ends before its first message no error both when the
    client half-closed (a bad request for StreamPipeline: INVALID_ARGUMENT; done for
    reflection) and when it cancelled (or its connection closed). The latter were logged and
    counted INVALID_ARGUMENT ("the stream ended before init"), client errors on dashboards for
    clients that merely went; a reflection stream cancelled so was logged CANCELLED but
    counted OK. Now each is what the client saw."""
    import threading
    from grpc_reflection.v1 import reflection_pb2_grpc as r1g
    # (a channel closed before the first message: Python sends nothing at all then)
    cases = [(STREAM, how) for how in ("half_close", "cancel")] + \
            [(REFLECT, how) for how in ("half_close", "cancel")] + \
            [(EXEC, "half_close")]  # the core hands it over only once the stream ends
    with metrics_server() as srv:
        lines = {}
        for method, how in cases:
            ch = srv.channel()
            rid = "%s-%s" % (method.rsplit("/", 1)[1], how)
            release = threading.Event()
            reqs = blocked_requests(release)
            md = [("x-request-id", rid)]
            if method == EXEC:
                call = ch.stream_unary(EXEC).future(reqs, metadata=md, timeout=60)
            elif method == STREAM:
                call = psg.PipelineServiceStub(ch).StreamPipeline(reqs, metadata=md, timeout=60)
            else:
                call = r1g.ServerReflectionStub(ch).ServerReflectionInfo(reqs, metadata=md,
                                                                        timeout=60)
            if method != EXEC:  # the server has the stream: it sent its headers with a read
                call.initial_metadata()
            if how == "cancel":
                call.cancel()
            release.set()
            try:
                call.result() if method == EXEC else list(call)
            except (grpc.RpcError, grpc.FutureCancelledError):
                pass
            ch.close()
            ev = srv.wait_for_event("call", 30, lambda e, rid=rid: e.get("request_id") == rid)
            assert ev is not None, "no call line for %s" % rid
            lines[(method, how)] = ev
        body = scrape(srv)
    # a real half-close: the stream and the unary call are bad requests, reflection is done
    for method, status, error in ((EXEC, "INVALID_ARGUMENT", "the call carried no request message"),
                                  (STREAM, "INVALID_ARGUMENT", "the stream ended before init"),
                                  (REFLECT, "OK", None)):
        ev = lines[(method, "half_close")]
        assert (ev["status"], ev.get("error"), ev.get("client_gone")) == (status, error, None), ev
    # a stream the client cancelled before its first message
    for method in (STREAM, REFLECT):
        ev = lines[(method, "cancel")]
        assert (ev["status"], ev.get("client_gone")) == ("CANCELLED", True), (method, ev)
    assert lines[(STREAM, "cancel")]["error"] == (
        "the stream ended before init: the client cancelled, its deadline passed or its "
        "connection closed")
    # the counters say what the lines say
    for method in (EXEC, STREAM, REFLECT):
        logged = [e for (m, _), e in lines.items() if m == method]
        for status, code in (("INVALID_ARGUMENT", "InvalidArgument"), ("CANCELLED", "Canceled"),
                             ("OK", "OK")):
            assert handled(body, method, code) == sum(e["status"] == status for e in logged), (
                method, code)


def test_unary_calls_cancelled_as_they_start_are_counted_and_logged_cancelled():
    """Python's grpc.aio cancelling ExecutePipeline right after starting it: the core hands the
    server the call without its message and without an error, as for a half-close. 133 of 200
    such calls were logged and counted INVALID_ARGUMENT ("the call carried no request
    message"). None may be now; every call the server saw is OK or CANCELLED, in the log and
    in the counters alike."""
    import asyncio
    with metrics_server() as srv:
        req = audio_request(GOOD)

        async def main(calls):
            async with grpc.aio.insecure_channel(srv.address()) as ch:
                stub = psg.PipelineServiceStub(ch)
                await stub.ExecutePipeline(req, timeout=30)
                for i in range(calls):
                    call = stub.ExecutePipeline(req, timeout=30)
                    for _ in range(1 + i % 8):  # cancels spread around the call's arrival
                        await asyncio.sleep(0)
                    if i % 16 >= 8:
                        await asyncio.sleep(0.0002 * (i % 8))
                    call.cancel()
                    try:
                        await call
                    except (asyncio.CancelledError, grpc.RpcError):
                        pass

        for _ in range(10):  # until a cancel met the call at the server (most rounds do)
            asyncio.run(main(200))
            time.sleep(1)  # the last cancelled calls' lines (none is awaited by the client)
            if any(e.get("method") == EXEC and e["status"] == "CANCELLED"
                   for e in srv.events("call")):
                break
        body = scrape(srv)
        calls = [e for e in srv.events("call") if e.get("method") == EXEC]
    statuses = {e["status"] for e in calls}
    assert statuses <= {"OK", "CANCELLED"}, statuses
    cancelled = [e for e in calls if e["status"] == "CANCELLED"]
    assert cancelled, "no call was cancelled at the server: the test raced nothing"
    # counted with the status handed to gRPC: an OK answer whose client had cancelled by then
    # is counted OK and logged CANCELLED with handler_status OK (docs/observability.md)
    for code, status in (("OK", "OK"), ("Canceled", "CANCELLED"),
                         ("InvalidArgument", "INVALID_ARGUMENT")):
        assert handled(body, EXEC, code) == sum(e.get("handler_status", e["status"]) == status
                                                for e in calls), code


def test_a_session_cancelled_while_its_chunk_waits_is_counted_as_it_is_logged():
    """A session whose client cancels while its chunk waits for the only worker: the close
    was counted at once (CANCELLED, the deadline still far), but the chunk's run, ending
    after the deadline had come near, logged the session DEADLINE_EXCEEDED (found by the
    chaos run: one session in ~130). The call's going is decided once; line and counter agree."""
    import queue
    import numpy as np
    from conftest import set_audio
    with metrics_server("--workers", "1") as srv:
        ch = srv.channel()
        stub = psg.PipelineServiceStub(ch)
        # holds the only worker for 900 ms (Delay runs on the worker pool)
        busy = stub.ExecutePipeline.future(
            audio_request(chain(("src", "Delay", {"ms": 900}), name="obs-busy")), timeout=60)
        time.sleep(0.1)  # (the order only makes the old defect likely; the check holds anyway)
        q = queue.Queue()
        q.put(ps.StreamRequest(init=ps.StreamInit(
            manifest=chain(("src", "Delay", {"ms": 1}), name="obs-s"))))

        def reqs():
            while True:
                r = q.get()
                if r is None:
                    return
                yield r

        rid = "session-cancelled-waiting"
        call = stub.StreamPipeline(reqs(), timeout=0.6, metadata=[("x-request-id", rid)])
        next(call)  # ready
        r = ps.StreamRequest()
        r.data.sequence = 0
        set_audio(r.data.buffer, np.zeros(16, np.float32))
        q.put(r)
        time.sleep(0.1)  # the chunk waits behind the busy worker
        call.cancel()
        q.put(None)
        busy.result()
        ev = srv.wait_for_event("call", 30, lambda e: e.get("request_id") == rid)
        assert ev is not None
        body = scrape(srv)
        ch.close()
    assert ev["status"] in ("CANCELLED", "DEADLINE_EXCEEDED"), ev
    assert ev["client_gone"] is True
    code = {"CANCELLED": "Canceled", "DEADLINE_EXCEEDED": "DeadlineExceeded"}[ev["status"]]
    assert handled(body, STREAM, code) == 1, (ev, code)
    assert sum(handled(body, STREAM, c) for c in ("Canceled", "DeadlineExceeded", "OK")) == 1


# ---- the log ----------------------------------------------------------------------------------

def test_port_conflict_log_is_all_json():
    with RunningServer() as srv:
        p = subprocess.run([server_binary(), "--listen", srv.address()], capture_output=True,
                           timeout=60)
    assert p.returncode == 1
    lines = p.stderr.decode().splitlines()
    assert lines
    events = [json.loads(line) for line in lines]  # every line is JSON
    assert any(e["event"] == "grpc_core" and e["level"] == "error" for e in events), lines
    assert any(e["event"] == "startup_failed" for e in events)


def test_lifecycle_events_are_info():
    srv = RunningServer().start()
    srv.stop()
    for name in ("listening", "draining", "stopping", "stopped"):
        (e,) = srv.events(name)
        assert e["level"] == "info", e


def test_lifecycle_events_shown_at_level_warn():
    srv = RunningServer(["--log-level", "warn"]).start()
    srv.stop()
    assert [e["event"] for e in srv.events()] == ["listening", "draining", "stopping", "stopped"]


def test_log_stream_stdout():
    p = subprocess.Popen([server_binary(), "--listen", "127.0.0.1:0", "--log-stream", "stdout"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = json.loads(p.stdout.readline())
        while first["event"] != "listening":
            first = json.loads(p.stdout.readline())
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    assert err == b""
    assert [json.loads(line)["event"] for line in out.decode().splitlines()][-1] == "stopped"


def test_log_stream_invalid_is_a_config_error():
    p = subprocess.run([server_binary(), "--log-stream", "syslog"], capture_output=True, timeout=60)
    assert p.returncode == 2 and b"log-stream" in p.stderr
