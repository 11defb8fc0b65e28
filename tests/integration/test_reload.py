"""SIGHUP reloads the token file and the TLS certificate, key and client CA without a
restart (issue 10 defect 8): in-flight calls finish, new calls use the new tokens, new
connections the new certificate; a broken file keeps what is in use and logs an error."""
import os
import shutil
import signal

import grpc
import pytest

from conftest import assert_serving, audio_request, chain
from rmtest.pki import make_pki
from rmtest.server import RunningServer
from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg

# a fresh connection per channel: a reused one would skip the handshake under test
FRESH = [("grpc.use_local_subchannel_pool", 1)]


def replace(path, text):
    """Writes the file the way deployments do (a new file renamed over the old one)."""
    tmp = str(path) + ".new"
    with open(tmp, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    os.replace(tmp, str(path))


def reload(srv, count):
    """SIGHUP, then waits for the count-th "reloaded" line and returns it."""
    srv.signal(signal.SIGHUP)
    assert srv.wait_for_count("reloaded", count, 30), "\n".join(srv.raw_log()[-20:])
    return srv.events("reloaded")[count - 1]


def version(stub, tok, timeout=10):
    return stub.GetVersion(ps.GetVersionRequest(), metadata=[("authorization", "Bearer " + tok)],
                           timeout=timeout)


def refused(stub, tok):
    with pytest.raises(grpc.RpcError) as e:
        version(stub, tok)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert e.value.details() == "the bearer token is not valid"


def test_token_rotation(tmp_path):
    tokens = tmp_path / "tokens"
    replace(tokens, "old-token\n")
    with RunningServer(["--auth-token-file", str(tokens), "--log-level", "debug"]) as srv, \
            srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        assert version(stub, "old-token").protocol_version == "1.0"
        slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 1500}), name="in-flight")
        fut = stub.ExecutePipeline.future(audio_request(slow), timeout=60,
                                          metadata=[("authorization", "Bearer old-token")])
        assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "in-flight")
        replace(tokens, "# rotated\nnew-token\n")
        ev = reload(srv, 1)
        assert (ev["level"], ev["changed"], ev["unchanged"], ev["failed"], ev["tokens"]) == \
            ("info", ["auth-token-file"], [], [], 1)
        assert not fut.done()
        r = fut.result()  # the call admitted with the old token completes
        assert [n.state for n in r.node_results] == [1, 1]
        refused(stub, "old-token")
        assert version(stub, "new-token").protocol_version == "1.0"
        # the same file again: nothing changed
        ev = reload(srv, 2)
        assert (ev["changed"], ev["unchanged"], ev["tokens"]) == ([], ["auth-token-file"], 1)
    assert not srv.events("reload_failed")
    log = "\n".join(srv.raw_log())
    assert "new-token" not in log and "old-token" not in log
    assert srv.events("reloading")[0]["signal"] == "SIGHUP"


def test_broken_token_file_keeps_the_tokens_in_use(tmp_path):
    tokens = tmp_path / "tokens"
    replace(tokens, "good-token\n")
    with RunningServer(["--auth-token-file", str(tokens)]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        cases = [
            ("# nothing left\n\n",
             "auth-token-file %s holds no token (only blank lines and # comments)" % tokens),
            ("ok\n" + "x" * 5000 + "\n",
             "auth-token-file %s line 2: the token is 5000 bytes, longer than the 4096 allowed"
             % tokens),
            (None, "auth-token-file %s cannot be read: No such file or directory" % tokens),
            # a NUL byte cut the line: "ab" became a token
            (b"ok\nab\0cd\n", "auth-token-file %s line 2 holds a NUL byte" % tokens),
            ("ok\n" + "x" * (1 << 20),
             "auth-token-file %s is larger than the 1048576 bytes allowed" % tokens),
        ]
        for i, (text, message) in enumerate(cases, start=1):
            if text is None:
                os.unlink(str(tokens))
            else:
                replace(tokens, text)
            ev = reload(srv, i)
            # tokens: those still accepted, the set kept
            assert (ev["changed"], ev["failed"], ev["tokens"]) == ([], ["auth-token-file"], 1)
            err = srv.events("reload_failed")[i - 1]
            assert (err["level"], err["option"], err["file"], err["error"]) == \
                ("error", "auth-token-file", str(tokens), message)
            assert version(stub, "good-token").protocol_version == "1.0"
            refused(stub, "ok")
            refused(stub, "ab")
        replace(tokens, "fixed\n")  # a good file after broken ones is taken
        ev = reload(srv, len(cases) + 1)
        assert ev["changed"] == ["auth-token-file"]
        assert version(stub, "fixed").protocol_version == "1.0"
        refused(stub, "good-token")


def test_sighup_without_files_changes_nothing():
    with RunningServer(env={"RM_AUTH_TOKENS": "env-token"}) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        ev = reload(srv, 1)
        assert (ev["changed"], ev["unchanged"], ev["failed"], ev["tokens"]) == ([], [], [], None)
        assert ev["files"] == "none configured (no auth-token-file, no tls-cert): nothing to reload"
        assert version(stub, "env-token").protocol_version == "1.0"  # list tokens stay
        reload(srv, 2)  # as often as it comes
        assert version(stub, "env-token").protocol_version == "1.0"
    with RunningServer() as srv, srv.channel() as ch:
        reload(srv, 1)
        assert_serving(psg.PipelineServiceStub(ch))
    assert not srv.events("reload_failed")


@pytest.fixture
def two_pkis(tmp_path):
    """Two independent PKIs (a: the one the server starts with, b: the rotation) and the
    server's configured file paths, initially copies of a's."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_pki(tmp_path / "a")
    b = make_pki(tmp_path / "b")
    live = tmp_path / "live"
    live.mkdir()
    files = {"cert": live / "server.pem", "key": live / "server.key", "ca": live / "clients.pem"}
    shutil.copy(a("server.pem"), files["cert"])
    shutil.copy(a("server.key"), files["key"])
    shutil.copy(a("ca.pem"), files["ca"])
    return a, b, files


def read(path):
    with open(path, "rb") as f:
        return f.read()


def handshake(srv, root, key=None, cert=None):
    """A new connection with these credentials: None if a call succeeds, else its code."""
    creds = grpc.ssl_channel_credentials(read(root), key and read(key), cert and read(cert))
    with srv.channel(options=FRESH, credentials=creds) as ch:
        try:
            psg.PipelineServiceStub(ch).GetVersion(ps.GetVersionRequest(), timeout=5)
            return None
        except grpc.RpcError as e:
            return e.code()


def test_certificate_rotation(two_pkis):
    a, b, files = two_pkis
    args = ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]),
            "--tls-client-ca", str(files["ca"]), "--tls-require-client-cert", "--log-level", "debug"]
    creds_a = grpc.ssl_channel_credentials(read(a("ca.pem")), read(a("client.key")),
                                           read(a("client.pem")))
    with RunningServer(args, credentials=creds_a) as srv:
        assert handshake(srv, a("ca.pem"), a("client.key"), a("client.pem")) is None
        assert handshake(srv, b("ca.pem"), b("client.key"), b("client.pem")) == \
            grpc.StatusCode.UNAVAILABLE
        with srv.channel() as old:  # a connection opened before the rotation
            old_stub = psg.PipelineServiceStub(old)
            assert_serving(old_stub)
            slow = chain(("src", "PassThrough", {}), ("d", "Delay", {"ms": 1500}), name="in-flight")
            fut = old_stub.ExecutePipeline.future(audio_request(slow), timeout=60)
            assert srv.wait_for_event("pipeline_start", 10, lambda e: e["pipeline"] == "in-flight")
            # rotate everything to PKI b: server certificate (new CA) and client CA
            replace(files["key"], read(b("server.key")))
            replace(files["cert"], read(b("server.pem")))
            replace(files["ca"], read(b("ca.pem")))
            ev = reload(srv, 1)
            assert (ev["changed"], ev["failed"]) == (["tls"], [])
            r = fut.result()  # in flight across the reload: completes
            assert [n.state for n in r.node_results] == [1, 1]
            assert_serving(old_stub)  # the open connection keeps its session
        # new connections verify against the new CA, with client certificates from b
        assert handshake(srv, b("ca.pem"), b("client.key"), b("client.pem")) is None
        assert handshake(srv, a("ca.pem"), b("client.key"), b("client.pem")) == \
            grpc.StatusCode.UNAVAILABLE  # the old CA does not verify the new certificate
        assert handshake(srv, b("ca.pem"), a("client.key"), a("client.pem")) == \
            grpc.StatusCode.UNAVAILABLE  # clients of the old CA are refused now
        ev = reload(srv, 2)
        assert (ev["changed"], ev["unchanged"]) == ([], ["tls"])


def test_broken_certificate_keeps_the_one_in_use(two_pkis, tmp_path):
    a, b, files = two_pkis
    args = ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])]
    with RunningServer(args, tls_root=read(a("ca.pem"))) as srv:
        cases = [
            ("cert", b"not a certificate\n", "tls-cert",
             "tls-cert %s holds no PEM certificate" % files["cert"]),
            ("key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "tls-key",
             "tls-key %s holds no PEM private key" % files["key"]),
            ("key", read(b("server.key")), "tls-key",  # a key of the other certificate
             "tls-key %s does not match the certificate in tls-cert %s" % (files["key"], files["cert"])),
            ("cert", b"", "tls-cert", "tls-cert %s cannot be read: it is empty" % files["cert"]),
            ("key", b"#" * ((1 << 20) + 1), "tls-key",
             "tls-key %s is larger than the 1048576 bytes allowed" % files["key"]),
            # a chain whose second certificate is cut short (gRPC would drop it silently)
            ("cert", read(a("server.pem")) + read(a("ca.pem"))[:100], "tls-cert",
             "tls-cert %s: certificate 2 (line %d) does not parse (bad end line); the "
             "certificates after it would be ignored"
             % (files["cert"], read(a("server.pem")).count(b"\n") + 1)),
        ]
        for i, (which, content, option, message) in enumerate(cases, start=1):
            shutil.copy(a("server.pem"), files["cert"])
            shutil.copy(a("server.key"), files["key"])
            replace(files[which], content)
            ev = reload(srv, i)
            assert (ev["changed"], ev["failed"]) == ([], [option])
            err = srv.events("reload_failed")[i - 1]
            assert (err["level"], err["option"], err["file"], err["error"]) == \
                ("error", option, str(files[which]), message)
            # still the certificate from CA a on new connections
            assert handshake(srv, a("ca.pem")) is None
            assert handshake(srv, b("ca.pem")) == grpc.StatusCode.UNAVAILABLE
        shutil.copy(a("server.pem"), files["cert"])
        shutil.copy(a("server.key"), files["key"])
        ev = reload(srv, len(cases) + 1)
        assert (ev["changed"], ev["unchanged"], ev["failed"]) == ([], ["tls"], [])


def endless(path, kind):
    """Replaces path by a file that never ends: a link to /dev/zero or a FIFO nobody writes."""
    os.unlink(str(path))
    if kind == "fifo":
        os.mkfifo(str(path))
    else:
        os.symlink("/dev/zero", str(path))


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_token_file_that_never_ends_is_refused(tmp_path, kind):
    """A token file linked to /dev/zero made the reload read for ever (memory grew without
    bound outside --max-memory and SIGTERM was ignored); a FIFO without a writer blocked it
    for good. Either is refused at once, the tokens in use stay, SIGTERM still stops it."""
    tokens = tmp_path / "tokens"
    replace(tokens, "good-token\n")
    with RunningServer(["--auth-token-file", str(tokens)]) as srv, srv.channel() as ch:
        stub = psg.PipelineServiceStub(ch)
        endless(tokens, kind)
        ev = reload(srv, 1)  # waits 30 s at most
        assert (ev["changed"], ev["failed"], ev["tokens"]) == ([], ["auth-token-file"], 1)
        err = srv.events("reload_failed")[0]
        assert (err["option"], err["error"]) == \
            ("auth-token-file", "auth-token-file %s cannot be read: not a regular file" % tokens)
        assert version(stub, "good-token").protocol_version == "1.0"
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(30) == 0


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_tls_file_that_never_ends_is_refused(two_pkis, kind):
    a, b, files = two_pkis
    args = ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]),
            "--tls-client-ca", str(files["ca"])]
    with RunningServer(args, tls_root=read(a("ca.pem"))) as srv:
        for i, (which, option) in enumerate((("cert", "tls-cert"), ("key", "tls-key"),
                                             ("ca", "tls-client-ca")), start=1):
            endless(files[which], kind)
            ev = reload(srv, i)
            assert (ev["changed"], ev["failed"]) == ([], [option])
            err = srv.events("reload_failed")[i - 1]
            assert (err["option"], err["error"]) == \
                (option, "%s %s cannot be read: not a regular file" % (option, files[which]))
            assert handshake(srv, a("ca.pem")) is None  # the certificate in use stays
            os.unlink(str(files[which]))
            shutil.copy(a({"cert": "server.pem", "key": "server.key", "ca": "ca.pem"}[which]),
                        files[which])
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(30) == 0


def test_tls_config_errors_at_startup_are_exit_2(two_pkis):
    import subprocess
    from rmtest.server import server_binary
    a, b, files = two_pkis
    replace(files["key"], read(b("server.key")))
    p = subprocess.run([server_binary(), "--listen", "127.0.0.1:0", "--tls-cert", str(files["cert"]),
                        "--tls-key", str(files["key"])], capture_output=True, timeout=30)
    assert p.returncode == 2
    assert ("tls-key %s does not match the certificate in tls-cert %s" % (files["key"], files["cert"])
            in p.stderr.decode())
