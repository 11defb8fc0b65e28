"""errors.py - typed exceptions for failed calls, built from gRPC statuses and the server's
error details: the standard grpc-status-details-bin (a google.rpc.Status holding ErrorInfo
and BadRequest), or from an older server the rm-error-kind / rm-failing-node / rm-field
trailers.

Every error the client raises for a call is a RemoteMediaError (or a subclass chosen by
the gRPC status code), so callers can catch one type and still branch on the precise
case:

    try:
        await pipeline.run(audio, sample_rate=48000)
    except remotemedia.InvalidArgument as e:
        print(e.node_id, e.field, e.message)
"""
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

import grpc

__all__ = [
    "HealthStubsMissing", "RemoteMediaError", "InvalidArgument", "NotFound", "ResourceExhausted", "DeadlineExceeded",
    "Cancelled", "Unauthenticated", "PermissionDenied", "Unavailable", "Unimplemented",
    "Internal", "error_from_rpc",
]

TRAILER_KIND = "rm-error-kind"
TRAILER_NODE = "rm-failing-node"
TRAILER_FIELD = "rm-field"
TRAILER_SEQUENCE = "rm-sequence"
TRAILER_FLUSHED = "rm-flushed"
TRAILER_DETAILS = "grpc-status-details-bin"


class RemoteMediaError(Exception):
    """A call failed.

    Attributes:
        code: the grpc.StatusCode (INVALID_ARGUMENT for a parameter rejected client-side).
        message: the human sentence (the gRPC status details).
        node_id: the failing node (trailer rm-failing-node), or None.
        field: the offending parameter key or input field (trailer rm-field), or None.
        kind: the server's stable error name (trailer rm-error-kind, e.g. "invalid_params",
            "unknown_node_type", "limit_exceeded"), or None.
        trailers: every trailing metadata entry, as a dict of str to str (binary ones
            decoded as UTF-8 with replacement: read details from the attributes below).
        from_server: False when the client itself rejected the request before sending it.
        reason, domain: google.rpc.ErrorInfo's ("INVALID_PARAMS", "remotemedia.v1"), or None
            when the status carried no standard details.
        metadata: ErrorInfo's metadata ({"node": ..., "field": ..., "request_id": ...}).
        request_id: the x-request-id the call sent, as the server echoed it, or None.
        field_violations: google.rpc.BadRequest's [(field path, description)], e.g.
            [("manifest.nodes[g].params.db", "node 'g' param 'db': ...")].
    """

    def __init__(self, message: str, code: Any = grpc.StatusCode.UNKNOWN,
                 node_id: Optional[str] = None, field: Optional[str] = None,
                 kind: Optional[str] = None, trailers: Optional[Mapping[str, str]] = None,
                 from_server: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.node_id = node_id or None
        self.field = field or None
        self.kind = kind or None
        self.trailers: Dict[str, str] = dict(trailers or {})
        self.from_server = from_server
        self.reason: Optional[str] = None
        self.domain: Optional[str] = None
        self.metadata: Dict[str, str] = {}
        self.field_violations: List[Tuple[str, str]] = []

    @property
    def request_id(self) -> Optional[str]:
        return self.metadata.get("request_id")

    @property
    def sequence(self) -> Optional[int]:
        """The failing chunk's sequence number in a streaming session (ErrorInfo metadata
        "sequence", else the rm-sequence trailer), or None. For a failed flush (.flushed),
        the sequence its result would have carried: the last chunk's before it (None when
        there was none)."""
        v = self.metadata.get("sequence") or self.trailers.get(TRAILER_SEQUENCE)
        # a sequence number is a uint64 in decimal: anything else (negative, a float, a
        # number past 2^64, text) is not one, whatever int() would make of it
        if not v or not v.isascii() or not v.isdigit() or len(v) > 20 or int(v) >= 1 << 64:
            return None
        return int(v)

    @property
    def flushed(self) -> bool:
        """True when a flush (flush(), close, the end of stream()) failed in a streaming
        session rather than a chunk (ErrorInfo metadata "flushed", else the rm-flushed
        trailer): e.g. a node that holds the whole stream emitting it above a limit."""
        return (self.metadata.get("flushed") or self.trailers.get(TRAILER_FLUSHED)) == "true"

    def __str__(self) -> str:
        where = []
        if self.node_id:
            where.append("node=%s" % self.node_id)
        if self.field:
            where.append("field=%s" % self.field)
        if self.kind:
            where.append("kind=%s" % self.kind)
        suffix = " (%s)" % ", ".join(where) if where else ""
        return "%s: %s%s" % (self.code.name, self.message, suffix)

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self.code.name, self.node_id, self.field,
                           self.kind, self.trailers, self.from_server,
                           (self.reason, self.domain, self.metadata, self.field_violations)))


def _rebuild(cls: Type[RemoteMediaError], message: str, code_name: str, node_id: Optional[str],
             field: Optional[str], kind: Optional[str], trailers: Dict[str, str],
             from_server: bool, details: Any = (None, None, {}, [])) -> RemoteMediaError:
    e = cls(message, grpc.StatusCode[code_name], node_id, field, kind, trailers, from_server)
    e.reason, e.domain, e.metadata, e.field_violations = details
    return e


class HealthStubsMissing(ImportError):
    """The installation lacks the grpc.health.v1 messages (a packaging fault on this side,
    never a server status): reinstall the wheel the build makes."""


class InvalidArgument(RemoteMediaError):
    """A bad manifest, parameter or input (the message names the node and the field)."""


class NotFound(RemoteMediaError):
    """An unknown node type (or an unknown health service)."""


class ResourceExhausted(RemoteMediaError):
    """A server limit was exceeded (nodes, samples, bytes, concurrency, memory)."""


def too_big_error(size: int, limit: int, what: str, hint: str) -> ResourceExhausted:
    """What a message above RemoteConfig.max_message_bytes raises before it is sent (gRPC
    would refuse it itself, once serialised): `what` names it ("the request", "chunk 3"),
    `hint` says what to do instead."""
    return ResourceExhausted("%s is %d bytes, above RemoteConfig.max_message_bytes (%d): %s"
                             % (what, size, limit, hint), grpc.StatusCode.RESOURCE_EXHAUSTED,
                             field="max_message_bytes", from_server=False)


class DeadlineExceeded(RemoteMediaError):
    """The call's deadline (timeout=) passed before the pipeline finished."""


class Cancelled(RemoteMediaError):
    """The call was cancelled."""


def closed_client_error() -> Cancelled:
    """What a call or session of a Client that was closed under it raises."""
    return Cancelled("the client was closed", grpc.StatusCode.CANCELLED, from_server=False)


class Unauthenticated(RemoteMediaError):
    """The server requires a bearer token and none, or a wrong one, was sent."""


class PermissionDenied(RemoteMediaError):
    """The caller is authenticated but not allowed."""


class Unavailable(RemoteMediaError):
    """The server cannot be reached or is draining; retrying elsewhere may succeed."""


class Unimplemented(RemoteMediaError):
    """The server does not implement the method."""


class Internal(RemoteMediaError):
    """A bug on the server, or a response the client could not make sense of."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
}


def error_class(code: Any) -> Type[RemoteMediaError]:
    """The exception class for a grpc.StatusCode (RemoteMediaError for the others)."""
    return _BY_CODE.get(code, RemoteMediaError)


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _read_details(e: RemoteMediaError, raw: bytes) -> None:
    """The google.rpc.Status in grpc-status-details-bin into e (ignored when it does not
    decode or names another code, as grpcio-status does)."""
    from . import _proto
    if _proto.rpc_status_pb2 is None or _proto.rpc_error_details_pb2 is None:
        return
    try:
        st = _proto.rpc_status_pb2.Status.FromString(raw)
    except Exception:  # a malformed trailer: keep what the other trailers say
        return
    if st.code != e.code.value[0]:
        return
    for any_ in st.details:
        # each detail on its own: one that does not decode (protobuf's DecodeError) is
        # skipped, as a malformed trailer is, and the others still count
        try:
            if any_.Is(_proto.rpc_error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = _proto.rpc_error_details_pb2.ErrorInfo()
                any_.Unpack(info)
                e.reason, e.domain, e.metadata = info.reason, info.domain, dict(info.metadata)
                e.kind = info.reason.lower() or e.kind
                e.node_id = info.metadata.get("node") or e.node_id
                e.field = info.metadata.get("field") or e.field
            elif any_.Is(_proto.rpc_error_details_pb2.BadRequest.DESCRIPTOR):
                bad = _proto.rpc_error_details_pb2.BadRequest()
                any_.Unpack(bad)
                e.field_violations = [(v.field, v.description) for v in bad.field_violations]
        except Exception:
            continue


def undefined_status_error(call: Any) -> RemoteMediaError:
    """The error of a grpc.aio call that ended with a status code outside gRPC's 0..16 (e.g.
    99). grpcio 1.51's grpc.aio raises KeyError for such a code where the blocking API says
    UNKNOWN; this is UNKNOWN too, naming the number and the server's message."""
    number: Any = "?"
    details = ""
    trailers: Dict[str, str] = {}
    status: Any = getattr(getattr(call, "_cython_call", None), "_status", None)
    try:
        number, details = status.code(), status.details() or ""
        trailers = {_text(k): _text(v) for k, v in status.trailing_metadata() or ()}
    except Exception:  # grpcio's internals changed: the number is all that is lost
        pass
    return RemoteMediaError("the server ended the call with status code %s, which gRPC does "
                            "not define%s" % (number, ": " + _text(details) if details else ""),
                            grpc.StatusCode.UNKNOWN, node_id=trailers.get(TRAILER_NODE),
                            field=trailers.get(TRAILER_FIELD), kind=trailers.get(TRAILER_KIND),
                            trailers=trailers)


def error_from_rpc(err: Any) -> RemoteMediaError:
    """The RemoteMediaError subclass for a grpc.RpcError (sync or grpc.aio)."""
    code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
    details = err.details() if callable(getattr(err, "details", None)) else str(err)
    md = err.trailing_metadata() if callable(getattr(err, "trailing_metadata", None)) else None
    trailers = {}
    raw_details = None
    for item in md or ():
        key, value = item[0], item[1]
        trailers[_text(key)] = _text(value)
        if _text(key) == TRAILER_DETAILS and isinstance(value, bytes):
            raw_details = value
    e = error_class(code)(details or code.name, code,
                          node_id=trailers.get(TRAILER_NODE), field=trailers.get(TRAILER_FIELD),
                          kind=trailers.get(TRAILER_KIND), trailers=trailers)
    if raw_details is not None:
        _read_details(e, raw_details)
    return e
