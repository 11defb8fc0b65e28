"""The README's calls work as written (against a test server instead of port 50051)."""
import os
import re
import subprocess

import pytest

from rmtest.server import RunningServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = open(os.path.join(ROOT, "README.md")).read()


@pytest.fixture(scope="module")
def server():
    with RunningServer() as srv:
        yield srv


def test_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    first = [l for l in blocks[0].splitlines() if l.strip()]
    assert first[0].startswith("./scripts/dev.sh run")
    assert first[1].startswith("./scripts/dev.sh test")
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "./scripts/dev.sh test" in ci


def test_files_the_help_points_to_exist():
    """Every docs/*.md the server's --help names is in the repository."""
    out = subprocess.run([os.environ["RM_SERVER_BIN"], "--help"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    named = set(re.findall(r"docs/[\w.-]+\.md", out.stdout + out.stderr))
    assert named, "no docs file named in --help"
    assert [f for f in sorted(named) if not os.path.isfile(os.path.join(ROOT, f))] == []


def test_python_call(server):
    snippet = re.search(r"/usr/bin/python3 -c '(.*?)'\n", README, re.S).group(1)
    code = snippet.replace("127.0.0.1:50051", server.address())
    env = dict(os.environ, PYTHONPATH=os.environ["PYTHONPATH"] + ":" + os.path.join(ROOT, "client", "python"))
    out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    samples, avg_us = out.rsplit(" ", 1)
    assert samples == "[ 0.25  -0.125]"
    assert float(avg_us) > 0


def test_cli_calls(server):
    cli = os.environ["RM_CLI_BIN"]
    block = re.search(r"with the C command-line client:\n\n```sh\n(.*?)```", README, re.S).group(1)
    commands = [c.replace("build/client/c/remotemedia", cli).replace("127.0.0.1:50051", server.address())
                for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    assert len(commands) == 2
    health = subprocess.run(commands[0], shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    run = subprocess.run(commands[1], shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"frames": 24000' in run.stdout
    assert "pcm16" in run.stderr + run.stdout
