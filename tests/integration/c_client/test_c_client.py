"""The C client against real servers on ephemeral ports: the library's own test program
(test_rmclient: numbers, metrics, errors, auth, TLS, threads), the `remotemedia` CLI (run
remote and in-process, nodes, health, version, exit codes 0/1/2), the documented examples
and the installed library (header, pkg-config file).

Binaries come from $RM_CLIENT_TEST_BIN and $RM_CLI_BIN; $RM_CLIENT_WRAPPER (e.g. valgrind)
is put in front of both, as $RM_SERVER_WRAPPER is in front of the server."""
import json
import os
import re
import shlex
import socket
import struct
import subprocess
import wave
from contextlib import ExitStack

import grpc
import numpy as np
import pytest

from rmtest.cli import VALGRIND_LINE, error_line, run_cli, wrapper
from rmtest.pki import make_pki
from rmtest.server import RunningServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TOKEN = "c-client-token"
GAIN = 10 ** (-6.0206 / 20)
RUN_TIMEOUT_S = 600  # a safety net for hung processes, not an assertion
SEED_KEYS = ["pipeline_id", "total_executions", "total_duration_us", "total_duration_ms",
             "peak_memory_bytes", "peak_memory_mb", "metrics_overhead_us", "node_metrics"]
SEED_NODE_KEYS = ["node_id", "execution_count", "success_count", "error_count", "success_rate",
                  "total_duration_us", "avg_duration_us", "min_duration_us", "max_duration_us"]


def cli(*args, cwd=None):
    """Runs the CLI; returns (exit status, stdout, stderr without a wrapper's own lines)."""
    return run_cli(*args, timeout=RUN_TIMEOUT_S, cwd=cwd)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("certs"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def server():
    with RunningServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def auth_server():
    with RunningServer(["--auth-tokens", TOKEN]) as srv:
        yield srv


@pytest.fixture(scope="module")
def tls_servers(certs):
    tls_args = ["--tls-cert", certs("server.pem"), "--tls-key", certs("server.key")]
    client_creds = grpc.ssl_channel_credentials(read(certs("ca.pem")), read(certs("client.key")),
                                                read(certs("client.pem")))
    with ExitStack() as stack:
        tls = stack.enter_context(RunningServer(tls_args, tls_root=read(certs("ca.pem"))))
        mtls = stack.enter_context(RunningServer(
            tls_args + ["--tls-client-ca", certs("ca.pem"), "--tls-require-client-cert"],
            credentials=client_creds))
        yield tls, mtls


def write_wav_i16(path, samples, rate=16000, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def write_wav_f32(path, samples, rate=48000, channels=1):
    """IEEE-float WAV (format tag 3), which the `wave` module cannot write."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * channels * 4, channels * 4, 32)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def read_wav_i16(path):
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        return w.getframerate(), w.getnchannels(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def manifest(path, nodes, connections=(), name="cli-test"):
    doc = {"name": name, "nodes": [{"id": i, "node_type": t, **({"params": p} if p is not None else {})}
                                   for i, t, p in nodes],
           "connections": [{"from": a, "to": b} for a, b in connections]}
    with open(path, "w") as f:
        json.dump(doc, f)
    return str(path)


@pytest.fixture
def gain_files(tmp_path):
    """A gain manifest, a 16-bit sine (amplitude 0.8) and a float WAV."""
    n = np.arange(1600)
    pcm = np.round(0.8 * 32767 * np.sin(2 * np.pi * 440 * n / 16000)).astype(np.int16)
    write_wav_i16(tmp_path / "in.wav", pcm)
    f32 = (0.9 * np.sin(2 * np.pi * 1000 * np.arange(480) / 48000)).astype(np.float32)
    write_wav_f32(tmp_path / "in_f32.wav", f32)
    m = manifest(tmp_path / "gain.json", [("src", "PassThrough", None), ("g", "Gain", {"db": -6.0206})],
                 [("src", "g")], name="gain-demo")
    return {"dir": tmp_path, "manifest": m, "pcm": pcm, "f32": f32,
            "wav": str(tmp_path / "in.wav"), "wav_f32": str(tmp_path / "in_f32.wav")}


# ---------------------------------------------------------------- the library

def test_library_against_real_servers(server, auth_server, tls_servers, certs):
    tls, mtls = tls_servers
    cmd = wrapper() + [os.environ["RM_CLIENT_TEST_BIN"],
                       "--server", server.address(),
                       "--auth-server", auth_server.address(), "--token", TOKEN,
                       "--tls-server", tls.address(), "--mtls-server", mtls.address(),
                       "--tls-ca", certs("ca.pem"), "--tls-other-ca", certs("otherca.pem"),
                       "--tls-cert", certs("client.pem"), "--tls-key", certs("client.key"),
                       "--tls-other-key", certs("intruder.key")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stdout + p.stderr
    # every suite ran: rpc (19 tests), auth (1), tls (3)
    assert re.search(r"suites\s+3\s+3", p.stdout), p.stdout
    assert re.search(r"tests\s+23\s+23\s+23\s+0", p.stdout), p.stdout
    # bad metadata is refused before the core sees it (it logged INVALID_METADATA)
    assert "INVALID_METADATA" not in p.stderr and "validate_metadata" not in p.stderr, p.stderr


def slow_call(srv, name, ms):
    """Starts a pipeline that holds one execution slot for `ms`; returns (channel, future)
    once the server has started it."""
    from remotemedia.v1 import manifest_pb2, pipeline_service_pb2 as ps
    from remotemedia.v1 import pipeline_service_pb2_grpc as psg
    m = manifest_pb2.PipelineManifest(name=name)
    m.nodes.add(id="src", node_type="PassThrough")
    m.nodes.add(id="d", node_type="Delay", params=json.dumps({"ms": ms}))
    setattr(m.connections.add(), "from", "src")
    m.connections[0].to = "d"
    req = ps.ExecuteRequest(manifest=m)
    req.inputs["src"].json.json = "{}"
    ch = srv.channel()
    fut = psg.PipelineServiceStub(ch).ExecutePipeline.future(req, timeout=120)
    assert srv.wait_for_event("pipeline_start", 60, lambda e: e.get("pipeline") == name)
    return ch, fut


def refused(srv, kind, expected):
    """The calls refused with `kind`, once `expected` of them are logged (or 30 s passed)."""
    pred = lambda e: e.get("error_kind") == kind  # noqa: E731
    srv.wait_for_count("call", expected, 30, pred)
    return len([e for e in srv.events("call") if pred(e)])


def test_library_details_validate_request_and_retries(server):
    """The "eco" suite: error details, ValidatePipeline, the packed request, and retries
    counted on the servers: a full server (max-concurrent 1, its slot held) sees 1 attempt
    without retries and 3 with; a per-request limit (pushback -1) 1; a draining one 3."""
    with ExitStack() as stack:
        full = stack.enter_context(RunningServer(["--max-concurrent", "1", "--log-level", "debug"]))
        limited = stack.enter_context(RunningServer(["--max-nodes", "2", "--log-level", "info"]))
        draining = stack.enter_context(RunningServer(["--grace-ms", "60000", "--log-level", "debug"]))
        ch1, busy = slow_call(full, "busy", 60000)
        ch2, inflight = slow_call(draining, "inflight", 60000)
        draining.signal()
        assert draining.wait_for_event("draining", 30)
        cmd = wrapper() + [os.environ["RM_CLIENT_TEST_BIN"], "--server", server.address(),
                           "--full-server", full.address(), "--limited-server", limited.address(),
                           "--draining-server", draining.address()]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert p.returncode == 0, p.stdout + p.stderr
        assert re.search(r"suites\s+2\s+2", p.stdout), p.stdout
        assert re.search(r"tests\s+27\s+27\s+27\s+0", p.stdout), p.stdout
        assert refused(full, "limit_exceeded", 1 + 3) == 1 + 3
        assert refused(limited, "limit_exceeded", 1) == 1
        assert refused(draining, "unavailable", 3) == 3
        for ch, fut in ((ch1, busy), (ch2, inflight)):  # the draining server then stops
            fut.cancel()
            ch.close()


# ---------------------------------------------------------------- CLI: run

def run_doc(args):
    rc, out, err = cli(*args)
    assert rc == 0, err
    return json.loads(out), err


@pytest.mark.parametrize("mode", ["remote", "in-process"])
def test_cli_run_gain_i16(server, gain_files, mode):
    d = gain_files["dir"]
    out_dir = d / ("out-" + mode)
    args = ["run", gain_files["manifest"], "--input", "src=" + gain_files["wav"],
            "--output-dir", str(out_dir)]
    if mode == "remote":
        args += ["--server", server.address()]
    doc, _ = run_doc(args)
    assert doc["pipeline"] == "gain-demo"
    assert list(doc["outputs"]) == ["g"]
    item, = doc["outputs"]["g"]
    pcm = gain_files["pcm"]
    expected = np.rint(pcm.astype(np.float64) / 32768 * GAIN * 32768).astype(np.int16)
    assert item == {"kind": "audio", "sample_rate": 16000, "channels": 1, "format": "i16",
                    "frames": len(pcm), "peak": float(np.max(np.abs(expected)) / 32768),
                    "file": str(out_dir / "g.wav")}
    rate, channels, got = read_wav_i16(out_dir / "g.wav")
    assert (rate, channels) == (16000, 1)
    np.testing.assert_array_equal(got, expected)
    assert np.max(np.abs(got.astype(np.int32) * 2 - pcm.astype(np.int32))) <= 2  # halved
    assert "metrics" not in doc



def read_wav_f32(path):
    """(channels, rate, bits, samples) of a float WAV written by libsndfile; chunks are
    walked, not assumed (libsndfile adds fact and PEAK chunks)."""
    raw = read(path)
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    return fmt[1], fmt[2], fmt[5], np.frombuffer(data, "<f4")


@pytest.mark.parametrize("mode", ["remote", "in-process"])
def test_cli_run_gain_f32_halves_amplitude(server, gain_files, mode):
    out_dir = gain_files["dir"] / mode
    args = ["run", gain_files["manifest"], "--input", "src=" + gain_files["wav_f32"],
            "--output-dir", str(out_dir)]
    if mode == "remote":
        args += ["--server", server.address()]
    doc, _ = run_doc(args)
    item, = doc["outputs"]["g"]
    assert (item["format"], item["sample_rate"], item["channels"], item["frames"]) == ("f32", 48000, 1, 480)
    channels, rate, bits, got = read_wav_f32(out_dir / "g.wav")
    assert (channels, rate, bits) == (1, 48000, 32)
    x = gain_files["f32"]
    np.testing.assert_array_equal(got, x * np.float32(GAIN))  # the node's float32 multiply
    assert np.max(np.abs(got.astype(np.float64) - x.astype(np.float64) / 2)) < 1e-6


def test_cli_remote_and_in_process_agree(server, gain_files):
    """The same manifest and input give the same document (metrics aside) both ways."""
    base = ["run", gain_files["manifest"], "--input", "src=" + gain_files["wav"]]
    remote, _ = run_doc(base + ["--server", server.address()])
    local, _ = run_doc(base)
    assert remote == local


@pytest.mark.parametrize("mode", ["remote", "in-process"])
def test_cli_metrics(server, gain_files, mode):
    args = ["run", gain_files["manifest"], "--input", "src=" + gain_files["wav"], "--metrics-json",
            "--metrics"]
    if mode == "remote":
        args += ["--server", server.address()]
    doc, err = run_doc(args)
    m = doc["metrics"]
    assert list(m) == SEED_KEYS
    assert m["pipeline_id"] == "gain-demo"
    assert m["total_executions"] == 1
    assert m["peak_memory_bytes"] >= 2 * 1600 * 2  # input and output held at once
    assert m["total_duration_us"] > 0 and m["metrics_overhead_us"] > 0
    assert [n["node_id"] for n in m["node_metrics"]] == ["src", "g"]
    for n in m["node_metrics"]:
        assert list(n) == SEED_NODE_KEYS
        assert (n["execution_count"], n["success_count"], n["error_count"], n["success_rate"]) == (1, 1, 0, 1.0)
        assert 0 < n["min_duration_us"] <= n["avg_duration_us"] <= n["max_duration_us"]
    # the table: a summary line, a header, one row per node, on stderr
    lines = err.splitlines()
    assert lines[0].startswith("pipeline gain-demo: 1 execution(s) in ")
    assert lines[1].split() == ["node", "runs", "ok", "errors", "success", "total_us", "avg_us",
                                "min_us", "max_us"]
    assert [ln.split()[:5] for ln in lines[2:4]] == [["src", "1", "1", "0", "100.0%"],
                                                     ["g", "1", "1", "0", "100.0%"]]
    assert len(lines) == 4
    # --metrics alone prints the table but leaves the document without metrics
    doc, err = run_doc(args[:4] + ["--metrics"] + args[6:])
    assert "metrics" not in doc and "pipeline gain-demo" in err


@pytest.mark.parametrize("mode", ["remote", "in-process"])
def test_cli_json_text_binary_outputs(server, tmp_path, mode):
    m = manifest(tmp_path / "kinds.json", [("calc", "Calculator", None), ("t", "PassThrough", None),
                                           ("b", "PassThrough", None)])
    (tmp_path / "req.json").write_text('{"operation": "multiply", "operands": [2, 3.5]}')
    (tmp_path / "note.txt").write_text("h\u00e9llo\n", encoding="utf-8")
    (tmp_path / "blob.raw").write_bytes(bytes([0, 1, 2, 255]))
    args = ["run", m, "--input", "calc=" + str(tmp_path / "req.json"), "--input",
            "t=" + str(tmp_path / "note.txt"), "--input=b=" + str(tmp_path / "blob.raw"),
            "--output-dir", str(tmp_path / "out")]
    if mode == "remote":
        args += ["--server", server.address()]
    doc, _ = run_doc(args)
    out = tmp_path / "out"
    assert doc["outputs"] == {
        "b": [{"kind": "binary", "mime_type": "application/octet-stream", "bytes": 4,
               "file": str(out / "b.bin")}],
        "calc": [{"kind": "json", "value": {"operation": "multiply", "operands": [2, 3.5], "result": 7.0},
                  "file": str(out / "calc.json")}],
        "t": [{"kind": "text", "text": "h\u00e9llo\n", "file": str(out / "t.txt")}],
    }
    assert (out / "b.bin").read_bytes() == bytes([0, 1, 2, 255])
    assert json.loads((out / "calc.json").read_text())["result"] == 7.0
    assert (out / "t.txt").read_text(encoding="utf-8") == "h\u00e9llo\n"


def test_cli_several_items(server, gain_files):
    m = manifest(gain_files["dir"] / "chunk.json", [("src", "PassThrough", None),
                                                    ("c", "Chunk", {"frames": 700})], [("src", "c")])
    out = gain_files["dir"] / "chunks"
    doc, _ = run_doc(["run", m, "--input", "src=" + gain_files["wav"], "--server", server.address(),
                      "--output-dir", str(out)])
    items = doc["outputs"]["c"]
    assert [i["frames"] for i in items] == [700, 700, 200]
    assert [i["file"] for i in items] == [str(out / f"c.{k}.wav") for k in range(3)]
    joined = np.concatenate([read_wav_i16(out / f"c.{k}.wav")[2] for k in range(3)])
    np.testing.assert_array_equal(joined, gain_files["pcm"])


# ---------------------------------------------------------------- CLI: failures

BAD_PARAM_LINE = ("remotemedia: error: INVALID_ARGUMENT kind=invalid_params node=g field=db: "
                  "node 'g' param 'db': 1000 is out of range [-120, 60]")
UNKNOWN_TYPE_LINE = ("remotemedia: error: NOT_FOUND kind=unknown_node_type node=x field=node_type: "
                     "node 'x': unknown node type 'NoSuchNode'")


@pytest.mark.parametrize("mode", ["remote", "in-process"])
def test_cli_pipeline_errors_exit_1(server, gain_files, mode):
    d = gain_files["dir"]
    bad = manifest(d / "bad.json", [("src", "PassThrough", None), ("g", "Gain", {"db": 1000})], [("src", "g")])
    unknown = manifest(d / "unknown.json", [("x", "NoSuchNode", None)])
    remote = ["--server", server.address()] if mode == "remote" else []
    rc, out, err = cli("run", bad, "--input", "src=" + gain_files["wav"], *remote)
    assert (rc, out) == (1, "")
    assert error_line(err) == BAD_PARAM_LINE
    rc, out, err = cli("run", unknown, *remote)
    assert (rc, out) == (1, "")
    assert error_line(err) == UNKNOWN_TYPE_LINE


def test_cli_deadline_exit_1(server, gain_files):
    slow = manifest(gain_files["dir"] / "slow.json", [("src", "PassThrough", None),
                                                      ("d", "Delay", {"ms": 2000})], [("src", "d")])
    rc, out, err = cli("run", slow, "--input", "src=" + gain_files["wav"], "--server", server.address(),
                       "--timeout-ms", "200")
    assert (rc, out) == (1, "")
    # the server's status (kind and node in its trailers) and the client's own deadline race
    assert re.fullmatch(r"remotemedia: error: DEADLINE_EXCEEDED kind=deadline_exceeded( node=d)?: .+",
                        error_line(err)), err


def test_cli_client_deadline_line_has_kind(gain_files):
    """Regression (L4): a deadline that passes on the client side (no trailers) printed
    "DEADLINE_EXCEEDED: ..." without the kind the in-process line carries. A listener that
    never speaks HTTP/2 keeps the call waiting until the client's deadline."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        rc, out, err = cli("run", gain_files["manifest"], "--input", "src=" + gain_files["wav"],
                           "--server", "127.0.0.1:%d" % silent.getsockname()[1],
                           "--timeout-ms", "300")
    assert (rc, out) == (1, "")
    assert err == "remotemedia: error: DEADLINE_EXCEEDED kind=deadline_exceeded: Deadline Exceeded\n"


def test_cli_unreachable_server_exit_1(gain_files):
    rc, out, err = cli("run", gain_files["manifest"], "--input", "src=" + gain_files["wav"],
                       "--server", "127.0.0.1:1")
    assert (rc, out) == (1, "")
    assert error_line(err).startswith("remotemedia: error: UNAVAILABLE: ")
    rc, out, err = cli("health", "--server", "127.0.0.1:1")
    assert (rc, out) == (1, "")
    assert error_line(err).startswith("remotemedia: error: UNAVAILABLE: ")


def test_cli_usage_errors_exit_2(server, gain_files, tmp_path):
    (tmp_path / "broken.json").write_text('{"nodes": [')
    (tmp_path / "shape.json").write_text('{"nodes": [], "edges": []}')
    (tmp_path / "in.xyz").write_text("?")
    (tmp_path / "bad_input.json").write_text("{oops")
    m, wav, srv = gain_files["manifest"], "src=" + gain_files["wav"], server.address()
    cases = [
        ([], None),
        (["frobnicate"], "remotemedia: unknown command 'frobnicate'"),
        (["run"], "remotemedia: run: the manifest file is missing (remotemedia run MANIFEST.json)"),
        (["run", m, "--bogus"], "remotemedia: run: unknown option '--bogus'"),
        (["run", m, "--input"], "remotemedia: run: option '--input' needs a value"),
        (["run", m, "--input", "src"], "remotemedia: run: --input wants NODE=FILE, not 'src'"),
        (["run", m, "--input", wav, "--input", wav], "remotemedia: run: two --input for node 'src'"),
        (["run", m, "--input", "src=" + str(tmp_path / "in.xyz")], None),
        (["run", m, "--input", "src=" + str(tmp_path / "missing.wav")], None),
        (["run", m, "--input", "src=" + str(tmp_path / "bad_input.json")], None),
        (["run", str(tmp_path / "nope.json")], None),
        (["run", str(tmp_path / "broken.json"), "--server", srv], None),
        (["run", str(tmp_path / "broken.json")], None),
        (["run", str(tmp_path / "shape.json"), "--server", srv], None),
        (["run", str(tmp_path / "shape.json")], None),
        (["run", m, "--timeout-ms", "soon"], None),
        (["run", m, "--token", "t"], "remotemedia: run: token and TLS options need --server"),
        (["run", m, "--server", srv, "--tls-cert", "c.pem"],
         "remotemedia: run: --tls-cert and --tls-key go together"),
        (["run", m, "--server", srv, "--token", "a", "--token-file", "f"],
         "remotemedia: run: give --token or --token-file, not both"),
        (["health"], "remotemedia: health: --server is required"),
        (["nodes", "--metrics"], "remotemedia: nodes: option '--metrics' does not apply to this command"),
        (["health", "--server", srv, "--tls-ca", str(tmp_path / "missing-ca.pem")], None),
        (["health", "--server", srv, "--token-file", str(tmp_path / "missing-token")], None),
    ]
    for args, first_line in cases:
        rc, out, err = cli(*args)
        assert rc == 2, (args, err)
        assert out == "", args
        if first_line:
            assert err.splitlines()[0] == first_line, (args, err)
    # the manifest checks name the file and the problem, the same in both modes
    for mode in ([], ["--server", srv]):
        rc, _, err = cli("run", str(tmp_path / "shape.json"), *mode)
        assert error_line(err) == "remotemedia: %s: manifest: unknown key 'edges'" % (tmp_path / "shape.json")


def test_cli_metadata_values_are_usage_errors(server, auth_server, gain_files, tmp_path):
    """Regression (L3): --request-id or --token with a newline or non-ASCII exited 1 with
    "grpc_call_start_batch failed: ..."; it is a usage error naming the option."""
    run = ["run", gain_files["manifest"], "--input", "src=" + gain_files["wav"], "--server",
           server.address()]
    token_file = tmp_path / "token-utf8"
    token_file.write_text("g\u00f6\u00f6d\n", encoding="utf-8")
    why = "is not printable ASCII (gRPC metadata values are 0x20-0x7E)"
    cases = [
        (run + ["--request-id", "a\nb"], "run: --request-id: byte 0x0a at offset 1 " + why),
        (run + ["--request-id", "r\u00e9q"], "run: --request-id: byte 0xc3 at offset 1 " + why),
        (["validate", gain_files["manifest"], "--server", server.address(), "--request-id", "\tx"],
         "validate: --request-id: byte 0x09 at offset 0 " + why),
        (["nodes", "--server", auth_server.address(), "--token", "g\u00f6\u00f6d"],
         "nodes: --token: byte 0xc3 at offset 1 " + why),
        (["nodes", "--server", auth_server.address(), "--token-file", str(token_file)],
         "--token-file %s: byte 0xc3 at offset 1 %s" % (token_file, why)),
    ]
    for args, message in cases:
        rc, out, err = cli(*args)
        assert (rc, out) == (2, ""), (args, err)
        assert err == "remotemedia: %s\n" % message, (args, err)
    rc, out, err = cli(*run, "--request-id", "req 1/2 ~ok")
    assert rc == 0, err


def test_cli_tls_file_without_pem_exit_2(server, certs, tmp_path):
    """Regression (C3/L2): a readable --tls-ca/--tls-cert/--tls-key file with no PEM block
    was accepted and the call failed UNAVAILABLE ("empty address list"): a certificate file
    that cannot be used is exit 2, naming the file."""
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    base = ["health", "--server", server.address()]
    cert_line = "remotemedia: %s %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)\n"
    cases = [
        (["--tls-ca", str(not_pem)], cert_line % ("tls_ca_file", not_pem)),
        (["--tls-ca", certs("ca.pem"), "--tls-cert", str(not_pem), "--tls-key", certs("client.key")],
         cert_line % ("tls_cert_file", not_pem)),
        (["--tls-ca", certs("ca.pem"), "--tls-cert", certs("client.pem"), "--tls-key",
          certs("client.pem")],
         "remotemedia: tls_key_file %s holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)\n"
         % certs("client.pem")),
    ]
    for extra, line in cases:
        rc, out, err = cli(*base, *extra)
        assert (rc, out, err) == (2, "", line), extra


def damaged(pem):
    """pem with one character of its base64 body replaced by one outside the alphabet."""
    lines = pem.split(b"\n")
    lines[3] = b"#" + lines[3][1:]
    return b"\n".join(lines)


def test_cli_tls_damaged_pem_exit_2(tls_servers, certs, tmp_path):
    """Regression: a --tls-ca bundle with a damaged certificate block in the middle was
    accepted, the core read it up to that block and dropped the server's CA after it, and
    the call failed UNAVAILABLE (exit 1) with no hint; so did a cut-short last block, a NUL
    byte, a chain with a damaged block, and a --tls-key of another certificate. Each is a
    usage error (exit 2) naming the file, and the certificate's number and line."""
    tls, mtls = tls_servers
    other, ca, client = read(certs("otherca.pem")), read(certs("ca.pem")), read(certs("client.pem"))
    line = other.count(b"\n") + 1
    files = {"bundle.pem": other + damaged(client) + ca, "cut.pem": other + ca[:200],
             "nul.pem": other + b"\0" + ca, "chain.pem": client + damaged(client),
             "good.pem": other + ca}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    f = lambda name: str(tmp_path / name)  # noqa: E731
    parse = ("remotemedia: %s %s: certificate 2 (line %d) does not parse (%s); the certificates "
             "after it would be ignored\n")
    mtls_args = ["--server", mtls.address(), "--tls-ca", certs("ca.pem")]
    cases = [
        (["--server", tls.address(), "--tls-ca", f("bundle.pem")],
         parse % ("tls_ca_file", f("bundle.pem"), line, "bad base64 decode")),
        (["--server", tls.address(), "--tls-ca", f("cut.pem")],
         parse % ("tls_ca_file", f("cut.pem"), line, "bad end line")),
        (["--server", tls.address(), "--tls-ca", f("nul.pem")],
         "remotemedia: tls_ca_file %s holds a NUL byte at offset %d: a PEM file is text\n"
         % (f("nul.pem"), len(other))),
        (mtls_args + ["--tls-cert", f("chain.pem"), "--tls-key", certs("client.key")],
         parse % ("tls_cert_file", f("chain.pem"), client.count(b"\n") + 1, "bad base64 decode")),
        (mtls_args + ["--tls-cert", certs("client.pem"), "--tls-key", certs("intruder.key")],
         "remotemedia: tls_key_file %s does not match the certificate in tls_cert_file %s\n"
         % (certs("intruder.key"), certs("client.pem"))),
    ]
    for args, message in cases:
        rc, out, err = cli("health", *args)
        assert (rc, out, err) == (2, "", message), args
    # the same bundle without the damaged block: the server's CA after the other one is used
    rc, out, err = cli("health", "--server", tls.address(), "--tls-ca", f("good.pem"))
    assert (rc, out) == (0, "SERVING\n"), err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_cli_stdout_unwritable_exit_2(server, gain_files):
    """Regression (L1): with stdout on a full device, run/validate/nodes exited 0 though the
    document was lost (request -o /dev/full exited 2). Now the same: exit 2, one line."""
    m, wav, srv = gain_files["manifest"], "src=" + gain_files["wav"], server.address()
    for args in (["run", m, "--input", wav, "--server", srv],
                 ["run", m, "--input", wav, "--metrics"],
                 ["validate", m, "--input", wav, "--server", srv],
                 ["validate", m, "--input", wav],
                 ["nodes"], ["nodes", "--server", srv], ["version"], ["--help"],
                 ["request", m, "--input", wav]):
        with open("/dev/full", "w") as full:
            p = subprocess.run(wrapper() + [os.environ["RM_CLI_BIN"], *args], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT_S)
        err = VALGRIND_LINE.sub("", p.stderr)
        assert (p.returncode, err) == (2, "remotemedia: cannot write stdout: No space left on device\n"), args


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_cli_stdout_unwritable_large_document_names_the_reason(server):
    """Regression: a document larger than stdio's buffer (nodes --json, ~30 KB) failed in
    one write, glibc dropped the buffer, and the final flush succeeded with errno 0, so the
    line said "cannot write stdout: write error". The first failed write's errno is kept."""
    bufsiz = max(8192, os.stat("/dev/full").st_blksize)
    for args in (["nodes", "--json"], ["nodes", "--json", "--server", server.address()]):
        rc, out, err = cli(*args)
        assert rc == 0 and len(out) > 2 * bufsiz, (args, len(out), err)
        with open("/dev/full", "w") as full:
            p = subprocess.run(wrapper() + [os.environ["RM_CLI_BIN"], *args], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT_S)
        err = VALGRIND_LINE.sub("", p.stderr)
        assert (p.returncode, err) == (2, "remotemedia: cannot write stdout: No space left on device\n"), args


def test_cli_help_unknown_command_exit_2():
    """Regression (L4): `help nosuch` printed the general help and exited 0."""
    for args in (["help", "nosuch"], ["nosuch", "--help"]):
        rc, out, err = cli(*args)
        assert (rc, out) == (2, ""), args
        assert error_line(err) == "remotemedia: unknown command 'nosuch'", args
    rc, out, _ = cli("help", "run")
    assert rc == 0 and out.startswith("usage: remotemedia run MANIFEST.json")
    rc, out, _ = cli("help")
    assert rc == 0 and out.startswith("usage: remotemedia <command> [options]")


def test_cli_help_documents_exit_codes():
    rc, out, err = cli("--help")
    assert rc == 0 and err == ""
    assert "exit status:" in out
    for code in ("  0  success", "  1  the call or the pipeline failed", "  2  usage error"):
        assert code in out
    # each command's help is its own (issue 14: `run --help` printed the whole program's)
    rc2, out2, _ = cli("run", "--help")
    assert rc2 == 0 and out2.startswith("usage: remotemedia run MANIFEST.json")
    assert "exit status:" in out2 and "--output-dir DIR" in out2 and "--service" not in out2


# ---------------------------------------------------------------- CLI: issue 14

@pytest.mark.parametrize("mode", ["remote", "in-process"])
def test_cli_validate(server, gain_files, mode):
    extra = ["--server", server.address()] if mode == "remote" else []
    doc, _ = run_doc(["validate", gain_files["manifest"], "--input", "src=" + gain_files["wav"]] + extra)
    assert doc["pipeline"] == "gain-demo"
    assert doc["schedule"] == ["src", "g"]
    assert doc["predicted_memory_bytes"] >= 1600 * 2  # the i16 input at least
    # the errors of run, both ways: an input for a node fed by an edge
    rc, out, err = cli("validate", gain_files["manifest"], "--input", "g=" + gain_files["wav"], *extra)
    assert rc == 1 and out == ""
    assert error_line(err).startswith("remotemedia: error: INVALID_ARGUMENT kind=invalid_input node=g")


def test_cli_validate_remote_equals_in_process(server, gain_files):
    base = ["validate", gain_files["manifest"], "--input", "src=" + gain_files["wav"]]
    remote, _ = run_doc(base + ["--server", server.address()])
    local, _ = run_doc(base)
    assert remote == local


def test_cli_request_file_is_the_execute_request(server, gain_files, tmp_path):
    from remotemedia.v1 import pipeline_service_pb2 as ps
    out = tmp_path / "req.bin"
    rc, stdout, err = cli("request", gain_files["manifest"], "--input", "src=" + gain_files["wav"],
                          "--metrics", "-o", str(out))
    assert (rc, stdout, err) == (0, "", "")
    raw = read(out)
    req = ps.ExecuteRequest.FromString(raw)
    assert req.manifest.name == "gain-demo" and req.enable_metrics
    assert len(req.inputs["src"].audio.samples) == 1600 * 2
    # the bytes as they are, sent as a unary call (what ghz -B and h2load do)
    with grpc.insecure_channel(server.address()) as ch:
        call = ch.unary_unary("/remotemedia.v1.PipelineService/ExecutePipeline")
        resp = ps.ExecuteResponse.FromString(call(raw, timeout=30))
    assert resp.pipeline_name == "gain-demo" and resp.metrics.total_executions == 1
    # to stdout without -o
    p = subprocess.run(wrapper() + [os.environ["RM_CLI_BIN"], "request", gain_files["manifest"],
                                    "--input", "src=" + gain_files["wav"], "--metrics"],
                       capture_output=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0 and p.stdout == raw


def test_cli_input_type_unknown_or_named(gain_files, tmp_path):
    rc, out, err = cli("run", gain_files["manifest"], "--input", "src=/etc/hostname")
    assert rc == 2
    assert error_line(err) == (
        "remotemedia: --input src=/etc/hostname: cannot tell the type of /etc/hostname from its "
        "name: use .wav/.flac/.ogg (audio), .json, .txt or .raw/.bin, or name the type: "
        "src=text:/etc/hostname (or audio:, json:, binary:)")
    (tmp_path / "note").write_text("hello")
    m = manifest(tmp_path / "pt.json", [("src", "PassThrough", None)], [], name="pt")
    doc, _ = run_doc(["run", m, "--input", "src=text:" + str(tmp_path / "note")])
    assert doc["outputs"]["src"] == [{"kind": "text", "text": "hello"}]
    wav_copy = tmp_path / "audio_no_ext"
    wav_copy.write_bytes(read(gain_files["wav"]))
    doc, _ = run_doc(["run", gain_files["manifest"], "--input", "src=audio:" + str(wav_copy)])
    assert doc["outputs"]["g"][0]["frames"] == 1600


def shortest(value):
    """%.15g, %.16g or %.17g: the first that reads back as the same double; ".0" when integral."""
    text = next(t for t in ("%.15g" % value, "%.16g" % value, "%.17g" % value) if float(t) == value)
    return text if any(c in text for c in ".en") else text + ".0"


def test_cli_reals_are_shortest(gain_files):
    rc, out, err = cli("run", gain_files["manifest"], "--input", "src=" + gain_files["wav"],
                       "--metrics-json")
    assert rc == 0, err
    reals = re.findall(r'": (-?\d+\.\d+(?:e[-+]?\d+)?)[,\n]', out)
    assert len(reals) >= 10
    for text in reals:
        assert text == shortest(float(text))
        assert len(text) < 19, text  # never jansson's 0.96199999999999997
    assert '"success_rate": 1.0' in out  # integral reals stay reals
    assert 0.962 == float(shortest(0.962)) and shortest(0.962) == "0.962"


@pytest.mark.parametrize("command", ["run", "validate", "request", "nodes", "health", "version"])
def test_cli_help_per_command(command):
    rc, out, err = cli(command, "--help")
    assert rc == 0 and err == ""
    assert out.startswith("usage: remotemedia " + command)
    assert "exit status:" in out
    rc2, out2, _ = cli("help", command)
    assert (rc2, out2) == (0, out)
    _, whole, _ = cli("--help")
    assert out != whole


# ---------------------------------------------------------------- CLI: nodes, health, version

def test_cli_nodes(server):
    rc, out, err = cli("nodes", "--server", server.address())
    assert rc == 0, err
    block = out.split("\n\nGain\n")[1].split("\n\n")[0]
    assert block.splitlines()[:4] == [
        "  Multiplies every sample by 10^(db/20).",
        "  inputs:  in (audio)",
        "  outputs: out (audio)",
        "  params:"]
    assert block.splitlines()[4].split() == ["db", "number", "[-120,", "60]", "default", "0"]
    # the server's list and the CLI's own registry are the same tables
    rc, remote_json, err = cli("nodes", "--json", "--server", server.address())
    assert rc == 0, err
    rc, local_json, err = cli("nodes", "--json")
    assert rc == 0, err
    remote = json.loads(remote_json)
    assert remote == json.loads(local_json)
    gain = next(t for t in remote if t["name"] == "Gain")
    assert gain["params"] == [{"name": "db", "type": "number", "required": False, "description":
                               gain["params"][0]["description"], "default": 0, "minimum": -120.0,
                               "maximum": 60.0}]
    chunk = next(t for t in remote if t["name"] == "Chunk")
    partial = next(p for p in chunk["params"] if p["name"] == "partial")
    assert (partial["type"], partial["default"], partial["enum"]) == ("enum", "keep", ["keep", "pad", "drop"])


def test_cli_health_and_version(server):
    rc, out, err = cli("health", "--server", server.address())
    assert (rc, out) == (0, "SERVING\n"), err
    rc, out, err = cli("health", "--server", server.address(), "--service", "remotemedia.v1.PipelineService")
    assert (rc, out) == (0, "SERVING\n"), err
    rc, out, err = cli("health", "--server", server.address(), "--service", "no.Such")
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: error: NOT_FOUND kind=unknown_service field=service: "
                               "unknown service 'no.Such'")
    rc, out, err = cli("version")
    assert rc == 0 and re.fullmatch(r"remotemedia \d+\.\d+\.\d+ \(librmclient \d+\.\d+\.\d+, gRPC core [\d.]+\)\n", out)
    rc, out, err = cli("version", "--server", server.address())
    assert rc == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"server %s: remotemedia-server \S+, protocol 1\.0, gRPC core [\d.]+"
                        % re.escape(server.address()), lines[1])
    assert "  service remotemedia.v1.PipelineService" in lines


def test_cli_auth(auth_server, gain_files, tmp_path):
    base = ["run", gain_files["manifest"], "--input", "src=" + gain_files["wav"], "--server",
            auth_server.address()]
    rc, out, err = cli(*base)
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: error: UNAUTHENTICATED kind=unauthenticated: "
                               "missing bearer token (authorization: Bearer <token>)")
    rc, out, err = cli(*base, "--token", "wrong")
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: error: UNAUTHENTICATED kind=unauthenticated: "
                               "the bearer token is not valid")
    rc, out, err = cli(*base, "--token", TOKEN)
    assert rc == 0, err
    assert json.loads(out)["outputs"]["g"][0]["frames"] == 1600
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    rc, out, err = cli("nodes", "--server", auth_server.address(), "--token-file", str(token_file))
    assert rc == 0 and "\nGain\n" in out, err


def test_cli_tls_and_mtls(tls_servers, certs):
    tls, mtls = tls_servers
    rc, out, err = cli("health", "--server", tls.address(), "--tls-ca", certs("ca.pem"))
    assert (rc, out) == (0, "SERVING\n"), err
    rc, out, err = cli("health", "--server", "localhost:%d" % tls.port, "--tls-ca", certs("ca.pem"))
    assert (rc, out) == (0, "SERVING\n"), err
    rc, out, err = cli("health", "--server", tls.address(), "--tls-ca", certs("otherca.pem"))
    assert rc == 1 and error_line(err).startswith("remotemedia: error: UNAVAILABLE")
    assert err.splitlines() == [error_line(err)]  # that line only: not the core's own log
    mtls_args = ["--server", mtls.address(), "--tls-ca", certs("ca.pem")]
    rc, out, err = cli("health", *mtls_args, "--tls-cert", certs("client.pem"), "--tls-key",
                       certs("client.key"))
    assert (rc, out) == (0, "SERVING\n"), err
    rc, out, err = cli("health", *mtls_args)
    assert rc == 1 and error_line(err).startswith("remotemedia: error: UNAVAILABLE")
    assert err.splitlines() == [error_line(err)]


# ---------------------------------------------------------------- docs/c-client.md, installed

def doc_block(marker, lang):
    with open(os.path.join(REPO, "docs", "c-client.md")) as f:
        doc = f.read()
    head = "<!-- test: %s -->\n```%s\n" % (marker, lang)
    assert head in doc, head
    return doc.split(head, 1)[1].split("\n```\n", 1)[0] + "\n"


def test_docs_cli_examples(server, tmp_path):
    """The CLI session of docs/c-client.md, as written: only the server address, the demo
    directory and the build tree's path to the CLI are substituted."""
    script = doc_block("cli", "sh")
    cli_cmd = " ".join(shlex.quote(a) for a in wrapper() + [os.environ["RM_CLI_BIN"]])
    script = (script.replace("localhost:50051", "localhost:%d" % server.port)
                    .replace("/tmp/rm-demo", str(tmp_path / "rm-demo"))
                    .replace("build/client/c/remotemedia", cli_cmd))
    p = subprocess.run(["sh", "-eu", "-c", script], cwd=REPO, capture_output=True, text=True,
                       timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count('"pipeline": "gain-demo"') == 2
    assert p.stdout.count('"pipeline_id": "gain-demo"') == 1  # --metrics-json, second run
    assert "\nGain\n" in p.stdout and "\nSERVING\n" in p.stdout and ", protocol 1.0, " in p.stdout
    assert VALGRIND_LINE.sub("", p.stderr).startswith("pipeline gain-demo: 1 execution(s) in ")
    rate, channels, got = read_wav_i16(tmp_path / "rm-demo" / "out" / "g.wav")
    _, _, src = read_wav_i16(os.path.join(REPO, "tests", "data", "audio", "sine_1k_48k_mono.wav"))
    assert (rate, channels, len(got)) == (48000, 1, len(src))
    np.testing.assert_array_equal(got, np.rint(src.astype(np.float64) * GAIN).astype(np.int16))


def sanitize_flags():
    s = os.environ.get("RM_SANITIZE", "")
    return ["-fsanitize=" + s] if s else []


def check_example_output(out):
    lines = out.splitlines()
    assert lines[0] == "480 frames, first sample 0.800000 -> 0.400000"
    assert lines[1].startswith("gain-example: 2 nodes, ")
    seed = json.loads(lines[2])
    assert list(seed) == SEED_KEYS
    assert [list(n) for n in seed["node_metrics"]] == [SEED_NODE_KEYS] * 2
    # reals at JSON_REAL_PRECISION(10), as the doc prints them: 6.449, not 6.4489999999999998
    reals = re.findall(r"(?<![\w.])-?(\d+\.\d+)", lines[2])
    assert reals and all(len(r.replace(".", "").lstrip("0")) <= 10 for r in reals), lines[2]


def test_docs_library_example_against_installed_library(server, tmp_path):
    """`cmake --install`, then the example of docs/c-client.md built the two documented ways:
    cc with pkg-config's flags for rmclient, and CMake's find_package(rmclient)."""
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", os.environ["RM_BUILD_DIR"], "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    libdir = next(p for p in (prefix / "lib", prefix / "lib64") if (p / "pkgconfig" / "rmclient.pc").exists())
    assert (prefix / "include" / "rmclient.h").exists()
    assert (prefix / "include" / "remotemedia" / "v1" / "pipeline_service.pb-c.h").exists()
    src = tmp_path / "gain_example.c"
    src.write_text(doc_block("c-example", "c"))
    env = dict(os.environ, PKG_CONFIG_PATH=str(libdir / "pkgconfig"), LD_LIBRARY_PATH=str(libdir))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "rmclient"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    assert "-lrmclient" in flags
    assert [os.path.realpath(f[2:]) for f in flags if f.startswith("-I")][0] == os.path.realpath(prefix / "include")
    assert [os.path.realpath(f[2:]) for f in flags if f.startswith("-L")][0] == os.path.realpath(libdir)
    exe = tmp_path / "gain_example"
    p = subprocess.run(["cc", "-Wall", "-Wextra", "-Werror", *sanitize_flags(), str(src), *flags,
                        "-o", str(exe)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(wrapper() + [str(exe), server.address()], env=env, capture_output=True,
                       text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    check_example_output(p.stdout)

    proj = tmp_path / "cmake_project"
    proj.mkdir()
    (proj / "gain_example.c").write_text(src.read_text())
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(gain_example C)\n" + doc_block("cmake", "cmake"))
    build = tmp_path / "cmake_build"
    for cmd in (["cmake", "-S", str(proj), "-B", str(build), "-DCMAKE_PREFIX_PATH=%s" % prefix,
                 "-DCMAKE_C_FLAGS=%s" % " ".join(sanitize_flags())],
                ["cmake", "--build", str(build)]):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(wrapper() + [str(build / "gain_example"), server.address()], env=env,
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    check_example_output(p.stdout)
