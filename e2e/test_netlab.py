"""The simulated VNET (e2e/netlab.py) alone, with the reference CNI plugins and the mock's SDN.

Two node namespaces on a fabric namespace; azure-vnet-mock runs with --sdn-netns on that fabric.
A /28 block is programmed on each node's NIC through the mock's ARM API (GET the NIC, add an
ipConfiguration with the prefix, PUT with If-Match), and the mock's SDN emulation routes each block
to its node's IP. One pod per node gets an address from its node's block with Debian's ptp +
host-local, run exactly as a container runtime runs them; the pods ping each other across the
fabric. Everything is removed afterwards: no namespace of the run is left, and the root namespace's
links, addresses and routes are as before.
"""

from __future__ import annotations

import json

import pytest

import netlab
from azure_mock import API, MOCK, Mock, nic_id
from built import BUILD_DIR, built
from polling import poll

PTP = netlab.REFERENCE_CNI_DIR / "ptp"

# In the mock's test topology NIC node-<i>-nic (VM node-<i>) has primary IP 10.240.0.<4+i> in
# subnet 10.240.0.0/16; the blocks sit outside the primaries' /24.
NODES = {"node-0": "10.240.0.4", "node-1": "10.240.0.5"}
BLOCKS = {"node-0": "10.240.1.0/28", "node-1": "10.240.1.16/28"}


def program_blocks(mock: Mock, nic: str, blocks: list[str]) -> None:
    """Adds a prefix ipConfiguration per block to the NIC, as the controller does over ARM."""
    auth = {"Authorization": f"Bearer {mock.token()}", "Content-Type": "application/json"}
    status, doc, _ = mock.request("GET", f"{nic}?{API}", headers=auth)
    assert status == 200, doc
    subnet = doc["properties"]["ipConfigurations"][0]["properties"]["subnet"]
    for i, cidr in enumerate(blocks):
        doc["properties"]["ipConfigurations"].append({
            "name": f"block-{i}",
            "properties": {"primary": False, "privateIPAllocationMethod": "Static",
                           "privateIPAddress": cidr.split("/")[0],
                           "privateIPAddressPrefixLength": int(cidr.split("/")[1]),
                           "subnet": subnet}})
    status, put, _ = mock.request("PUT", f"{nic}?{API}", json.dumps(doc).encode(),
                                  {**auth, "If-Match": doc["etag"]})
    assert status in (200, 201), put


@pytest.fixture
def lab():
    with netlab.Lab() as lab:
        yield lab
    assert lab.namespaces() == []


def test_pods_on_two_nodes_reach_each_other_through_the_sdn(lab, tmp_path):
    built(str(MOCK.relative_to(BUILD_DIR)))
    assert PTP.is_file(), "Debian's containernetworking-plugins is missing: scripts/install-deps.sh"
    before = netlab.root_netns_snapshot()

    nodes = {name: lab.add_node(name, ip) for name, ip in NODES.items()}
    mock = Mock(tmp_path, ["--async-delay-ms", "50", "--sdn-netns", lab.fabric.name])
    try:
        for i, name in enumerate(NODES):
            program_blocks(mock, nic_id(i), [BLOCKS[name]])
        want = {BLOCKS[name]: ip for name, ip in NODES.items()}
        assert lab.fabric.wait_routes(want) == want

        pods, addresses = {}, {}
        for name, node in nodes.items():
            pod = lab.add_pod(node, f"web-{name}")
            conf = netlab.ptp_host_local_config("lab", BLOCKS[name], data_dir=tmp_path / name)
            res = lab.cni(PTP, "ADD", pod, conf)
            assert res.ok, str(res)
            [ip] = res.ips()
            assert netlab.ipaddress.ip_address(ip) in netlab.ipaddress.ip_network(BLOCKS[name])
            pods[name], addresses[name] = pod, ip
            # The pod sees only its own eth0 (plus lo), and the runtime's ifname was honoured.
            assert sorted(pod.netns.links()) == ["eth0", "lo"]

        a, b = pods["node-0"], pods["node-1"]
        assert netlab.wait_reachable(a, addresses["node-1"]), "node-0's pod cannot reach node-1's"
        assert netlab.ping(b, addresses["node-0"], count=3)
        # An address in no programmed block has no route in the fabric: nothing answers.
        assert not netlab.ping(a, "10.240.2.1")

        # Take node-1's block off its NIC: the SDN drops the route, and the pods are cut off.
        program_blocks_removed(mock, nic_id(1))
        want = {BLOCKS["node-0"]: NODES["node-0"]}
        assert lab.fabric.wait_routes(want) == want
        assert not netlab.ping(a, addresses["node-1"])

        for name, pod in pods.items():
            conf = netlab.ptp_host_local_config("lab", BLOCKS[name], data_dir=tmp_path / name)
            res = lab.cni(PTP, "DEL", pod, conf)
            assert res.ok, str(res)
            lab.remove_pod(pod)
    finally:
        mock.stop()
    lab.close()
    assert lab.namespaces() == []
    assert netlab.root_netns_snapshot() == before


def program_blocks_removed(mock: Mock, nic: str) -> None:
    """Removes every prefix ipConfiguration from the NIC (keeps the primary)."""
    auth = {"Authorization": f"Bearer {mock.token()}", "Content-Type": "application/json"}
    status, doc, _ = mock.request("GET", f"{nic}?{API}", headers=auth)
    assert status == 200, doc
    doc["properties"]["ipConfigurations"] = [
        c for c in doc["properties"]["ipConfigurations"] if c["properties"].get("primary")]
    status, put, _ = mock.request("PUT", f"{nic}?{API}", json.dumps(doc).encode(),
                                  {**auth, "If-Match": doc["etag"]})
    assert status in (200, 201), put


def test_a_dual_stack_fabric_routes_ipv6_blocks_to_their_nodes():
    """cloud: none's fabric for IPv6: each node also holds an IPv6 address, and an IPv6 block
    routed via its node's IPv6 address (route_block, as the harness routes every block) carries
    traffic from the other node to an address of the block on that node. An IPv4 next hop for an
    IPv6 block is refused: Linux has no such route."""
    before = netlab.root_netns_snapshot()
    with netlab.Lab(subnet6="fd00:f::/64") as lab:
        a = lab.add_node("node-0", "10.240.0.4", "fd00:f::4")
        b = lab.add_node("node-1", "10.240.0.5", "fd00:f::5")
        # An address of b's block, held on b as a pod's would be routed to it.
        b.netns.ip("link", "set", "lo", "up")
        b.netns.ip("addr", "add", "fd00:b10c::1/128", "dev", "lo", "nodad")
        with pytest.raises(ValueError, match="gateway must be of its family"):
            lab.fabric.route_block("fd00:b10c::/80", "10.240.0.5")
        ping = a.netns.exec("ping", "-6", "-c1", "-W1", "fd00:b10c::1", check=False)
        assert ping.returncode != 0, "reachable before the block is routed"
        lab.fabric.route_block("fd00:b10c::/80", "fd00:f::5")
        lab.fabric.route_block("10.240.1.16/28", "10.240.0.5")
        assert lab.fabric.sdn_routes() == {"fd00:b10c::/80": "fd00:f::5",
                                           "10.240.1.16/28": "10.240.0.5"}
        for target in ("fd00:f::5", "fd00:b10c::1"):
            poll(f"node-0 reaches {target} across the fabric",
                 lambda t=target: a.netns.exec("ping", "-6", "-c1", "-W1", t,
                                               check=False).returncode == 0, 10)
        # route_blocks makes the routes exactly the ones it is given, each via the node's address
        # of the block's family (Node.next_hop): a block that moved or is gone loses its route.
        want = {c: a.next_hop(c) for c in ("fd00:b10c::/80", "10.240.1.32/28")}
        assert want == {"fd00:b10c::/80": "fd00:f::4", "10.240.1.32/28": "10.240.0.4"}
        assert lab.fabric.route_blocks(want) == want
        assert lab.fabric.sdn_routes() == want
        with pytest.raises(ValueError, match="without an IPv6 address"):
            netlab.next_hop("fd00:b10c::/80", "10.240.0.6", None)
    assert lab.namespaces() == []
    assert netlab.root_netns_snapshot() == before


def test_lab_cleans_up_after_a_failure():
    """An exception inside the lab still removes every namespace it made."""
    with pytest.raises(RuntimeError, match="boom"):
        with netlab.Lab() as lab:
            node = lab.add_node("node-0", "10.240.0.4")
            lab.add_pod(node, "p")
            assert len(lab.namespaces()) == 3
            raise RuntimeError("boom")
    assert lab.namespaces() == []


def test_cni_errors_come_back_as_the_spec_error(lab, tmp_path):
    """run_cni returns the plugin's JSON error and code, as a runtime would see them."""
    node = lab.add_node("node-0", "10.240.0.4")
    pod = lab.add_pod(node, "p")
    bad = netlab.ptp_host_local_config("lab", "10.240.1.0/28", data_dir=tmp_path)
    bad["cniVersion"] = "9.9.9"
    res = lab.cni(PTP, "ADD", pod, bad)
    assert not res.ok and res.code == 1 and "9.9.9" in res.doc["details"], str(res)
    # Nothing was wired: the pod still has only lo.
    assert pod.netns.links() == ["lo"]
    # And a retried DEL of a pod that never got an address succeeds (DEL is idempotent).
    good = netlab.ptp_host_local_config("lab", "10.240.1.0/28", data_dir=tmp_path)
    assert lab.cni(PTP, "DEL", pod, good).ok
