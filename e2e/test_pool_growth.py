"""A PodSubnet's pool follows its spec without a restart, end to end: the real kube-apiserver (the
session's `kube` fixture) and the real controller binary (--cloud=none; no agent runs, so the
test does what a node's agent does: it reports status.used and removes vnetipam.io/agent-drain).

spec.reservedCIDRs edited live: a range newly reserved is never carved again; the block the pool
held there takes no new pods (it is deleted at once, kept by agent-drain while its pods hold
addresses) and its node gets a block outside the range; the PodSubnet's status counts and names
it. A range no longer reserved is carved again. A controller started after an edit releases a
block in the reserved range the same way, instead of refusing it.

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import ipaddress

from controller_harness import GROUP_PATH, POOL_LABEL, condition, phase, poll
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
