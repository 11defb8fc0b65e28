"""data.py - Python values to and from remotemedia.v1.DataBuffer without per-sample loops.

Audio goes through numpy: an array's bytes are sent as they are (np.ascontiguousarray in
little-endian order, then tobytes) and received with np.frombuffer, so a megabyte of
samples costs one copy each way, never a Python loop.

Input values (what pipeline.run accepts):
    AudioBuffer, or a numpy array together with sample_rate=   -> audio
    a list or tuple of numbers together with sample_rate=      -> audio (float32)
    Tensor(array)                                              -> tensor
    dict, list, int, float, bool, None, Json(value)            -> json
    str                                                        -> text
    bytes, bytearray, memoryview, Binary(data, mime_type)      -> binary
Output values: AudioBuffer, numpy array (tensor), the decoded JSON value, str, Binary.
A sample_rate= that the value cannot use, or that contradicts its own rate, is a ValueError.
"""
import json
import math
from typing import Any, Dict, List, Optional, Tuple, Union

import grpc
import numpy as np

from ._proto import data_pb2
from .errors import Internal

__all__ = ["AudioBuffer", "Tensor", "Json", "Binary", "to_proto", "from_proto"]

# AudioFormat enum value -> (short name, little-endian numpy dtype)
_AUDIO_FORMATS: Dict[int, Tuple[str, np.dtype]] = {
    data_pb2.AUDIO_FORMAT_F32: ("f32", np.dtype("<f4")),
    data_pb2.AUDIO_FORMAT_I16: ("i16", np.dtype("<i2")),
    data_pb2.AUDIO_FORMAT_I32: ("i32", np.dtype("<i4")),
    data_pb2.AUDIO_FORMAT_F64: ("f64", np.dtype("<f8")),
}
_AUDIO_FORMAT_OF = {(dt.kind, dt.itemsize): fmt for fmt, (_, dt) in _AUDIO_FORMATS.items()}

_TENSOR_DTYPES: Dict[int, np.dtype] = {
    data_pb2.TENSOR_DTYPE_F32: np.dtype("<f4"),
    data_pb2.TENSOR_DTYPE_F64: np.dtype("<f8"),
    data_pb2.TENSOR_DTYPE_I32: np.dtype("<i4"),
    data_pb2.TENSOR_DTYPE_I64: np.dtype("<i8"),
    data_pb2.TENSOR_DTYPE_U8: np.dtype("u1"),
    data_pb2.TENSOR_DTYPE_I16: np.dtype("<i2"),
}
_TENSOR_DTYPE_OF = {(dt.kind, dt.itemsize): v for v, dt in _TENSOR_DTYPES.items()}

MAX_SAMPLE_RATE = 768000
MAX_CHANNELS = 64


def _little_endian(arr: np.ndarray) -> np.ndarray:
    """arr as a C-contiguous little-endian array of the same shape; no copy when it already
    is one. (np.ascontiguousarray would make a 0-d array 1-d, and a scalar tensor would
    then travel as shape [1].)"""
    dt = arr.dtype
    if dt.byteorder == ">" or (dt.byteorder == "=" and not np.little_endian):
        dt = dt.newbyteorder("<")
    return np.asarray(arr, dtype=dt, order="C")


class AudioBuffer:
    """Interleaved PCM audio: a numpy array and its sample rate.

    samples is 1-D for mono, or 2-D [frames, channels] for interleaved multi-channel
    audio; dtype float32, int16, int32 or float64 (float full scale is [-1, 1]).
    Arrays received from the server are read-only views of the response bytes; use
    .samples.copy() for a writable one.

    Args:
        samples: array-like of samples.
        sample_rate: Hz, 1..768000.
        channels: only needed to reshape a 1-D interleaved array into [frames, channels].
    """

    __slots__ = ("samples", "sample_rate")

    def __init__(self, samples: Any, sample_rate: int, channels: Optional[int] = None) -> None:
        arr = np.asarray(samples)
        if (arr.dtype.kind, arr.dtype.itemsize) not in _AUDIO_FORMAT_OF or arr.dtype.kind not in "fi":
            raise TypeError("audio samples must be float32, int16, int32 or float64, not %s"
                            % arr.dtype)
        if arr.ndim == 1 and channels is not None and channels != 1:
            if channels < 1 or arr.shape[0] % channels:
                raise ValueError("%d interleaved samples do not split into %r channels"
                                 % (arr.shape[0], channels))
            arr = arr.reshape(-1, channels)
        elif arr.ndim == 2:
            if channels is not None and channels != arr.shape[1]:
                raise ValueError("samples have %d channels (shape [frames, channels]), not %r"
                                 % (arr.shape[1], channels))
        elif arr.ndim != 1:
            raise ValueError("audio must be 1-D (mono) or 2-D [frames, channels], not %d-D"
                             % arr.ndim)
        nch = 1 if arr.ndim == 1 else arr.shape[1]
        if not 1 <= nch <= MAX_CHANNELS:
            raise ValueError("audio must have 1..%d channels (shape [frames, channels]), not %d"
                             % (MAX_CHANNELS, nch))
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate:
            raise ValueError("sample_rate must be an integer number of Hz, not %r" % (sample_rate,))
        sample_rate = int(sample_rate)
        if not 1 <= sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError("sample_rate must be 1..%d Hz, not %d" % (MAX_SAMPLE_RATE, sample_rate))
        self.samples = arr
        self.sample_rate = sample_rate

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[1]

    @property
    def frames(self) -> int:
        return self.samples.shape[0]

    @property
    def format(self) -> str:
        """"f32", "i16", "i32" or "f64"."""
        dt = self.samples.dtype
        return _AUDIO_FORMATS[_AUDIO_FORMAT_OF[(dt.kind, dt.itemsize)]][0]

    @property
    def dtype(self) -> np.dtype:
        return self.samples.dtype

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def __len__(self) -> int:
        return self.frames

    def __array__(self, dtype: Any = None) -> np.ndarray:
        return np.asarray(self.samples, dtype=dtype)

    def __repr__(self) -> str:
        return "AudioBuffer(%d frames, %d ch, %d Hz, %s)" % (
            self.frames, self.channels, self.sample_rate, self.format)

    def to_float32(self) -> np.ndarray:
        """The samples as float32 in [-1, 1] (integer formats divided by their full scale)."""
        s = self.samples
        if s.dtype.kind == "f":
            return s.astype(np.float32)
        return (s.astype(np.float64) / float(-np.iinfo(s.dtype).min)).astype(np.float32)


class Tensor:
    """An n-dimensional array sent as a tensor (dtype float32/64, int16/32/64 or uint8)."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        arr = np.asarray(array)
        if (arr.dtype.kind, arr.dtype.itemsize) not in _TENSOR_DTYPE_OF or arr.dtype.kind not in "fiu":
            raise TypeError("tensor dtype must be float32, float64, int16, int32, int64 or uint8, "
                            "not %s" % arr.dtype)
        self.array = arr


class Json:
    """A value sent as JSON even when it is a str (a bare str is sent as text)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Binary:
    """Opaque bytes with a MIME type (e.g. a WAV file for AudioDecode)."""

    __slots__ = ("data", "mime_type")

    def __init__(self, data: Union[bytes, bytearray, memoryview],
                 mime_type: str = "application/octet-stream") -> None:
        self.data = bytes(data)
        self.mime_type = mime_type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Binary) and (self.data, self.mime_type) == (other.data, other.mime_type)

    def __repr__(self) -> str:
        return "Binary(%d bytes, %r)" % (len(self.data), self.mime_type)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_json_default)
    except ValueError as e:
        raise ValueError("input is not valid JSON: %s" % e) from None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError("%s is not JSON serialisable" % type(o).__name__)


def audio_to_proto(audio: AudioBuffer, buf: Any) -> None:
    arr = _little_endian(audio.samples)
    a = buf.audio
    a.samples = arr.tobytes()
    a.sample_rate = audio.sample_rate
    a.channels = audio.channels
    a.format = _AUDIO_FORMAT_OF[(arr.dtype.kind, arr.dtype.itemsize)]


def to_proto(value: Any, sample_rate: Optional[int] = None) -> Any:
    """A data_pb2.DataBuffer for value (see the module docstring for what maps to what).
    ValueError when sample_rate is given and value cannot use it (JSON, text, binary, a
    tensor, a scalar) or has its own, different rate: a rate the caller gave must never be
    dropped silently."""
    buf, used = convert(value, sample_rate)
    if sample_rate is not None and not used:
        raise ValueError(unused_rate(sample_rate, value, buf))
    return buf


def unused_rate(sample_rate: Any, value: Any, buf: Any) -> str:
    """The message for a sample_rate= that value (converted to buf) had no use for."""
    return ("sample_rate=%r was given, but the input (%s) is sent as %s, which has no sample "
            "rate" % (sample_rate, type(value).__name__, buf.WhichOneof("kind")))


def _same_rate(sample_rate: Optional[int], own: int, what: str) -> bool:
    """Whether sample_rate (given) matches the rate value carries; ValueError if it
    contradicts it."""
    if sample_rate is None:
        return False
    if sample_rate != own:
        raise ValueError("sample_rate=%r conflicts with %s's own rate %r: give the rate once"
                         % (sample_rate, what, own))
    return True


def convert(value: Any, sample_rate: Optional[int] = None) -> Tuple[Any, bool]:
    """(DataBuffer, whether sample_rate was used). A rate contradicting value's own raises
    here; an unused one does not (several inputs share one sample_rate=, which must serve
    one of them, not each: the caller decides)."""
    if isinstance(value, data_pb2.DataBuffer):
        if value.WhichOneof("kind") == "audio":  # its own rate decides, as an AudioBuffer's
            return value, _same_rate(sample_rate, value.audio.sample_rate, "the DataBuffer")
        return value, False
    buf = data_pb2.DataBuffer()
    used = False
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], np.ndarray):
        used = _same_rate(sample_rate, value[1], "the (array, rate) tuple")
        value, sample_rate = value
    elif isinstance(value, AudioBuffer):
        used = _same_rate(sample_rate, value.sample_rate, "the AudioBuffer")
    elif isinstance(value, np.generic) and sample_rate is not None:
        raise ValueError("sample_rate=%r was given with a numpy scalar (%s %r): audio is a "
                         "1-D or [frames, channels] array; without sample_rate= a scalar is "
                         "sent as JSON" % (sample_rate, value.dtype, value.item()))
    elif isinstance(value, (list, tuple)) and sample_rate is not None:
        # samples as plain numbers, with a rate: audio, float32 ([frames, channels] if nested)
        try:
            value = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise TypeError("with sample_rate=, a list is audio and must hold numbers (or "
                            "[frames, channels] lists of numbers)") from None
    if isinstance(value, np.ndarray):
        if sample_rate is None:
            raise TypeError("a numpy array is audio only with sample_rate=...; wrap other "
                            "arrays in remotemedia.Tensor(...)")
        value = AudioBuffer(value, sample_rate)
        used = True
    _fill(buf, value)
    return buf, used


def _fill(buf: Any, value: Any) -> None:
    """Sets buf's oneof from a value that needs no sample rate of its own."""
    if isinstance(value, AudioBuffer):
        audio_to_proto(value, buf)
    elif isinstance(value, Tensor):
        arr = _little_endian(value.array)
        buf.tensor.data = arr.tobytes()
        buf.tensor.shape.extend(arr.shape)
        buf.tensor.dtype = _TENSOR_DTYPE_OF[(arr.dtype.kind, arr.dtype.itemsize)]
    elif isinstance(value, Binary):
        buf.binary.data = value.data
        buf.binary.mime_type = value.mime_type
    elif isinstance(value, (bytes, bytearray, memoryview)):
        buf.binary.data = bytes(value)
        buf.binary.mime_type = "application/octet-stream"
    elif isinstance(value, str):
        buf.text.text = value
    elif isinstance(value, Json):
        buf.json.json = _json_text(value.value)
    elif value is None or isinstance(value, (dict, list, int, float, bool, np.generic)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("input is not valid JSON: %r" % value)
        buf.json.json = _json_text(value)
    else:
        raise TypeError("cannot send a %s as pipeline data (use AudioBuffer, a numpy array "
                        "with sample_rate=, Tensor, JSON values, str or bytes)" % type(value).__name__)


class DecodeError(ValueError):
    """A response buffer is inconsistent (a server bug). decode_outputs raises it as
    remotemedia.Internal, naming the output and the item."""


def audio_from_proto(a: Any) -> AudioBuffer:
    if a.format not in _AUDIO_FORMATS:
        raise DecodeError("audio format %d is not one the protocol defines" % a.format)
    name, dt = _AUDIO_FORMATS[a.format]
    ch = a.channels
    if not 1 <= ch <= MAX_CHANNELS:
        raise DecodeError("audio channels %d is not 1..%d" % (ch, MAX_CHANNELS))
    if not 1 <= a.sample_rate <= MAX_SAMPLE_RATE:
        raise DecodeError("audio sample_rate %d is not 1..%d Hz"
                          % (a.sample_rate, MAX_SAMPLE_RATE))
    if len(a.samples) % (dt.itemsize * ch):
        raise DecodeError("audio: %d bytes is not a whole number of %d-channel %s frames "
                          "(%d bytes each)" % (len(a.samples), ch, name, dt.itemsize * ch))
    arr = np.frombuffer(a.samples, dtype=dt)
    if ch > 1:
        arr = arr.reshape(-1, ch)
    return AudioBuffer(arr, a.sample_rate)


def _tensor_from_proto(t: Any) -> np.ndarray:
    if t.dtype not in _TENSOR_DTYPES:
        raise DecodeError("tensor dtype %d is not one the protocol defines" % t.dtype)
    dt = _TENSOR_DTYPES[t.dtype]
    shape = list(t.shape)
    if any(d < 0 for d in shape):
        raise DecodeError("tensor shape %s has a negative dimension" % shape)
    count = math.prod(shape)
    if count * dt.itemsize != len(t.data):
        raise DecodeError("tensor shape %s needs %d values of %s (%d bytes), %d bytes given"
                          % (shape, count, dt, count * dt.itemsize, len(t.data)))
    try:
        return np.frombuffer(t.data, dtype=dt).reshape(tuple(shape))
    except ValueError as e:  # an empty tensor with dimensions numpy cannot hold
        raise DecodeError("tensor shape %s: %s" % (shape, e)) from None


def from_proto(buf: Any) -> Any:
    """The Python value of a data_pb2.DataBuffer; DecodeError when it is inconsistent."""
    kind = buf.WhichOneof("kind")
    if kind == "audio":
        return audio_from_proto(buf.audio)
    if kind == "json":
        try:
            return json.loads(buf.json.json)
        except ValueError as e:
            raise DecodeError("json is not valid JSON: %s" % e) from None
        except RecursionError:  # nesting deeper than Python's recursion limit
            raise DecodeError("json is nested too deeply to decode") from None
    if kind == "text":
        return buf.text.text
    if kind == "binary":
        return Binary(buf.binary.data, buf.binary.mime_type)
    if kind == "tensor":
        return _tensor_from_proto(buf.tensor)
    raise DecodeError("the buffer carries no data (no kind set)")


def decode_outputs(outputs: Any) -> Dict[str, List[Any]]:
    """{key: [values]} of a response's outputs map (ExecuteResponse, StreamResult), sorted by
    key. An item that is inconsistent (a tensor whose shape does not match its bytes, audio
    without whole frames, an unknown format, ...) raises remotemedia.Internal naming the
    output and the item: a server bug, never data to hand over mis-shaped."""
    decoded: Dict[str, List[Any]] = {}
    for key, out in sorted(outputs.items()):
        items = []
        for i, b in enumerate(out.items):
            try:
                items.append(from_proto(b))
            except DecodeError as e:
                raise Internal("the server's response: output %r item %d: %s" % (key, i, e),
                               grpc.StatusCode.INTERNAL, from_server=False) from None
        decoded[key] = items
    return decoded


