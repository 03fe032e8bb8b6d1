"""kubectl-ipam end to end: the built plugin binary against the real kube-apiserver (the session's
`kube` fixture) and the real controller (cloud: none, so no cloud mock is needed: blocks go Ready
as soon as the controller creates them).

Nodes and pods are API objects only: no kubelet runs. A pod's status (podIPs, phase) is written
through the status subresource with the admin client, which is how the seeded inconsistencies
(an address outside every block of its node, one address on two pods) are made. Every wait is a
poll with a deadline.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from built import built
from controller_harness import (POOL_LABEL, ApiError, ControllerProcess, KubeApi,
                                phase, poll)
from test_controller import api  # noqa: F401 (the fixture: CRDs applied, controller built)

POOL = "e2e-kipam"
CIDR = "10.251.0.0/24"
NODES = ["kipam-a", "kipam-b"]
LONELY_NODE = "kipam-c"  # not selected by the pool: never gets a block
# Printed outputs are what docs/kubectl-ipam.md shows (run with -s to see them).
SHOW_OUTPUT = os.environ.get("VNETIPAM_E2E_SHOW_OUTPUT") == "1"


def plugin() -> Path:
    return built("kubectl-ipam/kubectl-ipam")


def run(kubeconfig: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("KUBECONFIG", None)
    full_env.update(env or {})
    argv = [str(plugin()), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=full_env)
    if SHOW_OUTPUT:
        print(f"\n$ kubectl ipam {' '.join(args)}   (exit {result.returncode})\n"
              f"{result.stdout}{result.stderr}")
    return result


def create_pod(api: KubeApi, name: str, node: str, ips: list[str] | None = None,
               pod_phase: str = "Running") -> None:
    api.ok("POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"e2e": "kipam"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example.invalid/c"}]}})
    status: dict = {"phase": pod_phase, "startTime": "2027-01-01T00:00:00Z"}
    if ips:
        status |= {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}
    api.ok("PATCH", f"/api/v1/namespaces/default/pods/{name}/status", {"status": status},
           "application/merge-patch+json")


def warn(api: KubeApi, kind: str, name: str, namespace: str, reason: str, message: str) -> None:
    """A Warning Event about an object, as a kubelet or controller writes one (core/v1)."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.ok("POST", "/api/v1/namespaces/default/events", {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": "default",
                     "labels": {"e2e": "kipam"}},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace,
                           "apiVersion": "v1"},
        "type": "Warning", "reason": reason, "message": message, "count": 1,
        "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": "e2e"}})


def delete_pods(api: KubeApi) -> None:
    api.ok("DELETE", "/api/v1/namespaces/default/events?labelSelector=e2e%3Dkipam")
    items, _ = api.list("/api/v1/namespaces/default/pods", "e2e=kipam")
    for pod in items:
        # No kubelet confirms a graceful deletion: force it.
        api.ok("DELETE", f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}"
                         "?gracePeriodSeconds=0", allow=(404,))


def my_blocks(api: KubeApi) -> list[dict]:
    return api.blocks({POOL})


@pytest.fixture(scope="module")
def cluster(api, kube, tmp_path_factory):  # noqa: F811 (api is the imported fixture)
    """The pool, two selected nodes with one Ready block each, one unselected node, and the
    controller; everything removed afterwards."""
    plugin()
    workdir = tmp_path_factory.mktemp("kipam")
    ctl = ControllerProcess(workdir / "ctl", kube.kubeconfig, cloud="none", identity="kipam",
                            leader_elect=False)
    spec = {"cidr": CIDR, "minFreeIPsPerNode": 4}
    try:  # nodeSelector is a label selector; the CRDs of earlier versions take a label map
        api.create_podsubnet(POOL, spec | {"nodeSelector": {"matchLabels": {POOL_LABEL: "kipam"}}})
    except ApiError as e:
        if e.status != 422:
            raise
        api.create_podsubnet(POOL, spec | {"nodeSelector": {POOL_LABEL: "kipam"}})
    try:
        ctl.start().wait_ready()
        for n in NODES:
            api.create_node(n, {POOL_LABEL: "kipam"}, None)
        api.create_node(LONELY_NODE, {POOL_LABEL: "other"}, None)

        def ready():
            blocks = my_blocks(api)
            return len(blocks) == len(NODES) and all(phase(b) == "Ready" for b in blocks)
        poll("a Ready block on each node", ready, 30, describe=lambda: str(my_blocks(api)))

        def counted():
            pool = api.podsubnet(POOL)
            return (pool.get("status") or {}).get("allocatedBlocks") == len(NODES)
        poll("the PodSubnet's status counts the blocks", counted, 30)
        yield api
    finally:
        delete_pods(api)
        for n in [*NODES, LONELY_NODE]:
            api.delete_node(n)
        poll("the pool's blocks gone", lambda: not my_blocks(api), 30,
             describe=lambda: ctl.tail(20))
        api.delete_podsubnet(POOL)
        ctl.stop()


def block_of(api: KubeApi, node: str) -> dict:
    (block,) = [b for b in my_blocks(api) if b["spec"]["nodeName"] == node]
    return block


def test_show_check_and_why_on_a_clean_pool_then_seeded_faults(cluster, kube):
    api = cluster
    kubeconfig = Path(kube.kubeconfig)
    block_a = block_of(api, NODES[0])
    net_a = block_a["spec"]["cidr"].rsplit(".", 1)[0]
    first_a = int(block_a["spec"]["cidr"].rsplit(".", 1)[1].split("/")[0])
    ip_a = f"{net_a}.{first_a + 4}"
    create_pod(api, "kipam-web", NODES[0], [ip_a])
    api.report_used(block_a["metadata"]["name"], 1)

    # show: the pool with its CIDR, both blocks counted, the nodes holding them.
    out = run(kubeconfig, "show")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:3] == ["PODSUBNET", "CIDR", "BLOCKS(STATUS)"], out.stdout
    (row,) = [r.split() for r in rows if r.split()[0] == POOL]
    assert row[1] == CIDR
    assert row[2] == "2/16"  # status: allocated/total
    # blocks counted, ready, capacity, used, free, foreign (not known for a spec.cidr pool), pods
    assert row[3:10] == ["2", "2", "32", "1", "31", "-", "1"], out.stdout
    assert row[10] == ",".join(NODES)

    doc = json.loads(run(kubeconfig, "show", "-o", "json").stdout)
    (pool,) = [p for p in doc["podSubnets"] if p["name"] == POOL]
    assert (pool["cidr"], pool["blocks"], pool["readyBlocks"], pool["nodes"]) == \
        (CIDR, 2, 2, NODES)

    # show --node: the block with its headroom, and the pod mapped to it.
    out = run(kubeconfig, "show", "--node", NODES[0])
    assert out.returncode == 0, out.stderr
    assert block_a["spec"]["cidr"] in out.stdout and "kipam-web" in out.stdout, out.stdout
    node = json.loads(run(kubeconfig, "show", "--node", NODES[0], "-o", "json").stdout)
    assert [(b["name"], b["phase"], b["capacity"], b["used"], b["headroom"], b["pods"])
            for b in node["blocks"]] == [(block_a["metadata"]["name"], "Ready", 16, 1, 15, 1)]
    assert [(a["name"], a["ips"], a["block"], a["since"]) for a in node["allocations"]] == \
        [("kipam-web", [ip_a], block_a["metadata"]["name"], "2027-01-01T00:00:00Z")]

    # check: clean. Scoped to this test's PodSubnet: the session's API server also holds the
    # blocks other suites left (of nodes that never ran), which a whole-cluster check reports.
    out = run(kubeconfig, "check", "--podsubnet", POOL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found." in out.stdout

    # why: a pod on a node no PodSubnet selects (so it has no block) names that first.
    # Its Warning events are read too: the runtime's CNI error, and one about its node.
    create_pod(api, "kipam-lonely", LONELY_NODE, pod_phase="Pending")
    warn(api, "Pod", "kipam-lonely", "default", "FailedCreatePodSandBox",
         'plugin type="vnet-ipam" failed (add): no block on node kipam-c')
    warn(api, "Node", LONELY_NODE, "", "NodeHasNoBlock", "e2e: a warning about the node")
    warn(api, "Pod", "kipam-web", "default", "Unrelated", "about another pod")
    out = run(kubeconfig, "why", "kipam-lonely", "-n", "default")
    assert out.returncode == 0, out.stderr
    assert "1. [no-podsubnet] no PodSubnet selects node kipam-c" in out.stdout, out.stdout
    assert f"PodSubnet {POOL} selects {POOL_LABEL}=kipam" in out.stdout, out.stdout
    why = json.loads(run(kubeconfig, "why", "kipam-lonely", "-o", "json").stdout)
    assert [c["cause"] for c in why["causes"]] == \
        ["no-podsubnet", "no-ready-block", "agent-not-ready", "cni-error"], why
    assert why["causes"][3]["details"] == \
        ['plugin type="vnet-ipam" failed (add): no block on node kipam-c'], why
    assert [e["reason"] for e in why["podEvents"]] == ["FailedCreatePodSandBox"], why
    assert [(e["kind"], e["reason"]) for e in why["nodeEvents"]] == \
        [("Node", "NodeHasNoBlock")], why
    # A pod that has its address says so, with its block.
    why = json.loads(run(kubeconfig, "why", "kipam-web", "-o", "json").stdout)
    assert [c["cause"] for c in why["causes"]] == ["has-address"], why
    # The lonely pod is Pending without an address: check does not count it as a fault.
    assert run(kubeconfig, "check", "--podsubnet", POOL).returncode == 0

    # Seeded faults: an address outside every block of its node, and one address on two pods.
    create_pod(api, "kipam-stray", NODES[0], ["10.99.0.5"])
    create_pod(api, "kipam-twin", NODES[0], [ip_a])
    api.report_used(block_a["metadata"]["name"], 2)
    out = run(kubeconfig, "check", "--podsubnet", POOL)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pod-ip-outside-blocks  Pod default/kipam-stray" in out.stdout, out.stdout
    assert f"duplicate-ip           Address {ip_a}" in out.stdout, out.stdout
    assert "held by 2 pods: default/kipam-twin, default/kipam-web" in out.stdout, out.stdout
    report = json.loads(run(kubeconfig, "check", "--podsubnet", POOL, "-o", "json").stdout)
    assert report["clean"] is False
    assert sorted(f["check"] for f in report["findings"]) == \
        ["duplicate-ip", "pod-ip-outside-blocks"], report


def test_kubeconfig_from_the_environment_and_errors(cluster, kube, tmp_path):
    kubeconfig = str(kube.kubeconfig)
    # $KUBECONFIG: the first file of the list is read.
    out = run(None, "show", env={"KUBECONFIG": f"{kubeconfig}:/nonexistent/second"})
    assert out.returncode == 0, out.stderr
    assert POOL in out.stdout
    # ~/.kube/config when neither is given.
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(Path(kubeconfig).read_text())
    # The admin kubeconfig names its certificates by absolute path, so a copy works.
    out = run(None, "show", env={"HOME": str(home)})
    assert out.returncode == 0, out.stderr

    out = run(Path("/nonexistent/kubeconfig"), "show")
    assert out.returncode == 2
    assert out.stderr.startswith("kubectl-ipam: ") and "/nonexistent/kubeconfig" in out.stderr
    out = run(Path(kubeconfig), "show", "--context", "no-such-context")
    assert out.returncode == 2 and "no-such-context" in out.stderr, out.stderr
    out = run(Path(kubeconfig), "frobnicate")
    assert out.returncode == 2 and "unknown command" in out.stderr, out.stderr
    out = run(Path(kubeconfig), "why", "no-such-pod")
    assert out.returncode == 2 and "pod default/no-such-pod not found" in out.stdout, out.stdout
    out = run(None, "--help")
    assert out.returncode == 0 and "kubectl ipam check" in out.stdout


def test_the_demo_status_page_runs_the_plugin(cluster, kube):
    """scripts/demo.py status prints `kubectl ipam show` and `check` through kubectl_ipam_text;
    here against this cluster, with this build's binary (the demo's is in build-image)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import demo

    text = demo.kubectl_ipam_text(str(kube.kubeconfig), "show", binary=plugin())
    assert text.splitlines()[0].startswith("PODSUBNET"), text
    assert any(line.startswith(POOL) for line in text.splitlines()), text
    # A finding: the exit status is shown.
    create_pod(cluster, "kipam-demo-stray", NODES[1], ["10.99.0.6"])
    text = demo.kubectl_ipam_text(str(kube.kubeconfig), "check", binary=plugin())
    assert "Pod default/kipam-demo-stray" in text and text.endswith("  (exit 1)\n"), text
    missing = demo.kubectl_ipam_text(str(kube.kubeconfig), "show",
                                     binary=Path("/nonexistent/kubectl-ipam"))
    assert "is not built: scripts/demo.sh up builds it" in missing


def test_installed_on_path_kubectl_runs_it_as_kubectl_ipam(cluster, kube, tmp_path):
    """docs/kubectl-ipam.md's install: the binary copied onto PATH as kubectl-ipam."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy2(plugin(), bindir / "kubectl-ipam")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    env.pop("KUBECONFIG", None)
    kubectl = str(kube.binaries / "kubectl")
    listed = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert str(bindir / "kubectl-ipam") in listed.stdout, listed.stdout + listed.stderr
    # Flags go after the command: kubectl refuses flags before a plugin's name.
    out = subprocess.run([kubectl, "ipam", "show", "--kubeconfig", str(kube.kubeconfig)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert any(line.startswith(POOL) for line in out.stdout.splitlines()), out.stdout
