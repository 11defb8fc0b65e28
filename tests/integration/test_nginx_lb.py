"""deploy/nginx/nginx.conf in front of two real replicas on loopback: calls through nginx reach
both, and when one replica is SIGTERMed under load every call is accounted for: OK (at worst
after the client's retry of an UNAVAILABLE answer, the Python client's default policy), or
CANCELLED by the stopping replica's gRPC core in the instant it shuts down, which nginx cannot
see and nobody retries (deploy/nginx/nginx.conf explains; the count is printed)."""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

from rmtest.server import RunningServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLS = 240
THREADS = 4

# The load: THREADS threads share one remotemedia.Client (default RemoteConfig: retries on
# UNAVAILABLE) and make CALLS calls of PassThrough -> Delay(20 ms); prints one JSON summary.
LOAD = r"""
import json, sys, threading
import numpy as np
from remotemedia import Client, RemoteConfig
from remotemedia.v1 import pipeline_service_pb2 as ps, manifest_pb2

addr, calls, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = manifest_pb2.PipelineManifest(name="nginx-lb")
m.nodes.add(id="src", node_type="PassThrough", params="{}")
m.nodes.add(id="d", node_type="Delay", params='{"ms": 20}')
c = m.connections.add(); setattr(c, "from", "src"); c.to = "d"
client = Client(RemoteConfig(addr))
lock = threading.Lock()
left = [calls]
ok, errors = [0], []

def work():
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
        req = ps.ExecuteRequest(manifest=m)
        req.inputs["src"].audio.samples = np.float32([0.5, -0.5]).tobytes()
        req.inputs["src"].audio.sample_rate = 16000
        req.inputs["src"].audio.channels = 1
        req.inputs["src"].audio.format = 1
        try:
            r = client.execute_sync(req, timeout=60)
            good = np.frombuffer(r.outputs["d"].items[0].audio.samples, np.float32).tolist() == [0.5, -0.5]
            with lock:
                if good:
                    ok[0] += 1
                else:
                    errors.append("wrong output")
        except Exception as e:
            with lock:
                errors.append(repr(e))

ts = [threading.Thread(target=work) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"ok": ok[0], "errors": errors}), flush=True)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(port, upstreams, user):
    text = open(os.path.join(REPO, "deploy", "nginx", "nginx.conf")).read()
    text, n = re.subn(r"listen 127\.0\.0\.1:\d+ http2;", "listen 127.0.0.1:%d http2;" % port, text)
    assert n == 1
    servers = iter(upstreams)
    text, n = re.subn(r"server 127\.0\.0\.1:\d+ ", lambda m: "server 127.0.0.1:%d " % next(servers), text)
    assert n == 2
    return re.sub(r"^user \S+;", "user %s;" % user, text, count=1, flags=re.M)


class Nginx:
    def __init__(self, port, upstreams):
        self.port = port
        self.prefix = tempfile.mkdtemp(prefix="rm-nginx-")
        os.chmod(self.prefix, 0o755)  # the workers (www-data) reach their temp dirs through it
        os.makedirs(os.path.join(self.prefix, "logs"))
        os.makedirs(os.path.join(self.prefix, "tmp"))
        try:
            user = "www-data" if pwd.getpwnam("www-data") else "nobody"
        except KeyError:
            user = "nobody"
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(nginx_conf(port, upstreams, user))
        self.proc = None

    def log(self, name):
        try:
            return open(os.path.join(self.prefix, "logs", name)).read()
        except OSError:
            return ""

    def start(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(nginx), "nginx is missing (scripts/install-deps.sh installs it)"
        err = os.path.join(self.prefix, "logs", "error.log")
        self.proc = subprocess.Popen([nginx, "-p", self.prefix, "-e", err, "-c", self.conf, "-g", "daemon off;"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        with grpc.insecure_channel("127.0.0.1:%d" % self.port) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError("nginx exited: %s\n%s" % (self.proc.stderr.read().decode(), self.log("error.log")))
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise AssertionError("nginx never answered health SERVING:\n" + self.log("error.log"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


def ok_calls(srv):
    return [e for e in srv.events("call")
            if e.get("method") == "/remotemedia.v1.PipelineService/ExecutePipeline" and e.get("status") == "OK"]


def test_nginx_balances_and_loses_no_call_when_a_replica_stops():
    if os.geteuid() != 0:
        pytest.skip("nginx's master process needs root here (it switches its workers to www-data)")
    a = RunningServer(["--grace-ms", "20000"]).start()
    b = RunningServer(["--grace-ms", "20000"]).start()
    nginx = Nginx(free_port(), [a.port, b.port])
    load = None
    try:
        nginx.start()
        env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "") + ":" + os.path.join(REPO, "client", "python"))
        load = subprocess.Popen(["/usr/bin/python3", "-c", LOAD, "127.0.0.1:%d" % nginx.port, str(CALLS), str(THREADS)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        # both replicas serve a share before one goes away
        assert a.wait_for_count("call", 10, 120, lambda e: e.get("status") == "OK")
        assert b.wait_for_count("call", 10, 120, lambda e: e.get("status") == "OK")
        a.signal(signal.SIGTERM)
        assert a.stop() == 0  # its drain ends, exit status 0, its log read to the end
        a_served = len(ok_calls(a))
        out, err = load.communicate(timeout=240)
        assert load.returncode == 0, err.decode()[-2000:]
        summary = json.loads(out.decode().splitlines()[-1])
        access = nginx.log("access.log").splitlines()
        # A call that reaches replica a in the instant its gRPC core shuts down (after the
        # drain, before nginx has read the GOAWAY) is ended by the core itself with CANCELLED,
        # before the server's code sees it: clients do not retry CANCELLED, and nginx cannot
        # tell it from a success (HTTP 200, grpc-status in the trailers). Without an active
        # health check (nginx OSS has none) that window stays open; it is counted exactly, must
        # be nothing else, and is at most one call per client thread (each has one in flight).
        upstream_a = "upstream=127.0.0.1:%d " % a.port
        cancelled_at_a = [l for l in access if "grpc_status=1 " in l and upstream_a in l]
        assert all(e == "Cancelled('CANCELLED')" for e in summary["errors"]), summary["errors"][:5]
        assert len(summary["errors"]) == len(cancelled_at_a) <= THREADS, (summary["errors"], cancelled_at_a)
        assert summary["ok"] + len(summary["errors"]) == CALLS
        # the server logs a call after its response is sent: the last lines may still come
        b.wait_for_count("call", summary["ok"] - a_served, 30, lambda e: e.get("status") == "OK")
        b_served = len(ok_calls(b))
        passed_on = [l for l in access if re.search(r"upstream=\S+, ", l)]  # nginx tried two replicas
        # Every call that ended OK was served. More may have been: a response cut by replica a's
        # shutdown is still logged OK by a (the line follows the send, whatever its outcome),
        # and its call either ended CANCELLED or was run again on b by nginx (non_idempotent).
        served = a_served + b_served
        assert summary["ok"] <= served <= summary["ok"] + len(summary["errors"]) + len(passed_on), \
            (a_served, b_served, summary["ok"], len(passed_on))
        assert a_served >= 10 and b_served >= 10
        refused = [e for e in a.events("call") if e.get("status") == "UNAVAILABLE"]
        for e in refused:
            assert e["error_kind"] == "unavailable"
        print("\nreplica a served %d (then refused %d with UNAVAILABLE, retried by the client), "
              "replica b %d; nginx passed %d calls to the next replica itself; %d cancelled by "
              "replica a's core at its shutdown; %d served beyond the OK calls"
              % (a_served, len(refused), b_served, len(passed_on), len(cancelled_at_a),
                 served - summary["ok"]))
        assert nginx.proc.poll() is None
    finally:
        if load and load.poll() is None:
            load.kill()
            load.wait()
        nginx.stop()
        a.kill()
        b.stop()
