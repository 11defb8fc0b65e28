"""client.py - the transport: one gRPC channel per Client, reused by every call.

Client offers each RPC twice: as a coroutine on a grpc.aio channel (execute,
list_node_types, get_version, health_check, watch_health) and as a plain call on a
blocking channel (the *_sync variants), so synchronous code never needs an event loop.
Each kind of channel is opened on first use and then reused; many asyncio tasks may
share it at once. A grpc.aio channel belongs to the event loop it was opened in, so the
client keeps one per loop it is used from (two threads each running a loop share the
blocking channel and have a grpc.aio channel each); a loop's channel is dropped when
the client is closed in that loop, or once the loop itself is closed.

The client tracks its grpc.aio calls in flight (runs, health watches, streaming
sessions), so close() can cancel them: they raise remotemedia.Cancelled ("the client was
closed"), not asyncio.CancelledError, since the tasks running them were not cancelled.

Errors are raised as remotemedia.errors.RemoteMediaError subclasses, chosen by the gRPC
status code, carrying the server's trailing metadata (node id, field, error kind).
ExecutePipeline is retried on UNAVAILABLE and RESOURCE_EXHAUSTED by the channel's service
config (RemoteConfig.retry), also when the server died while running it.
"""
import asyncio
import contextlib
import threading
import weakref
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Generator, Iterator, List,
                    Optional, Tuple, Union)

import grpc
import grpc.aio

from . import _proto
from ._version import __version__
from .config import RemoteConfig, check_timeout
from .errors import (HealthStubsMissing, Internal, closed_client_error, error_from_rpc,
                     too_big_error, undefined_status_error)
from .schema import NodeTypeSchema

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["Client", "client_for", "CLIENT_VERSION"]

CLIENT_VERSION = "remotemedia-python/" + __version__

_pb = _proto.pipeline_service_pb2
_HEALTH = "/grpc.health.v1.Health/"


class _Stubs:
    """The stubs of one channel. The health stub is made from the messages alone
    (grpc.health.v1 is two methods), so only health_pb2 is needed, not a *_pb2_grpc."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.pipeline = _proto.pipeline_service_pb2_grpc.PipelineServiceStub(channel)
        h = _proto.health_pb2
        self.health_check = self.health_watch = None
        if h is not None:
            self.health_check = channel.unary_unary(
                _HEALTH + "Check", request_serializer=h.HealthCheckRequest.SerializeToString,
                response_deserializer=h.HealthCheckResponse.FromString)
            self.health_watch = channel.unary_stream(
                _HEALTH + "Watch", request_serializer=h.HealthCheckRequest.SerializeToString,
                response_deserializer=h.HealthCheckResponse.FromString)


class _Tracked:
    """A grpc.aio call in flight, as close() sees it: the loop it runs on, and what cancels it
    (for a streaming session, the session's own handler). Holds it weakly, as the client
    holds the call: a session dropped without being closed is still garbage, and grpc.aio
    cancels the call of a collected session."""

    __slots__ = ("loop", "_on_close", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_close: Callable[[], Any]) -> None:
        self.loop = loop
        self._on_close: Callable[[], Optional[Callable[[], Any]]]
        if hasattr(on_close, "__self__"):
            self._on_close = weakref.WeakMethod(on_close)
        else:
            self._on_close = lambda: on_close
        self.closed = False  # set by close(): the call's cancellation is the client's

    def on_close(self) -> None:
        fn = self._on_close()
        if fn is not None:
            fn()


def _decoded(message: Any, call: Any, method: str) -> Any:
    """A message grpc.aio read, or Internal when it did not decode: grpcio 1.51's grpc.aio
    logs a deserializer's failure and hands back None (the blocking API raises INTERNAL
    "Exception deserializing response!"). The call is cancelled: nothing after it can be
    trusted."""
    if message is not None:
        return message
    call.cancel()
    raise Internal("the server's answer to %s does not decode as its response message"
                   % method, grpc.StatusCode.INTERNAL, from_server=False)


def _task_cancelled() -> bool:
    """Whether the running task has been asked to cancel (Python 3.11's Task.cancelling();
    before 3.11 this cannot be told, and False is returned)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


class Client:
    """A connection to one remotemedia server (or a load-balanced set of replicas).

    Args:
        remote: a RemoteConfig, or an address string ("host:port"); default RemoteConfig(),
            i.e. $RM_SERVER or localhost:50051.

    Use it as a context manager (`with` or `async with`) or call close() / close_sync()
    to release the channels. Thread-safe; the sync methods may be called from any thread.
    """

    def __init__(self, remote: Union[RemoteConfig, str, None] = None) -> None:
        if remote is None:
            remote = RemoteConfig()  # $RM_SERVER, else localhost:50051
        self.config = remote if isinstance(remote, RemoteConfig) else RemoteConfig(remote)
        self._lock = threading.Lock()
        self._aio: Dict[asyncio.AbstractEventLoop, _Stubs] = {}  # a grpc.aio channel per loop
        self._sync: Optional[_Stubs] = None  # the blocking channel
        # grpc.aio calls in flight, held weakly (see _Tracked)
        self._calls: "weakref.WeakKeyDictionary[Any, _Tracked]" = weakref.WeakKeyDictionary()
        #: How many channels this client has opened (the blocking one, and a grpc.aio one per
        #: event loop it has been used from; again after a close()).
        self.channels_opened = 0

    # -- channels ------------------------------------------------------------------------
    def _open(self, aio: bool) -> _Stubs:
        cfg = self.config
        creds = cfg.channel_credentials()
        opts = cfg.channel_options()
        mod = grpc.aio if aio else grpc
        if creds is None:
            ch = mod.insecure_channel(cfg.address, options=opts)
        else:
            ch = mod.secure_channel(cfg.address, creds, options=opts)
        self.channels_opened += 1
        return _Stubs(ch)

    def _aio_stubs(self) -> _Stubs:
        loop = asyncio.get_running_loop()
        with self._lock:
            stubs = self._aio.get(loop)
            if stubs is None:
                self._forget_closed_loops()
                stubs = self._aio[loop] = self._open(aio=True)
            return stubs

    def _forget_closed_loops(self) -> None:
        """Drops the channels (and calls) of loops that have been closed: such a channel can
        no longer be closed, nor used. self._lock held."""
        for loop in [lp for lp in self._aio if lp.is_closed()]:
            del self._aio[loop]
        for key in [k for k, t in self._calls.items() if t.loop.is_closed()]:
            del self._calls[key]

    def _track(self, call: Any, on_close: Optional[Callable[[], Any]] = None) -> _Tracked:
        """Registers a grpc.aio call in flight on the running loop; close() runs on_close
        (default: call.cancel()). A unary call is untracked when it is done, a streaming one
        when it is collected."""
        t = _Tracked(asyncio.get_running_loop(), on_close or call.cancel)
        with self._lock:
            self._calls[call] = t
        return t

    def _untrack(self, call: Any) -> None:
        with self._lock:
            self._calls.pop(call, None)

    def _sync_stubs(self) -> _Stubs:
        with self._lock:
            if self._sync is None:
                self._sync = self._open(aio=False)
            return self._sync

    def _deadline(self, timeout: Optional[float]) -> Optional[float]:
        """A call's deadline: its own timeout= (inf: none, even when the config has one),
        else the config's."""
        if timeout is not None:
            return check_timeout(timeout, "timeout")
        return check_timeout(self.config.timeout, "RemoteConfig: timeout")

    def _call_kwargs(self, timeout: Optional[float]) -> Dict[str, Any]:
        kw: Dict[str, Any] = {"metadata": self.config.call_metadata(),
                              "timeout": self._deadline(timeout)}
        if self.config.wait_for_ready:
            kw["wait_for_ready"] = True
        return kw

    def _check_size(self, request: Any) -> None:
        """ResourceExhausted (from_server=False, field max_message_bytes) for a request
        larger than gRPC may send: gRPC would refuse it itself, but only once it had
        serialised it (seconds for minutes of audio). ByteSize() is cheap: protobuf keeps
        the sizes."""
        limit = self.config.send_limit()
        size = request.ByteSize()
        if limit is not None and size > limit:
            raise too_big_error(size, limit, "the request",
                                "send long audio in chunks with Pipeline.stream()")

    async def _unary(self, method: Callable[[_Stubs], Any], request: Any,
                     timeout: Optional[float], name: str) -> Any:
        """One grpc.aio unary call of `method` (named `name` in errors)."""
        self._check_size(request)
        stubs = self._aio_stubs()
        call = method(stubs)(request, **self._call_kwargs(timeout))
        with self._in_flight(call):
            return _decoded(await call, call, name)

    @contextlib.contextmanager
    def _in_flight(self, call: Any) -> Iterator[None]:
        """Tracks a grpc.aio call while the block runs (close() cancels it) and raises what
        ends it as the library's errors: a status as error_from_rpc's, a cancel by close()
        as Cancelled."""
        tracked = self._track(call)
        try:
            yield
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e
        except KeyError:
            if not call.done():
                raise
            raise undefined_status_error(call) from None
        except asyncio.CancelledError:
            if tracked.closed and not _task_cancelled():
                raise closed_client_error() from None
            raise
        finally:
            self._untrack(call)

    def _unary_sync(self, method: Callable[[_Stubs], Any], request: Any,
                    timeout: Optional[float]) -> Any:
        self._check_size(request)
        stubs = self._sync_stubs()
        try:
            return method(stubs)(request, **self._call_kwargs(timeout))
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e

    # -- ExecutePipeline -------------------------------------------------------------------
    async def execute(self, request: Any, timeout: Optional[float] = None) -> Any:
        """Sends a pipeline_service_pb2.ExecuteRequest; returns the ExecuteResponse.
        UNAVAILABLE and RESOURCE_EXHAUSTED are retried per RemoteConfig.retry. A request
        above RemoteConfig.max_message_bytes raises ResourceExhausted (from_server=False,
        field "max_message_bytes") without being sent."""
        request.client_version = request.client_version or CLIENT_VERSION
        return await self._unary(lambda s: s.pipeline.ExecutePipeline, request, timeout,
                                 "ExecutePipeline")

    def execute_sync(self, request: Any, timeout: Optional[float] = None) -> Any:
        """execute() without asyncio."""
        request.client_version = request.client_version or CLIENT_VERSION
        return self._unary_sync(lambda s: s.pipeline.ExecutePipeline, request, timeout)

    # -- StreamPipeline --------------------------------------------------------------------
    def _stream_kwargs(self, timeout: Optional[float]) -> Dict[str, Any]:
        # a session's deadline is its own: the config's per-call timeout does not apply
        kw: Dict[str, Any] = {"metadata": self.config.call_metadata(),
                              "timeout": check_timeout(timeout, "timeout")}
        if self.config.wait_for_ready:
            kw["wait_for_ready"] = True
        return kw

    def stream_call(self, timeout: Optional[float] = None,
                    on_close: Optional[Callable[[], Any]] = None) -> Any:
        """A new StreamPipeline call on the grpc.aio channel (a grpc.aio.StreamStreamCall:
        write / read / done_writing); timeout is the whole session's deadline in seconds,
        None = none. Not retried. Pipeline.session() wraps it. close() runs on_close
        (default: cancels the call; a no-op once it has ended). The call is tracked weakly,
        not until it is done: grpc.aio's add_done_callback would keep a call alive that is
        dropped unfinished, which grpc.aio otherwise cancels when it is collected."""
        call = self._aio_stubs().pipeline.StreamPipeline(**self._stream_kwargs(timeout))
        self._track(call, on_close)
        return call

    def stream_sync(self, requests: Iterator[Any],
                    timeout: Optional[float] = None) -> Generator[Any, None, None]:
        """StreamPipeline on the blocking channel: requests are read on a gRPC thread as
        the call can take them; yields the StreamResponses. Errors raise RemoteMediaError
        subclasses."""
        stubs = self._sync_stubs()
        call = stubs.pipeline.StreamPipeline(requests, **self._stream_kwargs(timeout))
        try:
            for resp in call:
                yield resp
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e
        finally:
            call.cancel()  # a no-op once the call has ended; frees the session otherwise

    # -- ValidatePipeline ------------------------------------------------------------------
    async def validate(self, request: Any, timeout: Optional[float] = None) -> Any:
        """Sends an ExecuteRequest to ValidatePipeline, the dry run: returns the
        ValidateResponse (pipeline_name, schedule, predicted_memory_bytes) or raises what
        execute() would for the same request. Nothing runs on the server."""
        request.client_version = request.client_version or CLIENT_VERSION
        return await self._unary(lambda s: s.pipeline.ValidatePipeline, request, timeout,
                                 "ValidatePipeline")

    def validate_sync(self, request: Any, timeout: Optional[float] = None) -> Any:
        """validate() without asyncio."""
        request.client_version = request.client_version or CLIENT_VERSION
        return self._unary_sync(lambda s: s.pipeline.ValidatePipeline, request, timeout)

    # -- ListNodeTypes ---------------------------------------------------------------------
    async def list_node_types(self, timeout: Optional[float] = None) -> List[NodeTypeSchema]:
        """Every node type the server runs, as NodeTypeSchema (name, description, params
        with types/ranges/defaults, input and output ports)."""
        resp = await self._unary(lambda s: s.pipeline.ListNodeTypes,
                                 _pb.ListNodeTypesRequest(), timeout, "ListNodeTypes")
        return [NodeTypeSchema.from_proto(t) for t in resp.node_types]

    def list_node_types_sync(self, timeout: Optional[float] = None) -> List[NodeTypeSchema]:
        """list_node_types() without asyncio."""
        resp = self._unary_sync(lambda s: s.pipeline.ListNodeTypes,
                                _pb.ListNodeTypesRequest(), timeout)
        return [NodeTypeSchema.from_proto(t) for t in resp.node_types]

    # -- GetVersion ------------------------------------------------------------------------
    @staticmethod
    def _version_dict(r: Any) -> Dict[str, Any]:
        return {"protocol_version": r.protocol_version, "server_version": r.server_version,
                "grpc_core_version": r.grpc_core_version, "services": list(r.services)}

    async def get_version(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """{"protocol_version", "server_version", "grpc_core_version", "services"}."""
        r = await self._unary(lambda s: s.pipeline.GetVersion, _pb.GetVersionRequest(), timeout,
                              "GetVersion")
        return self._version_dict(r)

    def get_version_sync(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """get_version() without asyncio."""
        r = self._unary_sync(lambda s: s.pipeline.GetVersion, _pb.GetVersionRequest(), timeout)
        return self._version_dict(r)

    # -- grpc.health.v1 --------------------------------------------------------------------
    @staticmethod
    def _health_request(service: str) -> Any:
        if _proto.health_pb2 is None:
            raise HealthStubsMissing(
                "remotemedia: the grpc.health.v1 messages are not importable (%s); this "
                "installation is incomplete: reinstall the wheel the build makes"
                % _proto.HEALTH_IMPORT_ERROR)
        return _proto.health_pb2.HealthCheckRequest(service=service)

    @staticmethod
    def _status_name(resp: Any) -> str:
        """The serving status's name; "UNKNOWN" for a number the enum does not define (as
        the C client reads it)."""
        assert _proto.health_pb2 is not None
        states = _proto.health_pb2.HealthCheckResponse.ServingStatus
        if resp.status not in states.values():
            return "UNKNOWN"
        return str(states.Name(resp.status))

    async def health_check(self, service: str = "", timeout: Optional[float] = None) -> str:
        """The serving status of `service` ("" = the whole server): "SERVING",
        "NOT_SERVING" (e.g. while draining), "UNKNOWN". An unknown service raises NotFound.
        HealthStubsMissing (an ImportError) when the installation lacks the messages."""
        req = self._health_request(service)
        resp = await self._unary(lambda s: s.health_check, req, timeout, "Health/Check")
        return self._status_name(resp)

    def health_check_sync(self, service: str = "", timeout: Optional[float] = None) -> str:
        """health_check() without asyncio."""
        req = self._health_request(service)
        return self._status_name(self._unary_sync(lambda s: s.health_check, req, timeout))

    async def watch_health(self, service: str = "",
                           timeout: Optional[float] = None) -> AsyncIterator[str]:
        """Async iterator of serving-status names: the current one, then every change."""
        req = self._health_request(service)
        stubs = self._aio_stubs()
        assert stubs.health_watch is not None
        call = stubs.health_watch(req, **self._call_kwargs(timeout))
        try:
            with self._in_flight(call):
                async for resp in call:
                    yield self._status_name(_decoded(resp, call, "Health/Watch"))
        finally:
            call.cancel()

    # -- lifetime --------------------------------------------------------------------------
    def _take(self, loops: Callable[[asyncio.AbstractEventLoop], bool]
              ) -> Tuple[Optional[_Stubs], List[Tuple[asyncio.AbstractEventLoop, _Stubs]],
                         List[_Tracked]]:
        """Removes the blocking channel, the grpc.aio channels of the loops `loops` picks
        and their calls in flight (each marked closed); returns them. Channels of closed
        loops are dropped."""
        with self._lock:
            sync, self._sync = self._sync, None
            self._forget_closed_loops()
            aio = [(lp, self._aio.pop(lp)) for lp in list(self._aio) if loops(lp)]
            calls = [self._calls.pop(k) for k, t in list(self._calls.items()) if loops(t.loop)]
        for t in calls:
            t.closed = True
        return sync, aio, calls

    async def close(self) -> None:
        """Closes the blocking channel and this event loop's grpc.aio channel. Calls in
        flight on them are cancelled: runs, health watches and open streaming sessions
        raise remotemedia.Cancelled ("the client was closed"), blocking calls Cancelled as
        well. A channel another loop (another thread) is using is left to close() in that
        loop. The client stays usable: a later call opens a new channel."""
        loop = asyncio.get_running_loop()
        sync, aio, calls = self._take(lambda lp: lp is loop)
        for t in calls:
            t.on_close()
        if sync is not None:
            sync.channel.close()
        for _, stubs in aio:
            await stubs.channel.close()

    def close_sync(self) -> None:
        """Closes the blocking channel, and the grpc.aio channels of loops that are not
        running (cancelling their calls as close() does); a channel of a running loop is
        left to close() in that loop. From asyncio code prefer `await close()`."""
        sync, aio, calls = self._take(lambda lp: not lp.is_running())
        for t in calls:
            t.on_close()
        if sync is not None:
            sync.channel.close()
        for lp, stubs in aio:
            lp.run_until_complete(stubs.channel.close())

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close_sync()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "Client(%r)" % self.config.address


def client_for(remote: Union["Client", "Pipeline", RemoteConfig, str, None]
               ) -> Tuple["Client", bool]:
    """(client, owned) for a Client, Pipeline, RemoteConfig, address string or None (the
    default RemoteConfig()); owned is True when a new Client was made here (the caller
    closes it)."""
    if isinstance(remote, Client):
        return remote, False
    client = getattr(remote, "client", None)
    if isinstance(client, Client):
        return client, False
    if remote is None or isinstance(remote, (RemoteConfig, str)):
        return Client(remote), True
    raise TypeError("expected a RemoteConfig, an address, a Client or a Pipeline, not %s"
                    % type(remote).__name__)
