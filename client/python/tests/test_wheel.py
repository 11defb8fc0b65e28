"""The wheel and sdist the build makes: what they hold, and the wheel installed into a fresh
venv (no PYTHONPATH, nothing from this repository) running the README's and the docs'
examples and the seed's usage example against a real server."""
import os
import subprocess
import tarfile
import zipfile

import pytest

from conftest import (SEED_EXAMPLE, SEED_RUNNER, clean_env, doc_blocks, readme_call,
                      wheel_path)
import test_docs

VERSION = "0.1.0"
# what docs/python-client.md's runnable examples print (test_docs.py checks the same)
DOCS_OUTPUT = {
    0: ["AudioBuffer(16000 frames, 1 ch, 16000 Hz, f32)"],  # then timings
    1: ["['mono', 'quiet']", "[500 500 500] (480, 2)"],
    2: ["{'operation': 'divide', 'operands': [10, 4], 'result': 2.5}",
        "calc operands node 'calc' (Calculator): division by zero (operands[1] is 0)"],
    3: ["g db invalid_params", "StatusCode.DEADLINE_EXCEEDED"],
}
# what the package must carry besides its own modules: generated at build time
GENERATED = ["remotemedia/v1/__init__.py", "remotemedia/v1/data_pb2.py",
             "remotemedia/v1/manifest_pb2.py", "remotemedia/v1/metrics_pb2.py",
             "remotemedia/v1/pipeline_service_pb2.py",
             "remotemedia/v1/pipeline_service_pb2_grpc.py",
             "remotemedia/_grpc_health/__init__.py", "remotemedia/_grpc_health/health_pb2.py",
             "remotemedia/_node_types.py", "remotemedia/node_schema.json",
             "remotemedia/py.typed", "remotemedia/core.py"]


def run(python, code, server, cwd, args=(), **env):
    """Runs code with the venv's python, outside the repository, without PYTHONPATH."""
    p = subprocess.run([python, "-c", code, *args], cwd=str(cwd), capture_output=True,
                       text=True, timeout=120,
                       env=clean_env(RM_SERVER=server.address(), **env))
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_wheel_and_sdist_hold_the_generated_half():
    whl = wheel_path()
    assert os.path.basename(whl) == "remotemedia-%s-py3-none-any.whl" % VERSION
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        meta = z.read("remotemedia-%s.dist-info/METADATA" % VERSION).decode()
    assert set(GENERATED) <= names
    assert not any(n.startswith(("tests/", "grpc_health/")) for n in names)
    requires = sorted(ln.split(": ", 1)[1].translate({ord(c): None for c in " ()"})
                      for ln in meta.splitlines()
                      if ln.startswith("Requires-Dist: ") and "extra ==" not in ln)
    assert requires == ["grpcio>=1.51", "numpy>=1.24", "protobuf>=3.20"]
    sdist = os.environ["RM_PY_SDIST"]
    assert os.path.basename(sdist) == "remotemedia-%s.tar.gz" % VERSION
    with tarfile.open(sdist) as t:
        snames = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert set(GENERATED) | {"pyproject.toml"} <= snames


def test_sdist_builds_a_wheel_offline(venv, tmp_path):
    """The sdist is complete: pip makes the same package from it with Debian's setuptools,
    without build isolation and without an index."""
    p = subprocess.run([venv, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                        "--no-index", "--disable-pip-version-check", "-w", str(tmp_path),
                        os.environ["RM_PY_SDIST"]],
                       capture_output=True, text=True, timeout=300, env=clean_env(),
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    with zipfile.ZipFile(tmp_path / ("remotemedia-%s-py3-none-any.whl" % VERSION)) as z:
        assert set(GENERATED) <= set(z.namelist())


def test_installed_package_stands_alone(venv, server, server_types, tmp_path):
    code = "\n".join([
        "import sys, remotemedia, remotemedia.nodes as n",
        "from remotemedia import _proto, Client",
        "print(remotemedia.__file__.startswith(sys.prefix))",
        "print(_proto.health_pb2.__name__)",
        "print(n.Gain.__module__, n.GainNode is n.Gain)",
        "print(','.join(n.node_types()))",
        "with Client() as c:",          # RemoteConfig(): $RM_SERVER
        "    print(c.health_check_sync(), c.config.address)",
    ])
    lines = run(venv, code, server, tmp_path)
    assert lines[0] == "True"
    assert lines[1] == "remotemedia._grpc_health.health_pb2"  # the copy the wheel carries
    assert lines[2] == "remotemedia._node_types True"        # generated at build time
    assert set(lines[3].split(",")) == server_types
    assert lines[4] == "SERVING %s" % server.address()


def test_missing_health_messages_are_not_a_server_status(venv, server, tmp_path):
    """Found 2: an installation without the health messages says so on this side
    (HealthStubsMissing, an ImportError), never as a gRPC status from the server."""
    code = "\n".join([
        "import sys",
        "sys.modules['grpc_health'] = sys.modules['remotemedia._grpc_health'] = None",
        "import numpy as np",
        "from remotemedia import Client, HealthStubsMissing, Pipeline, RemoteMediaError",
        "from remotemedia.nodes import Gain",
        "with Client() as c:",
        "    try:",
        "        c.health_check_sync()",
        "    except RemoteMediaError as e:",
        "        print('status', e)",
        "    except HealthStubsMissing as e:",
        "        print(type(e).__name__, isinstance(e, ImportError), 'reinstall' in str(e))",
        "with Pipeline() as p:",
        "    p.add_node(Gain(db=-6.020599913279624))",
        "    print(p.run_sync([0.5], sample_rate=8000).samples.tolist())",
    ])
    assert run(venv, code, server, tmp_path) == ["HealthStubsMissing True True", "[0.25]"]


def test_readme_examples(venv, server, server_types, tmp_path):
    lines = run(venv, readme_call().replace("127.0.0.1:50051", server.address()), server,
                tmp_path)
    samples, avg_us = lines[0].rsplit(" ", 1)
    assert samples == "[ 0.25  -0.125]" and float(avg_us) > 0
    blocks = doc_blocks("README.md")
    assert len(blocks) == 1
    if "AudioResample" not in server_types:
        pytest.skip("the server does not list AudioResample, which the README's example uses")
    lines = run(venv, blocks[0], server, tmp_path)
    assert lines[0] == "AudioBuffer(16000 frames, 1 ch, 16000 Hz, f32)"
    assert [ln.split()[0] for ln in lines[1:]] == ["gain", "audio_resample"]
    assert all(float(ln.split()[1]) > 0 for ln in lines[1:])


def test_docs_examples(venv, server, server_types, tmp_path):
    """docs/python-client.md's runnable examples, installed; test_docs.py checks the same
    output from the source tree."""
    blocks = test_docs.runnable_blocks()
    assert len(blocks) == len(doc_blocks(os.path.join("docs", "python-client.md")))
    for i, code in enumerate(blocks):
        if "AudioResample" in code and "AudioResample" not in server_types:
            continue
        d = tmp_path / str(i)
        d.mkdir()
        lines = run(venv, code, server, d)
        expected = DOCS_OUTPUT[i]
        assert lines[:len(expected)] == expected, "example %d" % i
        if i != 0:
            assert len(lines) == len(expected)


def test_seed_usage_example_as_written(venv, server, server_types, tmp_path):
    if "AudioResample" not in server_types:
        pytest.skip("the server does not list AudioResample, which the seed's example uses")
    lines = run(venv, SEED_RUNNER, server, tmp_path, args=[SEED_EXAMPLE])
    assert lines[0].startswith("Total: ") and lines[0].endswith("μs")
    assert float(lines[0][len("Total: "):-2]) > 0
    assert lines[1].startswith("Overhead: ") and float(lines[1][len("Overhead: "):-2]) > 0
    assert lines[2].startswith("  audio_resample: ")
    assert lines[-1] == "AudioBuffer(16000 frames, 1 ch, 16000 Hz, f32)"
