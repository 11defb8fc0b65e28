"""Fixtures for the Python client's tests: a real remotemedia-server on an ephemeral loopback
port (tests/integration/rmtest, $RM_SERVER_BIN), a RemoteConfig pointing at it, signals,
and certificates made by openssl for the TLS cases."""
import asyncio
import os

import numpy as np
import pytest

from rmtest.pki import make_pki
from rmtest.server import RunningServer
from remotemedia import RemoteConfig

CALL_TIMEOUT_S = 60.0  # generous: a deadline only so a broken server cannot hang a test


@pytest.fixture(scope="module")
def server():
    with RunningServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def remote(server):
    return RemoteConfig(server.address(), timeout=CALL_TIMEOUT_S)


@pytest.fixture(scope="module")
def server_types(remote):
    """Names of the node types the running server lists."""
    from remotemedia import Client
    with Client(remote) as c:
        return {t.name for t in c.list_node_types_sync()}


def arun(coro):
    """Runs a coroutine on a fresh event loop (the tests do not depend on pytest-asyncio)."""
    return asyncio.run(coro)


def sine(frames, rate, freq=440.0, amp=0.5, dtype=np.float32):
    t = np.arange(frames, dtype=np.float64) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(dtype)


def repo_root():
    return os.environ.get("RM_REPO_ROOT") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "..", ".."))


# -- certificates ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Paths of the run's certificates (rmtest.pki: ca, server, client, and intruder from a
    CA the server does not trust)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- the wheel, installed into a fresh venv ----------------------------------------------------

def wheel_path():
    """The wheel the build made ($RM_PY_WHEEL, set by CTest)."""
    path = os.environ.get("RM_PY_WHEEL")
    if not path or not os.path.isfile(path):
        pytest.fail("RM_PY_WHEEL (%r) is not a built wheel: build target rm_python_dist" % path)
    return path


def clean_env(**extra):
    """os.environ without PYTHONPATH (nor anything else pointing into this repository)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "RM_NODE_SCHEMA", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv (/usr/bin/python3 -m venv --system-site-packages: Debian's grpcio and
    numpy come from the system) with the wheel installed offline (--no-index --no-deps).
    Returns the venv's python."""
    import subprocess
    root = tmp_path_factory.mktemp("venv") / "rm"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(root)],
                   check=True, env=clean_env(), timeout=300)
    python = str(root / "bin" / "python")
    p = subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-deps",
                        "--disable-pip-version-check", wheel_path()],
                       capture_output=True, text=True, env=clean_env(), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return python


def doc_blocks(path, lang="python"):
    """The code blocks of a markdown file (relative to the repository root) marked
    <!-- doc-test: run -->."""
    import re
    with open(os.path.join(repo_root(), path), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"<!-- doc-test: run -->\n```%s\n(.*?)```" % lang, text, flags=re.S)


def readme_call():
    """The README's one-line Python call (the /usr/bin/python3 -c '...' block)."""
    import re
    with open(os.path.join(repo_root(), "README.md"), encoding="utf-8") as f:
        return re.search(r"/usr/bin/python3 -c '(.*?)'\n", f.read(), re.S).group(1)


# The seed's usage example (the reference SDK's Phase 7 notes), as written; only the node's
# arguments ("...") are filled in. It uses top-level await and expects `audio_data` and
# AudioResampleNode to exist.
SEED_EXAMPLE = '''\
from remotemedia.core import Pipeline

# Enable metrics
pipeline = Pipeline(enable_metrics=True)
pipeline.add_node(AudioResampleNode(target_rate=16000))

# Execute
result = await pipeline.run(audio_data)

# Access metrics
metrics = pipeline.get_metrics()
if metrics:
    print(f"Total: {metrics['total_duration_us']}μs")
    print(f"Overhead: {metrics['metrics_overhead_us']}μs")
    
    for node in metrics['node_metrics']:
        print(f"  {node['node_id']}: {node['avg_duration_us']}μs")
'''

# Runs SEED_EXAMPLE (argv[1]) as a top-level-await program, with 1 s of 48 kHz audio as
# audio_data; prints the result's repr last.
SEED_RUNNER = '''\
import ast, asyncio, sys
import numpy as np
from remotemedia import AudioBuffer
from remotemedia.nodes import AudioResampleNode
t = np.arange(48000) / 48000
audio_data = AudioBuffer((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
code = compile(sys.argv[1], "<seed>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
ns = {"audio_data": audio_data, "AudioResampleNode": AudioResampleNode}
coro = eval(code, ns)
if coro is not None:
    asyncio.run(coro)
print(repr(ns["result"]))
'''
