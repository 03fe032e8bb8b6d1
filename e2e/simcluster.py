"""A simulated multi-node vnet-ipam cluster on one machine, shared by test_multinode.py and the
demo (scripts/demo.py).

On top of a control plane (cluster.Cluster) it runs:
- the network lab (netlab.Lab): a fabric namespace and one namespace per node, eth0 = NIC;
- azure-vnet-mock over HTTPS with its SDN emulation in the fabric (`--sdn-netns`), from a
  topology where VM node-<i> has NIC node-<i>-nic at 10.240.0.<4+i> (azure_mock.topology);
- one Node object per node (spec.providerID naming its mock VM);
- vnet-ipam-controller (cloud azure, the mock's certificate trusted, metrics on loopback);
- one vnet-ipam-agent per node in the root namespace (a netns has its own loopback, so the API
  server on 127.0.0.1 is only reachable from the root namespace), each with its own socket, state
  and CNI config directories; the CNI plugins run inside the node's namespace.

The caller plays kubelet + container runtime: add_pod() creates a Pod object bound to a node and
runs the CNI config list the node's agent wrote, exactly as a runtime would; delete_pod() undoes
it. Everything is stopped by PID and removed by stop().

With cloud="none" there is no mock: the controller runs with --cloud=none, PodSubnets give
spec.cidr (create_podsubnet(cidr=...), several of them, say an IPv4 and an IPv6 one for dual
stack), and this harness is the network that routes each block to its node (route_blocks(), as
BGP or a flat L2 network would). subnet6 makes the fabric dual-stack: node i also holds the
subnet6 address ::<4+i>, via which its IPv6 blocks are routed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import azure_mock
import netlab
from built import BUILD_DIR, built
from cluster import Cluster, Process, free_port
from crd_helpers import block_phase
from polling import poll, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
CONTROLLER = "controller/vnet-ipam-controller"
AGENT = "node-agent/vnet-ipam-agent"
IPAM_PLUGIN = "node-agent/cni/vnet-ipam"
MAIN_PLUGIN = "node-agent/cni/vnet-transparent"
BINARIES = (CONTROLLER, AGENT, IPAM_PLUGIN, MAIN_PLUGIN, "azure-mock/azure-vnet-mock")

NODE_SUBNET = "10.240.0.0/16"  # azure_mock.topology(): subnet "nodes"
NODE_IPS_RESERVED = "10.240.0.0/24"  # the NICs' primary IPs; never carved into blocks
LABEL = "vnetipam.io/simcluster"


def missing_binaries() -> list[str]:
    """The project binaries this cluster needs that are not built (paths under the build dir)."""
    return [b for b in BINARIES if not os.access(BUILD_DIR / b, os.X_OK)]


@contextlib.contextmanager
def started(make: Callable[[], "SimCluster"],
            setup: Callable[["SimCluster"], None]) -> Iterator["SimCluster"]:
    """A test module's cluster: checks the binaries are built, starts the cluster `make` returns,
    runs `setup` (its PodSubnets), waits for every agent's CNI config and Ready blocks, and yields
    it; afterwards stops it and asserts that no namespace of it is left and the root namespace is
    as before."""
    missing = missing_binaries()
    assert not missing, (f"not built yet: {', '.join(missing)} (cmake --build <build dir>; "
                         "VNETIPAM_BUILD_DIR names the build dir)")
    before = netlab.root_netns_snapshot()
    cluster = make()
    cluster.start()
    try:
        setup(cluster)
        cluster.wait_cni_configs()
        cluster.wait_blocks_ready()
        yield cluster
    finally:
        prefix = cluster.lab.prefix if cluster.lab else None
        cluster.stop()
    if prefix:
        assert [n for n in netlab.netns_list() if n.startswith(prefix)] == []
    assert netlab.root_netns_snapshot() == before


@dataclass
class Agent:
    node: str
    workdir: Path
    metrics: str  # host:port
    proc: Process | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "agent.sock"

    @property
    def cni_conf(self) -> Path:
        return self.workdir / "net.d" / "10-vnet-ipam.conflist"


@dataclass
class PodHandle:
    name: str
    namespace: str
    node: str
    pod: netlab.Pod
    ip: str
    host_veth: str
    uid: str
    result: dict = field(repr=False)
    ips: list[str] = field(default_factory=list)  # every address of the result (IPv4 first)


class SimCluster:
    """See the module docstring. `name` names the PodSubnet and labels the objects, so several
    can share an API server; Nodes are <node_prefix or name>-<i>; `netns_prefix` prefixes the
    namespaces (default: unique to the process, see netlab.run_prefix)."""

    def __init__(self, kube: Cluster, workdir: Path, *, nodes: int = 3, name: str = "sim",
                 netns_prefix: str | None = None, node_prefix: str | None = None, log=print,
                 cloud: str = "azure", subnet6: str | None = None):
        if cloud not in ("azure", "none"):
            raise ValueError(f"cloud {cloud!r}: azure or none")
        self.cloud = cloud
        self.subnet6 = ipaddress.ip_network(subnet6) if subnet6 else None
        self.podsubnets: list[str] = []  # created by create_podsubnet, removed by stop
        self.kube = kube
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.node_count = nodes
        self.name = name
        self.netns_prefix = netns_prefix
        self.log = log
        self.lab: netlab.Lab | None = None
        self.mock: azure_mock.Mock | None = None
        self.controller: Process | None = None
        self.controller_metrics = f"127.0.0.1:{free_port()}"
        self.agents: dict[str, Agent] = {}
        self.pods: dict[str, PodHandle] = {}
        self.node_names = [f"{node_prefix or name}-{i}" for i in range(nodes)]
        self.cni_dirs = [BUILD_DIR / "node-agent" / "cni", netlab.REFERENCE_CNI_DIR]

    # ---- start ----------------------------------------------------------------------------

    def start(self) -> "SimCluster":
        for b in BINARIES:
            built(b)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.log("crds: applying crds/")
        self.kube.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
        self.kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/ipblocks.vnetipam.io", "crd/podsubnets.vnetipam.io")

        self.lab = netlab.Lab(subnet=NODE_SUBNET, prefix=self.netns_prefix,
                              subnet6=str(self.subnet6) if self.subnet6 else None)
        for i, node in enumerate(self.node_names):
            self.lab.add_node(node, f"10.240.0.{4 + i}", self._node_ip6(i))
        self.log(f"network: fabric {self.lab.fabric.name}, nodes "
                 + ", ".join(f"{n.name}={n.ip}" + (f",{n.ip6}" if n.ip6 else "")
                             for n in self.lab.nodes.values()))

        if self.cloud == "none":
            for i, node in enumerate(self.node_names):
                self._create_node(node, "", f"10.240.0.{4 + i}", self._node_ip6(i))
            self._start_controller()
            for node in self.node_names:
                self._start_agent(node)
            return

        mock_dir = self.workdir / "azure-mock"
        mock_dir.mkdir(exist_ok=True)
        self.mock = azure_mock.Mock(
            mock_dir, ["--async-delay-ms", "100", "--sdn-netns", self.lab.fabric.name],
            azure_mock.topology(nics=self.node_count))
        self.log(f"azure-vnet-mock: {self.mock.url} (pid {self.mock.proc.pid})")

        for i, node in enumerate(self.node_names):
            self._create_node(node, f"node-{i}", f"10.240.0.{4 + i}")

        self._start_controller()
        for node in self.node_names:
            self._start_agent(node)

    def _node_ip6(self, i: int) -> str | None:
        return str(self.subnet6[4 + i]) if self.subnet6 else None

    def _create_node(self, name: str, vm: str, ip: str, ip6: str | None = None) -> None:
        """A Node object; vm names its mock VM (spec.providerID), "" for none (cloud none)."""
        obj = {"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": name, "labels": {LABEL: self.name,
                                                     "kubernetes.io/hostname": name}},
               "spec": {"providerID": azure_mock.provider_id(vm)} if vm else {}}
        self.kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
        internal = [{"type": "InternalIP", "address": a} for a in (ip, ip6) if a]
        status = {"status": {
            "addresses": [*internal, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "simulated node", "lastHeartbeatTime": None}]}}
        self.kube.kubectl("patch", "node", name, "--subresource=status", "--type=merge",
                          "-p", json.dumps(status))

    def _start_controller(self) -> None:
        d = self.workdir / "controller"
        d.mkdir(exist_ok=True)
        if self.cloud == "azure":
            azure_json = self.mock.write_azure_json(d / "azure.json")
            env = {**os.environ, "VNETIPAM_AZURE_ARM_ENDPOINT": self.mock.url,
                   "VNETIPAM_AZURE_AUTHORITY_HOST": self.mock.url}
            cloud = ["--cloud=azure", f"--azure-config={azure_json}",
                     f"--azure-ca-file={self.mock.cert}"]
        else:
            env, cloud = None, ["--cloud=none"]
        self.controller = Process("vnet-ipam-controller", [
            str(BUILD_DIR / CONTROLLER), f"--kubeconfig={self.kube.kubeconfig}", *cloud,
            f"--metrics-address={self.controller_metrics}",
            "--leader-elect=true", "--leader-election-namespace=kube-system",
            f"--leader-election-name=vnet-ipam-{self.name}",
            "--nic-orphan-grace-seconds=5",
        ], d / "controller.log", env=env)
        self._wait_http(self.controller, f"http://{self.controller_metrics}/readyz")
        self.log(f"vnet-ipam-controller: pid {self.controller.pid}, "
                 f"metrics http://{self.controller_metrics}/metrics")

    def _start_agent(self, node: str) -> None:
        d = self.workdir / "agents" / node
        (d / "net.d").mkdir(parents=True, exist_ok=True)
        (d / "state").mkdir(exist_ok=True)
        agent = Agent(node, d, f"127.0.0.1:{free_port()}")
        agent.proc = Process(f"vnet-ipam-agent {node}", [
            str(BUILD_DIR / AGENT), f"--kubeconfig={self.kube.kubeconfig}",
            f"--node-name={node}", f"--socket={agent.socket}",
            f"--state-dir={d / 'state'}", f"--cni-conf-dir={d / 'net.d'}",
            f"--metrics-address={agent.metrics}", "--release-cooldown-seconds=0",
            "--usage-report-interval-ms=500",
        ], d / "agent.log")
        self.agents[node] = agent
        self._wait_http(agent.proc, f"http://{agent.metrics}/healthz")
        self.log(f"vnet-ipam-agent {node}: pid {agent.proc.pid}, socket {agent.socket}")

    @staticmethod
    def _wait_http(proc: Process, url: str, deadline_s: float = 60) -> None:
        wait_http_ok(f"{proc.name}: {url}", url, deadline_s, alive=proc.check_running,
                     describe=proc.tail)

    # ---- the API objects --------------------------------------------------------------------

    def create_podsubnet(self, name: str | None = None, **spec) -> str:
        """A PodSubnet for this cluster's nodes only: <name> (default: the cluster's name) over
        the mock's node subnet, or with cloud none over spec["cidr"] (required)."""
        name = name or self.name
        if self.cloud == "azure":
            body = {"azureSubnetID": azure_mock.subnet_id("nodes"), "blockPrefixLength": 28,
                    "nodeSelector": {"matchLabels": {LABEL: self.name}},
                    "reservedCIDRs": [NODE_IPS_RESERVED], "minFreeIPsPerNode": 8, **spec}
        else:
            if "cidr" not in spec:
                raise ValueError("cloud none: a PodSubnet needs spec.cidr")
            body = {"nodeSelector": {"matchLabels": {LABEL: self.name}}, "minFreeIPsPerNode": 8,
                    **spec}
        obj = {"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
               "metadata": {"name": name}, "spec": body}
        self.kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
        if name not in self.podsubnets:
            self.podsubnets.append(name)
        return name

    def _subnet_selector(self) -> str:
        names = self.podsubnets or [self.name]
        return f"vnetipam.io/subnet in ({','.join(names)})"

    def ipblocks(self) -> list[dict]:
        """The IPBlocks of this cluster's PodSubnets."""
        out = self.kube.kubectl("get", "ipblocks", "-l", self._subnet_selector(),
                                "-o", "json").stdout
        return json.loads(out)["items"]

    def route_blocks(self) -> dict[str, str]:
        """cloud none: routes each block to its node in the fabric (an IPv6 block via the node's
        IPv6 address), and removes routes of blocks that are gone. Returns cidr -> next hop."""
        want = {b["spec"]["cidr"]: self.lab.nodes[b["spec"]["nodeName"]].next_hop(
                    b["spec"]["cidr"])
                for b in self.ipblocks() if b["spec"].get("nodeName") in self.lab.nodes}
        return self.lab.fabric.route_blocks(want)

    def wait_blocks_ready(self, deadline_s: float = 90) -> list[dict]:
        """Until every node has a Ready block of every PodSubnet of the cluster and the fabric
        routes each Ready block to its node (the SDN, or with cloud none this harness)."""
        subnets = set(self.podsubnets or [self.name])

        def ready():
            if self.cloud == "none":
                self.route_blocks()
            blocks = self.ipblocks()
            have = {(b["spec"]["nodeName"], b["spec"]["podSubnet"]) for b in blocks
                    if block_phase(b) == "Ready"}
            if not {(n, s) for n in self.node_names for s in subnets} <= have:
                return None
            routes = self.lab.fabric.sdn_routes()
            for b in blocks:
                if block_phase(b) == "Ready":
                    node = self.lab.nodes[b["spec"]["nodeName"]]
                    if routes.get(b["spec"]["cidr"]) != node.next_hop(b["spec"]["cidr"]):
                        return None
            return blocks
        return poll("a Ready block of every PodSubnet on every node, routed by the fabric", ready,
                    deadline_s, 0.2)

    def wait_cni_configs(self, deadline_s: float = 60) -> None:
        """Until every agent wrote its CNI config (it does once it can serve: network-ready)."""
        for agent in self.agents.values():
            poll(f"{agent.cni_conf}", agent.cni_conf.exists, deadline_s, 0.2)

    # ---- pods (kubelet + runtime) -----------------------------------------------------------

    def add_pod(self, node: str, name: str, namespace: str = "default") -> PodHandle:
        """A Pod object bound to node, a pod namespace, and CNI ADD of the node's config list."""
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace,
                            "labels": {LABEL: self.name}},
               "spec": {"nodeName": node,
                        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}
        self.kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
        uid = json.loads(self.kube.kubectl("get", "pod", "-n", namespace, name, "-o",
                                           "json").stdout)["metadata"]["uid"]
        pod = self.lab.add_pod(self.lab.nodes[node], f"{namespace}-{name}")
        res = self._conflist(node, "ADD", pod, namespace, name, uid)
        if not res.ok:
            self.lab.remove_pod(pod)
            raise RuntimeError(f"CNI ADD {namespace}/{name} on {node}: {res}")
        ips = res.ips()
        if self.cloud == "azure":
            assert len(ips) == 1, f"an IPv4-only cluster gave {namespace}/{name} {ips}"
        host = [i["name"] for i in res.doc.get("interfaces", []) if not i.get("sandbox")]
        handle = PodHandle(name, namespace, node, pod, ips[0], host[0] if host else "", uid,
                           res.doc, ips)
        self.pods[f"{namespace}/{name}"] = handle
        return handle

    def check_pod(self, h: PodHandle) -> netlab.CniResult:
        return self._conflist(h.node, "CHECK", h.pod, h.namespace, h.name, h.uid, h.result)

    def delete_pod(self, h: PodHandle, delete_object: bool = True) -> netlab.CniResult:
        """CNI DEL (with the cached ADD result), the pod namespace removed, the Pod deleted."""
        res = self._conflist(h.node, "DEL", h.pod, h.namespace, h.name, h.uid, h.result)
        self.lab.remove_pod(h.pod)
        self.pods.pop(f"{h.namespace}/{h.name}", None)
        if delete_object:
            # No kubelet runs to finish a graceful deletion: the Pod would stay Terminating on the
            # session's API server, in the way of a later suite's Pod of the same name.
            self.kube.kubectl("delete", "pod", "-n", h.namespace, h.name, "--ignore-not-found",
                              "--grace-period=0", "--force")
        return res

    def _conflist(self, node: str, command: str, pod: netlab.Pod, namespace: str, name: str,
                  uid: str, prev: dict | None = None) -> netlab.CniResult:
        conflist = json.loads(self.agents[node].cni_conf.read_text())
        args = {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name,
                "K8S_POD_INFRA_CONTAINER_ID": pod.container_id, "K8S_POD_UID": uid}
        return netlab.run_conflist(conflist, command, cni_dirs=self.cni_dirs,
                                   node=self.lab.nodes[node], container_id=pod.container_id,
                                   netns=pod.netns.path, ifname=pod.ifname, args=args,
                                   prev_result=prev, runtime_config={"portMappings": []})

    # ---- figures ----------------------------------------------------------------------------

    def used_by_node(self) -> dict[str, int]:
        used = {n: 0 for n in self.node_names}
        for b in self.ipblocks():
            used[b["spec"]["nodeName"]] += int(b.get("status", {}).get("used", 0))
        return used

    def metrics_targets(self) -> dict[str, list[str]]:
        return {"vnet-ipam-controller": [self.controller_metrics],
                "vnet-ipam-agent": [a.metrics for a in self.agents.values()]}

    def pids(self) -> dict[str, int]:
        """Every process this cluster started, by name (for the demo's record)."""
        out = {}
        if self.mock is not None:
            out["azure-vnet-mock"] = self.mock.proc.pid
        if self.controller is not None:
            out["vnet-ipam-controller"] = self.controller.pid
        for a in self.agents.values():
            if a.proc is not None:
                out[f"vnet-ipam-agent {a.node}"] = a.proc.pid
        return out

    # ---- stop -------------------------------------------------------------------------------

    def stop(self, release: bool = True) -> None:
        """Deletes the pods (CNI DEL), then with release=True the Nodes and the PodSubnet while
        the controller still runs (so it takes the blocks off the NICs and drops their
        finalizers), then stops agents, controller and mock by PID and removes the namespaces."""
        errors = []
        for h in list(self.pods.values()):
            try:
                self.delete_pod(h)
            except Exception as e:  # keep tearing down
                errors.append(f"pod {h.name}: {e}")
        if release and self.controller is not None and self.controller.running():
            try:
                self._release_api_objects()
            except Exception as e:
                errors.append(f"releasing API objects: {e}")
        for a in self.agents.values():
            if a.proc is not None:
                a.proc.stop()
        if self.controller is not None:
            self.controller.stop()
        if self.mock is not None:
            self.mock.stop()
        if self.lab is not None:
            self.lab.close()
        # Whatever the controller could not release: no finalizer may keep objects forever.
        for b in self._leftover_blocks():
            self.kube.kubectl("patch", "ipblock", b, "--type=merge",
                              "-p", '{"metadata":{"finalizers":null}}', check=False)
        if errors:
            raise RuntimeError("; ".join(errors))

    def _release_api_objects(self) -> None:
        self.kube.kubectl("delete", "pods", "-A", "-l", f"{LABEL}={self.name}",
                          "--ignore-not-found", "--grace-period=0", "--force")
        for node in self.node_names:
            self.kube.kubectl("delete", "node", node, "--ignore-not-found", "--wait=false")
        for subnet in self.podsubnets or [self.name]:
            self.kube.kubectl("delete", "podsubnet", subnet, "--ignore-not-found", "--wait=false")
        poll("the IPBlocks to be released", lambda: not self.ipblocks(), 60, 0.2)

    def _leftover_blocks(self) -> list[str]:
        res = self.kube.kubectl("get", "ipblocks", "-l", self._subnet_selector(),
                                "-o", "name", check=False)
        return [n.split("/", 1)[1] for n in res.stdout.split()] if res.returncode == 0 else []
