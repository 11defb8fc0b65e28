"""remotemedia - Python client of the remotemedia pipeline execution server.

    from remotemedia import Pipeline, RemoteConfig
    from remotemedia.nodes import Gain

    pipeline = Pipeline(remote=RemoteConfig("localhost:50051"), enable_metrics=True)
    pipeline.add_node(Gain(db=-6))
    out = pipeline.run_sync(samples, sample_rate=48000)   # or: await pipeline.run(...)

The generated gRPC stubs live in a separate directory (<build>/python_gen, made by the
build); this package extends its own __path__ so that remotemedia.v1 is found there:
PYTHONPATH=client/python:<build>/python_gen. See docs/python-client.md.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from ._version import __version__  # noqa: E402
from .config import RemoteConfig  # noqa: E402
from .errors import (  # noqa: E402
    Cancelled, DeadlineExceeded, Internal, InvalidArgument, NotFound, PermissionDenied,
    RemoteMediaError, ResourceExhausted, Unauthenticated, Unavailable, Unimplemented)
from .data import AudioBuffer, Binary, Json, Tensor  # noqa: E402
from .client import Client  # noqa: E402
from .nodes import Node  # noqa: E402
from .pipeline import Connection, ExecuteResult, Pipeline  # noqa: E402
from . import nodes  # noqa: E402,F401

__all__ = [
    "__version__", "RemoteConfig", "Client", "Pipeline", "Node", "Connection", "ExecuteResult",
    "AudioBuffer", "Tensor", "Json", "Binary",
    "RemoteMediaError", "InvalidArgument", "NotFound", "ResourceExhausted", "DeadlineExceeded",
    "Cancelled", "Unauthenticated", "PermissionDenied", "Unavailable", "Unimplemented",
    "Internal", "nodes",
]
