"""Dual-stack pods on real nodes: the chart (`cloud: none`) on three kubelet + containerd nodes.

The cluster is e2e/realnodes.py's on a dual-stack fabric (each node also holds an IPv6 address);
an IPv4 and an IPv6 PodSubnet select every node, so containerd's CNI ADD through our plugins gives
each pod one address of each family, which the kubelet reports in status.podIPs. The harness routes
each block to its node as the network of a `cloud: none` cluster would (Workloads.route_blocks: an
IPv6 block via the node's IPv6 address). Pods on two nodes and on one node talk TCP over IPv4 and
IPv6; deleting pods releases both families' addresses. Afterwards no namespace, process, cgroup or
mount of the run is left and the root namespace is unchanged.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from polling import poll
from crd_helpers import block_phase
from realnodes import IMAGE_TAG as TAG
from realnodes import NAMESPACE, Workloads, real_cluster_fixture

POD_CIDR4 = "10.240.64.0/20"  # inside the fabric's /16: nodes see it on-link, the fabric routes it
POD_CIDR6 = "fd00:d6::/112"
FABRIC6 = "fd00:f6::/64"      # node i holds fd00:f6::<10+i>
APP = "web"
REPLICAS = 6
VALUES = {
    "cloud": "none",
    "agent": {"releaseCooldownSeconds": 1, "gcGraceSeconds": 5, "usageReportIntervalMs": 200},
}

rc = real_cluster_fixture("realnodes-dual", subnet6=FABRIC6)


@pytest.fixture(scope="module")
def w(rc) -> Workloads:
    w = Workloads(rc)
    w.install(TAG, VALUES)
    for name, cidr, length in (("pods4", POD_CIDR4, 28), ("pods6", POD_CIDR6, 120)):
        w.apply({"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
                 "metadata": {"name": name},
                 "spec": {"cidr": cidr, "blockPrefixLength": length, "minFreeIPsPerNode": 4,
                          "releaseDelaySeconds": 0}})
    return w


def blocks_of(w: Workloads) -> dict[str, list]:
    out: dict[str, list] = {}
    for b in w.ipblocks():
        if block_phase(b) == "Ready":
            out.setdefault(b["spec"]["nodeName"], []).append(ipaddress.ip_network(b["spec"]["cidr"]))
    return out


def pod_ips(p: dict) -> dict[int, str]:
    ips = [i["ip"] for i in p["status"].get("podIPs", [])]
    by = {ipaddress.ip_address(ip).version: ip for ip in ips}
    assert len(by) == len(ips), ips
    return by


def test_every_pod_gets_an_address_of_each_family_from_its_node(rc, w):
    w.wait_rollout("daemonset/vnet-ipam-agent", NAMESPACE)
    rc.wait_nodes_ready()
    w.deployment(APP, REPLICAS)
    pods = w.running_pods(f"app={APP}", REPLICAS)
    blocks = blocks_of(w)
    for p in pods:
        node, ips = p["spec"]["nodeName"], pod_ips(p)
        assert set(ips) == {4, 6}, p["status"].get("podIPs")
        assert p["status"]["podIP"] == ips[4]
        for ip in ips.values():
            assert any(ipaddress.ip_address(ip) in c for c in blocks.get(node, [])), \
                (p["metadata"]["name"], node, ip, blocks)
        host = rc.nodes[node].netns
        for family, ip in ips.items():
            routes = {r["dst"]: r.get("dev", "") for r in host.routes(family)}
            assert routes.get(ip, "").startswith("vnet"), (ip, routes)
    for node in rc.nodes.values():
        assert node.netns.read_sysctl("net.ipv6.conf.all.forwarding") == "1"


def test_pods_talk_tcp_over_ipv4_and_ipv6_across_nodes_and_on_one_node(rc, w):
    routes = w.route_blocks()
    for cidr, via in routes.items():
        assert ipaddress.ip_address(via).version == ipaddress.ip_network(cidr).version, routes
    pairs = w.node_pairs(w.running_pods(f"app={APP}", REPLICAS))
    for client, server in pairs:
        for family, ip in pod_ips(server).items():
            res = w.tcp(client, ip)
            assert res.returncode == 0 and res.stdout.strip() == server["metadata"]["name"], (
                family, client["spec"]["nodeName"], server["spec"]["nodeName"], ip, res.stdout,
                res.stderr)


def test_kubectl_get_ipblocks_lists_a_block_of_each_family_per_node(rc, w):
    out = rc.kubectl("get", "ipblocks").stdout
    print(f"\n$ kubectl get ipblocks\n{out}", end="")
    families = {(b["spec"]["nodeName"], ipaddress.ip_network(b["spec"]["cidr"]).version)
                for b in w.ipblocks()}
    assert families >= {(n, f) for n in rc.nodes for f in (4, 6)}, families


def test_deleting_pods_releases_both_families(rc, w):
    rc.kubectl("scale", f"deployment/{APP}", "--replicas=3")
    pods = w.running_pods(f"app={APP}", 3)
    held = {ip for p in pods for ip in pod_ips(p).values()}

    def published() -> set[str]:
        return {a["address"] for b in w.ipblocks()
                for a in b.get("status", {}).get("allocations", [])
                if a.get("podNamespace") == "default"}
    poll("the blocks to publish only the 3 pods' 6 addresses", lambda: published() == held, 60,
         interval=0.5, describe=lambda: json.dumps(sorted(published())))
