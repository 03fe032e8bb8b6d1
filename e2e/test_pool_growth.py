"""A PodSubnet's pool follows its spec without a restart, end to end: the real kube-apiserver (the
session's `kube` fixture) and the real controller binary (--cloud=none; no agent runs, so the
test does what a node's agent does: it reports status.used and removes vnetipam.io/agent-drain).

spec.reservedCIDRs edited live: a range newly reserved is never carved again; the block the pool
held there takes no new pods (it is deleted at once, kept by agent-drain while its pods hold
addresses) and its node gets a block outside the range; the PodSubnet's status counts and names
it. A range no longer reserved is carved again. A controller started after an edit releases a
block in the reserved range the same way, instead of refusing it.

An Azure subnet grown live (--cloud=azure against the real azure-vnet-mock): a prefix added to the
Azure subnet through ARM while the pool is full is carved within a usage-poll period; the node
short of a block gets one there, programmed on its NIC; status.cidrs lists both ranges and the
PodSubnet is no longer exhausted. A prefix removed from the Azure subnet (Azure allows that only
while it is empty) leaves the pool and status.cidrs; the Ready condition says why.

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from azure_mock import (API, RG, SUB, VNET, mock_fixture, provider_id, subnet_id,
                        topology_with_subnets)
from controller_harness import GROUP_PATH, POOL_LABEL, ControllerProcess, condition, phase, poll
from test_block_trust import Pool, get_block, pool  # noqa: F401 (the fixture)
from test_controller import api, drop_agent_drain  # noqa: F401 (the fixture: CRDs, controller)

SUBNET = "e2e-growth-plain"
CIDR = "10.253.0.0/26"  # four /28 blocks (spec.cidr: no Azure-reserved addresses)


def in_ranges(cidr: str, ranges: list[str]) -> bool:
    net = ipaddress.ip_network(cidr)
    return any(net.overlaps(ipaddress.ip_network(r)) for r in ranges)


def set_reserved(api, reserved: list[str]) -> None:
    api.ok("PATCH", f"{GROUP_PATH}/podsubnets/{SUBNET}", {"spec": {"reservedCIDRs": reserved}},
           "application/merge-patch+json")


def status(api) -> dict:
    return (api.podsubnet(SUBNET) or {}).get("status") or {}


def deleting(block: dict | None) -> bool:
    return bool(block and block["metadata"].get("deletionTimestamp"))


def test_reserved_cidrs_apply_live(pool, api):
    api.create_podsubnet(SUBNET, {"cidr": CIDR, "blockPrefixLength": 28, "minFreeIPsPerNode": 8,
                                  "releaseDelaySeconds": 3600,
                                  "nodeSelector": {"matchLabels": {POOL_LABEL: "growth"}}})
    pool.subnets.append(SUBNET)
    pool.start_controller("none")
    pool.add_node("growth-a", "growth", azure=False)
    first = pool.wait_ready_blocks("growth-a", 1)[0]
    first_name, first_cidr = first["metadata"]["name"], first["spec"]["cidr"]
    api.report_used(first_name, 3)  # three pods hold addresses in it
    poll("the PodSubnet counts 4 blocks, 1 allocated",
         lambda: (status(api).get("totalBlocks"), status(api).get("allocatedBlocks")) == (4, 1), 30)

    # Reserve node a's block and one free block.
    free = [str(n) for n in ipaddress.ip_network(CIDR).subnets(new_prefix=28)
            if str(n) != first_cidr]
    reserved = [first_cidr, free[1]]
    set_reserved(api, reserved)

    poll("the reserved block is released at once (kept by agent-drain)",
         lambda: deleting(get_block(api, first_name)), 30,
         describe=lambda: pool.controller.tail(20))
    assert get_block(api, first_name)["metadata"]["finalizers"] == ["vnetipam.io/agent-drain"]

    def replaced():
        live = [b for b in pool.own_blocks("growth-a") if not deleting(b)]
        return len(live) == 1 and phase(live[0]) == "Ready" and live[0]
    replacement = poll("node a gets a Ready block outside the reserved ranges", replaced, 30)
    assert not in_ranges(replacement["spec"]["cidr"], reserved), replacement["spec"]

    def reported():
        s = status(api)
        ready = condition(api.podsubnet(SUBNET), "Ready") or {}
        return (s.get("totalBlocks") == 2 and s.get("allocatedBlocks") == 1
                and f"1 block(s) in spec.reservedCIDRs take no new pods and are released as their "
                    f"pods go: {first_name}" in ready.get("message", "") and s)
    poll("the status counts 2 usable blocks and names the block being released", reported, 30,
         describe=lambda: str(status(api)))

    # Node b takes the last usable block; node c finds none: nothing in a reserved range is carved.
    pool.add_node("growth-b", "growth", azure=False)
    b_block = pool.wait_ready_blocks("growth-b", 1)[0]
    assert not in_ranges(b_block["spec"]["cidr"], reserved), b_block["spec"]
    pool.add_node("growth-c", "growth", azure=False)
    poll("the PodSubnet is Exhausted for node c",
         lambda: (condition(api.podsubnet(SUBNET), "Exhausted") or {}).get("status") == "True",
         30, describe=lambda: str(status(api)))
    assert not pool.own_blocks("growth-c")

    # The pods go: the agent gives the block up, the object goes, its range stays reserved.
    drop_agent_drain(api, first_name)
    poll("the released block is gone", lambda: get_block(api, first_name) is None, 30)
    poll("the Ready message no longer names it",
         lambda: first_name not in (condition(api.podsubnet(SUBNET), "Ready") or {})
         .get("message", "x"), 30)
    assert not pool.own_blocks("growth-c"), "a reserved CIDR was carved again"

    # The ranges are no longer reserved: node c gets a block from them.
    set_reserved(api, [])
    c_block = pool.wait_ready_blocks("growth-c", 1)[0]
    assert in_ranges(c_block["spec"]["cidr"], reserved), c_block["spec"]
    poll("the PodSubnet counts 4 blocks again",
         lambda: status(api).get("totalBlocks") == 4, 30, describe=lambda: str(status(api)))

    # A controller that starts after an edit does what a running one does: node b's block, now in
    # a reserved range, is released (not refused: no Invalid condition), and node b gets another.
    assert pool.controller.stop() == 0, pool.controller.tail()
    b_name = b_block["metadata"]["name"]
    set_reserved(api, [b_block["spec"]["cidr"]])
    pool.start_controller("none")
    poll("node b's block is released by the restarted controller",
         lambda: deleting(get_block(api, b_name)), 30, describe=lambda: pool.controller.tail(20))
    assert condition(get_block(api, b_name), "Invalid") is None, get_block(api, b_name)
    live = poll("node b gets a block outside the reserved range",
                lambda: [b for b in pool.own_blocks("growth-b")
                         if not deleting(b) and phase(b) == "Ready"], 30)
    assert not in_ranges(live[0]["spec"]["cidr"], [b_block["spec"]["cidr"]]), live


# ---- an Azure subnet's address prefixes, grown live ---------------------------------------------

GROW_SUBNET = "e2e-growth-azure"
GROW_LABEL = "growth-azure"
FIRST = "10.246.0.0/26"   # Azure keeps .0-.3 and .63: two usable /28 blocks, .16 and .32
ADDED = "10.246.8.0/26"   # added to the Azure subnet while the pool is full: .8.16 and .8.32
SPARE = "10.246.9.0/26"   # added and removed again while no block is there
GROW_TOPOLOGY = topology_with_subnets(
    [{"name": "grow", "prefix": FIRST, "vms": 3, "vmPrefix": "grow"}],
    address_prefixes=["10.246.0.0/16"])

gmock = mock_fixture("--async-delay-ms", "20", "--seed", "8080", topology_doc=GROW_TOPOLOGY)


def put_subnet_prefixes(mock, prefixes: list[str]):
    """Sets the Azure subnet's address prefixes through ARM (Subnets_CreateOrUpdate), as an
    operator growing a full subnet would: returns (status, body)."""
    auth = {"Authorization": f"Bearer {mock.token()}", "Content-Type": "application/json"}
    path = (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
            f"virtualNetworks/{VNET}/subnets/grow?{API}")
    status, doc, _ = mock.request("PUT", path, json.dumps(
        {"properties": {"addressPrefixes": prefixes}}).encode(), auth)
    return status, doc


@pytest.fixture
def grow_setup(api, gmock):
    state = {"controller": None, "nodes": []}
    try:
        yield state
    finally:
        try:
            for n in state["nodes"]:
                api.delete_node(n)
            ctl = state["controller"]
            if ctl and ctl.running():
                poll("every block of the test gone",
                     lambda: not api.blocks({GROW_SUBNET}), 60, describe=lambda: ctl.tail(20))
        finally:
            api.delete_podsubnet(GROW_SUBNET)
            if state["controller"]:
                assert state["controller"].stop() == 0, state["controller"].tail()
            gmock.clear_prefixes(["grow-0-nic", "grow-1-nic", "grow-2-nic"])


def test_a_prefix_added_to_the_azure_subnet_is_carved_live(grow_setup, api, kube, tmp_path,
                                                          gmock):
    api.create_podsubnet(GROW_SUBNET, {
        "azureSubnetID": subnet_id("grow"), "blockPrefixLength": 28, "minFreeIPsPerNode": 8,
        "maxBlocksPerNode": 1, "nodeSelector": {"matchLabels": {POOL_LABEL: GROW_LABEL}}})
    ctl = ControllerProcess(tmp_path / "ctl", kube.kubeconfig, mock=gmock, cloud="azure",
                            identity="growth", leader_elect=False,
                            extra=("--subnet-usage-period-seconds", "1"))
    grow_setup["controller"] = ctl
    ctl.start().wait_ready()

    def grow_status() -> dict:
        return (api.podsubnet(GROW_SUBNET) or {}).get("status") or {}

    def ready_blocks(node: str) -> list[dict]:
        return [b for b in api.blocks({GROW_SUBNET})
                if b["spec"]["nodeName"] == node and phase(b) == "Ready"]

    def add_node(name: str) -> None:
        grow_setup["nodes"].append(name)
        api.create_node(name, {POOL_LABEL: GROW_LABEL}, provider_id(name))

    add_node("grow-0")
    add_node("grow-1")
    poll("grow-0 and grow-1 hold the two blocks of the first prefix",
         lambda: len(ready_blocks("grow-0")) == 1 and len(ready_blocks("grow-1")) == 1, 60,
         describe=lambda: ctl.tail(20))
    add_node("grow-2")
    poll("the PodSubnet exhausted, grow-2 short",
         lambda: (c := condition({"status": grow_status()}, "Exhausted")) is not None
         and c["status"] == "True" and "grow-2" in c["message"], 60,
         describe=lambda: f"{grow_status()}\n{ctl.tail(20)}")
    assert grow_status()["cidrs"] == [FIRST], grow_status()
    assert not ready_blocks("grow-2")

    # The operator adds a prefix to the Azure subnet.
    status, doc = put_subnet_prefixes(gmock, [FIRST, ADDED])
    assert status == 200, doc
    assert doc["properties"]["addressPrefixes"] == [FIRST, ADDED], doc

    blocks = poll("grow-2's block in the added prefix, Ready", lambda: ready_blocks("grow-2"), 60,
                  describe=lambda: f"{grow_status()}\n{ctl.tail(20)}")
    cidr = blocks[0]["spec"]["cidr"]
    assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(ADDED)), cidr
    assert cidr in gmock.nic_prefixes()["grow-2-nic"], gmock.nic_prefixes()
    poll("the status lists both ranges and counts four blocks",
         lambda: grow_status().get("cidrs") == [FIRST, ADDED]
         and grow_status().get("totalBlocks") == 4, 30, describe=lambda: str(grow_status()))
    poll("no longer exhausted",
         lambda: condition({"status": grow_status()}, "Exhausted")["status"] == "False", 30,
         describe=lambda: str(grow_status()))
    ready = condition({"status": grow_status()}, "Ready")
    assert ready["message"].startswith(f"{FIRST}, {ADDED} carved into 4 usable /28 blocks"), ready

    # Azure keeps a prefix that an ipConfiguration is in: the pool keeps it too.
    status, doc = put_subnet_prefixes(gmock, [FIRST])
    assert status == 400 and doc["error"]["code"] == "InUseSubnetCannotBeUpdated", doc
    assert ready_blocks("grow-2") and cidr in gmock.nic_prefixes()["grow-2-nic"]

    # A third prefix, added and removed again while empty: carved, then retired.
    status, doc = put_subnet_prefixes(gmock, [FIRST, ADDED, SPARE])
    assert status == 200, doc
    poll("the third prefix carved",
         lambda: grow_status().get("cidrs") == [FIRST, ADDED, SPARE]
         and grow_status().get("totalBlocks") == 6, 30, describe=lambda: str(grow_status()))
    status, doc = put_subnet_prefixes(gmock, [FIRST, ADDED])
    assert status == 200, doc
    poll("the third prefix retired",
         lambda: grow_status().get("cidrs") == [FIRST, ADDED]
         and grow_status().get("totalBlocks") == 4, 30, describe=lambda: str(grow_status()))
    ready = condition({"status": grow_status()}, "Ready")
    assert f"prefix {SPARE} is not carved: it is no longer one of the Azure subnet's prefixes" \
        in ready["message"], ready
    assert all(ipaddress.ip_network(b["spec"]["cidr"]).subnet_of(ipaddress.ip_network(FIRST))
               or ipaddress.ip_network(b["spec"]["cidr"]).subnet_of(ipaddress.ip_network(ADDED))
               for b in api.blocks({GROW_SUBNET})), api.blocks({GROW_SUBNET})
