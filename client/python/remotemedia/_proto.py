"""_proto.py - the generated protobuf/gRPC modules, with a clear message when they are missing.

The stubs are generated from proto/ by the build (target rm_python_stubs, into
<build>/python_gen) or by client/python/generate_stubs.py; they are never committed.
remotemedia/__init__.py extends the package path so remotemedia.v1 is found in that
directory once it is on sys.path.
"""
__all__ = ["data_pb2", "manifest_pb2", "metrics_pb2", "pipeline_service_pb2",
           "pipeline_service_pb2_grpc", "health_pb2", "health_pb2_grpc"]

try:
    from remotemedia.v1 import data_pb2, manifest_pb2, metrics_pb2  # noqa: F401
    from remotemedia.v1 import pipeline_service_pb2, pipeline_service_pb2_grpc  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "remotemedia: the generated protobuf stubs (remotemedia.v1) are not importable (%s). "
        "Build them (cmake --build <build>, target rm_python_stubs) and put <build>/python_gen "
        "on PYTHONPATH, or run client/python/generate_stubs.py OUTDIR and put OUTDIR there." % e
    ) from e

try:
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: F401
except ImportError:  # pragma: no cover - health checks then raise at call time
    health_pb2 = health_pb2_grpc = None
