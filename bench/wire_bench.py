#!/usr/bin/python3
"""wire_bench.py - every comparison of issue 11 in one run: remotemedia-server against the bare
C-core echo (bench/server/echo_server.c) and a Python grpcio server with the same contract
(bench/server/py_server.py), runs interleaved, printed as ONE markdown table of ratios with the
load average seen. Load: h2load (nghttp2-client); CPU per call from
/proc/<pid>/task/*/schedstat (ns; the ticks of /proc/<pid>/stat are 10 ms).

Pinned runs: each server on CPU 0 (one polling thread, one worker), h2load on CPU 1. "As
shipped" and the thread matrix: servers and h2load unpinned, against the best echo of pinned
and unpinned. Streams S are h2load -c min(S,4) -m S/min(S,4).

Media pipeline: latency (h2load, one stream) and node time come from the same calls (the
server's GetStatistics counters read around each run); the in-process chain (bench/media
chain, pinned like the server) runs in every round, so both see the same load. Its fair
baseline runs what a server call gets (this signal, a freshly filled input buffer, node time
as the metrics count it); the old one (bench/media's own signal, one reused input buffer, the
whole run) is printed too.

First calls (3.84 MB PassThrough): on each of five fresh servers, ten calls one after the other
on one connection and ten on a second; h2load's per-request log gives each call's time. The
first call on a fresh server is compared with warm calls (the goal), and split into the
server's part (against the first call on a new connection to the warm server) and the new
connection's part, which the echo shows too. The server's CPU for a fresh server's first call
and for a new connection's, without the server's warm call (the default) and with it, on
five more fresh servers each.

Usage: /usr/bin/python3 bench/wire_bench.py [--build build-rel] [--rounds 3] [--scale 1]
       [--smoke]    (tiny counts, one round: the shape of the table, not its figures)
       [--only media]  (only the media pipeline's rows)
"""
import argparse
import math
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHOD = "/remotemedia.v1.PipelineService/ExecutePipeline"
STREAMS = (1, 4, 16, 64)
# calls per load run, by request (about a second each on a quiet machine of this kind)
COUNTS = {"pt100": 4000, "five_off": 4000, "five_on": 4000, "py_pt": 600, "py_gain": 600,
          "rm_py_pt": 4000, "rm_py_gain": 4000,
          "pt64k": 1500, "gain64k": 1000, "pt1m": 150, "gain1m": 100, "media": 40, "big_pt": 20}


def body_key(path):
    return os.path.basename(path).rsplit(".", 1)[0]


def stubs(build):
    sys.path.insert(0, os.path.join(build, "python_gen"))
    from remotemedia.v1 import pipeline_service_pb2 as ps  # noqa: E402
    return ps


def chain(ps, name, nodes, payload_kind, nbytes, metrics=False, channels=1, rate=48000):
    """An ExecuteRequest: nodes is [(type, params-json)] chained in order; the input is audio
    f32 of nbytes (a sine) or binary."""
    req = ps.ExecuteRequest(enable_metrics=metrics)
    req.manifest.name = name
    for i, (t, p) in enumerate(nodes):
        req.manifest.nodes.add(id=f"n{i}", node_type=t, params=p)
        if i:
            c = req.manifest.connections.add(to=f"n{i}")
            setattr(c, "from", f"n{i - 1}")
    if payload_kind == "binary":
        req.inputs["n0"].binary.data = bytes(nbytes)
    else:
        import numpy as np
        n = nbytes // 4
        t = np.arange(n, dtype=np.float64) / (rate * channels)
        a = req.inputs["n0"].audio
        a.samples = (0.25 * np.sin(2 * np.pi * 440 * t)).astype("<f4").tobytes()
        a.sample_rate, a.channels, a.format = rate, channels, 1
    return req


def fan(ps, name, heads, tails, nbytes, channels, rate, metrics=False):
    """AudioResample feeding several sinks (the issue's media pipeline)."""
    req = chain(ps, name, [heads], "audio", nbytes, metrics, channels, rate)
    for i, (t, p) in enumerate(tails):
        req.manifest.nodes.add(id=f"s{i}", node_type=t, params=p)
        c = req.manifest.connections.add(to=f"s{i}")
        setattr(c, "from", "n0")
    return req


def write_body(tmp, key, req):
    body = req.SerializeToString()
    path = os.path.join(tmp, key + ".grpc")
    with open(path, "wb") as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)
    return path


class Server:
    def __init__(self, name, argv, tmp, cpus=None, env=None):
        self.name = name
        self.log = os.path.join(tmp, name + ".log")
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + argv
        self.p = subprocess.Popen(argv, stderr=open(self.log, "w"), stdout=subprocess.DEVNULL,
                                  env=env)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.port is None:
            with open(self.log) as f:
                m = re.search(r'"port":\s*(\d+)', f.read())
            if m:
                self.port = int(m.group(1))
            elif self.p.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.port is None:
            raise SystemExit(f"{name} did not start: {open(self.log).read()[-2000:]}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait()


def h2load_cmd(server, body, pinned, options):
    """h2load sending body to the method on server, one thread (on CPU 1 when pinned)."""
    return ((["taskset", "-c", "1"] if pinned else []) +
            ["h2load", "-t", "1"] + options +
            ["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body,
             f"http://127.0.0.1:{server.port}{METHOD}"])


def h2load(server, body, streams, args, pinned, count_key=None):
    """One load run: (calls/s, server CPU us per call, mean request time us). The number of
    calls is COUNTS[count_key or the body's name] x --scale."""
    c = min(streams, 4)
    # counts, not durations: h2load's timed mode (-D) started no client at all on a loaded
    # 2-CPU machine
    n = args.requests if args.smoke else int(COUNTS.get(count_key or body_key(body), 1000) *
                                             args.scale)
    cmd = h2load_cmd(server, body, pinned, ["-c", str(c), "-m", str(max(1, streams // c)),
                                            "-n", str(max(n, c * max(1, streams // c)))])
    before = task_ns(server.p.pid)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    cpu_ns = task_ns(server.p.pid) - before
    ok = re.search(r"(\d+) succeeded", out)
    rate = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    n = int(ok.group(1)) if ok else 0
    if not n or not rate:
        raise SystemExit(f"h2load against {server.name} failed:\n{out[-2000:]}")
    mean_us = float(mean.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[mean.group(2)] if mean else 0
    return float(rate.group(1)), cpu_ns / 1e3 / n, mean_us


def sequential(server, body, n, tmp):
    """n calls one after the other on one new connection: each call's time (us), in order
    (h2load's per-request log). body is a PassThrough request: each answer carries it back."""
    log = os.path.join(tmp, "sequential.log")
    if os.path.exists(log):
        os.unlink(log)  # h2load appends
    cmd = h2load_cmd(server, body, True, ["-c", "1", "-m", "1", "-n", str(n), "--log-file", log])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    times = [int(line.split("\t")[2]) for line in open(log)] if os.path.exists(log) else []
    # a gRPC error is HTTP 200 too, without the message: every call must have sent its answer
    # (a PassThrough of the body: as many bytes, less framing)
    data = re.search(r"traffic: .*\((\d+)\) data", p.stdout)
    if p.returncode or len(times) != n or not data or int(data.group(1)) < n * (
            os.path.getsize(body) - 1024):
        raise SystemExit(f"h2load against {server.name} failed:\n{(p.stdout + p.stderr)[-2000:]}")
    return times


def first_calls(start, body, tmp, rm_argv, echo_argv, servers):
    """Medians over `servers` fresh servers of each: its first call (on the first connection),
    the first call on a second connection (the server warm, the connection new) and the
    connection's later calls (warm), and the same for the echo. One call is too short a
    sample on a shared machine, hence the several servers."""
    got = {}
    for i in range(servers):
        for key, argv in (("", rm_argv), ("echo_", echo_argv)):
            s = start(f"{key}fresh{i}", argv)
            a, b = sequential(s, body, 10, tmp), sequential(s, body, 10, tmp)
            s.stop()
            got.setdefault(key + "fresh", []).append(a[0])
            got.setdefault(key + "new_conn", []).append(b[0])
            got.setdefault(key + "warm", []).extend(a[1:] + b[1:])
    return {k: median(v) for k, v in got.items()}


def task_ns(pid):
    """CPU time of every thread of the process, ns (/proc/PID/task/*/schedstat): ticks of
    /proc/PID/stat are 10 ms, longer than one call. Live threads only: one that ends between
    two readings takes its time out of the difference (the server's own threads live as long
    as it does)."""
    total = 0
    for d in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{d}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended
    return total


def first_call_cpu(start, body, tmp, argv, servers):
    """Medians over `servers` fresh servers of the server's CPU (us) for its first call and
    for the first call on a second connection (the process warm, the connection new)."""
    got = {}
    for i in range(servers):
        s = start(f"cpu{i}", argv)
        time.sleep(0.5)  # what start-up leaves running (the warm call's channel) settles
        for key in ("fresh", "new_conn"):
            t0 = task_ns(s.p.pid)
            sequential(s, body, 1, tmp)
            got.setdefault(key, []).append((task_ns(s.p.pid) - t0) / 1e3)
        s.stop()
    return {k: median(v) for k, v in got.items()}


def div(a, b):
    """a / b, None (printed n/a) when b is 0."""
    return a / b if b else None


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, unit=""):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.0f}{unit}" if abs(x) >= 100 else f"{x:.2f}{unit}"


def in_process_media(build, runs):
    """bench/media's chain in-process, pinned to the server's CPU: its RESULT figures ({} when
    the program is missing). media_chain_warm_us is the old baseline (one warm pipeline on the
    same input buffer every call, bench/media's own bursts signal, the whole run);
    media_chain_fair_* the warm pipeline on what a server call gets (this script's signal in
    a buffer filled afresh per call): the run, its nodes' own time, CPU time, per node."""
    exe = os.path.join(build, "bench", "media")
    if not os.access(exe, os.X_OK):
        return {}
    out = subprocess.run(["taskset", "-c", "0", exe, str(runs), "chain"], capture_output=True,
                         text=True, timeout=300).stdout
    res = {}
    for k, v in re.findall(r"RESULT (media_chain_\w+)=([\d.,]+)", out):
        res[k] = [float(x) for x in v.split(",")] if "," in v else float(v)
    return res


MEDIA_NODES = ("AudioResample", "LoudnessMeter", "VAD")


def statistics_snapshot(ps, port, name):
    """The server's cumulative counters (GetStatistics): for pipeline `name` its answered
    calls and their ns (the whole request received to the answer), queue and compute; per
    node type the ns of its invocations."""
    import grpc
    from remotemedia.v1 import pipeline_service_pb2_grpc as psg
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        st = psg.PipelineServiceStub(ch).GetStatistics(ps.GetStatisticsRequest(), timeout=30)
    snap = {}
    for p in st.pipelines:
        if p.name == name:
            snap["calls"] = p.stats.success.count
            snap["call_ns"] = p.stats.success.ns
            snap["queue_ns"] = p.stats.queue.ns
    for n in st.node_types:
        if n.node_type in MEDIA_NODES:
            snap[n.node_type] = n.stats.compute.ns
    return snap


def media_run(ps, server, body, args):
    """One load run of the media request on one stream, with the server's counters read
    around it, so latency and node time come from the very same calls. Per-call means (us):
    lat (h2load), server (the whole request received to the answer), queue, nodes (the sum of
    the nodes' own times, what the metrics call node time), each node type, cpu (the server's
    CPU per call)."""
    before = statistics_snapshot(ps, server.port, "media")
    rate, cpu, lat = h2load(server, body, 1, args, True)
    after = statistics_snapshot(ps, server.port, "media")
    calls = after.get("calls", 0) - before.get("calls", 0)
    if not calls:
        raise SystemExit("media run: the server counted no call")

    def per_call(key):
        return (after.get(key, 0) - before.get(key, 0)) / calls / 1e3

    r = {"lat": lat, "cpu": cpu, "server": per_call("call_ns"), "queue": per_call("queue_ns")}
    for t in MEDIA_NODES:
        r[t] = per_call(t)
    r["nodes"] = sum(r[t] for t in MEDIA_NODES)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the calls per run")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", choices=("media",),
                    help="media: only the media pipeline's rows and their breakdown (its "
                         "server, the in-process chain each round; a few minutes at --scale 1)")
    args = ap.parse_args()
    args.requests = 8
    if args.smoke:
        args.rounds = 1
    if not shutil.which("h2load"):
        print("h2load missing: RM_EXTRA_PACKAGES=1 scripts/install-deps.sh", file=sys.stderr)
        return 77
    build = os.path.abspath(args.build)
    ps = stubs(build)
    load_start = open("/proc/loadavg").read().split()[:3]
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="wire_bench.")
    servers = []
    try:
        return run(args, build, ps, tmp, servers, load_start, t0)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, build, ps, tmp, servers, load_start, t0):
    small = 1 if args.smoke else 0  # smoke: small payloads, so the run stays short
    sizes = {"64k": 64 << 10, "1m": 4096 if small else 1 << 20}
    media_bytes = 38400 if small else 3840000
    bodies = {
        "pt100": write_body(tmp, "pt100", chain(ps, "pt", [("PassThrough", "")], "binary", 100)),
        "five_off": write_body(tmp, "five_off", chain(ps, "five", [("PassThrough", "")] * 5,
                                                      "binary", 100)),
        "five_on": write_body(tmp, "five_on", chain(ps, "five", [("PassThrough", "")] * 5,
                                                    "binary", 100, metrics=True)),
        "py_pt": write_body(tmp, "py_pt", chain(ps, "pt", [("PassThrough", "")], "audio", 4096)),
        "py_gain": write_body(tmp, "py_gain", chain(ps, "g", [("Gain", '{"db": -6}')], "audio",
                                                    4096)),
    }
    for k, n in sizes.items():
        bodies["pt" + k] = write_body(tmp, "pt" + k, chain(ps, "pt", [("PassThrough", "")],
                                                           "audio", n))
        bodies["gain" + k] = write_body(tmp, "gain" + k, chain(ps, "g", [("Gain", '{"db": -6}')],
                                                               "audio", n))
    media_req = fan(ps, "media", ("AudioResample", '{"rate": 16000, "channels": 1}'),
                    [("LoudnessMeter", ""), ("VAD", "")], media_bytes, 2, 48000)
    bodies["media"] = write_body(tmp, "media", media_req)
    bodies["big_pt"] = write_body(tmp, "big_pt", chain(ps, "bigpt", [("PassThrough", "")],
                                                       "audio", media_bytes))

    server_bin = os.path.join(build, "server", "remotemedia-server")
    echo_bin = os.path.join(build, "bench", "server", "echo_server")
    rm_args = [server_bin, "--listen", "127.0.0.1:0", "--log-level", "warn"]
    env = dict(os.environ, PYTHONPATH=os.path.join(build, "python_gen"))

    def start(name, argv, cpus=None, e=None):
        s = Server(name, argv, tmp, cpus, e)
        servers.append(s)
        return s

    # the sink keeps its heap the way remotemedia-server does (server/main.c's mallopt): freed
    # megabytes stay mapped instead of faulting in again on every call
    sink = start("sink_pinned", [echo_bin, "127.0.0.1:0", METHOD, "sink"], "0", dict(
        os.environ, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=8388608:"
                                   "glibc.malloc.trim_threshold=16777216"))
    if args.only == "media":
        return run_media(args, build, ps, bodies["media"], sink, start(
            "rm_pinned", rm_args + ["--threads", "1", "--workers", "1"], "0"), load_start, t0)
    echo_pin = start("echo_pinned", [echo_bin, "127.0.0.1:0", METHOD], "0")
    echo_free = start("echo", [echo_bin, "127.0.0.1:0", METHOD])
    rm_pin = start("rm_pinned", rm_args + ["--threads", "1", "--workers", "1"], "0")
    py = start("py", ["/usr/bin/python3", os.path.join(ROOT, "bench", "server", "py_server.py"),
                      "127.0.0.1:0", "4"], "0", env)
    shipped = start("shipped", rm_args)
    matrix = {}
    for t in (1, 2):
        for w in (1, 2):
            for inline in ("inline", "offloaded"):
                extra = ["--threads", str(t), "--workers", str(w)]
                if inline == "offloaded":
                    extra += ["--inline-max-bytes", "0"]
                matrix[(t, w, inline)] = start(f"m{t}{w}{inline}", rm_args + extra)

    samples = {}

    def measure(key, server, body, streams, pinned, count_key=None):
        samples.setdefault(key, []).append(h2load(server, bodies[body], streams, args, pinned,
                                                  count_key))

    # warm-up: every server sees each request it will get
    for s in [echo_pin, rm_pin]:
        for b in bodies:
            if b != "media" or s is rm_pin:
                h2load(s, bodies[b], 1, argparse.Namespace(smoke=True, requests=4), True)
    h2load(sink, bodies["media"], 1, argparse.Namespace(smoke=True, requests=4), True)
    media = []
    for r in range(args.rounds):  # interleaved: drift hits every configuration alike
        for k in sizes:
            for kind in ("pt", "gain"):
                measure(("echo", kind + k), echo_pin, kind + k, 16, True)
                measure(("rm", kind + k), rm_pin, kind + k, 16, True)
        measure(("rm", "five_off"), rm_pin, "five_off", 16, True)
        measure(("rm", "five_on"), rm_pin, "five_on", 16, True)
        for kind in ("py_pt", "py_gain"):
            # each server gets about a second of calls: 600 are ~20 ms of this server's time,
            # too short next to h2load's connection set-up, which the rate includes
            measure(("py", kind), py, kind, 16, True)
            measure(("rm", kind), rm_pin, kind, 16, True, "rm_" + kind)
        for st in STREAMS:
            measure(("echo_pin", st), echo_pin, "pt100", st, True)
            measure(("echo_free", st), echo_free, "pt100", st, False)
            measure(("shipped", st), shipped, "pt100", st, False)
            for cfg, s in matrix.items():
                measure((cfg, st), s, "pt100", st, False)
        media.append(media_round(args, build, ps, rm_pin, sink, bodies["media"]))

    def rate(key):
        return median([x[0] for x in samples[key]])

    def cpu(key):
        return median([x[1] for x in samples[key]])

    rows = []

    def row(label, value, base, ratio, goal):
        rows.append((label, value, base, ratio, goal))

    notes = []
    media_rows(row, media, notes)
    # payload sizes against the echo
    for k in sizes:
        for kind, nm in (("pt", "PassThrough"), ("gain", "Gain")):
            label = f"{nm} {'64 KiB' if k == '64k' else ('1 MiB' if not small else '4 KiB')}"
            row(f"{label}: CPU/call vs echo", fmt(cpu(("rm", kind + k)), " us"),
                fmt(cpu(("echo", kind + k)), " us"),
                div(cpu(("rm", kind + k)), cpu(("echo", kind + k))), "<= 1.10")
            row(f"{label}: calls/s vs echo, 16 streams", fmt(rate(("rm", kind + k))),
                fmt(rate(("echo", kind + k))), div(rate(("rm", kind + k)), rate(("echo", kind + k))),
                ">= 0.90")
    # first calls: on fresh servers, and on new connections to warm ones
    fc = first_calls(lambda name, argv: start(name, argv, "0"), bodies["big_pt"], tmp,
                     rm_args + ["--threads", "1", "--workers", "1"],
                     [echo_bin, "127.0.0.1:0", METHOD], 1 if args.smoke else 5)
    row("big PassThrough: first call on a fresh server / warm", fmt(fc["fresh"], " us"),
        fmt(fc["warm"], " us"), div(fc["fresh"], fc["warm"]), "<= 1.2")
    row("big PassThrough: first call on a fresh server / first call on a new connection to "
        "the warm server (the server's part)", fmt(fc["fresh"], " us"),
        fmt(fc["new_conn"], " us"), div(fc["fresh"], fc["new_conn"]), "(breakdown)")
    row("big PassThrough: first call on a new connection / warm (the connection's part)",
        fmt(fc["new_conn"], " us"), fmt(fc["warm"], " us"), div(fc["new_conn"], fc["warm"]), "(breakdown)")
    row("echo, same request: first call on a new connection / warm",
        fmt(fc["echo_new_conn"], " us"), fmt(fc["echo_warm"], " us"),
        div(fc["echo_new_conn"], fc["echo_warm"]), "(baseline)")
    # the server's CPU for them, without its warm call (the default) and with it
    for label, extra in (("", []), (", --warm-call", ["--warm-call=true"])):
        cc = first_call_cpu(lambda name, argv: start(name, argv, "0"), bodies["big_pt"], tmp,
                            rm_args + ["--threads", "1", "--workers", "1"] + extra,
                            1 if args.smoke else 5)
        row(f"big PassThrough: server CPU of a fresh server's first call / of a new "
            f"connection's first call{label}", fmt(cc["fresh"], " us"), fmt(cc["new_conn"], " us"),
            div(cc["fresh"], cc["new_conn"]), "(breakdown)")
    # as shipped and the matrix
    best = {st: max(rate(("echo_pin", st)), rate(("echo_free", st))) for st in STREAMS}
    for st in STREAMS:
        row(f"as shipped, 100 B, {st} streams: calls/s vs best echo", fmt(rate(("shipped", st))),
            fmt(best[st]), div(rate(("shipped", st)), best[st]), ">= 0.90")
    for cfg in matrix:
        ratios = " / ".join(f"{rate((cfg, st)) / best[st]:.2f}" for st in STREAMS)
        row(f"matrix threads={cfg[0]} workers={cfg[1]} {cfg[2]}: vs best echo at 1/4/16/64",
            ratios, "", None, ">= 0.90")
    # metrics and the Python server
    row("metrics on / off, 5 nodes (calls/s)", fmt(rate(("rm", "five_on"))),
        fmt(rate(("rm", "five_off"))), div(rate(("rm", "five_on")), rate(("rm", "five_off"))),
        ">= 0.97")
    row("metrics on / off, 5 nodes: server CPU per call, off / on", fmt(cpu(("rm", "five_on")), " us"),
        fmt(cpu(("rm", "five_off")), " us"), div(cpu(("rm", "five_off")), cpu(("rm", "five_on"))),
        "(breakdown)")
    for kind, nm in (("py_pt", "PassThrough"), ("py_gain", "Gain (numpy)")):
        row(f"{nm} 4 KiB: calls/s vs Python grpcio", fmt(rate(("rm", kind))),
            fmt(rate(("py", kind))), div(rate(("rm", kind)), rate(("py", kind))), ">= 10")

    print_table(args, build, rows, load_start, t0, notes)
    return 0


def media_round(args, build, ps, server, sink, body):
    """One round of the media pipeline: a load run over the wire, the same requests to the bare
    C-core sink (the transport's floor), then the in-process chain."""
    r = media_run(ps, server, body, args)
    _, r["sink_cpu"], r["sink_lat"] = h2load(sink, body, 1, args, True)
    r["in"] = in_process_media(build, 3 if args.smoke else max(3, int(5 * args.scale)))
    return r


def media_rows(row, media, notes):
    """The media pipeline's two goal rows, and its breakdown (us per call, medians over the
    rounds) as lines for under the table."""
    def med(key):
        return median([m[key] for m in media])

    def inproc(key, i=None):
        xs = [m["in"][key] for m in media if key in m["in"]]
        return median([x[i] if i is not None else x for x in xs]) if xs else None

    lat, nodes, server, cpu = med("lat"), med("nodes"), med("server"), med("cpu")
    old, fair, fair_cpu = (inproc("media_chain_warm_us"), inproc("media_chain_fair_node_us"),
                           inproc("media_chain_fair_cpu_us"))
    row("media: client latency / node time", fmt(lat, " us"), fmt(nodes, " us"),
        div(lat, nodes), "<= 1.10")
    row("media: node time / in-process warm", fmt(nodes, " us"), fmt(fair, " us") + " (fair)",
        div(nodes, fair), "<= 1.10")
    n = len(media)
    notes.append(f"Media pipeline, per call, medians of {n} round(s); latency and node time "
                 "from the same calls (h2load, one stream; the server's GetStatistics):")
    notes.append(f"- client latency {fmt(lat, ' us')} = before arrival {fmt(lat - server, ' us')} "
                 "(client send, transfer, the server's reads and framing: latency - server "
                 f"time) + server time {fmt(server, ' us')} (whole request received to answer)")
    notes.append(f"- server time {fmt(server, ' us')} = outside the nodes "
                 f"{fmt(server - nodes, ' us')} (of which queue {fmt(med('queue'), ' us')}; "
                 f"unpack, cache, answer) + node time {fmt(nodes, ' us')}")
    per = ", ".join(f"{t} {fmt(med(t), ' us')} / {fmt(inproc('media_chain_fair_per_node_us', i), ' us')}"
                    for i, t in enumerate(MEDIA_NODES))
    notes.append(f"- node time over the wire / in-process (fair): {per}")
    sink_lat, sink_cpu = med("sink_lat"), med("sink_cpu")
    notes.append(f"- the same request to a bare C-core server that answers an empty message "
                 f"(bench/server/echo_server sink): latency {fmt(sink_lat, ' us')}, its CPU "
                 f"{fmt(sink_cpu, ' us')} per call: the transport's floor; with this node time "
                 f"the best latency / node time is {fmt(div(nodes + sink_lat, nodes))}")
    notes.append(f"- server CPU per call {fmt(cpu, ' us')}; in-process CPU per run (fair) "
                 f"{fmt(fair_cpu, ' us')}: {fmt(div(cpu, fair_cpu))} (CPU time: the load does "
                 "not inflate it)")
    notes.append(f"- old baseline (bench/media's own signal, one input buffer reused, the whole "
                 f"run): {fmt(old, ' us')}; node time / it = {fmt(div(nodes, old))}")


def run_media(args, build, ps, body, sink, server, load_start, t0):
    """--only media: the media rows alone, on their own pinned servers."""
    for s in (server, sink):  # warm-up
        h2load(s, body, 1, argparse.Namespace(smoke=True, requests=4), True)
    media = [media_round(args, build, ps, server, sink, body) for _ in range(args.rounds)]
    rows, notes = [], []
    media_rows(lambda *r: rows.append(r), media, notes)
    print_table(args, build, rows, load_start, t0, notes)
    return 0


def print_table(args, build, rows, load_start, t0, notes):
    load_end = open("/proc/loadavg").read().split()[:3]
    print(f"wire_bench: {args.rounds} round(s), medians; load average {' '.join(load_start)} at "
          f"start, {' '.join(load_end)} at the end; {time.time() - t0:.0f} s; "
          f"{os.cpu_count()} CPUs; build {build}")
    print()
    print("| comparison | this server | baseline | ratio | goal |")
    print("|---|---|---|---|---|")
    for label, value, base, ratio, goal in rows:
        r = "n/a" if ratio is None else f"{ratio:.2f}"
        if ratio is None and "/" in value and label.startswith("matrix"):
            r = value
            value = ""
        print(f"| {label} | {value} | {base} | {r} | {goal} |")
    print()
    for line in notes:
        print(line)


if __name__ == "__main__":
    sys.exit(main())
