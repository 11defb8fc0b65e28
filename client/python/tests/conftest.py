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
