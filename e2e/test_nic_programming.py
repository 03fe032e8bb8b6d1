"""Conditions and Events that explain the cloud step, and a subnet shared with other Azure
users, end to end: the real kube-apiserver, the real controller binary and the real
azure-vnet-mock.

A node's new block is programmed before its IPBlock exists: the controller carves a CIDR, PUTs
its prefix on the node's NIC, and creates the IPBlock only once the PUT's operation has succeeded,
already Ready (annotated vnetipam.io/programmed-on with the NIC's id): one API write per block.

Shared subnet: another NIC holds an address inside one of the CIDRs the controller carves for a
node, so the mock refuses a NIC PUT carrying it with PrivateIPAddressInUse, as Azure does. The
controller learns from the refusal which CIDR it was: that CIDR is quarantined (no IPBlock is ever
made of it, a Warning on the Node names the other NIC, and it is not carved again for a while),
the node's other blocks are programmed in the same pass, and a replacement is carved and becomes
Ready. The foreign address is never inside a Ready block of the node.

A NIC PUT that fails as a whole (the mock's long-running operation ends Failed for every PUT): no
IPBlock is made, the Node gets a Warning Event NICProgrammingFailed and the condition
VnetIpamNICProgrammed=False. Once the cloud takes PUTs again: the block is created Ready, the Node
condition is True, and a Normal Event says programming recovered. A node whose NIC never failed
gets no Node condition at all.

The addresses others hold in the subnet are counted from the VNET's usage list, which the
controller reads every second here: the four VMs' own addresses and the other NIC's, less the
node's blocks on its NIC. The PodSubnet's status.foreignAddresses and the gauge
vnetipam_podsubnet_foreign_addresses say so.

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from azure_mock import API, RG, SUB, mock_fixture, provider_id, subnet_id, topology_with_subnets
from controller_harness import POOL_LABEL, ControllerProcess, KubeApi, condition, phase, poll
from crd_helpers import PROGRAMMED_ON
from test_controller import api  # noqa: F401 (the fixture: CRDs applied, controller built)

PROG_SUBNET = "10.243.0.0/24"  # VMs prog-0..prog-3; primaries 10.243.0.4..7 (first /28)
TOPOLOGY = topology_with_subnets(
    [{"name": "prog", "prefix": PROG_SUBNET, "vms": 4, "vmPrefix": "prog"}],
    address_prefixes=["10.243.0.0/16"])
# The first /28 holds Azure's reserved addresses, so a fresh pool hands out 10.243.0.16/28 first,
# then .32/28 and .48/28 (a node that wants 40 free addresses gets those three).
FIRST_BLOCK = "10.243.0.16/28"
HELD_BLOCK = "10.243.0.32/28"
FOREIGN_IP = "10.243.0.40"  # inside HELD_BLOCK
SUBNET = "e2e-nicprog"
LABEL = "nicprog"

pmock = mock_fixture("--async-delay-ms", "20", "--seed", "6060", topology_doc=TOPOLOGY)


def nic_path(name: str) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
            f"networkInterfaces/{name}?{API}")


def set_foreign_address(mock, nic: str, address: str | None) -> None:
    """Gives NIC `nic` a second, static ipConfiguration at `address` (None: takes it away) through
    ARM, as another team's VM would hold it, and waits until the mock shows the result."""
    auth = {"Authorization": f"Bearer {mock.token()}", "Content-Type": "application/json"}
    status, doc, _ = mock.request("GET", nic_path(nic), headers=auth)
    assert status == 200, doc
    configs = [c for c in doc["properties"]["ipConfigurations"] if c["name"] != "foreign"]
    if address:
        configs.append({"name": "foreign", "properties": {
            "privateIPAddress": address, "privateIPAllocationMethod": "Static",
            "primary": False, "subnet": {"id": subnet_id("prog")}}})
    doc["properties"]["ipConfigurations"] = configs
    status, answer, _ = mock.request("PUT", nic_path(nic), json.dumps(doc).encode(),
                                     {**auth, "If-Match": doc.get("etag", "*")})
    assert status in (200, 201), answer

    def applied():
        for n in mock.state()["networkInterfaces"]:
            if n["name"] == nic:
                held = [c["privateIPAddress"] for c in n["ipConfigurations"]]
                return (address in held) if address else all(
                    not a.startswith(FOREIGN_IP) for a in held)
        return False
    poll(f"{nic}: foreign address {address}", applied, 30)


def foreign_addresses(api: KubeApi, ctl: ControllerProcess) -> tuple[int | None, float | None]:
    """status.foreignAddresses of the test's PodSubnet and the controller's gauge for it (None
    where absent)."""
    status = (api.podsubnet(SUBNET) or {}).get("status", {})
    gauge = [v for n, ls, v in ctl.metrics()
             if n == "vnetipam_podsubnet_foreign_addresses" and ls.get("podsubnet") == SUBNET]
    return status.get("foreignAddresses"), (gauge[0] if gauge else None)


def contains(cidr: str, address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)


def node_condition(api: KubeApi, node: str) -> dict | None:
    status, doc = api.request("GET", f"/api/v1/nodes/{node}")
    assert status == 200, doc
    return condition(doc, "VnetIpamNICProgrammed")


@pytest.fixture
def setup(api, kube, tmp_path: Path, pmock):
    state = {"nodes": [], "controller": None, "foreign": None}
    try:
        yield state
    finally:
        try:
            pmock.set_faults(asyncFailRate=0)
            if state["foreign"]:
                set_foreign_address(pmock, state["foreign"], None)
            for n in state["nodes"]:
                api.delete_node(n)
            ctl = state["controller"]
            if ctl and ctl.running():
                # The nodes are gone: the controller removes agent-drain itself, takes the
                # prefixes off the NICs and lets the blocks go.
                poll("every block of the test gone", lambda: not api.blocks({SUBNET}), 60,
                     describe=lambda: ctl.tail(20))
                poll("no prefix left on the prog NICs",
                     lambda: not any(p for nic, p in pmock.nic_prefixes().items()
                                     if nic.startswith("prog-")), 60)
        finally:
            api.delete_podsubnet(SUBNET)
            if state["controller"]:
                assert state["controller"].stop() == 0, state["controller"].tail()


def start_controller(setup, kube, tmp_path, pmock) -> ControllerProcess:
    ctl = ControllerProcess(tmp_path / "ctl", kube.kubeconfig, mock=pmock, cloud="azure",
                            identity="nicprog", leader_elect=False,
                            extra=("--nic-orphan-grace-seconds", "5",
                                   "--subnet-usage-period-seconds", "1"))
    setup["controller"] = ctl
    ctl.start().wait_ready()
    return ctl


def create_podsubnet(api: KubeApi, min_free: int) -> None:
    api.create_podsubnet(SUBNET, {"azureSubnetID": subnet_id("prog"), "blockPrefixLength": 28,
                                  "minFreeIPsPerNode": min_free,
                                  "nodeSelector": {"matchLabels": {POOL_LABEL: LABEL}}})


def test_a_block_another_resource_holds_an_address_in_is_quarantined_and_replaced(
        setup, api, kube, tmp_path, pmock):
    # Another NIC (prog-3, never a node here) holds an address inside the node's second block.
    set_foreign_address(pmock, "prog-3-nic", FOREIGN_IP)
    setup["foreign"] = "prog-3-nic"
    create_podsubnet(api, 40)
    ctl = start_controller(setup, kube, tmp_path, pmock)
    setup["nodes"].append("prog-0")
    api.create_node("prog-0", {POOL_LABEL: LABEL}, provider_id("prog-0"))

    def mine() -> list[dict]:
        blocks = [b for b in api.blocks({SUBNET}) if b["spec"]["nodeName"] == "prog-0"]
        # Checked at every look: the foreign address is never inside a Ready block of the node.
        for b in blocks:
            assert not (phase(b) == "Ready" and contains(b["spec"]["cidr"], FOREIGN_IP)), b
        return blocks

    def settled():
        blocks = mine()
        ready = sorted(b["spec"]["cidr"] for b in blocks if phase(b) == "Ready")
        return ready if len(ready) >= 3 else None
    ready = poll(
        "three Ready blocks on prog-0", settled, 90,
        describe=lambda: f"{[(b['spec']['cidr'], phase(b)) for b in mine()]}\n{ctl.tail(20)}")

    # The held CIDR: quarantined with the cloud's reason, naming the NIC that holds the address,
    # and never made an IPBlock (it was refused before any block existed).
    refusal = poll("a Warning NICProgrammingFailed on the Node naming the held CIDR",
                   lambda: [e for e in api.events_about("Node", "prog-0")
                            if e.get("type") == "Warning"
                            and e.get("reason") == "NICProgrammingFailed"
                            and HELD_BLOCK in e.get("note", "")], 30)
    assert "PrivateIPAddressInUse" in refusal[0]["note"], refusal[0]
    assert "prog-3-nic" in refusal[0]["note"], refusal[0]
    assert not [b for b in api.blocks({SUBNET}) if b["spec"]["cidr"] == HELD_BLOCK]
    # The node's other two blocks and a replacement for the held one, all on its NIC.
    assert ready == ["10.243.0.16/28", "10.243.0.48/28", "10.243.0.64/28"], ready
    poll("the three Ready blocks on prog-0's NIC, the held one not",
         lambda: sorted(pmock.nic_prefixes()["prog-0-nic"]) == ready, 30,
         describe=lambda: str(pmock.nic_prefixes()))
    for b in mine():
        if phase(b) == "Ready":
            assert b["metadata"]["annotations"][PROGRAMMED_ON].endswith("/prog-0-nic"), b
    # The node was never stalled: no Node condition.
    assert node_condition(api, "prog-0") is None
    # Others hold the four VMs' addresses and the other NIC's one; our three /28s on the NIC are
    # subtracted, the held block (on no NIC) is not.
    poll("foreignAddresses 5 in the status and the gauge",
         lambda: foreign_addresses(api, ctl) == (5, 5.0), 30,
         describe=lambda: f"{foreign_addresses(api, ctl)}\n{ctl.tail(20)}")

    # The other NIC lets the address go: the node's blocks are as they were, and the held block
    # stays released (it is never programmed anew).
    set_foreign_address(pmock, "prog-3-nic", None)
    setup["foreign"] = None
    poll("foreignAddresses 4 in the status and the gauge",
         lambda: foreign_addresses(api, ctl) == (4, 4.0), 30,
         describe=lambda: f"{foreign_addresses(api, ctl)}\n{ctl.tail(20)}")
    assert sorted(pmock.nic_prefixes()["prog-0-nic"]) == ready
    assert sorted(b["spec"]["cidr"] for b in mine() if phase(b) == "Ready") == ready


def test_a_failing_nic_put_is_explained_on_the_node_and_recovers(
        setup, api, kube, tmp_path, pmock):
    # Every NIC PUT's long-running operation ends Failed: a failure of the whole PUT, which names
    # no block, so the node waits for its block and the Node says why. Nodes prog-1 and prog-2: the
    # Events of the test above are about prog-0.
    pmock.set_faults(asyncFailRate=1)
    create_podsubnet(api, 8)
    ctl = start_controller(setup, kube, tmp_path, pmock)
    setup["nodes"].append("prog-1")
    api.create_node("prog-1", {POOL_LABEL: LABEL}, provider_id("prog-1"))

    # The node's first block is carved and PUT, and every PUT fails: no IPBlock is made.
    node_false = poll("the Node condition VnetIpamNICProgrammed=False",
                      lambda: (c := node_condition(api, "prog-1")) and c["status"] == "False"
                      and c, 60, describe=lambda: ctl.tail(20))
    assert node_false["reason"] == "NetworkingInternalOperationError", node_false
    assert "prog-1-nic" in node_false["message"], node_false  # the NIC it failed on
    assert not api.blocks({SUBNET}), "no IPBlock before its prefix is on the NIC"
    # No block of ours is on a NIC: the subnet's usage is the VMs' four primary addresses.
    poll("foreignAddresses 4 in the status and the gauge",
         lambda: foreign_addresses(api, ctl) == (4, 4.0), 30,
         describe=lambda: f"{foreign_addresses(api, ctl)}\n{ctl.tail(20)}")
    warnings = poll("a Warning NICProgrammingFailed on the Node",
                    lambda: [e for e in api.events_about("Node", "prog-1")
                             if e.get("type") == "Warning"
                             and e.get("reason") == "NICProgrammingFailed"], 30)
    assert "NetworkingInternalOperationError" in warnings[0]["note"], warnings[0]
    # The controller retries and fails again: the Node's Event grows a series, and the Node
    # condition is not written again for the same reason.
    poll("a retry failed too (the Node's Warning has a series)",
         lambda: [e for e in api.events_about("Node", "prog-1")
                  if e.get("reason") == "NICProgrammingFailed"
                  and (e.get("series") or {}).get("count", 1) >= 2], 60)
    assert not api.blocks({SUBNET})
    assert node_condition(api, "prog-1")["lastTransitionTime"] == node_false["lastTransitionTime"]

    # The cloud takes PUTs again: the controller's next try succeeds, and the block is created
    # Ready, on the NIC.
    pmock.set_faults(asyncFailRate=0)

    def recovered():
        b = next(iter(api.blocks({SUBNET})), None)
        return b if b and phase(b) == "Ready" else None
    block = poll("the block created Ready", recovered, 90, describe=lambda: ctl.tail(20))
    assert block["spec"]["cidr"] == FIRST_BLOCK, block["spec"]
    assert block["metadata"]["annotations"][PROGRAMMED_ON].endswith("/prog-1-nic"), block
    assert "phase" not in (block.get("status") or {}), "created in its final state: no status write"
    assert FIRST_BLOCK in pmock.nic_prefixes()["prog-1-nic"]
    # The node's /28 is on its NIC: Azure counts 4 + 16, of which the block is ours.
    poll("foreignAddresses 4 in the status and the gauge, with the block on the NIC",
         lambda: foreign_addresses(api, ctl) == (4, 4.0), 30,
         describe=lambda: f"{foreign_addresses(api, ctl)}\n{ctl.tail(20)}")
    node_true = poll("the Node condition VnetIpamNICProgrammed=True",
                     lambda: (c := node_condition(api, "prog-1")) and c["status"] == "True"
                     and c, 30)
    assert node_true["reason"] == "NICProgrammed", node_true
    assert node_true["lastTransitionTime"] >= node_false["lastTransitionTime"]
    poll("a Normal NICProgrammingRecovered on the Node",
         lambda: [e for e in api.events_about("Node", "prog-1")
                  if e.get("type") == "Normal" and e.get("reason") == "NICProgrammingRecovered"],
         30)

    # A node whose NIC never failed: its block created Ready on its NIC, and no Node condition.
    setup["nodes"].append("prog-2")
    api.create_node("prog-2", {POOL_LABEL: LABEL}, provider_id("prog-2"))

    def ready_on_prog_2():
        mine = [b for b in api.blocks({SUBNET}) if b["spec"]["nodeName"] == "prog-2"]
        return mine if mine and all(phase(b) == "Ready" for b in mine) else None
    for b in poll("prog-2's block Ready", ready_on_prog_2, 60, describe=lambda: ctl.tail(20)):
        assert b["metadata"]["annotations"][PROGRAMMED_ON].endswith("/prog-2-nic"), b
        assert b["spec"]["cidr"] in pmock.nic_prefixes()["prog-2-nic"], b
    assert node_condition(api, "prog-2") is None
