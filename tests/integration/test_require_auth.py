"""--require-auth (RM_REQUIRE_AUTH): the server refuses to start without tokens, so a
missing token secret (deploy/k8s) can never silently turn authentication off."""
import json
import subprocess

import grpc
import numpy as np
import pytest

from conftest import audio_request, chain, f32
from rmtest.server import RunningServer, server_binary
from remotemedia.v1 import pipeline_service_pb2_grpc as psg
from grpc_health.v1 import health_pb2, health_pb2_grpc

MESSAGE = "require-auth is set but no tokens are configured (set auth-token-file or auth-tokens)"


def startup_failure(args, env=None):
    import os
    e = dict(os.environ)
    for k in ("RM_AUTH_TOKEN_FILE", "RM_AUTH_TOKENS", "RM_REQUIRE_AUTH"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([server_binary(), "--listen", "127.0.0.1:0"] + args, capture_output=True,
                       timeout=60, env=e)
    events = [json.loads(line) for line in p.stderr.decode().splitlines() if line.startswith("{")]
    return p.returncode, events, p.stderr.decode()


@pytest.mark.parametrize("args,env", [
    (["--require-auth"], None),
    (["--require-auth=true"], None),
    ([], {"RM_REQUIRE_AUTH": "true"}),
    (["--require-auth", "--auth-tokens", ""], None),
])
def test_refuses_to_start_without_tokens(args, env):
    code, events, err = startup_failure(args, env)
    assert code == 2, err
    failed = [e for e in events if e.get("event") == "startup_failed"]
    assert len(failed) == 1, err
    assert failed[0]["level"] == "error"
    assert failed[0]["error"] == MESSAGE
    assert not [e for e in events if e.get("event") == "listening"]


def test_an_empty_token_file_is_refused_too(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# no tokens yet\n\n")
    code, events, err = startup_failure(["--require-auth", "--auth-token-file", str(f)])
    assert code == 2, err
    assert [e["event"] for e in events if e.get("event") == "startup_failed"] == ["startup_failed"]


def test_starts_with_a_token_file_and_calls_need_the_token(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("tok-require-auth-1\n")
    with RunningServer(["--require-auth", "--auth-token-file", str(f)]) as srv, srv.channel() as ch:
        assert srv.events("listening")[0]["auth"] is True
        stub = psg.PipelineServiceStub(ch)
        req = audio_request(chain(("src", "PassThrough", {}), ("g", "Gain", {"db": 0})))
        with pytest.raises(grpc.RpcError) as e:
            stub.ExecutePipeline(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            stub.ExecutePipeline(req, timeout=30, metadata=[("authorization", "Bearer nope")])
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        r = stub.ExecutePipeline(req, timeout=30,
                                 metadata=[("authorization", "Bearer tok-require-auth-1")])
        np.testing.assert_array_equal(f32(r.outputs["g"].items[0]), np.float32([0.25, -0.5, 0.125]))
        # health stays open (load balancers and kubelet probe without a token)
        h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert h.status == health_pb2.HealthCheckResponse.SERVING


def test_env_tokens_satisfy_it():
    with RunningServer([], env={"RM_REQUIRE_AUTH": "1", "RM_AUTH_TOKENS": "t-env"}) as srv:
        assert srv.events("listening")[0]["auth"] is True
