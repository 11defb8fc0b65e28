"""core.py - the reference SDK's module path, so its code runs as written:
`from remotemedia.core import Pipeline`. The same objects as `remotemedia` itself."""
from .client import Client
from .config import RemoteConfig, RetryPolicy
from .errors import RemoteMediaError
from .nodes import Node
from .pipeline import ExecuteResult, Pipeline

__all__ = ["Pipeline", "Node", "Client", "RemoteConfig", "RetryPolicy", "ExecuteResult",
           "RemoteMediaError"]
