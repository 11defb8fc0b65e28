"""A call whose answer never reaches its client is logged as what the client got, not OK
(issue 12): the server's send of an OK answer fails because the client reset the stream, and
the call's log line says CANCELLED with handler_status OK and error_kind client_gone.

Deterministic with a hand-made HTTP/2 client: it opens its stream windows at 0 bytes, so the
server can send the response's headers but not its message or status; when the headers have
come, the client resets the stream, and the server's send batch fails."""
import re
import socket
import struct
import time

import numpy as np
import pytest

from conftest import assert_serving, audio_request, chain
from rmtest.h2 import (ACK, CANCEL, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING,
                       RST_STREAM, SETTINGS, SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_UPDATE, frame,
                       headers_block, read_frame)
from rmtest.server import RunningServer
from remotemedia.v1 import pipeline_service_pb2_grpc as psg

EXECUTE = "/remotemedia.v1.PipelineService/ExecutePipeline"


def reset_after_headers(srv, req, pipeline, hold=False):
    """Sends req from a client whose stream windows are 0, resets the stream once the
    response's headers have come, and returns the call's log line (None if there is none
    with client_gone). hold: the client never resets but waits (answering pings) until the
    server resets the stream, and the line is the one with an error_kind."""
    body = req.SerializeToString()
    message = b"\x00" + struct.pack(">I", len(body)) + body
    assert len(message) < 65535  # within the server's initial windows
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                     frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0)))
        headers = headers_block(srv.port, EXECUTE)
        pieces = [message[i:i + 16384] for i in range(0, len(message), 16384)]  # max frame
        sock.sendall(frame(HEADERS, END_HEADERS, 1, headers) +
                     b"".join(frame(DATA, END_STREAM if i == len(pieces) - 1 else 0, 1, piece)
                              for i, piece in enumerate(pieces)))
        # the server answers: its settings, then the response's headers; its message waits
        # for window the client never gives
        deadline = time.monotonic() + 30
        got_headers = False
        while not got_headers:
            assert time.monotonic() < deadline
            kind, flags, stream, payload = read_frame(sock)
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                sock.sendall(frame(PING, ACK, 0, payload))
            elif stream == 1:
                assert kind == HEADERS and not flags & END_STREAM, (kind, flags)
                got_headers = True
            else:
                assert kind in (WINDOW_UPDATE, SETTINGS, PING), kind
        if hold:
            while True:
                assert time.monotonic() < deadline
                kind, flags, stream, payload = read_frame(sock)
                if kind == PING and not flags & ACK:
                    sock.sendall(frame(PING, ACK, 0, payload))
                elif stream == 1:  # the status (trailers) or a reset: the stream is over
                    assert kind == RST_STREAM or (kind == HEADERS and flags & END_STREAM), kind
                    break
            ev = srv.wait_for_event("call", 30,
                                    lambda e: e.get("pipeline") == pipeline and "error_kind" in e)
        else:
            sock.sendall(frame(RST_STREAM, 0, 1, struct.pack(">I", CANCEL)))
            ev = srv.wait_for_event("call", 30,
                                    lambda e: e.get("pipeline") == pipeline and "client_gone" in e)
        sock.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
    return ev


def assert_client_gone(ev):
    assert ev is not None
    assert ev["status"] == "CANCELLED" and ev["code"] == 1, ev
    assert ev["handler_status"] == "OK" and ev["error_kind"] == "client_gone", ev
    assert ev["client_gone"] is True, ev


def test_ok_answer_the_client_reset_is_logged_as_cancelled():
    with RunningServer() as srv:
        req = audio_request(chain(("src", "PassThrough", {}), name="client-gone"),
                            samples=np.float32([0.25, -0.25]))
        assert_client_gone(reset_after_headers(srv, req, "client-gone"))
        with srv.channel() as ch:
            assert_serving(psg.PipelineServiceStub(ch))


def budget_in_use(srv):
    m = re.search(r"^remotemedia_memory_budget_bytes (\d+)$", srv.metrics_text(), re.M)
    return int(m.group(1))


def test_a_borrowed_answer_the_client_reset_is_released():
    """A response of 32 KiB and more is sent from slices pointing at the call's memory. The
    core keeps a message it could not send (the client reset the stream) until its call is
    destroyed: that must not wait for the slices (it once did, so the call was never released,
    nor its share of --max-memory, and shutdown waited for it for ever)."""
    with RunningServer(["--metrics-listen", "127.0.0.1:0"]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        req = audio_request(chain(("src", "PassThrough", {}), name="borrowed-gone"),
                            samples=np.arange(10000, dtype=np.float32))
        assert stub.ExecutePipeline(req, timeout=30).outputs["src"].items[0].audio.samples \
            == req.inputs["src"].audio.samples  # its compiled pipeline is now in the cache
        srv.wait_for_event("call", 30, lambda e: e.get("pipeline") == "borrowed-gone")
        idle = budget_in_use(srv)
        assert_client_gone(reset_after_headers(srv, req, "borrowed-gone"))
        deadline = time.monotonic() + 10
        while budget_in_use(srv) != idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert budget_in_use(srv) == idle
        assert_serving(stub)
    # and the server stopped at once on SIGTERM (RunningServer: exit status 0)


def test_an_answer_the_client_does_not_take_is_cancelled_after_the_send_timeout():
    """A client that reads nothing (windows of 0 bytes, answering pings) held its response, the
    request's and the response's memory with it, for as long as its connection lived: one such
    client kept a 64 MiB server refusing every other call "retry later" for minutes. A response
    holding 64 KiB or more that is not taken within --send-timeout-ms is cancelled
    (DEADLINE_EXCEEDED, error_kind send_timeout) and its memory given back."""
    with RunningServer(["--metrics-listen", "127.0.0.1:0", "--send-timeout-ms", "1000"]) as srv, \
            srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        req = audio_request(chain(("src", "PassThrough", {}), name="never-read"),
                            samples=np.arange(12000, dtype=np.float32))  # 48 KB each way
        stub.ExecutePipeline(req, timeout=30)  # its compiled pipeline is now in the cache
        srv.wait_for_event("call", 30, lambda e: e.get("pipeline") == "never-read")
        idle = budget_in_use(srv)
        t0 = time.monotonic()
        ev = reset_after_headers(srv, req, "never-read", hold=True)
        held = time.monotonic() - t0
        assert 0.9 < held < 20, held
        assert (ev["status"], ev["handler_status"], ev["error_kind"]) == \
            ("DEADLINE_EXCEEDED", "OK", "send_timeout"), ev
        assert ev["error"] == "the client did not take the response within 1000 ms (send-timeout-ms)"
        assert "client_gone" not in ev
        text = srv.metrics_text()  # counted apart: the handler's OK is what the counters count
        assert re.search(r"^remotemedia_send_timeouts_total 1$", text, re.M)
        deadline = time.monotonic() + 10
        while budget_in_use(srv) != idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert budget_in_use(srv) == idle
        assert_serving(stub)


TOKEN = "cut-token-0123456789"


@pytest.mark.parametrize("auth", [False, True], ids=["message-with-call", "read-after-auth"])
def test_a_request_cut_off_by_the_client_is_counted_as_cancelled(auth):
    """The client resets its stream before the request message is whole: the call is logged
    and counted CANCELLED (what the client saw), not as a bad request. With tokens the server
    reads the message itself once the call passed the check (not the core before it)."""
    args = ["--auth-tokens", TOKEN] if auth else []
    with RunningServer(["--metrics-listen", "127.0.0.1:0"] + args) as srv:
        body = audio_request(chain(("src", "PassThrough", {}), name="cut"),
                             samples=np.float32([0.5] * 64)).SerializeToString()
        message = b"\x00" + struct.pack(">I", len(body)) + body
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
            headers = headers_block(srv.port, EXECUTE,
                                    [("authorization", "Bearer " + TOKEN)] if auth else [])
            sock.sendall(frame(HEADERS, END_HEADERS, 1, headers) +
                         frame(DATA, 0, 1, message[:len(message) // 2]))
            time.sleep(0.2)
            sock.sendall(frame(RST_STREAM, 0, 1, struct.pack(">I", CANCEL)))
            ev = srv.wait_for_event("call", 30, lambda e: e["method"].endswith("/ExecutePipeline"))
            sock.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
        assert ev is not None
        assert (ev["status"], ev["code"], ev["client_gone"]) == ("CANCELLED", 1, True), ev
        assert ev["error"] == ("the call ended before its request message arrived: the client "
                               "cancelled, its deadline passed or its connection closed"), ev
        handled = dict(re.findall(r'^grpc_server_handled_total\{[^}]*grpc_method="ExecutePipeline",'
                                  r'grpc_code="(\w+)"\} (\d+)$', srv.metrics_text(), re.M))
        assert (handled["Canceled"], handled["InvalidArgument"]) == ("1", "0"), handled
        with srv.channel() as ch:
            assert_serving(psg.PipelineServiceStub(ch), TOKEN if auth else None)
