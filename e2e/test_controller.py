"""vnet-ipam-controller end to end: the real kube-apiserver (the session's `kube` fixture), the real
azure-vnet-mock over HTTPS, and the real controller binary (build/controller/vnet-ipam-controller).

Nodes are Node objects whose spec.providerID names a VM of the mock topology below; the controller
carves the PodSubnet, creates IPBlocks and programs their prefixes on the VMs' NICs. Each test has
its own PodSubnet (nodeSelector matchLabels e2e.vnetipam.io/pool=<test>), nodes and controller
process(es),
and cleans up with a running controller so no NIC prefix outlives the test.

Every wait is a poll on an observable condition (API objects, /mock/state, /metrics) with a
deadline; randomness (churn order, kill points) is seeded.
"""

from __future__ import annotations

import datetime
import ipaddress
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from azure_mock import (CONTROLLER_ROLE, Mock, mock_fixture, provider_id, subnet_id,
                        topology_with_subnets)
from built import built
from controller_harness import (POOL_LABEL, SUBNET_LABEL, ControllerProcess,
                                InvariantMonitor, KubeApi, blocks_by_node, condition, leaving,
                                metric_sum, overlaps, phase, poll)
from crd_helpers import CRD_DIR, CRD_NAMES, PROGRAMMED_ON, block_phase

SEED = 5050
MAIN_SUBNET = "10.240.0.0/16"   # VMs vm-0..vm-399, primaries 10.240.0.4..10.240.1.147
MAIN_RESERVED = ["10.240.0.0/23"]
SMALL_SUBNET = "10.241.0.0/25"  # VMs small-0..small-7; 6 usable /28 blocks (see below)
SMALL_RESERVED = ["10.241.0.0/28"]
PLAIN_CIDR = "10.250.0.0/24"
DUAL_STACK_V6_CIDR = "fd00:e2e::/96"

TOPOLOGY = topology_with_subnets(
    [{"name": "main", "prefix": MAIN_SUBNET, "vms": 400, "vmPrefix": "vm"},
     {"name": "small", "prefix": SMALL_SUBNET, "vms": 8, "vmPrefix": "small"}],
    address_prefixes=["10.240.0.0/16", "10.241.0.0/16"])

# The mock's request limits (ARM's and the NRP's) are off: the churn tests write more than Azure's
# 1000 writes / 5 min per subscription, and throttling is tested on its own (test_faults...).
cmock = mock_fixture("--async-delay-ms", "50", "--seed", str(SEED), "--retry-after-seconds", "1",
                     "--writes-per-5min", "0", "--reads-per-5min", "0", "--no-subscription-limits",
                     "--role-file", str(CONTROLLER_ROLE), topology_doc=TOPOLOGY)


@pytest.fixture(scope="module")
def api(kube):
    built("controller/vnet-ipam-controller")
    kube.kubectl("apply", "-f", str(CRD_DIR))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{n}" for n in CRD_NAMES))
    return KubeApi(kube)


class Env:
    """One test's pools, nodes and controllers; cleanup() leaves nothing behind (nodes deleted,
    their blocks and NIC prefixes gone, PodSubnets deleted, controllers stopped)."""

    def __init__(self, api: KubeApi, mock: Mock, workdir: Path, kubeconfig: Path):
        self.api = api
        self.mock = mock
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.pools: dict[str, dict] = {}  # name -> spec
        self.nodes: dict[str, str] = {}  # node -> pool label value
        self.controllers: list[ControllerProcess] = []
        self.monitor: InvariantMonitor | None = None
        self.cloud = "azure"

    # -- objects --

    def controller(self, identity: str = "ctl", **kw) -> ControllerProcess:
        kw.setdefault("mock", self.mock)
        kw.setdefault("cloud", self.cloud)
        kw.setdefault("extra", ("--nic-orphan-grace-seconds", "5"))
        c = ControllerProcess(self.workdir / identity, self.kubeconfig, identity=identity, **kw)
        self.controllers.append(c)
        return c.start()

    def pool(self, name: str, label: str, **spec) -> None:
        spec.setdefault("nodeSelector", {"matchLabels": {POOL_LABEL: label}})
        self.api.create_podsubnet(name, spec)
        self.pools[name] = spec

    def add_nodes(self, names: list[str], label: str, azure: bool = True) -> None:
        for n in names:
            self.nodes[n] = label
            if self.monitor:
                self.monitor.note_created(n)

        def create(n: str) -> None:
            self.api.create_node(n, {POOL_LABEL: label}, provider_id(n) if azure else None)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))

    def delete_nodes(self, names: list[str]) -> None:
        for n in names:
            if self.monitor:
                self.monitor.note_deleted(n)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self.api.delete_node, names))
        for n in names:
            self.nodes.pop(n, None)

    def blocks(self) -> list[dict]:
        return self.api.blocks(set(self.pools))

    def nic_prefixes(self) -> dict[str, set[str]]:
        """VM name -> prefixes on its NIC (every VM of the topology)."""
        return {nic[:-len("-nic")]: set(p) for nic, p in self.mock.nic_prefixes().items()}

    # -- convergence --

    def converged(self, want_nodes: set[str], blocks_per_node: int | None = 1,
                  cloud: bool = True) -> str:
        """'' when the pools' state is final for `want_nodes`, else what is still wrong."""
        blocks = self.blocks()
        by_node = blocks_by_node(blocks)
        problems = []
        for b in blocks:
            if leaving(b):
                problems.append(f"{b['metadata']['name']} leaving")
            elif phase(b) != "Ready":
                problems.append(f"{b['metadata']['name']} {phase(b) or 'no phase'}")
        for n in sorted(want_nodes):
            got = by_node.get(n, [])
            if not got or (blocks_per_node is not None and len(got) != blocks_per_node):
                problems.append(f"node {n} has {len(got)} blocks")
        for n in sorted(set(by_node) - want_nodes):
            what = [(b["metadata"]["name"], phase(b), b["metadata"].get("deletionTimestamp"),
                     b["metadata"].get("finalizers"),
                     [c["type"] for c in (b.get("status") or {}).get("conditions", [])])
                    for b in by_node[n]]
            problems.append(f"node {n} (not wanted) has {len(by_node[n])} blocks: {what}")
        if cloud:
            state = self.mock.state()
            nics = {nic["name"][:-len("-nic")]: nic for nic in state["networkInterfaces"]}
            for vm, nic in nics.items():
                have = {c["privateIPAddress"] for c in nic["ipConfigurations"]
                        if "/" in c["privateIPAddress"]}
                want = {b["spec"]["cidr"] for b in by_node.get(vm, [])}
                if have != want:
                    problems.append(f"NIC of {vm} holds {sorted(have)}, blocks {sorted(want)}")
                if nic.get("pendingOperationId"):
                    problems.append(f"NIC of {vm} has an operation running")
        return "; ".join(problems[:12]) + (f" (+{len(problems) - 12})" if len(problems) > 12
                                           else "")

    def wait_converged(self, want_nodes: set[str], timeout: float, **kw) -> float:
        """Seconds it took."""
        t0 = time.monotonic()
        last = [""]

        def done():
            last[0] = self.converged(want_nodes, **kw)
            return last[0] == ""
        poll(f"{len(want_nodes)} nodes converged", done, timeout, interval=0.2,
             describe=lambda: last[0] + "\n" + self.controller_tails())
        return time.monotonic() - t0

    def controller_tails(self) -> str:
        return "\n".join(f"--- {c.identity} (pid {c.proc.pid if c.proc else '-'}):\n{c.tail(15)}"
                         for c in self.controllers)

    # -- teardown --

    def cleanup(self) -> None:
        if self.monitor:
            self.monitor.stop()
        try:
            if self.nodes:
                self.delete_nodes(list(self.nodes))
            if self.pools:
                if not any(c.running() for c in self.controllers):
                    self.controller("cleanup", leader_elect=False).wait_ready()
                try:
                    self.wait_converged(set(), timeout=60, cloud=self.cloud == "azure")
                except AssertionError:
                    # Leave the mock clean for the next test, then report this one's leak.
                    leaked = [nic for nic, p in self.mock.nic_prefixes().items() if p]
                    self.mock.clear_prefixes(leaked)
                    raise
        finally:
            for name in self.pools:
                self.api.delete_podsubnet(name)
            for c in self.controllers:
                c.stop()


@pytest.fixture
def env(api, cmock, kube, tmp_path):
    e = Env(api, cmock, tmp_path, kube.kubeconfig)
    try:
        yield e
    finally:
        e.cleanup()


def main_pool(env: Env, name: str, label: str, **spec) -> None:
    spec.setdefault("minFreeIPsPerNode", 8)
    spec.setdefault("releaseDelaySeconds", 2)
    env.pool(name, label, azureSubnetID=subnet_id("main"), reservedCIDRs=MAIN_RESERVED, **spec)


def table(lines: list[str]) -> list[dict[str, str]]:
    """kubectl's column output as dicts, cut at the header's column starts (cells may be blank)."""
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, starts[1:] + [None]))
    names = [header[a:b].strip() for a, b in bounds]
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, bounds)} for line in lines[1:]]


def drop_agent_drain(api: KubeApi, name: str) -> None:
    """What the node's agent does once it serves nothing from a block being deleted: removes
    vnetipam.io/agent-drain (a merge patch on the version read; retried on a conflict)."""
    path = f"/apis/vnetipam.io/v1alpha1/ipblocks/{name}"

    def dropped():
        status, block = api.request("GET", path)
        if status == 404:
            return True
        finalizers = [f for f in block["metadata"].get("finalizers", [])
                      if f != "vnetipam.io/agent-drain"]
        status, doc = api.request("PATCH", path, {"metadata": {
            "resourceVersion": block["metadata"]["resourceVersion"], "finalizers": finalizers}},
            "application/merge-patch+json")
        assert status in (200, 404, 409), (status, doc)
        return status != 409
    poll(f"agent-drain removed from {name}", dropped, 30)


def vms(start: int, count: int) -> list[str]:
    return [f"vm-{i}" for i in range(start, start + count)]


# ---- scenarios ------------------------------------------------------------------------------

def test_fifty_nodes_join_get_blocks_on_their_nics_and_leave(env, kube):
    main_pool(env, "e2e-join", "join")
    ctl = env.controller()
    ctl.wait_ready()
    # /readyz says only that the caches synced: some nodes may be known before the controller
    # leads. Their joins cost what the others' do (the leader's first resync reads no NIC of a node
    # with nothing to program yet).
    nodes = vms(0, 50)
    env.add_nodes(nodes, "join")
    took = env.wait_converged(set(nodes), timeout=60)
    print(f"\n50 nodes: every node has a Ready block on its NIC after {took:.1f}s")

    blocks = env.blocks()
    assert len(blocks) == 50
    assert overlaps([b["spec"]["cidr"] for b in blocks]) == []
    for b in blocks:
        assert b["metadata"]["labels"][SUBNET_LABEL] == "e2e-join"
        assert b["metadata"]["labels"]["vnetipam.io/node"] == b["spec"]["nodeName"]
        assert "vnetipam.io/nic-release" in b["metadata"].get("finalizers", [])
        # Created in its final state, once its prefix was on the NIC: one write, no status.
        nic = b["metadata"]["annotations"][PROGRAMMED_ON]
        assert nic.endswith(f"/networkInterfaces/{b['spec']['nodeName']}-nic"), b["metadata"]
        assert "phase" not in (b.get("status") or {}), b
        assert block_phase(b) == "Ready"

    # `kubectl get ipblocks` is the user's view: every block, its node, CIDR and phase. A block
    # created on its NIC shows no PHASE or CAPACITY until its phase changes (docs/design.md 4.2).
    out = kube.kubectl("get", "ipblocks", "-l", f"{SUBNET_LABEL}=e2e-join").stdout.splitlines()
    assert out[0].split() == ["NAME", "NODE", "CIDR", "SUBNET", "USED", "CAPACITY", "PHASE", "AGE"]
    rows = {r["NAME"]: r for r in table(out)}  # USED is blank until an agent reports
    assert set(rows) == {b["metadata"]["name"] for b in blocks}
    for b in blocks:
        row = rows[b["metadata"]["name"]]
        assert (row["NODE"], row["CIDR"], row["SUBNET"], row["CAPACITY"], row["PHASE"]) == \
            (b["spec"]["nodeName"], b["spec"]["cidr"], "e2e-join", "", ""), row

    # Azure requests of the joins: one NIC GET and one PUT each (and the polls of the PUT's
    # operation, which the mock, like Azure, does not finish at once). The VMs' NICs came from a
    # list of their resource group, not a VM GET per node; no NIC was read after its PUT.
    samples = ctl.metrics()
    arm = {op: metric_sum(samples, "vnetipam_azure_requests_total", operation=op)
           for op in ("GetNetworkInterface", "PutNetworkInterface", "GetVirtualMachine",
                      "ListNetworkInterfaces")}
    assert arm["GetNetworkInterface"] == 50 and arm["PutNetworkInterface"] == 50, (
        arm, [(n, ls, v) for n, ls, v in samples if n == "vnetipam_azure_requests_total"],
        ctl.tail(40))
    # One list: the topology's 408 NICs at the mock's 100 a page.
    assert arm["GetVirtualMachine"] == 0 and arm["ListNetworkInterfaces"] == 5, arm

    pool = env.api.podsubnet("e2e-join")
    assert pool["status"]["allocatedBlocks"] == 50, pool["status"]
    assert condition(pool, "Ready")["status"] == "True", pool["status"]
    assert ctl.metric("vnetipam_podsubnet_allocated_blocks", podsubnet="e2e-join") == 50

    # Half the nodes leave: their blocks and NIC prefixes go, the others' stay untouched.
    before = {b["metadata"]["name"]: b["metadata"]["uid"] for b in blocks}
    env.delete_nodes(nodes[:25])
    env.wait_converged(set(nodes[25:]), timeout=60)
    after = {b["metadata"]["name"]: b["metadata"]["uid"] for b in env.blocks()}
    assert all(before[n] == uid for n, uid in after.items()), "a surviving block was replaced"
    nics = env.nic_prefixes()
    assert all(not nics[n] for n in nodes[:25])


def test_usage_over_the_warm_target_adds_a_block_and_the_empty_extra_goes_back(env):
    main_pool(env, "e2e-usage", "usage", minFreeIPsPerNode=8, releaseDelaySeconds=2)
    ctl = env.controller()
    ctl.wait_ready()
    node = "vm-60"
    env.add_nodes([node], "usage")
    env.wait_converged({node}, timeout=30)
    first = env.blocks()[0]
    name = first["metadata"]["name"]

    # The agent reports 9 of 16 used: 7 free < 8 -> a second block.
    env.api.report_used(name, 9)
    env.wait_converged({node}, timeout=30, blocks_per_node=2)
    mine = {b["metadata"]["name"]: b for b in env.blocks()}
    assert mine[name]["status"]["used"] == 9, "the controller overwrote the agent's status.used"
    assert len(env.nic_prefixes()[node]) == 2

    # Usage drops: the extra (newer) block is empty and is released after releaseDelaySeconds:
    # deleted, but while it carries vnetipam.io/agent-drain (its agent may still serve pods from
    # it) it keeps its prefix on the NIC and its CIDR. Here no agent runs: the test plays it.
    # The extra block has been empty since it was made: its delay runs from then (the controller
    # first saw it empty no earlier than its creationTimestamp), not from this report.
    env.api.report_used(name, 0)
    extra = poll("the extra block released", lambda: [
        b for b in env.blocks()
        if b["metadata"]["name"] != name and b["metadata"].get("deletionTimestamp")], 30)[0]
    released_at = time.time()
    created = datetime.datetime.fromisoformat(
        extra["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()
    took = released_at - created
    assert extra["spec"]["cidr"] in env.nic_prefixes()[node], \
        "the prefix left the NIC before the agent gave the block up"
    drop_agent_drain(env.api, extra["metadata"]["name"])
    env.wait_converged({node}, timeout=30, blocks_per_node=1)
    left = env.blocks()
    assert [b["metadata"]["name"] for b in left] == [name], "the original block should stay"
    assert env.nic_prefixes()[node] == {first["spec"]["cidr"]}
    # Timestamps have 1 s resolution: released no earlier than releaseDelaySeconds - 1 after it was
    # made (and so first empty).
    assert took >= 1.0, f"the extra block went back {took:.2f}s after it was made, before the delay"
    assert ctl.metric("vnetipam_block_releases_total", podsubnet="e2e-usage") >= 1


def test_pool_too_small_is_exhausted_and_recovers_when_nodes_leave(env):
    # 10.241.0.0/25 = 8 blocks of /28: the first holds the primaries (reserved), the last holds the
    # subnet's last address (Azure-reserved) -> 6 blocks for 8 nodes.
    env.pool("e2e-small", "small", azureSubnetID=subnet_id("small"),
             reservedCIDRs=SMALL_RESERVED, minFreeIPsPerNode=8, releaseDelaySeconds=2)
    ctl = env.controller()
    ctl.wait_ready()
    nodes = [f"small-{i}" for i in range(8)]
    env.add_nodes(nodes, "small")

    def exhausted():
        pool = env.api.podsubnet("e2e-small")
        c = condition(pool, "Exhausted")
        blocks = [b for b in env.blocks() if phase(b) == "Ready"]
        return c and c["status"] == "True" and len(blocks) == 6 and pool
    pool = poll("Exhausted=True with 6 Ready blocks", exhausted, 60,
                describe=lambda: str(env.api.podsubnet("e2e-small").get("status")))
    assert pool["status"]["totalBlocks"] == 6, pool["status"]
    assert pool["status"]["allocatedBlocks"] == 6, pool["status"]
    assert ctl.metric("vnetipam_podsubnet_exhausted", podsubnet="e2e-small") == 1
    events = poll("an Exhausted event on the PodSubnet",
                  lambda: [e for e in env.api.events_about("PodSubnet", "e2e-small")
                           if e.get("reason") == "Exhausted"], 30)
    assert events[0]["type"] == "Warning", events[0]
    short = set(nodes) - set(blocks_by_node(env.blocks()))
    assert len(short) == 2, short

    # Three nodes with blocks leave: the two short nodes get blocks, the condition clears.
    with_blocks = sorted(set(nodes) - short)
    env.delete_nodes(with_blocks[:3])
    remaining = set(nodes) - set(with_blocks[:3])
    env.wait_converged(remaining, timeout=60)
    poll("Exhausted=False", lambda: condition(env.api.podsubnet("e2e-small"),
                                               "Exhausted")["status"] == "False", 30)
    assert ctl.metric("vnetipam_podsubnet_exhausted", podsubnet="e2e-small") == 0


def test_sigkill_at_random_points_during_200_joins_and_leaves(env):
    """200 nodes join and 108 of them leave in seeded random order while the controller is
    SIGKILLed at 6 seeded points and restarted; the monitor checks the safety invariants on every
    snapshot throughout (InvariantMonitor); the final state must be exact."""
    rng = random.Random(SEED)
    main_pool(env, "e2e-churn", "churn")
    env.monitor = InvariantMonitor(env.api, env.mock, {"e2e-churn"}, orphan_deadline=30)
    env.monitor.set_ranges([MAIN_SUBNET])
    env.monitor.start()
    ctl = env.controller("churn", leader_elect=False)
    ctl.wait_ready()

    # The plan: 40 steps; each adds 5 nodes and, from step 4 on, deletes 3 nodes that joined at
    # least 3 steps earlier. 6 steps are kill points: SIGKILL before the step, restart after it.
    pending = vms(100, 200)
    rng.shuffle(pending)
    steps = 40
    kills = set(rng.sample(range(2, steps - 2), 6))
    joined: list[tuple[int, str]] = []
    alive: set[str] = set()
    t_start = time.monotonic()
    for step in range(steps):
        if step in kills:
            ctl.kill()
        batch, pending = pending[:5], pending[5:]
        env.add_nodes(batch, "churn")
        joined += [(step, n) for n in batch]
        alive |= set(batch)
        if step >= 4:
            old = sorted(n for s, n in joined if s <= step - 3 and n in alive)
            gone = rng.sample(old, 3)
            env.delete_nodes(gone)
            alive -= set(gone)
        if step in kills:
            env.monitor.note_restart()
            ctl.start()
        time.sleep(rng.uniform(0.1, 0.5))  # spacing between steps (the churn's rhythm)
    assert not pending and len(alive) == 200 - 3 * (steps - 4)
    churn_s = time.monotonic() - t_start

    took = env.wait_converged(alive, timeout=120)
    env.monitor.stop()
    obs = env.monitor.observations
    print(f"\nchurn {churn_s:.1f}s with {len(kills)} SIGKILLs (restarts {ctl.starts - 1}); "
          f"converged {took:.1f}s later; {len(obs)} invariant snapshots")
    assert ctl.starts == 1 + len(kills)
    assert len(obs) >= 50, "the monitor observed too little to mean anything"
    assert env.monitor.violations == [], "\n".join(env.monitor.violations[:30])
    blocks = env.blocks()
    assert overlaps([b["spec"]["cidr"] for b in blocks]) == []
    assert {b["spec"]["nodeName"] for b in blocks} == alive


def test_two_replicas_one_leader_writes_and_the_other_takes_over(env):
    main_pool(env, "e2e-leader", "leader")
    lease = "vnet-ipam-e2e-leader"
    a = env.controller("replica-a", lease_name=lease)
    b = env.controller("replica-b", lease_name=lease)
    a.wait_ready()
    b.wait_ready()

    def one_leader():
        leaders = [c for c in (a, b) if c.is_leader()]
        held = (env.api.lease("kube-system", lease) or {}).get("spec", {}).get("holderIdentity")
        return len(leaders) == 1 and held == leaders[0].identity and leaders[0]
    leader = poll("exactly one leader, holding the Lease", one_leader, 30)
    standby = b if leader is a else a

    first = vms(340, 10)
    env.add_nodes(first, "leader")
    env.wait_converged(set(first), timeout=60)
    # Only the leader wrote: the standby allocated nothing, sent no NIC write, and says so.
    assert leader.metric("vnetipam_block_allocations_total", podsubnet="e2e-leader") == 10
    assert standby.metric("vnetipam_block_allocations_total") == 0
    assert standby.metric("vnetipam_controller_leader") == 0
    standby_azure = standby.metrics()
    assert not [s for s in standby_azure if s[0] == "vnetipam_azure_requests_total" and s[2] > 0
                and "put" in s[1].get("operation", "").lower()], "the standby wrote to Azure"

    # The leader dies without releasing the Lease: the standby takes over after it expires.
    leader.kill()
    t0 = time.monotonic()
    poll("the standby leads", lambda: standby.is_leader() and (env.api.lease(
        "kube-system", lease) or {}).get("spec", {}).get("holderIdentity") == standby.identity,
        40, interval=0.2)
    print(f"\ntakeover {time.monotonic() - t0:.1f}s after SIGKILL of the leader")
    second = vms(350, 10)
    env.add_nodes(second, "leader")
    env.delete_nodes(first[:5])
    env.wait_converged(set(first[5:] + second), timeout=60)
    assert standby.metric("vnetipam_block_allocations_total", podsubnet="e2e-leader") == 10
    # The new leader started from what the API server holds: the NIC of a node with a block is the
    # one its block names, so no VM was read (the ten new nodes found theirs in one list of the
    # resource group, 5 pages of the mock's 100 NICs), and no node was told that the pool was
    # exhausted while the new leader carved it.
    samples = standby.metrics()
    lookups = {op: metric_sum(samples, "vnetipam_azure_requests_total", operation=op)
               for op in ("GetVirtualMachine", "ListNetworkInterfaces")}
    assert lookups["GetVirtualMachine"] == 0 and lookups["ListNetworkInterfaces"] <= 5, lookups
    events, _ = env.api.list("/apis/events.k8s.io/v1/events")
    ours = set(first + second)
    assert not [e for e in events if e.get("reason") == "PodSubnetExhausted"
                and (e.get("regarding") or {}).get("name") in ours], "exhaustion reported"


def test_throttling_and_failing_azure_reaches_the_same_final_state(env):
    main_pool(env, "e2e-faults", "faults")
    env.mock.set_faults(throttleRate=0.2, errorRate=0.2)
    try:
        before = env.mock.state()["counters"]
        ctl = env.controller("faults", leader_elect=False)
        ctl.wait_ready()
        nodes = vms(360, 20)
        env.monitor = InvariantMonitor(env.api, env.mock, {"e2e-faults"}, orphan_deadline=60)
        env.monitor.set_ranges([MAIN_SUBNET])
        for n in nodes:
            env.monitor.note_created(n)
        env.monitor.start()
        env.add_nodes(nodes, "faults")
        took = env.wait_converged(set(nodes), timeout=120)
        env.delete_nodes(nodes[:6])
        took2 = env.wait_converged(set(nodes[6:]), timeout=120)
        env.monitor.stop()
        state = env.mock.state()
        after = state["counters"]
        print(f"\nunder 20% throttling + 20% errors: 20 joins converged in {took:.1f}s, "
              f"6 leaves in {took2:.1f}s; mock {after}")
        assert after["throttled"] > before["throttled"], after
        assert after["serverErrors"] > before["serverErrors"], after
        assert ctl.metric("vnetipam_azure_throttled_total") > 0
        assert state["retryAfterViolations"] == 0, state["retryAfter"]
        assert env.monitor.violations == [], "\n".join(env.monitor.violations[:30])
    finally:
        env.mock.set_faults(throttleRate=0, errorRate=0)


def test_cloud_none_blocks_go_ready_without_a_nic(env):
    env.cloud = "none"
    env.pool("e2e-plain", "plain", cidr=PLAIN_CIDR, minFreeIPsPerNode=8)
    before = env.mock.state()["counters"]["armRequests"]
    ctl = env.controller("plain", leader_elect=False)
    ctl.wait_ready()
    nodes = [f"plain-{i}" for i in range(5)]
    env.add_nodes(nodes, "plain", azure=False)
    env.wait_converged(set(nodes), timeout=30, cloud=False)
    blocks = env.blocks()
    assert len(blocks) == 5
    for b in blocks:
        assert b["spec"]["cidr"].startswith("10.250.0."), b["spec"]
        assert not (b.get("status") or {}).get("nic"), b
        assert b["metadata"]["annotations"][PROGRAMMED_ON] == "none", b["metadata"]
    assert overlaps([b["spec"]["cidr"] for b in blocks]) == []
    assert env.mock.state()["counters"]["armRequests"] == before, "cloud=none talked to Azure"
    env.delete_nodes(nodes[:2])
    env.wait_converged(set(nodes[2:]), timeout=30, cloud=False)
    assert ctl.stop() == 0, ctl.tail()


def test_dual_stack_podsubnets_give_each_node_a_block_of_each_family(env, kube):
    """cloud: none, an IPv4 and an IPv6 PodSubnet selecting the same nodes: each node gets one
    block of each, `kubectl get ipblocks` shows both families' CIDRs, and each PodSubnet counts
    its own; a leaving node gives both back."""
    env.cloud = "none"
    env.pool("e2e-ds4", "ds", cidr=PLAIN_CIDR, minFreeIPsPerNode=8)
    env.pool("e2e-ds6", "ds", cidr=DUAL_STACK_V6_CIDR, blockPrefixLength=112, minFreeIPsPerNode=8)
    ctl = env.controller("ds", leader_elect=False)
    ctl.wait_ready()
    nodes = ["ds-0", "ds-1", "ds-2"]
    env.add_nodes(nodes, "ds", azure=False)
    env.wait_converged(set(nodes), blocks_per_node=2, timeout=30, cloud=False)

    blocks = env.blocks()
    by_node = blocks_by_node(blocks)
    for n in nodes:
        families = sorted(ipaddress.ip_network(b["spec"]["cidr"]).version for b in by_node[n])
        assert families == [4, 6], by_node[n]
    assert overlaps([b["spec"]["cidr"] for b in blocks]) == []
    for b in blocks:
        # status.capacity is written with the block's first status (it may not be there yet).
        capacity = (b.get("status") or {}).get("capacity")
        if b["spec"]["podSubnet"] == "e2e-ds6":
            assert ipaddress.ip_network(b["spec"]["cidr"]).subnet_of(
                ipaddress.ip_network(DUAL_STACK_V6_CIDR)), b["spec"]
            assert b["spec"]["cidr"].endswith("/112")
            assert capacity in (None, 2 ** 16), b
        else:
            assert capacity in (None, 16), b

    # The user's view: the CIDR column says the family.
    out = kube.kubectl("get", "ipblocks", "-l",
                       f"{SUBNET_LABEL} in (e2e-ds4,e2e-ds6)").stdout.splitlines()
    rows = {r["NAME"]: r for r in table(out)}
    assert set(rows) == {b["metadata"]["name"] for b in blocks}
    for b in blocks:
        row = rows[b["metadata"]["name"]]
        assert (row["NODE"], row["CIDR"], row["SUBNET"]) == \
            (b["spec"]["nodeName"], b["spec"]["cidr"], b["spec"]["podSubnet"]), row
    assert {r["CIDR"].split("/")[1] for r in rows.values()} == {"28", "112"}

    # Each PodSubnet counts its own (the status follows the blocks within a status interval).
    for name in ("e2e-ds4", "e2e-ds6"):
        poll(f"{name} counting 3 blocks",
             lambda n=name: (env.api.podsubnet(n).get("status") or {}).get("allocatedBlocks") == 3
             and ctl.metric("vnetipam_podsubnet_allocated_blocks", podsubnet=n) == 3, 30,
             describe=lambda n=name: str(env.api.podsubnet(n).get("status")))
    v6 = env.api.podsubnet("e2e-ds6")
    assert v6["status"]["cidr"] == DUAL_STACK_V6_CIDR, v6["status"]
    assert v6["status"]["totalBlocks"] == 65536, v6["status"]
    assert condition(v6, "Ready")["status"] == "True", v6["status"]

    env.delete_nodes(nodes[:1])
    env.wait_converged(set(nodes[1:]), blocks_per_node=2, timeout=30, cloud=False)
    assert ctl.stop() == 0, ctl.tail()


def test_an_ipv6_podsubnet_is_refused_with_azure_and_no_nic_is_touched(env):
    """Azure takes only IPv4 prefixes on a NIC: with cloud: azure an IPv6 PodSubnet stays
    Ready=False saying so, its nodes get no block, and no NIC is written."""
    env.pool("e2e-v6-azure", "v6az", cidr=DUAL_STACK_V6_CIDR, blockPrefixLength=112)
    ctl = env.controller("v6az", leader_elect=False)
    ctl.wait_ready()
    nodes = vms(390, 2)
    env.add_nodes(nodes, "v6az")

    def refused():
        c = condition(env.api.podsubnet("e2e-v6-azure"), "Ready")
        return c if c and c["status"] == "False" and "is IPv6" in c.get("message", "") else None

    ready = poll("the IPv6 PodSubnet refused", refused, 30)
    assert ready["reason"] == "NotCarved", ready
    assert "Azure takes only IPv4 (/28) prefixes" in ready["message"], ready
    assert env.blocks() == []
    assert all(not env.nic_prefixes()[n] for n in nodes)
    assert ctl.stop() == 0, ctl.tail()


def test_match_expressions_give_blocks_only_to_the_nodes_they_select(env):
    """spec.nodeSelector as a label selector: matchLabels and every operator of matchExpressions,
    all ANDed, with Kubernetes' semantics (NotIn and DoesNotExist hold for a node without the
    key). Relabelling a node moves it in or out of the selection."""
    zone, tier, ready, spot = ("e2e.vnetipam.io/zone", "e2e.vnetipam.io/tier",
                               "e2e.vnetipam.io/ready", "e2e.vnetipam.io/spot")
    env.cloud = "none"
    env.pool("e2e-expr", "expr", cidr=PLAIN_CIDR, minFreeIPsPerNode=8, nodeSelector={
        "matchLabels": {POOL_LABEL: "expr"},
        "matchExpressions": [
            {"key": zone, "operator": "In", "values": ["a", "b"]},
            {"key": tier, "operator": "NotIn", "values": ["gpu"]},
            {"key": ready, "operator": "Exists"},
            {"key": spot, "operator": "DoesNotExist"}]})
    pool = {POOL_LABEL: "expr"}
    nodes = {
        "expr-ok": {**pool, zone: "a", ready: ""},                  # no tier: NotIn holds
        "expr-ok-tier": {**pool, zone: "b", tier: "cpu", ready: "yes"},
        "expr-zone-c": {**pool, zone: "c", ready: ""},              # In: value not listed
        "expr-no-zone": {**pool, ready: ""},                        # In: key missing
        "expr-gpu": {**pool, zone: "a", tier: "gpu", ready: ""},    # NotIn: value listed
        "expr-not-ready": {**pool, zone: "a"},                      # Exists: key missing
        "expr-spot": {**pool, zone: "a", ready: "", spot: "true"},  # DoesNotExist: key there
        "expr-other-pool": {POOL_LABEL: "other", zone: "a", ready: ""},  # matchLabels
    }
    ctl = env.controller("expr", leader_elect=False)
    ctl.wait_ready()
    for name, labels in nodes.items():
        env.nodes[name] = labels[POOL_LABEL]
        env.api.create_node(name, labels, None)
    env.wait_converged({"expr-ok", "expr-ok-tier"}, timeout=30, cloud=False)

    def relabel(name: str, labels: dict) -> None:
        env.api.ok("PATCH", f"/api/v1/nodes/{name}", {"metadata": {"labels": labels}},
                   "application/merge-patch+json")

    def blocks_of(node: str) -> list[dict]:
        return [b for b in env.blocks() if b["spec"]["nodeName"] == node]

    released = [b["metadata"]["name"] for b in blocks_of("expr-ok")]
    relabel("expr-spot", {spot: None})  # now selected
    relabel("expr-ok", {tier: "gpu"})   # no longer selected: its block is released
    poll("the block of expr-ok released", lambda: all(leaving(b) for b in blocks_of("expr-ok")),
         30)
    for name in released:
        drop_agent_drain(env.api, name)  # what its agent does once it serves nothing from it
    env.wait_converged({"expr-ok-tier", "expr-spot"}, timeout=30, cloud=False)
    assert ctl.stop() == 0, ctl.tail()
