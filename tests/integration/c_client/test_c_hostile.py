"""librmclient and the `remotemedia` CLI against a hostile server (rmtest.hostile, in this
process, on an ephemeral loopback port): an answer the client cannot trust is refused with
RM_CLIENT_EPROTO naming what is wrong (the CLI: exit 1, one line "remotemedia: the server's
response: ..."), never a crash, a leak, a file written outside --output-dir, or data
handed over mis-shaped or silently dropped. $RM_CLIENT_WRAPPER (e.g. valgrind) is put in
front of the CLI; an ASan build of it reports through its exit status."""
import struct
import wave

import pytest

from remotemedia.v1 import data_pb2, metrics_pb2
from rmtest.cli import error_line, run_cli
from rmtest.hostile import (HostileServer, audio_buffer, execute_response, health_pb2, pb,
                            status, tensor_buffer, text_buffer)

RUN_TIMEOUT_S = 120  # a safety net for hung processes, not an assertion


def cli(*args):
    rc, out, err = run_cli(*args, timeout=RUN_TIMEOUT_S)
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err
    return rc, out, err


@pytest.fixture(scope="module")
def srv():
    with HostileServer() as s:
        yield s


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    (d / "m.json").write_text('{"name": "h", "nodes": [{"id": "x", "node_type": "PassThrough"}]}')
    (d / "in.json").write_text("1")
    wav = d / "tone.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(struct.pack("<320h", *([1000] * 320)))
    return d


def run(srv, files, answer, *extra):
    srv.on("ExecutePipeline", answer)
    return cli("run", str(files / "m.json"), "--input", "x=" + str(files / "in.json"),
               "--server", srv.address, "--timeout-ms", "10000", *extra)


BAD_OUTPUTS = [
    ("tensor_short", tensor_buffer(b"\0" * 20, [2, 3]),
     "tensor shape [2,3] needs 6 values of f32 (24 bytes), 20 bytes given"),
    ("tensor_negative", tensor_buffer(b"\0" * 24, [-2, -3]),
     "tensor shape [-2,-3] has a negative dimension"),
    ("tensor_overflow", tensor_buffer(b"\0" * 4, [2 ** 32, 2 ** 32]),
     "tensor shape [4294967296,4294967296] has more values than memory can hold, 4 bytes given"),
    ("tensor_dtype", tensor_buffer(b"\0" * 4, [1], dtype=77),
     "tensor dtype 77 is not one the protocol defines"),
    ("audio_partial_frame", audio_buffer(b"\0" * 7),
     "audio: 7 bytes is not a whole number of 1-channel f32 frames (4 bytes each)"),
    ("audio_rate_0", audio_buffer(sample_rate=0), "audio sample_rate 0 is not 1..768000 Hz"),
    ("audio_rate_huge", audio_buffer(sample_rate=2 ** 32 - 1),
     "audio sample_rate 4294967295 is not 1..768000 Hz"),
    ("audio_channels_0", audio_buffer(channels=0), "audio channels 0 is not 1..64"),
    ("audio_channels_huge", audio_buffer(b"\0" * 400, channels=2 ** 31 + 4),
     "audio channels 2147483652 is not 1..64"),
    ("audio_format", audio_buffer(fmt=9), "audio format 9 is not one the protocol defines"),
    ("bad_json", data_pb2.DataBuffer(json=data_pb2.JsonBuffer(json="{nope")),
     "json is not valid JSON: string or '}' expected near 'nope' (line 1, column 5)"),
    ("deep_json", data_pb2.DataBuffer(json=data_pb2.JsonBuffer(json="[" * 100000)),
     "json is not valid JSON: maximum parsing depth reached near '[' (line 1, column 2049)"),
]


@pytest.mark.parametrize("item,why", [c[1:] for c in BAD_OUTPUTS], ids=[c[0] for c in BAD_OUTPUTS])
def test_inconsistent_output_refused(srv, files, item, why):
    answer = execute_response({"x": [text_buffer("fine"), item]})
    rc, out, err = run(srv, files, lambda req, ctx: answer, "--output-dir",
                       str(files / ("out_" + str(abs(hash(why))))))
    assert (rc, out) == (1, "")  # was 0, the item described (and written) as it came
    assert error_line(err) == "remotemedia: the server's response: output 'x' item 1: " + why


def test_output_key_outside_output_dir(srv, files):
    answer = execute_response({"../escape": [text_buffer("hi")]})
    rc, out, err = run(srv, files, lambda req, ctx: answer, "--output-dir",
                       str(files / "keys" / "out"))
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: the server's response: output key '../escape' is "
                               "not a node id (or node_id.port): it cannot name a file in "
                               "--output-dir")
    assert not (files / "keys" / "escape.txt").exists()  # was written there, exit 0
    # without --output-dir nothing is written: the key is only printed
    rc, out, err = run(srv, files, lambda req, ctx: answer)
    assert rc == 0 and '"../escape"' in out


# raw ExecuteResponse bytes: outputs {key: NodeOutput{items: [text "hi"]}} with key or text
# not UTF-8 (protobuf-c does not check; jansson then refused them and the CLI lost them)
def raw_response(key, txt=b"hi"):
    item = b"\x22" + bytes([len(txt) + 2]) + b"\x0a" + bytes([len(txt)]) + txt  # text
    node_output = b"\x1a" + bytes([len(item)]) + item  # NodeOutput.items
    entry = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(node_output)]) + node_output
    return b"\x0a" + bytes([len(entry)]) + entry


@pytest.mark.parametrize("key,txt,field,why", [
    (b"\xff\xfe", b"hi", "outputs.key", "is not valid UTF-8 at byte 0"),
    (b"x", b"\xc0\xaf", "outputs.value.items.text.text", "is not valid UTF-8 at byte 0"),
    # protobuf-c keeps no length: "ab" was handed over as the whole text
    (b"x", b"ab\0cd", "outputs.value.items.text.text", "holds a NUL byte at byte 2"),
    (b"x\0y", b"hi", "outputs.key", "holds a NUL byte at byte 1"),
], ids=["key", "text", "text_nul", "key_nul"])
def test_string_not_utf8_refused(srv, files, key, txt, field, why):
    rc, out, err = run(srv, files, lambda req, ctx: raw_response(key, txt))
    assert (rc, out) == (1, "")  # was 0 with the output missing from the document, or cut
    assert error_line(err) == ("remotemedia: the server's response: remotemedia.v1.Execute"
                               "Response: string field '%s' %s: strings must be UTF-8 without "
                               "NUL bytes (send such data as binary)" % (field, why))


def test_json_with_nul_refused(srv, files):
    item = data_pb2.DataBuffer(json=data_pb2.JsonBuffer(json="{}\0garbage"))
    answer = execute_response({"x": [item]})
    rc, out, err = run(srv, files, lambda req, ctx: answer, "--output-dir", str(files / "nul"))
    assert (rc, out) == (1, "")  # was exit 0 with "{}" written
    assert error_line(err) == ("remotemedia: the server's response: remotemedia.v1.Execute"
                               "Response: string field 'outputs.value.items.json.json' holds a "
                               "NUL byte at byte 2: strings must be UTF-8 without NUL bytes "
                               "(send such data as binary)")
    assert not (files / "nul" / "x.json").exists()


@pytest.mark.parametrize("value,name", [(float("nan"), "nan"), (float("inf"), "inf"),
                                        (float("-inf"), "-inf")])
def test_metrics_not_finite_refused(srv, files, value, name):
    m = metrics_pb2.PipelineMetrics(pipeline_id="p", node_metrics=[
        metrics_pb2.NodeMetrics(node_id="a", avg_duration_us=value)])
    answer = execute_response({"x": [text_buffer("fine")]}, metrics=m)
    rc, out, err = run(srv, files, lambda req, ctx: answer, "--metrics", "--metrics-json")
    # was exit 0 with the metrics silently missing (jansson has no NaN)
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: the server's response: metrics node 'a': "
                               "avg_duration_us is %s (metrics are finite)" % name)


def test_absurd_but_finite_metrics_pass(srv, files):
    nodes = [metrics_pb2.NodeMetrics(node_id="n%d" % i, execution_count=2 ** 64 - 1,
                                     success_rate=-3.5, total_duration_us=1e308)
             for i in range(2000)]
    m = metrics_pb2.PipelineMetrics(pipeline_id="p" * 10000, peak_memory_bytes=2 ** 64 - 1,
                                    node_metrics=nodes)
    answer = execute_response({"x": [text_buffer("fine")]}, metrics=m)
    rc, out, err = run(srv, files, lambda req, ctx: answer, "--metrics-json")
    assert rc == 0, err
    assert out.count('"node_id"') == 2000


def test_answer_that_does_not_decode(srv, files):
    rc, out, err = run(srv, files, lambda req, ctx: b"\xff\xff\xff")
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: the answer is not a valid "
                               "remotemedia.v1.ExecuteResponse message")


def test_undefined_status_code(srv, files):
    rc, out, err = run(srv, files, lambda req, ctx: status(ctx, 99, "weird \xff"))
    assert (rc, out) == (1, "")
    assert error_line(err) == "remotemedia: error: UNKNOWN: weird \xff"


def test_server_that_never_answers(srv, files):
    srv.on("ExecutePipeline", lambda req, ctx: srv.hang(ctx))
    rc, out, err = cli("run", str(files / "m.json"), "--input", "x=" + str(files / "in.json"),
                       "--server", srv.address, "--timeout-ms", "300")
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: error: DEADLINE_EXCEEDED kind=deadline_exceeded: "
                               "Deadline Exceeded")


def test_node_types_not_utf8_refused(srv):
    srv.on("ListNodeTypes", lambda req, ctx: b"\x0a\x03\x0a\x01\xff")
    rc, out, err = cli("nodes", "--server", srv.address, "--json")
    assert (rc, out) == (1, "")  # was 0 printing [] (the type lost)
    assert error_line(err) == ("remotemedia: the server's response: remotemedia.v1.ListNode"
                               "TypesResponse: string field 'node_types.name' is not valid UTF-8 "
                               "at byte 0: strings must be UTF-8 without NUL bytes (send such "
                               "data as binary)")


def test_health_unknown_state(srv):
    srv.on("Check", lambda req, ctx: health_pb2.HealthCheckResponse(status=99))
    rc, out, err = cli("health", "--server", srv.address)
    assert (rc, out) == (1, "UNKNOWN\n")
    assert error_line(err) == "remotemedia: the server is UNKNOWN"


def test_stream_inconsistent_result_refused(srv, files):
    def handler(requests, ctx):
        next(requests)
        yield pb.StreamResponse(ready=pb.StreamReady(session_id="s", pipeline_name="h"))
        res = pb.StreamResponse(result=pb.StreamResult(sequence=1))
        res.result.outputs["x"].items.add().CopyFrom(audio_buffer(b"\0" * 6, channels=1, fmt=1))
        yield res
        srv.hang(ctx)  # the client must end the call itself
    srv.on("StreamPipeline", handler)
    rc, out, err = cli("stream", str(files / "tone.wav"), "--manifest", str(files / "m.json"),
                       "--server", srv.address, "--chunk-ms", "10")
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: the server's response: output 'x' item 0: audio: 6 "
                               "bytes is not a whole number of 1-channel f32 frames (4 bytes each)")


def test_stream_metrics_not_finite_refused(srv, files):
    def handler(requests, ctx):
        next(requests)
        yield pb.StreamResponse(ready=pb.StreamReady(session_id="s", pipeline_name="h"))
        m = pb.StreamResponse(metrics=pb.StreamMetrics(final=False))
        m.metrics.metrics.total_duration_ms = float("nan")
        yield m
        srv.hang(ctx)
    srv.on("StreamPipeline", handler)
    rc, out, err = cli("stream", str(files / "tone.wav"), "--manifest", str(files / "m.json"),
                       "--server", srv.address, "--chunk-ms", "10", "--metrics")
    assert (rc, out) == (1, "")
    assert error_line(err) == ("remotemedia: the server's response: metrics: total_duration_ms "
                               "is nan (metrics are finite)")
