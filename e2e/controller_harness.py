"""Run vnet-ipam-controller against a real API server and azure-vnet-mock, and look at what it did.

- KubeApi: a small REST client (admin client certificate) for lists, creates, deletes, server-side
  apply and watches; thread-safe (one connection per thread).
- ControllerProcess: one controller process (flags as in the contract), its /metrics, /readyz,
  peak RSS, SIGKILL/SIGTERM by PID.
- Node and block helpers; poll(): wait on an observable condition with a deadline.
- InvariantMonitor: checks the safety invariants (see its docstring) on every snapshot it takes,
  continuously, on a thread, while a test changes the cluster.

Used by e2e/test_controller.py and bench/controller_bench.py.
"""

from __future__ import annotations

import ctypes
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from built import BUILD_DIR
from crd_helpers import block_phase
from polling import poll  # noqa: F401  (re-exported for the controller tests)

CONTROLLER = BUILD_DIR / "controller" / "vnet-ipam-controller"
GROUP_PATH = "/apis/vnetipam.io/v1alpha1"
API_VERSION = "vnetipam.io/v1alpha1"
POOL_LABEL = "e2e.vnetipam.io/pool"
NODE_LABEL = "vnetipam.io/node"
SUBNET_LABEL = "vnetipam.io/subnet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ---- the API server ---------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, doc, what: str):
        super().__init__(f"{what}: HTTP {status}: {json.dumps(doc)[:600]}")
        self.status = status
        self.doc = doc


class KubeApi:
    """Admin REST access to the e2e cluster (cluster.Cluster)."""

    def __init__(self, cluster, user_agent: str = "vnet-ipam-e2e"):
        self.cluster = cluster
        url = urllib.parse.urlparse(cluster.server)
        self.host, self.port = url.hostname, url.port
        pki = Path(cluster.pki)
        self.ssl = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ssl.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.user_agent = user_agent
        self._local = threading.local()
        self.requests = 0  # requests this client made (for the benchmark's accounting)
        self._count_lock = threading.Lock()

    def _conn(self, fresh: bool = False) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=60)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body=None,
                content_type: str = "application/json") -> tuple[int, object]:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        with self._count_lock:
            self.requests += 1
        for attempt in range(2):
            conn = self._conn(fresh=attempt > 0)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt == 1:
                    raise
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return resp.status, doc

    def ok(self, method: str, path: str, body=None, content_type: str = "application/json",
           allow: tuple[int, ...] = ()) -> object:
        status, doc = self.request(method, path, body, content_type)
        if status >= 300 and status not in allow:
            raise ApiError(status, doc, f"{method} {path}")
        return doc

    def list(self, path: str, label_selector: str | None = None) -> tuple[list[dict], str]:
        """Items and the list's resourceVersion (one consistent read)."""
        q = f"?labelSelector={urllib.parse.quote(label_selector)}" if label_selector else ""
        doc = self.ok("GET", path + q)
        return doc.get("items") or [], doc["metadata"]["resourceVersion"]

    def apply(self, path: str, obj: dict, manager: str, force: bool = True) -> dict:
        """Server-side apply of `obj` at `path` (the object's own path, or .../status)."""
        q = f"?fieldManager={urllib.parse.quote(manager)}" + ("&force=true" if force else "")
        return self.ok("PATCH", path + q, json.dumps(obj).encode(),
                       "application/apply-patch+yaml")

    def watch(self, path: str, resource_version: str,
              stop: threading.Event) -> Iterator[dict]:
        """Watch events from `resource_version` on a connection of its own until `stop`."""
        # The server ends the watch after timeoutSeconds; the caller resumes from its last
        # resourceVersion. (A client-side read timeout would leave the response unusable.)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=60)
        try:
            conn.request("GET", f"{path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=20"
                                f"&resourceVersion={resource_version}",
                         headers={"User-Agent": self.user_agent})
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(resp.status, resp.read()[:500].decode(errors="replace"),
                               f"watch {path}")
            while not stop.is_set():
                line = resp.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            conn.close()

    # -- objects of these tests --

    def create_node(self, name: str, labels: dict[str, str], provider: str | None) -> dict:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels}, "spec": {}}
        if provider:
            node["spec"]["providerID"] = provider
        return self.ok("POST", "/api/v1/nodes", node)

    def delete_node(self, name: str) -> None:
        self.ok("DELETE", f"/api/v1/nodes/{name}", allow=(404,))

    def nodes(self, label_selector: str | None = None) -> dict[str, dict]:
        items, _ = self.list("/api/v1/nodes", label_selector)
        return {n["metadata"]["name"]: n for n in items}

    def blocks(self, subnets: set[str] | None = None) -> list[dict]:
        """IPBlocks, those of `subnets` (spec.podSubnet) only when given."""
        items, _ = self.list(f"{GROUP_PATH}/ipblocks")
        if subnets is None:
            return items
        return [b for b in items if b["spec"]["podSubnet"] in subnets]

    def podsubnet(self, name: str) -> dict | None:
        status, doc = self.request("GET", f"{GROUP_PATH}/podsubnets/{name}")
        return doc if status == 200 else None

    def create_podsubnet(self, name: str, spec: dict) -> dict:
        return self.ok("POST", f"{GROUP_PATH}/podsubnets", {
            "apiVersion": API_VERSION, "kind": "PodSubnet", "metadata": {"name": name},
            "spec": spec})

    def delete_podsubnet(self, name: str) -> None:
        self.ok("DELETE", f"{GROUP_PATH}/podsubnets/{name}", allow=(404,))

    def report_used(self, block: str, used: int, manager: str = "vnet-ipam-agent-e2e") -> dict:
        """What the node agent does: server-side apply of status.used under its own manager."""
        return self.apply(f"{GROUP_PATH}/ipblocks/{block}/status", {
            "apiVersion": API_VERSION, "kind": "IPBlock", "metadata": {"name": block},
            "status": {"used": used}}, manager)

    def events_about(self, kind: str, name: str) -> list[dict]:
        items, _ = self.list("/apis/events.k8s.io/v1/events")
        return [e for e in items
                if (e.get("regarding") or {}).get("kind") == kind
                and (e.get("regarding") or {}).get("name") == name]

    def lease(self, namespace: str, name: str) -> dict | None:
        status, doc = self.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
        return doc if status == 200 else None


# ---- blocks -----------------------------------------------------------------------------------

def leaving(block: dict) -> bool:
    return bool(block["metadata"].get("deletionTimestamp")) or phase(block) == "Releasing"


def phase(block: dict) -> str:
    return block_phase(block)


def blocks_by_node(blocks: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for b in blocks:
        out.setdefault(b["spec"]["nodeName"], []).append(b)
    return out


def overlaps(cidrs: list[str]) -> list[tuple[str, str]]:
    """Pairs of overlapping prefixes (identical ones included)."""
    nets = sorted((ipaddress.ip_network(c) for c in cidrs),
                  key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    bad = []
    for a, b in zip(nets, nets[1:]):
        if a.version == b.version and a.overlaps(b):
            bad.append((str(a), str(b)))
    return bad


def condition(obj: dict, type_: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


# ---- the controller process -------------------------------------------------------------------

_METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(3) or ""))
            out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric_sum(samples, name: str, **labels) -> float:
    return sum(v for n, ls, v in samples
               if n == name and all(ls.get(k) == want for k, want in labels.items()))


class ControllerProcess:
    """vnet-ipam-controller started with the contract's flags; stopped by PID."""

    def __init__(self, workdir: Path, kubeconfig: Path, *, mock=None, cloud: str = "azure",
                 identity: str = "e2e", leader_elect: bool = True,
                 lease_name: str = "vnet-ipam-controller", extra: tuple[str, ...] = (),
                 log_level: str = os.environ.get("VNETIPAM_E2E_LOG_LEVEL", "info")):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.identity = identity
        self.port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.port}"
        self.argv = [str(CONTROLLER), "--kubeconfig", str(kubeconfig), "--cloud", cloud,
                     "--metrics-address", f"127.0.0.1:{self.port}",
                     "--leader-elect", "true" if leader_elect else "false",
                     "--leader-election-name", lease_name,
                     "--leader-election-identity", identity,
                     "--log-level", log_level,
                     # The suites join and churn nodes faster than the ARM pacer's default share
                     # of Azure's limits allows (the mock's limits are off where they would
                     # bite): pacing is off unless a test passes budgets in `extra`.
                     # bench/controller_bench.py --budgets arm measures the pacer.
                     "--azure-read-budget-per-5min", "0", "--azure-write-budget-per-5min", "0",
                     *extra]
        self.env = dict(os.environ)
        if cloud == "azure":
            assert mock is not None
            azure_json = mock.write_azure_json(workdir / "azure.json")
            self.argv += ["--azure-config", str(azure_json), "--azure-ca-file", str(mock.cert)]
            self.env["VNETIPAM_AZURE_ARM_ENDPOINT"] = mock.url
            self.env["VNETIPAM_AZURE_AUTHORITY_HOST"] = mock.url
        self.log_path = workdir / f"controller-{identity}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> "ControllerProcess":
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         preexec_fn=_die_with_parent)
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 30) -> None:
        def ready():
            if not self.running():
                raise AssertionError(f"controller {self.identity} exited "
                                     f"{self.proc.returncode}:\n{self.tail()}")
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False
        poll(f"controller {self.identity} /readyz", ready, timeout,
             describe=lambda: self.tail(20))

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        status, text = self.get("/metrics")
        assert status == 200, text
        return parse_metrics(text)

    def metric(self, name: str, **labels) -> float:
        return metric_sum(self.metrics(), name, **labels)

    def is_leader(self) -> bool:
        try:
            return self.metric("vnetipam_controller_leader") == 1
        except OSError:
            return False

    def peak_rss_kib(self) -> int:
        """VmHWM of the running process, in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. The exit code (None if it
        was never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                return -9
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ---- the safety invariants, checked continuously ----------------------------------------------

@dataclass
class Observation:
    t: float
    blocks: int
    nic_prefixes: int


@dataclass
class InvariantMonitor:
    """Takes snapshots in a loop and checks, on each, the invariants that must hold at EVERY moment.

    One snapshot: list the pool's IPBlocks (L0, at t0), list Nodes, read the mock's whole state
    (S, at t1), list the IPBlocks again (L2, at t2). A single list is one consistent read of etcd;
    S is one consistent read of the mock. Checked on every snapshot:

    1. No overlap: no two IPBlocks in L0 (or in L2) have overlapping CIDRs (any PodSubnet).
    2. No NIC prefix is another node's: a managed prefix P (inside a monitored pool) on the NIC of
       VM v in S is the CIDR of no block with another spec.nodeName in L0 or in L2. And it is
       owned soon: a block with spec.nodeName == v has P within `orphan_deadline` seconds of the
       later of the first snapshot that showed P on v's NIC without one and the last controller
       (re)start. (A node join puts the prefix on the
       NIC first and creates its IPBlock after, and a new controller adopts a prefix an earlier
       one put there; the grace-period removal of a prefix no block owns is what ends the rest.
       A block that owns P at t1 is missed by both lists only if it was created after t0 and
       deleted before t2, within ~0.1 s, which the controller cannot do: programming and
       un-programming need two NIC PUTs that each last the mock's async delay. Deleting blocks,
       finalizer held, still own their prefix.)
    3. No prefix is on two NICs, or twice on one NIC, in S.
    4. A block that is Ready and not leaving in L0 and unchanged (same resourceVersion) in L2 has
       its prefix on its node's NIC in S (only blocks whose node has a NIC, i.e. cloud=azure).
    5. No block names a node the test never created.
    6. A block whose node does not exist (deleted by the test) may exist only for a while: it must
       be gone `orphan_deadline` seconds after the later of the node's deletion and the last
       controller (re)start the test reported (note_restart), since the controller must see the
       deletion first. "No block without a node" is therefore an eventual property, by design:
       the finalizer keeps a block until its prefix is off the NIC.
    """

    api: KubeApi
    mock: object | None
    pools: set[str]
    created_nodes: set[str] = field(default_factory=set)
    deleted_at: dict[str, float] = field(default_factory=dict)
    orphan_deadline: float = 30.0
    period: float = 0.05
    violations: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    _restart_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ranges: list = field(default_factory=list)
    # (prefix, vm) -> when a snapshot first showed the prefix on the VM's NIC with no block of it.
    _unowned_since: dict = field(default_factory=dict)

    def set_ranges(self, cidrs: list[str]) -> None:
        """The pools' address ranges: NIC prefixes outside them are not ours to judge."""
        self._ranges = [ipaddress.ip_network(c) for c in cidrs]

    def note_created(self, node: str) -> None:
        with self._lock:
            self.created_nodes.add(node)
            self.deleted_at.pop(node, None)

    def note_deleted(self, node: str) -> None:
        with self._lock:
            self.deleted_at[node] = time.monotonic()

    def note_restart(self) -> None:
        with self._lock:
            self._restart_at = time.monotonic()

    def _managed(self, prefix: str) -> bool:
        net = ipaddress.ip_network(prefix)
        return any(net.version == r.version and net.subnet_of(r) for r in self._ranges)

    def check_once(self) -> list[str]:
        out: list[str] = []
        l0 = self.api.blocks(self.pools)
        nodes = self.api.nodes()
        state = self.mock.state() if self.mock is not None else None
        t1 = time.monotonic()
        l2 = self.api.blocks(self.pools)
        with self._lock:
            created = set(self.created_nodes)
            deleted_at = dict(self.deleted_at)
            restart_at = self._restart_at

        for name, lst in (("L0", l0), ("L2", l2)):
            for a, b in overlaps([x["spec"]["cidr"] for x in lst]):
                out.append(f"{name}: blocks overlap: {a} and {b}")

        owners = {(b["spec"]["cidr"], b["spec"]["nodeName"]) for b in l0 + l2}
        nodes_of: dict[str, set[str]] = {}
        for cidr, node in owners:
            nodes_of.setdefault(cidr, set()).add(node)
        unowned_now: set = set()
        nic_count = 0
        if state is not None:
            seen: dict[str, str] = {}
            nic_of_vm: dict[str, set[str]] = {}
            for nic in state["networkInterfaces"]:
                vm = nic["name"][:-len("-nic")] if nic["name"].endswith("-nic") else nic["name"]
                prefixes = [c["privateIPAddress"] for c in nic["ipConfigurations"]
                            if "/" in c["privateIPAddress"]]
                nic_of_vm[vm] = set(prefixes)
                if len(prefixes) != len(set(prefixes)):
                    out.append(f"NIC {nic['name']} holds a prefix twice: {sorted(prefixes)}")
                for p in prefixes:
                    if p in seen and seen[p] != nic["name"]:
                        out.append(f"prefix {p} is on two NICs: {seen[p]} and {nic['name']}")
                    seen[p] = nic["name"]
                    if self._managed(p):
                        nic_count += 1
                        others = nodes_of.get(p, set()) - {vm}
                        if others:
                            out.append(f"NIC {nic['name']} holds {p}, which IPBlocks of "
                                       f"{sorted(others)} own (L0/L2)")
                        if (p, vm) not in owners:
                            unowned_now.add((p, vm))
                            since = max(self._unowned_since.setdefault((p, vm), t1),
                                        restart_at)
                            if t1 - since > self.orphan_deadline:
                                out.append(f"NIC {nic['name']} holds {p}, which no IPBlock of "
                                           f"node {vm} has owned for {t1 - since:.1f}s (L0/L2)")
            for key in set(self._unowned_since) - unowned_now:
                del self._unowned_since[key]
            l2_rv = {b["metadata"]["name"]: b["metadata"]["resourceVersion"] for b in l2}
            for b in l0:
                node = b["spec"]["nodeName"]
                if phase(b) != "Ready" or leaving(b) or node not in nic_of_vm:
                    continue
                if l2_rv.get(b["metadata"]["name"]) != b["metadata"]["resourceVersion"]:
                    continue
                if b["spec"]["cidr"] not in nic_of_vm[node]:
                    out.append(f"block {b['metadata']['name']} is Ready but {b['spec']['cidr']} "
                               f"is not on the NIC of {node}")

        now = time.monotonic()
        for b in l2:
            node = b["spec"]["nodeName"]
            if node in nodes:
                continue
            if node not in created:
                out.append(f"block {b['metadata']['name']} names node {node}, never created")
                continue
            since = max(deleted_at.get(node, now), restart_at)
            if now - since > self.orphan_deadline:
                out.append(f"block {b['metadata']['name']} of deleted node {node} still exists "
                           f"{now - since:.1f}s after the deletion (or controller restart)")
        self.observations.append(Observation(t1, len(l2), nic_count))
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.check_once()
            except (OSError, http.client.HTTPException, ApiError, AssertionError) as e:
                # The API server or mock did not answer this time: not an observation.
                found = []
                time.sleep(0.2)
                if self._stop.is_set():
                    break
                _ = e
            with self._lock:
                self.violations.extend(f"{time.strftime('%H:%M:%S')} {v}" for v in found)
            self._stop.wait(self.period)

    def start(self) -> "InvariantMonitor":
        self._thread = threading.Thread(target=self._run, daemon=True, name="invariants")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
