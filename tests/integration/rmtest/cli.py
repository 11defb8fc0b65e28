"""The `remotemedia` CLI run by the C client's tests: $RM_CLI_BIN behind $RM_CLIENT_WRAPPER
(e.g. valgrind), its output decoded and the wrapper's own lines dropped."""
import os
import re
import shlex
import subprocess

VALGRIND_LINE = re.compile(r"^==\d+== ?.*$\n?", re.M)


def wrapper():
    return shlex.split(os.environ.get("RM_CLIENT_WRAPPER", ""))


def run_cli(*args, timeout, cwd=None):
    """(exit status, stdout, stderr without the wrapper's lines); AssertionError when the
    wrapper found memory errors (its exit status 99). Bytes that are not UTF-8 (a hostile
    server's) are decoded as U+FFFD."""
    p = subprocess.run(wrapper() + [os.environ["RM_CLI_BIN"], *args], capture_output=True,
                       timeout=timeout, cwd=cwd)
    out, err = (b.decode("utf-8", "replace") for b in (p.stdout, p.stderr))
    if p.returncode == 99 and wrapper():
        raise AssertionError("memory errors under %s:\n%s" % (wrapper()[0], err))
    return p.returncode, out, VALGRIND_LINE.sub("", err)


def error_line(stderr):
    """The CLI's one error line."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("remotemedia:")]
    assert len(lines) == 1, stderr
    return lines[0]
