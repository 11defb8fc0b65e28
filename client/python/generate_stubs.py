#!/usr/bin/env python3
"""generate_stubs.py - makes the generated half of the `remotemedia` package outside CMake.

    python3 client/python/generate_stubs.py OUTDIR [--proto-dir DIR] [--grpc-proto-dir DIR]
                                            [--googleapis-dir DIR]
                                            [--schema-from HOST:PORT [--token T]]

writes OUTDIR/remotemedia/v1/*_pb2.py and *_pb2_grpc.py from proto/remotemedia/v1, and
OUTDIR/grpc_health/v1/health_pb2*.py (also as OUTDIR/remotemedia/_grpc_health, the wheel's
layout) when the gRPC health proto is found (Debian's grpc-proto package:
/usr/share/grpc-proto), and google/rpc/status_pb2.py and error_details_pb2.py (also as
OUTDIR/remotemedia/_google_rpc: the error details) when googleapis' protos are found
(Debian's golang-github-gogo-googleapis-dev). Put OUTDIR on PYTHONPATH next to client/python. With --schema-from
it also asks that server's ListNodeTypes and writes OUTDIR/remotemedia/node_schema.json
and the typed node classes (remotemedia/_node_types.py, generate_node_classes.py); the
CMake build dumps the schema from the engine's registry instead. Generating into
client/python itself (OUTDIR = client/python) makes it a complete package that
`pip install ./client/python` builds.

Code generation uses grpc_tools.protoc (pip grpcio-tools) when importable, otherwise
`protoc` with `grpc_python_plugin` from PATH (Debian: protobuf-compiler,
protobuf-compiler-grpc). Exit status 0, or 1 with a message.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
DEFAULT_GRPC_PROTO_DIR = "/usr/share/grpc-proto"
DEFAULT_GOOGLEAPIS_DIR = "/usr/share/gocode/src/github.com/gogo/googleapis"


def protoc(include_dirs, protos, out):
    """Runs protoc with the Python and gRPC generators; raises SystemExit on failure."""
    args = ["-I" + d for d in include_dirs] + ["--python_out=" + out, "--grpc_python_out=" + out]
    try:
        from grpc_tools import protoc as tools
    except ImportError:
        tools = None
    if tools is not None:
        builtin = os.path.join(os.path.dirname(tools.__file__), "_proto")
        rc = tools.main(["protoc", "-I" + builtin] + args + protos)
    else:
        exe, plugin = shutil.which("protoc"), shutil.which("grpc_python_plugin")
        if not exe or not plugin:
            raise SystemExit("generate_stubs: need grpc_tools (pip install grpcio-tools) or "
                             "protoc and grpc_python_plugin on PATH")
        args = [a.replace("--grpc_python_out=", "--grpc_out=") for a in args]
        rc = subprocess.call([exe, "--plugin=protoc-gen-grpc=" + plugin] + args + protos)
    if rc != 0:
        raise SystemExit("generate_stubs: protoc failed (status %d)" % rc)


def generate(out, proto_dir, grpc_proto_dir, googleapis_dir=None):
    protos = sorted(glob.glob(os.path.join(proto_dir, "remotemedia", "v1", "*.proto")))
    if not protos:
        raise SystemExit("generate_stubs: no .proto files under %s/remotemedia/v1" % proto_dir)
    os.makedirs(out, exist_ok=True)
    protoc([proto_dir], protos, out)
    _init(os.path.join(out, "remotemedia", "v1"), "The generated remotemedia.v1 stubs.")
    googleapis_dir = googleapis_dir or DEFAULT_GOOGLEAPIS_DIR
    rpc = [os.path.join(googleapis_dir, "google", "rpc", n)
           for n in ("status.proto", "error_details.proto")]
    if all(os.path.isfile(p) for p in rpc):  # messages only; bundled like the health messages
        protoc([googleapis_dir], rpc, out)
        bundled = os.path.join(out, "remotemedia", "_google_rpc")
        os.makedirs(bundled, exist_ok=True)
        for name in ("status_pb2.py", "error_details_pb2.py"):
            shutil.copy(os.path.join(out, "google", "rpc", name), bundled)
        _init(bundled, "The generated google.rpc error-detail messages.")
    health = os.path.join(grpc_proto_dir, "grpc", "health", "v1", "health.proto")
    if os.path.isfile(health):
        # laid out as grpcio-health-checking names it: grpc_health.v1.health_pb2
        with tempfile.TemporaryDirectory() as tmp:
            dst = os.path.join(tmp, "grpc_health", "v1")
            os.makedirs(dst)
            shutil.copy(health, dst)
            protoc([tmp], [os.path.join(dst, "health.proto")], out)
        bundled = os.path.join(out, "remotemedia", "_grpc_health")
        os.makedirs(bundled, exist_ok=True)
        shutil.copy(os.path.join(out, "grpc_health", "v1", "health_pb2.py"), bundled)
        _init(bundled, "The generated grpc.health.v1 messages.")
    else:
        print("generate_stubs: %s not found; health checks need grpcio-health-checking" % health,
              file=sys.stderr)


def _init(package_dir, doc):
    """Writes package_dir/__init__.py (setuptools packs only directories that have one)."""
    path = os.path.join(package_dir, "__init__.py")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write('"""%s"""\n' % doc)


def write_schema(out, address, token):
    sys.path.insert(0, out)
    sys.path.insert(0, HERE)
    from remotemedia import Client, RemoteConfig
    with Client(RemoteConfig(address, token=token, timeout=30)) as client:
        types = client.list_node_types_sync()
    path = os.path.join(out, "remotemedia", "node_schema.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"node_types": [t.to_dict() for t in types]}, f, indent=1, sort_keys=True)
    print("generate_stubs: %d node types from %s -> %s" % (len(types), address, path))
    import generate_node_classes
    generate_node_classes.generate(path, os.path.join(out, "remotemedia", "_node_types.py"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--proto-dir", default=DEFAULT_PROTO_DIR,
                    help="directory holding remotemedia/v1/*.proto (default: the repo's proto/)")
    ap.add_argument("--grpc-proto-dir", default=DEFAULT_GRPC_PROTO_DIR,
                    help="directory holding grpc/health/v1/health.proto")
    ap.add_argument("--googleapis-dir", default=DEFAULT_GOOGLEAPIS_DIR,
                    help="directory holding google/rpc/status.proto and error_details.proto "
                         "(Debian's golang-github-gogo-googleapis-dev)")
    ap.add_argument("--schema-from", metavar="HOST:PORT",
                    help="also write remotemedia/node_schema.json from this server")
    ap.add_argument("--token", help="bearer token for --schema-from")
    a = ap.parse_args(argv)
    out = os.path.abspath(a.outdir)
    generate(out, os.path.abspath(a.proto_dir), a.grpc_proto_dir, a.googleapis_dir)
    if a.schema_from:
        write_schema(out, a.schema_from, a.token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
