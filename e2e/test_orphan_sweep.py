"""The orphan sweep end to end: the real kube-apiserver, the real controller binary and the real
azure-vnet-mock.

Before the controller starts, NICs of VMs that are no Node carry what a crashed earlier controller
and other teams left there, all inside the PodSubnet's Azure subnet:
- orph-1-nic: `vnetipam-10-245-0-192-28` (ours, no IPBlock owns it) and `theirs`, another team's
  prefix ipConfiguration, also inside the PodSubnet's range;
- orph-2-nic: `vnetipam-10-245-0-224-28`, whose CIDR an IPBlock names (one the controller refused,
  so it never programs nor deletes it: any IPBlock naming a CIDR keeps the sweep off it).

The controller sweeps every second with a 3-second grace. The orphan on orph-1-nic goes, after the
grace, and only it: a Warning Event OrphanPrefixRemoved on the PodSubnet says so and
vnetipam_orphan_prefixes_removed_total counts it. The foreign ipConfiguration and the IPBlock's
prefix are still there sweeps later, and node orph-0's own block stays Ready on its NIC.

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from azure_mock import API, RG, SUB, mock_fixture, provider_id, subnet_id, topology_with_subnets
from controller_harness import GROUP_PATH, POOL_LABEL, ControllerProcess, phase, poll
from crd_helpers import block_name
from test_controller import api  # noqa: F401 (the fixture: CRDs applied, controller built)

TOPOLOGY = topology_with_subnets(
    [{"name": "orph", "prefix": "10.245.0.0/24", "vms": 3, "vmPrefix": "orph"}],
    address_prefixes=["10.245.0.0/16"])
SUBNET = "e2e-orphans"
LABEL = "orphans"
ORPHAN = "10.245.0.192/28"   # on orph-1-nic, ours, owned by nothing
FOREIGN = "10.245.0.208/28"  # on orph-1-nic, someone else's ipConfiguration
CLAIMED = "10.245.0.224/28"  # on orph-2-nic, ours, named by an IPBlock
CLAIM_BLOCK = block_name(SUBNET, CLAIMED)
GRACE_S = 3

omock = mock_fixture("--async-delay-ms", "20", "--seed", "7070", topology_doc=TOPOLOGY)


def nic_path(name: str) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
            f"networkInterfaces/{name}?{API}")


def add_prefix_configs(mock, nic: str, configs: list[tuple[str, str]]) -> None:
    """Puts prefix ipConfigurations (name, cidr) on NIC `nic` in one PUT through ARM (as an earlier
    controller or another team would have), and waits until its operation has succeeded."""
    auth = {"Authorization": f"Bearer {mock.token()}", "Content-Type": "application/json"}
    status, doc, _ = mock.request("GET", nic_path(nic), headers=auth)
    assert status == 200, doc
    for name, cidr in configs:
        doc["properties"]["ipConfigurations"].append({"name": name, "properties": {
            "privateIPAddress": cidr, "privateIPAddressPrefixLength": int(cidr.split("/")[1]),
            "privateIPAllocationMethod": "Static", "primary": False,
            "subnet": {"id": subnet_id("orph")}}})
    status, answer, _ = mock.request("PUT", nic_path(nic), json.dumps(doc).encode(),
                                     {**auth, "If-Match": doc["etag"]})
    assert status in (200, 201), answer

    def done():
        status, now, _ = mock.request("GET", nic_path(nic), headers=auth)
        return status == 200 and now["properties"]["provisioningState"] == "Succeeded"
    poll(f"{nic}: the PUT's operation done", done, 30)
    for _, cidr in configs:
        assert cidr in mock.nic_prefixes()[nic], mock.nic_prefixes()


def config_names(mock, nic: str) -> dict[str, str]:
    """ipConfiguration name -> address of NIC `nic`, from the mock's state."""
    for n in mock.state()["networkInterfaces"]:
        if n["name"] == nic:
            return {c["name"]: c["privateIPAddress"] for c in n["ipConfigurations"]}
    raise AssertionError(f"no NIC {nic}")


@pytest.fixture
def setup(api, omock):
    state = {"controller": None, "nodes": []}
    try:
        yield state
    finally:
        try:
            api.ok("DELETE", f"{GROUP_PATH}/ipblocks/{CLAIM_BLOCK}", allow=(404,))
            for n in state["nodes"]:
                api.delete_node(n)
            ctl = state["controller"]
            if ctl and ctl.running():
                poll("every block of the test gone",
                     lambda: not [b for b in api.blocks({SUBNET})], 60,
                     describe=lambda: ctl.tail(20))
        finally:
            api.delete_podsubnet(SUBNET)
            if state["controller"]:
                assert state["controller"].stop() == 0, state["controller"].tail()
            omock.clear_prefixes(["orph-0-nic", "orph-1-nic", "orph-2-nic"])


def test_a_prefix_on_a_nic_of_no_node_is_swept_after_the_grace_and_nothing_else(
        setup, api, kube, tmp_path: Path, omock):
    # What was left before this controller ran.
    add_prefix_configs(omock, "orph-1-nic",
                       [("vnetipam-10-245-0-192-28", ORPHAN), ("theirs", FOREIGN)])
    add_prefix_configs(omock, "orph-2-nic", [("vnetipam-10-245-0-224-28", CLAIMED)])
    # An IPBlock naming CLAIMED, refused by the controller (its subnet label names another
    # PodSubnet), for a node that does not exist: never programmed, never deleted by the controller.
    api.ok("POST", f"{GROUP_PATH}/ipblocks", {
        "apiVersion": "vnetipam.io/v1alpha1", "kind": "IPBlock",
        "metadata": {"name": CLAIM_BLOCK, "labels": {"vnetipam.io/subnet": "someone-else"}},
        "spec": {"podSubnet": SUBNET, "cidr": CLAIMED, "nodeName": "orph-ghost"}})

    api.create_podsubnet(SUBNET, {"azureSubnetID": subnet_id("orph"), "blockPrefixLength": 28,
                                  "minFreeIPsPerNode": 8,
                                  "nodeSelector": {"matchLabels": {POOL_LABEL: LABEL}}})
    ctl = ControllerProcess(tmp_path / "ctl", kube.kubeconfig, mock=omock, cloud="azure",
                            identity="orphans", leader_elect=False,
                            extra=("--nic-orphan-grace-seconds", str(GRACE_S),
                                   "--orphan-sweep-period-seconds", "1"))
    setup["controller"] = ctl
    ctl.start().wait_ready()
    setup["nodes"].append("orph-0")
    api.create_node("orph-0", {POOL_LABEL: LABEL}, provider_id("orph-0"))

    def node_blocks():
        return [b for b in api.blocks({SUBNET}) if b["spec"]["nodeName"] == "orph-0"]
    ready = poll("orph-0's block Ready",
                 lambda: (bs := node_blocks()) and all(phase(b) == "Ready" for b in bs) and bs,
                 60, describe=lambda: ctl.tail(20))
    node_cidrs = sorted(b["spec"]["cidr"] for b in ready)

    # The orphan goes, with its Event and its count.
    poll(f"{ORPHAN} off orph-1-nic", lambda: ORPHAN not in omock.nic_prefixes()["orph-1-nic"],
         60, describe=lambda: f"{omock.nic_prefixes()}\n{ctl.tail(20)}")
    events = poll("a Warning OrphanPrefixRemoved on the PodSubnet",
                  lambda: [e for e in api.events_about("PodSubnet", SUBNET)
                           if e.get("reason") == "OrphanPrefixRemoved"], 30)
    assert len(events) == 1, events
    note = events[0]["note"]
    assert events[0]["type"] == "Warning", events[0]
    assert ORPHAN in note and "orph-1-nic" in note, note
    # Removed only once the grace had passed since the sweep first saw it.
    owned_for = int(re.search(r"owned it for (\d+)s", note).group(1))
    assert owned_for >= GRACE_S, note
    assert ctl.metric("vnetipam_orphan_prefixes_removed_total", podsubnet=SUBNET) == 1

    # Two more sweeps (each reads the subnet once): the rest is as it was.
    reads = ctl.metric("vnetipam_azure_requests_total", operation="GetSubnet")
    poll("two more sweeps",
         lambda: ctl.metric("vnetipam_azure_requests_total", operation="GetSubnet") >= reads + 2,
         30, describe=lambda: ctl.tail(20))
    orph1 = config_names(omock, "orph-1-nic")
    assert orph1.get("theirs") == FOREIGN, orph1
    assert "vnetipam-10-245-0-192-28" not in orph1, orph1
    assert CLAIMED in omock.nic_prefixes()["orph-2-nic"], omock.nic_prefixes()
    assert sorted(omock.nic_prefixes()["orph-0-nic"]) == node_cidrs, omock.nic_prefixes()
    assert all(phase(b) == "Ready" for b in node_blocks())
    assert ctl.metric("vnetipam_orphan_prefixes_removed_total", podsubnet=SUBNET) == 1
    assert len([e for e in api.events_about("PodSubnet", SUBNET)
                if e.get("reason") == "OrphanPrefixRemoved"]) == 1
