"""The package outside the CMake build: pyproject.toml declares it, generate_stubs.py makes
its generated half, and the package then works from client/python plus that directory."""
import os
import subprocess
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)


def test_pyproject_declares_the_dependencies():
    with open(os.path.join(PKG_ROOT, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    project = meta["project"]
    assert project["name"] == "remotemedia"
    deps = {d.split(">")[0].split("=")[0] for d in project["dependencies"]}
    assert deps == {"grpcio", "protobuf", "numpy"}
    import remotemedia
    assert project["version"] == remotemedia.__version__


def test_generate_stubs_then_use_them(server, tmp_path):
    out = tmp_path / "gen"
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)  # neither the build's stubs nor its schema
    p = subprocess.run([sys.executable, os.path.join(PKG_ROOT, "generate_stubs.py"), str(out),
                        "--schema-from", server.address()],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (out / "remotemedia" / "v1" / "pipeline_service_pb2_grpc.py").is_file()
    assert (out / "grpc_health" / "v1" / "health_pb2.py").is_file()
    assert (out / "remotemedia" / "node_schema.json").is_file()
    code = "\n".join([
        "import numpy as np, remotemedia",
        "from remotemedia import Pipeline, RemoteConfig",
        "from remotemedia.nodes import Gain",
        "assert remotemedia.v1.__path__[0].startswith(%r)" % str(out),
        "p = Pipeline(remote=RemoteConfig(%r, timeout=30))" % server.address(),
        "p.add_node(Gain(db=-6.020599913279624))",
        "print(p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist())",
        "print(p.health_check_sync())",
    ])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_ROOT, str(out)]))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["[0.25]", "SERVING"]


def test_missing_stubs_say_how_to_make_them(tmp_path):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    p = subprocess.run([sys.executable, "-c", "import remotemedia"], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "generated protobuf stubs (remotemedia.v1) are not importable" in p.stderr
    assert "generate_stubs.py" in p.stderr


def test_pip_builds_the_source_directory_once_generated(server, tmp_path):
    """Found 1: `pip install ./client/python` failed (no remotemedia/v1). After
    generate_stubs.py writes the generated half into the directory, pip builds it offline."""
    import shutil
    import zipfile
    pkg = tmp_path / "python"
    shutil.copytree(PKG_ROOT, pkg, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.c",
                                                                 "CMakeLists.txt"))
    env = dict(os.environ, PYTHONPATH=str(pkg))
    p = subprocess.run([sys.executable, os.path.join(PKG_ROOT, "generate_stubs.py"), str(pkg),
                        "--schema-from", server.address()],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    env.pop("PYTHONPATH")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                        "--no-index", "--disable-pip-version-check", "-w", str(tmp_path / "dist"),
                        str(pkg)], env=env, capture_output=True, text=True, timeout=300,
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    import remotemedia
    whl = tmp_path / "dist" / ("remotemedia-%s-py3-none-any.whl" % remotemedia.__version__)
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
    assert {"remotemedia/v1/pipeline_service_pb2_grpc.py", "remotemedia/_grpc_health/health_pb2.py",
            "remotemedia/_node_types.py", "remotemedia/node_schema.json",
            "remotemedia/py.typed"} <= names
