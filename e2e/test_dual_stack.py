"""Dual-stack pods across nodes: the real controller, the real agents and the project's plugins.

Two simulated nodes (e2e/simcluster.py with cloud="none"): a real kube-apiserver;
vnet-ipam-controller with --cloud=none carving an IPv4 and an IPv6 PodSubnet that select both
nodes; a vnet-ipam-agent per node; a dual-stack fabric (netlab.Lab(subnet6=...)) where every node
also holds an IPv6 address, and the harness routes each block to its node as the network of a
`cloud: none` cluster would: an IPv4 block via the node's IPv4 address, an IPv6 block via its IPv6
address (netlab.FabricNetns.route_blocks). The test plays kubelet + runtime: it runs the CNI config
list each agent wrote (vnet-transparent, vnet-ipam, portmap) inside the node's namespace.

Checks: each pod gets one address of each family in one ADD, from its own node's blocks, with
the gateways 169.254.1.1 and fe80::1 and the pod-side and host-side layout of both families;
pods on two nodes and two pods on one node reach each other over IPv4 and over IPv6 (ping from
inside the pod namespaces); `kubectl get ipblocks` lists a block of each family for each node;
the agents' metrics carry the family; DEL releases both addresses (status.used and
status.allocations of both blocks follow). Afterwards no namespace is left and the root namespace
is unchanged.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

import netlab
import prometheus
import simcluster
from crd_helpers import PROGRAMMED_ON, block_phase
from polling import poll
from simcluster import PodHandle, SimCluster

NAME = "dualstack"
NAME6 = "dualstack6"
CIDR4 = "10.243.0.0/24"      # outside the fabric's node subnet: reached through the fabric only
CIDR6 = "fd00:d5::/112"
BLOCK4, BLOCK6 = 28, 120
FABRIC6 = "fd00:f0::/64"     # the nodes' IPv6 addresses (fd00:f0::4, ::5)
GATEWAY4, GATEWAY6 = "169.254.1.1", "fe80::1"


@pytest.fixture(scope="module")
def sim(kube, tmp_path_factory):
    def podsubnets(cluster: SimCluster) -> None:
        cluster.create_podsubnet(cidr=CIDR4, blockPrefixLength=BLOCK4)
        cluster.create_podsubnet(NAME6, cidr=CIDR6, blockPrefixLength=BLOCK6)

    with simcluster.started(
            lambda: SimCluster(kube, tmp_path_factory.mktemp("dualstack"), nodes=2, name=NAME,
                               cloud="none", subnet6=FABRIC6,
                               log=lambda m: print(f"\n[dualstack] {m}", end="")),
            podsubnets) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pods(sim):
    """Two pods on node 0, one on node 1."""
    n0, n1 = sim.node_names
    out = {name: sim.add_pod(node, name) for name, node in (("a0", n0), ("b0", n0), ("c1", n1))}
    sim.route_blocks()  # a block carved since wait_blocks_ready is routed too
    return out


def node_blocks(sim: SimCluster, node: str) -> list[dict]:
    return [b for b in sim.ipblocks() if b["spec"]["nodeName"] == node]


def family_ips(p: PodHandle) -> dict[int, str]:
    by = {ipaddress.ip_address(ip).version: ip for ip in p.ips}
    assert len(by) == len(p.ips), p.ips
    return by


def block_of(sim: SimCluster, ip: str) -> dict:
    (b,) = [b for b in sim.ipblocks()
            if ipaddress.ip_address(ip) in ipaddress.ip_network(b["spec"]["cidr"])]
    return b


def test_one_add_gives_each_pod_an_address_of_each_family_from_its_node(sim, pods):
    addresses = [ip for p in pods.values() for ip in p.ips]
    assert len(set(addresses)) == len(addresses) == 2 * len(pods), addresses
    for p in pods.values():
        ips = family_ips(p)
        assert set(ips) == {4, 6}, (p.name, p.ips)
        assert p.ip == ips[4], "IPv4 first in the result"
        for family, ip in ips.items():
            b = block_of(sim, ip)
            assert b["spec"]["nodeName"] == p.node, (p.name, ip, b["spec"])
            assert b["spec"]["podSubnet"] == (NAME if family == 4 else NAME6)
        # The result: /32 and /128, each with its family's gateway, on the pod's interface.
        assert p.result["ips"] == [
            {"address": f"{ips[4]}/32", "gateway": GATEWAY4, "interface": 1},
            {"address": f"{ips[6]}/128", "gateway": GATEWAY6, "interface": 1}], p.result
        # Pod side: both addresses, a default route of each family via its gateway.
        assert p.pod.netns.addresses("eth0", 4) == [f"{ips[4]}/32"]
        assert p.pod.netns.addresses("eth0", 6) == [f"{ips[6]}/128"]
        routes4 = {r["dst"]: r for r in p.pod.netns.routes(4)}
        assert routes4["default"]["gateway"] == GATEWAY4, routes4
        routes6 = {r["dst"]: r for r in p.pod.netns.routes(6)}
        assert routes6["default"]["gateway"] == GATEWAY6, routes6
        # Host side: a /32 and a /128 route to the pod over its veth in the node's namespace.
        node_ns = sim.lab.nodes[p.node].netns
        assert {r["dst"]: r.get("dev") for r in node_ns.routes(4)}.get(ips[4]) == p.host_veth
        assert {r["dst"]: r.get("dev") for r in node_ns.routes(6)}.get(ips[6]) == p.host_veth
        check = sim.check_pod(p)
        assert check.ok, str(check)


def test_pods_reach_each_other_over_ipv4_and_ipv6_across_nodes_and_on_one_node(sim, pods):
    pairs = [(pods["a0"], pods["c1"]), (pods["c1"], pods["a0"]),   # across nodes
             (pods["b0"], pods["c1"]), (pods["c1"], pods["b0"]),
             (pods["a0"], pods["b0"]), (pods["b0"], pods["a0"])]   # on one node
    for src, dst in pairs:
        for family, ip in family_ips(dst).items():
            assert netlab.wait_reachable(src.pod, ip, deadline_s=10), \
                f"{src.name} ({src.node}) cannot reach {dst.name} {ip} ({dst.node}) over IPv{family}"
    # The IPv6 packets between nodes crossed the fabric by the IPv6 block routes.
    routes = sim.lab.fabric.sdn_routes()
    for p in pods.values():
        b6 = block_of(sim, family_ips(p)[6])
        assert routes[b6["spec"]["cidr"]] == sim.lab.nodes[p.node].ip6, routes


def table_row(header: str, line: str) -> dict[str, str]:
    """One row of kubectl's table output, cut at the header's column starts (a cell may be
    empty)."""
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    ends = starts[1:] + [None]
    return {header[a:b].strip(): line[a:b].strip() for a, b in zip(starts, ends)}


def test_kubectl_get_ipblocks_lists_a_block_of_each_family_for_each_node(sim, pods):
    for node in sim.node_names:
        out = sim.kube.kubectl("get", "ipblocks", "-l", f"vnetipam.io/node={node}").stdout
        print(f"\n$ kubectl get ipblocks -l vnetipam.io/node={node}\n{out}", end="")
        header, *lines = out.rstrip().splitlines()
        rows = [table_row(header, line) for line in lines]
        # There is no FAMILY column (docs/design.md 4.2): the CIDR column tells the families apart.
        assert "FAMILY" not in rows[0] and "CIDR" in rows[0] and "SUBNET" in rows[0], header
        families = {(ipaddress.ip_network(r["CIDR"]).version, r["SUBNET"]) for r in rows}
        assert families == {(4, NAME), (6, NAME6)}, out
        assert {r["NODE"] for r in rows} == {node}, out
    # Created Ready with no cloud to program (docs/design.md 4.2): no PHASE column value until the
    # phase changes, and Ready to every reader.
    for b in sim.ipblocks():
        assert b["metadata"]["annotations"][PROGRAMMED_ON] == "none", b["metadata"]
        assert block_phase(b) == "Ready", b


def test_agent_metrics_carry_the_family(sim, pods):
    for node, agent in sim.agents.items():
        text = prometheus.fetch_text(f"http://{agent.metrics}/metrics")
        check = prometheus.promtool_check_metrics(text)
        assert check.returncode == 0, f"promtool on {node}:\n{check.stdout}{check.stderr}"
        on_node = sum(1 for p in pods.values() if p.node == node)
        for b in node_blocks(sim, node):
            family = "ipv4" if ipaddress.ip_network(b["spec"]["cidr"]).version == 4 else "ipv6"
            series = (f'vnetipam_agent_block_free_ips{{block="{b["metadata"]["name"]}",'
                      f'family="{family}"}}')
            assert any(line.startswith(series + " ") for line in text.splitlines()), \
                (series, text)
        for family in ("ipv4", "ipv6"):
            series = f'vnetipam_agent_allocations_total{{family="{family}"}}'
            value = next((float(line.split()[-1]) for line in text.splitlines()
                          if line.startswith(series + " ")), None)
            assert value is not None and value >= on_node, (node, series, value)


def published(sim: SimCluster, block: str) -> dict[str, str]:
    """address -> containerID of the allocations the agent published on the block."""
    obj = json.loads(sim.kube.kubectl("get", "ipblock", block, "-o", "json").stdout)
    return {a["address"]: a["containerID"] for a in obj.get("status", {}).get("allocations", [])}


def used(sim: SimCluster, block: str) -> int:
    obj = json.loads(sim.kube.kubectl("get", "ipblock", block, "-o", "json").stdout)
    return int(obj.get("status", {}).get("used", 0))


def test_del_releases_both_families_and_the_blocks_status_follows(sim, pods):
    node = sim.node_names[1]
    extra = sim.add_pod(node, "e1")
    ips = family_ips(extra)
    assert set(ips) == {4, 6}, extra.ips
    blocks = {f: block_of(sim, ip)["metadata"]["name"] for f, ip in ips.items()}
    for f, b in blocks.items():
        poll(f"{b} to publish {ips[f]}",
             lambda b=b, ip=ips[f]: published(sim, b).get(ip) == extra.pod.container_id,
             30, 0.2, describe=lambda b=b: repr(published(sim, b)))
    # used and allocations travel in one apply: what publishes the new address counts it.
    before = {f: used(sim, b) for f, b in blocks.items()}
    assert all(before[f] == len(published(sim, b)) for f, b in blocks.items()), before
    assert netlab.wait_reachable(pods["a0"].pod, ips[6])

    res = sim.delete_pod(extra)
    assert res.ok, str(res)
    for f, b in blocks.items():
        poll(f"{b}: used {before[f] - 1} without {ips[f]}",
             lambda b=b, f=f: used(sim, b) == before[f] - 1 and ips[f] not in published(sim, b),
             30, 0.2, describe=lambda b=b: f"used {used(sim, b)}, {published(sim, b)}")
    node_ns = sim.lab.nodes[node].netns
    assert ips[4] not in {r["dst"] for r in node_ns.routes(4)}
    assert ips[6] not in {r["dst"] for r in node_ns.routes(6)}
    assert extra.host_veth not in node_ns.links()
    held = json.loads(sim.kube.kubectl("get", "ipblocks", "-l", f"vnetipam.io/node={node}",
                                       "-o", "json").stdout)
    assert not [a for b in held["items"] for a in b.get("status", {}).get("allocations", [])
                if a["containerID"] == extra.pod.container_id], held
