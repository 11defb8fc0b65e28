"""config.py - RemoteConfig: where the server is and how to reach it (TLS, mutual TLS,
bearer token, load balancing, keepalive, message sizes, default deadline)."""
import json
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

import grpc

__all__ = ["RemoteConfig"]

Pem = Union[bytes, str, "os.PathLike[str]", None]

#: The server's default max-message-bytes (64 MiB); gRPC's own default is only 4 MiB.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _read_pem(value, what):
    """PEM bytes as given, or the contents of the file a str/PathLike names."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = os.fspath(value)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode("ascii")
    try:
        with open(text, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("%s: cannot read %r: %s" % (what, text, e.strerror)) from None


@dataclass
class RemoteConfig:
    """How to reach a remotemedia server.

    Args:
        address: gRPC target, e.g. "localhost:50051", "dns:///rm.svc.cluster.local:50051"
            (with load_balancing="round_robin" this spreads calls over every replica the
            name resolves to), "unix:/run/rm.sock".
        token: bearer token sent as "authorization: Bearer <token>" on every call.
        tls: use TLS. Implied by root_certificates / client_certificate.
        root_certificates: PEM CA bundle (bytes, or a file path) that signed the server's
            certificate; None with tls=True uses the system roots.
        client_certificate, client_key: PEM (bytes or file paths) for mutual TLS.
        server_name: override the name checked against the server certificate
            (grpc.ssl_target_name_override), e.g. when connecting by IP address.
        timeout: default deadline of every call in seconds (a call's own timeout= wins).
        load_balancing: "round_robin" or "pick_first" (gRPC's default), set through the
            channel's service config.
        keepalive_time_ms, keepalive_timeout_ms, keepalive_permit_without_calls: HTTP/2
            keepalive pings. The server treats pings more often than its
            --min-ping-interval-ms (10 s by default) as abuse.
        max_message_bytes: largest request or response (default 64 MiB, the server's
            default; gRPC's own 4 MiB is too small for minutes of audio).
        wait_for_ready: queue calls while the channel (re)connects instead of failing fast
            with UNAVAILABLE.
        options: extra channel arguments, [(key, value)], applied last.
        metadata: extra metadata sent on every call, [(key, value)].
    """

    address: str = "localhost:50051"
    token: Optional[str] = field(default=None, repr=False)  # kept out of logs and tracebacks
    tls: bool = False
    root_certificates: Pem = None
    client_certificate: Pem = None
    client_key: Pem = field(default=None, repr=False)
    server_name: Optional[str] = None
    timeout: Optional[float] = None
    load_balancing: Optional[str] = None
    keepalive_time_ms: Optional[int] = None
    keepalive_timeout_ms: Optional[int] = None
    keepalive_permit_without_calls: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    wait_for_ready: bool = False
    options: Sequence[Tuple[str, object]] = field(default_factory=tuple)
    metadata: Sequence[Tuple[str, str]] = field(default_factory=tuple, repr=False)

    def __post_init__(self):
        if not isinstance(self.address, str) or not self.address:
            raise ValueError("RemoteConfig: address must be a non-empty string like 'host:port'")
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("RemoteConfig: mutual TLS needs both client_certificate and client_key")
        if self.token is not None and (not isinstance(self.token, str) or not self.token
                                       or any(c in self.token for c in "\r\n")):
            raise ValueError("RemoteConfig: token must be a non-empty single-line string")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError("RemoteConfig: timeout must be > 0 seconds")
        if self.load_balancing not in (None, "round_robin", "pick_first"):
            raise ValueError("RemoteConfig: load_balancing must be 'round_robin' or 'pick_first'")

    @property
    def uses_tls(self):
        return bool(self.tls or self.root_certificates is not None
                    or self.client_certificate is not None)

    def channel_options(self):
        """The channel arguments as a list of (key, value)."""
        opts = [
            ("grpc.max_receive_message_length", int(self.max_message_bytes)),
            ("grpc.max_send_message_length", int(self.max_message_bytes)),
            ("grpc.primary_user_agent", "remotemedia-python"),
        ]
        if self.load_balancing:
            opts.append(("grpc.lb_policy_name", self.load_balancing))
            opts.append(("grpc.service_config",
                         json.dumps({"loadBalancingConfig": [{self.load_balancing: {}}]})))
        if self.keepalive_time_ms is not None:
            opts.append(("grpc.keepalive_time_ms", int(self.keepalive_time_ms)))
            # without this, pings stop after two frames without data
            opts.append(("grpc.http2.max_pings_without_data", 0))
        if self.keepalive_timeout_ms is not None:
            opts.append(("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_ms)))
        if self.keepalive_permit_without_calls:
            opts.append(("grpc.keepalive_permit_without_calls", 1))
        if self.server_name:
            opts.append(("grpc.ssl_target_name_override", self.server_name))
        opts.extend(tuple(o) for o in self.options)
        return opts

    def channel_credentials(self):
        """grpc.ChannelCredentials for TLS, or None for a plaintext channel."""
        if not self.uses_tls:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.root_certificates, "root_certificates"),
            private_key=_read_pem(self.client_key, "client_key"),
            certificate_chain=_read_pem(self.client_certificate, "client_certificate"))

    def call_metadata(self):
        """Metadata sent on every call: the bearer token and any extra entries."""
        md = []
        if self.token:
            md.append(("authorization", "Bearer " + self.token))
        md.extend((str(k), str(v)) for k, v in self.metadata)
        return tuple(md)
