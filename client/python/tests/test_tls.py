"""TLS, mutual TLS and channel options (round_robin, keepalive) through RemoteConfig, against a
real server with certificates made by openssl for this run."""
import json

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
