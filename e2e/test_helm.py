"""The Helm chart (charts/vnet-ipam) with the real helm binary against the real API server.

helm lint and helm template with the default values and every representative values file in
charts/vnet-ipam/ci/; bad values refused by values.schema.json (or the chart's own checks) with a
message naming the value; every rendered object accepted by the API server (server-side dry run);
helm install, upgrade and uninstall creating and removing every object; and the RBAC of each
ServiceAccount granting exactly the calls its binary makes (kubectl auth can-i), nothing more.
Also: the chart's CRDs are symlinks to crds/ that helm follows; the built controller, agent and
mock accept the rendered flags; the alerts and dashboard query metrics the binaries export; and
docs/configuration.md is what scripts/gen-config-docs.py generates.

No kube-scheduler or kube-controller-manager runs, so no pod is ever created: the objects are
checked, not the workloads.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import socket
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from built import built
from polling import poll, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "vnet-ipam"
CRD_DIR = ROOT / "crds"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]
CRD_NAMES = ("ipblocks.vnetipam.io", "podsubnets.vnetipam.io")
RELEASE = "vnet-ipam"
NAMESPACE = "vnet-ipam-system"

# The chart's ServiceMonitor and PrometheusRule are checked by the API server against the real
# prometheus-operator CRDs (scripts/fetch-monitoring-crds.sh pins the release).
MONITORING_CRDS = ["servicemonitors", "prometheusrules"]


# ---- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def helm() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "install-helm.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def values_args(case: str) -> list[str]:
    return [] if case == "default" else ["-f", str(CHART / "ci" / f"{case}-values.yaml")]


def run_helm(helm: Path, *args: str, kube=None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(helm), *args]
    if kube is not None:
        cmd.append(f"--kubeconfig={kube.kubeconfig}")
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {res.returncode}\n"
                             f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def render(helm: Path, *args: str, namespace: str = NAMESPACE) -> list[dict]:
    """helm template: the rendered objects, in order."""
    out = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", namespace, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = by_kind(objects, kind)
    assert name in found, f"no {kind} {name} among {sorted(found)}"
    return found[name]


def container(workload: dict, name: str) -> dict:
    spec = workload["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name} in {workload['metadata']['name']}")


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


# ---- the chart's CRDs are the top-level files ----------------------------------------------------

def test_chart_crds_are_symlinks_to_the_top_level_crds():
    """One source of truth: charts/vnet-ipam/crds/* are symlinks into crds/, one per file."""
    entries = sorted(CHART.joinpath("crds").iterdir())
    assert [e.name for e in entries] == sorted(p.name for p in CRD_DIR.glob("*.yaml"))
    for e in entries:
        assert e.is_symlink(), f"{e} must be a symlink to crds/{e.name}, not a copy"
        assert e.resolve() == (CRD_DIR / e.name).resolve()


def test_helm_follows_the_symlinks_in_template_and_package(helm, tmp_path):
    """helm template --include-crds and helm package carry the CRD files byte for byte."""
    objects = render(helm, "--include-crds")
    crds = by_kind(objects, "CustomResourceDefinition")
    assert sorted(crds) == sorted(CRD_NAMES)
    for path in CRD_DIR.glob("*.yaml"):
        want = yaml.safe_load(path.read_text())
        assert crds[want["metadata"]["name"]] == want

    run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("vnet-ipam-*.tgz")
    with tarfile.open(archive) as tar:
        for path in CRD_DIR.glob("*.yaml"):
            member = tar.getmember(f"vnet-ipam/crds/{path.name}")
            assert member.isfile(), f"{member.name} is packaged as a link, not the file"
            assert tar.extractfile(member).read() == path.read_bytes()


def test_configuration_reference_is_generated_from_the_schemas():
    """docs/configuration.md is what scripts/gen-config-docs.py makes of crds/ and the chart's
    values.schema.json today, and it documents every value and every CRD field."""
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-config-docs.py"), "--check"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 0, f"{res.stdout[-3000:]}{res.stderr}"
    doc = (ROOT / "docs" / "configuration.md").read_text()

    def leaves(schema: dict, path: str):
        props = schema.get("properties")
        if props and schema.get("additionalProperties") is False or path == "":
            for name, sub in props.items():
                yield from leaves(sub, f"{path}.{name}" if path else name)
        else:
            yield path

    schema = json.loads((CHART / "values.schema.json").read_text())
    for key in leaves(schema, ""):
        if key != "global":
            assert f"| `{key}` |" in doc, f"value {key} is not documented"
    for path in CRD_DIR.glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for field in spec["properties"]["spec"]["properties"]:
            assert f"| `spec.{field}` |" in doc, f"{path.name}: spec.{field} is not documented"


# ---- lint and template ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_lint(helm, case):
    res = run_helm(helm, "lint", "--strict", str(CHART), *values_args(case))
    assert "0 chart(s) failed" in res.stdout, res.stdout


def test_default_values(helm):
    objects = render(helm)
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "Deployment",
                     "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount",
                     "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]

    ctrl = one(objects, "Deployment", "vnet-ipam-controller")
    assert ctrl["spec"]["replicas"] == 2
    pod = ctrl["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"
    c = container(ctrl, "controller")
    assert c["args"][:2] == ["--cloud=azure", "--azure-config=/etc/vnet-ipam/azure/azure.json"]
    for flag in ("--leader-elect=true", f"--leader-election-namespace={NAMESPACE}",
                 "--leader-election-name=vnet-ipam-controller",
                 "--leader-election-identity=$(POD_NAME)", "--metrics-address=0.0.0.0:9090"):
        assert flag in c["args"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # azure.json from the node: the file only, never its directory of kubelet credentials.
    (vol,) = pod["volumes"]
    assert vol["hostPath"] == {"path": "/etc/kubernetes/azure.json", "type": "File"}

    pdb = one(objects, "PodDisruptionBudget", "vnet-ipam-controller")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == ctrl["spec"]["selector"]

    agent = one(objects, "DaemonSet", "vnet-ipam-agent")
    pod = agent["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    mounts = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert sorted(mounts.values()) == ["/etc/cni/net.d", "/opt/cni/bin", "/run/vnet-ipam",
                                       "/var/lib/vnet-ipam"]
    a = container(agent, "agent")
    assert "--socket=/run/vnet-ipam/agent.sock" in a["args"]
    assert "--node-name=$(NODE_NAME)" in a["args"]
    assert a["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # The agent binary itself touches no netns: no capability, in either container.
    init = container(agent, "install-cni")
    for c in (a, init):
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # No shell in the image: the agent binary installs every plugin the conflist and containerd
    # need (loopback for each sandbox, portmap when chained).
    assert init["command"] == ["/usr/local/bin/vnet-ipam-agent"]
    assert init["args"][0] == "install-cni"
    assert init["args"][-4:] == ["loopback", "portmap", "vnet-ipam", "vnet-transparent"]
    assert [m["mountPath"] for m in init["volumeMounts"]] == ["/host/opt/cni/bin"]

    services = by_kind(objects, "Service")
    assert services["vnet-ipam-controller-metrics"]["spec"]["ports"][0]["port"] == 9090
    assert services["vnet-ipam-agent-metrics"]["spec"]["ports"][0]["port"] == 9091


def test_agent_node_scoped_writes_policy(helm):
    """The ValidatingAdmissionPolicy matches the agent's ServiceAccount, whatever its name, and
    agent.nodeScopedWrites.enabled=false leaves it out. What it allows and refuses is tested on
    the API server in e2e/test_node_scoped_writes.py."""
    objects = render(helm)
    policy = one(objects, "ValidatingAdmissionPolicy", "vnet-ipam-agent-node-scoped-writes")
    binding = one(objects, "ValidatingAdmissionPolicyBinding", "vnet-ipam-agent-node-scoped-writes")
    assert binding["spec"] == {"policyName": "vnet-ipam-agent-node-scoped-writes",
                               "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == \
        f"request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:vnet-ipam-agent'"

    renamed = render(helm, "--set", "agent.serviceAccount.name=ipam-agent")
    policy = one(renamed, "ValidatingAdmissionPolicy", "vnet-ipam-agent-node-scoped-writes")
    assert policy["spec"]["matchConditions"][0]["expression"].endswith(
        f"'system:serviceaccount:{NAMESPACE}:ipam-agent'")

    off = {o["kind"] for o in render(helm, "--set", "agent.nodeScopedWrites.enabled=false")}
    assert not off & {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def test_cloud_none(helm):
    objects = render(helm, *values_args("cloud-none"))
    assert "Secret" not in {o["kind"] for o in objects}
    assert "Role" not in {o["kind"] for o in objects}  # no leader election: no Lease rights
    ctrl = one(objects, "Deployment", "vnet-ipam-controller")
    c = container(ctrl, "controller")
    assert "--cloud=none" in c["args"] and "--leader-elect=false" in c["args"]
    assert not any(a.startswith("--azure") for a in c["args"])
    assert "volumes" not in ctrl["spec"]["template"]["spec"]
    assert ctrl["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    a = container(one(objects, "DaemonSet", "vnet-ipam-agent"), "agent")
    assert "--host-veth-prefix=cali" in a["args"] and "--mtu=1450" in a["args"]


@pytest.mark.parametrize("values, prefix", [
    ([], "vnet"),                                                       # an engine matching IPs
    (["--set", "networkPolicy.engine=calico"], "cali"),                 # Felix's interfacePrefix
    (["--set", "networkPolicy.engine=calico", "--set", "agent.hostVethPrefix=azv"], "azv"),
])
def test_the_policy_engine_setting_names_the_host_veths(helm, values, prefix):
    a = container(one(render(helm, *values), "DaemonSet", "vnet-ipam-agent"), "agent")
    assert f"--host-veth-prefix={prefix}" in a["args"], a["args"]


def test_azure_secret(helm):
    objects = render(helm, *values_args("azure-secret"))
    secret = one(objects, "Secret", "vnet-ipam-azure")
    azure_json = json.loads(base64.b64decode(secret["data"]["azure.json"]))
    assert azure_json["tenantId"] == "11111111-1111-1111-1111-111111111111"
    assert azure_json["aadClientSecret"] == "not-a-real-secret"
    ctrl = one(objects, "Deployment", "vnet-ipam-controller")
    c = container(ctrl, "controller")
    assert "--azure-ca-file=/etc/vnet-ipam/azure-ca/ca.crt" in c["args"]
    assert env_of(c)["VNETIPAM_AZURE_ARM_ENDPOINT"] == "https://management.usgovcloudapi.net"
    vols = {v["name"]: v for v in ctrl["spec"]["template"]["spec"]["volumes"]}
    assert vols["azure-config"]["secret"]["secretName"] == "vnet-ipam-azure"
    assert vols["azure-ca"]["configMap"]["name"] == "vnet-ipam-azure-ca"
    assert ctrl["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # A changed azure.json restarts the controller.
    again = render(helm, *values_args("azure-secret"), "--set", "azure.config.resourceGroup=other")
    annotation = "checksum/azure-config"
    assert (one(again, "Deployment", "vnet-ipam-controller")["spec"]["template"]["metadata"]
            ["annotations"][annotation] !=
            ctrl["spec"]["template"]["metadata"]["annotations"][annotation])


def test_workload_identity(helm):
    objects = render(helm, *values_args("workload-identity"))
    assert "Secret" not in {o["kind"] for o in objects}  # the operator's own Secret is used
    sa = one(objects, "ServiceAccount", "vnet-ipam-controller")
    assert sa["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": "44444444-4444-4444-4444-444444444444",
        "azure.workload.identity/tenant-id": "11111111-1111-1111-1111-111111111111"}
    ctrl = one(objects, "Deployment", "vnet-ipam-controller")
    assert ctrl["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    vols = {v["name"]: v for v in ctrl["spec"]["template"]["spec"]["volumes"]}
    assert vols["azure-config"]["secret"]["secretName"] == "my-azure-json"
    # The agent never talks to Azure: nothing of this reaches it.
    agent_sa = one(objects, "ServiceAccount", "vnet-ipam-agent")
    assert "annotations" not in agent_sa["metadata"]


def test_mock(helm):
    objects = render(helm, *values_args("mock"))
    mock = one(objects, "Deployment", "vnet-ipam-azure-mock")
    m = container(mock, "azure-mock")
    assert m["image"] == "registry.example.com/vnet-ipam/azure-vnet-mock:dev"
    assert "--throttle-rate=0.05" in m["args"]
    assert mock["spec"]["template"]["spec"]["hostNetwork"] is True
    config_map = one(objects, "ConfigMap", "vnet-ipam-azure-mock")
    topology = json.loads(config_map["data"]["topology.json"])
    client = topology["clients"][0]
    secret = one(objects, "Secret", "vnet-ipam-azure")
    azure_json = json.loads(base64.b64decode(secret["data"]["azure.json"]))
    assert (azure_json["tenantId"], azure_json["aadClientId"], azure_json["aadClientSecret"]) == \
        (client["tenantId"], client["clientId"], client["clientSecret"])
    assert azure_json["subscriptionId"] == topology["subscriptionId"]
    svc = one(objects, "Service", "vnet-ipam-azure-mock")
    assert svc["spec"]["ports"][0]["port"] == 8080
    env = env_of(container(one(objects, "Deployment", "vnet-ipam-controller"), "controller"))
    # The Service's link variables: the ClusterIP without cluster DNS.
    url = "http://$(VNET_IPAM_AZURE_MOCK_SERVICE_HOST):$(VNET_IPAM_AZURE_MOCK_SERVICE_PORT)"
    for name in ("VNETIPAM_AZURE_ARM_ENDPOINT", "VNETIPAM_AZURE_AUTHORITY_HOST",
                 "VNETIPAM_AZURE_IMDS_ENDPOINT"):
        assert env[name] == url


def test_monitoring(helm):
    objects = render(helm, *values_args("monitoring"))
    monitors = by_kind(objects, "ServiceMonitor")
    assert sorted(monitors) == ["vnet-ipam-agent", "vnet-ipam-controller"]
    services = by_kind(objects, "Service")
    for name, sm in monitors.items():
        svc = services[f"{name}-metrics"]
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rule = one(objects, "PrometheusRule", "vnet-ipam")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) >= {"VnetIpamPoolNearlyExhausted", "VnetIpamNodeOutOfIPs",
                           "VnetIpamAzureThrottled", "VnetIpamControllerNoLeader"}
    assert "> 0.8" in alerts["VnetIpamPoolNearlyExhausted"]["expr"]
    for r in alerts.values():
        assert "vnetipam_" in r["expr"] and r["annotations"]["summary"]
    config_map = one(objects, "ConfigMap", "vnet-ipam-dashboard")
    dashboard = json.loads(config_map["data"]["vnet-ipam.json"])
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Pool capacity and use", "Per-node headroom", "Allocation latency", "Azure"} <= titles


def test_alerts_and_dashboard_use_metrics_the_binaries_export(helm):
    """Every vnetipam_* series the PrometheusRule and the dashboard query is registered by the
    controller or the agent (their metrics.cpp), so a renamed metric cannot silently blank a
    panel or disarm an alert."""
    exported = set()
    for source in (ROOT / "controller" / "metrics.cpp", ROOT / "node-agent" / "metrics.cpp"):
        exported |= set(re.findall(r'\.Name\("(vnetipam_[a-z0-9_]+)"\)', source.read_text()))
    assert {"vnetipam_controller_leader", "vnetipam_agent_allocations_total"} <= exported

    objects = render(helm, *values_args("monitoring"))
    rule = one(objects, "PrometheusRule", "vnet-ipam")
    queries = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads((CHART / "dashboards" / "vnet-ipam.json").read_text())
    queries += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {re.sub(r"_(bucket|count|sum)$", "", m)
            for q in queries for m in re.findall(r"vnetipam_[a-z0-9_]+", q)}
    assert used - exported == set(), f"queried but not exported: {sorted(used - exported)}"


def rendered_args(c: dict) -> list[str]:
    """The container's command line as the kubelet runs it ($(VAR) from the env expanded)."""
    env = {"POD_NAME": "vnet-ipam-controller-0", "NODE_NAME": "node-1"}
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in c["args"]]


@pytest.mark.parametrize("case", CASES)
def test_binaries_accept_the_rendered_flags(helm, case, tmp_path):
    """The controller and the agent parse every flag the chart gives them. Each runs with the
    rendered command line plus a missing --kubeconfig (and, for the agent, private directories
    and port), so it gets past flag parsing and stops at the first thing that needs the cluster:
    an unknown flag or a bad value would stop it earlier, with a different message."""
    objects = render(helm, *values_args(case))
    missing = str(tmp_path / "no-such-kubeconfig")
    ctrl = container(one(objects, "Deployment", "vnet-ipam-controller"), "controller")
    res = subprocess.run([str(built("controller/vnet-ipam-controller")), *rendered_args(ctrl),
                          f"--kubeconfig={missing}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert res.returncode != 0 and "--kubeconfig" in res.stdout and missing in res.stdout, \
        res.stdout

    agent = container(one(objects, "DaemonSet", "vnet-ipam-agent"), "agent")
    res = subprocess.run([str(built("node-agent/vnet-ipam-agent")), *rendered_args(agent),
                          f"--state-dir={tmp_path / 'state'}", f"--socket={tmp_path / 'a.sock'}",
                          f"--cni-conf-dir={tmp_path / 'net.d'}",
                          "--metrics-address=127.0.0.1:0", f"--kubeconfig={missing}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert res.returncode != 0 and "--kubeconfig" in res.stdout and missing in res.stdout, \
        res.stdout


def test_mock_serves_the_rendered_topology_to_the_rendered_credentials(helm, tmp_path):
    """azure-vnet-mock starts from the chart's ConfigMap with the chart's flags (on a loopback
    port and private paths instead of the pod's), and the azure.json the chart derives for the
    controller signs in to it: the client, tenant and subscription agree."""
    objects = render(helm, *values_args("mock"))
    topology = tmp_path / "topology.json"
    topology.write_text(one(objects, "ConfigMap", "vnet-ipam-azure-mock")["data"]["topology.json"])
    port = free_port()
    local = {"--listen": f"http://127.0.0.1:{port}", "--topology": str(topology),
             "--state-file": str(tmp_path / "state.json")}
    args = container(one(objects, "Deployment", "vnet-ipam-azure-mock"), "azure-mock")["args"]
    args = [f"{a.split('=')[0]}={local[a.split('=')[0]]}" if a.split("=")[0] in local else a
            for a in args]
    assert len([a for a in args if a.split("=")[0] in local]) == len(local)
    azure_json = json.loads(base64.b64decode(
        one(objects, "Secret", "vnet-ipam-azure")["data"]["azure.json"]))

    with open(tmp_path / "mock.log", "w") as log:
        proc = subprocess.Popen([str(built("azure-mock/azure-vnet-mock")), *args],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"

        def alive():
            assert proc.poll() is None, (tmp_path / "mock.log").read_text()

        wait_http_ok("the mock to come up", f"{base}/mock/healthz", 20, alive=alive,
                     interval=0.05, describe=lambda: (tmp_path / "mock.log").read_text())
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": azure_json["aadClientId"],
            "client_secret": azure_json["aadClientSecret"],
            "scope": "https://management.azure.com/.default"}).encode()
        with urllib.request.urlopen(f"{base}/{azure_json['tenantId']}/oauth2/v2.0/token",
                                    data=form, timeout=10) as r:
            token = json.load(r)["access_token"]
        vnet = (f"/subscriptions/{azure_json['subscriptionId']}/resourceGroups/"
                f"{azure_json['resourceGroup']}/providers/Microsoft.Network/virtualNetworks/"
                f"{azure_json['vnetName']}?api-version=2024-05-01")
        req = urllib.request.Request(base + vnet, headers={"Authorization": f"Bearer {token}"})

        # The chart's mock values inject throttling (--throttle-rate): a 429 is an answer the
        # client must retry after Retry-After, as the controller does; any other error fails.
        def read_vnet():
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.load(r)
            except urllib.error.HTTPError as e:
                if e.code != 429:
                    raise
                assert e.headers.get("Retry-After"), "a 429 without Retry-After"
                return None

        assert poll("the VNET GET past injected throttling", read_vnet, timeout=30,
                    interval=1.0)["name"] == azure_json["vnetName"]
    finally:
        proc.terminate()
        proc.wait(10)


BAD_VALUES = [
    # (--set, what the message must say)
    ("cloud=gcp", ["at '/cloud'", "'azure', 'none'"]),
    ("controller.replicas=0", ["at '/controller/replicas'", "minimum"]),
    ("controller.replica=2", ["at '/controller'", "'replica' not allowed"]),
    ("agent.mtu=100000", ["at '/agent/mtu'", "maximum"]),
    ("agent.socketDir=run/vnet-ipam", ["at '/agent/socketDir'", "pattern"]),
    ("agent.logLevel=verbose", ["at '/agent/logLevel'", "'debug', 'info', 'warn', 'error'"]),
    ("serviceMonitor.interval=soon", ["at '/serviceMonitor/interval'"]),
    ("cloud=none,mock.enabled=true", ["mock.enabled=true needs cloud=azure"]),
    ("azure.existingSecret=a,azure.config.tenantId=b",
     ["set at most one of azure.existingSecret and azure.config"]),
    ("azure.hostPath=", ["cloud=azure needs an azure.json"]),
    ("controller.leaderElection.enabled=false",
     ["controller.replicas=2 needs controller.leaderElection.enabled=true"]),
]


@pytest.mark.parametrize("values,message", BAD_VALUES, ids=[v for v, _ in BAD_VALUES])
def test_bad_values_are_refused_with_a_clear_message(helm, values, message):
    res = run_helm(helm, "template", RELEASE, str(CHART), "--set", values, check=False)
    assert res.returncode != 0, f"--set {values} was accepted:\n{res.stdout[:2000]}"
    for part in message:
        assert part in res.stderr, f"--set {values}: {part!r} not in:\n{res.stderr}"


def test_bad_values_are_refused_by_install_too(helm, kube):
    res = run_helm(helm, "install", "bad", str(CHART), "--namespace", "default", "--set",
                   "agent.mtu=1", kube=kube, check=False)
    assert res.returncode != 0 and "at '/agent/mtu'" in res.stderr, res.stderr
    assert "bad" not in run_helm(helm, "list", "-A", "-q", kube=kube).stdout.split()


# ---- against the real API server -----------------------------------------------------------------

@pytest.fixture(scope="session")
def monitoring_crds() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "fetch-monitoring-crds.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster(kube, monitoring_crds):
    """The session's API server with the chart's namespace and the prometheus-operator CRDs."""
    for plural in MONITORING_CRDS:
        kube.kubectl("apply", "--server-side", "-f",
                     str(monitoring_crds / f"monitoring.coreos.com_{plural}.yaml"))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{p}.monitoring.coreos.com" for p in MONITORING_CRDS))
    for ns in (NAMESPACE, "vnet-ipam-dry-run", "vnet-ipam-rbac"):
        kube.kubectl("create", "namespace", ns, check=False)
    return kube


def test_monitoring_objects_are_checked_against_the_real_schemas(helm, cluster):
    """The CRDs are prometheus-operator's own, with their schemas: the chart's objects pass, and the
    same ServiceMonitor with a malformed scrape interval, or a PrometheusRule whose rule has no
    expr, is refused naming the field."""
    objects = render(helm, *values_args("monitoring"), namespace="vnet-ipam-dry-run")
    monitor = one(objects, "ServiceMonitor", "vnet-ipam-agent")
    rule = one(objects, "PrometheusRule", "vnet-ipam")
    for good in (monitor, rule):
        ok = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(good))
        assert ok.returncode == 0, ok.stderr
    monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    for bad, field in ((monitor, "spec.endpoints[0].interval"),
                       (rule, "spec.groups[0].rules[0].expr")):
        refused = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(bad),
                                  check=False)
        assert refused.returncode != 0 and field in refused.stderr, refused.stderr


@pytest.mark.parametrize("case", CASES)
def test_rendered_objects_pass_server_side_dry_run(helm, cluster, case):
    out = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", "vnet-ipam-dry-run",
                   "--include-crds", *values_args(case)).stdout
    res = cluster.kubectl("apply", "--dry-run=server", "-o", "name", "-f", "-", input=out)
    applied = len(res.stdout.split())
    assert applied == len([d for d in yaml.safe_load_all(out) if d]), res.stdout


def manifest_objects(helm: Path, kube) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every object of the installed release."""
    out = run_helm(helm, "get", "manifest", RELEASE, "--namespace", NAMESPACE, kube=kube).stdout
    return [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
            for d in yaml.safe_load_all(out) if d]


def existing(kube, objects: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    found = set()
    for kind, ns, name in objects:
        args = ["get", kind, name, "-o", "name", "--ignore-not-found"]
        if ns:
            args += ["-n", ns]
        if kube.kubectl(*args).stdout.strip():
            found.add((kind, ns, name))
    return found


def test_install_upgrade_uninstall(helm, cluster):
    kube = cluster
    run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, kube=kube)
    try:
        installed = manifest_objects(helm, kube)
        assert len(installed) >= 12
        assert existing(kube, installed) == set(installed)
        # No scheduler or controller-manager: the workloads exist, their pods never do.
        assert kube.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout.strip() == ""
        for crd in CRD_NAMES:  # installed from the chart's crds/ unless present already
            kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}")
        status = json.loads(run_helm(helm, "status", RELEASE, "-n", NAMESPACE, "-o", "json",
                                     kube=kube).stdout)
        assert status["info"]["status"] == "deployed"
        assert "kubectl get podsubnets" in status["info"]["notes"]
        assert "kubectl get ipblocks" in status["info"]["notes"]

        # Upgrade: the mock and the monitoring objects appear, the Deployment changes in place.
        run_helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
                 "-f", str(CHART / "ci" / "mock-values.yaml"),
                 "-f", str(CHART / "ci" / "monitoring-values.yaml"),
                 "--set", "cloud=azure,controller.replicas=3", kube=kube)
        upgraded = manifest_objects(helm, kube)
        assert existing(kube, upgraded) == set(upgraded)
        added = set(upgraded) - set(installed)
        assert {k for k, _, _ in added} >= {"ServiceMonitor", "PrometheusRule", "ConfigMap",
                                            "Secret"}
        assert ("Deployment", NAMESPACE, "vnet-ipam-azure-mock") in added
        removed = set(installed) - set(upgraded)
        assert existing(kube, sorted(removed)) == set()
        deploy = json.loads(kube.kubectl("get", "deployment", "vnet-ipam-controller", "-n",
                                         NAMESPACE, "-o", "json").stdout)
        assert deploy["spec"]["replicas"] == 3
        assert deploy["metadata"]["generation"] == 2  # updated, not recreated
        history = json.loads(run_helm(helm, "history", RELEASE, "-n", NAMESPACE, "-o", "json",
                                      kube=kube).stdout)
        assert [h["revision"] for h in history] == [1, 2]
    finally:
        run_helm(helm, "uninstall", RELEASE, "--namespace", NAMESPACE, kube=kube, check=False)
    everything = set(installed) | set(upgraded)
    assert existing(kube, sorted(everything)) == set()
    # Helm never deletes CRDs (that would delete every PodSubnet and IPBlock).
    for crd in CRD_NAMES:
        kube.kubectl("get", "crd", crd)


# ---- RBAC: exactly what each binary calls --------------------------------------------------------

RBAC_NS = "vnet-ipam-rbac"

# What each binary does, as (verb, resource[, subresource][, name], namespace-or-None).
CONTROLLER_DOES = [
    *((v, "podsubnets.vnetipam.io") for v in ("get", "list", "watch")),
    *((v, "podsubnets.vnetipam.io", "status") for v in ("update", "patch")),
    *((v, "ipblocks.vnetipam.io") for v in ("get", "list", "watch", "create", "update", "patch",
                                             "delete")),
    *((v, "ipblocks.vnetipam.io", "status") for v in ("update", "patch")),
    *((v, "nodes") for v in ("get", "list", "watch")),
    ("patch", "nodes", "status"),
    *((v, "events.events.k8s.io", None, None, "default") for v in ("create", "patch")),
    *((v, "events", None, None, "default") for v in ("create", "patch")),
    ("create", "leases.coordination.k8s.io", None, None, RBAC_NS),
    *((v, "leases.coordination.k8s.io", None, "vnet-ipam-controller", RBAC_NS)
      for v in ("get", "update")),
]
CONTROLLER_MUST_NOT = [
    ("delete", "nodes"), ("update", "nodes"), ("patch", "nodes"), ("update", "nodes", "status"),
    ("get", "secrets"), ("list", "secrets", None, None, RBAC_NS), ("get", "configmaps"),
    ("create", "podsubnets.vnetipam.io"), ("update", "podsubnets.vnetipam.io"),
    ("delete", "podsubnets.vnetipam.io"), ("list", "pods"), ("create", "pods"),
    ("delete", "events.events.k8s.io", None, None, "default"),
    ("get", "leases.coordination.k8s.io", None, "another-lease", RBAC_NS),
    ("update", "leases.coordination.k8s.io", None, "vnet-ipam-controller", "kube-system"),
    ("delete", "leases.coordination.k8s.io", None, "vnet-ipam-controller", RBAC_NS),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
]
# The agent's two informers (IPBlocks and Pods of its node: list + watch), its status.used and
# DataplaneSynced reports (server-side apply on ipblocks/status), its removal of the agent-drain
# finalizer (a JSON patch of the IPBlock) and its Events (about its Node, in "default", and about
# pods, in theirs: created, then patched to count repeats). Which node's blocks it may write,
# and that a patch of the IPBlock may only remove agent-drain, is the admission policy's business
# (e2e/test_node_scoped_writes.py), not RBAC's.
AGENT_DOES = [
    *((v, "ipblocks.vnetipam.io") for v in ("list", "watch", "patch")),
    ("patch", "ipblocks.vnetipam.io", "status"),
    *((v, "pods") for v in ("list", "watch")),
    *((v, "events.events.k8s.io", None, None, "default") for v in ("create", "patch")),
    *((v, "events.events.k8s.io", None, None, "some-app") for v in ("create", "patch")),
]
AGENT_MUST_NOT = [
    ("get", "nodes", None, "node-1"), ("get", "ipblocks.vnetipam.io"), ("get", "pods"),
    ("create", "events", None, None, "kube-system"),
    *((v, "events.events.k8s.io", None, None, "default") for v in ("get", "list", "delete")),
    ("create", "ipblocks.vnetipam.io"), ("update", "ipblocks.vnetipam.io"),
    ("delete", "ipblocks.vnetipam.io"),
    ("update", "ipblocks.vnetipam.io", "status"), ("get", "podsubnets.vnetipam.io"),
    ("list", "nodes"), ("watch", "nodes"), ("patch", "nodes"), ("delete", "nodes"),
    ("delete", "pods"), ("create", "pods"), ("patch", "pods", "status"),
    ("get", "secrets"), ("list", "secrets", None, None, RBAC_NS),
    ("create", "leases.coordination.k8s.io", None, None, RBAC_NS),
    ("create", "pods", "exec"),
]


def can_i(kube, sa: str, check: tuple) -> bool:
    verb, res, sub, name, ns = (*check, None, None, None)[:5]
    target = f"{res}/{name}" if name else res
    args = ["auth", "can-i", verb, target, f"--as=system:serviceaccount:{RBAC_NS}:{sa}"]
    args += ["-n", ns] if ns else ["--all-namespaces"]
    if sub:
        args.append(f"--subresource={sub}")
    res = kube.kubectl(*args, check=False)
    answer = res.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {res.stdout}{res.stderr}"
    return answer == "yes"


@pytest.fixture(scope="module")
def rbac(helm, cluster):
    """The chart's ServiceAccounts and RBAC (nothing else) applied in their own namespace, with
    the CRDs installed (kubectl auth can-i answers no for a resource the server does not serve)."""
    cluster.kubectl("apply", "-f", str(CRD_DIR))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{n}" for n in CRD_NAMES))
    out = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", RBAC_NS).stdout
    docs = [d for d in yaml.safe_load_all(out) if d and d["kind"] in
            ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    # Distinct cluster-scoped names, so the lifecycle test's release never shares them.
    for d in docs:
        d["metadata"]["name"] = d["metadata"]["name"].replace("vnet-ipam-", "rbac-test-", 1) \
            if d["kind"].startswith("Cluster") else d["metadata"]["name"]
        if d["kind"] == "ClusterRoleBinding":
            d["roleRef"]["name"] = d["roleRef"]["name"].replace("vnet-ipam-", "rbac-test-", 1)
    text = yaml.safe_dump_all(docs)
    cluster.kubectl("apply", "-f", "-", input=text)
    yield docs
    cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)


@pytest.mark.parametrize("sa,does,must_not", [
    ("vnet-ipam-controller", CONTROLLER_DOES, CONTROLLER_MUST_NOT),
    ("vnet-ipam-agent", AGENT_DOES, AGENT_MUST_NOT),
], ids=["controller", "agent"])
def test_service_account_may_do_exactly_what_its_binary_does(cluster, rbac, sa, does, must_not):
    with ThreadPoolExecutor(max_workers=4) as pool:
        allowed = list(pool.map(lambda c: can_i(cluster, sa, c), does))
        denied = list(pool.map(lambda c: can_i(cluster, sa, c), must_not))
    missing = [c for c, ok in zip(does, allowed) if not ok]
    extra = [c for c, ok in zip(must_not, denied) if ok]
    assert not missing, f"{sa} lacks permissions its binary uses: {missing}"
    assert not extra, f"{sa} has permissions it must not have: {extra}"


def test_agent_source_makes_only_the_calls_in_the_table():
    """The agent's API calls, read from its source: the IPBlock and Pod collections through
    informers (list + watch), server-side apply of IPBlock status, the JSON patch that removes
    agent-drain (Client::call, PATCH of the IPBlock) and one Event recorder (events.k8s.io create
    and patch). No Node read, no other client call: a new one needs a row in AGENT_DOES and a
    rule in agent-rbac.yaml."""
    sources = {p.name: p.read_text() for p in (ROOT / "node-agent").glob("*.[ch]*")}
    text = "\n".join(sources.values())
    # Declared once each (a local or a member): one recorder, two informers.
    assert len(re.findall(r"kube::EventRecorder \w+[(;{]", sources["main.cpp"])) == 1
    paths = set(re.findall(r'"(/apis?/[^"]*)"', text))
    # The project's API paths are named once: vnetipam.io's in api/constants.h, core v1's in
    # lib/kube/paths.h. The agent uses the IPBlocks and the Pods collections.
    constants = dict(re.findall(r'(k\w+Path) = "([^"]*)"',
                                (ROOT / "api" / "constants.h").read_text() +
                                (ROOT / "lib" / "kube" / "paths.h").read_text()))
    used = set(re.findall(r"\b(k\w+Path)\b", text)) & set(constants)
    paths |= {constants[name] for name in used}
    assert paths == {"/apis/vnetipam.io/v1alpha1/ipblocks", "/api/v1/pods"}, paths
    # clock() is the client's time source (the one the agent stamps conditions with), no request.
    calls = set(re.findall(r"\bclient_?\.(\w+)\(", text)) - {"clock"}
    assert calls == {"applyStatus", "call"}, calls
    assert re.findall(r'\.method = "(\w+)"', text) == ["PATCH"]
    assert len(re.findall(r"kube::Informer \w+[(;{]", sources["main.cpp"])) == 2


def rules_of(docs: list[dict], kind: str, component: str) -> set[tuple]:
    """Every (apiGroup, resource, verb, resourceName) a component's roles of `kind` grant."""
    out = set()
    for d in docs:
        if d["kind"] != kind or d["metadata"]["labels"]["app.kubernetes.io/component"] != component:
            continue
        for r in d["rules"]:
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    for v in r["verbs"]:
                        for n in r.get("resourceNames", [""]):
                            out.add((g, res, v, n))
    return out


def test_roles_grant_nothing_beyond_the_table(rbac):
    """Every rule in the chart is one the tables above use: a new permission needs a new row
    (and a reason in the role's comment)."""
    def expand(table):
        out = set()
        for check in table:
            verb, res, sub, name, _ = (*check, None, None, None)[:5]
            plural, _, group = res.partition(".")
            out.add((group, plural + (f"/{sub}" if sub else ""), verb, name or ""))
        return out

    for component, table in (("controller", CONTROLLER_DOES), ("agent", AGENT_DOES)):
        granted = rules_of(rbac, "ClusterRole", component) | rules_of(rbac, "Role", component)
        used = expand(table)
        # The controller's Events are granted in core and events.k8s.io alike.
        if component == "controller":
            used |= {(g, "events", v, "") for g in ("", "events.k8s.io")
                     for v in ("create", "patch")}
        assert granted == used, (f"{component}: granted but unused {sorted(granted - used)}; "
                                 f"used but not granted {sorted(used - granted)}")
