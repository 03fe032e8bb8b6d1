"""Real Kubernetes nodes on this machine: kubelet + containerd + runc + kube-proxy, running real pods.

Topology (every namespace name starts with a prefix unique to the run, `vip-<pid>-<n>-`):

    fabric netns   <prefix>vnet     the VNET (netlab.FabricNetns): one port per machine below,
                                    proxy ARP; routes each pod block to its node (the Azure mock's
                                    SDN emulation, or this harness in `cloud: none` mode)
    control plane  <prefix>cp       10.240.0.4: etcd, kube-apiserver (:6443), kube-controller-
                                    manager, kube-scheduler, and the Azure mock when one is asked for
    node i         <prefix>node-i   10.240.0.(10+i): containerd, kubelet, kube-proxy, and the pods

Each node is a network namespace *and* a mount namespace. Inside it (set up by `_NODE_SETUP`):
a fresh sysfs for the namespace with the cgroup v1 hierarchies mounted again, a tmpfs on /run,
overlays on /etc, /opt, /var/lib and /var/log whose upper layers live in the node's directory,
and private copies of the machine-wide sysctls the kubelet writes. So the chart's default
hostPaths (/opt/cni/bin, /etc/cni/net.d, /run/vnet-ipam, /var/lib/vnet-ipam) work unchanged, are
different on every node, and nothing reaches the machine's /etc/cni, /opt/cni, /var/lib/cni or
its sysctls. Every kubelet has its own cgroupRoot (/<prefix>node-i), removed at the end.

The tests reach the API server (and the mock) from the root namespace through netlab.Forwarder: a
listener on 127.0.0.1 whose upstream sockets are made inside the control-plane namespace, so no
address or route is ever added to the root namespace. Images come from OCI archives imported with
`ctr`: no registry. Everything is stopped by PID and removed by `RealCluster.stop()` (also at
interpreter exit).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import netlab
from cluster import ROOT, Cluster, Process
from polling import poll

SUBNET = "10.240.0.0/16"
GATEWAY = "10.240.0.1"
CP_IP = "10.240.0.4"
APISERVER_PORT = 6443
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10-vnetipam"

# The cgroup v1 controllers the kubelet needs; each kubelet gets /<node> in every one.
_CGROUP_V1 = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
              "systemd")
# Machine-wide sysctls the kubelet writes at start: each node writes a private copy.
_KUBELET_SYSCTLS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory",
                    "vm/panic_on_oom", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")

# Runs as the node's first process, in a new mount namespace inside the node's network namespace;
# it stays (sleep) to hold the mount namespace, which vanishes with every mount in it once the last
# process in it exits. $1 = the node's directory.
_NODE_SETUP = r"""
set -eu
S=$1
mount --make-rslave /
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mkdir -p /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
mount -t tmpfs -o mode=755 tmpfs /run
for d in etc opt var/lib var/log; do
  mkdir -p "$S/fs/$d/upper" "$S/fs/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$S/fs/$d/upper,workdir=$S/fs/$d/work" "/$d"
done
mkdir -p "$S/sysctl"
for k in %SYSCTLS%; do
  f="$S/sysctl/$(echo $k | tr / _)"; cat "/proc/sys/$k" > "$f"; mount --bind "$f" "/proc/sys/$k"
done
touch "$S/mounted"
exec sleep infinity
""".replace("%SYSCTLS%", " ".join(_KUBELET_SYSCTLS))


# ---- the cluster ----------------------------------------------------------------------------------

@dataclass
class RealNode:
    name: str
    ip: str
    netns: netlab.Netns
    dir: Path
    holder: subprocess.Popen | None = None
    processes: dict[str, Process] = field(default_factory=dict)
    ip6: str | None = None  # on a dual-stack fabric: IPv6 blocks are routed via it

    @property
    def cgroup_root(self) -> str:
        return "/" + self.netns.name

    def path(self, inside: str) -> Path:
        """A path of the node's private filesystem view, seen from the root mount namespace."""
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/root") / inside.lstrip("/")

    def enter(self) -> list[str]:
        """argv prefix that runs a command in the node's network and mount namespaces."""
        assert self.holder is not None
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net"]

    def run(self, *argv: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run([*self.enter(), *argv], capture_output=True, text=True,
                             timeout=timeout, input=input)
        if check and res.returncode != 0:
            raise RuntimeError(f"on {self.name}: {' '.join(argv)} exited {res.returncode}:\n"
                               f"{res.stdout}{res.stderr}")
        return res

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run("ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io",
                        *args, check=check, timeout=timeout)


class RealCluster(Cluster):
    """The control plane in its own namespace on the fabric, and `nodes` real nodes.

        with RealCluster(workdir, images=[archive]) as rc:
            rc.kubectl("get", "nodes")

    `images`: OCI archives imported into every node's containerd (with the pause image).
    `kubectl`, `get` and `server` work from the root namespace through a Forwarder."""

    def __init__(self, workdir: Path, binaries: Path | None = None, *, nodes: int = 3,
                 images: list[Path] = (), prefix: str | None = None,
                 provider_id: Callable[[str], str] | None = None, subnet6: str | None = None):
        super().__init__(workdir, binaries)
        # A dual-stack fabric: node i also holds the subnet6 address ::<10+i>, via which the
        # harness routes the node's IPv6 blocks (Workloads.route_blocks).
        self.subnet6 = subnet6
        self._provider_id = provider_id or (lambda name: f"vnetipam-e2e://{name}")
        self.prefix = prefix or netlab.run_prefix()
        self.node_count = nodes
        self.images = [Path(i) for i in images]
        self.fabric: netlab.FabricNetns | None = None
        self.cp: netlab.Netns | None = None
        self.nodes: dict[str, RealNode] = {}
        self.forwarders: list[netlab.Forwarder] = []
        # The control-plane namespace is new: etcd takes its standard ports there.
        self.etcd_url = "http://127.0.0.1:2379"
        self.etcd_peer_port = 2380
        self.internal_server = f"https://{CP_IP}:{APISERVER_PORT}"
        self._stopped = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "RealCluster":
        atexit.register(self.stop)
        try:
            self.fabric = netlab.FabricNetns(self.prefix + "vnet", subnet=SUBNET, gateway=GATEWAY,
                                             loop=False, subnet6=self.subnet6)
            self.cp = netlab.Netns(self.prefix + "cp")
            self.fabric.attach_node(self.cp, CP_IP)
            api = self.forward(APISERVER_PORT)
            self.server = f"https://{api.address}"
            self._make_pki()
            self._write_kubeconfig(self.kubeconfig, "admin")
            self.etcd = self._start_etcd()
            self.apiserver = self._start_apiserver()
            self.wait_ready()
            self._start_scheduler()
            self.start_controller_manager()
            pause = build_static_image(self.workdir, "pause.c", PAUSE_IMAGE, ["/pause"])
            for i in range(self.node_count):
                ip6 = str(self.fabric.subnet6[10 + i]) if self.fabric.subnet6 else None
                self.add_node(f"node-{i}", f"10.240.0.{10 + i}", [pause, *self.images], ip6)
            self.wait_nodes_registered()
        except BaseException:
            self.stop()
            raise
        return self

    def forward(self, port: int, host: str = CP_IP) -> netlab.Forwarder:
        """A Forwarder from the root namespace to host:port as seen from the control plane."""
        assert self.cp is not None
        f = netlab.Forwarder(self.cp.path, host, port)
        self.forwarders.append(f)
        return f

    def in_cp(self) -> list[str]:
        assert self.cp is not None
        return ["nsenter", f"--net={self.cp.path}"]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for node in reversed(list(self.nodes.values())):
            self._stop_node(node)
        super().stop()
        for f in self.forwarders:
            f.close()
        if self.cp is not None:
            self.cp.remove()
        if self.fabric is not None:
            self.fabric.remove()
        atexit.unregister(self.stop)

    # ---- control plane ---------------------------------------------------------------------

    def _make_pki(self) -> None:
        super()._make_pki()
        sans = (f"IP:127.0.0.1,IP:{CP_IP},IP:{SERVICE_IP},DNS:localhost,DNS:kubernetes,"
                "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}")
        self._leaf("apiserver", "/CN=kube-apiserver", "serverAuth", sans)
        self._leaf("scheduler", "/CN=system:kube-scheduler", "clientAuth")
        self._leaf("kube-proxy", "/CN=system:kube-proxy", "clientAuth")
        self._leaf("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
                   "clientAuth")

    def _process(self, name: str, argv: list[str]) -> Process:
        return super()._process(name, [*self.in_cp(), *argv])

    def _start_apiserver(self) -> Process:
        p = self.pki
        return self._process("kube-apiserver", [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={APISERVER_PORT}",
            "--bind-address=0.0.0.0",
            f"--advertise-address={CP_IP}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ])

    def _start_scheduler(self) -> Process:
        kc = self.workdir / "scheduler.kubeconfig"
        self._write_kubeconfig(kc, "scheduler", server=f"https://127.0.0.1:{APISERVER_PORT}")
        proc = self._process("kube-scheduler", [
            str(self.binaries / "kube-scheduler"), f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", "--leader-elect=false", "--v=1",
        ])
        self._extra.append(proc)
        return proc

    def start_controller_manager(self, *args: str) -> Process:
        kc = self.workdir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kc, "controller-manager",
                               server=f"https://127.0.0.1:{APISERVER_PORT}")
        p = self.pki
        proc = self._process("kube-controller-manager", [
            str(self.binaries / "kube-controller-manager"),
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=true",
            "--leader-elect=false", "--profiling=false", "--v=1",
            # Evict pods of an unreachable node and delete it quickly: the drain test deletes Nodes.
            "--node-monitor-grace-period=20s",
            *args,
        ])
        self._extra.append(proc)
        return proc

    # ---- nodes -----------------------------------------------------------------------------

    def add_node(self, name: str, ip: str, images: list[Path], ip6: str | None = None) -> RealNode:
        ns = netlab.Netns(self.prefix + name)
        node = RealNode(name, ip, ns, self.workdir / "nodes" / name, ip6=ip6)
        self.nodes[name] = node
        node.dir.mkdir(parents=True, exist_ok=True)
        assert self.fabric is not None
        self.fabric.attach_node(ns, ip, node_ip6=ip6)
        # IPv4 forwarding stays as a new namespace has it (off): the CNI plugins must turn it on,
        # as they must on a real node whose image leaves it off.
        self._make_cgroups(node)
        node.holder = subprocess.Popen(
            ["nsenter", f"--net={ns.path}", "unshare", "--mount", "--propagation", "slave",
             "sh", "-c", _NODE_SETUP, "sh", str(node.dir)],
            stdin=subprocess.DEVNULL, stdout=open(node.dir / "setup.log", "wb"),
            stderr=subprocess.STDOUT)
        poll(f"{name}'s mounts", lambda: self._holder_ready(node), 20)
        self._write_node_pki(node)
        self._start_containerd(node)
        for image in images:
            node.ctr("images", "import", str(image))
        self._start_kubelet(node)
        self._start_kube_proxy(node)
        return node

    @staticmethod
    def _holder_ready(node: RealNode) -> bool:
        if node.holder.poll() is not None:
            raise AssertionError(f"{node.name} setup exited {node.holder.returncode}: "
                                 f"{(node.dir / 'setup.log').read_text(errors='replace')}")
        return (node.dir / "mounted").exists()

    def _make_cgroups(self, node: RealNode) -> None:
        for c in _CGROUP_V1:
            d = Path("/sys/fs/cgroup") / c / node.cgroup_root.lstrip("/")
            d.mkdir(exist_ok=True)
            if c == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((d.parent / f).read_text())

    def _write_node_pki(self, node: RealNode) -> None:
        self._leaf(f"{node.name}-kubelet", f"/O=system:nodes/CN=system:node:{node.name}",
                   "clientAuth")
        self._leaf(f"{node.name}-serving", f"/CN={node.name}", "serverAuth",
                   f"IP:{node.ip},DNS:{node.name}")
        self._write_kubeconfig(node.dir / "kubelet.kubeconfig", f"{node.name}-kubelet",
                               server=self.internal_server)
        self._write_kubeconfig(node.dir / "kube-proxy.kubeconfig", "kube-proxy",
                               server=self.internal_server)

    def _node_process(self, node: RealNode, name: str, argv: list[str]) -> Process:
        proc = Process(f"{node.name}/{name}", [*node.enter(), *argv], node.dir / f"{name}.log")
        node.processes[name] = proc
        return proc

    def _start_containerd(self, node: RealNode) -> None:
        cfg = node.dir / "containerd.toml"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        cfg.write_text(f"""version = 2
root = "{node.dir}/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{node.dir}/containerd-opt"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "/run/runc"
  [{cri}.cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
""")
        proc = self._node_process(node, "containerd", ["containerd", "--config", str(cfg)])
        poll(f"{node.name}'s containerd", lambda: (proc.check_running(),
             node.ctr("version", check=False, timeout=10).returncode == 0)[1], 30)

    def _start_kubelet(self, node: RealNode) -> None:
        p = self.pki
        cfg = node.dir / "kubelet.yaml"
        cfg.write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {"x509": {"clientCAFile": str(p / "ca.crt")},
                               "webhook": {"enabled": True}, "anonymous": {"enabled": False}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(p / f"{node.name}-serving.crt"),
            "tlsPrivateKeyFile": str(p / f"{node.name}-serving.key"),
            "address": node.ip,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": node.cgroup_root,
            "failCgroupV1": False,
            "failSwapOn": False,
            "oomScoreAdj": 0,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%"},
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "/etc/resolv.conf",
            "providerID": self.provider_id(node),
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "syncFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
        }, indent=1))
        self._node_process(node, "kubelet", [
            str(self.binaries / "kubelet"), f"--config={cfg}",
            f"--kubeconfig={node.dir / 'kubelet.kubeconfig'}",
            f"--hostname-override={node.name}", f"--node-ip={node.ip}",
            "--root-dir=/var/lib/kubelet", "--v=1"])

    def provider_id(self, node: RealNode) -> str:
        """spec.providerID of a node: where a cloud (the mock) names its VMs, the VM's id."""
        return self._provider_id(node.name)

    def _start_kube_proxy(self, node: RealNode) -> None:
        cfg = node.dir / "kube-proxy.yaml"
        cfg.write_text(json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(node.dir / "kube-proxy.kubeconfig")},
            "hostnameOverride": node.name,
            "mode": "iptables",
            "bindAddress": node.ip,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # Zero leaves the conntrack sysctls alone: they are machine-wide.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }, indent=1))
        self._node_process(node, "kube-proxy", [
            str(self.binaries / "kube-proxy"), f"--config={cfg}", "--v=1"])

    def start_policy_engine(self) -> None:
        """A NetworkPolicy engine (e2e/netpol.py: kube-router's policy controller) on every node,
        in the node's namespaces; waits until each has hooked its chains into FORWARD."""
        import netpol
        kc = self.workdir / "netpol.kubeconfig"
        self._write_kubeconfig(kc, "admin", server=self.internal_server)
        for node in self.nodes.values():
            if node.netns.removed:
                continue
            proc = self._node_process(node, "netpol", netpol.argv(node.name, node.ip, kc))
            poll(f"{node.name}'s policy engine chains", lambda: (
                proc.check_running(),
                node.run(*netpol.READY_CHECK, check=False).returncode == 0)[1], 90,
                interval=0.5, describe=proc.tail)

    def wait_nodes_registered(self, timeout: float = 60) -> None:
        def registered() -> bool:
            for node in self.nodes.values():
                for proc in node.processes.values():
                    proc.check_running()
            out = self.kubectl("get", "nodes", "-o", "name", check=False).stdout.split()
            return all(f"node/{n}" in out for n in self.nodes)
        poll("every node to register", registered, timeout)

    def wait_nodes_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            doc = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)
            conds = {n["metadata"]["name"]: {c["type"]: c["status"]
                                             for c in n["status"].get("conditions", [])}
                     for n in doc["items"]}
            return all(conds.get(n, {}).get("Ready") == "True" for n in self.nodes)
        poll("every node Ready", ready, timeout,
             describe=lambda: self.kubectl("get", "nodes", "-o", "wide", check=False).stdout)

    def stop_node(self, name: str) -> None:
        """Stops a node for good: its kubelet, kube-proxy, pods and containerd, and removes its
        namespaces and cgroups (the Node object is the caller's)."""
        self._stop_node(self.nodes[name])

    def _stop_node(self, node: RealNode) -> None:
        for name in ("netpol", "kube-proxy", "kubelet", "containerd"):
            if name in node.processes:
                node.processes[name].stop()
        if node.holder is not None and node.holder.poll() is None:
            # Pods (their processes are in the node's cgroups) and the containerd shims (they share
            # the node's mount namespace) outlive kubelet and containerd by design: stop them by
            # PID, once, as nothing is left to start another.
            kill_all(cgroup_pids(node.cgroup_root) | mount_ns_pids(node.holder.pid))
            node.holder.kill()
            node.holder.wait()
        remove_cgroups(node.cgroup_root)
        node.netns.remove()


# ---- cleanup by PID and cgroup (also for the demo's `down` after its supervisor was killed) -----

def remove_cgroups(root: str) -> None:
    """Removes the cgroup `root` (a node's cgroupRoot, "/<name>") and everything under it in
    every hierarchy the nodes use, deepest first; each must be empty of processes (kill_all).
    The kubelet makes its tree in the cgroup v2 hierarchy ("unified") too."""
    for c in (*_CGROUP_V1, "unified"):
        top = Path("/sys/fs/cgroup") / c / root.lstrip("/")
        if not top.exists():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            rmdir_when_empty(d)
        rmdir_when_empty(top)


def rmdir_when_empty(d: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cgroup_pids(root: str) -> set[int]:
    top = Path("/sys/fs/cgroup/pids") / root.lstrip("/")
    pids: set[int] = set()
    if top.exists():
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(x) for x in procs.read_text().split())
            except OSError:
                pass
    return pids


def mount_ns_pids(holder: int) -> set[int]:
    """Every process other than `holder` in holder's mount namespace."""
    try:
        want = os.readlink(f"/proc/{holder}/ns/mnt")
    except OSError:
        return set()
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != holder:
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == want:
                    pids.add(int(entry))
            except OSError:
                pass
    return pids


def kill_all(pids: set[int], timeout: float = 10) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                # Our own children (none here but the holder) must be reaped; others vanish.
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.02)


# ---- what the tests do with a real cluster --------------------------------------------------------

IMAGE_TAG = "e2e"
NETCHECK_IMAGE = "e2e.vnet-ipam.test/netcheck:1"  # a full name: the kubelet asks for it as is
NETCHECK_PORT = 8080
CHART = ROOT / "charts" / "vnet-ipam"
RELEASE = "vnet-ipam"
NAMESPACE = "vnet-ipam-system"
IMAGE_REPOSITORY = "ghcr.io/vnet-ipam/vnet-ipam"


def build_static_image(workdir: Path, source: str, ref: str, entrypoint: list[str]) -> Path:
    """A one-layer image holding one static C program of e2e/images/ at /<name>."""
    name = Path(source).stem
    out = workdir / f"{name}.oci.tar"
    if out.exists():
        return out
    rootfs = workdir / f"{name}-rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(rootfs / name),
                    str(ROOT / "e2e" / "images" / source)], check=True)
    subprocess.run(["python3", str(ROOT / "scripts" / "oci_archive.py"),
                    "--rootfs", str(rootfs), "--ref", ref, "--out", str(out),
                    *[f"--entrypoint={e}" for e in entrypoint]],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def build_project_image(tag: str, build_dir: Path | None = None) -> Path:
    """The project's image (scripts/build-image.sh): the OCI archive it wrote. By default from the
    binaries of the build the other e2e tests use (built.BUILD_DIR; stripped into the image as a
    Release build's would be), so the suite compiles nothing twice."""
    from built import BUILD_DIR
    build_dir = build_dir or BUILD_DIR
    archive = build_dir / f"vnet-ipam-image-{tag}.tar"
    out = subprocess.run([str(ROOT / "scripts" / "build-image.sh"), "--tag", tag,
                          "--build-dir", str(build_dir), "--out", str(archive)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def helm_binary() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "install-helm.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


class Workloads:
    """kubectl and helm against a RealCluster, for the tests, the demo and the benchmark."""

    def __init__(self, rc: RealCluster):
        self.rc = rc
        self.helm_bin = helm_binary()

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        res = subprocess.run([str(self.helm_bin), f"--kubeconfig={self.rc.kubeconfig}", *args],
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stdout}{res.stderr}")
        return res

    def install(self, tag: str, values: dict, *extra: str, upgrade: bool = False) -> None:
        """helm install (or upgrade) of the chart with the local image (never pulled)."""
        doc = {"image": {"repository": IMAGE_REPOSITORY, "tag": tag, "pullPolicy": "Never"},
               **values}
        f = self.rc.workdir / f"values-{tag}-{int(time.monotonic() * 1000)}.json"
        f.write_text(json.dumps(doc))
        verb = ["upgrade"] if upgrade else ["install", "--create-namespace"]
        self.helm(*verb, RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(f), *extra)

    def apply(self, obj: dict) -> None:
        self.rc.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                        input=json.dumps(obj))

    def get(self, *args: str) -> dict:
        return json.loads(self.rc.kubectl("get", *args, "-o", "json").stdout)

    def ipblocks(self) -> list[dict]:
        return self.get("ipblocks")["items"]

    def pods(self, selector: str, namespace: str = "default") -> list[dict]:
        """Pods matching a label selector ("" for every pod of the namespace)."""
        return self.get("pods", "-n", namespace, *(["-l", selector] if selector else []))["items"]

    def deployment(self, name: str, replicas: int, *, namespace: str = "default",
                   labels: dict | None = None, readiness: bool = True) -> dict:
        """`replicas` netcheck servers spread evenly over the nodes. readiness=False leaves the
        probe out, so Ready means started (the pod-start benchmark)."""
        labels = {"app": name, **(labels or {})}
        obj = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "enableServiceLinks": False,
                        "automountServiceAccountToken": False,
                        # Spread evenly over the nodes, as a real service would be.
                        "topologySpreadConstraints": [{
                            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": {"app": name}}}],
                        "containers": [{
                            "name": "netcheck", "image": NETCHECK_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/netcheck", "serve", str(NETCHECK_PORT)],
                            "ports": [{"containerPort": NETCHECK_PORT}],
                            **({"readinessProbe": {"tcpSocket": {"port": NETCHECK_PORT},
                                                   "periodSeconds": 1}} if readiness else {}),
                        }],
                    },
                },
            },
        }
        self.apply(obj)
        return obj

    def pod(self, name: str, namespace: str, node: str, labels: dict) -> None:
        """One netcheck server Pod on `node` (bypassing the scheduler)."""
        self.apply({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                             "automountServiceAccountToken": False, "enableServiceLinks": False,
                             "containers": [{"name": "netcheck", "image": NETCHECK_IMAGE,
                                             "imagePullPolicy": "Never",
                                             "command": ["/netcheck", "serve",
                                                         str(NETCHECK_PORT)]}]}})

    def wait_rollout(self, kind_name: str, namespace: str = "default", timeout: float = 240) -> None:
        self.rc.kubectl("rollout", "status", kind_name, "-n", namespace, f"--timeout={int(timeout)}s",
                        timeout=timeout + 30)

    def running_pods(self, selector: str, count: int, namespace: str = "default",
                     timeout: float = 240) -> list[dict]:
        """Until exactly `count` pods match, every one Ready with an IP; returns them."""
        def ready():
            pods = [p for p in self.pods(selector, namespace)
                    if not p["metadata"].get("deletionTimestamp")]
            ok = [p for p in pods if p["status"].get("podIP") and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", []))]
            return ok if len(ok) == count == len(pods) else None
        return poll(f"{count} Ready pods {selector}", ready, timeout, interval=0.5,
                    describe=lambda: self.rc.kubectl("get", "pods", "-A", "-o", "wide",
                                                     check=False).stdout[-3000:])

    @staticmethod
    def node_pairs(pods: list[dict]) -> list[tuple[dict, dict]]:
        return pod_pairs(pods)

    def exec(self, pod: dict, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.rc.kubectl("exec", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"],
                               "--", *argv, check=check)

    def tcp(self, client: dict, ip: str, port: int = NETCHECK_PORT,
            timeout_ms: int = 2000) -> subprocess.CompletedProcess:
        """`netcheck get ip port` from inside the client pod."""
        return self.exec(client, "/netcheck", "get", ip, str(port), str(timeout_ms))

    def route_blocks(self) -> dict[str, str]:
        """cloud: none has no SDN: this harness is the network that routes each block to its node
        (as BGP or a flat L2 network would), from the IPBlocks: an IPv4 block via the node's IPv4
        address, an IPv6 block via its IPv6 one (netlab.next_hop). Returns cidr -> next hop."""
        want = {}
        for b in self.ipblocks():
            node = self.rc.nodes.get(b["spec"].get("nodeName"))
            if node is not None:
                want[b["spec"]["cidr"]] = netlab.next_hop(b["spec"]["cidr"], node.ip, node.ip6)
        return self.rc.fabric.route_blocks(want)


def machine_sysctls() -> dict[str, str]:
    """The machine-wide sysctls a kubelet writes, and the root namespace's forwarding: what the
    nodes must leave alone."""
    keys = (*_KUBELET_SYSCTLS, "net/ipv4/ip_forward")
    return {k: Path(f"/proc/sys/{k}").read_text().strip() for k in keys}


def real_cluster_fixture(name: str, *, provider_id: Callable[[str], str] | None = None,
                         subnet6: str | None = None):
    """A module-scoped pytest fixture: a RealCluster of three nodes with the project's image and
    the netcheck image, stopped after the module; checks that nothing of it is left (namespaces,
    cgroups, processes) and that the root namespace is unchanged. subnet6: a dual-stack fabric
    (RealCluster)."""
    import pytest

    @pytest.fixture(scope="module")
    def _rc(kube_binaries, tmp_path_factory):
        workdir = tmp_path_factory.mktemp(name)
        images = [build_project_image(IMAGE_TAG),
                  build_static_image(workdir, "netcheck.c", NETCHECK_IMAGE, ["/netcheck"])]
        before = netlab.root_netns_snapshot()
        sysctls_before = machine_sysctls()
        cluster = RealCluster(workdir, kube_binaries, nodes=3, images=images,
                              provider_id=provider_id, subnet6=subnet6)
        cluster.start()
        try:
            yield cluster
        finally:
            cgroup_roots = [n.cgroup_root for n in cluster.nodes.values()]
            holders = [n.holder.pid for n in cluster.nodes.values() if n.holder]
            cluster.stop()
            assert [n for n in netlab.netns_list() if n.startswith(cluster.prefix)] == []
            assert netlab.root_netns_snapshot() == before
            assert machine_sysctls() == sysctls_before
            for root in cgroup_roots:
                for hierarchy in ("pids", "memory", "unified"):
                    assert not Path(f"/sys/fs/cgroup/{hierarchy}{root}").exists(), root
            for pid in holders:
                assert not Path(f"/proc/{pid}").exists(), pid

    return _rc


def pod_pairs(pods: list[dict]) -> list[tuple[dict, dict]]:
    """(client, server) pairs over every node, by name: each node's first pod with its second
    (on one node, where it has two) and with the last pod of the next node (across nodes, where
    there are two). The demo and the real-node tests check reachability over these."""
    by_node: dict[str, list[dict]] = {}
    for p in sorted(pods, key=lambda p: (p["spec"]["nodeName"], p["metadata"]["name"])):
        by_node.setdefault(p["spec"]["nodeName"], []).append(p)
    nodes = sorted(by_node)
    pairs = []
    for i, n in enumerate(nodes):
        if len(by_node[n]) > 1:
            pairs.append((by_node[n][0], by_node[n][1]))
        if len(nodes) > 1:
            pairs.append((by_node[n][0], by_node[nodes[(i + 1) % len(nodes)]][-1]))
    return pairs
