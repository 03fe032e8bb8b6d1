"""Real nodes in `cloud: azure` mode: the chart against the Azure VNET mock, whose SDN emulation
routes every block programmed on a node's NIC to that node through the fabric namespace.

The mock runs in the control-plane namespace (it plays Azure, not a workload of the cluster) over
HTTPS; the chart gets its azure.json, its CA and its endpoints as values, as a user pointing the
controller at a private endpoint would. Each node's spec.providerID names its VM in the mock.

Checks, in file order: every Ready block is on its node's NIC and routed by the SDN; pods on
different nodes talk through the fabric with nothing but those routes; a node drained and deleted
gives its blocks back and their prefixes leave its NIC; the rescheduled pods still talk; and
removing vnet-ipam in the order the chart README gives leaves no IPBlock and no NIC prefix.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

import azure_mock
from crd_helpers import block_phase
from polling import poll
from realnodes import CP_IP, NAMESPACE, Workloads, real_cluster_fixture

TAG = "e2e"
MOCK_PORT = 8443
NODES = 3
NODE_IPS_RESERVED = "10.240.0.0/24"  # node addresses; blocks are carved from the rest
APP = "web"
REPLICAS = 12


def node_vm(name: str) -> str:
    return name  # VM node-<i> for Node node-<i>


rc = real_cluster_fixture("realnodes-azure",
                          provider_id=lambda name: azure_mock.provider_id(node_vm(name)))


@pytest.fixture(scope="module")
def mock(rc, tmp_path_factory):
    m = azure_mock.Mock(tmp_path_factory.mktemp("mock"),
                        ["--async-delay-ms", "50", "--sdn-netns", rc.fabric.name,
                         "--role-file", str(azure_mock.CONTROLLER_ROLE)],
                        azure_mock.vm_topology([n.ip for n in rc.nodes.values()]),
                        netns=rc.cp.path, host=CP_IP, port=MOCK_PORT,
                        binary=azure_mock.MOCK)
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def w(rc, mock) -> Workloads:
    w = Workloads(rc)
    config = json.loads(mock.write_azure_json(mock.workdir / "azure.json").read_text())
    w.install(TAG, {
        "cloud": "azure",
        "azure": {"config": config, "caBundle": mock.cert.read_text(),
                  "endpoints": {"resourceManager": mock.url, "authorityHost": mock.url,
                                "imds": mock.url}},
        "controller": {"nicOrphanGraceSeconds": 5},
        "agent": {"releaseCooldownSeconds": 1, "gcGraceSeconds": 5,
                  "usageReportIntervalMs": 200},
    })
    w.apply({"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
             "metadata": {"name": "pods"},
             "spec": {"azureSubnetID": azure_mock.subnet_id("nodes"), "blockPrefixLength": 28,
                      "reservedCIDRs": [NODE_IPS_RESERVED], "minFreeIPsPerNode": 8,
                      "releaseDelaySeconds": 0}})
    return w


def nic_of(node: str) -> str:
    return f"{node}-nic"


def programmed(w: Workloads, mock) -> bool:
    """Every Ready block is on its node's NIC and the SDN routes it to the node; no other prefix
    is on any NIC."""
    blocks = [b for b in w.ipblocks() if block_phase(b) == "Ready"]
    want: dict[str, set] = {nic_of(n): set() for n in w.rc.nodes}
    for b in blocks:
        want.setdefault(nic_of(b["spec"]["nodeName"]), set()).add(b["spec"]["cidr"])
    have = {nic: set(p) for nic, p in mock.nic_prefixes().items()}
    routes = w.rc.fabric.sdn_routes()
    return (have == want and {b["spec"]["nodeName"] for b in blocks} >= set(
        n for n in w.rc.nodes if not w.rc.nodes[n].netns.removed) and all(
        routes.get(b["spec"]["cidr"]) == w.rc.nodes[b["spec"]["nodeName"]].ip for b in blocks))


def test_blocks_are_programmed_on_the_nodes_nics_and_routed(rc, w, mock):
    w.wait_rollout("daemonset/vnet-ipam-agent", NAMESPACE)
    w.wait_rollout("deployment/vnet-ipam-controller", NAMESPACE)
    rc.wait_nodes_ready()
    poll("every Ready block on its NIC and routed by the SDN", lambda: programmed(w, mock), 60,
         interval=0.5, describe=lambda: f"NICs {mock.nic_prefixes()}, routes "
                                        f"{rc.fabric.sdn_routes()}")


def test_pods_across_nodes_talk_through_the_vnet(rc, w, mock):
    w.deployment(APP, REPLICAS)
    pods = w.running_pods(f"app={APP}", REPLICAS)
    poll("the SDN to route every Ready block", lambda: programmed(w, mock), 60, interval=0.5)
    blocks = {}
    for b in w.ipblocks():
        blocks.setdefault(b["spec"]["nodeName"], []).append(ipaddress.ip_network(b["spec"]["cidr"]))
    for p in pods:
        ip = ipaddress.ip_address(p["status"]["podIP"])
        assert any(ip in c for c in blocks[p["spec"]["nodeName"]]), (p["metadata"]["name"], ip)
    by_node = {}
    for p in pods:
        by_node.setdefault(p["spec"]["nodeName"], p)
    nodes = sorted(by_node)
    assert len(nodes) == NODES
    for i, n in enumerate(nodes):
        client, server = by_node[n], by_node[nodes[(i + 1) % len(nodes)]]
        res = w.tcp(client, server["status"]["podIP"])
        assert res.returncode == 0 and res.stdout.strip() == server["metadata"]["name"], (
            n, res.stdout, res.stderr)


def test_a_drained_and_deleted_node_gives_its_blocks_and_nic_prefixes_back(rc, w, mock):
    gone = "node-2"
    assert mock.nic_prefixes()[nic_of(gone)], mock.nic_prefixes()
    rc.kubectl("drain", gone, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
               "--timeout=120s", timeout=180)
    rc.stop_node(gone)
    rc.kubectl("delete", "node", gone)

    def released() -> bool:
        return (not [b for b in w.ipblocks() if b["spec"].get("nodeName") == gone]
                and mock.nic_prefixes()[nic_of(gone)] == [])
    poll(f"{gone}'s IPBlocks released and its NIC's prefixes removed", released, 90,
         interval=0.5, describe=lambda: f"NICs {mock.nic_prefixes()}")
    pods = w.running_pods(f"app={APP}", REPLICAS)  # rescheduled onto the nodes left
    assert {p["spec"]["nodeName"] for p in pods} == {"node-0", "node-1"}
    res = w.tcp(pods[0], next(p for p in pods if p["spec"]["nodeName"] != pods[0]["spec"]
                              ["nodeName"])["status"]["podIP"])
    assert res.returncode == 0, res.stderr


def test_removal_in_the_documented_order_leaves_no_block_and_no_nic_prefix(rc, w, mock):
    """The chart README's removal steps 1-2 with the chart still running: the pods go, then the
    PodSubnets; every IPBlock then goes by itself, its agent-drain finalizer removed by the node's
    agent and its nic-release finalizer by the controller once the prefix is off the NIC."""
    assert any(mock.nic_prefixes().values()), mock.nic_prefixes()
    rc.kubectl("delete", "deployment", APP, "--wait=true", timeout=120)
    poll("the pods to go", lambda: not w.pods(f"app={APP}"), 120)
    rc.kubectl("delete", "podsubnets", "--all", timeout=120)
    rc.kubectl("wait", "--for=delete", "ipblocks", "--all", "--timeout=300s", timeout=320)
    assert w.ipblocks() == []
    poll("every prefix off the NICs", lambda: not any(mock.nic_prefixes().values()), 60,
         interval=0.5, describe=lambda: f"NICs {mock.nic_prefixes()}")
