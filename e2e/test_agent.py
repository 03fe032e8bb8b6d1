"""vnet-ipam-agent against the real API server.

Each test runs the agent in the root namespace (it only touches the files it is given: a temp
socket, state dir and CNI config dir, and a loopback metrics port), with its own node name so the
tests do not see each other's IPBlocks. The test plays the controller: it creates an IPBlock for
the node and writes its status with server-side apply under the controller's field manager, as
the controller does. Requests go over the agent's unix socket with a tiny client speaking the
protocol of node-agent/protocol.h.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from built import built
from cluster import Process, free_port
from polling import poll
from crd_helpers import API_VERSION, CRD_DIR, CRD_NAMES, block_name

CONTROLLER_FIELD_MANAGER = "vnet-ipam-controller"  # api/constants.h
AGENT_FIELD_MANAGER = "vnet-ipam-agent"
SUBNET = "agent-e2e"
TIMEOUT = 30.0


# ---- the protocol --------------------------------------------------------------------------

class AgentClient:
    """One connection to the agent; one JSON line per request and per answer."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""

    def call(self, op: str, **fields) -> dict:
        self.sock.sendall((json.dumps({"v": 1, "op": op, **fields}) + "\n").encode())
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the agent closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        self.sock.close()


def call(path: str, op: str, **fields) -> dict:
    client = AgentClient(path)
    try:
        return client.call(op, **fields)
    finally:
        client.close()


def allocate(path: str, cid: str, pod: str = "", ns: str = "default", uid: str = "",
             families: list[int] | None = None) -> dict:
    """families: what the client takes ([4], [6], [4, 6]); None sends none, as the previous
    release's plugin does (the agent answers IPv4 alone)."""
    fields = {"containerID": cid, "ifName": "eth0"}
    if families is not None:
        fields["families"] = families
    if pod:
        fields |= {"podNamespace": ns, "podName": pod}
    if uid:
        fields["podUID"] = uid
    return call(path, "allocate", **fields)


def release(path: str, cid: str) -> dict:
    return call(path, "release", containerID=cid, ifName="eth0")


def address(answer: dict) -> str:
    assert answer["ok"], answer
    assert len(answer["allocations"]) == 1, answer
    return answer["allocations"][0]["address"]


def held(path: str) -> dict[str, str]:
    """containerID -> address of every allocation the agent lists."""
    answer = call(path, "list")
    assert answer["ok"], answer
    return {a["containerID"]: a["address"] for a in answer.get("allocations", [])}


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crds(kube):
    kube.kubectl("apply", "-f", str(CRD_DIR))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{n}" for n in CRD_NAMES))
    return kube


class Agent:
    """The agent binary for one node, with its own socket, state and CNI config directories."""

    def __init__(self, kube, workdir: Path, node: str, *extra: str, netns: str | None = None,
                 kubeconfig: Path | None = None):
        self.kube = kube
        self.netns = netns  # run inside this `ip netns` namespace (its host namespace)
        self.kubeconfig = kubeconfig or kube.kubeconfig
        self.node = node
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = str(workdir / "run" / "agent.sock")
        self.state = workdir / "state"
        self.conf_dir = workdir / "net.d"
        self.conf = self.conf_dir / "10-vnet-ipam.conflist"
        self.extra = list(extra)
        self.proc: Process | None = None
        self.metrics_port = 0

    def start(self, wait: bool = True) -> "Agent":
        self.metrics_port = free_port()
        argv = [*(["ip", "netns", "exec", self.netns] if self.netns else []),
                str(built("node-agent/vnet-ipam-agent")),
                "--kubeconfig", str(self.kubeconfig),
                "--node-name", self.node,
                "--socket", self.socket,
                "--state-dir", str(self.state),
                "--cni-conf-dir", str(self.conf_dir),
                "--metrics-address", f"127.0.0.1:{self.metrics_port}",
                "--usage-report-interval-ms", "100",
                "--log-level", "debug",
                *self.extra]
        self.proc = Process(f"agent-{self.node}", argv, self.dir / "agent.log")
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self) -> None:
        def serving():
            assert self.proc.running(), f"the agent exited:\n{self.proc.tail()}"
            if not self.conf.exists():
                return False
            try:  # a killed agent's config stays behind: also ask the agent itself
                return call(self.socket, "status").get("ready")
            except OSError:
                return False
        poll(f"agent on {self.node} to write its CNI config", serving, TIMEOUT, 0.05)

    def terminate(self) -> int:
        """SIGTERM; returns the exit code."""
        self.proc.popen.send_signal(signal.SIGTERM)
        return self.proc.popen.wait(TIMEOUT)

    def kill(self) -> None:
        self.proc.popen.send_signal(signal.SIGKILL)
        self.proc.popen.wait(TIMEOUT)

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}",
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def log(self) -> str:
        return (self.dir / "agent.log").read_text(errors="replace")


@pytest.fixture
def node(crds, tmp_path):
    """A fresh node name, its agent (not started) and the blocks created for it (removed after)."""
    name = f"n1-{uuid.uuid4().hex[:6]}"
    created: list[str] = []
    agents: list[Agent] = []

    class Node:
        def __init__(self):
            self.name = name

        def agent(self, *extra: str, **kw) -> Agent:
            a = Agent(crds, tmp_path / f"agent{len(agents)}", name, *extra, **kw)
            agents.append(a)
            return a

        def block(self, cidr: str, phase: str = "Ready") -> str:
            """An IPBlock for this node, its status written as the controller writes it."""
            block = block_name(SUBNET, cidr)
            crds.kubectl("create", "-f", "-", input=json.dumps({
                "apiVersion": API_VERSION, "kind": "IPBlock", "metadata": {"name": block},
                "spec": {"podSubnet": SUBNET, "cidr": cidr, "nodeName": name}}))
            created.append(block)
            bits = 128 if ":" in cidr else 32
            self.set_phase(block, phase, capacity=2 ** (bits - int(cidr.split("/")[1])))
            return block

        def set_phase(self, block: str, phase: str, capacity: int | None = None) -> None:
            status: dict = {"phase": phase}
            if capacity is not None:
                status["capacity"] = capacity
            crds.kubectl("apply", "--server-side", f"--field-manager={CONTROLLER_FIELD_MANAGER}",
                         "--subresource=status", "-f", "-", input=json.dumps({
                             "apiVersion": API_VERSION, "kind": "IPBlock",
                             "metadata": {"name": block}, "status": status}))

        def get(self, block: str) -> dict:
            return json.loads(crds.kubectl("get", "ipblock", block, "-o", "json",
                                           "--show-managed-fields").stdout)

        def used(self, block: str):
            return self.get(block).get("status", {}).get("used")

    yield Node()
    for a in agents:
        if a.proc and a.proc.running():
            a.kill()
    for block in created:
        crds.kubectl("delete", "ipblock", block, "--ignore-not-found", "--wait=false")


# ---- tests ---------------------------------------------------------------------------------

def test_cni_config_appears_once_serving_and_goes_on_sigterm(node):
    node.block("10.250.0.0/28")
    agent = node.agent("--host-veth-prefix", "cali", "--mtu", "1450").start()
    assert json.loads(agent.conf.read_text()) == {
        "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "vnet-ipam",
        "plugins": [
            {"type": "vnet-transparent", "hostVethPrefix": "cali", "mtu": 1450,
             "ipam": {"type": "vnet-ipam", "socket": agent.socket}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ]}
    assert stat.S_IMODE(os.stat(agent.socket).st_mode) == 0o600
    assert call(agent.socket, "status") == {"v": 1, "ok": True, "ready": True, "freeIPs": 16}
    assert agent.http("/readyz")[0] == 200
    assert agent.http("/healthz")[0] == 200
    status, metrics = agent.http("/metrics")
    assert status == 200
    for name in ("vnetipam_agent_allocations_total", "vnetipam_agent_releases_total",
                 "vnetipam_agent_block_free_ips", "vnetipam_agent_allocation_duration_seconds",
                 "vnetipam_agent_gc_releases_total", "vnetipam_agent_journal_fsync_duration_seconds",
                 "vnetipam_agent_blocks"):
        assert f"# TYPE {name} " in metrics, name
    assert (f'vnetipam_agent_block_free_ips{{block="{block_name(SUBNET, "10.250.0.0/28")}",'
            'family="ipv4"} 16') \
        in metrics
    lint = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "metrics"],
                          input=metrics, capture_output=True, text=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    assert agent.terminate() == 0
    assert not agent.conf.exists()
    assert not os.path.exists(agent.socket)


def test_allocate_release_and_status_used_follows(node):
    block = node.block("10.250.1.0/28")
    agent = node.agent().start()
    first = allocate(agent.socket, "c1", "p1")
    assert first["allocations"][0] | {} == {
        "containerID": "c1", "ifName": "eth0", "podNamespace": "default", "podName": "p1",
        "address": "10.250.1.0", "block": "10.250.1.0/28", "blockName": block,
        "gateway": "169.254.1.1"}
    assert address(allocate(agent.socket, "c1", "p1")) == "10.250.1.0", "a retried ADD"
    by_container = {f"c{i}": address(allocate(agent.socket, f"c{i}")) for i in range(2, 5)}
    addresses = set(by_container.values())
    address_of_c2 = by_container["c2"]
    assert len(addresses) == 3 and "10.250.1.0" not in addresses
    poll("status.used == 4", lambda: node.used(block) == 4, TIMEOUT, 0.05)

    assert release(agent.socket, "c2")["ok"]
    assert release(agent.socket, "c2") == {"v": 1, "ok": True}, "DEL is idempotent"
    poll("status.used == 3", lambda: node.used(block) == 3, TIMEOUT, 0.05)
    assert call(agent.socket, "check", containerID="c2", ifName="eth0")["code"] == 3

    # The agent owns status.used, status.allocations (the three addresses it still holds, with
    # their owners) and its own condition (DataplaneSynced, from its first dataplane check) only:
    # the controller's phase and capacity are untouched. used and allocations travel in one
    # apply, so the object that shows used == 3 lists exactly the three held addresses.
    obj = node.get(block)
    assert obj["status"]["phase"] == "Ready" and obj["status"]["capacity"] == 16
    assert sorted(a["containerID"] for a in obj["status"]["allocations"]) == ["c1", "c3", "c4"]
    assert {a["address"] for a in obj["status"]["allocations"]} == {"10.250.1.0"} | (
        addresses - {address_of_c2})
    owners = {m["manager"]: m for m in obj["metadata"]["managedFields"]
              if m.get("subresource") == "status"}
    owned = owners[AGENT_FIELD_MANAGER]["fieldsV1"]["f:status"]
    assert set(owned) == {"f:used", "f:allocations", "f:conditions"}
    assert set(owned["f:conditions"]) == {'k:{"type":"DataplaneSynced"}'}
    assert "f:phase" in owners[CONTROLLER_FIELD_MANAGER]["fieldsV1"]["f:status"]


def test_only_ready_blocks_serve_and_a_releasing_block_gets_nothing_new(node):
    block = node.block("10.250.2.0/30", phase="Programmed")
    agent = node.agent().start()
    answer = allocate(agent.socket, "c1")
    assert not answer["ok"] and answer["code"] == 11, answer
    node.set_phase(block, "Ready")
    poll("the block to become usable", lambda: allocate(agent.socket, "c1")["ok"], TIMEOUT, 0.05)
    node.set_phase(block, "Releasing")
    poll("the releasing block to refuse",
         lambda: allocate(agent.socket, "c2").get("code") == 11, TIMEOUT, 0.05)
    assert held(agent.socket) == {"c1": "10.250.2.0"}, "its allocation is kept"


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_restart_keeps_allocations_and_cooldown(node, stop):
    node.block("10.250.3.0/30")
    agent = node.agent("--release-cooldown-seconds", "600").start()
    a1 = address(allocate(agent.socket, "c1"))
    a2 = address(allocate(agent.socket, "c2"))
    assert release(agent.socket, "c2")["ok"]
    before = held(agent.socket)
    if stop == "sigterm":
        assert agent.terminate() == 0
    else:
        agent.kill()
        assert agent.conf.exists(), "a killed agent leaves its config behind"
    agent.start()
    assert held(agent.socket) == before
    assert address(allocate(agent.socket, "c1")) == a1, "a retried ADD after the restart"
    # The released address is still cooling: the two others go, then the node is exhausted.
    fresh = {address(allocate(agent.socket, f"n{i}")) for i in range(2)}
    assert a2 not in fresh and a1 not in fresh
    assert allocate(agent.socket, "n9")["code"] == 11


def test_exhausted_node_answers_try_again_later_at_once(node):
    node.block("10.250.4.0/30")
    agent = node.agent().start()
    for i in range(4):
        address(allocate(agent.socket, f"c{i}"))
    started = time.monotonic()
    answer = allocate(agent.socket, "c9")
    elapsed = time.monotonic() - started
    assert not answer["ok"] and answer["code"] == 11, answer
    assert "no free address" in answer["msg"]
    assert elapsed < 0.5, f"took {elapsed:.3f} s"
    status, metrics = agent.http("/metrics")
    assert 'vnetipam_agent_allocation_failures_total{code="11"} 1' in metrics


def test_gc_releases_allocations_of_pods_that_do_not_exist(node, crds):
    node.block("10.250.5.0/29")
    pod = f"alive-{uuid.uuid4().hex[:6]}"
    crds.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "default"},
        "spec": {"nodeName": node.name, "containers": [{"name": "c", "image": "pause"}]}}))
    try:
        agent = node.agent("--gc-grace-seconds", "2").start()
        alive = address(allocate(agent.socket, "c-alive", pod))
        address(allocate(agent.socket, "c-gone", "never-existed"))
        address(allocate(agent.socket, "c-unlisted"))
        address(allocate(agent.socket, "c-listed"))
        marked = call(agent.socket, "gc", validAttachments=[
            {"containerID": c, "ifName": "eth0"} for c in ("c-alive", "c-gone", "c-listed")])
        assert {a["containerID"] for a in marked["allocations"]} == {"c-unlisted"}
        poll("GC to release c-gone and c-unlisted",
             lambda: set(held(agent.socket)) == {"c-alive", "c-listed"}, 20, 0.05)
        assert held(agent.socket)["c-alive"] == alive
        log = agent.log()
        assert "GC: released" in log
        assert "pod default/never-existed no longer exists on this node" in log
        assert "did not list it as a valid attachment" in log
        metrics = agent.http("/metrics")[1]
        assert 'vnetipam_agent_releases_total{reason="gc_pod_gone"} 1' in metrics
        assert 'vnetipam_agent_releases_total{reason="gc_not_attached"} 1' in metrics
    finally:
        crds.kubectl("delete", "pod", pod, "-n", "default", "--grace-period=0", "--force",
                     "--wait=false", check=False)


def create_pod(kube, node: str, name: str) -> str:
    """A Pod bound to `node` (no kubelet runs: it stays Pending, which the agent does not mind);
    returns its metadata.uid."""
    created = kube.kubectl("create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]}}))
    return json.loads(created.stdout)["metadata"]["uid"]


def test_gc_releases_the_allocation_of_a_recreated_pod(node, crds):
    """A StatefulSet-style pod deleted and recreated under the same name must not shield the old
    pod's allocation: with a recorded podUID the agent compares UIDs, not just namespace/name."""
    node.block("10.250.6.0/29")
    pod = f"web-{uuid.uuid4().hex[:6]}"
    uid_a = create_pod(crds, node.name, pod)
    try:
        # Grace long enough that the delete + create below fit well inside it: the release must
        # come from the UID comparison, not from the moment the name was absent.
        agent = node.agent("--gc-grace-seconds", "5").start()
        old = address(allocate(agent.socket, "c-old", pod, uid=uid_a))
        listed = {a["containerID"]: a for a in call(agent.socket, "list")["allocations"]}
        assert listed["c-old"]["podUID"] == uid_a

        # No kubelet: a forced delete removes the object at once (kubectl waits for it).
        crds.kubectl("delete", "pod", pod, "-n", "default", "--grace-period=0", "--force")
        uid_b = create_pod(crds, node.name, pod)
        assert uid_b != uid_a
        new = address(allocate(agent.socket, "c-new", pod, uid=uid_b))
        legacy = address(allocate(agent.socket, "c-legacy", pod))  # an older plugin: no podUID
        # Allocated last, for a pod that never existed: once GC released it, any mark the agent
        # put on c-new or c-legacy (allocated before it) has outlived the grace period as well.
        address(allocate(agent.socket, "c-sentinel", "never-existed"))

        poll("GC to release c-old (recreated pod) and c-sentinel (no pod)",
             lambda: set(held(agent.socket)) == {"c-new", "c-legacy"}, 30, 0.05,
             describe=lambda: f"held {held(agent.socket)}\n{agent.log()[-2000:]}")
        assert held(agent.socket) == {"c-new": new, "c-legacy": legacy}
        listed = {a["containerID"]: a for a in call(agent.socket, "list")["allocations"]}
        assert listed["c-new"]["podUID"] == uid_b
        assert "podUID" not in listed["c-legacy"]
        log = agent.log()
        assert (f"GC: released {old} of container c-old interface eth0 (pod default/{pod}): "
                f"pod default/{pod} was recreated (uid {uid_b}, allocation's {uid_a})") in log, log
        metrics = agent.http("/metrics")[1]
        assert 'vnetipam_agent_releases_total{reason="gc_pod_gone"} 2' in metrics

        # The recorded UID survives a restart (journal), and the live pod's allocation stays.
        assert agent.terminate() == 0
        agent.start()
        listed = {a["containerID"]: a for a in call(agent.socket, "list")["allocations"]}
        assert listed["c-new"]["podUID"] == uid_b and listed["c-new"]["address"] == new
    finally:
        crds.kubectl("delete", "pod", pod, "-n", "default", "--grace-period=0", "--force",
                     "--wait=false", check=False)


def test_sigkill_during_500_concurrent_allocate_release(node):
    """Kill -9 mid-churn, restart: acknowledged allocations held, acknowledged releases gone,
    and no address assigned twice."""
    node.block("10.250.6.0/24")
    agent = node.agent("--release-cooldown-seconds", "0").start()
    lock = threading.Lock()
    acked: dict[str, str] = {}        # containerID -> address, allocation acknowledged
    released: set[str] = set()        # release acknowledged (after its allocation)
    unknown: set[str] = set()         # a request in flight when the agent died
    done = threading.Event()
    ops = [0]

    def plan(w: int) -> list[tuple[str, str]]:
        """25 operations: allocate every container, release every other one right after."""
        steps: list[tuple[str, str]] = []
        i = 0
        while len(steps) < 25:
            cid = f"w{w}-{i}"
            steps.append(("allocate", cid))
            if i % 2 == 0 and len(steps) < 25:
                steps.append(("release", cid))
            i += 1
        return steps

    def worker(w: int) -> None:
        client = None
        for op, cid in plan(w):
            if done.is_set():
                return
            try:
                if client is None:
                    client = AgentClient(agent.socket)
                answer = client.call(op, containerID=cid, ifName="eth0")
            except (OSError, ConnectionError, ValueError):
                with lock:
                    unknown.add(cid)
                done.set()
                return
            assert answer["ok"], answer
            with lock:
                ops[0] += 1
                if op == "allocate":
                    acked[cid] = answer["allocations"][0]["address"]
                else:
                    released.add(cid)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(20)]  # 500 ops
    for t in threads:
        t.start()
    poll("200 acknowledged operations", lambda: ops[0] >= 200, TIMEOUT, interval=0.001)
    agent.kill()
    done.set()
    for t in threads:
        t.join(TIMEOUT)
    assert ops[0] < 500, "the kill must land mid-churn"

    agent.start()
    after = held(agent.socket)
    addresses = list(after.values())
    assert len(addresses) == len(set(addresses)), "an address assigned twice"
    for cid, addr in acked.items():
        if cid in released:
            assert cid not in after, f"{cid}: acknowledged release came back"
        elif cid not in unknown:
            assert after.get(cid) == addr, f"{cid}: acknowledged allocation {addr} lost"
    # New allocations never collide with what is held.
    for i in range(20):
        new = address(allocate(agent.socket, f"after-{i}"))
        assert new not in addresses
        addresses.append(new)


# ---- dataplane drift and Events -------------------------------------------------------------

def events_about(kube, kind: str, name: str, ns: str = "default") -> list[dict]:
    """events.k8s.io Events regarding one object, oldest first."""
    doc = json.loads(kube.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json").stdout)
    return [e for e in doc["items"]
            if e["regarding"]["kind"] == kind and e["regarding"]["name"] == name]


def metric(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def test_a_pod_whose_allocation_finds_no_free_address_gets_a_warning_event(node, crds):
    node.block("10.250.7.0/30")
    agent = node.agent().start()
    for i in range(4):
        address(allocate(agent.socket, f"c{i}", f"p{i}"))
    pod = f"starved-{uuid.uuid4().hex[:6]}"
    assert allocate(agent.socket, "c-starved", pod)["code"] == 11
    poll("a NoFreeAddress Event on the pod",
         lambda: [e for e in events_about(crds, "Pod", pod) if e["reason"] == "NoFreeAddress"],
         TIMEOUT, 0.1)
    event = events_about(crds, "Pod", pod)[0]
    assert event["type"] == "Warning" and event["reportingController"] == "vnetipam.io/agent"
    assert f"no free pod address on node {node.name}" in event["note"]


class ApiInNetns:
    """127.0.0.1:<port> inside a namespace -> the API server on the root namespace's loopback, so
    an agent running in a node namespace (as on a node, hostNetwork) reaches it at the address its
    serving certificate names."""

    def __init__(self, netns: Path, target_port: int):
        from netlab import Forwarder, _CLONE_NEWNET, _libc
        self.target_port = target_port
        out: dict = {}

        def listen() -> None:  # a socket belongs to the namespace of the thread that made it
            fd = os.open(netns, os.O_RDONLY)
            try:
                assert _libc.setns(fd, _CLONE_NEWNET) == 0, "setns"
            finally:
                os.close(fd)
            out["sock"] = socket.create_server(("127.0.0.1", 0))
        t = threading.Thread(target=listen)
        t.start()
        t.join()
        self.listener = out["sock"]
        self.port = self.listener.getsockname()[1]
        self._pump = Forwarder._pump
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_dataplane_drift_of_a_wired_pod_is_reported_and_clears(node, crds, tmp_path):
    """The agent in a node namespace serves a pod wired by the real plugins; the pod's host route
    deleted by hand makes DataplaneSynced False naming the address, the drift gauge 1 and a
    Warning Event on the Node; the route put back makes it True again, with a Normal Event. A
    route to an address of the block nobody holds is reported stale until it goes."""
    from netlab import REFERENCE_CNI_DIR, Forwarder, Lab
    block = node.block("10.250.8.0/28")
    with Lab() as lab:
        host = lab.add_node("node", "10.240.0.4")
        api = ApiInNetns(host.netns.path, int(crds.server.rsplit(":", 1)[1]))
        kubeconfig = tmp_path / "netns.kubeconfig"
        kubeconfig.write_text(Path(crds.kubeconfig).read_text().replace(
            crds.server, f"https://127.0.0.1:{api.port}"))
        # A 1 s check and a grace far longer than the test: drift is confirmed by two checks in
        # a row, never by age.
        agent = node.agent("--dataplane-check-interval-seconds", "1",
                           "--dataplane-grace-seconds", "3600",
                           netns=host.netns.name, kubeconfig=kubeconfig)
        metrics = None
        try:
            agent.start()
            metrics = Forwarder(host.netns.path, "127.0.0.1", agent.metrics_port)
            transparent = built("node-agent/cni/vnet-transparent")
            conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-transparent",
                    "hostVethPrefix": "vnet", "mtu": 1500,
                    "ipam": {"type": "vnet-ipam", "socket": agent.socket}}
            pod = lab.add_pod(host, "web")
            res = lab.cni(transparent, "ADD", pod, conf, cni_path=[transparent.parent,
                                                                    REFERENCE_CNI_DIR],
                          args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"})
            assert res.ok, res
            ip = res.ips()[0]
            veth = res.doc["interfaces"][0]["name"]

            def condition() -> dict:
                conds = node.get(block).get("status", {}).get("conditions", [])
                return next((c for c in conds if c["type"] == "DataplaneSynced"), {})

            def drift(kind: str) -> float | None:
                with urllib.request.urlopen(f"http://{metrics.address}/metrics", timeout=5) as r:
                    return metric(r.read().decode(),
                                  f'vnetipam_agent_dataplane_drift{{kind="{kind}"}}')

            poll("DataplaneSynced True", lambda: condition().get("status") == "True", TIMEOUT,
                 0.1, describe=lambda: repr(condition()))
            assert condition()["reason"] == "InSync"
            assert drift("missing_route") == 0

            host.netns.ip("route", "del", f"{ip}/32", "dev", veth)
            poll("DataplaneSynced False", lambda: condition().get("status") == "False", TIMEOUT,
                 0.1, describe=lambda: repr(condition()))
            c = condition()
            assert c["reason"] == "Drift"
            assert f"{ip} (pod default/web): no host route" in c["message"], c
            assert drift("missing_route") == 1 and drift("stale_route") == 0
            poll("a DataplaneDrift Event on the Node",
                 lambda: [e for e in events_about(crds, "Node", node.name)
                          if e["reason"] == "DataplaneDrift"], TIMEOUT, 0.1)
            warning = next(e for e in events_about(crds, "Node", node.name)
                           if e["reason"] == "DataplaneDrift")
            assert warning["type"] == "Warning" and ip in warning["note"], warning

            host.netns.ip("route", "add", f"{ip}/32", "dev", veth, "scope", "link",
                          "proto", "118")
            poll("DataplaneSynced True again", lambda: condition().get("status") == "True",
                 TIMEOUT, 0.1, describe=lambda: repr(condition()))
            assert drift("missing_route") == 0
            poll("a DataplaneInSync Event on the Node",
                 lambda: [e for e in events_about(crds, "Node", node.name)
                          if e["reason"] == "DataplaneInSync" and e["type"] == "Normal"],
                 TIMEOUT, 0.1)
            # A host route to an address of the block nobody holds is stale.
            stale = "10.250.8.13"
            assert stale != ip
            host.netns.ip("route", "add", f"{stale}/32", "dev", veth, "scope", "link")
            poll("a stale route reported", lambda: drift("stale_route") == 1, TIMEOUT, 0.1)
            c = condition()
            assert c["status"] == "False" and f"{stale}: stale host route via {veth}" in \
                c["message"], c
            host.netns.ip("route", "del", f"{stale}/32", "dev", veth)
            poll("DataplaneSynced True once more", lambda: condition().get("status") == "True",
                 TIMEOUT, 0.1, describe=lambda: repr(condition()))
            assert lab.cni(transparent, "DEL", pod, conf,
                           cni_path=[transparent.parent, REFERENCE_CNI_DIR]).ok
        finally:
            if agent.proc and agent.proc.running():
                assert agent.terminate() == 0
            if metrics:
                metrics.close()
            api.close()


# ---- an admin's release of leaked addresses (kubectl ipam release) --------------------------

def kubectl_ipam(kube, *args: str) -> subprocess.CompletedProcess:
    """The built plugin, as `kubectl ipam ARGS` runs it (docs/kubectl-ipam.md shows these; set
    VNETIPAM_E2E_SHOW_OUTPUT=1 and run pytest with -s to print them)."""
    result = subprocess.run([str(built("kubectl-ipam/kubectl-ipam")), *args,
                             "--kubeconfig", str(kube.kubeconfig)],
                            capture_output=True, text=True, timeout=120)
    if os.environ.get("VNETIPAM_E2E_SHOW_OUTPUT") == "1":
        print(f"\n$ kubectl ipam {' '.join(args)}   (exit {result.returncode})\n"
              f"{result.stdout}{result.stderr}")
    return result


def test_kubectl_ipam_release_mends_leaks_the_agent_proves_dead_and_refuses_the_rest(
        node, crds, tmp_path):
    """A stale sandbox of a live pod (its CNI DEL lost: the pod moved on to a newer allocation)
    and an allocation of a pod that is gone are leaks `kubectl ipam check` names from the
    allocations the agent publishes; `release --from-report` has the agent release them, while a
    request naming the wrong container is refused and --dry-run writes nothing."""
    pool = f"release-{uuid.uuid4().hex[:6]}"
    cidr = "10.250.9.0/29"
    block = block_name(pool, cidr)
    pod = f"web-{uuid.uuid4().hex[:6]}"
    # Its own Node (no kubelet) and PodSubnet selecting only it, so `check --podsubnet` looks at
    # this pool alone on an API server other suites share.
    crds.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": {"e2e-release": pool}}}))
    crds.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": API_VERSION, "kind": "PodSubnet", "metadata": {"name": pool},
        "spec": {"cidr": "10.250.9.0/24", "blockPrefixLength": 29,
                 "nodeSelector": {"matchLabels": {"e2e-release": pool}}}}))
    crds.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": API_VERSION, "kind": "IPBlock", "metadata": {"name": block},
        "spec": {"podSubnet": pool, "cidr": cidr, "nodeName": node.name}}))
    node.set_phase(block, "Ready", capacity=8)
    uid = create_pod(crds, node.name, pod)
    try:
        # GC would release the gone pod's allocation by itself: not within this test. No pod is
        # wired (no veth, no host route): the drift check must not confirm that within it either.
        agent = node.agent("--gc-grace-seconds", "3600", "--dataplane-grace-seconds",
                           "3600").start()
        old = address(allocate(agent.socket, "c-old", pod, uid=uid))
        current = address(allocate(agent.socket, "c-new", pod, uid=uid))
        gone = address(allocate(agent.socket, "c-gone", "never-existed"))
        crds.kubectl("patch", "pod", pod, "-n", "default", "--subresource=status",
                     "--type=merge", "-p", json.dumps({"status": {
                         "phase": "Running", "podIP": current, "podIPs": [{"ip": current}]}}))

        def published() -> dict[str, str]:
            status = node.get(block).get("status", {})
            return {a["containerID"]: a["address"] for a in status.get("allocations", [])}
        poll("the agent to publish its three allocations",
             lambda: published() == {"c-old": old, "c-new": current, "c-gone": gone},
             TIMEOUT, 0.1, describe=lambda: repr(published()))

        checked = kubectl_ipam(crds, "check", "--podsubnet", pool, "-o", "json")
        assert checked.returncode == 1, checked
        report = json.loads(checked.stdout)
        leaks = {f["allocation"]["containerID"]: f for f in report["findings"]
                 if "allocation" in f}
        assert set(leaks) == {"c-old", "c-gone"}, report
        assert leaks["c-old"]["check"] == "allocation-stale-sandbox"
        assert leaks["c-gone"]["check"] == "allocation-pod-gone"
        assert leaks["c-old"]["allocation"] == {
            "block": block, "node": node.name, "address": old, "containerID": "c-old",
            "ifName": "eth0", "podNamespace": "default", "podName": pod, "podUID": uid}
        report_file = tmp_path / "report.json"
        report_file.write_text(checked.stdout)

        # A request naming another container than the one holding the address is refused.
        wrong = dict(report, findings=[dict(leaks["c-old"], allocation=dict(
            leaks["c-old"]["allocation"], containerID="c-wrong"))])
        wrong_file = tmp_path / "wrong.json"
        wrong_file.write_text(json.dumps(wrong))
        refused = kubectl_ipam(crds, "release", "--from-report", str(wrong_file),
                               "--timeout", "30")
        assert refused.returncode == 1, refused
        assert (f"refused {old} (container c-wrong interface eth0) in block {block} on node "
                f"{node.name}: the address is held by container c-old interface eth0, not the "
                f"requested owner (OtherOwner)") in refused.stdout, refused
        assert set(held(agent.socket)) == {"c-old", "c-new", "c-gone"}
        assert "vnetipam.io/release" not in node.get(block)["metadata"].get("annotations", {})

        # --dry-run says what it would ask and writes nothing.
        version = node.get(block)["metadata"]["resourceVersion"]
        dry = kubectl_ipam(crds, "release", "--from-report", str(report_file), "--dry-run")
        assert dry.returncode == 0, dry
        assert (f"would ask the agent on node {node.name} to release {old} (container c-old "
                f"interface eth0) of pod default/{pod} from block {block}") in dry.stdout, dry
        assert "2 request(s) in 1 block(s); --dry-run: nothing written." in dry.stdout, dry
        after = node.get(block)
        assert after["metadata"]["resourceVersion"] == version
        assert set(held(agent.socket)) == {"c-old", "c-new", "c-gone"}

        released = kubectl_ipam(crds, "release", "--from-report", str(report_file),
                                "--timeout", "60")
        assert released.returncode == 0, released
        assert f"released {old} (container c-old interface eth0) in block {block}" in \
            released.stdout, released
        assert "(StaleSandbox)" in released.stdout and "(PodGone)" in released.stdout, released
        assert "2 released, 0 refused, 0 timed out." in released.stdout, released
        assert held(agent.socket) == {"c-new": current}
        assert "vnetipam.io/release" not in node.get(block)["metadata"].get("annotations", {})
        reasons = [e["reason"] for e in events_about(crds, "IPBlock", block)]
        assert reasons.count("AddressReleased") == 2 and "ReleaseRefused" in reasons, reasons
        metrics = agent.http("/metrics")[1]
        assert 'vnetipam_agent_releases_total{reason="admin_release"} 2' in metrics
        assert f"release request: released {old} of container c-old interface eth0" in agent.log()

        clean = kubectl_ipam(crds, "check", "--podsubnet", pool)
        assert clean.returncode == 0, clean
        assert "No problems found." in clean.stdout, clean
    finally:
        crds.kubectl("delete", "pod", pod, "-n", "default", "--grace-period=0", "--force",
                     "--wait=false", check=False)
        crds.kubectl("delete", "ipblock", block, "--ignore-not-found", "--wait=false",
                     check=False)
        crds.kubectl("delete", "podsubnet", pool, "--ignore-not-found", "--wait=false",
                     check=False)
        crds.kubectl("delete", "node", node.name, "--ignore-not-found", "--wait=false",
                     check=False)


# ---- dual stack --------------------------------------------------------------------------------

GATEWAY4, GATEWAY6 = "169.254.1.1", "fe80::1"  # lib/ipam/pod_gateway.h


def by_family(answer: dict) -> dict[int, dict]:
    """The allocations of an answer by family, one of each at most."""
    assert answer["ok"], answer
    out = {(6 if ":" in a["address"] else 4): a for a in answer["allocations"]}
    assert len(out) == len(answer["allocations"]), answer
    return out


def held_addresses(path: str) -> dict[str, str]:
    """address -> containerID of every allocation the agent lists (a dual-stack owner holds
    two)."""
    answer = call(path, "list")
    assert answer["ok"], answer
    return {a["address"]: a["containerID"] for a in answer.get("allocations", [])}


def published(node, block: str) -> dict[str, str]:
    """address -> containerID of what the agent published in the block's status.allocations."""
    return {a["address"]: a["containerID"]
            for a in node.get(block).get("status", {}).get("allocations", [])}


def wait_published(node, want: dict[str, dict[str, str]]) -> None:
    """Until each block's status.allocations is exactly want[block] and its status.used counts
    it (the two travel in one apply)."""
    def settled() -> bool:
        return all(published(node, b) == w and (node.used(b) or 0) == len(w)
                   for b, w in want.items())
    poll(f"status.allocations == {want}", settled, TIMEOUT, 0.05,
         describe=lambda: repr({b: (node.used(b), published(node, b)) for b in want}))


def test_dual_stack_allocate_gives_one_address_of_each_family_and_release_frees_both(node):
    b4 = node.block("10.250.10.0/30")
    b6 = node.block("fd00:250:10::/126")
    agent = node.agent().start()
    assert call(agent.socket, "status") == {"v": 1, "ok": True, "ready": True, "freeIPs": 4}
    answer = allocate(agent.socket, "c1", "p1", families=[4, 6])
    pair = by_family(answer)
    assert answer["allocations"][0] is pair[4], "IPv4 first"
    assert pair[4] == {"containerID": "c1", "ifName": "eth0", "podNamespace": "default",
                       "podName": "p1", "address": "10.250.10.0", "block": "10.250.10.0/30",
                       "blockName": b4, "gateway": GATEWAY4}, pair[4]
    assert pair[6] == {"containerID": "c1", "ifName": "eth0", "podNamespace": "default",
                       "podName": "p1", "address": "fd00:250:10::", "block": "fd00:250:10::/126",
                       "blockName": b6, "gateway": GATEWAY6}, pair[6]
    assert by_family(allocate(agent.socket, "c1", "p1", families=[4, 6])) == pair, \
        "a retried ADD gets the same pair"
    # The previous release's plugin names no families: IPv4 alone, even on a dual-stack node.
    old = by_family(allocate(agent.socket, "c-old", families=None))
    assert set(old) == {4} and old[4]["address"] == "10.250.10.1", old
    checked = by_family(call(agent.socket, "check", containerID="c1", ifName="eth0"))
    assert {f: a["address"] for f, a in checked.items()} == {4: "10.250.10.0", 6: "fd00:250:10::"}
    # freeIPs is the scarcest family's: 2 IPv4 (of 4) against 3 IPv6 (of 4).
    assert call(agent.socket, "status")["freeIPs"] == 2
    wait_published(node, {b4: {"10.250.10.0": "c1", "10.250.10.1": "c-old"},
                          b6: {"fd00:250:10::": "c1"}})
    metrics = agent.http("/metrics")[1]
    for series, value in ((f'vnetipam_agent_block_free_ips{{block="{b4}",family="ipv4"}}', 2),
                          (f'vnetipam_agent_block_free_ips{{block="{b6}",family="ipv6"}}', 3),
                          ('vnetipam_agent_allocations_total{family="ipv4"}', 2),
                          ('vnetipam_agent_allocations_total{family="ipv6"}', 1)):
        assert metric(metrics, series) == value, (series, metrics)

    released = release(agent.socket, "c1")
    assert {f: a["address"] for f, a in by_family(released).items()} == {
        4: "10.250.10.0", 6: "fd00:250:10::"}, released
    assert release(agent.socket, "c1") == {"v": 1, "ok": True}, "DEL is idempotent"
    assert held(agent.socket) == {"c-old": "10.250.10.1"}, "both of c1's addresses went"
    assert call(agent.socket, "check", containerID="c1", ifName="eth0")["code"] == 3
    wait_published(node, {b4: {"10.250.10.1": "c-old"}, b6: {}})


def test_dual_stack_through_the_vnet_ipam_plugin(node):
    """The plugin asks for both families and puts both in the result, each with its gateway and a
    default route; CHECK passes; DEL releases both, and the blocks' status follows."""
    from netlab import run_cni
    b4 = node.block("10.250.11.0/30")
    b6 = node.block("fd00:250:11::/126")
    agent = node.agent().start()
    plugin = built("node-agent/cni/vnet-ipam")
    conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
            "ipam": {"type": "vnet-ipam", "socket": agent.socket}}
    cid = uuid.uuid4().hex
    # The IPAM plugin alone touches no namespace: any path does for CNI_NETNS.
    env = dict(node=None, container_id=cid, netns="/var/run/netns/none", cni_path=[plugin.parent],
               args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"})
    res = run_cni(plugin, "ADD", conf, **env)
    assert res.ok, res
    assert res.doc == {"cniVersion": "1.1.0",
                       "ips": [{"address": "10.250.11.0/32", "gateway": GATEWAY4},
                               {"address": "fd00:250:11::/128", "gateway": GATEWAY6}],
                       "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY4},
                                  {"dst": "::/0", "gw": GATEWAY6}]}, res.doc
    wait_published(node, {b4: {"10.250.11.0": cid}, b6: {"fd00:250:11::": cid}})
    check = run_cni(plugin, "CHECK", {**conf, "prevResult": res.doc}, **env)
    assert check.ok, check
    # A prevResult missing the IPv6 address the agent holds fails CHECK.
    v4_only = {**res.doc, "ips": res.doc["ips"][:1], "routes": res.doc["routes"][:1]}
    assert not run_cni(plugin, "CHECK", {**conf, "prevResult": v4_only}, **env).ok
    for _ in range(2):  # a runtime retries DEL
        deleted = run_cni(plugin, "DEL", conf, **env)
        assert deleted.ok, deleted
    assert held(agent.socket) == {}
    wait_published(node, {b4: {}, b6: {}})


def test_an_ipv6_only_node_hands_out_ipv6_alone(node):
    from netlab import run_cni
    b6 = node.block("fd00:250:12::/126")
    agent = node.agent().start()
    assert call(agent.socket, "status") == {"v": 1, "ok": True, "ready": True, "freeIPs": 4}
    pair = by_family(allocate(agent.socket, "c1", families=[4, 6]))
    assert set(pair) == {6} and pair[6]["address"] == "fd00:250:12::" and \
        pair[6]["gateway"] == GATEWAY6, pair
    # The previous release's plugin can only take IPv4, which this node does not serve.
    old = allocate(agent.socket, "c-old")
    assert not old["ok"] and old["code"] == 11, old
    plugin = built("node-agent/cni/vnet-ipam")
    conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
            "ipam": {"type": "vnet-ipam", "socket": agent.socket}}
    cid = uuid.uuid4().hex
    env = dict(node=None, container_id=cid, netns="/var/run/netns/none", cni_path=[plugin.parent])
    res = run_cni(plugin, "ADD", conf, **env)
    assert res.ok, res
    assert res.doc == {"cniVersion": "1.1.0",
                       "ips": [{"address": "fd00:250:12::1/128", "gateway": GATEWAY6}],
                       "routes": [{"dst": "::/0", "gw": GATEWAY6}]}, res.doc
    wait_published(node, {b6: {"fd00:250:12::": "c1", "fd00:250:12::1": cid}})
    assert run_cni(plugin, "DEL", conf, **env).ok
    wait_published(node, {b6: {"fd00:250:12::": "c1"}})


def test_a_dual_stack_add_with_one_family_exhausted_fails_and_keeps_nothing(node):
    """All or nothing: the IPv6 block (a /127, two addresses) runs out first; the next ADD is
    code 11 and the IPv4 address it could have had is not held, not published, and still free."""
    from netlab import run_cni
    b4 = node.block("10.250.13.0/30")
    b6 = node.block("fd00:250:13::/127")
    agent = node.agent("--release-cooldown-seconds", "0").start()
    for cid in ("c0", "c1"):
        assert set(by_family(allocate(agent.socket, cid, families=[4, 6]))) == {4, 6}
    status = call(agent.socket, "status")
    assert status["ok"] and status.get("freeIPs", 0) == 0, ("the scarcest family has none left",
                                                            status)
    before = held_addresses(agent.socket)
    assert len(before) == 4, before

    failed = allocate(agent.socket, "c2", "starved", families=[4, 6])
    assert not failed["ok"] and failed["code"] == 11, failed
    plugin = built("node-agent/cni/vnet-ipam")
    conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
            "ipam": {"type": "vnet-ipam", "socket": agent.socket}}
    env = dict(node=None, container_id="c3", netns="/var/run/netns/none",
               cni_path=[plugin.parent])
    res = run_cni(plugin, "ADD", conf, **env)
    assert res.code == 11, res
    assert held_addresses(agent.socket) == before, "the failed ADDs kept no IPv4 address"
    assert call(agent.socket, "check", containerID="c2", ifName="eth0")["code"] == 3
    free4 = f'vnetipam_agent_block_free_ips{{block="{b4}",family="ipv4"}}'
    poll("2 free IPv4 addresses", lambda: metric(agent.http("/metrics")[1], free4) == 2, TIMEOUT,
         0.05, describe=lambda: agent.http("/metrics")[1])
    failures = 'vnetipam_agent_allocation_failures_total{code="11"}'
    assert metric(agent.http("/metrics")[1], failures) == 2
    # An IPv4-only ADD after them is published next to c0 and c1, with nothing of c2 or c3: the
    # status that shows it was written after the failed ADDs.
    v4 = by_family(allocate(agent.socket, "c-v4", families=[4]))[4]["address"]
    want4 = {a: c for a, c in before.items() if ":" not in a} | {v4: "c-v4"}
    want6 = {a: c for a, c in before.items() if ":" in a}
    assert len(want4) == 3 and len(want6) == 2, before
    wait_published(node, {b4: want4, b6: want6})

    # Once an IPv6 address is free again, the retried ADD gets a whole pair.
    assert release(agent.socket, "c0")["ok"]
    pair = by_family(allocate(agent.socket, "c2", "starved", families=[4, 6]))
    assert set(pair) == {4, 6}, pair
