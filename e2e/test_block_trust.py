"""The controller trusts no IPBlock it did not make, end to end: the real kube-apiserver (the
session's `kube` fixture), the real controller binary and, for the cloud case, the real
azure-vnet-mock.

Someone with RBAC on ipblocks creates blocks the pool must not take: a /27 over another node's
/28, a /16 outside every PodSubnet, one in the PodSubnet's reservedCIDRs, one of the wrong prefix
length, one naming a PodSubnet that does not exist. Each must get the condition Invalid=True (a
reason naming the rule, a message naming the field and the conflict) and a Warning event, must
never be set Ready (a watch from before their creation sees every version of them), must not be
counted as a node's capacity or move the pool, must not be deleted by the controller, and with
--cloud=azure its prefix must never reach the NIC.

Also here, because it is the same cheap harness: after an API-server outage the controller's
watches are back within seconds (their reconnect backoff is capped at 4 s).

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from pathlib import Path

import pytest

from azure_mock import mock_fixture, provider_id, subnet_id, topology_with_subnets
from controller_harness import (API_VERSION, GROUP_PATH, POOL_LABEL, ControllerProcess, KubeApi,
                                condition, phase, poll)
from test_controller import api  # noqa: F401 (the fixture: CRDs applied, controller built)

TRUST_SUBNET = "10.242.0.0/24"  # VMs trust-0..trust-3; primaries 10.242.0.4..7 (first /28)
TOPOLOGY = topology_with_subnets(
    [{"name": "trust", "prefix": TRUST_SUBNET, "vms": 4, "vmPrefix": "trust"}],
    address_prefixes=["10.242.0.0/16"])

tmock = mock_fixture("--async-delay-ms", "20", "--seed", "7070", topology_doc=TOPOLOGY)




def block_name(subnet: str, cidr: str) -> str:
    """The name the CRD requires: <podSubnet>-<cidr with '.', ':' and '/' as '-'>."""
    return f"{subnet}-" + cidr.replace(".", "-").replace(":", "-").replace("/", "-")


def create_block(api: KubeApi, subnet: str, cidr: str, node: str) -> str:
    name = block_name(subnet, cidr)
    api.ok("POST", f"{GROUP_PATH}/ipblocks", {
        "apiVersion": API_VERSION, "kind": "IPBlock",
        "metadata": {"name": name},
        "spec": {"podSubnet": subnet, "cidr": cidr, "nodeName": node}})
    return name


def get_block(api: KubeApi, name: str) -> dict | None:
    status, doc = api.request("GET", f"{GROUP_PATH}/ipblocks/{name}")
    return doc if status == 200 else None


class BlockHistory:
    """Every version of every IPBlock from a resourceVersion on, from a watch on its own thread:
    'never Ready' is then a statement about all versions, not about the moments polled."""

    def __init__(self, api: KubeApi):
        self.api = api
        self.versions: dict[str, list[dict]] = {}
        self.stop = threading.Event()
        _, self.rv = api.list(f"{GROUP_PATH}/ipblocks")
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                for event in self.api.watch(f"{GROUP_PATH}/ipblocks", self.rv, self.stop):
                    obj = event.get("object") or {}
                    self.rv = obj.get("metadata", {}).get("resourceVersion", self.rv)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.versions.setdefault(obj["metadata"]["name"], []).append(obj)
        except BaseException as e:  # noqa: BLE001 (reported by close())
            self.error = e

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert self.error is None, self.error


def wait_invalid(api: KubeApi, name: str, reason: str, mentions: list[str]) -> dict:
    def refused():
        b = get_block(api, name)
        c = condition(b, "Invalid") if b else None
        return c if c and c["status"] == "True" else None
    c = poll(f"{name}: Invalid=True", refused, 30,
             describe=lambda: str((get_block(api, name) or {}).get("status")))
    assert c["reason"] == reason, c
    assert "spec." in c["message"], c
    for text in mentions:
        assert text in c["message"], (text, c)
    events = poll(f"a Warning event about {name}",
                  lambda: [e for e in api.events_about("IPBlock", name)
                           if e.get("type") == "Warning" and e.get("reason") == reason], 30)
    assert len(events) == 1, events
    return c


class Pool:
    """One test's PodSubnet, nodes and controller; close() leaves nothing behind."""

    def __init__(self, api: KubeApi, workdir: Path, kubeconfig: Path, mock=None):
        self.api = api
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.mock = mock
        self.subnets: list[str] = []
        self.nodes: list[str] = []
        self.blocks: list[str] = []  # made by the test (the "hostile" ones)
        self.controller: ControllerProcess | None = None

    def start_controller(self, cloud: str) -> ControllerProcess:
        self.controller = ControllerProcess(
            self.workdir / "ctl", self.kubeconfig, mock=self.mock, cloud=cloud,
            identity="trust", leader_elect=False, extra=("--nic-orphan-grace-seconds", "5"))
        self.controller.start().wait_ready()
        return self.controller

    def add_node(self, name: str, label: str, azure: bool) -> None:
        self.nodes.append(name)
        self.api.create_node(name, {POOL_LABEL: label}, provider_id(name) if azure else None)

    def own_blocks(self, node: str) -> list[dict]:
        return [b for b in self.api.blocks(set(self.subnets))
                if b["spec"]["nodeName"] == node and b["metadata"]["name"] not in self.blocks]

    def wait_ready_blocks(self, node: str, count: int) -> list[dict]:
        def ready():
            mine = self.own_blocks(node)
            return len(mine) == count and all(phase(b) == "Ready" for b in mine) and mine
        return poll(f"{node} has {count} Ready block(s)", ready, 60,
                    describe=lambda: self.controller.tail(20) if self.controller else "")

    def close(self) -> None:
        try:
            for name in self.blocks:  # the admin deletes the refused blocks
                self.api.ok("DELETE", f"{GROUP_PATH}/ipblocks/{name}", allow=(404,))
            for n in self.nodes:
                self.api.delete_node(n)
            if self.controller and self.controller.running():
                # The nodes are gone: the controller removes agent-drain itself, takes the
                # prefixes off the NICs and lets the blocks go.
                poll("every block of the test gone",
                     lambda: not self.api.blocks(set(self.subnets) | {"e2e-ghost"}), 60,
                     describe=lambda: self.controller.tail(20))
                if self.mock:
                    poll("no prefix left on the trust NICs",
                         lambda: not any(p for nic, p in self.mock.nic_prefixes().items()
                                         if nic.startswith("trust-")), 60)
        finally:
            for s in self.subnets:
                self.api.delete_podsubnet(s)
            if self.controller:
                assert self.controller.stop() == 0, self.controller.tail()


@pytest.fixture
def pool(api, kube, tmp_path):
    p = Pool(api, tmp_path, kube.kubeconfig)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def azure_pool(api, kube, tmp_path, tmock):
    p = Pool(api, tmp_path, kube.kubeconfig, mock=tmock)
    try:
        yield p
    finally:
        p.close()


def test_hostile_blocks_are_refused_reported_and_never_used(pool, api):
    subnet = "e2e-trust-plain"
    api.create_podsubnet(subnet, {"cidr": "10.252.0.0/24", "blockPrefixLength": 28,
                                  "reservedCIDRs": ["10.252.0.224/28"], "minFreeIPsPerNode": 8,
                                  "nodeSelector": {"matchLabels": {POOL_LABEL: "trust-plain"}}})
    pool.subnets.append(subnet)
    pool.start_controller("none")
    pool.add_node("trust-plain-a", "trust-plain", azure=False)
    pool.add_node("trust-plain-b", "trust-plain", azure=False)
    a_block = pool.wait_ready_blocks("trust-plain-a", 1)[0]
    pool.wait_ready_blocks("trust-plain-b", 1)
    a_cidr = a_block["spec"]["cidr"]
    for b in pool.own_blocks("trust-plain-a"):
        assert "vnetipam.io/agent-drain" in b["metadata"]["finalizers"], b["metadata"]
    poll("the PodSubnet counts 2 blocks",
         lambda: (api.podsubnet(subnet).get("status") or {}).get("allocatedBlocks") == 2, 30)

    history = BlockHistory(api)
    # The /27 that holds node a's /28, given to node b; the others for node b too. Node b's own
    # block may be the other half of that /27: the message names whichever the check met first.
    wide = str(ipaddress.ip_network(a_cidr).supernet(new_prefix=27))
    inside_wide = [b["metadata"]["name"] for n in ("trust-plain-a", "trust-plain-b")
                   for b in pool.own_blocks(n)
                   if ipaddress.ip_network(b["spec"]["cidr"]).subnet_of(ipaddress.ip_network(wide))]
    assert a_block["metadata"]["name"] in inside_wide
    cases = [
        (wide, subnet, "Overlap", ["spec.cidr", "overlaps IPBlock"]),
        ("10.9.0.0/16", subnet, "OutsidePodSubnet", ["10.252.0.0/24", "spec.cidr"]),
        ("10.252.0.224/28", subnet, "ReservedRange", ["reservedCIDRs"]),
        ("10.252.0.200/29", subnet, "WrongPrefixLength", ["blockPrefixLength 28"]),
        ("10.252.0.176/28", "e2e-ghost", "UnknownPodSubnet", ["spec.podSubnet", "e2e-ghost"]),
    ]
    for cidr, podsubnet, _, _ in cases:
        pool.blocks.append(create_block(api, podsubnet, cidr, "trust-plain-b"))
    for (cidr, podsubnet, reason, mentions), name in zip(cases, pool.blocks):
        c = wait_invalid(api, name, reason, mentions)
        if reason == "Overlap":
            assert [n for n in inside_wide if f'"{n}"' in c["message"]], (inside_wide, c)

    # A barrier: a third node joins and gets its block, so the controller has decided every node
    # again since the refused blocks appeared.
    pool.add_node("trust-plain-c", "trust-plain", azure=False)
    pool.wait_ready_blocks("trust-plain-c", 1)
    assert len(pool.own_blocks("trust-plain-b")) == 1, "node b's refused blocks changed its count"
    poll("the PodSubnet counts 3 blocks (a refused block takes no CIDR of the pool)",
         lambda: (api.podsubnet(subnet).get("status") or {}).get("allocatedBlocks") == 3, 30,
         describe=lambda: str(api.podsubnet(subnet).get("status")))
    history.close()

    for name in pool.blocks:
        versions = history.versions.get(name, [])
        assert versions, f"the watch never saw {name}"
        assert not [v for v in versions if phase(v) in ("Ready", "Programmed")], versions[-1]
        assert not [v for v in versions if v["metadata"].get("deletionTimestamp")], \
            f"the controller deleted {name}"
        assert get_block(api, name) is not None, f"{name} is gone"


def test_hostile_blocks_never_reach_the_nic(azure_pool, api, tmock):
    subnet = "e2e-trust-azure"
    api.create_podsubnet(subnet, {"azureSubnetID": subnet_id("trust"), "blockPrefixLength": 28,
                                  "reservedCIDRs": ["10.242.0.16/28"], "minFreeIPsPerNode": 8,
                                  "releaseDelaySeconds": 1,
                                  "nodeSelector": {"matchLabels": {POOL_LABEL: "trust-azure"}}})
    azure_pool.subnets.append(subnet)
    ctl = azure_pool.start_controller("azure")
    node = "trust-0"
    azure_pool.add_node(node, "trust-azure", azure=True)
    legit = azure_pool.wait_ready_blocks(node, 1)[0]
    nic = f"{node}-nic"
    poll("the block's prefix on the NIC",
         lambda: tmock.nic_prefixes()[nic] == [legit["spec"]["cidr"]], 30)
    assert set(legit["metadata"]["finalizers"]) == {"vnetipam.io/agent-drain",
                                                    "vnetipam.io/nic-release"}

    # Sample the NIC on a thread for the whole window; together with the barrier below (a NIC PUT
    # made after the refused blocks were known), no refused prefix can have been on it.
    seen: set[str] = set()
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen.update(tmock.nic_prefixes()[nic])
            time.sleep(0.05)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    legit_cidr = legit["spec"]["cidr"]  # 10.242.0.32/28: the first block past the reserved ones
    base = legit_cidr.rsplit(".", 1)[0]
    cases = [
        (f"{base}.32/27", "Overlap", [legit["metadata"]["name"]]),
        ("10.243.0.0/16", "OutsidePodSubnet", ["10.242.0.0/24"]),
        ("10.242.0.16/28", "ReservedRange", ["reservedCIDRs"]),
        ("10.242.0.240/28", "ReservedRange", ["Azure"]),
        ("10.242.0.128/26", "WrongPrefixLength", ["blockPrefixLength 28"]),
    ]
    assert legit_cidr == f"{base}.32/28", legit_cidr
    for cidr, _, _ in cases:
        azure_pool.blocks.append(create_block(api, subnet, cidr, node))
    for (cidr, reason, mentions), name in zip(cases, azure_pool.blocks):
        wait_invalid(api, name, reason, mentions)

    # Barrier: the node's usage rises, so the controller adds a second block and PUTs the NIC
    # with the full prefix set it wants: the refused ones are not in it.
    api.report_used(legit["metadata"]["name"], 12)
    blocks = azure_pool.wait_ready_blocks(node, 2)
    want = {b["spec"]["cidr"] for b in blocks}
    poll("the NIC holds exactly the accepted blocks",
         lambda: set(tmock.nic_prefixes()[nic]) == want, 30)
    stop.set()
    sampler.join(timeout=10)
    refused = {cidr for cidr, _, _ in cases}
    assert not seen & refused, f"a refused prefix reached the NIC: {sorted(seen & refused)}"
    assert seen <= want, seen
    for name in azure_pool.blocks:
        b = get_block(api, name)
        assert b is not None and not b["metadata"].get("deletionTimestamp"), name
        assert phase(b) not in ("Ready", "Programmed"), b["status"]
        assert not (b.get("status") or {}).get("nic"), b["status"]
    assert ctl.running()


def test_the_controller_is_current_within_seconds_of_an_api_server_outage(pool, api, kube):
    """The controller's watches reconnect with a backoff capped at 4 s: after 50 s without an API
    server (lib/kube's default 30 s cap would put the next attempt up to ~20 s after its return),
    a node that joins then gets its block within seconds."""
    subnet = "e2e-trust-outage"
    api.create_podsubnet(subnet, {"cidr": "10.253.0.0/24", "blockPrefixLength": 28,
                                  "minFreeIPsPerNode": 8,
                                  "nodeSelector": {"matchLabels": {POOL_LABEL: "trust-outage"}}})
    pool.subnets.append(subnet)
    pool.start_controller("none")
    pool.add_node("trust-outage-a", "trust-outage", azure=False)
    pool.wait_ready_blocks("trust-outage-a", 1)

    kube.apiserver.stop()
    try:
        time.sleep(50)  # the outage itself (its length is the point), not a synchronisation
    finally:
        kube.restart_apiserver()
    # /readyz passes a moment before the CRDs' storage serves (429 "storage is (re)initializing"):
    # the clock starts when IPBlocks can be listed, as nothing can be done before.
    poll("IPBlocks served again",
         lambda: api.request("GET", f"{GROUP_PATH}/ipblocks?limit=1")[0] == 200, 60)
    back = time.monotonic()
    pool.add_node("trust-outage-b", "trust-outage", azure=False)
    pool.wait_ready_blocks("trust-outage-b", 1)
    took = time.monotonic() - back
    print(f"\nafter a 50 s API-server outage: a new node's block Ready {took:.1f} s after /readyz")
    assert took < 6, f"the controller took {took:.1f} s to notice the API server was back"
    assert pool.controller.running()
