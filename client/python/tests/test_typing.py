"""Type checking with Debian's mypy against the installed wheel (py.typed, the generated node
classes): the README's and the docs' examples check clean, a typed user script checks clean
under --strict, wrong parameter types and names are mypy errors, and the package's own
source (from the sdist) checks clean."""
import os
import re
import subprocess
import tarfile
import textwrap

import pytest

from conftest import clean_env, doc_blocks, readme_call

USER_SCRIPT = '''\
"""A user's typed script: the node classes' parameters are keyword arguments with types."""
import asyncio
from typing import Any, Dict, List, Optional

import numpy as np

from remotemedia import AudioBuffer, ExecuteResult, RemoteConfig, RetryPolicy
from remotemedia.core import Pipeline
from remotemedia.nodes import AudioResampleNode, Chunk, Gain, Node, SilenceTrim


def build(remote: RemoteConfig) -> Pipeline:
    p = Pipeline("typed", remote=remote, enable_metrics=True)
    g: Node = Gain(db=-6.0, node_id="g")
    p.add_node(g)
    p.add_node(AudioResampleNode(target_rate=16000, quality="very-high"))
    p.add_node(AudioResampleNode(rate=8000, passband=None), chain=False)
    p.add_node(Chunk(frames=512, partial="pad"), after=["g"])
    p.add_node(SilenceTrim(threshold_db=-40, mode="both"), after=g)
    return p


async def main() -> Optional[float]:
    remote = RemoteConfig("localhost:50051", timeout=5.0,
                          retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.05))
    pipeline = build(remote)
    samples = np.zeros(480, dtype=np.float32)
    result: ExecuteResult = await pipeline.execute(AudioBuffer(samples, 48000))
    audio: AudioBuffer = result.audio("g")
    rate: int = audio.sample_rate
    metrics: Optional[Dict[str, Any]] = pipeline.get_metrics()
    names: List[str] = pipeline.sources() + pipeline.sinks()
    await pipeline.close()
    print(rate, names)
    return None if metrics is None else float(metrics["total_duration_us"])


if __name__ == "__main__":
    asyncio.run(main())
'''

# (line, what mypy must say about it)
BAD_SCRIPT = '''\
from remotemedia.nodes import AudioFormat, AudioResample, Chunk, Gain, GainNode
Gain(db="loud")
GainNode(volume=1)
Chunk(partial="maybe")
AudioFormat()
AudioResample()
Gain(db=-6, node_id=3)
'''
BAD_ERRORS = [
    (2, 'Argument "db" to "Gain" has incompatible type "str"; expected "float"'),
    (3, 'Unexpected keyword argument "volume" for "Gain"'),
    (4, 'Argument "partial" to "Chunk" has incompatible type "Literal[\'maybe\']"'),
    (5, 'Missing named argument "format" for "AudioFormat"'),
    (6, 'All overload variants of "AudioResample" require at least one argument'),
    (7, 'Argument "node_id" to "Gain" has incompatible type "int"; expected "Optional[str]"'),
]


@pytest.fixture(scope="module")
def mypy(venv, tmp_path_factory):
    """Runs mypy (Debian's python3-mypy, seen through the venv's system site-packages) with
    the venv's interpreter, so `remotemedia` is the installed wheel. Returns (status, lines)."""
    cache = tmp_path_factory.mktemp("mypy_cache")

    def run(paths, *flags, cwd):
        p = subprocess.run([venv, "-m", "mypy", "--cache-dir", str(cache),
                            "--no-error-summary", "--show-error-codes", *flags, *paths],
                           cwd=str(cwd), capture_output=True, text=True, timeout=600,
                           env=clean_env())
        return p.returncode, [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    return run


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path.name


def test_examples_check_clean(mypy, tmp_path):
    files = [write(tmp_path, "readme_call.py", readme_call())]
    files += [write(tmp_path, "readme_%d.py" % i, code)
              for i, code in enumerate(doc_blocks("README.md"))]
    files += [write(tmp_path, "docs_%d.py" % i, code)
              for i, code in enumerate(doc_blocks(os.path.join("docs", "python-client.md")))]
    assert len(files) == 6
    status, lines = mypy(files, cwd=tmp_path)
    assert (status, lines) == (0, [])


def test_typed_user_script_checks_under_strict(mypy, tmp_path):
    status, lines = mypy([write(tmp_path, "user.py", USER_SCRIPT)], "--strict", cwd=tmp_path)
    assert (status, lines) == (0, [])


def test_wrong_params_are_mypy_errors(mypy, tmp_path):
    status, lines = mypy([write(tmp_path, "bad.py", BAD_SCRIPT)], cwd=tmp_path)
    assert status == 1
    errors = [ln for ln in lines if ": error: " in ln]
    found = {}
    for ln in errors:
        m = re.match(r"bad\.py:(\d+): error: (.*)", ln)
        assert m, ln
        found.setdefault(int(m.group(1)), []).append(m.group(2))
    assert sorted(found) == [line for line, _ in BAD_ERRORS]
    for line, message in BAD_ERRORS:
        assert any(message in e for e in found[line]), (line, found[line])


def test_revealed_signature(mypy, tmp_path):
    code = textwrap.dedent('''\
        from remotemedia.nodes import Gain, GainNode
        reveal_type(Gain)
        reveal_type(GainNode(db=1).params)
        ''')
    status, lines = mypy([write(tmp_path, "reveal.py", code)], cwd=tmp_path)
    notes = [ln.split(": note: ", 1)[1] for ln in lines if ": note: " in ln]
    assert notes[0] == ('Revealed type is "def (*, db: builtins.float =, node_id: Union['
                        'builtins.str, None] =, validate: builtins.bool =) -> '
                        'remotemedia._node_types.Gain"')
    assert notes[1] == 'Revealed type is "builtins.dict[builtins.str, Any]"'


def test_package_source_checks_clean(mypy, tmp_path):
    """The package as shipped (the sdist, with its pyproject.toml's mypy settings)."""
    with tarfile.open(os.environ["RM_PY_SDIST"]) as t:
        t.extractall(tmp_path)
    root = next(tmp_path.glob("remotemedia-*"))
    status, lines = mypy(["-p", "remotemedia"], "--config-file", "pyproject.toml", cwd=root)
    assert (status, lines) == (0, [])
