"""docs/load-testing.md works as written, as far as this machine can run it (ghz and
grpcurl are not installable here): the JSON payload files parse the way ghz parses them
(protobuf's JSON mapping) and the server answers them OK; `remotemedia request` writes the
bytes ghz -B and h2load send, and h2load's calls all end OK; the installed protoset holds
every service; the doc's h2load command is the one run here."""
import glob
import os
import re
import shlex
import subprocess

import pytest
from google.protobuf import descriptor_pb2, json_format

from rmtest.server import RunningServer
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WAV = os.path.join(REPO, "tests", "data", "audio", "sine_1k_48k_mono.wav")


@pytest.fixture(scope="module")
def server():
    with RunningServer(["--log-level", "info"]) as srv:
        yield srv


def ok_calls(srv, method="ExecutePipeline", pipeline=None):
    """OK call lines of a method (and pipeline: the module's server also serves the other tests,
    whose lines may still be arriving)."""
    return [e for e in srv.events("call")
            if e.get("method") == "/remotemedia.v1.PipelineService/" + method and e["status"] == "OK"
            and (pipeline is None or e.get("pipeline") == pipeline)]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "examples", "load", "*.json"))),
                         ids=os.path.basename)
def test_payload_files(server, path):
    with open(path) as f:
        req = json_format.Parse(f.read(), ps.ExecuteRequest())  # what ghz -D does
    with server.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        resp = stub.ExecutePipeline(req, timeout=30)
        assert resp.outputs
        assert list(stub.ValidatePipeline(req, timeout=30).schedule)


def test_gain_payload_uses_params_object(server):
    with open(os.path.join(REPO, "examples", "load", "gain.json")) as f:
        req = json_format.Parse(f.read(), ps.ExecuteRequest())
    assert dict(req.manifest.nodes[1].params_object) == {"db": -6}
    with server.channel() as ch:
        resp = psg.PipelineServiceStub(ch).ExecutePipeline(req, timeout=30)
    import numpy as np
    got = np.frombuffer(resp.outputs["g"].items[0].audio.samples, np.float32)
    np.testing.assert_allclose(got[:2], [0.5 * 10 ** (-6 / 20), -0.5 * 10 ** (-6 / 20)], rtol=1e-6)
    assert resp.metrics.total_executions == 1


def doc_commands(text, program):
    """The doc's shell commands starting with `program`: continuation lines joined, and a
    quoted argument spanning lines kept whole."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    commands, pending = [], ""
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        pending = pending + "\n" + line if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        commands.append(pending.strip())
        pending = ""
    return [c for c in commands if c.startswith(program)]


def test_inline_payload_of_the_doc(server):
    with open(os.path.join(REPO, "docs", "load-testing.md")) as f:
        cmds = doc_commands(f.read(), "ghz")
    inline = [shlex.split(c) for c in cmds if " -d " in c]
    assert inline
    for argv in inline:
        req = json_format.Parse(argv[argv.index("-d") + 1], ps.ExecuteRequest())
        with server.channel() as ch:
            assert psg.PipelineServiceStub(ch).ExecutePipeline(req, timeout=30).outputs


def test_binary_request_through_h2load(server, tmp_path):
    with open(os.path.join(REPO, "docs", "load-testing.md")) as f:
        text = f.read()
    request_cmd, = [c for c in doc_commands(text, "remotemedia request") if "--frame" in c]
    h2load_cmd, = doc_commands(text, "h2load")
    argv = shlex.split(request_cmd.replace("in.wav", WAV).replace("req.grpc", str(tmp_path / "req.grpc")))
    subprocess.run([os.environ["RM_CLI_BIN"]] + argv[1:], cwd=REPO, check=True, timeout=120)
    before = len(ok_calls(server, pipeline="gain_chain"))
    argv = shlex.split(h2load_cmd.replace("req.grpc", str(tmp_path / "req.grpc"))
                       .replace("127.0.0.1:50051", server.address()))
    argv[argv.index("-n") + 1] = "200"
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "200 succeeded, 0 failed, 0 errored" in p.stdout, p.stdout
    assert server.wait_for_count("call", before + 200, 60,
                                 lambda e: e.get("status") == "OK" and e.get("pipeline") == "gain_chain")
    assert len(ok_calls(server, pipeline="gain_chain")) == before + 200
    calls = [e for e in server.events("call") if e.get("pipeline") == "gain_chain"]
    assert calls and all(e["status"] == "OK" for e in calls)


def test_installed_protoset(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", os.environ["RM_BUILD_DIR"], "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=300)
    path = prefix / "share" / "remotemedia" / "remotemedia.protoset"
    fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    services = {"%s.%s" % (f.package, s.name): [m.name for m in s.method]
                for f in fds.file for s in f.service}
    assert services["remotemedia.v1.PipelineService"] == [
        "ExecutePipeline", "ValidatePipeline", "ListNodeTypes", "GetVersion", "StreamPipeline"]
    assert "grpc.health.v1.Health" in services
    messages = {"%s.%s" % (f.package, m.name) for f in fds.file for m in f.message_type}
    assert {"google.rpc.Status", "google.rpc.ErrorInfo", "google.rpc.BadRequest",
            "google.protobuf.Struct"} <= messages
