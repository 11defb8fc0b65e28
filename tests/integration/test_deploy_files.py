"""deploy/k8s, deploy/compose and deploy/Dockerfile checked as far as this machine can: the
kustomize base rendered by `kubectl kustomize` (restricted Pod Security Standard, probes,
termination timing, memory, auth), the server started with exactly the manifest's arguments
and ConfigMap (and probed as the kubelet would), the image's health check script, the compose file through `docker-compose config`, Envoy's and Prometheus's
configuration structurally (Envoy itself is not installable here)."""
import os
import re
import shutil
import subprocess

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import sigterm_with_a_call_held
from rmtest.server import RunningServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def to_bytes(text):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|K|M|G)?", str(text))
    assert m, text
    return int(m.group(1)) * UNITS.get(m.group(2), 1)


@pytest.fixture(scope="module")
def k8s():
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (scripts/install-deps.sh installs kubernetes-client)"
    p = subprocess.run([kubectl, "kustomize", os.path.join(DEPLOY, "k8s")], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def one(k8s, kind):
    assert len(k8s[kind]) == 1, kind
    return k8s[kind][0]


def flags(args):
    out = {}
    for a in args:
        assert a.startswith("--"), a
        k, _, v = a[2:].partition("=")
        out[k] = v if _ else True
    return out


def test_k8s_has_every_object(k8s):
    assert sorted(k8s) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                           "PodDisruptionBudget", "Service"]
    assert "Secret" not in k8s  # created by the operator; no token lives in git


def test_k8s_pod_meets_the_restricted_standard(k8s):
    pod = one(k8s, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("privileged", False) is False
    for v in pod["volumes"]:  # restricted allows only these volume types
        assert set(v) - {"name"} <= {"secret", "emptyDir", "configMap", "projected", "downwardAPI",
                                     "persistentVolumeClaim", "ephemeral", "csi"}, v


def test_k8s_container_probes_resources_and_image(k8s):
    dep = one(k8s, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "remotemedia-server:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    # health needs the token (--health-needs-token): the kubelet, which sends none, probes the
    # metrics port, whose endpoints check through the gRPC port within 4 s
    paths = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for probe, path in paths.items():
        assert c[probe]["httpGet"] == {"port": "metrics", "path": path}, probe
        assert c[probe]["timeoutSeconds"] > 4, probe
    assert flags(c["args"])["health-needs-token"] is True
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]


def test_the_image_health_check_outlasts_the_servers_check():
    """The image's HEALTHCHECK asks /readyz, whose check may take 4 s: Docker's timeout and
    the script's own read wait longer."""
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        docker = f.read()
    assert int(re.search(r"^HEALTHCHECK .*--timeout=(\d+)s", docker, re.M).group(1)) > 4
    with open(os.path.join(DEPLOY, "healthcheck.sh")) as f:
        assert int(re.search(r"read -r -t (\d+) ", f.read()).group(1)) > 4


def test_k8s_termination_outlasts_prestop_and_drain(k8s):
    dep = one(k8s, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    cm = one(k8s, "ConfigMap")["data"]
    grace_s = int(cm["RM_GRACE_MS"]) / 1000
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "/bin/sleep"
    pre_stop_s = int(cmd[1])
    assert pre_stop_s >= 5  # endpoint removal needs seconds to reach every load balancer
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + grace_s
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > grace_s  # no restart mid-drain
    spread = pod["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} >= {"kubernetes.io/hostname"}
    host = [s for s in spread if s["topologyKey"] == "kubernetes.io/hostname"][0]
    assert host["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_k8s_memory_budget_follows_the_limit(k8s):
    (c,) = one(k8s, "Deployment")["spec"]["template"]["spec"]["containers"]
    limit = to_bytes(c["resources"]["limits"]["memory"])
    budget = to_bytes(flags(c["args"])["max-memory"])
    # the server's own default for a cgroup limit: the limit less max(1/8 of it, 64 MiB)
    assert budget == limit - max(limit // 8, 64 << 20)
    per_run = to_bytes(one(k8s, "ConfigMap")["data"]["RM_MAX_REQUEST_MEMORY"])
    assert per_run < budget


def test_k8s_auth_is_required_and_the_secret_is_not_optional(k8s):
    pod = one(k8s, "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    f = flags(c["args"])
    assert f["require-auth"] is True
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    token_dir = os.path.dirname(f["auth-token-file"])
    (auth,) = [n for n, m in mounts.items() if m["mountPath"] == token_dir]
    assert mounts[auth]["readOnly"] is True
    sec = vols[auth]["secret"]
    assert sec["secretName"] == "remotemedia-auth" and sec["optional"] is False
    assert sec["items"] == [{"key": "tokens", "path": os.path.basename(f["auth-token-file"])}]
    for e in c.get("env", []):
        assert "optional" not in str(e.get("valueFrom", {})), e


def test_k8s_services_hpa_pdb_networkpolicy(k8s):
    sel = one(k8s, "Deployment")["spec"]["selector"]["matchLabels"]
    svcs = {s["metadata"]["name"]: s["spec"] for s in k8s["Service"]}
    assert svcs["remotemedia"]["type"] == "ClusterIP"
    assert svcs["remotemedia-headless"]["clusterIP"] == "None"
    for s in svcs.values():
        assert s["selector"] == sel
        assert [p for p in s["ports"] if p["port"] == 50051][0]["appProtocol"] == "grpc"
    hpa = one(k8s, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "remotemedia"}
    assert hpa["spec"]["minReplicas"] >= 2
    (m,) = hpa["spec"]["metrics"]
    assert m["resource"]["name"] == "cpu" and m["resource"]["target"]["type"] == "Utilization"
    pdb = one(k8s, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["selector"]["matchLabels"] == sel
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    np_ = one(k8s, "NetworkPolicy")["spec"]
    assert np_["podSelector"]["matchLabels"] == sel
    assert sorted(np_["policyTypes"]) == ["Egress", "Ingress"] and np_["egress"] == []
    ports = sorted(p["port"] for rule in np_["ingress"] for p in rule["ports"])
    assert ports == [9464, 50051]
    metrics_rule = [r for r in np_["ingress"] if r["ports"][0]["port"] == 9464][0]
    assert metrics_rule["from"]  # metrics are not open to everyone


def test_k8s_arguments_and_config_start_the_real_server(k8s, tmp_path):
    """The manifest's flags and ConfigMap are accepted by this server (a typo would crash-loop
    every pod); only the addresses and the token file's path are the test's."""
    (c,) = one(k8s, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = dict(one(k8s, "ConfigMap")["data"])
    env.pop("RM_LISTEN")
    env.pop("RM_METRICS_LISTEN")  # a fixed port would be shared by parallel tests
    tokens = tmp_path / "tokens"
    tokens.write_text("k8s-test-token\n")
    args = [a if not a.startswith("--auth-token-file=") else "--auth-token-file=" + str(tokens)
            for a in c["args"]] + ["--metrics-listen=127.0.0.1:0"]
    with RunningServer(args, env=env,
                       ready_metadata=[("authorization", "Bearer k8s-test-token")]) as srv:
        cfg = srv.events("config")[0]
        assert srv.events("listening")[0]["auth"] is True
        assert cfg["max_memory"] == 1792 << 20 and cfg["require_auth"] is True
        assert cfg["grace_ms"] == 30000 and cfg["max_concurrent"] == 32
        assert cfg["health_needs_token"] is True
        # the probes as the kubelet sends them (no token), on the manifest's paths
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            got = srv.http_get(c[probe]["httpGet"]["path"], timeout=c[probe]["timeoutSeconds"])
            assert got[0] == 200, probe
        with srv.channel() as ch:  # and gRPC health without a token is refused
            with pytest.raises(grpc.RpcError) as e:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("listen,wildcard", [("127.0.0.1:0", "0.0.0.0"), ("[::]:0", "[::]"),
                                             ("[::1]:0", "[::1]")])
def test_image_healthcheck_script_asks_readyz(tmp_path, listen, wildcard):
    """deploy/healthcheck.sh (the image's HEALTHCHECK) against this server with
    --health-needs-token: healthy (exit 0) while serving, though it sends no token; unhealthy
    (1) while the server drains and when nothing listens on the metrics port. RM_METRICS_LISTEN
    as a wildcard (IPv4 or IPv6, which listens on IPv6 only) or an IPv6 address."""
    script = os.path.join(DEPLOY, "healthcheck.sh")
    token = "hc-token"

    def check(metrics_listen):
        env = dict(os.environ, RM_METRICS_LISTEN=metrics_listen, RM_LISTEN="0.0.0.0:1")
        return subprocess.run(["/bin/bash", script], env=env, capture_output=True,
                              timeout=30).returncode

    srv = RunningServer(["--auth-tokens", token, "--health-needs-token", "--grace-ms", "20000",
                         "--metrics-listen", listen, "--log-level", "debug"],
                        ready_metadata=[("authorization", "Bearer " + token)]).start()
    try:
        mport = srv.events("listening")[0]["metrics_port"]
        assert check("%s:%d" % (wildcard, mport)) == 0
        with srv.channel() as ch:
            fut = sigterm_with_a_call_held(srv, ch, [("authorization", "Bearer " + token)])
            assert srv.wait_for_event("draining", 10)
            assert check("%s:%d" % (wildcard, mport)) == 1
            fut.result()
        assert srv.wait_exit() == 0
        assert check("%s:%d" % (wildcard, mport)) == 1  # nothing listens
    finally:
        srv.kill()


def load(path):
    with open(os.path.join(DEPLOY, path)) as f:
        return yaml.safe_load(f)


def test_compose_file(tmp_path):
    dc = shutil.which("docker-compose")
    assert dc, "docker-compose is missing (scripts/install-deps.sh installs it)"
    p = subprocess.run([dc, "-f", os.path.join(DEPLOY, "compose", "docker-compose.yml"), "config"],
                       capture_output=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()
    cfg = yaml.safe_load(p.stdout)
    s = cfg["services"]
    replicas = sorted(n for n in s if n.startswith("server-"))
    assert replicas == ["server-1", "server-2"]
    for n in replicas:
        assert s[n]["read_only"] is True and "ports" not in s[n]  # reached through Envoy only
        assert s[n]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert s[n]["environment"]["RM_METRICS_LISTEN"] == "0.0.0.0:9464"
        grace = int(s[n]["environment"]["RM_GRACE_MS"]) / 1000
        assert float(re.match(r"(\d+)s", s[n]["stop_grace_period"]).group(1)) > grace
    assert re.fullmatch(r"envoyproxy/envoy:v1\.\d+\.\d+", s["envoy"]["image"])  # a pinned release
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", s["prometheus"]["image"])
    for svc in s.values():
        for port in svc.get("ports", []):
            # docker-compose 1.x prints the short form, compose v2 the long one
            host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", port

    prom = load("compose/prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "remotemedia"]
    targets = sorted(t for sc in job["static_configs"] for t in sc["targets"])
    assert targets == ["%s:9464" % n for n in replicas]


def test_envoy_config():
    env = load("compose/envoy.yaml")
    assert env["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    (grpc_listener,) = [l for l in env["static_resources"]["listeners"] if l["name"] == "grpc"]
    hcm = grpc_listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = hcm["route_config"]["virtual_hosts"][0]["routes"]
    rp = route["route"]["retry_policy"]
    assert "unavailable" in rp["retry_on"].split(",") and rp["num_retries"] >= 1
    assert rp["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    clusters = {c["name"]: c for c in env["static_resources"]["clusters"]}
    rm = clusters[route["route"]["cluster"]]
    assert rm["lb_policy"] == "ROUND_ROBIN" and rm["outlier_detection"]["consecutive_5xx"] >= 1
    assert "http2_protocol_options" in str(rm["typed_extension_protocol_options"])
    hosts = sorted(e["endpoint"]["address"]["socket_address"]["address"]
                   for e in rm["load_assignment"]["endpoints"][0]["lb_endpoints"])
    compose = load("compose/docker-compose.yml")
    assert hosts == sorted(n for n in compose["services"] if n.startswith("server-"))
    assert rm["health_checks"][0]["grpc_health_check"]["service_name"] == "remotemedia.v1.PipelineService"


def test_dockerfile_and_dockerignore():
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    for v in args.values():
        assert re.fullmatch(r"debian:bookworm-\d{8}(-slim)?", v), v  # dated, never :latest
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${DEBIAN_BUILD}", "${DEBIAN_RUNTIME}"]
    assert "install-deps.sh --build-only" in text
    assert re.search(r"^USER 10001", text, re.M) and re.search(r"^HEALTHCHECK ", text, re.M)
    assert re.search(r"^EXPOSE .*\b9464\b", text, re.M)
    ignore = open(os.path.join(REPO, ".dockerignore")).read().split()
    assert ".git" in ignore and "build*" in ignore
