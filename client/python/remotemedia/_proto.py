"""_proto.py - the generated protobuf/gRPC modules, with a clear message when they are missing.

The stubs are generated from proto/ by the build (target rm_python_stubs, into
<build>/python_gen) and shipped in the wheel; they are never committed. From a source
checkout, remotemedia/__init__.py extends the package path so remotemedia.v1 is found in
<build>/python_gen once it is on sys.path. protoc's modules carry no annotations: to type
checkers they are Any.

The google.rpc messages of the error details (grpc-status-details-bin) come from
googleapis-common-protos' google.rpc when that is importable, otherwise from the copy the
wheel carries (remotemedia._google_rpc), again so one process never registers them twice;
None only in a broken installation (errors then carry the old trailers only).

The grpc.health.v1 messages come from grpcio-health-checking's grpc_health.v1 when that
is importable (so the two never register the same proto twice), otherwise from the copy
the wheel carries (remotemedia._grpc_health). health_pb2 is None only in a broken
installation; health checks then raise HealthStubsMissing, a client-side ImportError,
never a server status.
"""
import importlib
from typing import Any, Optional

__all__ = ["data_pb2", "manifest_pb2", "metrics_pb2", "pipeline_service_pb2",
           "pipeline_service_pb2_grpc", "health_pb2", "HEALTH_IMPORT_ERROR", "rpc_status_pb2",
           "rpc_error_details_pb2"]


def _load(name: str) -> Any:
    return importlib.import_module(name)


try:
    data_pb2: Any = _load("remotemedia.v1.data_pb2")
    manifest_pb2: Any = _load("remotemedia.v1.manifest_pb2")
    metrics_pb2: Any = _load("remotemedia.v1.metrics_pb2")
    pipeline_service_pb2: Any = _load("remotemedia.v1.pipeline_service_pb2")
    pipeline_service_pb2_grpc: Any = _load("remotemedia.v1.pipeline_service_pb2_grpc")
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "remotemedia: the generated protobuf stubs (remotemedia.v1) are not importable (%s). "
        "Install the wheel the build makes (pip install <build>/dist/remotemedia-*.whl), or "
        "put <build>/python_gen on PYTHONPATH next to client/python, or run "
        "client/python/generate_stubs.py OUTDIR and put OUTDIR there." % e
    ) from e

health_pb2: Optional[Any] = None
#: Why the health messages could not be imported ("" when they were).
HEALTH_IMPORT_ERROR = ""
try:
    health_pb2 = _load("grpc_health.v1.health_pb2")
except ImportError as e1:
    try:
        health_pb2 = _load("remotemedia._grpc_health.health_pb2")
    except ImportError as e2:  # pragma: no cover - a broken installation
        HEALTH_IMPORT_ERROR = "grpc_health.v1: %s; remotemedia._grpc_health: %s" % (e1, e2)

rpc_status_pb2: Optional[Any] = None
rpc_error_details_pb2: Optional[Any] = None
for _pkg in ("google.rpc", "remotemedia._google_rpc"):
    try:
        rpc_status_pb2 = _load(_pkg + ".status_pb2")
        rpc_error_details_pb2 = _load(_pkg + ".error_details_pb2")
        break
    except ImportError:  # pragma: no cover - depends on the installation
        rpc_status_pb2 = rpc_error_details_pb2 = None
