"""Bearer tokens on every RPC but health (health too with --health-needs-token, probes then on
the metrics listener's /healthz and /readyz), and TLS / mutual TLS handshakes, with
certificates made by openssl for the run (rmtest.pki)."""

import json
import os
import signal
import subprocess
import time

import grpc
import pytest

from conftest import assert_serving, audio_request, chain, sigterm_with_a_call_held, trailers
from rmtest.pki import make_pki
from rmtest.server import RunningServer, grpc_counter, server_binary
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g

TOKENS = ["s3cret-token-one", "another.token/2"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    path = make_pki(tmp_path_factory.mktemp("certs"))

    def read(n):
        with open(path(n), "rb") as f:
            return f.read()
    return {"read": read, "path": path}


def bad_auth(callable_, *args, metadata=None):
    with pytest.raises(grpc.RpcError) as e:
        callable_(*args, metadata=metadata, timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return e.value


def test_bearer_tokens(tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text("# accepted tokens\n%s\n\n  %s  \n" % tuple(TOKENS))
    with RunningServer(["--auth-token-file", str(token_file)]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        req = audio_request(chain(("src", "PassThrough", {})))
        err = bad_auth(stub.ExecutePipeline, req)
        assert err.details() == "missing bearer token (authorization: Bearer <token>)"
        assert trailers(err)["rm-error-kind"] == "unauthenticated"
        err = bad_auth(stub.ExecutePipeline, req, metadata=[("authorization", "Bearer wrong")])
        assert err.details() == "the bearer token is not valid"
        bad_auth(stub.ExecutePipeline, req, metadata=[("authorization", "Bearer " + TOKENS[0][:-1])])
        bad_auth(stub.ExecutePipeline, req, metadata=[("authorization", "Bearer " + TOKENS[0] + "x")])
        err = bad_auth(stub.ExecutePipeline, req, metadata=[("authorization", "Basic " + TOKENS[0])])
        assert err.details() == "the authorization header must be 'Bearer <token>'"
        bad_auth(stub.GetVersion, ps.GetVersionRequest())
        bad_auth(stub.ListNodeTypes, ps.ListNodeTypesRequest())
        for tok in TOKENS:
            md = [("authorization", "Bearer " + tok)]
            r = stub.ExecutePipeline(req, metadata=md, timeout=10)
            assert r.outputs["src"].items[0].audio.sample_rate == 16000
            assert stub.GetVersion(ps.GetVersionRequest(), metadata=md).protocol_version == "1.0"
        # reflection needs the token too
        refl = r1g.ServerReflectionStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            list(refl.ServerReflectionInfo(iter([r1.ServerReflectionRequest(list_services="")]), timeout=10))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = list(refl.ServerReflectionInfo(iter([r1.ServerReflectionRequest(list_services="")]),
                                            metadata=[("authorization", "Bearer " + TOKENS[1])], timeout=10))
        assert len(ok[0].list_services_response.service) == 4
        # health is open: load balancers probe it without credentials
        h = health_pb2_grpc.HealthStub(ch)
        assert h.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    log = "\n".join(srv.raw_log())
    for tok in TOKENS:
        assert tok not in log


def test_health_needs_a_token_with_health_needs_token():
    """--health-needs-token: Check and Watch are refused without a valid token (their messages
    are never read: the method's received-message counter stays at the authenticated calls),
    served with one; the Watch (a server-streaming call read after the check) sees the drain;
    probes without a token use /readyz and /healthz."""
    md = [("authorization", "Bearer " + TOKENS[0])]
    srv = RunningServer(["--auth-tokens", ",".join(TOKENS), "--health-needs-token",
                         "--metrics-listen", "127.0.0.1:0", "--grace-ms", "20000",
                         "--log-level", "debug"],
                        ready_metadata=md).start()
    try:
        with srv.channel() as ch:
            h = health_pb2_grpc.HealthStub(ch)
            req = health_pb2.HealthCheckRequest(service="remotemedia.v1.PipelineService")
            err = bad_auth(h.Check, req)
            assert err.details() == "missing bearer token (authorization: Bearer <token>)"
            err = bad_auth(h.Check, req, metadata=[("authorization", "Bearer wrong")])
            assert err.details() == "the bearer token is not valid"
            with pytest.raises(grpc.RpcError) as e:
                next(h.Watch(req, timeout=10))
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert h.Check(req, metadata=md, timeout=10).status == SERVING
            with pytest.raises(grpc.RpcError) as e:
                h.Check(health_pb2.HealthCheckRequest(service="nope"), metadata=md, timeout=10)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            watch = h.Watch(req, metadata=[("authorization", "Bearer " + TOKENS[1])], timeout=60)
            assert next(watch).status == SERVING
            assert srv.http_get("/readyz") == (200, "SERVING\n")
            assert srv.http_get("/healthz") == (200, "ok\n")
            text = srv.metrics_text()
            assert grpc_counter(text, "grpc_server_handled_total", "Check",
                                grpc_code="Unauthenticated") == 2
            assert grpc_counter(text, "grpc_server_handled_total", "Watch",
                                grpc_code="Unauthenticated") == 1
            # the readiness wait's Checks and the two above with the token were read, no other
            received = grpc_counter(text, "grpc_server_msg_received_total", "Check")
            assert received == grpc_counter(text, "grpc_server_started_total", "Check") - 2
            assert grpc_counter(text, "grpc_server_msg_received_total", "Watch") == 1
            fut = sigterm_with_a_call_held(srv, ch, md)
            assert next(watch).status == NOT_SERVING
            assert srv.http_get("/readyz") == (503, "NOT_SERVING\n")
            assert srv.http_get("/healthz") == (200, "ok\n")  # draining is alive
            assert [n.state for n in fut.result().node_results] == [1, 1]
        assert srv.wait_exit() == 0
    finally:
        srv.kill()


def test_health_needs_token_without_tokens_is_refused():
    e = dict(os.environ)
    for k in ("RM_AUTH_TOKEN_FILE", "RM_AUTH_TOKENS", "RM_HEALTH_NEEDS_TOKEN"):
        e.pop(k, None)
    p = subprocess.run([server_binary(), "--listen", "127.0.0.1:0", "--health-needs-token"],
                       capture_output=True, timeout=60, env=e)
    assert p.returncode == 2, p.stderr
    events = [json.loads(line) for line in p.stderr.decode().splitlines() if line.startswith("{")]
    assert [x["error"] for x in events if x.get("event") == "startup_failed"] == [
        "health-needs-token is set but no tokens are configured (set auth-token-file or "
        "auth-tokens)"]


def test_tokens_from_environment():
    with RunningServer(["--warm-call=true"], env={"RM_AUTH_TOKENS": ",".join(TOKENS)}) as srv, \
            srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        bad_auth(stub.GetVersion, ps.GetVersionRequest())
        stub.GetVersion(ps.GetVersionRequest(), metadata=[("authorization", "Bearer " + TOKENS[1])])
    cfg = srv.events("config")[0]
    assert cfg["auth_tokens"] == "<redacted>"
    # the server's own warm call sends one of its tokens: it runs the whole call path
    (warm,) = srv.events("warm_call")
    assert warm["code"] == 0 and warm["level"] == "info" and warm["response_bytes"] > 65536
    assert TOKENS[0] not in "\n".join(srv.raw_log())


def test_tls(certs):
    args = ["--tls-cert", certs["path"]("server.pem"), "--tls-key", certs["path"]("server.key"),
            "--warm-call=true"]
    with RunningServer(args, tls_root=certs["read"]("ca.pem")) as srv:
        with srv.channel() as ch:
            stub = psg.PipelineServiceStub(ch)
            assert_serving(stub)
        # a plaintext client cannot talk to it
        with grpc.insecure_channel(srv.address()) as plain:
            with pytest.raises(grpc.RpcError) as e:
                psg.PipelineServiceStub(plain).GetVersion(ps.GetVersionRequest(), timeout=3)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        # nor one that does not trust its CA
        creds = grpc.ssl_channel_credentials(certs["read"]("otherca.pem"))
        with srv.channel(credentials=creds) as ch:
            with pytest.raises(grpc.RpcError) as e:
                psg.PipelineServiceStub(ch).GetVersion(ps.GetVersionRequest(), timeout=3)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert srv.events("listening")[0]["tls"] is True
    (warm,) = srv.events("warm_call")  # through the TLS port, trusting the server's certificate
    assert warm["code"] == 0 and warm["level"] == "info" and warm["response_bytes"] > 65536


def checks_through_the_port(srv, path):
    """GET path on the metrics port; asserts it made exactly one health Check through the gRPC
    port (none is younger than 0.5 s: the caller waited), and returns (status, body)."""
    def started():
        return grpc_counter(srv.metrics_text(), "grpc_server_started_total", "Check")
    before = started()
    got = srv.http_get(path)
    assert started() == before + 1
    return got


def test_http_health_checks_through_the_tls_port(certs, tmp_path):
    """With TLS the server calls its own port over TLS, trusting exactly the certificate it
    presents (also after a reload swaps it for one of another CA): /healthz and /readyz are
    real checks, no start-up warning; a drain is seen."""
    md = [("authorization", "Bearer " + TOKENS[0])]
    cert, key = tmp_path / "cert.pem", tmp_path / "cert.key"
    cert.write_bytes(certs["read"]("server.pem"))
    key.write_bytes(certs["read"]("server.key"))
    args = ["--tls-cert", str(cert), "--tls-key", str(key), "--metrics-listen", "127.0.0.1:0",
            "--auth-tokens", TOKENS[0], "--health-needs-token"]
    srv = RunningServer(args + ["--grace-ms", "20000", "--log-level", "debug"],
                        tls_root=certs["read"]("ca.pem"), ready_metadata=md).start()
    try:
        assert srv.events("health_probes") == []
        assert checks_through_the_port(srv, "/healthz") == (200, "ok\n")
        time.sleep(0.6)
        assert checks_through_the_port(srv, "/readyz") == (200, "SERVING\n")
        # another CA's certificate: clients trusting `ca` no longer can, the server itself can
        cert.write_bytes(certs["read"]("intruder.pem"))
        key.write_bytes(certs["read"]("intruder.key"))
        srv.signal(signal.SIGHUP)
        assert srv.wait_for_event("reloaded", 10)["changed"] == ["tls"]
        time.sleep(0.6)
        assert checks_through_the_port(srv, "/readyz") == (200, "SERVING\n")
        cert.write_bytes(certs["read"]("server.pem"))
        key.write_bytes(certs["read"]("server.key"))
        srv.signal(signal.SIGHUP)
        assert srv.wait_for_count("reloaded", 2, 10)
        time.sleep(0.6)
        with srv.channel() as ch:  # the drain: NOT_SERVING, still alive
            fut = sigterm_with_a_call_held(srv, ch, md)
            assert srv.wait_for_event("draining", 10)
            assert srv.http_get("/readyz") == (503, "NOT_SERVING\n")
            assert srv.http_get("/healthz") == (200, "ok\n")
            fut.result()
        assert srv.wait_exit() == 0
    finally:
        srv.kill()


def test_http_health_with_required_client_certificates_says_what_it_did_not_check(certs):
    """Requiring client certificates, the server holds no client identity to call its own port:
    /healthz says the process answers, /readyz gives the health service's status, start-up
    warns of it with --health-needs-token, and the warm call is skipped. Requested but not
    required, it calls itself without one."""
    r = certs["read"]
    good = grpc.ssl_channel_credentials(r("ca.pem"), r("client.key"), r("client.pem"))
    md = [("authorization", "Bearer " + TOKENS[0])]
    args = ["--tls-cert", certs["path"]("server.pem"), "--tls-key", certs["path"]("server.key"),
            "--tls-client-ca", certs["path"]("ca.pem"), "--metrics-listen", "127.0.0.1:0",
            "--auth-tokens", TOKENS[0], "--health-needs-token", "--warm-call=true",
            "--log-level", "debug"]
    why = ("TLS with required client certificates: the server holds no client identity (its "
           "own certificate is not one tls-client-ca accepts from a client)")
    with RunningServer(args + ["--tls-require-client-cert"], credentials=good,
                       ready_metadata=md) as srv:
        (warn,) = srv.events("health_probes")
        assert warn["level"] == "warn" and "/healthz" in warn["message"]
        assert warn["reason"] == why
        assert srv.events("warm_call")[0]["skipped"] == why
        assert srv.http_get("/healthz") == (200, "ok (not checked through the gRPC port)\n")
        assert srv.http_get("/readyz") == (200, "SERVING\n")
        with srv.channel() as ch:
            fut = sigterm_with_a_call_held(srv, ch, md)
            assert srv.wait_for_event("draining", 10)
            assert srv.http_get("/readyz") == (503, "NOT_SERVING\n")
            fut.result()
    with RunningServer(args, credentials=good, ready_metadata=md) as srv:
        assert srv.events("health_probes") == []
        assert srv.events("warm_call")[0]["code"] == 0
        assert checks_through_the_port(srv, "/readyz") == (200, "SERVING\n")


def test_http_health_with_required_client_certificates_the_ca_accepts_from_the_server(certs):
    """When the client CA also accepts the server's own certificate from a client (extended key
    usage clientAuth too, as meshes issue them), the server presents it to call its own port:
    the probes check through it and the warm call runs, with client certificates required."""
    r = certs["read"]
    good = grpc.ssl_channel_credentials(r("ca.pem"), r("client.key"), r("client.pem"))
    md = [("authorization", "Bearer " + TOKENS[0])]
    args = ["--tls-cert", certs["path"]("dual.pem"), "--tls-key", certs["path"]("dual.key"),
            "--tls-client-ca", certs["path"]("ca.pem"), "--tls-require-client-cert",
            "--metrics-listen", "127.0.0.1:0", "--auth-tokens", TOKENS[0], "--health-needs-token",
            "--warm-call=true", "--log-level", "debug", "--grace-ms", "20000"]
    srv = RunningServer(args, credentials=good, ready_metadata=md).start()
    try:
        assert srv.events("health_probes") == []
        (warm,) = srv.events("warm_call")
        assert warm["code"] == 0 and warm["response_bytes"] > 65536
        assert checks_through_the_port(srv, "/healthz") == (200, "ok\n")
        time.sleep(0.6)
        assert checks_through_the_port(srv, "/readyz") == (200, "SERVING\n")
        with srv.channel() as ch:
            fut = sigterm_with_a_call_held(srv, ch, md)
            assert srv.wait_for_event("draining", 10)
            assert srv.http_get("/readyz") == (503, "NOT_SERVING\n")
            fut.result()
        assert srv.wait_exit() == 0
    finally:
        srv.kill()


def test_mutual_tls(certs):
    r = certs["read"]
    good = grpc.ssl_channel_credentials(r("ca.pem"), r("client.key"), r("client.pem"))
    args = ["--tls-cert", certs["path"]("server.pem"), "--tls-key", certs["path"]("server.key"),
            "--tls-client-ca", certs["path"]("ca.pem"), "--tls-require-client-cert"]
    with RunningServer(args, credentials=good) as srv:
        with srv.channel() as ch:
            assert_serving(psg.PipelineServiceStub(ch))
        for creds in (grpc.ssl_channel_credentials(r("ca.pem")),  # no client certificate
                      grpc.ssl_channel_credentials(r("ca.pem"), r("intruder.key"), r("intruder.pem"))):
            with srv.channel(credentials=creds) as ch:
                with pytest.raises(grpc.RpcError) as e:
                    psg.PipelineServiceStub(ch).GetVersion(ps.GetVersionRequest(), timeout=3)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with srv.channel() as ch:  # still serving good clients
            assert_serving(psg.PipelineServiceStub(ch))


def damaged(pem):
    """pem with one character of its base64 body replaced by one outside the alphabet."""
    lines = pem.split(b"\n")
    lines[3] = b"#" + lines[3][1:]
    return b"\n".join(lines)


def start_refused(args, code, text):
    """The server started with args exits with code, its stderr holding text."""
    p = subprocess.run([server_binary(), "--listen", "127.0.0.1:0"] + args, capture_output=True,
                       timeout=30)
    assert p.returncode == code, (args, p.stderr)
    assert text in p.stderr.decode()


def serves_mutual_tls(args, r):
    """The server started with args serves a client of CA `ca.pem`."""
    good = grpc.ssl_channel_credentials(r("ca.pem"), r("client.key"), r("client.pem"))
    with RunningServer(args, credentials=good) as srv:
        with srv.channel() as ch:
            assert_serving(psg.PipelineServiceStub(ch))


def test_damaged_ca_bundle_is_refused(certs, tmp_path):
    """gRPC reads a CA bundle up to its first damaged certificate and silently drops the rest:
    the server used to start and then fail every handshake of clients signed by those CAs."""
    r = certs["read"]
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(r("otherca.pem") + damaged(r("server.pem")) + r("ca.pem"))
    args = ["--tls-cert", certs["path"]("server.pem"), "--tls-key", certs["path"]("server.key"),
            "--tls-client-ca", str(bundle), "--tls-require-client-cert"]
    start_refused(args, 2, "tls-client-ca %s: certificate 2 (line %d) does not parse (bad base64 "
                  "decode); the certificates after it would be ignored"
                  % (bundle, r("otherca.pem").count(b"\n") + 1))
    # the same bundle without the damaged block serves the CA after it
    bundle.write_bytes(r("otherca.pem") + r("ca.pem"))
    serves_mutual_tls(args, r)


def test_trusted_certificate_blocks(certs, tmp_path):
    """`TRUSTED CERTIFICATE` blocks (openssl x509 -trustout) are read as the core reads them:
    a bundle of them serves (it was refused as holding no certificate), and a damaged one is
    refused like any other (it was skipped unread, and the core dropped the CAs after it)."""
    r = certs["read"]

    def trusted(name):
        return subprocess.run(["openssl", "x509", "-in", certs["path"](name), "-trustout"],
                      capture_output=True, check=True).stdout
    bundle = tmp_path / "trusted.pem"
    args = ["--tls-cert", certs["path"]("server.pem"), "--tls-key", certs["path"]("server.key"),
            "--tls-client-ca", str(bundle), "--tls-require-client-cert"]
    bundle.write_bytes(damaged(trusted("otherca.pem")) + r("ca.pem"))
    start_refused(args, 2, "tls-client-ca %s: certificate 1 (line 1) does not parse (bad base64 "
                  "decode); the certificates after it would be ignored" % bundle)
    bundle.write_bytes(trusted("otherca.pem") + trusted("ca.pem"))
    serves_mutual_tls(args, r)


def test_tls_config_errors(certs, tmp_path):
    cases = [
        (["--tls-cert", certs["path"]("server.pem")], 2, "tls-cert and tls-key go together"),
        (["--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(tmp_path / "none.key")], 1,
         "cannot be read"),
        (["--tls-require-client-cert"], 2, "tls-require-client-cert needs tls-client-ca"),
        (["--auth-token-file", str(tmp_path / "missing")], 1, "cannot be read"),
        # files that never end: read for ever (a link to /dev/zero) or blocked (a FIFO)
        (["--auth-token-file", str(tmp_path / "zero")], 1,
         "auth-token-file %s cannot be read: not a regular file" % (tmp_path / "zero")),
        (["--auth-token-file", str(tmp_path / "fifo")], 1,
         "auth-token-file %s cannot be read: not a regular file" % (tmp_path / "fifo")),
        (["--tls-cert", str(tmp_path / "fifo"), "--tls-key", certs["path"]("server.key")], 1,
         "tls-cert %s cannot be read: not a regular file" % (tmp_path / "fifo")),
        (["--tls-cert", certs["path"]("server.pem"), "--tls-key", str(tmp_path / "zero")], 1,
         "tls-key %s cannot be read: not a regular file" % (tmp_path / "zero")),
        (["--auth-token-file", str(tmp_path / "big")], 2,
         "auth-token-file %s is larger than the 1048576 bytes allowed" % (tmp_path / "big")),
    ]
    # a certificate block cut short, a NUL byte: gRPC would use the text before them
    server_pem = certs["read"]("server.pem")
    (tmp_path / "cut.pem").write_bytes(server_pem + certs["read"]("ca.pem")[:200])
    (tmp_path / "nul.pem").write_bytes(server_pem + b"\0" + certs["read"]("ca.pem"))
    cases += [
        (["--tls-cert", str(tmp_path / "cut.pem"), "--tls-key", certs["path"]("server.key")], 2,
         "tls-cert %s: certificate 2 (line %d) does not parse (bad end line); the certificates "
         "after it would be ignored" % (tmp_path / "cut.pem", server_pem.count(b"\n") + 1)),
        (["--tls-cert", str(tmp_path / "nul.pem"), "--tls-key", certs["path"]("server.key")], 2,
         "tls-cert %s holds a NUL byte at offset %d: a PEM file is text"
         % (tmp_path / "nul.pem", len(server_pem))),
    ]
    os.symlink("/dev/zero", str(tmp_path / "zero"))
    os.mkfifo(str(tmp_path / "fifo"))
    (tmp_path / "big").write_text("token\n" * ((1 << 20) // 6 + 1))
    for args, code, text in cases:
        start_refused(args, code, text)
