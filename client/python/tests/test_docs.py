"""The examples of docs/python-client.md run as written, against a real server (their
RM_SERVER environment variable points them at it), and print what the page says."""
import os
import re
import subprocess
import sys

import pytest

from conftest import repo_root

MARKER = "<!-- doc-test: run -->"


def runnable_blocks():
    with open(os.path.join(repo_root(), "docs", "python-client.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(re.escape(MARKER) + r"\n```python\n(.*?)```", text, flags=re.S)


def run_block(code, server, cwd):
    env = dict(os.environ, RM_SERVER=server.address())
    p = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_the_page_has_four_runnable_examples():
    assert len(runnable_blocks()) == 4


def test_quickstart(server, server_types, tmp_path):
    if "AudioResample" not in server_types:
        pytest.skip("the server does not list AudioResample, which the page's example uses")
    code = runnable_blocks()[0]
    assert "pipeline.add_node(Gain(db=-6)).add_node(AudioResample(target_rate=16000))" in code
    lines = run_block(code, server, tmp_path)
    assert lines[0] == "AudioBuffer(16000 frames, 1 ch, 16000 Hz, f32)"
    total, overhead = (float(v) for v in lines[1].split())
    assert total > 0 and overhead > 0
    names = [ln.split()[0] for ln in lines[2:]]
    assert names == ["gain", "audio_resample"]
    assert all(float(ln.split()[1]) > 0 for ln in lines[2:])


def test_sync_graph_and_manifest(server, tmp_path):
    lines = run_block(runnable_blocks()[1], server, tmp_path)
    assert lines == ["['mono', 'quiet']", "[500 500 500] (480, 2)"]
    assert (tmp_path / "split.json").is_file()


def test_calculator(server, tmp_path):
    """QA 12: Calculator's input format, documented with an example that runs."""
    lines = run_block(runnable_blocks()[2], server, tmp_path)
    assert lines == ["{'operation': 'divide', 'operands': [10, 4], 'result': 2.5}",
                     "calc operands node 'calc' (Calculator): division by zero (operands[1] is 0)"]


def test_errors(server, tmp_path):
    lines = run_block(runnable_blocks()[3], server, tmp_path)
    assert lines == ["g db invalid_params", "StatusCode.DEADLINE_EXCEEDED"]
