"""remotemedia - Python client of the remotemedia pipeline execution server.

    from remotemedia import Pipeline
    from remotemedia.nodes import Gain

    pipeline = Pipeline(enable_metrics=True)              # $RM_SERVER, else localhost:50051
    pipeline.add_node(Gain(db=-6))
    out = pipeline.run_sync(samples, sample_rate=48000)   # or: await pipeline.run(...)

Installed from the wheel the build makes (<build>/dist/remotemedia-*.whl), the package
carries its generated half (remotemedia.v1 stubs, node classes, health messages). From a
source checkout it extends its own __path__ so that the generated half is found in
<build>/python_gen: PYTHONPATH=client/python:<build>/python_gen. See docs/python-client.md.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from ._version import __version__  # noqa: E402
from .config import RemoteConfig, RetryPolicy  # noqa: E402
from .errors import (  # noqa: E402
    Cancelled, DeadlineExceeded, HealthStubsMissing, Internal, InvalidArgument, NotFound,
    PermissionDenied, RemoteMediaError, ResourceExhausted, Unauthenticated, Unavailable,
    Unimplemented)
from .data import AudioBuffer, Binary, Json, Tensor  # noqa: E402
from .client import Client  # noqa: E402
from .nodes import Node  # noqa: E402
from .pipeline import Connection, ExecuteResult, Pipeline  # noqa: E402
from .stream import FLUSH, StreamResult, StreamSession, StreamSource  # noqa: E402
from . import core, nodes  # noqa: E402,F401

__all__ = [
    "__version__", "RemoteConfig", "RetryPolicy", "Client", "Pipeline", "Node", "Connection", "ExecuteResult",
    "StreamResult", "StreamSession", "StreamSource", "FLUSH",
    "AudioBuffer", "Tensor", "Json", "Binary",
    "RemoteMediaError", "InvalidArgument", "NotFound", "ResourceExhausted", "DeadlineExceeded",
    "Cancelled", "Unauthenticated", "PermissionDenied", "Unavailable", "Unimplemented",
    "Internal", "HealthStubsMissing", "nodes", "core",
]
