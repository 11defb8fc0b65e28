"""librmclient's streaming API and `remotemedia stream` against a real server on an
ephemeral port: the C test program (test_rmclient_stream), then the CLI (document,
per-chunk latency lines, summary, --realtime, errors and exit statuses, --help).

Binaries come from $RM_CLIENT_STREAM_TEST_BIN and $RM_CLI_BIN; $RM_CLIENT_WRAPPER (e.g.
valgrind) is put in front of both."""
import json
import os
import re
import subprocess
import wave

import numpy as np
import pytest

from rmtest.cli import run_cli, wrapper
from rmtest.server import RunningServer

RUN_TIMEOUT_S = 600  # a safety net for hung processes, not an assertion
MANIFEST = {"name": "rs-stream",
            "nodes": [{"id": "rs", "node_type": "AudioResample", "params": {"rate": 16000}}],
            "connections": []}


def cli(*args):
    return run_cli(*args, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def server():
    with RunningServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    t = np.arange(48000) / 48000.0  # 1 s: 50 chunks of 20 ms
    x = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    wav = d / "tone.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(x.tobytes())
    manifest = d / "rs.json"
    manifest.write_text(json.dumps(MANIFEST))
    bad = d / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "nodes": [
        {"id": "rs", "node_type": "AudioResample", "params": {"rate": -5}}]}))
    return {"wav": str(wav), "manifest": str(manifest), "bad": str(bad), "dir": d}


def test_library(server):
    p = subprocess.run(wrapper() + [os.environ["RM_CLIENT_STREAM_TEST_BIN"], "--server",
                                    server.address()],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    # every test of the program ran and passed, and no assertion failed
    assert re.search(r"^\s+tests\s+9\s+9\s+9\s+0\s+0$", p.stdout, re.M), p.stdout[-2000:]
    asserts = re.search(r"^\s+asserts\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", p.stdout, re.M)
    assert asserts and asserts.group(4) == "0" and asserts.group(1) == asserts.group(3), p.stdout[-2000:]


def chunk_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("chunk ")]


@pytest.mark.parametrize("realtime", [False, True])
def test_cli_stream(server, files, realtime):
    args = ["stream", files["wav"], "--manifest", files["manifest"], "--server",
            server.address(), "--metrics-json"] + (["--realtime"] if realtime else [])
    status, out, err = cli(*args)
    assert status == 0, err
    lines = chunk_lines(err)
    assert [int(ln.split()[1]) for ln in lines] == list(range(1, 51))
    for ln in lines:
        assert re.fullmatch(r"chunk \d+ rtt_us=\d+\.\d server_us=\d+\.\d items=\d+", ln), ln
    summary = [ln for ln in err.splitlines() if ln.startswith("summary: ")]
    assert len(summary) == 1
    assert re.fullmatch(r"summary: chunks=50 rtt_p50_us=\S+ rtt_p99_us=\S+ server_p50_us=\S+ "
                        r"server_p99_us=\S+ behind=\d+", summary[0]), summary[0]
    doc = json.loads(out)
    assert doc["pipeline"] == "rs-stream"
    items = doc["outputs"]["rs"]
    assert len(items) == 1  # every chunk's audio and the flushed tail, joined
    assert items[0]["kind"] == "audio"
    assert items[0]["sample_rate"] == 16000
    assert items[0]["format"] == "i16"
    assert items[0]["frames"] == 16000  # exactly what one unary run gives
    assert doc["metrics"]["total_executions"] == 51  # 50 chunks and the closing flush


def test_cli_stream_matches_run(server, files):
    status, out, err = cli("run", files["manifest"], "--input", "rs=" + files["wav"],
                           "--server", server.address())
    assert status == 0, err
    unary = json.loads(out)["outputs"]["rs"][0]
    status, out, err = cli("stream", files["wav"], "--manifest", files["manifest"],
                           "--server", server.address(), "--chunk-ms", "10")
    assert status == 0, err
    assert len(chunk_lines(err)) == 100
    streamed = json.loads(out)["outputs"]["rs"][0]
    assert streamed == unary


def test_cli_stream_errors(server, files):
    status, out, err = cli("stream", files["wav"], "--manifest", files["bad"], "--server",
                           server.address())
    assert status == 1
    line = [ln for ln in err.splitlines() if ln.startswith("remotemedia:")]
    assert len(line) == 1 and "INVALID_ARGUMENT" in line[0] and "node=rs" in line[0], err
    assert out == ""
    status, _, err = cli("stream", files["wav"], "--server", server.address())
    assert status == 2 and "--manifest is required" in err
    status, _, err = cli("stream", "--manifest", files["manifest"], "--server", server.address())
    assert status == 2 and "the audio file is missing" in err
    status, _, err = cli("stream", files["wav"], "--manifest", files["manifest"])
    assert status == 2 and "--server is required" in err
    status, _, err = cli("stream", files["wav"], "--manifest", files["manifest"], "--server",
                         server.address(), "--chunk-ms", "0")
    assert status == 2 and "--chunk-ms wants 1..60000" in err
    status, _, err = cli("stream", files["manifest"], "--manifest", files["manifest"],
                         "--server", server.address())
    assert status == 2 and "is not an audio file" in err


def test_cli_stream_malformed_manifest_names_file(server, files):
    """Regression (L4): run named a malformed manifest's file, stream did not."""
    broken = files["dir"] / "broken.json"
    broken.write_text('{"nodes": [')
    shape = files["dir"] / "shape.json"
    shape.write_text('{"nodes": [], "edges": []}')
    status, out, err = cli("stream", files["wav"], "--manifest", str(shape), "--server",
                           server.address())
    assert (status, out) == (2, "")
    assert err == "remotemedia: %s: manifest: unknown key 'edges'\n" % shape
    status, out, err = cli("stream", files["wav"], "--manifest", str(broken), "--server",
                           server.address())
    assert (status, out) == (2, "")
    assert err.startswith("remotemedia: %s: manifest is not valid JSON: " % broken), err
    assert len(err.splitlines()) == 1, err
    # the line run gives for the same file
    status, _, run_err = cli("run", str(shape), "--server", server.address())
    assert (status, run_err) == (2, "remotemedia: %s: manifest: unknown key 'edges'\n" % shape)


def test_cli_stream_help():
    status, out, _ = cli("stream", "--help")
    assert status == 0
    assert out.startswith("usage: remotemedia stream FILE.wav --manifest M --server HOST:PORT")
    for opt in ("--chunk-ms N", "--realtime", "--manifest M", "--node NODE", "--metrics-json"):
        assert opt in out, opt
    assert "--input" not in out  # run's, not stream's
