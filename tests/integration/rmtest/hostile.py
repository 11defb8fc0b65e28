"""A hostile stand-in for remotemedia-server, for testing the clients: the real service's
methods (remotemedia.v1.PipelineService and grpc.health.v1.Health) on 127.0.0.1 with an
ephemeral port, each answered by whatever the test scripts: junk bytes, inconsistent
messages, odd statuses and trailers, silence.

    with HostileServer() as srv:
        srv.on("ExecutePipeline", lambda req, ctx: b"\\xff\\xff")     # does not parse
        ... point a client at srv.address ...

A handler gets (request, grpc.ServicerContext) for unary and server-streaming methods and
(request iterator, context) for StreamPipeline. It returns the response: a message, or
bytes sent as they are; a streaming handler yields them. Requests are parsed with the real
message types (the clients under test send well-formed ones). A method without a handler
answers UNIMPLEMENTED.

Helpers: srv.hang(ctx) blocks until the client gives up (cancel, deadline) or the server
stops, never longer; status(code, ...) ends a call with any status code, also one gRPC does
not define (e.g. 99); srv.calls counts the calls per method.
"""
import threading
from concurrent import futures

import grpc
from grpc import _common

from remotemedia.v1 import data_pb2
from remotemedia.v1 import pipeline_service_pb2 as pb

try:
    from grpc_health.v1 import health_pb2
except ImportError:  # pragma: no cover - the build's python_gen carries it
    health_pb2 = None

SERVICE = "remotemedia.v1.PipelineService"
HEALTH = "grpc.health.v1.Health"

# method -> (kind, request type); kind: "unary", "server_stream" or "stream"
METHODS = {
    "/%s/ExecutePipeline" % SERVICE: ("unary", pb.ExecuteRequest),
    "/%s/ValidatePipeline" % SERVICE: ("unary", pb.ExecuteRequest),
    "/%s/ListNodeTypes" % SERVICE: ("unary", pb.ListNodeTypesRequest),
    "/%s/GetVersion" % SERVICE: ("unary", pb.GetVersionRequest),
    "/%s/GetStatistics" % SERVICE: ("unary", pb.GetStatisticsRequest),
    "/%s/StreamPipeline" % SERVICE: ("stream", pb.StreamRequest),
}
if health_pb2 is not None:
    METHODS["/%s/Check" % HEALTH] = ("unary", health_pb2.HealthCheckRequest)
    METHODS["/%s/Watch" % HEALTH] = ("server_stream", health_pb2.HealthCheckRequest)


class _RawCode:
    """A status code gRPC's Python API has no name for: the server sends its number."""

    def __init__(self, number):
        self.value = (number, "code %d" % number)
        self.name = "CODE_%d" % number


def raw_code(number):
    """A code object for context.abort/set_code that goes on the wire as `number` (e.g. 99,
    which no gRPC status is). grpcio maps its codes through one table; this adds to it."""
    code = _RawCode(number)
    _common.STATUS_CODE_TO_CYGRPC_STATUS_CODE[code] = number
    return code


def _serialize(msg):
    return msg if isinstance(msg, (bytes, bytearray)) else msg.SerializeToString()


class HostileServer:
    def __init__(self, max_workers=16):
        self.handlers = {}
        self.calls = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._max_workers = max_workers
        self.server = None
        self.port = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def on(self, method, fn):
        """Answers `method` ("ExecutePipeline", "Check", ...) with fn from now on."""
        full = [m for m in METHODS if m.rsplit("/", 1)[1] == method]
        if len(full) != 1:
            raise KeyError("no method %r" % method)
        self.handlers[full[0]] = fn
        return self

    def hang(self, ctx, limit_s=60.0):
        """Blocks until the call is cancelled (the client's deadline or cancel), the server
        stops, or limit_s passes (a safety net, never reached by a test that passes)."""
        done = threading.Event()
        ctx.add_callback(done.set)
        for _ in range(int(limit_s * 20)):
            if done.is_set() or self._stop.is_set():
                return
            done.wait(0.05)

    # -- grpc plumbing ---------------------------------------------------------------------
    def _handler(self, details):
        spec = METHODS.get(details.method)
        fn = self.handlers.get(details.method)
        if spec is None or fn is None:
            return None
        kind, req_type = spec

        def counted(*args):
            with self._lock:
                name = details.method.rsplit("/", 1)[1]
                self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args)

        if kind == "unary":
            return grpc.unary_unary_rpc_method_handler(
                counted, request_deserializer=req_type.FromString, response_serializer=_serialize)
        if kind == "server_stream":
            return grpc.unary_stream_rpc_method_handler(
                counted, request_deserializer=req_type.FromString, response_serializer=_serialize)
        return grpc.stream_stream_rpc_method_handler(
            counted, request_deserializer=req_type.FromString, response_serializer=_serialize)

    def start(self):
        outer = self

        class Generic(grpc.GenericRpcHandler):
            def service(self, handler_call_details):
                return outer._handler(handler_call_details)

        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers),
            handlers=[Generic()],
            options=[("grpc.max_send_message_length", -1),
                     ("grpc.max_receive_message_length", -1),
                     ("grpc.so_reuseport", 0)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self

    def stop(self):
        self._stop.set()
        if self.server is not None:
            # grpcio's stop can wedge on a call it failed to answer (e.g. trailers gRPC
            # refuses): a daemon thread stops it, and the test goes on after 5 s at most
            stopper = threading.Thread(target=lambda: self.server.stop(grace=0).wait(5),
                                       daemon=True)
            stopper.start()
            stopper.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def status(ctx, code, details="", trailers=()):
    """Ends the call with `code` (a grpc.StatusCode, or an int for any number), details (str,
    or bytes sent as they are, e.g. not UTF-8) and trailing metadata [(key, value)]."""
    if isinstance(code, int):
        code = raw_code(code)
    if trailers:
        ctx.set_trailing_metadata(tuple(trailers))
    ctx.set_code(code)
    ctx.set_details(details)


# -- message builders ----------------------------------------------------------------------

def audio_buffer(samples=b"\0" * 8, sample_rate=48000, channels=1, fmt=1):
    b = data_pb2.DataBuffer()
    b.audio.samples = samples
    b.audio.sample_rate = sample_rate
    b.audio.channels = channels
    b.audio.format = fmt
    return b


def text_buffer(t):
    """A DataBuffer holding text t."""
    return data_pb2.DataBuffer(text=data_pb2.TextBuffer(text=t))


def tensor_buffer(data, shape, dtype=1):
    b = data_pb2.DataBuffer()
    b.tensor.data = data
    b.tensor.shape.extend(shape)
    b.tensor.dtype = dtype
    return b


def execute_response(outputs, metrics=None, name="hostile"):
    """An ExecuteResponse with outputs {key: [DataBuffer]} (node id = the key's first part)."""
    r = pb.ExecuteResponse(pipeline_name=name)
    for key, items in outputs.items():
        out = r.outputs[key]
        out.node_id = key.split(".", 1)[0]
        for it in items:
            out.items.add().CopyFrom(it)
    if metrics is not None:
        r.metrics.CopyFrom(metrics)
    return r
