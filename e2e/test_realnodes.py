"""Real nodes, real pods: the chart installed with helm on three kubelet + containerd nodes.

The cluster (e2e/realnodes.py): etcd, kube-apiserver, kube-controller-manager and kube-scheduler in
a control-plane namespace on the fabric; three nodes, each a network + mount namespace with
containerd, runc, a kubelet and a kube-proxy; no registry: the project's image
(scripts/build-image.sh), a pause image and the `netcheck` workload image are imported into every
node's containerd. The chart is installed as a user would (`helm install`, `cloud: none`, the
local image with `pullPolicy: Never`): the controller runs as two replicas under its own
ServiceAccount, the agent DaemonSet installs the CNI plugins and writes the conflist on each node,
and containerd calls our plugins for every pod. With `cloud: none` nothing routes blocks between
nodes; this harness plays that network (Workloads.route_blocks), as BGP or a flat L2 would.

The tests run in file order, as one story: install, a 30-pod Deployment, traffic, a Service,
deletion, an upgrade, uninstall. (`cloud: azure` on the same kind of nodes, with a node drained
and deleted: test_realnodes_azure.py.) Afterwards no namespace, process,
cgroup or mount of the run is left and the root namespace is unchanged.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from built import built
from crd_helpers import block_phase
from polling import poll
from realnodes import IMAGE_TAG as TAG
from realnodes import NAMESPACE, NETCHECK_PORT, Workloads, real_cluster_fixture

CRDS = Path(__file__).resolve().parent.parent / "crds"
UPGRADE_TAG = "e2e-upgrade"
POD_CIDR = "10.240.64.0/20"  # inside the fabric's /16: nodes see it on-link, the fabric routes it
SUBNET = "pods"
APP = "web"
REPLICAS = 30
VALUES = {
    "cloud": "none",
    "agent": {"releaseCooldownSeconds": 1, "gcGraceSeconds": 5, "usageReportIntervalMs": 200},
}


rc = real_cluster_fixture("realnodes")


@pytest.fixture(scope="module")
def w(rc) -> Workloads:
    w = Workloads(rc)
    w.install(TAG, VALUES)
    w.apply({"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
             "metadata": {"name": SUBNET},
             "spec": {"cidr": POD_CIDR, "blockPrefixLength": 28, "minFreeIPsPerNode": 8,
                      "releaseDelaySeconds": 0}})
    return w


def ready_blocks(w: Workloads) -> dict[str, list[ipaddress.IPv4Network]]:
    out: dict[str, list] = {}
    for b in w.ipblocks():
        if block_phase(b) == "Ready":
            out.setdefault(b["spec"]["nodeName"], []).append(ipaddress.ip_network(b["spec"]["cidr"]))
    return out


def test_install_makes_every_node_ready_with_our_plugins(rc, w):
    for node in rc.nodes.values():
        assert node.netns.read_sysctl("net.ipv4.ip_forward") == "0"  # until a pod is wired
    w.wait_rollout("daemonset/vnet-ipam-agent", NAMESPACE)
    w.wait_rollout("deployment/vnet-ipam-controller", NAMESPACE)
    rc.wait_nodes_ready()
    for node in rc.nodes.values():
        plugins = {p.name for p in node.path("/opt/cni/bin").iterdir()}
        assert {"loopback", "portmap", "vnet-ipam", "vnet-transparent"} <= plugins, plugins
        conflist = json.loads(node.path("/etc/cni/net.d/10-vnet-ipam.conflist").read_text())
        assert conflist["plugins"][0]["type"] == "vnet-transparent", conflist
    # The controller runs as two replicas on two nodes, under its own ServiceAccount.
    pods = w.pods("app.kubernetes.io/component=controller", NAMESPACE)
    assert len(pods) == 2 and len({p["spec"]["nodeName"] for p in pods}) == 2, pods
    assert {p["spec"]["serviceAccountName"] for p in pods} == {"vnet-ipam-controller"}


def test_30_pods_get_addresses_from_a_ready_block_of_their_own_node(rc, w):
    w.deployment(APP, REPLICAS)
    pods = w.running_pods(f"app={APP}", REPLICAS)
    blocks = ready_blocks(w)
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == REPLICAS, Counter(ips).most_common(3)
    for p in pods:
        node, ip = p["spec"]["nodeName"], ipaddress.ip_address(p["status"]["podIP"])
        assert any(ip in c for c in blocks.get(node, [])), (p["metadata"]["name"], node, ip, blocks)
    assert Counter(p["spec"]["nodeName"] for p in pods) == {n: 10 for n in rc.nodes}
    # Transparent mode: on its node, each pod is one /32 route over its own host-side veth, and
    # the node forwards (vnet-transparent turned it on, as ptp does).
    for node in rc.nodes.values():
        assert node.netns.read_sysctl("net.ipv4.ip_forward") == "1"
        routes = {r["dst"]: r.get("dev", "") for r in node.netns.routes()}
        for p in pods:
            if p["spec"]["nodeName"] == node.name:
                assert routes.get(p["status"]["podIP"], "").startswith("vnet"), (p, routes)


def test_pods_talk_tcp_across_nodes_and_on_one_node(rc, w):
    w.route_blocks()
    pairs = w.node_pairs(w.running_pods(f"app={APP}", REPLICAS))
    for client, server in pairs:
        res = w.tcp(client, server["status"]["podIP"])
        assert res.returncode == 0 and res.stdout.strip() == server["metadata"]["name"], (
            client["spec"]["nodeName"], server["spec"]["nodeName"], res.stdout, res.stderr)


def test_a_cluster_ip_service_reaches_the_pods(rc, w):
    w.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": "default"},
             "spec": {"selector": {"app": APP},
                      "ports": [{"port": 80, "targetPort": NETCHECK_PORT}]}})
    ip = w.get("service", APP)["spec"]["clusterIP"]
    pods = w.running_pods(f"app={APP}", REPLICAS)
    names = {p["metadata"]["name"] for p in pods}
    client = pods[0]
    seen: set[str] = set()

    def answered_by_several() -> bool:
        res = w.tcp(client, ip, 80)
        if res.returncode == 0:
            assert res.stdout.strip() in names, res.stdout
            seen.add(res.stdout.strip())
        return len(seen) >= 3

    # kube-proxy programs the Service asynchronously; then its answers come from several pods.
    poll(f"Service {ip}:80 to answer from 3 pods", answered_by_several, 60, interval=0.2,
         describe=lambda: f"seen {seen}")


def test_deleting_pods_releases_their_addresses(rc, w):
    w.rc.kubectl("scale", f"deployment/{APP}", "--replicas=12")
    pods = w.running_pods(f"app={APP}", 12)

    def used_matches() -> bool:
        used = sum(b.get("status", {}).get("used", 0) for b in w.ipblocks())
        return used == len(pods)
    poll("the blocks' status.used to drop to the 12 pods left", used_matches, 60, interval=0.5,
         describe=lambda: json.dumps([(b["metadata"]["name"], b.get("status"))
                                      for b in w.ipblocks()]))


def test_helm_upgrade_rolls_without_a_pod_losing_its_address(rc, w):
    for node in rc.nodes.values():
        node.ctr("images", "tag", "--force", f"ghcr.io/vnet-ipam/vnet-ipam:{TAG}",
                 f"ghcr.io/vnet-ipam/vnet-ipam:{UPGRADE_TAG}")
    before = {p["metadata"]["name"]: p["status"]["podIP"] for p in w.running_pods(f"app={APP}", 12)}
    # The chart README's upgrade steps: the CRDs first (helm upgrade never changes them), the
    # release, both rollouts, then `kubectl ipam check`.
    rc.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    w.install(UPGRADE_TAG, VALUES, upgrade=True)
    # New pods keep starting while the agents and the controller roll.
    w.rc.kubectl("scale", f"deployment/{APP}", "--replicas=18")
    w.wait_rollout("daemonset/vnet-ipam-agent", NAMESPACE)
    w.wait_rollout("deployment/vnet-ipam-controller", NAMESPACE)
    pods = w.running_pods(f"app={APP}", 18)
    after = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    for name, ip in before.items():
        assert after.get(name) == ip, (name, ip, after.get(name))
    for p in pods:
        assert all(c["restartCount"] == 0 for c in p["status"]["containerStatuses"]), p["status"]
    agents = w.pods("app.kubernetes.io/component=agent", NAMESPACE)
    assert {c["image"] for a in agents for c in a["spec"]["containers"]} == {
        f"ghcr.io/vnet-ipam/vnet-ipam:{UPGRADE_TAG}"}
    ips = list(after.values())
    assert len(set(ips)) == len(ips)
    check = subprocess.run([str(built("kubectl-ipam/kubectl-ipam")), "check",
                            f"--kubeconfig={rc.kubeconfig}"], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_network_policy_is_enforced_on_the_transparent_veths(rc, w):
    """A real engine (kube-router's policy controller, matching by pod IP in FORWARD) on every
    node: default-deny ingress blocks same-node and cross-node clients, an allow rule by label
    admits exactly the selected client, an egress rule is enforced."""
    rc.start_policy_engine()
    ns = "policy"
    rc.kubectl("create", "namespace", ns)
    pods = {"server": ("node-0", {"app": "server"}), "near": ("node-0", {"role": "near"}),
            "far": ("node-1", {"role": "far"}), "friend": ("node-1", {"role": "friend"}),
            "other": ("node-1", {"app": "other"})}
    for name, (node, labels) in pods.items():
        w.pod(name, ns, node, labels)
    running = {p["metadata"]["name"]: p for p in w.running_pods("", len(pods), ns)}
    ip = {n: p["status"]["podIP"] for n, p in running.items()}

    def reaches(client: str, server: str) -> bool:
        res = w.tcp(running[client], ip[server], timeout_ms=1000)
        return res.returncode == 0 and res.stdout.strip() == server

    def settle(what: str, want: dict[tuple[str, str], bool]) -> None:
        # The engine applies a policy on the API event; poll until every pair is as wanted.
        last = {}

        def check() -> bool:
            last.update({pair: reaches(*pair) for pair in want})
            return last == want
        poll(what, check, 60, interval=0.5, describe=lambda: str(last))

    settle("open traffic before any policy", {("near", "server"): True, ("far", "server"): True,
                                              ("near", "other"): True})
    w.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "deny-ingress", "namespace": ns},
             "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                      "policyTypes": ["Ingress"]}})
    settle("default-deny ingress to block same-node and cross-node clients",
           {("near", "server"): False, ("far", "server"): False, ("friend", "server"): False,
            ("near", "other"): True})
    w.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "allow-friend", "namespace": ns},
             "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                      "policyTypes": ["Ingress"],
                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}],
                                   "ports": [{"protocol": "TCP", "port": NETCHECK_PORT}]}]}})
    settle("the allow rule to admit exactly the friend",
           {("friend", "server"): True, ("near", "server"): False, ("far", "server"): False})
    w.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "near-egress", "namespace": ns},
             "spec": {"podSelector": {"matchLabels": {"role": "near"}},
                      "policyTypes": ["Egress"],
                      "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "far"}}}]}]}})
    settle("the egress rule to let near reach far only",
           {("near", "far"): True, ("near", "other"): False, ("near", "friend"): False,
            ("far", "other"): True})
    rc.kubectl("delete", "namespace", ns, "--wait=true", timeout=120)


def test_helm_uninstall_leaves_the_crds_the_blocks_and_the_plugins(rc, w):
    blocks = {b["metadata"]["name"] for b in w.ipblocks()}
    w.helm("uninstall", "vnet-ipam", "-n", NAMESPACE, "--wait", "--timeout=120s")
    poll("the agents to go", lambda: not w.pods("app.kubernetes.io/component=agent", NAMESPACE), 60)
    assert {b["metadata"]["name"] for b in w.ipblocks()} == blocks
    assert rc.kubectl("get", "crd", "ipblocks.vnetipam.io", "podsubnets.vnetipam.io").returncode == 0
    for node in rc.nodes.values():
        # The agent withdrew its conflist on SIGTERM; the plugin binaries and journal stay.
        assert not node.path("/etc/cni/net.d/10-vnet-ipam.conflist").exists()
        assert node.path("/opt/cni/bin/vnet-transparent").exists()
        assert any(node.path("/var/lib/vnet-ipam").iterdir())
    # No agent is left to give the blocks up: each still carries agent-drain, and deleting the
    # blocks waits for it. The chart README's commands for a chart already gone remove it (with
    # cloud: none there is no NIC prefix to take off first); then the blocks and CRDs go.
    for b in w.ipblocks():
        assert "vnetipam.io/agent-drain" in b["metadata"].get("finalizers", []), b["metadata"]
    rc.kubectl("delete", "podsubnet", SUBNET, "--timeout=60s")
    names = rc.kubectl("get", "ipblocks", "-o", "name").stdout.split()
    assert len(names) == len(blocks)
    for name in names:  # the README's `xargs -n1 kubectl patch ...`, one block at a time
        rc.kubectl("patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    rc.kubectl("delete", "ipblocks", "--all", "--timeout=60s")
    rc.kubectl("delete", "crd", "ipblocks.vnetipam.io", "podsubnets.vnetipam.io", "--timeout=60s")
