"""config.py - RemoteConfig: where the server is and how to reach it (TLS, mutual TLS,
bearer token, load balancing, keepalive, message sizes, default deadline, retries)."""
import json
import math
import numbers
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import grpc

__all__ = ["RemoteConfig", "RetryPolicy", "DEFAULT_ADDRESS", "SERVER_ENV"]

Pem = Union[bytes, str, "os.PathLike[str]", None]

#: The server's default max-message-bytes (64 MiB); gRPC's own default is only 4 MiB.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: Where RemoteConfig() (and so Client() and Pipeline()) connect unless told otherwise...
DEFAULT_ADDRESS = "localhost:50051"
#: ...or unless this environment variable names another server.
SERVER_ENV = "RM_SERVER"

#: The methods the default retry policy covers: ExecutePipeline is a pure function of its
#: request, so sending it again is safe.
RETRIED_METHODS = ({"service": "remotemedia.v1.PipelineService", "method": "ExecutePipeline"},)
_RETRYABLE = tuple(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)


def default_address() -> str:
    """$RM_SERVER when set (and not empty), otherwise localhost:50051."""
    return os.environ.get(SERVER_ENV) or DEFAULT_ADDRESS


def check_timeout(value: Any, what: str) -> Optional[float]:
    """The deadline to give gRPC for a timeout in seconds: None for None or inf (no
    deadline; gRPC itself turns inf into a deadline that has already passed), else the
    number. nan, zero, negatives and non-numbers would fail every call at once, so they
    raise ValueError naming `what`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or math.isnan(value) or value <= 0:
        raise ValueError("%s must be a number of seconds > 0 (None or inf: no deadline), "
                         "not %r" % (what, value))
    return None if math.isinf(value) else float(value)


def _seconds(v: float) -> str:
    return ("%.9f" % v).rstrip("0").rstrip(".") + "s"


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's retry policy for ExecutePipeline, set through the channel's service config
    (gRPC core does the retrying: attempts, backoff with jitter). An attempt is retried
    when it ends with one of retryable_codes before the call is committed (response
    headers received, or the request larger than per_rpc_buffer_bytes) - including when
    the server dies mid-run, so a request may run twice. See RemoteConfig.retry.

    Args:
        max_attempts: the first call and its retries, 2..5 (gRPC caps it at 5).
        initial_backoff_s, max_backoff_s, backoff_multiplier: the n-th retry waits a random
            time in [0, min(initial_backoff_s * backoff_multiplier^(n-1), max_backoff_s)].
        retryable_codes: gRPC status names retried: UNAVAILABLE (no server reachable, a
            draining replica) and RESOURCE_EXHAUSTED (a full server) by default.
        per_rpc_buffer_bytes: requests larger than this are sent once, not retried (gRPC
            keeps a request until it commits; its default is 256 KiB, too small for audio).
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    backoff_multiplier: float = 2.0
    retryable_codes: Tuple[str, ...] = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")
    per_rpc_buffer_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or not 2 <= self.max_attempts <= 5:
            raise ValueError("RetryPolicy: max_attempts must be 2..5 (gRPC's limit)")
        for name in ("initial_backoff_s", "max_backoff_s", "backoff_multiplier"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise ValueError("RetryPolicy: %s must be a number > 0" % name)
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("RetryPolicy: max_backoff_s must be >= initial_backoff_s")
        codes = tuple(self.retryable_codes)
        if not codes or any(c not in _RETRYABLE for c in codes):
            raise ValueError("RetryPolicy: retryable_codes must be gRPC status names among %s"
                             % ", ".join(_RETRYABLE))
        object.__setattr__(self, "retryable_codes", codes)
        if self.per_rpc_buffer_bytes < 0:
            raise ValueError("RetryPolicy: per_rpc_buffer_bytes must be >= 0")

    def method_config(self) -> Dict[str, Any]:
        """The service config's methodConfig entry (JSON form)."""
        return {"name": [dict(m) for m in RETRIED_METHODS],
                "retryPolicy": {"maxAttempts": self.max_attempts,
                                "initialBackoff": _seconds(self.initial_backoff_s),
                                "maxBackoff": _seconds(self.max_backoff_s),
                                "backoffMultiplier": self.backoff_multiplier,
                                "retryableStatusCodes": list(self.retryable_codes)}}


#: A metadata key gRPC accepts, matched with fullmatch: re.match's "$" also matches before
#: a final newline, which let "x-id\n" through.
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")


def _unprintable(text: str) -> int:
    """The index of the first character gRPC refuses in a metadata value (anything but
    printable ASCII), or -1."""
    for i, c in enumerate(text):
        if not " " <= c <= "~":
            return i
    return -1


def _check_token(token: Any) -> None:
    """gRPC refuses a non-ASCII or control character in the authorization header only at
    call time, as a bare "metadata was invalid"; say so up front. The message never shows
    the token."""
    if not isinstance(token, str) or not token:
        raise ValueError("RemoteConfig: token must be a non-empty string")
    bad = _unprintable(token)
    if bad >= 0:
        raise ValueError("RemoteConfig: token holds a non-ASCII or control character at index "
                         "%d; a bearer token is printable ASCII" % bad)


def _metadata_entry(key: Any, value: Any) -> Tuple[str, Union[str, bytes]]:
    """(key, value) as gRPC takes it, or ValueError naming the key for what gRPC would
    refuse at call time as a bare "metadata was invalid". Keys ending in -bin carry bytes
    (a str is sent UTF-8 encoded); other values are printable ASCII."""
    key = str(key)
    if not _METADATA_KEY.fullmatch(key):
        raise ValueError("RemoteConfig: metadata key %r must be lowercase ASCII letters, digits, "
                         "'-', '_' or '.'" % key)
    if key.endswith("-bin"):
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise ValueError("RemoteConfig: metadata %r (a -bin key) takes bytes, not %s"
                             % (key, type(value).__name__))
        return key, bytes(value)
    value = str(value)
    bad = _unprintable(value)
    if bad >= 0:
        raise ValueError("RemoteConfig: metadata %r holds %r at index %d; values are printable "
                         "ASCII (binary ones need a key ending in -bin)" % (key, value[bad], bad))
    return key, value


#: The PEM block each file must hold: gRPC takes anything and then fails to connect
#: ("empty address list" after every retry) when it holds none. A certificate may carry
#: any label OpenSSL reads one under (gRPC reads them with PEM_read_bio_X509_AUX): the old
#: "X509 CERTIFICATE" and "TRUSTED CERTIFICATE" (openssl x509 -trustout) too.
_PEM_BLOCKS = {"certificate": re.compile(rb"-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----"),
               "private key": re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")}


def _read_pem(value: Pem, what: str, block: str = "certificate") -> Optional[bytes]:
    """PEM bytes as given, or the contents of the file a str/PathLike names; ValueError
    naming the file when it holds a NUL byte or no PEM `block` ("certificate" or "private
    key")."""
    got = _load_pem(value, what, block)
    return None if got is None else got[0]


def _load_pem(value: Pem, what: str, block: str = "certificate") -> Optional[Tuple[bytes, str]]:
    """(PEM bytes, where they came from for messages), as _read_pem checks them."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        pem, source = bytes(value), "the bytes given"
    else:
        text = os.fspath(value)
        if text.lstrip().startswith("-----BEGIN"):
            pem, source = text.encode("ascii", "replace"), "the PEM text given"
        else:
            pem, source = _read_file(text, what), repr(text)
    nul = pem.find(b"\0")
    if nul >= 0:  # gRPC would read only the text before it
        raise ValueError("%s: NUL byte at offset %d in %s: PEM is text" % (what, nul, source))
    if not _PEM_BLOCKS[block].search(pem):
        raise ValueError("%s: no PEM %s in %s (a '-----BEGIN %s-----' block)"
                         % (what, block, source, block.upper()))
    return pem, source


_CERT_BEGIN = re.compile(rb"^-----BEGIN ((?:TRUSTED |X509 )?CERTIFICATE)-----", re.M)
_ANY_BEGIN = re.compile(rb"^-----BEGIN ", re.M)


def _cert_blocks(pem: bytes) -> List[Tuple[int, str]]:
    """(line, text) of each certificate block, relabelled "CERTIFICATE" (the ssl module reads
    no TRUSTED CERTIFICATE; its DER starts with the certificate). A block runs to its END
    line, or, cut short, to the next BEGIN or the end of the text."""
    blocks = []
    for m in _CERT_BEGIN.finditer(pem):
        nxt = _ANY_BEGIN.search(pem, m.end())
        stop = nxt.start() if nxt else len(pem)
        end = re.compile(rb"^-----END " + m.group(1) + rb"-----", re.M).search(pem, m.end(), stop)
        body = pem[m.end():end.start() if end else stop]
        text = b"-----BEGIN CERTIFICATE-----" + body + (b"-----END CERTIFICATE-----\n" if end else b"")
        blocks.append((pem.count(b"\n", 0, m.start()) + 1, text.decode("ascii", "replace")))
    return blocks


def _loads(cadata: str) -> Optional[ssl.SSLError]:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cadata)
    except ssl.SSLError as e:
        return e
    return None


def _check_certificates(pem: bytes, source: str, what: str) -> None:
    """ValueError naming the first certificate block that does not parse, with its number
    and line. gRPC reads a bundle up to its first damaged certificate and silently drops
    the rest: a damaged block before the server's CA made every call fail UNAVAILABLE."""
    blocks = _cert_blocks(pem)
    if blocks and _loads("".join(t for _, t in blocks)) is None:
        return  # all at once (a system bundle holds ~140): one block at a time only to name it
    for n, (line, text) in enumerate(blocks, 1):
        if _loads(text) is None:
            continue
        # the ssl module names OpenSSL's reason only once a certificate has loaded before
        # the failing one: any block that parses will do
        good = next((t for _, t in blocks if _loads(t) is None), "")
        e = _loads(good + text)
        why = "not a certificate"
        if e is not None and e.reason:
            why = e.reason.lower().replace("_", " ")  # OpenSSL's words: "bad end line"
        raise ValueError("%s: certificate %d (line %d) in %s does not parse (%s); the "
                         "certificates after it would be ignored" % (what, n, line, source, why))


def _check_key(key: bytes, key_source: str, chain: bytes, chain_source: str) -> None:
    """ValueError when the key does not parse or is not the key of the chain's first
    certificate (which _check_certificates has parsed). The ssl module checks a key only from
    files: both are written to a private temporary directory (0700, files 0600) and removed
    at once. The empty password is what gRPC gives: an encrypted key fails, no prompt."""
    with tempfile.TemporaryDirectory(prefix="remotemedia-") as d:
        paths = []
        for name, data in (("chain.pem", chain), ("key.pem", key)):
            path = os.path.join(d, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(path)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(paths[0], paths[1],
                                                                     password=b"")
        except ssl.SSLError as e:
            if e.reason == "KEY_VALUES_MISMATCH":
                raise ValueError("client_key: the private key in %s does not match the "
                                 "certificate in client_certificate (%s)"
                                 % (key_source, chain_source)) from None
            raise ValueError("client_key: the private key in %s does not parse (gRPC takes "
                             "an unencrypted PEM key)" % key_source) from None


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("%s: cannot read %r: %s" % (what, path, e.strerror)) from None


# channel arguments max_message_bytes sets (RemoteConfig.options may not)
_SIZE_OPTIONS = ("grpc.max_send_message_length", "grpc.max_receive_message_length")


@dataclass
class RemoteConfig:
    """How to reach a remotemedia server.

    Args:
        address: gRPC target; default $RM_SERVER, else "localhost:50051". E.g. "dns:///rm.svc.cluster.local:50051"
            (with load_balancing="round_robin" this spreads calls over every replica the
            name resolves to), "unix:/run/rm.sock".
        token: bearer token sent as "authorization: Bearer <token>" on every call
            (printable ASCII: anything else is a ValueError here).
        tls: use TLS. Implied by root_certificates / client_certificate.
        root_certificates: PEM CA bundle (bytes, or a file path) that signed the server's
            certificate; None with tls=True uses the system roots.
        client_certificate, client_key: PEM (bytes or file paths) for mutual TLS. When the
            channel is made, each certificate block must parse and the key must parse and
            match the first certificate (ValueError naming the field otherwise).
        server_name: override the name checked against the server certificate
            (grpc.ssl_target_name_override), e.g. when connecting by IP address.
        timeout: default deadline of every call in seconds (a call's own timeout= wins);
            None or float("inf"): no deadline. nan, 0 and negatives raise ValueError.
        load_balancing: "round_robin" or "pick_first" (gRPC's default), set through the
            channel's service config.
        retry: the retry policy of ExecutePipeline, the only method retried (default
            RetryPolicy(): up to 4 attempts on UNAVAILABLE or RESOURCE_EXHAUSTED,
            exponential backoff from 0.1 s to 2 s). gRPC retries an attempt that ends with
            one of those codes before any response headers arrived, within the deadline,
            unless the server's grpc-retry-pushback-ms trailer is -1 (per-request limits).
            That includes a server dying while running the request: the connection drops
            uncommitted and the whole request is sent again (it may run twice), and the
            error raised is the last attempt's, e.g. a refused connection. None turns
            retries off (the first attempt's error is raised).
        keepalive_time_ms, keepalive_timeout_ms, keepalive_permit_without_calls: HTTP/2
            keepalive pings. The server treats pings more often than its
            --min-ping-interval-ms (10 s by default) as abuse.
        max_message_bytes: largest request or response (default 64 MiB, the server's
            default; gRPC's own 4 MiB is too small for minutes of audio).
        wait_for_ready: queue calls while the channel (re)connects instead of failing fast
            with UNAVAILABLE.
        options: extra channel arguments, [(key, value)]; a key the client sets itself
            (grpc.primary_user_agent, grpc.service_config, grpc.enable_retries, keepalive...)
            takes the value given here instead. The message sizes are max_message_bytes
            (the client checks requests against it): grpc.max_send_message_length and
            grpc.max_receive_message_length here are a ValueError.
        metadata: extra metadata sent on every call, [(key, value)]: lowercase keys;
            values printable ASCII, or bytes for keys ending in -bin.
    """

    address: str = field(default_factory=default_address)
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
    retry: Optional[RetryPolicy] = field(default_factory=RetryPolicy)
    options: Sequence[Tuple[str, object]] = field(default_factory=tuple)
    metadata: Sequence[Tuple[str, Union[str, bytes]]] = field(default_factory=tuple, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address:
            raise ValueError("RemoteConfig: address must be a non-empty string like 'host:port'")
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("RemoteConfig: mutual TLS needs both client_certificate and client_key")
        self.call_metadata()  # token and metadata: refused here, not at the first call
        check_timeout(self.timeout, "RemoteConfig: timeout")
        if self.load_balancing not in (None, "round_robin", "pick_first"):
            raise ValueError("RemoteConfig: load_balancing must be 'round_robin' or 'pick_first'")
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise ValueError("RemoteConfig: retry must be a RetryPolicy or None")
        for key in (str(k) for k, _ in self.options):
            if key in _SIZE_OPTIONS:
                raise ValueError("RemoteConfig: options may not set %s: set max_message_bytes "
                                 "(the largest request or response)" % key)

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls or self.root_certificates is not None
                    or self.client_certificate is not None)

    def service_config(self) -> Optional[Dict[str, Any]]:
        """The channel's default service config (load balancing, retries), or None."""
        sc: Dict[str, Any] = {}
        if self.load_balancing:
            sc["loadBalancingConfig"] = [{self.load_balancing: {}}]
        if self.retry is not None:
            sc["methodConfig"] = [self.retry.method_config()]
        return sc or None

    def channel_options(self) -> List[Tuple[str, Any]]:
        """The channel arguments as a list of (key, value)."""
        opts: List[Tuple[str, Any]] = [
            ("grpc.max_receive_message_length", int(self.max_message_bytes)),
            ("grpc.max_send_message_length", int(self.max_message_bytes)),
            ("grpc.primary_user_agent", "remotemedia-python"),
        ]
        if self.load_balancing:
            opts.append(("grpc.lb_policy_name", self.load_balancing))
        sc = self.service_config()
        if sc is not None:
            opts.append(("grpc.service_config", json.dumps(sc)))
        if self.retry is not None:
            opts.append(("grpc.enable_retries", 1))
            opts.append(("grpc.per_rpc_retry_buffer_size", int(self.retry.per_rpc_buffer_bytes)))
        else:
            opts.append(("grpc.enable_retries", 0))
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
        # gRPC keeps the first value of an argument given twice: the caller's replace ours
        given = [(str(k), v) for k, v in self.options]
        keys = {k for k, _ in given}
        return [(k, v) for k, v in opts if k not in keys] + given

    def send_limit(self) -> Optional[int]:
        """The largest message gRPC sends on this config's channels: max_message_bytes;
        None when negative (gRPC: no limit)."""
        limit = int(self.max_message_bytes)
        return None if limit < 0 else limit

    def channel_credentials(self) -> Optional[grpc.ChannelCredentials]:
        """grpc.ChannelCredentials for TLS, or None for a plaintext channel. ValueError
        naming the file when one cannot be read, holds a NUL byte or no PEM certificate /
        key, a certificate block that does not parse, or a key that does not parse or does
        not match the client certificate: gRPC would fail every handshake instead."""
        if not self.uses_tls:
            return None
        ca = _load_pem(self.root_certificates, "root_certificates")
        key = _load_pem(self.client_key, "client_key", "private key")
        chain = _load_pem(self.client_certificate, "client_certificate")
        if ca is not None:
            _check_certificates(ca[0], ca[1], "root_certificates")
        if chain is not None and key is not None:
            _check_certificates(chain[0], chain[1], "client_certificate")
            _check_key(key[0], key[1], chain[0], chain[1])
        return grpc.ssl_channel_credentials(
            root_certificates=ca[0] if ca else None, private_key=key[0] if key else None,
            certificate_chain=chain[0] if chain else None)

    def call_metadata(self) -> Tuple[Tuple[str, Union[str, bytes]], ...]:
        """Metadata sent on every call: the bearer token and any extra entries. Checked on
        every call (the fields may change after construction): ValueError naming the field
        for what gRPC would refuse."""
        md: List[Tuple[str, Union[str, bytes]]] = []
        if self.token is not None:
            _check_token(self.token)
            md.append(("authorization", "Bearer " + self.token))
        md.extend(_metadata_entry(k, v) for k, v in self.metadata)
        return tuple(md)
