"""The ARM budget end to end: the real kube-apiserver, the real controller binary pacing its Azure
requests, and the real azure-vnet-mock enforcing Azure's request limits (ARM's subscription token
buckets and the Network RP's count of writes in a sliding 5-minute window, sent back as
x-ms-ratelimit-remaining-* headers), both 60 times faster (5 minutes last 5 s).

The mock lets 20 writes into any 5-minute span; the controller's write budget is 16. Thirty nodes
join at once: a controller that wrote as fast as it could would be refused (429) from the 21st
write on. The pacer spends the budget evenly instead (a bucket of 1 write refilled 15 per 5
minutes, lib/azure/arm_pacer.h), so no span holds more than 16 writes as they leave the
controller. The mock counts them as they arrive: the 4 to spare absorb the time a request takes
to get there (with none to spare, a run on a loaded 2-core machine had one write refused while
the nodes left). Every node's block is Ready, each join is one NIC PUT, the mock refused nothing, and
the join took at least what the budget allows, 29 / (15 per 5 s) = 9.7 s.
bench/controller_bench.py --budgets arm measures the same at 1,000 nodes under the default budget.

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import time

from azure_mock import CONTROLLER_ROLE, mock_fixture, provider_id, subnet_id, topology_with_subnets
from controller_harness import POOL_LABEL, ControllerProcess, phase, poll
from test_controller import api  # noqa: F401 (the fixture: CRDs applied, controller built)

NODES = 30
LIMIT = 20         # Network RP writes per 5 minutes the mock allows
BUDGET = 16        # the controller's write budget: 4 below, for the time a request takes to arrive
TIME_SCALE = 60
WINDOW_S = 300 / TIME_SCALE
BURST = max(1, BUDGET // 100)
POOL = "e2e-budget"
LABEL = "budget"
SUBNET = "10.246.0.0/22"
RESERVED = ["10.246.0.0/26"]  # the VMs' primary addresses, 10.246.0.4 + i
TOPOLOGY = topology_with_subnets(
    [{"name": "budget", "prefix": SUBNET, "vms": NODES, "vmPrefix": "bvm"}],
    address_prefixes=["10.246.0.0/16"])

# Azure's limits on (the default), with the Network RP's writes cut to LIMIT.
budgetmock = mock_fixture("--time-scale", str(TIME_SCALE), "--writes-per-5min", str(LIMIT),
                          "--seed", "6062", "--role-file", str(CONTROLLER_ROLE),
                          topology_doc=TOPOLOGY)


def test_a_join_paced_to_the_write_budget_is_never_throttled(api, kube, tmp_path, budgetmock):
    names = [f"bvm-{i}" for i in range(NODES)]
    created: list[str] = []
    ctl = None
    try:
        api.create_podsubnet(POOL, {"azureSubnetID": subnet_id("budget"), "blockPrefixLength": 28,
                                    "reservedCIDRs": RESERVED, "minFreeIPsPerNode": 8,
                                    "nodeSelector": {"matchLabels": {POOL_LABEL: LABEL}}})
        # The pacer on (the harness turns it off unless told), no reserve: the limit is the
        # budget itself here, so any reserve would hold every write for a window.
        ctl = ControllerProcess(
            tmp_path / "ctl", kube.kubeconfig, mock=budgetmock, cloud="azure", identity="budget",
            leader_elect=False,
            extra=("--azure-write-budget-per-5min", str(BUDGET), "--azure-write-reserve", "0",
                   "--azure-budget-time-scale", str(TIME_SCALE)))
        ctl.start().wait_ready()
        poll("the PodSubnet carved from the Azure subnet",
             lambda: (api.podsubnet(POOL) or {}).get("status", {}).get("totalBlocks"), 30,
             describe=lambda: f"{api.podsubnet(POOL)}\n{ctl.tail(20)}")
        before = budgetmock.state()["counters"]

        start = time.monotonic()
        for name in names:
            api.create_node(name, {POOL_LABEL: LABEL}, provider_id(name))
            created.append(name)

        def all_ready():
            ready = {b["spec"]["nodeName"] for b in api.blocks({POOL}) if phase(b) == "Ready"}
            return ready if ready >= set(names) else None
        poll(f"a Ready block on each of the {NODES} nodes", all_ready, 120,
             describe=lambda: f"{budgetmock.state()['counters']}\n{ctl.tail(20)}")
        took = time.monotonic() - start

        after = budgetmock.state()["counters"]
        writes = after["armWrites"] - before.get("armWrites", 0)
        assert after["throttled"] - before.get("throttled", 0) == 0, (after, ctl.tail(40))
        assert writes == NODES, (before, after)
        allowed = (NODES - BURST) / ((BUDGET - BURST) / WINDOW_S)
        assert took >= allowed, f"{NODES} writes in {took:.2f}s; the budget allows {allowed:.2f}s"
    finally:
        try:
            for name in created:
                api.delete_node(name)
            if ctl and ctl.running():
                poll("every block of the test gone", lambda: not api.blocks({POOL}), 120,
                     describe=lambda: ctl.tail(20))
                assert budgetmock.state()["counters"]["throttled"] == 0
        finally:
            api.delete_podsubnet(POOL)
            if ctl:
                ctl.stop()
