"""deploy/Dockerfile built and run for real: the test starts its own Docker engine (Debian's
docker.io; overlay2 storage where the kernel lets it mount overlays, else vfs; no iptables,
no bridge), makes the pinned Debian base images with debootstrap from the apt mirror this
machine uses (no registry is reachable), builds the image with `docker build --network host`,
and runs it read-only on a loopback port: health SERVING, a Gain call, Docker's HEALTHCHECK
turning healthy, a non-root process, a drain on `docker stop` that lets an in-flight call
finish, and no compiler or test tool in the image.

If the engine cannot start here, every test is SKIPPED with the reason (CTest reports the test
as skipped, never passed). The engine's data root (images, build cache) and the base root
file system are cached under $RM_BUILD_DIR/docker-cache, so a second run is fast."""
import fcntl
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

import grpc
import numpy as np
import pytest

from conftest import audio_request, chain, f32
from remotemedia.v1 import pipeline_service_pb2_grpc as psg
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Must match deploy/Dockerfile's ARG defaults.
BASE_TAGS = {"debian:bookworm-20250520": False, "debian:bookworm-20250520-slim": True}
IMAGE = "remotemedia-server:test"
CONTAINER = "rm-docker-test"
DEADLINE = 60  # generous: the machine is shared


def run(cmd, timeout=600, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode,
                                                          p.stdout.decode()[-4000:], p.stderr.decode()[-4000:]))
    return p


def apt_mirror():
    """The first Debian mirror in /etc/apt/sources.list(.d) that serves bookworm."""
    files = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    for path in files:
        try:
            text = open(path).read()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):  # deb822 .sources
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.*)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
        for line in text.splitlines():  # one-line format
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """A private dockerd: its socket, exec root and pid file in a temp dir, its data root in
    the cache. docker() runs the CLI of the same package (/usr/bin/docker) against it."""

    def __init__(self, cache):
        self.cache = cache
        self.tmp = tempfile.mkdtemp(prefix="rmd-")  # short: unix socket paths are limited
        self.sock = os.path.join(self.tmp, "docker.sock")
        self.log_path = os.path.join(self.tmp, "dockerd.log")
        self.proc = None
        self.cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock, DOCKER_BUILDKIT="0")

    def start(self):
        """Starts dockerd with overlay2 when this kernel lets us mount an overlay (a layer is
        then not a full copy of its parent), else with vfs, which works everywhere. None, or
        why the engine cannot run here."""
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if os.geteuid() != 0:
            return "not root: dockerd needs root"
        if not os.path.exists(dockerd) or not self.cli:
            return "dockerd or docker not installed (scripts/install-deps.sh installs docker.io)"
        why = None
        if overlay_works(self.cache):
            why = self._start(dockerd, "overlay2")
            if why is None:
                return None
            self.stop_daemon()
        why_vfs = self._start(dockerd, "vfs")
        return why_vfs and ("%s (with overlay2: %s)" % (why_vfs, why) if why else why_vfs)

    def stop_daemon(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # dockerd leaves its network namespace bind-mounted under the exec root
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(self.tmp + "/")]
        for p in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", p], capture_output=True)

    def _start(self, dockerd, driver):
        self.driver = driver
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [dockerd, "--storage-driver=" + driver, "--iptables=false", "--ip-masq=false", "--bridge=none",
             "--data-root", os.path.join(self.cache, "data-root"), "--exec-root", os.path.join(self.tmp, "exec"),
             "--host", "unix://" + self.sock, "--pidfile", os.path.join(self.tmp, "dockerd.pid")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "dockerd exited with %d: %s" % (self.proc.returncode, self.log_tail())
            if self.docker("version", check=False, timeout=30).returncode == 0:
                return None
            time.sleep(0.2)
        return "dockerd did not answer within 90 s: " + self.log_tail()

    def log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def docker(self, *args, timeout=600, check=True, **kw):
        return run([self.cli] + list(args), timeout=timeout, check=check, env=self.env, **kw)

    def stop(self):
        self.stop_daemon()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def overlay_works(cache):
    d = tempfile.mkdtemp(prefix="ovl-", dir=cache)
    try:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        opts = "lowerdir=%s/l,upperdir=%s/u,workdir=%s/w" % (d, d, d)
        if subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, d + "/m"],
                          capture_output=True).returncode != 0:
            return False
        subprocess.run(["umount", d + "/m"], capture_output=True)
        return True
    finally:
        shutil.rmtree(d, ignore_errors=True)


def make_base_images(engine, cache):
    """debootstrap --variant=minbase bookworm once (the tarball is cached), imported under the
    Dockerfile's pinned tags; the -slim tag leaves out documentation, man pages and locales."""
    missing = [t for t in BASE_TAGS if engine.docker("image", "inspect", t, check=False).returncode != 0]
    if not missing:
        return
    tarball = os.path.join(cache, "bookworm-minbase.tar")
    if not os.path.exists(tarball):
        if not shutil.which("debootstrap"):
            pytest.skip("debootstrap not installed (scripts/install-deps.sh installs it)")
        root = tempfile.mkdtemp(prefix="rm-rootfs-", dir=cache)
        try:
            run(["debootstrap", "--variant=minbase", "bookworm", root, apt_mirror()], timeout=1200)
            run(["tar", "-C", root, "--numeric-owner", "-cf", tarball + ".part", "."], timeout=600)
            os.rename(tarball + ".part", tarball)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    for tag in missing:
        slim = BASE_TAGS[tag]
        excl = ["--exclude=./usr/share/doc/*", "--exclude=./usr/share/man/*",
                "--exclude=./usr/share/locale/*", "--exclude=./var/cache/apt/*.bin"] if slim else []
        # re-tar through a filter for the slim variant; the plain one is imported as it is
        if slim:
            work = tempfile.mkdtemp(prefix="rm-slim-", dir=cache)
            try:
                run(["tar", "-C", work, "--numeric-owner", "-xf", tarball], timeout=600)
                src = subprocess.Popen(["tar", "-C", work, "--numeric-owner", "-c"] + excl + ["."],
                                       stdout=subprocess.PIPE)
                engine.docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "--change", 'CMD ["bash"]', "-", tag, stdin=src.stdout)
                src.wait()
            finally:
                shutil.rmtree(work, ignore_errors=True)
        else:
            with open(tarball, "rb") as f:
                engine.docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "--change", 'CMD ["bash"]', "-", tag, stdin=f)


_SETUP_FAILED = []


@pytest.fixture(scope="module")
def engine():
    # pytest sets a failed module fixture up again for every test: fail the others at once
    if _SETUP_FAILED:
        pytest.fail("the engine or the image failed in an earlier test: " + _SETUP_FAILED[0])
    cache = os.path.join(os.environ.get("RM_BUILD_DIR") or tempfile.gettempdir(), "docker-cache")
    os.makedirs(cache, exist_ok=True)
    lock = open(os.path.join(cache, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one engine per data root
    e = Engine(cache)
    try:
        why = e.start()
        if why:
            pytest.skip("Docker engine cannot start here: " + why)
        t0 = time.monotonic()
        make_base_images(e, cache)
        t1 = time.monotonic()
        try:
            # the build stage gets a tag of its own: the prune below then keeps its layers,
            # which are the cache of the next run (they are no parent of the final image)
            for target in (["--target", "build", "-t", IMAGE + "-build"], ["-t", IMAGE]):
                e.docker("build", "--force-rm", "--network", "host", "-f",
                         os.path.join(REPO, "deploy", "Dockerfile"), *target, REPO, timeout=3000)
        except AssertionError as err:
            _SETUP_FAILED.append(str(err)[-300:])
            raise
        t2 = time.monotonic()
        print("\nstorage driver %s, base images %.1f s, docker build %.1f s" % (e.driver, t1 - t0, t2 - t1))
        yield e
        e.docker("rm", "-f", CONTAINER, check=False)
        e.docker("image", "prune", "-f", check=False)  # earlier builds' layers (vfs copies)
    finally:
        e.stop()
        lock.close()


def docker_logs(engine):
    p = engine.docker("logs", CONTAINER, check=False)
    out = []
    for line in (p.stdout + p.stderr).decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def check_metrics_endpoint(port):
    """GET /metrics on the image's metrics listener answers 200 with the gRPC counters, the
    call just made among them."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=DEADLINE) as r:
        assert r.status == 200
        body = r.read().decode()
    assert ('grpc_server_handled_total{grpc_type="unary",grpc_service="remotemedia.v1.PipelineService",'
            'grpc_method="ExecutePipeline",grpc_code="OK"} 1\n') in body


def test_image_has_no_build_or_test_tools(engine):
    script = ("for t in gcc cc c99 cpp g++ clang cmake make ld as protoc protoc-c pytest python3 "
              "pip3 apt-get-build-dep; do command -v $t && exit 1; done; "
              "for p in gcc-12 cpp-12 cmake build-essential python3 python3-pytest libcunit1-dev "
              "libgrpc-dev protobuf-compiler; do "
              "dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'install ok installed' && echo $p && exit 1; "
              "done; exit 0")
    p = engine.docker("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", IMAGE, "-c", script,
                      check=False)
    assert p.returncode == 0, "found in the image: " + p.stdout.decode()
    cfg = json.loads(engine.docker("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert cfg["User"] == "10001:10001"
    assert set(cfg["ExposedPorts"]) == {"50051/tcp", "9464/tcp"}
    assert "RM_METRICS_LISTEN=0.0.0.0:9464" in cfg["Env"]
    assert "health" in " ".join(cfg["Healthcheck"]["Test"])


def test_runs_read_only_as_non_root_healthy_and_drains_on_stop(engine):
    port, mport = free_port(), free_port()
    engine.docker("rm", "-f", CONTAINER, check=False)
    engine.docker("run", "-d", "--name", CONTAINER, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                  "-e", "RM_LISTEN=127.0.0.1:%d" % port, "-e", "RM_METRICS_LISTEN=127.0.0.1:%d" % mport,
                  "-e", "RM_LOG_LEVEL=debug", "-e", "RM_GRACE_MS=20000", IMAGE)
    try:
        ev = wait_for(lambda: [e for e in docker_logs(engine) if e.get("event") == "listening"], DEADLINE,
                      "the listening line")[0]
        assert ev["port"] == port
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            r = health.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE, wait_for_ready=True)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
            stub = psg.PipelineServiceStub(ch)
            req = audio_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 6.0206})))
            out = f32(stub.ExecutePipeline(req, timeout=DEADLINE).outputs["g"].items[0])
            np.testing.assert_allclose(out, np.float32([0.5, -1.0, 0.25]), rtol=1e-4)

            # Docker's own HEALTHCHECK (the CLI's health command inside the container)
            wait_for(lambda: engine.docker("inspect", "-f", "{{.State.Health.Status}}", CONTAINER)
                     .stdout.decode().strip() == "healthy", 120, "docker health 'healthy'")

            # the process: uid/gid 10001, read-only root file system
            pid = int(engine.docker("inspect", "-f", "{{.State.Pid}}", CONTAINER).stdout)
            status = open("/proc/%d/status" % pid).read()
            uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
            gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
            assert uids == ["10001"] * 4 and gids == ["10001"] * 4, (uids, gids)
            assert engine.docker("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", CONTAINER).stdout.strip() == b"true"
            # even root cannot write the root file system (the server's uid could not anyway)
            p = engine.docker("exec", "-u", "0", CONTAINER, "/bin/sh", "-c", "touch /x", check=False)
            assert p.returncode != 0 and b"Read-only file system" in p.stderr

            check_metrics_endpoint(mport)

            # docker stop drains: the call in flight completes, new calls are refused
            slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 3000}), name="in-flight")
            fut = stub.ExecutePipeline.future(audio_request(slow), timeout=DEADLINE)
            wait_for(lambda: [e for e in docker_logs(engine)
                              if e.get("event") == "pipeline_start" and e.get("pipeline") == "in-flight"],
                     DEADLINE, "the slow call to start")
            stopper = threading.Thread(target=engine.docker, args=("stop", "-t", "60", CONTAINER))
            stopper.start()
            wait_for(lambda: [e for e in docker_logs(engine) if e.get("event") == "draining"], DEADLINE,
                     "the draining line")
            assert not fut.done()
            r = fut.result()
            assert [n.state for n in r.node_results] == [1, 1]
            assert r.outputs["d"].items[0].audio.sample_rate == 16000
            stopper.join(120)
        state = json.loads(engine.docker("inspect", "-f", "{{json .State}}", CONTAINER).stdout)
        assert state["Running"] is False and state["ExitCode"] == 0 and state["OOMKilled"] is False
        events = [e.get("event") for e in docker_logs(engine)]
        assert events.index("draining") < events.index("stopping") < events.index("stopped")
        assert [e for e in docker_logs(engine) if e.get("event") == "draining"][0]["signal"] == "SIGTERM"
    finally:
        engine.docker("rm", "-f", CONTAINER, check=False)


def test_health_needs_token_and_the_image_stays_healthy(engine):
    """RM_HEALTH_NEEDS_TOKEN: gRPC health without a token is refused, and the image's
    HEALTHCHECK (deploy/healthcheck.sh: /readyz, which checks through the gRPC port with a
    token of the server's) still turns the container healthy."""
    port, mport = free_port(), free_port()
    token = "docker-health-token"
    engine.docker("rm", "-f", CONTAINER, check=False)
    engine.docker("run", "-d", "--name", CONTAINER, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                  "-e", "RM_LISTEN=127.0.0.1:%d" % port, "-e", "RM_METRICS_LISTEN=127.0.0.1:%d" % mport,
                  "-e", "RM_AUTH_TOKENS=" + token, "-e", "RM_HEALTH_NEEDS_TOKEN=true", IMAGE)
    try:
        wait_for(lambda: [e for e in docker_logs(engine) if e.get("event") == "listening"], DEADLINE,
                 "the listening line")
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            with pytest.raises(grpc.RpcError) as e:
                health.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE, wait_for_ready=True)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
            r = health.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE,
                             metadata=[("authorization", "Bearer " + token)])
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        wait_for(lambda: engine.docker("inspect", "-f", "{{.State.Health.Status}}", CONTAINER)
                 .stdout.decode().strip() == "healthy", 120, "docker health 'healthy'")
    finally:
        engine.docker("rm", "-f", CONTAINER, check=False)
