"""numpy audio in and out (every sample format, mono and interleaved stereo, any rate, byte
order and memory layout), and the other data kinds (tensor, JSON, text, binary)."""
import os
import re

import numpy as np
import pytest

from conftest import sine
from remotemedia import AudioBuffer, Binary, Json, Pipeline, Tensor
from remotemedia.nodes import Calculator, ChannelMix, Chunk, Gain, PassThrough


@pytest.fixture(scope="module")
def passthrough(remote):
    p = Pipeline(remote=remote)
    p.add_node(PassThrough(node_id="p"))
    yield p
    p.close_sync()


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.int32, np.float64])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_round_trip_is_exact(passthrough, dtype, channels):
    rng = np.random.default_rng(channels)
    if np.dtype(dtype).kind == "f":
        x = rng.uniform(-1, 1, size=(999, channels)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=(999, channels), endpoint=True, dtype=dtype)
    if channels == 1:
        x = x[:, 0]
    out = passthrough.run_sync(x, sample_rate=22050)
    assert isinstance(out, AudioBuffer)
    assert out.samples.dtype == np.dtype(dtype)
    assert out.samples.shape == x.shape
    assert (out.sample_rate, out.channels, out.frames) == (22050, channels, 999)
    np.testing.assert_array_equal(out.samples, x)
    # the result is a read-only view of the response bytes, not a per-sample copy
    assert not out.samples.flags.owndata and not out.samples.flags.writeable


def test_int16_gain(remote):
    x = np.int16([0, 1000, -1000, 32767, -32768, 20001])
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=-6.020599913279624))
        out = p.run_sync(x, sample_rate=8000)
    assert out.samples.dtype == np.int16
    assert np.max(np.abs(out.samples.astype(int) - x.astype(int) / 2)) <= 1  # one LSB of rounding
    assert out.samples[:3].tolist() == [0, 500, -500]


def test_stereo_gain_and_mix(remote):
    left, right = sine(48000, 48000, 440), sine(48000, 48000, 1000, amp=0.25)
    stereo = np.stack([left, right], axis=1)  # [frames, 2], interleaved on the wire
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=-6.020599913279624, node_id="g"))
        p.add_node(ChannelMix(mode="mono", node_id="mono"), chain=False)
        p.connect("g", "mono")
        p.add_node(PassThrough(node_id="tap"), after="g")
        result = p.execute_sync(stereo, sample_rate=48000)
    tap, mono = result.output("tap"), result.output("mono")
    assert tap.samples.shape == (48000, 2)
    np.testing.assert_allclose(tap.samples, stereo * 0.5, atol=1e-6)
    assert mono.channels == 1 and mono.samples.shape == (48000,)
    np.testing.assert_allclose(mono.samples, (left + right) * 0.25, atol=1e-6)
    assert set(result.value) == {"tap", "mono"}


def test_layouts_and_byte_orders(passthrough):
    x = sine(1000, 16000)
    for variant in (x.astype(">f4"),                 # big-endian
                    np.repeat(x, 2)[::2],             # strided view
                    np.asfortranarray(np.stack([x, -x], axis=1))):  # column-major 2-D
        out = passthrough.run_sync(variant, sample_rate=16000)
        np.testing.assert_array_equal(out.samples, variant.astype("<f4"))
    # an (array, rate) tuple and an interleaved 1-D array with channels=
    out = passthrough.run_sync((x, 16000))
    assert out.sample_rate == 16000
    inter = AudioBuffer(np.float32([1, -1, 0.5, -0.5]), 44100, channels=2)
    out = passthrough.run_sync(inter)
    assert out.samples.tolist() == [[1, -1], [0.5, -0.5]]


def test_large_audio(passthrough):
    x = np.stack([sine(480000, 48000), sine(480000, 48000, 1000)], axis=1)  # 10 s stereo, 3.8 MB
    out = passthrough.run_sync(x, sample_rate=48000)
    np.testing.assert_array_equal(out.samples, x)


def test_chunks_are_items_and_run_joins_them(remote):
    x = sine(1050, 8000)
    with Pipeline(remote=remote) as p:
        p.add_node(Chunk(frames=100, partial="keep", node_id="c"))
        result = p.execute_sync(x, sample_rate=8000)
        joined = p.run_sync(x, sample_rate=8000)
    chunks = result.outputs["c"]
    assert [c.frames for c in chunks] == [100] * 10 + [50]
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), x)
    np.testing.assert_array_equal(result.audio("c").samples, x)
    assert joined.frames == 1050
    np.testing.assert_array_equal(joined.samples, x)


def test_other_kinds(passthrough, remote):
    t = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    out = passthrough.run_sync(Tensor(t))
    assert out.dtype == np.int64 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, t)
    assert passthrough.run_sync({"a": [1, 2.5, None], "b": "x"}) == {"a": [1, 2.5, None], "b": "x"}
    assert passthrough.run_sync(Json("a string sent as JSON")) == "a string sent as JSON"
    assert passthrough.run_sync("plain text, ünïcode") == "plain text, ünïcode"
    assert passthrough.run_sync(b"\x00\x01raw") == Binary(b"\x00\x01raw", "application/octet-stream")
    assert passthrough.run_sync(Binary(b"RIFF", "audio/wav")) == Binary(b"RIFF", "audio/wav")
    with Pipeline(remote=remote) as p:
        p.add_node(Calculator(node_id="calc"))
        r = p.run_sync({"operation": "multiply", "operands": [1.5, 4, -2]})
    assert r["result"] == -12



@pytest.mark.parametrize("value", [np.array(7, np.int32), np.float64(1.5),
                                   np.array(3, ">i2")], ids=repr)
def test_a_0d_tensor_keeps_its_shape(passthrough, value):
    """Regression (P4): Tensor(np.array(7)) was sent with shape [1] (np.ascontiguousarray
    makes 0-d arrays 1-d); the server takes an empty shape (one element), so it is sent as
    shape [] and comes back 0-d."""
    req = passthrough.build_request(Tensor(value))
    assert list(req.inputs["p"].tensor.shape) == []
    out = passthrough.run_sync(Tensor(value))
    assert out.shape == () and out.dtype == np.asarray(value).dtype.newbyteorder("<")
    assert out.item() == np.asarray(value).item()


def test_a_sample_rate_is_never_dropped(passthrough):
    """Regression (P6): run(np.float32(0.5), sample_rate=16000) went out as JSON 0.5 and
    run((array, 8000), sample_rate=16000) used 8000, the given rate silently ignored. A rate
    an input cannot use, or one contradicting the input's own, is a ValueError naming
    both."""
    x = np.float32([0.25, -0.5])
    with pytest.raises(ValueError, match=r"^sample_rate=16000 was given with a numpy scalar "
                       r"\(float32 0.5\): audio is a 1-D or \[frames, channels\] array; "
                       r"without sample_rate= a scalar is sent as JSON$"):
        passthrough.run_sync(np.float32(0.5), sample_rate=16000)
    assert passthrough.run_sync(np.float32(0.5)) == 0.5  # JSON, as a Python float is
    with pytest.raises(ValueError, match=r"^sample_rate=16000 conflicts with the \(array, "
                       r"rate\) tuple's own rate 8000: give the rate once$"):
        passthrough.run_sync((x, 8000), sample_rate=16000)
    with pytest.raises(ValueError, match=r"^sample_rate=16000 conflicts with the "
                       r"AudioBuffer's own rate 8000: give the rate once$"):
        passthrough.run_sync(AudioBuffer(x, 8000), sample_rate=16000)
    assert passthrough.run_sync((x, 8000), sample_rate=8000).sample_rate == 8000
    assert passthrough.run_sync(AudioBuffer(x, 8000), sample_rate=8000).sample_rate == 8000
    for value, kind in [({"a": 1}, "dict) is sent as json"), (0.5, "float) is sent as json"),
                        ("hi", "str) is sent as text"), (b"\x00", "bytes) is sent as binary"),
                        (Tensor(x), "Tensor) is sent as tensor")]:
        with pytest.raises(ValueError, match=r"^sample_rate=16000 was given, but the input \("
                           + re.escape(kind) + ", which has no sample rate$"):
            passthrough.run_sync(value, sample_rate=16000)
    with pytest.raises(ValueError, match=r"^sample_rate=16000 was given, but the input "
                       r"\(dict\) is sent as json, which has no sample rate$"):
        list(passthrough.stream_sync([{"a": 1}], sample_rate=16000))


def test_a_prebuilt_audio_data_buffer_is_checked_against_its_own_rate(passthrough):
    """Regression: a DataBuffer holding audio, given with sample_rate=, was refused as "sent
    as audio, which has no sample rate". Its own rate decides, as an AudioBuffer's does:
    the same rate is fine, a different one is a ValueError naming both."""
    from remotemedia.data import to_proto
    buf = to_proto(AudioBuffer(np.float32([0.25, -0.5]), 8000))
    assert to_proto(buf, 8000) is buf
    out = passthrough.run_sync(buf, sample_rate=8000)
    assert (out.sample_rate, out.samples.tolist()) == (8000, [0.25, -0.5])
    rule = (r"^sample_rate=16000 conflicts with the DataBuffer's own rate 8000: give the rate "
            r"once$")
    with pytest.raises(ValueError, match=rule):
        passthrough.run_sync(buf, sample_rate=16000)
    with pytest.raises(ValueError, match=rule):
        list(passthrough.stream_sync([buf], sample_rate=16000))
    with pytest.raises(ValueError, match=r"^sample_rate=8000 was given, but the input "
                       r"\(DataBuffer\) is sent as json, which has no sample rate$"):
        passthrough.run_sync(to_proto({"a": 1}), sample_rate=8000)


def test_one_sample_rate_serves_several_inputs():
    """With several sources, sample_rate= serves the inputs that take a rate; JSON beside
    them is fine, but a rate no input takes is refused (P6)."""
    p = Pipeline()
    p.add_node(PassThrough(node_id="a")).add_node(PassThrough(node_id="b"), chain=False)
    req = p.build_request(inputs={"a": np.float32([0.5]), "b": {"k": 1}}, sample_rate=8000)
    assert req.inputs["a"].audio.sample_rate == 8000 and req.inputs["b"].json.json == '{"k":1}'
    with pytest.raises(ValueError, match=r"^sample_rate=8000 was given, but none of the inputs "
                       r"\(a, b\) is audio that takes it$"):
        p.build_request(inputs={"a": {"k": 1}, "b": "text"}, sample_rate=8000)

def test_input_checks():
    with pytest.raises(TypeError, match="float32, int16, int32 or float64"):
        AudioBuffer(np.int8([1, 2]), 8000)
    with pytest.raises(TypeError):
        AudioBuffer(np.complex64([1]), 8000)
    with pytest.raises(ValueError, match="1-D .mono. or 2-D"):
        AudioBuffer(np.zeros((2, 2, 2), np.float32), 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        AudioBuffer(np.zeros(4, np.float32), 0)
    with pytest.raises(ValueError, match="sample_rate"):
        AudioBuffer(np.zeros(4, np.float32), 44100.5)
    with pytest.raises(ValueError, match="do not split into 3 channels"):
        AudioBuffer(np.zeros(4, np.float32), 8000, channels=3)
    p = Pipeline()
    p.add_node(PassThrough())
    with pytest.raises(TypeError, match="sample_rate"):
        p.build_request(np.zeros(4, np.float32))
    # issue 14: Pipeline() without a remote is not an error; it calls RemoteConfig()'s server
    assert p.client.config.address == (os.environ.get("RM_SERVER") or "localhost:50051")
    a = AudioBuffer(np.int16([-32768, 16384]), 8000)
    assert a.to_float32().tolist() == [-1.0, 0.5]
    assert np.asarray(a).dtype == np.int16 and len(a) == 2 and a.duration_s == 2 / 8000
