"""A simulated Azure VNET made of network namespaces, for the multi-node tests and the demo.

Topology (every name starts with a prefix unique to the run, `vip-<pid>-<n>-`):

    fabric netns  <prefix>vnet       plays the VNET: one veth `n<i>` per node, proxy ARP on each,
                                      forwarding on; the Azure VNET mock's SDN emulation
                                      (`--sdn-netns <fabric.name>`) adds `block via <node IP>`
    node netns    <prefix><node>     `eth0` (the NIC) holds the node IP with the subnet's length,
                                      default route via the subnet gateway (the subnet's .1, as in
                                      Azure); forwarding on, like a Kubernetes node
    pod netns     <prefix><pod>      made with `ip netns add` (a bind mount under /run/netns, as a
                                      container runtime does); its interfaces come from CNI plugins

Azure answers every ARP request in a VNET itself; the fabric's proxy ARP does the same here, so a
node that sees a pod address as on-link in its subnet still hands the packet to the fabric, which
routes it to the block's node. Nothing is created in the root namespace: every address, link and
route lives in a namespace made here, and everything is removed by Lab.close() (also on an
exception, through the context manager, and at interpreter exit through atexit).

CNI plugins run exactly as a runtime runs them (run_cni): environment CNI_COMMAND, CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_PATH, CNI_ARGS, the config on stdin, executed inside the node netns.
Reachability uses ping(8) (Debian's iputils-ping, from scripts/install-deps.sh).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import ipaddress
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from polling import poll

_CNI_PLUGINS_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build-cni-plugins.sh"
NETNS_DIR = Path("/run/netns")
_MAX_NAME = 64  # azure-vnet-mock accepts netns names of at most 64 characters
_counter = itertools.count()


@functools.cache
def reference_cni_dir() -> Path:
    """The reference CNI plugins (loopback, portmap, ptp, host-local) at the release the image
    ships: $VNETIPAM_CNI_PLUGINS_DIR when set, otherwise the directory scripts/build-cni-plugins.sh
    returns (at once when cached; it builds them, seconds with a warm module cache, if not)."""
    if os.environ.get("VNETIPAM_CNI_PLUGINS_DIR"):
        return Path(os.environ["VNETIPAM_CNI_PLUGINS_DIR"])
    out = subprocess.run([str(_CNI_PLUGINS_SCRIPT)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return Path(out.strip().splitlines()[-1])


def __getattr__(name: str):
    # REFERENCE_CNI_DIR, built on first use rather than at import.
    if name == "REFERENCE_CNI_DIR":
        return reference_cni_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_prefix() -> str:
    """A name prefix unique to this process and call: `vip-<pid>-<n>-`."""
    return f"vip-{os.getpid()}-{next(_counter)}-"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
    return res


def netns_list() -> list[str]:
    """Names in `ip netns list`."""
    out = _ip("-j", "netns", "list").stdout
    return [n["name"] for n in json.loads(out or "[]")]


def remove_stale(pattern: str = r"^vip-(\d+)-") -> list[str]:
    """Deletes namespaces left by earlier runs whose process is gone (a run killed by SIGKILL
    cannot clean up). Only names matching `pattern`, whose group 1 is the owner's PID, and only
    when that PID is not alive. Returns the names removed."""
    removed = []
    for name in netns_list():
        m = re.match(pattern, name)
        if not m or int(m.group(1)) == os.getpid() or Path(f"/proc/{m.group(1)}").exists():
            continue
        if _ip("netns", "delete", name, check=False).returncode == 0:
            removed.append(name)
    return removed


class Netns:
    """A network namespace made with `ip netns add` (bind-mounted at /run/netns/<name>)."""

    def __init__(self, name: str):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,%d}" % _MAX_NAME, name):
            raise ValueError(f"netns name {name!r}: 1-{_MAX_NAME} characters of [A-Za-z0-9_.-]")
        self.name = name
        _ip("netns", "add", name)
        self.removed = False
        try:
            self.ip("link", "set", "lo", "up")
        except Exception:
            self.remove()
            raise

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`ip -n <name> ...`."""
        return _ip("-n", self.name, *args, check=check)

    def exec(self, *argv: str, check: bool = True, input: str | None = None,
             env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs argv inside the namespace (`ip netns exec`), text in and out."""
        res = subprocess.run(["ip", "netns", "exec", self.name, *argv], input=input, env=env,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"in netns {self.name}: {' '.join(argv)} exited {res.returncode}:"
                               f"\n{res.stdout}{res.stderr}")
        return res

    def sysctl(self, key: str, value: str | int) -> None:
        """Writes /proc/sys/<key with / for .> inside the namespace."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.exec("sh", "-c", f'echo {value} > "$1"', "sh", path)

    def read_sysctl(self, key: str) -> str:
        return self.exec("cat", "/proc/sys/" + key.replace(".", "/")).stdout.strip()

    def routes(self, family: int = 4) -> list[dict]:
        """The main table's routes of one family (4 or 6): ip(8) lists one family at a time."""
        return json.loads(self.ip("-j", f"-{family}", "route", "show").stdout or "[]")

    def addresses(self, dev: str, family: int = 4) -> list[str]:
        """Addresses of one family (4 or 6) on dev as "address/len"; for IPv6 the global ones
        only (not the link-local fe80::/64 the kernel may add)."""
        doc = json.loads(self.ip("-j", "addr", "show", "dev", dev).stdout or "[]")
        want = "inet" if family == 4 else "inet6"
        return [f"{a['local']}/{a['prefixlen']}" for link in doc for a in link.get("addr_info", [])
                if a.get("family") == want and (family == 4 or a.get("scope") != "link")]

    def links(self) -> list[str]:
        return [link["ifname"] for link in json.loads(self.ip("-j", "link", "show").stdout or "[]")]

    def remove(self) -> None:
        if not self.removed:
            _ip("netns", "delete", self.name, check=False)
            self.removed = True

    def __repr__(self) -> str:
        return f"Netns({self.name})"


class FabricNetns(Netns):
    """The namespace that plays the VNET fabric for the mock's SDN emulation.

    loop=True (alone, without nodes): a veth pair with both ends inside it holds the gateway
    address with the subnet's length, so any route the mock adds (block via a NIC's primary IP in
    the subnet) has an on-link next hop. A veth, not a dummy device: the dummy module is not always
    loaded. loop=False (inside a Lab): next hops are the nodes, attached with attach_node().

    subnet6 makes the fabric dual-stack, as an Azure subnet with an IPv6 prefix: nodes attached
    with an IPv6 address reach each other and their IPv6 blocks through it. Linux routes an IPv6
    prefix only via an IPv6 gateway, so an IPv6 block goes via its node's IPv6 address.
    """

    def __init__(self, name: str | None = None, *, subnet: str = "10.240.0.0/16",
                 gateway: str | None = None, loop: bool = True, subnet6: str | None = None):
        super().__init__(name or run_prefix() + "vnet")
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = ipaddress.ip_address(gateway) if gateway else self.subnet[1]
        self.subnet6 = ipaddress.ip_network(subnet6) if subnet6 else None
        self.gateway6 = self.subnet6[1] if self.subnet6 else None
        self._ports = 0
        try:
            self.sysctl("net.ipv4.ip_forward", 1)
            if self.subnet6:
                self.sysctl("net.ipv6.conf.all.forwarding", 1)
            if loop:
                for cmd in (["link", "add", "name", "fabric0", "type", "veth", "peer", "name",
                             "fabric1"],
                            ["addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev",
                             "fabric0"],
                            ["link", "set", "fabric1", "up"],
                            ["link", "set", "fabric0", "up"]):
                    self.ip(*cmd)
                if self.subnet6:
                    self.ip("addr", "add", f"{self.gateway6}/{self.subnet6.prefixlen}", "dev",
                            "fabric0", "nodad")
        except Exception:
            self.remove()
            raise

    def attach_node(self, node: Netns, node_ip: str, mtu: int = 1500,
                    node_ip6: str | None = None) -> str:
        """Connects node's `eth0` to a new fabric port; node_ip gets the subnet's length on eth0,
        the node's default route goes via the gateway. With node_ip6 (a dual-stack fabric) eth0
        also holds node_ip6/128 and the node's IPv6 default route goes via the IPv6 gateway: a
        /128 and an on-link gateway, so no other node's address looks on-link (IPv6 has no proxy
        ARP for a whole subnet). Returns the fabric port's name."""
        if node_ip6 is not None and (self.subnet6 is None or
                                     ipaddress.ip_address(node_ip6) not in self.subnet6):
            raise ValueError(f"node IPv6 {node_ip6} is not in the fabric's IPv6 subnet "
                             f"{self.subnet6}")
        port = f"n{self._ports}"
        self._ports += 1
        self.ip("link", "add", "name", port, "mtu", str(mtu), "type", "veth", "peer", "name",
                "eth0", "netns", node.name)
        self.ip("addr", "add", f"{self.gateway}/32", "dev", port)
        self.sysctl(f"net.ipv4.conf.{port}.proxy_arp", 1)
        # Answer at once, as Azure does; the kernel's default delays proxy replies by up to 0.8 s.
        self.sysctl(f"net.ipv4.neigh.{port}.proxy_delay", 0)
        if node_ip6 is not None:
            # No duplicate address detection on a link of two ends made here: it would hold the
            # link-local addresses, and with them neighbour discovery, tentative for a second.
            self.sysctl(f"net.ipv6.conf.{port}.accept_dad", 0)
            node.sysctl("net.ipv6.conf.eth0.accept_dad", 0)
        self.ip("link", "set", port, "up")
        self.ip("route", "add", f"{node_ip}/32", "dev", port, "src", str(self.gateway))
        node.ip("link", "set", "eth0", "mtu", str(mtu))
        node.ip("addr", "add", f"{node_ip}/{self.subnet.prefixlen}", "dev", "eth0")
        node.ip("link", "set", "eth0", "up")
        node.ip("route", "add", "default", "via", str(self.gateway), "dev", "eth0")
        if node_ip6 is not None:
            self.ip("addr", "add", f"{self.gateway6}/128", "dev", port, "nodad")
            self.ip("-6", "route", "replace", f"{node_ip6}/128", "dev", port)
            node.ip("addr", "add", f"{node_ip6}/128", "dev", "eth0", "nodad")
            node.ip("-6", "route", "add", str(self.gateway6), "dev", "eth0")
            node.ip("-6", "route", "add", "default", "via", str(self.gateway6), "dev", "eth0")
        return port

    def route_block(self, cidr: str, via: str) -> None:
        """Routes a block to a node, as the SDN routes a NIC prefix: `cidr via via`, either family;
        via must be of the block's family (an IPv6 block goes via its node's IPv6 address)."""
        if ipaddress.ip_network(cidr).version != ipaddress.ip_address(via).version:
            raise ValueError(f"cannot route {cidr} via {via}: a route's gateway must be of its "
                             "family")
        self.ip("route", "replace", cidr, "via", via)

    def route_blocks(self, want: dict[str, str]) -> dict[str, str]:
        """Makes the fabric's routes via a gateway exactly `want` (cidr -> next hop, either family,
        each through route_block): a route to a block that is gone, or that now goes elsewhere,
        is deleted. This is the network of `cloud: none` (BGP or a flat L2 network in a real
        cluster), which the test harnesses play. Returns want."""
        have = self.sdn_routes()
        for cidr, via in have.items():
            if want.get(cidr) != via:
                self.ip("route", "del", cidr, "via", via)
        for cidr, via in want.items():
            if have.get(cidr) != via:
                self.route_block(cidr, via)
        return want

    def sdn_routes(self) -> dict[str, str]:
        """Destination -> gateway of every route via a gateway, i.e. those the mock programmed,
        of both families."""
        return {r["dst"]: r["gateway"] for family in (4, 6) for r in self.routes(family)
                if "gateway" in r}

    def wait_routes(self, want: dict[str, str], deadline_s: float = 10) -> dict[str, str]:
        """Polls until the mock's routes equal `want`, and returns them; at the deadline fails
        showing the last routes seen."""
        last: dict[str, str] = {}

        def settled() -> bool:
            nonlocal last
            last = self.sdn_routes()
            return last == want

        poll(f"the mock's routes to be {want}", settled, deadline_s, interval=0.05,
             describe=lambda: f"last {last}")
        return last


def next_hop(cidr: str, ip: str, ip6: str | None) -> str:
    """The node address a block is routed via: ip for an IPv4 block, ip6 for an IPv6 one (Linux
    has no IPv6 route via an IPv4 gateway). A node without an IPv6 address cannot take an IPv6
    block: that is an error, not a route that silently fails."""
    if ipaddress.ip_network(cidr).version == 4:
        return ip
    if ip6 is None:
        raise ValueError(f"IPv6 block {cidr} for a node without an IPv6 address ({ip}): give the "
                         "fabric an IPv6 subnet and the node an IPv6 address")
    return ip6


@dataclass
class Node:
    name: str
    ip: str
    netns: Netns
    fabric_port: str
    ip6: str | None = None  # on a dual-stack fabric

    def next_hop(self, cidr: str) -> str:
        """This node's address a block of cidr's family is routed via."""
        return next_hop(cidr, self.ip, self.ip6)


@dataclass
class Pod:
    name: str
    node: Node
    netns: Netns
    container_id: str
    ifname: str = "eth0"
    ip: str | None = None  # set by the caller from the CNI result
    result: dict | None = field(default=None, repr=False)


@dataclass
class CniResult:
    rc: int
    doc: dict | None  # stdout parsed as JSON (the result, or the spec's error object)
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def code(self) -> int | None:
        """The spec's error code when the plugin failed with a JSON error."""
        return self.doc.get("code") if (self.rc != 0 and isinstance(self.doc, dict)) else None

    def ips(self) -> list[str]:
        """Addresses of the result without their length."""
        return [i["address"].split("/")[0] for i in (self.doc or {}).get("ips", [])]

    def __str__(self) -> str:
        return f"rc={self.rc} stdout={self.stdout.strip()} stderr={self.stderr.strip()}"


def run_cni(plugin: str | Path, command: str, config: dict, *, node: Node | Netns | None,
            container_id: str | None = None, netns: str | Path | None = None,
            ifname: str | None = "eth0", cni_path: list[str | Path] | None = None,
            args: dict[str, str] | str | None = None, timeout: float = 60) -> CniResult:
    """Runs a CNI plugin the way a container runtime does: the CNI_* environment, the network
    config on stdin, the plugin executed inside the node's namespace (None: the caller's).

    cni_path defaults to the plugin's own directory and the reference plugins' (reference_cni_dir),
    so delegated IPAM plugins (host-local, vnet-ipam) are found. Variables the command does not need
    may be None."""
    plugin = Path(plugin)
    dirs = cni_path if cni_path is not None else [plugin.parent, reference_cni_dir()]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_COMMAND": command, "CNI_PATH": ":".join(str(d) for d in dirs)}
    if container_id is not None:
        env["CNI_CONTAINERID"] = container_id
    if netns is not None:
        env["CNI_NETNS"] = str(netns)
    if ifname is not None:
        env["CNI_IFNAME"] = ifname
    if args:
        env["CNI_ARGS"] = args if isinstance(args, str) else ";".join(
            f"{k}={v}" for k, v in args.items())
    ns = node.netns if isinstance(node, Node) else node
    argv = [str(plugin)] if ns is None else ["ip", "netns", "exec", ns.name, str(plugin)]
    res = subprocess.run(argv, input=json.dumps(config), env=env, capture_output=True, text=True,
                         timeout=timeout)
    try:
        doc = json.loads(res.stdout) if res.stdout.strip() else None
    except ValueError:
        doc = None
    return CniResult(res.returncode, doc, res.stdout, res.stderr)


def run_conflist(conflist: dict, command: str, *, cni_dirs: list[str | Path], node: Node | Netns,
                 container_id: str, netns: str | Path | None, ifname: str = "eth0",
                 args: dict[str, str] | str | None = None, prev_result: dict | None = None,
                 runtime_config: dict | None = None, timeout: float = 60) -> CniResult:
    """Runs a network config list as libcni does: ADD runs the plugins in order, each given the
    list's name and cniVersion and the previous plugin's result as prevResult; DEL and CHECK run
    with the cached ADD result (prev_result) as prevResult, DEL in reverse order and every plugin
    even after a failure (the first failure is returned). runtime_config values are passed to the
    plugins whose capabilities ask for them. Returns the last result (ADD) or the first failure."""
    plugins = conflist["plugins"]
    order = list(reversed(plugins)) if command == "DEL" else plugins
    result = prev_result
    first_failure: CniResult | None = None
    last: CniResult | None = None
    for plugin_conf in order:
        conf = {**plugin_conf, "name": conflist["name"], "cniVersion": conflist["cniVersion"]}
        caps = {k: v for k, v in (runtime_config or {}).items()
                if plugin_conf.get("capabilities", {}).get(k)}
        conf.pop("capabilities", None)
        if caps:
            conf["runtimeConfig"] = caps
        if result is not None:
            conf["prevResult"] = result
        binary = next((Path(d) / plugin_conf["type"] for d in cni_dirs
                       if (Path(d) / plugin_conf["type"]).is_file()), None)
        if binary is None:
            raise FileNotFoundError(f"CNI plugin {plugin_conf['type']} in none of {cni_dirs}")
        last = run_cni(binary, command, conf, node=node, container_id=container_id, netns=netns,
                       ifname=ifname, cni_path=cni_dirs, args=args, timeout=timeout)
        if not last.ok:
            if command != "DEL":
                return last
            first_failure = first_failure or last
        elif command == "ADD":
            result = last.doc
    assert last is not None, "a conflist without plugins"
    return first_failure or last


def ptp_host_local_config(name: str, block: str, *, data_dir: Path, mtu: int = 1500) -> dict:
    """A reference-plugin network: Debian's ptp with host-local handing out `block`."""
    return {"cniVersion": "1.0.0", "name": name, "type": "ptp", "ipMasq": False, "mtu": mtu,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": block}]], "routes": [{"dst": "0.0.0.0/0"}]}}


class Lab:
    """The fabric, the nodes and the pods of one run. Use as a context manager.

        with Lab() as lab:
            a = lab.add_node("node-0", "10.240.0.4")
            pod = lab.add_pod(a, "web")
    """

    def __init__(self, *, subnet: str = "10.240.0.0/16", gateway: str | None = None,
                 prefix: str | None = None, mtu: int = 1500, subnet6: str | None = None):
        self.prefix = prefix or run_prefix()
        if len(self.prefix) > 40:
            raise ValueError(f"prefix {self.prefix!r} leaves too little of the {_MAX_NAME} "
                             "characters a namespace name may have")
        self.mtu = mtu
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, Pod] = {}
        self._closed = False
        atexit.register(self.close)
        self.fabric = FabricNetns(self.prefix + "vnet", subnet=subnet, gateway=gateway, loop=False,
                                  subnet6=subnet6)

    # ---- building ---------------------------------------------------------------------------

    def add_node(self, name: str, ip: str, ip6: str | None = None) -> Node:
        """A node namespace with eth0 on the fabric holding `ip` (inside the subnet), and `ip6`
        too on a dual-stack fabric (Lab(subnet6=...))."""
        if name in self.nodes:
            raise ValueError(f"node {name} exists")
        if ipaddress.ip_address(ip) not in self.fabric.subnet:
            raise ValueError(f"node IP {ip} is not in the subnet {self.fabric.subnet}")
        ns = Netns(self.prefix + name)
        try:
            ns.sysctl("net.ipv4.ip_forward", 1)
            if ip6 is not None:
                ns.sysctl("net.ipv6.conf.all.forwarding", 1)
            port = self.fabric.attach_node(ns, ip, self.mtu, ip6)
        except Exception:
            ns.remove()
            raise
        node = Node(name, ip, ns, port, ip6)
        self.nodes[name] = node
        return node

    def add_pod(self, node: Node, name: str) -> Pod:
        """An empty pod namespace (only `lo`), as a runtime makes before calling CNI ADD."""
        if name in self.pods:
            raise ValueError(f"pod {name} exists")
        pod = Pod(name, node, Netns(self.prefix + "pod-" + name), secrets.token_hex(32))
        self.pods[name] = pod
        return pod

    def remove_pod(self, pod: Pod) -> None:
        pod.netns.remove()
        self.pods.pop(pod.name, None)

    def cni(self, plugin: str | Path, command: str, pod: Pod, config: dict,
            **kwargs) -> CniResult:
        """run_cni for pod on its node, with its container id, netns path and ifname."""
        return run_cni(plugin, command, config, node=pod.node, container_id=pod.container_id,
                       netns=pod.netns.path, ifname=pod.ifname, **kwargs)

    # ---- checking ---------------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        """Namespaces of this lab that `ip netns list` still shows."""
        return [n for n in netns_list() if n.startswith(self.prefix)]

    # ---- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Removes every namespace of this lab (pods, nodes, fabric); idempotent."""
        if self._closed:
            return
        self._closed = True
        for pod in list(self.pods.values()):
            pod.netns.remove()
        for node in self.nodes.values():
            node.netns.remove()
        self.fabric.remove()
        # Anything made under the prefix by other means (a test's own namespaces) goes too.
        for name in self.namespaces():
            _ip("netns", "delete", name, check=False)
        atexit.unregister(self.close)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- sockets inside another network namespace --------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def connect_in_netns(netns: Path, host: str, port: int, timeout: float = 10) -> socket.socket:
    """A TCP connection made from inside `netns`. A socket belongs to the namespace of the thread
    that made it, so a short-lived thread enters the namespace (setns is per thread for network
    namespaces) and makes it; the caller's thread never changes namespace."""
    out: dict = {}

    def run() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out["sock"] = socket.create_connection((host, port), timeout=timeout)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, name="netns-connect", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class Forwarder:
    """127.0.0.1:<port> in the root namespace -> host:port inside `netns`, byte for byte."""

    def __init__(self, netns: Path, host: str, port: int):
        self.netns, self.host, self.port = netns, host, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.local_port = self._listener.getsockname()[1]
        self._closed = False
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name=f"fwd-{port}", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.local_port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = connect_in_netns(self.netns, self.host, self.port)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.update((client, upstream))
        t = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        t.start()
        self._pump(client, upstream)
        t.join()
        for s in (client, upstream):
            with self._lock:
                self._conns.discard(s)
            s.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---- reachability ---------------------------------------------------------------------------

def ping(src: Netns | Pod, dst_ip: str, *, count: int = 1, wait_s: float = 1) -> bool:
    """One round of `ping -c count` from src; True when every echo came back."""
    ns = src.netns if isinstance(src, Pod) else src
    res = ns.exec("ping", "-n", "-q", "-c", str(count), "-W", str(wait_s), "-i", "0.2", dst_ip,
                  check=False, timeout=count * wait_s + 10)
    return res.returncode == 0


def wait_reachable(src: Netns | Pod, dst_ip: str, deadline_s: float = 10) -> bool:
    """Pings until an echo comes back or the deadline passes (routes may still be landing)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if ping(src, dst_ip):
            return True
        if time.monotonic() > deadline:
            return False


def root_netns_snapshot() -> dict:
    """Links, addresses and routes of the root namespace: compare before and after a test."""
    def j(*args: str):
        return json.loads(_ip("-j", *args).stdout or "[]")
    return {
        "links": sorted(link["ifname"] for link in j("link", "show")),
        "addrs": sorted(f"{link['ifname']} {a['local']}/{a['prefixlen']}"
                        for link in j("addr", "show") for a in link.get("addr_info", [])),
        "routes": sorted(json.dumps(r, sort_keys=True) for r in j("route", "show", "table", "all")),
        # Firewall state: kube-proxy and the policy engine write rules and ipsets in the nodes'
        # namespaces only.
        "nftables": subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                   text=True).stdout,
        "ipsets": subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout,
    }
