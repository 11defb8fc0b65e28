#!/usr/bin/env python3
"""build_dist.py - builds the `remotemedia` wheel and sdist offline, from a staging copy.

    /usr/bin/python3 client/python/build_dist.py --gen <build>/python_gen \
        --stage <build>/python_stage --dist <build>/dist

Copies the package source (client/python: remotemedia/*.py, py.typed, pyproject.toml)
and its generated half from --gen (remotemedia/v1/*_pb2*.py, remotemedia/_node_types.py,
remotemedia/node_schema.json, grpc_health/v1/health_pb2.py as remotemedia/_grpc_health,
google/rpc/*_pb2.py as remotemedia/_google_rpc)
into --stage, then runs setuptools' PEP 517 backend there (Debian's python3-setuptools and
python3-wheel: no build isolation, nothing downloaded) to write
remotemedia-<version>-py3-none-any.whl and remotemedia-<version>.tar.gz into --dist.
Nothing is written into the source tree. Exit status 0, or 1 with a message.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (file under --gen, where it goes in the package) besides remotemedia/v1/*.py
GENERATED = [
    ("remotemedia/_node_types.py", "remotemedia/_node_types.py"),
    ("remotemedia/node_schema.json", "remotemedia/node_schema.json"),
    ("grpc_health/v1/health_pb2.py", "remotemedia/_grpc_health/health_pb2.py"),
    ("google/rpc/status_pb2.py", "remotemedia/_google_rpc/status_pb2.py"),
    ("google/rpc/error_details_pb2.py", "remotemedia/_google_rpc/error_details_pb2.py"),
]
# (build_meta rewrites sys.argv: read the argument first)
BACKEND = ("import sys\n"
           "from setuptools import build_meta as b\n"
           "dist = sys.argv[1]\n"
           "names = [b.build_wheel(dist), b.build_sdist(dist)]\n"
           "print('\\n'.join(names))\n")


def _copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst)


def stage(gen, out):
    """Fills the staging directory `out` (emptied first)."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    pkg = os.path.join(out, "remotemedia")
    for f in glob.glob(os.path.join(HERE, "remotemedia", "*.py")) + \
            [os.path.join(HERE, "remotemedia", "py.typed")]:
        _copy(f, os.path.join(pkg, os.path.basename(f)))
    _copy(os.path.join(HERE, "pyproject.toml"), os.path.join(out, "pyproject.toml"))
    stubs = sorted(glob.glob(os.path.join(gen, "remotemedia", "v1", "*.py")))
    if not stubs:
        raise SystemExit("build_dist: no stubs in %s/remotemedia/v1" % gen)
    for f in stubs:
        _copy(f, os.path.join(pkg, "v1", os.path.basename(f)))
    for src, dst in GENERATED:
        path = os.path.join(gen, src)
        if not os.path.isfile(path):
            raise SystemExit("build_dist: %s is missing (build targets rm_python_stubs, "
                             "rm_python_node_classes)" % path)
        _copy(path, os.path.join(out, dst))
    for sub, what in (("v1", "the generated remotemedia.v1 protobuf/gRPC stubs"),
                      ("_grpc_health", "the generated grpc.health.v1 messages"),
                      ("_google_rpc", "the generated google.rpc error-detail messages")):
        with open(os.path.join(pkg, sub, "__init__.py"), "w", encoding="utf-8") as f:
            f.write('"""%s (generated at build time)."""\n' % what.capitalize())
    with open(os.path.join(out, "MANIFEST.in"), "w", encoding="utf-8") as f:
        f.write("include remotemedia/py.typed remotemedia/node_schema.json\n")


def build(out, dist):
    """Runs the setuptools backend in `out`; returns the two file names it wrote."""
    os.makedirs(dist, exist_ok=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)  # the backend is Debian's setuptools, nothing else
    p = subprocess.run([sys.executable, "-c", BACKEND, os.path.abspath(dist)], cwd=out, env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("build_dist: setuptools failed:\n%s%s" % (p.stdout, p.stderr))
    return p.stdout.splitlines()[-2:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gen", required=True, help="the build's python_gen directory")
    ap.add_argument("--stage", required=True, help="staging directory (emptied first)")
    ap.add_argument("--dist", required=True, help="where the wheel and sdist go")
    a = ap.parse_args(argv)
    stage(os.path.abspath(a.gen), os.path.abspath(a.stage))
    for name in build(os.path.abspath(a.stage), a.dist):
        print("build_dist: %s" % os.path.join(a.dist, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
