"""stream.py - StreamPipeline sessions: one pipeline whose node state (resampler history,
VAD's open segment, codec state) lives from the first chunk to the last.

    async for result in pipeline.stream(chunks, sample_rate=48000):   # async or sync iterable
        print(result.sequence, result.processing_ns, result.outputs)
    pipeline.get_metrics()                  # the final metrics (enable_metrics=True)

    async with pipeline.session() as s:     # the explicit form
        await s.send(chunk, sample_rate=48000)
        result = await s.receive()          # exactly one result per chunk
        await s.flush()                     # nodes emit what they hold: one flushed result
        tail = await s.close()              # the results not received yet, the last flushed

    for result in pipeline.stream_sync(chunks, sample_rate=48000):  # without asyncio
        ...

The server answers every chunk with exactly one StreamResult (possibly without outputs),
FLUSH with one result whose flushed is True, and CLOSE with a flushed result, the final
metrics (when enabled) and status OK. An error ends the whole session with a gRPC status,
raised as the same RemoteMediaError subclasses as run() (node_id, field, kind, reason;
.sequence is the failing chunk's sequence number). A session the server closes with status
OK before the client closed it (a draining server does) is raised as Unavailable.
"""
import asyncio
import collections.abc
import numbers
import weakref
from typing import (Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Deque, Dict,
                    Iterable, Iterator, List, Optional, Sequence, Union)

import grpc
import grpc.aio

from . import _proto
from .data import AudioBuffer, convert, decode_outputs, to_proto, unused_rate
from .errors import (Cancelled, Internal, RemoteMediaError, Unavailable, closed_client_error,
                     error_from_rpc, too_big_error, undefined_status_error)

__all__ = ["StreamResult", "StreamSession", "StreamSource", "Chunks", "FLUSH"]

#: What stream() reads chunks from: a sync or async iterable of chunks (numpy arrays with
#: sample_rate=, AudioBuffers, or any value run() accepts), or of FLUSH markers.
Chunks = Union[Iterable[Any], AsyncIterable[Any]]


class _Flush:
    def __repr__(self) -> str:
        return "FLUSH"


#: Put FLUSH among the chunks given to stream() / stream_sync() to flush the nodes there
#: (one flushed result answers it); the stream's end closes the session (which flushes).
FLUSH = _Flush()


class StreamSource:
    """A source node of the session, from the server's ready message."""

    def __init__(self, node_id: str, node_type: str, kinds: List[str]) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.kinds = kinds  # the data kinds its input port accepts: "audio", "json", ...

    def __repr__(self) -> str:
        return "StreamSource(%r, %r, %r)" % (self.node_id, self.node_type, self.kinds)


class StreamResult:
    """One answer of the session.

    Attributes:
        sequence: the data chunk's sequence number it answers (for a flushed result, the
            last chunk's before the flush; None when no chunk came before it, which a flush
            after chunk 0 is not).
        flushed: True for the answer to a flush or to close.
        outputs: {key: [values]} keyed like ExecuteResult.outputs (possibly empty: a node
            may emit nothing for a chunk).
        processing_ns: server time spent on this chunk.
        response: the raw pipeline_service_pb2.StreamResult.
    """

    __slots__ = ("sequence", "flushed", "outputs", "processing_ns", "response")

    def __init__(self, response: Any) -> None:
        self.response = response
        self.flushed: bool = bool(response.flushed)
        # a chunk's result always answers one (a server before the field had presence sent
        # none for chunk 0); a flush's has one only after a chunk
        self.sequence: Optional[int] = (int(response.sequence)
                                        if not self.flushed or response.HasField("sequence")
                                        else None)
        self.processing_ns: int = int(response.processing_ns)
        self.outputs: Dict[str, List[Any]] = decode_outputs(response.outputs)

    def audio(self, key: Optional[str] = None) -> Optional[AudioBuffer]:
        """Output `key`'s audio items joined into one AudioBuffer, or None when the result
        holds no item for it. With key None the result must have at most one output.
        Raises ValueError when the items are not audio of one rate, channels and format."""
        from .pipeline import _join_audio
        if key is None:
            if len(self.outputs) > 1:
                raise ValueError("the result holds %d outputs (%s): name one"
                                 % (len(self.outputs), ", ".join(self.outputs)))
            if not self.outputs:
                return None
            key = next(iter(self.outputs))
        items = self.outputs.get(key, [])
        if not items:
            return None
        joined = _join_audio(items)
        if joined is None:
            raise ValueError("output %r is not audio of one rate, channel count and format" % key)
        return joined

    def __repr__(self) -> str:
        return "StreamResult(sequence=%s%s, outputs=%s, processing_ns=%d)" % (
            self.sequence, ", flushed" if self.flushed else "",
            {k: len(v) for k, v in self.outputs.items()}, self.processing_ns)


def init_request(manifest: Any, enable_metrics: bool, client_version: str,
                 output_nodes: Sequence[str] = (), limits: Any = None,
                 metrics_every_chunks: int = 0, metrics_every_ms: int = 0) -> Any:
    """The first StreamRequest: init."""
    pb = _proto.pipeline_service_pb2
    init = pb.StreamInit(manifest=manifest, enable_metrics=enable_metrics,
                         client_version=client_version, output_nodes=list(output_nodes),
                         metrics_every_chunks=metrics_every_chunks,
                         metrics_every_ms=metrics_every_ms)
    if limits is not None:
        init.limits.CopyFrom(limits)
    return pb.StreamRequest(init=init)


def data_request(value: Any, sample_rate: Optional[int], node_id: str, sequence: int) -> Any:
    pb = _proto.pipeline_service_pb2
    return pb.StreamRequest(data=pb.StreamData(node_id=node_id, buffer=to_proto(value, sample_rate),
                                               sequence=sequence))


_MAX_SEQUENCE = 2**64 - 1  # StreamData.sequence is a uint64


def _sequence(value: Any) -> int:
    """A chunk's sequence number as an int; ValueError naming sequence and its range for a
    value that is not an integer (bool is not one; protobuf would truncate a float) in
    0..2**64-1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not 0 <= int(value) <= _MAX_SEQUENCE:
        raise ValueError("sequence must be an integer 0..%d, not %r" % (_MAX_SEQUENCE, value))
    return int(value)


def check_chunk_size(request: Any, send_limit: Optional[int]) -> None:
    """ResourceExhausted (from_server=False, field max_message_bytes) for a data request
    above send_limit (RemoteConfig.send_limit(); None: none), before it is sent."""
    if send_limit is not None and request.ByteSize() > send_limit:
        raise too_big_error(request.ByteSize(), send_limit,
                            "chunk %d" % request.data.sequence, "send smaller chunks")


class StreamRate:
    """One sample_rate= for several values (run(inputs=...)'s inputs, stream()'s chunks): it
    serves every value that takes a rate (bare arrays, lists of numbers), values that take none
    (JSON, text, binary, a Tensor) pass, and it must serve at least one. A chunk whose own
    rate contradicts it raises at that chunk; a rate no chunk took raises from check(), when
    the chunks have ended (before CLOSE: the session is cancelled)."""

    def __init__(self, sample_rate: Optional[int]) -> None:
        self.sample_rate = sample_rate
        self.chunks = 0
        self.used = False
        self.first = ""  # the first chunk's unused_rate message, for a one-chunk stream

    def convert(self, chunk: Any) -> Any:
        """chunk's DataBuffer (TypeError/ValueError as to_proto raises, but for an unused
        rate)."""
        buf, took = convert(chunk, self.sample_rate)
        self.chunks += 1
        if self.chunks == 1 and self.sample_rate is not None and not took:
            self.first = unused_rate(self.sample_rate, chunk, buf)
        self.used = self.used or took
        return buf

    def check(self, which: Optional[str] = None) -> None:
        """ValueError when a rate was given and none of the chunks sent took it; `which` names
        them in the message (default: "the stream's N chunks")."""
        if self.sample_rate is None or self.used or self.chunks == 0:
            return
        if self.chunks == 1:
            raise ValueError(self.first)
        raise ValueError("sample_rate=%r was given, but none of %s is audio that takes it"
                         % (self.sample_rate, which or "the stream's %d chunks" % self.chunks))


def control_request(close: bool) -> Any:
    pb = _proto.pipeline_service_pb2
    kind = pb.StreamControl.KIND_CLOSE if close else pb.StreamControl.KIND_FLUSH
    return pb.StreamRequest(control=pb.StreamControl(kind=kind))


def sources_of(ready: Any) -> List[StreamSource]:
    kind_name = _proto.pipeline_service_pb2.DataKind.Name
    out = []
    for s in ready.sources:
        kinds = []
        for k in s.kinds:
            name = kind_name(k)
            kinds.append(name[len("DATA_KIND_"):].lower() if name.startswith("DATA_KIND_") else name)
        out.append(StreamSource(s.node_id, s.node_type, kinds))
    return out


class StreamSession:
    """An open StreamPipeline call (made by Pipeline.session(); use `async with`).

    Attributes:
        session_id, pipeline_name, sources: from the server's ready message.
        metrics: the latest metrics (periodic, then the final ones after close) as the
            seed's dict, or None.

    One task may send while another receives. The call's messages are read one read at a
    time, shared by receive() and by a send() that is waiting: while a send(), flush() or
    close() waits for gRPC flow control, the messages that arrive are read into the session
    (receive() returns them in order). This is how a send learns that the server has ended
    the session: grpc.aio reports a call's end only after every message before it has been
    read, and until then a write on it never completes. Pipeline.stream(), whose reader
    task always comes back to receive(), turns this off (_reads_ahead) to keep gRPC's
    back-pressure from its consumer to its chunks: its sends wait for the end the reader
    meets.
    """

    def __init__(self, open_call: Callable[[Callable[[], None]], Any], init: Any,
                 on_metrics: Optional[Callable[[Optional[Dict[str, Any]]], None]] = None,
                 send_limit: Optional[int] = None) -> None:
        # open_call makes the grpc.aio call; it is given what to run when the client is closed
        self._open_call = open_call
        self._send_limit = send_limit  # the largest message gRPC sends (None: no limit)
        self._init = init
        self._call: Any = None
        self._on_metrics = on_metrics
        self._sequence = 0
        self._closed_sending = False
        self._sent = 0  # data chunks written
        self._answered = 0  # results read for data chunks (a flush's not counted)
        self._reading: Optional["asyncio.Task[None]"] = None  # the one read in progress
        self._ahead: Deque[Any] = collections.deque()  # messages read, not received yet
        self._over = False  # the call's end has been read, or the session was cancelled
        self._error: Optional[BaseException] = None  # what ended it (None: a normal end)
        self._told = False  # _error has been raised, or the caller cancelled the session
        self._ended_waiter: Optional["asyncio.Future[None]"] = None  # done once _over
        self._reads_ahead = True  # a waiting write reads ahead (see the class)
        self.session_id = ""
        self.pipeline_name = ""
        self.sources: List[StreamSource] = []
        self.metrics: Optional[Dict[str, Any]] = None

    async def open(self) -> "StreamSession":
        """Starts the call: sends init and waits for ready (errors: a bad manifest is
        InvalidArgument, too many sessions ResourceExhausted, ...). `async with` does this.
        When it raises or is cancelled, the call is cancelled."""
        if self._call is not None:
            return self
        self._call = self._open_call(self._client_closed)
        # a session dropped without being closed cancels its call (the server frees it at
        # once), as grpc.aio does for a call collected: a pending read holds the call
        weakref.finalize(self, self._call.cancel).atexit = False
        try:
            # open() reads ahead whatever _reads_ahead says: no reader runs before ready
            await self._write(self._call.write, self._init, ahead=True)
            msg = await self._next(None)
            if msg is None or msg.WhichOneof("message") != "ready":
                raise self._fail(RemoteMediaError("the server did not answer init with ready",
                                                  grpc.StatusCode.INTERNAL, from_server=False))
        except BaseException:
            self.cancel()  # also before gRPC sent the headers: nothing else would
            raise
        self.session_id = msg.ready.session_id
        self.pipeline_name = msg.ready.pipeline_name
        self.sources = sources_of(msg.ready)
        return self

    # -- the call --------------------------------------------------------------------------
    async def _write(self, op: Callable[..., Awaitable[Any]], *args: Any,
                     ahead: Optional[bool] = None) -> None:
        """Runs op(*args), the call's write or done_writing, reading ahead while it waits
        (see the class; ahead: whether to, default _reads_ahead). Raises the error that
        ended the session, if it has ended (its error is raised once by receive(); send and
        close raise it each time). Cancelled, it cancels the session: a message half-written
        cannot be taken back."""
        self._raise_if_over()
        reads_ahead = self._reads_ahead if ahead is None else ahead
        write = asyncio.ensure_future(op(*args))
        write.add_done_callback(_retrieve)
        try:
            while not self._over:
                # grpc.aio's write returns without error from a call that ended with status
                # OK, having sent nothing: a call that is done is read to its end either way
                if write.done() and not _write_failed(write) and not self._call.done():
                    break
                # the end: read here, or met by the reader
                end = self._read_next() if reads_ahead else self._end_waiter()
                waits = (end,) if write.done() else (write, end)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            write.cancel()
            self.cancel()
            raise
        if not write.done():
            write.cancel()  # the call has ended: the write would wait for nothing
        self._raise_if_over()

    def _end_waiter(self) -> "asyncio.Future[None]":
        """A future done once the session has ended."""
        if self._ended_waiter is None:
            self._ended_waiter = asyncio.get_running_loop().create_future()
            if self._over:
                self._ended_waiter.set_result(None)
        return self._ended_waiter

    def _read_next(self) -> "asyncio.Task[None]":
        """The read in progress, started if there is none."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(_read_one(weakref.ref(self), self._call))
            self._reading.add_done_callback(_retrieve)
        return self._reading

    async def _took(self, msg: Any, failed: Optional[BaseException]) -> None:
        """Takes what one read of the call gave (_read_one): the message into _ahead (a
        metrics message updates .metrics instead), or the call's end into _over / _error."""
        try:
            if failed is not None:
                raise failed
            if msg is grpc.aio.EOF:
                self._end(await self._end_error())
                return
        except grpc.RpcError as e:
            self._end(error_from_rpc(e))
            return
        except KeyError:  # grpc.aio's lookup of a status code gRPC does not define
            if not self._call.done():
                raise
            self._end(undefined_status_error(self._call))
            return
        except asyncio.CancelledError:
            # cancel() or the client's close() ended the session first; else the call was
            # cancelled under it
            self._end(Cancelled("the call was cancelled", grpc.StatusCode.CANCELLED,
                                from_server=False))
            raise
        except Exception as e:  # not a status: nothing more can be read from the call
            self._end(e)
            self._cancel_call()
            return
        if msg is None:  # grpc.aio hands back None for a message that does not decode
            self._end(Internal("the server sent a message that does not decode as a "
                               "StreamResponse", grpc.StatusCode.INTERNAL, from_server=False))
            self._cancel_call()
            return
        which = msg.WhichOneof("message")
        if which == "metrics":
            try:
                self._metrics_from(msg)
            except Internal as e:  # numbers no server sends: nothing after them is trusted
                self._end(e)
                self._cancel_call()
            return
        if which == "result" and not msg.result.flushed:
            self._answered += 1
        self._ahead.append(msg)

    async def _end_error(self) -> Optional[RemoteMediaError]:
        """The error of a call whose messages have all been read: its status's; for status
        OK, Unavailable when the server ended the session before the client closed it, or
        before answering every chunk (a draining server flushes and closes its sessions);
        None for a normal end."""
        code = await self._call.code()
        if code != grpc.StatusCode.OK:
            return error_from_rpc(_Ended(code, await self._call.details(),
                                         await self._call.trailing_metadata()))
        if not self._closed_sending:
            return Unavailable("the server ended the session before the client closed it "
                               "(status OK, as a draining server does)",
                               grpc.StatusCode.UNAVAILABLE, from_server=False)
        if self._answered < self._sent:
            return Unavailable("the server ended the session with status OK having answered "
                               "%d of the %d chunks (as a draining server does)"
                               % (self._answered, self._sent),
                               grpc.StatusCode.UNAVAILABLE, from_server=False)
        return None

    def _end(self, error: Optional[BaseException]) -> None:
        """Records the session's end; the first one recorded stands. An error makes the
        pipeline's get_metrics() None, as after a run that raised (.metrics keeps the
        latest periodic ones)."""
        if self._over:
            return
        self._over = True
        self._error = error
        if self._ended_waiter is not None and not self._ended_waiter.done():
            self._ended_waiter.set_result(None)
        if error is not None and self._on_metrics is not None:
            self._on_metrics(None)

    def _raise_if_over(self) -> None:
        if self._over and self._error is not None:
            self._told = True
            raise self._error

    def _fail(self, error: RemoteMediaError) -> RemoteMediaError:
        """Ends the session with error, raised by the caller now; cancels the call."""
        self._end(error)
        self._told = True
        self._cancel_call()
        return error

    def _cancel_call(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._reading is not None:
            self._reading.cancel()

    def _client_closed(self) -> None:
        """Run by Client.close(): the session ends with Cancelled ("the client was closed"),
        raised by the next send or receive (after the results that had arrived)."""
        self._end(closed_client_error())
        self._cancel_call()

    def _metrics_from(self, msg: Any) -> None:
        from .pipeline import metrics_to_dict
        self.metrics = metrics_to_dict(msg.metrics.metrics)
        if self._on_metrics is not None:
            self._on_metrics(self.metrics)

    # -- sending ---------------------------------------------------------------------------
    async def send(self, chunk: Any, sample_rate: Optional[int] = None, *,
                   node_id: str = "", sequence: Optional[int] = None) -> int:
        """Sends one chunk (a numpy array with sample_rate=, an AudioBuffer, or any value
        run() accepts) to source node_id ("" = the pipeline's only source). sequence
        defaults to the previous one + 1; one given is an int 0..2**64-1 (ValueError
        otherwise) above the previous one (the server checks that). Returns the sequence
        number sent. Waits only for gRPC flow control, not for the result (results
        arriving meanwhile are kept for receive()). Once the session has ended it raises what ended it: the server's
        status, or Unavailable when the server closed the session with OK before the
        client did (a draining server)."""
        self._require_open()
        if self._closed_sending:
            raise RuntimeError("the session is closed for sending")
        seq = _sequence(self._sequence + 1 if sequence is None else sequence)
        req = data_request(chunk, sample_rate, node_id, seq)
        check_chunk_size(req, self._send_limit)
        await self._write(self._call.write, req)
        self._sent += 1
        self._sequence = seq
        return seq

    async def flush(self) -> None:
        """Asks the nodes to emit what they hold (resampler tail, VAD's open segment);
        answered by one result with flushed=True, in order after the chunks' results."""
        self._require_open()
        if self._closed_sending:
            raise RuntimeError("the session is closed for sending")
        await self._write(self._call.write, control_request(close=False))

    async def close_send(self) -> None:
        """Sends CLOSE and ends the sending side; keep calling receive() for the remaining
        results, the flushed one last."""
        self._require_open()
        if self._closed_sending:
            return
        self._closed_sending = True
        await self._write(self._call.write, control_request(close=True))
        await self._write(self._call.done_writing)

    # -- receiving -------------------------------------------------------------------------
    async def receive(self, timeout: Optional[float] = None) -> Optional[StreamResult]:
        """The next result, or None when the session has ended (after close). Metrics
        messages update .metrics and are not returned. timeout in seconds: asyncio's
        TimeoutError when nothing came in time (the session goes on, as it does when a
        receive() is cancelled). The error that ended the session is raised once, after
        the results that arrived before it, unless send() raised it first."""
        msg = await self._next(timeout)
        if msg is None:
            return None
        which = msg.WhichOneof("message")
        if which != "result":
            raise self._fail(RemoteMediaError("the server sent %s inside the stream" % which,
                                              grpc.StatusCode.INTERNAL, from_server=False))
        try:
            return StreamResult(msg.result)
        except RemoteMediaError as e:  # an inconsistent output: the session cannot go on
            raise self._fail(e) from None

    def _require_open(self) -> None:
        """send/flush/close/receive before open() have no call to use: say so, rather than
        fail on None deep inside."""
        if self._call is None:
            raise RuntimeError("the session is not open: use `async with` or await open()")

    async def _next(self, timeout: Optional[float]) -> Any:
        """The next message read (not metrics), or None once the session has ended (its
        error raised the first time). A wait that times out or is cancelled leaves the read
        pending; the next call picks it up."""
        self._require_open()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._ahead:
            if self._over:
                if self._error is not None and not self._told:
                    self._told = True
                    raise self._error
                return None
            left = None if deadline is None else max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait((self._read_next(),), timeout=left)
            if not done:
                raise asyncio.TimeoutError()
        return self._ahead.popleft()

    def __aiter__(self) -> AsyncIterator[StreamResult]:
        return self._results()

    async def _results(self) -> AsyncIterator[StreamResult]:
        while True:
            r = await self.receive()
            if r is None:
                return
            yield r

    async def close(self) -> List[StreamResult]:
        """Sends CLOSE (if not yet) and reads to the end: returns the results not received
        yet (the flushed one last); the final metrics are then in .metrics (and the
        pipeline's get_metrics())."""
        await self.close_send()
        rest: List[StreamResult] = []
        while True:
            r = await self.receive()
            if r is None:
                return rest
            rest.append(r)

    def cancel(self) -> None:
        """Cancels the call (the server frees the session) and drops the results not
        received: receive() then returns None, send(), flush() and close() raise Cancelled.
        Unless the session had already ended, the pipeline's get_metrics() becomes None."""
        self._end(Cancelled("the session was cancelled", grpc.StatusCode.CANCELLED,
                            from_server=False))
        self._told = True
        self._ahead.clear()
        self._cancel_call()

    async def __aenter__(self) -> "StreamSession":
        return await self.open()

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None and not self._told:
            await self.close()  # raises the error that ended the session, if not raised yet
        else:
            self.cancel()


async def _read_one(ref: "weakref.ReferenceType[StreamSession]", call: Any) -> None:
    """One read of a session's call, handed to the session (_took) if it still exists.
    While the read waits the session is held weakly: a read left pending (by a receive()
    that timed out, or by a send() whose result came before its write was done) must not
    keep a session the caller dropped alive, for its call would then wait for the
    server's idle timeout; a collected session's call is cancelled (open())."""
    msg: Any = None
    failed: Optional[BaseException] = None
    try:
        msg = await call.read()
    except BaseException as e:  # the session's to take, cancellation included
        failed = e
    session = ref()
    if session is not None:
        await session._took(msg, failed)
    elif failed is not None:
        raise failed


def _retrieve(task: "asyncio.Future[Any]") -> None:
    """A done callback that retrieves a task's exception, so an abandoned read or write is
    not reported as "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


def _write_failed(write: "asyncio.Future[Any]") -> bool:
    """Whether a finished write failed because the call has ended (its end says how);
    another exception is raised."""
    if write.cancelled():
        return True
    e = write.exception()
    if e is None:
        return False
    if isinstance(e, (grpc.RpcError, asyncio.InvalidStateError)):
        return True
    raise e


class _Ended(grpc.RpcError):
    """A status read from a finished aio call, shaped like the RpcError error_from_rpc reads."""

    def __init__(self, code: Any, details: str, trailers: Any) -> None:
        super().__init__(details)
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> Any:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailers


async def iterate(chunks: Chunks) -> AsyncIterator[Any]:
    """The chunks of a sync or async iterable."""
    if isinstance(chunks, collections.abc.AsyncIterable):
        async for c in chunks:
            yield c
    else:
        for c in chunks:
            yield c


def sync_requests(init: Any, chunks: Iterable[Any], sample_rate: Optional[int],
                  node_id: str, failed: List[BaseException],
                  send_limit: Optional[int] = None) -> Iterator[Any]:
    """init, a data request per chunk (FLUSH: a flush), then CLOSE. An exception raised by
    the chunks or their conversion (or check_chunk_size) is appended to failed (gRPC reads
    this generator on its own thread and only cancels the call) and re-raised."""
    yield init
    seq = 0
    rate = StreamRate(sample_rate)
    try:
        for c in chunks:
            if c is FLUSH:
                yield control_request(close=False)
                continue
            seq += 1
            req = data_request(rate.convert(c), None, node_id, seq)
            check_chunk_size(req, send_limit)
            yield req
        rate.check()
    except Exception as e:
        failed.append(e)
        raise
    yield control_request(close=True)
