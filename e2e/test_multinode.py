"""The simulated multi-node end-to-end: three simulated nodes, the controller, an agent per node, pods talking.

A real kube-apiserver; azure-vnet-mock with its SDN emulation keeping the fabric namespace's
routes; vnet-ipam-controller carving the mock's subnet into /28 blocks and programming them on the
nodes' NICs; a vnet-ipam-agent per node (root namespace, own socket and directories); the test
plays kubelet + container runtime: Pod objects bound to nodes, and the CNI config list the agent
wrote run exactly as a runtime runs it, inside the node's namespace (e2e/simcluster.py).

Checks: pods on different nodes and on the same node ping each other by their VNET addresses; the
pod-side layout is the contract's (/32, 169.254.1.1 gateway); DEL frees the address and the
IPBlock's `used` follows; a drop rule on one pod's host-side veth (the point where Calico enforces
policy) stops traffic to that pod and only to it; a real Prometheus scrapes the controller and
the agents, its pool and block figures match `kubectl get ipblocks`, and `promtool check metrics`
passes on every endpoint. Afterwards no namespace is left and the root namespace is unchanged.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

import netlab
import prometheus
import simcluster
from polling import poll
from crd_helpers import block_capacity, block_phase
from simcluster import SimCluster

NAME = "multinode"
GATEWAY = "169.254.1.1"


@pytest.fixture(scope="module")
def sim(kube, tmp_path_factory):
    with simcluster.started(
            lambda: SimCluster(kube, tmp_path_factory.mktemp("multinode"), nodes=3, name=NAME,
                               log=lambda m: print(f"\n[multinode] {m}", end="")),
            lambda cluster: cluster.create_podsubnet()) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pods(sim):
    """Two pods on node 0, one each on nodes 1 and 2."""
    n0, n1, n2 = sim.node_names
    return {name: sim.add_pod(node, name)
            for name, node in (("a0", n0), ("b0", n0), ("c1", n1), ("d2", n2))}


def node_cidrs(sim: SimCluster, node: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.ip_network(b["spec"]["cidr"]) for b in sim.ipblocks()
            if b["spec"]["nodeName"] == node]


def test_pods_reach_each_other_across_nodes_and_on_the_same_node(sim, pods):
    addresses = [p.ip for p in pods.values()]
    assert len(set(addresses)) == len(addresses), addresses
    for p in pods.values():
        assert any(ipaddress.ip_address(p.ip) in c for c in node_cidrs(sim, p.node)), \
            (p.name, p.ip, node_cidrs(sim, p.node))
        # The contract's pod-side layout.
        assert p.pod.netns.addresses("eth0") == [f"{p.ip}/32"]
        routes = {r["dst"]: r for r in p.pod.netns.routes()}
        assert routes["default"]["gateway"] == GATEWAY, routes
        assert routes[GATEWAY]["scope"] == "link", routes
        # Host side: a /32 route to the pod over its veth in the node's namespace.
        host = {r["dst"]: r.get("dev") for r in sim.lab.nodes[p.node].netns.routes()}
        assert host.get(p.ip) == p.host_veth, (p.ip, host)
        assert sim.check_pod(p).ok

    for src in pods.values():
        for dst in pods.values():
            if src is not dst:
                assert netlab.wait_reachable(src.pod, dst.ip, deadline_s=10), \
                    f"{src.name} ({src.node}) cannot reach {dst.name} {dst.ip} ({dst.node})"


def test_used_column_follows_add_and_del(sim, pods):
    want = {n: sum(1 for p in sim.pods.values() if p.node == n) for n in sim.node_names}
    assert poll(f"IPBlock used = {want}", lambda: sim.used_by_node() == want, 30, 0.2)

    node = sim.node_names[2]
    extra = sim.add_pod(node, "e2")
    want[node] += 1
    assert poll(f"IPBlock used = {want}", lambda: sim.used_by_node() == want, 30, 0.2)
    assert netlab.wait_reachable(pods["a0"].pod, extra.ip)

    res = sim.delete_pod(extra)
    assert res.ok, str(res)
    want[node] -= 1
    assert poll(f"IPBlock used = {want} after DEL", lambda: sim.used_by_node() == want, 30, 0.2)
    node_ns = sim.lab.nodes[node].netns
    assert extra.ip not in {r["dst"] for r in node_ns.routes()}
    assert extra.host_veth not in node_ns.links()
    # DEL again (a runtime retries): still success, nothing else released.
    again = sim._conflist(node, "DEL", extra.pod, extra.namespace, extra.name, extra.uid,
                          extra.result)
    assert again.ok, str(again)
    assert sim.used_by_node() == want
    # The freed address can be handed out again: a new pod on the node gets a block address.
    reborn = sim.add_pod(node, "f2")
    assert any(ipaddress.ip_address(reborn.ip) in c for c in node_cidrs(sim, node))
    sim.delete_pod(reborn)


def test_drop_rule_on_a_host_veth_stops_traffic_to_that_pod_only(sim, pods):
    target, sibling, remote = pods["a0"], pods["b0"], pods["c1"]
    node_ns = sim.lab.nodes[target.node].netns
    table = "vnetipam_e2e_policy"
    node_ns.exec("nft", "-f", "-", input=f"""
        table inet {table} {{
          chain forward {{
            type filter hook forward priority 0; policy accept;
            oifname "{target.host_veth}" counter drop
          }}
        }}""")
    try:
        assert not netlab.ping(remote.pod, target.ip, count=2)
        assert not netlab.ping(sibling.pod, target.ip, count=2)
        # Everything else still flows, including from and through the same node.
        assert netlab.ping(remote.pod, sibling.ip)
        assert netlab.ping(pods["d2"].pod, sibling.ip)
        assert netlab.ping(sibling.pod, remote.ip)
        ruleset = json.loads(node_ns.exec("nft", "-j", "list", "table", "inet", table).stdout)
        counters = [e["rule"]["expr"] for e in ruleset["nftables"] if "rule" in e]
        dropped = [x["counter"]["packets"] for expr in counters for x in expr if "counter" in x]
        assert dropped and dropped[0] >= 4, ruleset
    finally:
        node_ns.exec("nft", "delete", "table", "inet", table)
    assert netlab.wait_reachable(remote.pod, target.ip)


def test_prometheus_figures_match_ipblocks(sim, pods, tmp_path):
    targets = sim.metrics_targets()
    for addrs in targets.values():
        for addr in addrs:
            check = prometheus.promtool_check_metrics(
                prometheus.fetch_text(f"http://{addr}/metrics"))
            assert check.returncode == 0, f"promtool on {addr}:\n{check.stdout}{check.stderr}"

    with prometheus.PrometheusServer(tmp_path / "prometheus", targets) as prom:
        for job in targets:
            prom.wait_target_up(job)
        blocks = sim.ipblocks()
        used = sim.used_by_node()
        per_node = {n: sum(1 for b in blocks if b["spec"]["nodeName"] == n)
                    for n in sim.node_names}
        sel = f'podsubnet="{NAME}"'
        assert prom.wait_value(f"vnetipam_podsubnet_allocated_blocks{{{sel}}}",
                               lambda v: v == len(blocks)) == len(blocks)
        assert prom.wait_value(f"vnetipam_podsubnet_allocated_ips{{{sel}}}",
                               lambda v: v == sum(used.values())) == sum(used.values())
        for node, count in per_node.items():
            assert prom.wait_value(f'vnetipam_node_blocks{{node="{node}"}}',
                                   lambda v, c=count: v == c) == count
        assert prom.value("max(vnetipam_controller_leader)") == 1

        # Each agent's free addresses over its Ready blocks = capacity - used of those blocks.
        for node, agent in sim.agents.items():
            mine = [b for b in blocks if b["spec"]["nodeName"] == node
                    and block_phase(b) == "Ready"]
            free = sum(block_capacity(b) - int((b.get("status") or {}).get("used", 0))
                       for b in mine)
            expr = f'sum(vnetipam_agent_block_free_ips{{instance="{agent.metrics}"}})'
            assert prom.wait_value(expr, lambda v, f=free: v == f) == free, (node, mine)
        # Allocations the agents counted: at least one per pod ADD so far.
        total = prom.value("sum(vnetipam_agent_allocations_total)")
        assert total is not None and total >= len(pods)
