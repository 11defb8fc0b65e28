"""TLS, mutual TLS and channel options (round_robin, keepalive) through RemoteConfig, against a
real server with certificates made by openssl for this run."""
import json
import re

import numpy as np
import pytest

from conftest import arun
from rmtest.server import RunningServer
from remotemedia import Client, Pipeline, RemoteConfig, Unauthenticated, Unavailable
from remotemedia.nodes import Gain

HALF = -6.020599913279624


def gain_pipeline(cfg):
    p = Pipeline(remote=cfg)
    p.add_node(Gain(db=HALF))
    return p


def test_tls_with_root_certificate(certs):
    args = ["--tls-cert", certs("server.pem"), "--tls-key", certs("server.key")]
    with open(certs("ca.pem"), "rb") as f:
        root = f.read()
    with RunningServer(args, tls_root=root) as srv:
        # the CA as a path, and as PEM bytes, for the async and the blocking channel
        with gain_pipeline(RemoteConfig(srv.address(), root_certificates=certs("ca.pem"),
                                        timeout=30)) as p:
            assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.25]
        p = gain_pipeline(RemoteConfig("localhost:%d" % srv.port, root_certificates=root,
                                       timeout=30))

        async def main():
            try:
                return await p.run(np.float32([1.0]), sample_rate=8000)
            finally:
                await p.close()
        assert arun(main()).samples.tolist() == [0.5]
        # a plaintext client, and one trusting another CA, are refused
        for cfg in (RemoteConfig(srv.address(), timeout=30),
                    RemoteConfig(srv.address(), root_certificates=certs("otherca.pem"), timeout=30)):
            with Client(cfg) as c, pytest.raises(Unavailable):
                c.get_version_sync()


def test_mutual_tls_and_token(certs):
    args = ["--tls-cert", certs("server.pem"), "--tls-key", certs("server.key"),
            "--tls-client-ca", certs("ca.pem"), "--tls-require-client-cert",
            "--auth-tokens", "tls-and-token"]
    import grpc
    with open(certs("ca.pem"), "rb") as ca, open(certs("client.key"), "rb") as k, \
            open(certs("client.pem"), "rb") as c:
        probe = grpc.ssl_channel_credentials(ca.read(), k.read(), c.read())
    with RunningServer(args, credentials=probe) as srv:
        good = RemoteConfig(srv.address(), root_certificates=certs("ca.pem"),
                            client_certificate=certs("client.pem"), client_key=certs("client.key"),
                            token="tls-and-token", timeout=30)
        with gain_pipeline(good) as p:
            assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.25]
            assert p.health_check_sync() == "SERVING"
        no_token = RemoteConfig(srv.address(), root_certificates=certs("ca.pem"),
                                client_certificate=certs("client.pem"),
                                client_key=certs("client.key"), timeout=30)
        with gain_pipeline(no_token) as p, pytest.raises(Unauthenticated):
            p.run_sync(np.float32([0.5]), sample_rate=8000)
        for cfg in (RemoteConfig(srv.address(), root_certificates=certs("ca.pem"), timeout=30),
                    RemoteConfig(srv.address(), root_certificates=certs("ca.pem"),
                                 client_certificate=certs("intruder.pem"),
                                 client_key=certs("intruder.key"), timeout=30)):
            with Client(cfg) as c, pytest.raises(Unavailable):
                c.health_check_sync()


def test_config_checks(certs):
    with pytest.raises(ValueError, match="both client_certificate and client_key"):
        RemoteConfig("h:1", client_certificate=certs("client.pem"))
    with pytest.raises(ValueError, match="round_robin"):
        RemoteConfig("h:1", load_balancing="random")
    with pytest.raises(ValueError, match="token"):
        RemoteConfig("h:1", token="a\nb")
    with pytest.raises(ValueError, match="cannot read"):
        RemoteConfig("h:1", root_certificates="/nonexistent/ca.pem").channel_credentials()
    assert RemoteConfig("h:1", token="t").call_metadata() == (("authorization", "Bearer t"),)
    assert RemoteConfig("h:1").channel_credentials() is None
    assert "secret" not in repr(RemoteConfig("h:1", token="secret"))


def test_round_robin_and_keepalive_options(server):
    cfg = RemoteConfig("ipv4:%s" % server.address(), load_balancing="round_robin",
                       keepalive_time_ms=30000, keepalive_timeout_ms=10000,
                       keepalive_permit_without_calls=True, timeout=30)
    opts = dict(cfg.channel_options())
    assert opts["grpc.lb_policy_name"] == "round_robin"
    # issue 14: the service config also carries the retry policy (test_retries.py)
    assert json.loads(opts["grpc.service_config"])["loadBalancingConfig"] == [{"round_robin": {}}]
    assert (opts["grpc.keepalive_time_ms"], opts["grpc.keepalive_timeout_ms"]) == (30000, 10000)
    assert opts["grpc.keepalive_permit_without_calls"] == 1
    assert opts["grpc.max_receive_message_length"] == 64 * 1024 * 1024
    with gain_pipeline(cfg) as p:
        assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.25]


@pytest.mark.parametrize("token, index", [("gööd", 1), ("a\x01b", 1), ("a\nb", 1), ("x\t", 1)])
def test_a_token_grpc_refuses_is_a_value_error(server, token, index):
    """Regression (P7): a non-ASCII or control character in the token passed RemoteConfig,
    and every call then raised gRPC's bare ValueError "metadata was invalid". It is refused
    where it is set, and at call time if changed later; the message never shows the token."""
    rule = ("^RemoteConfig: token holds a non-ASCII or control character at index %d; a "
            "bearer token is printable ASCII$" % index)
    with pytest.raises(ValueError, match=rule):
        RemoteConfig(server.address(), token=token)
    cfg = RemoteConfig(server.address(), token="good", timeout=30)
    cfg.token = token
    with gain_pipeline(cfg) as p, pytest.raises(ValueError, match=rule):
        p.run_sync(np.float32([0.5]), sample_rate=8000)
    with pytest.raises(ValueError, match="^RemoteConfig: token must be a non-empty string$"):
        RemoteConfig(server.address(), token="")


def test_metadata_is_checked_and_bin_keys_carry_bytes(server):
    """Regression (P7): metadata gRPC refuses (an upper-case key, a non-ASCII request id)
    failed every call with "metadata was invalid"; it is a ValueError naming the key. Values
    of -bin keys were sent as str(bytes) and refused by gRPC; they are sent as bytes."""
    with pytest.raises(ValueError, match=r"^RemoteConfig: metadata 'x-request-id' holds 'ü' at "
                       r"index 2; values are printable ASCII \(binary ones need a key ending "
                       r"in -bin\)$"):
        RemoteConfig(server.address(), metadata=[("x-request-id", "r-ü")])
    with pytest.raises(ValueError, match=r"^RemoteConfig: metadata key 'X-Request-Id' must be "
                       r"lowercase ASCII letters, digits, '-', '_' or '.'$"):
        RemoteConfig(server.address(), metadata=[("X-Request-Id", "r-1")])
    with pytest.raises(ValueError, match=r"^RemoteConfig: metadata 'x-trace-bin' \(a -bin key\) "
                       r"takes bytes, not int$"):
        RemoteConfig(server.address(), metadata=[("x-trace-bin", 7)])
    cfg = RemoteConfig(server.address(), timeout=30,
                       metadata=[("x-request-id", "r-1"), ("x-trace-bin", b"\x00\xff")])
    assert cfg.call_metadata() == (("x-request-id", "r-1"), ("x-trace-bin", b"\x00\xff"))
    with gain_pipeline(cfg) as p:
        assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.25]
        cfg.metadata = [("x-request-id", "r\t1")]
        with pytest.raises(ValueError, match="^RemoteConfig: metadata 'x-request-id' holds"):
            p.run_sync(np.float32([0.5]), sample_rate=8000)


@pytest.mark.parametrize("key", ["x-id\n", "x-id\r\n", "\nx-id", ""])
def test_a_metadata_key_with_a_newline_is_refused(server, key):
    """Regression: the key check was re.match(r"^[0-9a-z_.-]+$"), whose $ also matches
    before a final newline, so "x-id\n" passed and every call then failed with gRPC's bare
    "metadata was invalid". The whole key must match."""
    with pytest.raises(ValueError, match=r"^RemoteConfig: metadata key %s must be lowercase "
                       r"ASCII letters, digits, '-', '_' or '.'$" % re.escape(repr(key))):
        RemoteConfig(server.address(), metadata=[(key, "r-1")])
    cfg = RemoteConfig(server.address(), timeout=30, metadata=[("x-id", "r-1")])
    cfg.metadata = [(key, "r-1")]
    with gain_pipeline(cfg) as p, pytest.raises(ValueError, match="^RemoteConfig: metadata key "):
        p.run_sync(np.float32([0.5]), sample_rate=8000)


def _pem_as(src, dst, label):
    """dst: the PEM file src with its BEGIN/END labels renamed to label."""
    with open(src) as f:
        text = re.sub(r"-----(BEGIN|END) [A-Z0-9 ]+-----", r"-----\1 %s-----" % label, f.read())
    with open(dst, "w") as f:
        f.write(text)
    return str(dst)


def test_every_pem_label_openssl_reads_is_accepted(certs, tmp_path):
    """Regression: the PEM check wanted "-----BEGIN CERTIFICATE-----" and refused the CA as
    a "TRUSTED CERTIFICATE" (openssl x509 -trustout) or an "X509 CERTIFICATE" (the old
    label), both of which OpenSSL, and so gRPC, reads. Keys keep their variants (PRIVATE
    KEY, EC PRIVATE KEY as openssl ec writes it, RSA PRIVATE KEY). Each form connects."""
    import subprocess
    trusted = str(tmp_path / "ca-trusted.pem")
    subprocess.run(["openssl", "x509", "-in", certs("ca.pem"), "-trustout", "-addtrust",
                    "serverAuth", "-out", trusted], check=True, capture_output=True)
    with open(trusted) as f:
        assert f.read().startswith("-----BEGIN TRUSTED CERTIFICATE-----\n")
    old = _pem_as(certs("ca.pem"), tmp_path / "ca-x509.pem", "X509 CERTIFICATE")
    client = _pem_as(certs("client.pem"), tmp_path / "client-x509.pem", "X509 CERTIFICATE")
    ec_key = str(tmp_path / "client-ec.key")
    subprocess.run(["openssl", "ec", "-in", certs("client.key"), "-out", ec_key], check=True,
                   capture_output=True)
    with open(ec_key) as f:
        assert f.read().startswith("-----BEGIN EC PRIVATE KEY-----\n")
    args = ["--tls-cert", certs("server.pem"), "--tls-key", certs("server.key"),
            "--tls-client-ca", certs("ca.pem"), "--tls-require-client-cert"]
    import grpc
    with open(certs("ca.pem"), "rb") as ca, open(certs("client.key"), "rb") as k, \
            open(certs("client.pem"), "rb") as c:
        probe = grpc.ssl_channel_credentials(ca.read(), k.read(), c.read())
    with RunningServer(args, credentials=probe) as srv:
        for root, cert, key in [(trusted, certs("client.pem"), certs("client.key")),
                                (old, client, ec_key)]:
            cfg = RemoteConfig(srv.address(), root_certificates=root, client_certificate=cert,
                               client_key=key, timeout=30)
            with gain_pipeline(cfg) as p:
                assert p.run_sync(np.float32([0.5]), sample_rate=8000).samples.tolist() == [0.25]
    from remotemedia.config import _read_pem
    for label in ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        pem = b"-----BEGIN %s-----\nAA==\n-----END %s-----\n" % (label.encode(), label.encode())
        assert _read_pem(pem, "client_key", "private key") == pem
    for label in ("TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
        pem = b"-----BEGIN %s-----\nAA==\n-----END %s-----\n" % (label.encode(), label.encode())
        assert _read_pem(pem, "root_certificates") == pem
        with pytest.raises(ValueError, match=r"^client_key: no PEM private key in the bytes "):
            _read_pem(pem, "client_key", "private key")


@pytest.mark.parametrize("field, block", [("root_certificates", "CERTIFICATE"),
                                          ("client_certificate", "CERTIFICATE"),
                                          ("client_key", "PRIVATE KEY")])
def test_a_file_without_pem_is_named(certs, tmp_path, field, block):
    """Regression (P7): a root_certificates file holding no PEM certificate made gRPC fail
    every connection ("Unavailable: empty address list", after every retry). The CA, and the
    client certificate and key, must hold their PEM block: ValueError naming the file
    when the channel is made, before anything is sent."""
    def rule(source):
        return "^%s: no PEM %s in %s \\(a '-----BEGIN %s-----' block\\)$" % (
            field, block.lower(), re.escape(source), block)
    garbage = str(tmp_path / "garbage.pem")
    with open(garbage, "w") as f:
        f.write("good-token\n")
    files = {"root_certificates": certs("ca.pem"), "client_certificate": certs("client.pem"),
             "client_key": certs("client.key")}
    files[field] = garbage
    cfg = RemoteConfig("127.0.0.1:1", timeout=30, **files)
    with pytest.raises(ValueError, match=rule(repr(garbage))):
        cfg.channel_credentials()
    with Client(cfg) as c, pytest.raises(ValueError, match=rule(repr(garbage))):
        c.health_check_sync()
    files[field] = b"not pem"
    with pytest.raises(ValueError, match=rule("the bytes given")):
        RemoteConfig("127.0.0.1:1", **files).channel_credentials()
    files[field] = certs("client.key" if block == "CERTIFICATE" else "client.pem")
    with pytest.raises(ValueError, match=rule(repr(files[field]))):
        RemoteConfig("127.0.0.1:1", **files).channel_credentials()


def _damaged(pem):
    """pem with one character of its base64 body replaced by one outside the alphabet."""
    lines = pem.split(b"\n")
    lines[3] = b"#" + lines[3][1:]
    return b"\n".join(lines)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_damaged_pem_is_refused_before_connecting(certs, tmp_path):
    """Regression: a root_certificates bundle with a damaged certificate block in the middle
    passed the PEM check; gRPC read it up to that block and silently dropped the server's CA
    after it, and every call failed Unavailable with no hint. So did a block cut short, a
    NUL byte, and a client_key of another certificate. Each is a ValueError naming the field,
    the source, and the certificate's number and line, when the channel is made."""
    import grpc
    from remotemedia.v1 import pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg
    other, ca, client = _read(certs("otherca.pem")), _read(certs("ca.pem")), _read(certs("client.pem"))
    line = other.count(b"\n") + 1
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(other + _damaged(client) + ca)
    args = ["--tls-cert", certs("server.pem"), "--tls-key", certs("server.key"),
            "--tls-client-ca", certs("ca.pem")]
    with RunningServer(args, tls_root=ca) as srv:
        # what gRPC does with it: the handshake fails (the CA after the damaged block is lost)
        with grpc.secure_channel(srv.address(), grpc.ssl_channel_credentials(bundle.read_bytes())) as ch:
            with pytest.raises(grpc.RpcError) as e:
                psg.PipelineServiceStub(ch).GetVersion(ps.GetVersionRequest(), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        rule = ("root_certificates: certificate 2 (line %d) in %s does not parse (bad base64 "
                "decode); the certificates after it would be ignored")
        cfg = RemoteConfig(srv.address(), root_certificates=str(bundle), timeout=30)
        exact = "^%s$" % re.escape(rule % (line, repr(str(bundle))))
        with pytest.raises(ValueError, match=exact):
            cfg.channel_credentials()
        with Client(cfg) as c, pytest.raises(ValueError, match=exact):
            c.get_version_sync()
        with pytest.raises(ValueError, match="^%s$" % re.escape(rule % (line, "the bytes given"))):
            RemoteConfig(srv.address(), root_certificates=bundle.read_bytes()).channel_credentials()
        # without the damaged block the server's CA, after the other one, is used
        with Client(RemoteConfig(srv.address(), root_certificates=other + ca, timeout=30)) as c:
            assert c.health_check_sync() == "SERVING"
        # a key of another certificate: gRPC's handshake fails; RemoteConfig says why
        creds = grpc.ssl_channel_credentials(ca, _read(certs("intruder.key")), client)
        with grpc.secure_channel(srv.address(), creds) as ch:
            with pytest.raises(grpc.RpcError) as e:
                psg.PipelineServiceStub(ch).GetVersion(ps.GetVersionRequest(), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        cfg = RemoteConfig(srv.address(), root_certificates=ca, client_certificate=certs("client.pem"),
                           client_key=certs("intruder.key"), timeout=30)
        mismatch = ("client_key: the private key in %r does not match the certificate in "
                    "client_certificate (%r)" % (certs("intruder.key"), certs("client.pem")))
        with pytest.raises(ValueError, match="^%s$" % re.escape(mismatch)):
            cfg.channel_credentials()
        with Client(cfg) as c, pytest.raises(ValueError, match="^%s$" % re.escape(mismatch)):
            c.health_check_sync()

    def refused(message, **files):
        with pytest.raises(ValueError) as e:
            RemoteConfig("127.0.0.1:1", **files).channel_credentials()
        assert str(e.value) == message
    cut = tmp_path / "cut.pem"
    cut.write_bytes(other + ca[:200])
    refused("root_certificates: certificate 2 (line %d) in %r does not parse (bad end line); the "
            "certificates after it would be ignored" % (line, str(cut)), root_certificates=str(cut))
    refused("root_certificates: NUL byte at offset %d in the bytes given: PEM is text" % len(other),
            root_certificates=other + b"\0" + ca)
    chain = client + _damaged(client)
    refused("client_certificate: certificate 2 (line %d) in the bytes given does not parse (bad "
            "base64 decode); the certificates after it would be ignored" % (client.count(b"\n") + 1),
            client_certificate=chain, client_key=certs("client.key"))
    refused("client_key: the private key in the bytes given does not parse (gRPC takes an "
            "unencrypted PEM key)", client_certificate=client,
            client_key=_damaged(_read(certs("client.key"))))
    refused("client_key: the private key in the bytes given does not match the certificate in "
            "client_certificate (the bytes given)", client_certificate=client,
            client_key=_read(certs("intruder.key")))
