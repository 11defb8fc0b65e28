"""Start and stop a real remotemedia-server for tests.

    with RunningServer(["--max-nodes", "4"]) as srv:
        channel = srv.channel()

The binary comes from $RM_SERVER_BIN. $RM_SERVER_WRAPPER (e.g. "valgrind --error-exitcode=99
--leak-check=full") is put in front of it, so the same tests check memory. The server listens
on 127.0.0.1:0; the port is read from its "listening" log line; readiness is a health Check
answering SERVING (polled, never a blind sleep). Stopping sends SIGTERM and requires exit
status 0 within the timeout; the server's stderr (JSON lines) is kept in .log_lines.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import grpc

from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = float(os.environ.get("RM_TEST_START_TIMEOUT", "60"))
STOP_TIMEOUT_S = float(os.environ.get("RM_TEST_STOP_TIMEOUT", "60"))


def server_binary():
    path = os.environ.get("RM_SERVER_BIN")
    if not path:
        raise RuntimeError("RM_SERVER_BIN is not set (CTest sets it)")
    return path


class RunningServer:
    def __init__(self, args=(), env=None, binary=None, tls_root=None, wait_ready=True,
                 credentials=None, prefix=(), ready_metadata=None):
        self.args = list(args)
        self.prefix = list(prefix)  # runs the server under e.g. ["taskset", "-c", "0"]
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.binary = binary or server_binary()
        self.tls_root = tls_root
        self.credentials = credentials  # grpc.ChannelCredentials for channel() (e.g. mTLS)
        self.wait_ready = wait_ready
        self.ready_metadata = ready_metadata  # sent with the readiness Check (a token)
        self.proc = None
        self.port = None
        self.log_lines = []
        self._lines_cv = threading.Condition()
        self._reader = None
        self.returncode = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self):
        wrapper = shlex.split(os.environ.get("RM_SERVER_WRAPPER", ""))
        cmd = self.prefix + wrapper + [self.binary, "--listen", "127.0.0.1:0"] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        ev = self.wait_for_event("listening", START_TIMEOUT_S)
        if ev is None:
            self.kill()
            raise RuntimeError("server did not report a port; log:\n" + "\n".join(self.raw_log()))
        self.port = ev["port"]
        if self.wait_ready:
            self.wait_serving(START_TIMEOUT_S)
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lines_cv:
                self.log_lines.append(line)
                self._lines_cv.notify_all()

    def raw_log(self):
        with self._lines_cv:
            return list(self.log_lines)

    def events(self, name=None):
        """Parsed JSON log lines (non-JSON lines, e.g. from valgrind, are skipped)."""
        out = []
        for line in self.raw_log():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and (name is None or obj.get("event") == name):
                out.append(obj)
        return out

    def wait_for_event(self, name, timeout, pred=None):
        deadline = time.monotonic() + timeout
        with self._lines_cv:
            while True:
                for line in self.log_lines:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and obj.get("event") == name and (pred is None or pred(obj)):
                        return obj
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._lines_cv.wait(min(left, 0.1))

    def wait_for_count(self, name, count, timeout, pred=None):
        """Waits until `count` log events called `name` (matching pred) exist; True if so."""
        deadline = time.monotonic() + timeout
        while True:
            if len([e for e in self.events(name) if pred is None or pred(e)]) >= count:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                return False
            with self._lines_cv:
                self._lines_cv.wait(min(left, 0.1))

    def wait_serving(self, timeout):
        deadline = time.monotonic() + timeout
        with self.channel() as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("server exited during start-up:\n" + "\n".join(self.raw_log()))
                try:
                    r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0,
                                   metadata=self.ready_metadata)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.02)
        raise RuntimeError("server never answered health SERVING")

    def address(self):
        return f"127.0.0.1:{self.port}"

    def channel(self, options=None, credentials=None):
        opts = list(options or [])
        credentials = credentials or self.credentials
        if credentials is not None:
            return grpc.secure_channel(self.address(), credentials, options=opts)
        if self.tls_root is not None:
            return grpc.secure_channel(self.address(), grpc.ssl_channel_credentials(self.tls_root),
                                       options=opts)
        return grpc.insecure_channel(self.address(), options=opts)

    def http_get(self, path, timeout=30):
        """(status, body) of GET path on the server's metrics listener (--metrics-listen):
        /metrics, /healthz, /readyz; an error status is returned, not raised."""
        port = self.events("listening")[0]["metrics_port"]
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                        timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics_text(self):
        """The Prometheus scrape of a server started with --metrics-listen."""
        port = self.events("listening")[0]["metrics_port"]
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
            return r.read().decode()

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("server did not stop within %ss after SIGTERM" % timeout)
        self._reader.join(5)
        return self.returncode

    def wait_exit(self, timeout=STOP_TIMEOUT_S):
        """Waits for the process to end by itself (after a signal sent with signal(): stop()
        would send a second SIGTERM, which the server reads as "stop now"); the exit status."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("server did not stop within %ss" % timeout)
        self._reader.join(5)
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is None and rc != 0:
            raise AssertionError("server exited with status %r; log tail:\n%s"
                                 % (rc, "\n".join(self.raw_log()[-40:])))
        return False


def grpc_counter(text, name, method, **labels):
    """A grpc_server_* sample of `method` in a /metrics scrape (0 when absent); labels are the
    ones that follow grpc_method in the series, in order (grpc_code=...)."""
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    m = re.search(r"^%s\{[^}]*grpc_method=\"%s\"%s\} (\d+)$" % (name, method, extra), text, re.M)
    return int(m.group(1)) if m else 0
