"""The CNI plugins vnet-transparent and vnet-ipam, run exactly as a container runtime runs them
(CNI_* environment, config on stdin, exec'd inside a node namespace), with the reference plugins
(host-local, ptp, portmap, built from source at the release the image ships:
scripts/build-cni-plugins.sh) and a real vnet-ipam-agent against a real kube-apiserver.

Topology: netlab.Lab (a fabric namespace, one node namespace, one namespace per pod). Traffic is
TCP and UDP from python inside the pod namespaces; nothing touches the root namespace.

    VNETIPAM_BUILD_DIR=build python3 -m pytest e2e/test_cni.py -q -p no:cacheprovider -x
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from built import built  # noqa: E402
from cluster import free_port  # noqa: E402
from netlab import (REFERENCE_CNI_DIR, Lab, Netns, Pod, root_netns_snapshot, run_cni,  # noqa: E402
                    wait_reachable)
from polling import poll  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NODE_IP = "10.240.0.4"
AGENT_BLOCK = "10.240.64.0/24"
GATEWAY = "169.254.1.1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


# ---- plugins and configs ------------------------------------------------------------------------

def transparent() -> Path:
    return built("node-agent/cni/vnet-transparent")


def vnet_ipam() -> Path:
    return built("node-agent/cni/vnet-ipam")


def cni_path() -> list[Path]:
    """Our plugins first, then the reference plugins: as a node with both installed."""
    return [transparent().parent, REFERENCE_CNI_DIR]


def host_local_ipam(data_dir: Path, subnet: str = "10.244.1.0/24") -> dict:
    return {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]]}


def transparent_conf(ipam: dict, *, version: str = "1.0.0", name: str = "vnet", **extra) -> dict:
    return {"cniVersion": version, "name": name, "type": "vnet-transparent",
            "hostVethPrefix": "vnet", "mtu": 1500, "ipam": ipam, **extra}


def host_local_allocations(data_dir: Path, network: str = "vnet") -> list[str]:
    """Addresses host-local holds (one file per address; lock and last_reserved_ip.* are not)."""
    d = data_dir / network
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir()
                  if p.name != "lock" and not p.name.startswith("last_reserved_ip"))


def host_veths(node: Netns, prefix: str = "vnet") -> list[str]:
    return [n for n in node.links() if n.startswith(prefix)]


def add(lab: Lab, pod: Pod, conf: dict, plugin: Path | None = None, **kw):
    res = lab.cni(plugin or transparent(), "ADD", pod, conf, cni_path=cni_path(), **kw)
    assert res.ok, f"ADD of {pod.name}: {res}"
    pod.result = res.doc
    pod.ip = res.ips()[0]
    return res


def delete(lab: Lab, pod: Pod, conf: dict, plugin: Path | None = None, **kw):
    res = lab.cni(plugin or transparent(), "DEL", pod, conf, cni_path=cni_path(), **kw)
    assert res.ok, f"DEL of {pod.name}: {res}"
    return res


# ---- traffic between namespaces -----------------------------------------------------------------

ECHO_SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port))
tcp.listen(64)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data, peer)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    conn, _ = tcp.accept()
    with conn:
        conn.sendall(conn.recv(2048))
"""

# Retries until the deadline: the first packets after a veth comes up can be lost under load.
ECHO_CLIENT = r"""
import socket, sys, time
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + float(sys.argv[4])
msg = ("hello " + host).encode()
while time.monotonic() < deadline:
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.sendall(msg)
                if s.recv(2048) == msg:
                    sys.exit(0)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.3)
                s.sendto(msg, (host, port))
                if s.recv(2048) == msg:
                    sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
"""


class EchoServer:
    """A TCP and UDP echo server on `port` inside a namespace (a python process we started)."""

    def __init__(self, ns: Netns, port: int = 7777):
        self.port = port
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c",
                                      ECHO_SERVER, str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"echo server in {ns.name}: {self.proc.stderr.read()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def reaches(src: Netns | Pod, host: str, port: int, proto: str = "tcp",
            deadline_s: float = 10) -> bool:
    ns = src.netns if isinstance(src, Pod) else src
    res = ns.exec(sys.executable, "-c", ECHO_CLIENT, proto, host, str(port), str(deadline_s),
                  check=False, timeout=deadline_s + 30)
    return res.returncode == 0


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def lab():
    before = root_netns_snapshot()
    with Lab() as lab:
        lab.node = lab.add_node("node-0", NODE_IP)
        yield lab
    assert root_netns_snapshot() == before, "the root namespace changed"


@pytest.fixture
def servers():
    started: list[EchoServer] = []

    def start(ns: Netns, port: int = 7777) -> EchoServer:
        s = EchoServer(ns, port)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


# ---- VERSION and bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("plugin", ["vnet-transparent", "vnet-ipam"])
def test_version(plugin):
    binary = built(f"node-agent/cni/{plugin}")
    res = run_cni(binary, "VERSION", {"cniVersion": "0.4.0"}, node=None, ifname=None)
    assert res.ok, res
    assert res.doc == {"cniVersion": "0.4.0",
                       "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_add_check_del_del_with_host_local(lab, tmp_path):
    pod = lab.add_pod(lab.node, "p1")
    conf = transparent_conf(host_local_ipam(tmp_path))
    res = add(lab, pod, conf)
    doc = res.doc
    assert doc["cniVersion"] == "1.0.0"
    host_if, pod_if = doc["interfaces"]
    assert pod_if == {"name": "eth0", "mac": pod_if["mac"], "mtu": 1500,
                      "sandbox": str(pod.netns.path)}
    assert host_if["name"].startswith("vnet") and len(host_if["name"]) == 15
    assert doc["ips"] == [{"address": f"{pod.ip}/32", "gateway": GATEWAY, "interface": 1}]
    assert doc["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}]
    assert host_local_allocations(tmp_path) == [pod.ip]

    # The layout of contracts.md, as `ip` sees it.
    assert pod.netns.addresses("eth0") == [f"{pod.ip}/32"]
    pod_routes = {(r["dst"], r.get("gateway")) for r in pod.netns.routes()}
    assert pod_routes == {(GATEWAY, None), ("default", GATEWAY)}
    neigh = json.loads(pod.netns.ip("-j", "neigh", "show", "dev", "eth0").stdout)
    assert [(n["dst"], n["lladdr"], n["state"]) for n in neigh] == [
        (GATEWAY, host_if["mac"], ["PERMANENT"])]
    node_routes = {r["dst"]: r["dev"] for r in lab.node.netns.routes()}
    assert node_routes[pod.ip] == host_if["name"]
    assert lab.node.netns.read_sysctl(f"net.ipv4.conf.{host_if['name']}.proxy_arp") == "1"

    check = lab.cni(transparent(), "CHECK", pod, {**conf, "prevResult": doc}, cni_path=cni_path())
    assert check.ok, check
    assert check.stdout == ""

    delete(lab, pod, conf)
    assert host_local_allocations(tmp_path) == []
    assert host_veths(lab.node.netns) == []
    assert pod.ip not in {r["dst"] for r in lab.node.netns.routes()}
    assert "eth0" not in pod.netns.links()
    delete(lab, pod, conf)  # DEL again: still success


def test_check_reports_a_broken_layout(lab, tmp_path):
    pod = lab.add_pod(lab.node, "p1")
    conf = transparent_conf(host_local_ipam(tmp_path))
    doc = add(lab, pod, conf).doc
    lab.node.netns.ip("route", "del", f"{pod.ip}/32")
    check = lab.cni(transparent(), "CHECK", pod, {**conf, "prevResult": doc}, cni_path=cni_path())
    assert check.code == 101, check
    assert pod.ip in check.doc["msg"] and doc["interfaces"][0]["name"] in check.doc["msg"]
    delete(lab, pod, conf)


def test_del_after_the_netns_is_gone(lab, tmp_path):
    pod = lab.add_pod(lab.node, "p1")
    conf = transparent_conf(host_local_ipam(tmp_path))
    add(lab, pod, conf)
    path = pod.netns.path
    pod.netns.remove()  # the runtime tore the sandbox down first
    res = run_cni(transparent(), "DEL", conf, node=lab.node, container_id=pod.container_id,
                  netns=path, cni_path=cni_path())
    assert res.ok, res
    assert host_local_allocations(tmp_path) == []
    assert host_veths(lab.node.netns) == []


BAD_STDIN = [
    ("not JSON", "{not json", 6),
    ("missing cniVersion", {"name": "vnet", "type": "vnet-transparent"}, 7),
    ("missing name", {"cniVersion": "1.0.0", "type": "vnet-transparent"}, 7),
    ("unknown cniVersion", {"cniVersion": "7.0.0", "name": "vnet", "type": "vnet-transparent"}, 1),
    ("0.2.0 result shape", {"cniVersion": "0.2.0", "name": "vnet", "type": "vnet-transparent"}, 1),
    ("no ipam", {"cniVersion": "1.0.0", "name": "vnet", "type": "vnet-transparent"}, 7),
    ("bad mtu", {"cniVersion": "1.0.0", "name": "vnet", "type": "vnet-transparent", "mtu": 9,
                 "ipam": {}}, 7),
    ("unknown ipam plugin", {"cniVersion": "1.0.0", "name": "vnet", "type": "vnet-transparent",
                             "ipam": {"type": "no-such-ipam"}}, 7),
]


@pytest.mark.parametrize("what,stdin,code", BAD_STDIN, ids=[c[0] for c in BAD_STDIN])
def test_bad_stdin_is_refused_and_allocates_nothing(lab, tmp_path, what, stdin, code):
    pod = lab.add_pod(lab.node, "p1")
    if isinstance(stdin, dict) and "ipam" in stdin and stdin["ipam"] == {}:
        stdin["ipam"] = host_local_ipam(tmp_path)
    text = stdin if isinstance(stdin, str) else json.dumps(stdin)
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id,
           "CNI_NETNS": str(pod.netns.path), "CNI_IFNAME": "eth0",
           "CNI_PATH": ":".join(str(p) for p in cni_path())}
    res = subprocess.run(["ip", "netns", "exec", lab.node.netns.name, str(transparent())],
                         input=text, env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    err = json.loads(res.stdout)
    assert err["code"] == code, (what, err)
    assert err["msg"] and err["cniVersion"]
    assert host_local_allocations(tmp_path) == []
    assert host_veths(lab.node.netns) == []
    assert pod.netns.links() == ["lo"]


def test_bad_environment_is_code_4(lab, tmp_path):
    pod = lab.add_pod(lab.node, "p1")
    conf = transparent_conf(host_local_ipam(tmp_path))
    res = run_cni(transparent(), "ADD", conf, node=lab.node, container_id=pod.container_id,
                  netns=None, cni_path=cni_path())
    assert res.code == 4 and "CNI_NETNS" in res.doc["msg"], res
    res = run_cni(transparent(), "ADD", conf, node=lab.node, container_id=pod.container_id,
                  netns="/run/netns/does-not-exist", cni_path=cni_path())
    assert res.code == 4 and "/run/netns/does-not-exist" in res.doc["msg"], res
    assert host_local_allocations(tmp_path) == []


# ---- traffic ------------------------------------------------------------------------------------

def test_two_pods_on_one_node_talk_tcp_and_udp(lab, tmp_path, servers):
    conf = transparent_conf(host_local_ipam(tmp_path))
    a, b = lab.add_pod(lab.node, "a"), lab.add_pod(lab.node, "b")
    add(lab, a, conf)
    add(lab, b, conf)
    servers(b.netns)
    servers(a.netns)
    assert reaches(a, b.ip, 7777, "tcp"), f"{a.ip} -> {b.ip} tcp"
    assert reaches(a, b.ip, 7777, "udp"), f"{a.ip} -> {b.ip} udp"
    assert reaches(b, a.ip, 7777, "tcp"), f"{b.ip} -> {a.ip} tcp"
    # And the node reaches its pods over their /32 routes.
    assert reaches(lab.node.netns, a.ip, 7777, "tcp")
    delete(lab, a, conf)
    delete(lab, b, conf)


# ---- IPv6 and dual stack -------------------------------------------------------------------------

GATEWAY6 = "fe80::1"
SUBNET6 = "fd00:244:1::/64"


def host_local_ranges(data_dir: Path, *subnets: str) -> dict:
    """host-local with one range set per subnet: one address of each family per ADD."""
    return {"type": "host-local", "dataDir": str(data_dir),
            "ranges": [[{"subnet": s}] for s in subnets]}


def pod_ips(pod: Pod, family: int) -> list[str]:
    return [i["address"].split("/")[0] for i in pod.result["ips"]
            if (":" in i["address"]) == (family == 6)]


def assert_ipv6_layout(lab: Lab, pod: Pod) -> None:
    """The IPv6 half of the recipe (lib/net/transparent.h), as `ip` sees it."""
    host_if = pod.result["interfaces"][0]
    (ip6,) = pod_ips(pod, 6)
    doc = json.loads(pod.netns.ip("-j", "-6", "addr", "show", "dev", "eth0", "scope",
                                  "global").stdout)
    addrs = [a for link in doc for a in link.get("addr_info", []) if a]
    assert [(a["local"], a["prefixlen"], a.get("nodad")) for a in addrs] == [(ip6, 128, True)]
    assert [(r["dst"], r.get("gateway")) for r in pod.netns.routes(6) if r["dst"] == "default"] \
        == [("default", GATEWAY6)]
    neigh = json.loads(pod.netns.ip("-j", "-6", "neigh", "show", "dev", "eth0", GATEWAY6).stdout)
    assert [(n["lladdr"], n["state"]) for n in neigh] == [(host_if["mac"], ["PERMANENT"])]
    node_routes = {r["dst"]: r["dev"] for r in lab.node.netns.routes(6)}
    assert node_routes[ip6] == host_if["name"]
    assert lab.node.netns.read_sysctl("net.ipv6.conf.all.forwarding") == "1"


def test_dual_stack_with_host_local_two_ranges(lab, tmp_path):
    """vnet-transparent with host-local and two ranges (IPv4, IPv6): both families wired, two pods
    on one node reach each other over both, CHECK passes and names a broken IPv6 route, DEL
    cleans both."""
    conf = transparent_conf(host_local_ranges(tmp_path, "10.244.1.0/24", SUBNET6))
    a, b = lab.add_pod(lab.node, "a"), lab.add_pod(lab.node, "b")
    for p in (a, b):
        add(lab, p, conf)
        (v4,), (v6,) = pod_ips(p, 4), pod_ips(p, 6)
        assert p.result["ips"] == [
            {"address": f"{v4}/32", "gateway": GATEWAY, "interface": 1},
            {"address": f"{v6}/128", "gateway": GATEWAY6, "interface": 1}]
        assert p.result["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY},
                                      {"dst": "::/0", "gw": GATEWAY6}]
        assert p.netns.addresses("eth0") == [f"{v4}/32"]
        assert_ipv6_layout(lab, p)
    for src, dst in ((a, b), (b, a)):
        for family in (4, 6):
            (to,) = pod_ips(dst, family)
            assert wait_reachable(src, to), f"{src.name} -> {to}"

    for p in (a, b):
        check = lab.cni(transparent(), "CHECK", p, {**conf, "prevResult": p.result},
                        cni_path=cni_path())
        assert check.ok, check
    (b6,) = pod_ips(b, 6)
    lab.node.netns.ip("-6", "route", "del", f"{b6}/128")
    check = lab.cni(transparent(), "CHECK", b, {**conf, "prevResult": b.result},
                    cni_path=cni_path())
    assert check.code == 101, check
    assert f"host route {b6}/128" in check.doc["msg"], check

    for p in (a, b):
        delete(lab, p, conf)
    assert host_local_allocations(tmp_path) == []
    assert host_veths(lab.node.netns) == []
    left = {r["dst"] for r in lab.node.netns.routes(4)} | {r["dst"] for r in lab.node.netns.routes(6)}
    for p in (a, b):
        assert not set(pod_ips(p, 4) + pod_ips(p, 6)) & left
        assert "eth0" not in p.netns.links()


def test_ipv6_only_with_host_local(lab, tmp_path):
    conf = transparent_conf(host_local_ranges(tmp_path, SUBNET6))
    a, b = lab.add_pod(lab.node, "a"), lab.add_pod(lab.node, "b")
    for p in (a, b):
        add(lab, p, conf)
        (v6,) = pod_ips(p, 6)
        assert p.result["ips"] == [{"address": f"{v6}/128", "gateway": GATEWAY6, "interface": 1}]
        assert p.result["routes"] == [{"dst": "::/0", "gw": GATEWAY6}]
        assert p.netns.addresses("eth0") == [] and p.netns.routes(4) == []
        assert_ipv6_layout(lab, p)
    assert wait_reachable(a, b.ip) and wait_reachable(b, a.ip)
    check = lab.cni(transparent(), "CHECK", a, {**conf, "prevResult": a.result},
                    cni_path=cni_path())
    assert check.ok, check
    for p in (a, b):
        delete(lab, p, conf)
    assert host_local_allocations(tmp_path) == []
    assert host_veths(lab.node.netns) == []
    assert not {a.ip, b.ip} & {r["dst"] for r in lab.node.netns.routes(6)}


def test_drop_rule_on_one_host_veth_isolates_only_that_pod(lab, tmp_path, servers):
    """The Calico-style policy point: a rule on a pod's own host-side interface."""
    conf = transparent_conf(host_local_ipam(tmp_path))
    a, b, c = (lab.add_pod(lab.node, n) for n in ("a", "b", "c"))
    for p in (a, b, c):
        add(lab, p, conf)
    servers(b.netns)
    servers(c.netns)
    assert reaches(a, b.ip, 7777) and reaches(a, c.ip, 7777)
    veth_b = b.result["interfaces"][0]["name"]
    rule = ["FORWARD", "-o", veth_b, "-j", "DROP"]
    lab.node.netns.exec("iptables", "-I", *rule)
    try:
        assert not reaches(a, b.ip, 7777, "tcp", deadline_s=2), "b must be cut off"
        assert not reaches(a, b.ip, 7777, "udp", deadline_s=2), "b must be cut off"
        assert reaches(a, c.ip, 7777, "tcp"), "c must still be reachable"
        assert reaches(a, c.ip, 7777, "udp"), "c must still be reachable"
    finally:
        lab.node.netns.exec("iptables", "-D", *rule)
    assert reaches(a, b.ip, 7777), "b is reachable again once the rule is gone"
    for p in (a, b, c):
        delete(lab, p, conf)


def test_portmap_chained_after_vnet_transparent(lab, tmp_path, servers):
    """A conflist as the agent writes it: vnet-transparent, then portmap with prevResult."""
    conflist = {"cniVersion": "1.0.0", "name": "vnet",
                "plugins": [{"type": "vnet-transparent", "hostVethPrefix": "vnet", "mtu": 1500,
                             "ipam": host_local_ipam(tmp_path)},
                            {"type": "portmap", "capabilities": {"portMappings": True},
                             "snat": True}]}

    def net_conf(i: int, prev: dict | None) -> dict:
        conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"],
                **conflist["plugins"][i]}
        conf.pop("capabilities", None)
        if i == 1:
            conf["runtimeConfig"] = {"portMappings": [
                {"hostPort": 8080, "containerPort": 7777, "protocol": "tcp"}]}
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    web, client = lab.add_pod(lab.node, "web"), lab.add_pod(lab.node, "client")
    add(lab, client, net_conf(0, None))
    first = lab.cni(transparent(), "ADD", web, net_conf(0, None), cni_path=cni_path())
    assert first.ok, first
    web.ip = first.ips()[0]
    portmap = REFERENCE_CNI_DIR / "portmap"
    second = lab.cni(portmap, "ADD", web, net_conf(1, first.doc), cni_path=cni_path())
    assert second.ok, second
    assert second.ips() == [web.ip], "portmap passes prevResult through"
    servers(web.netns)
    # Another pod reaches the web pod through the node's address and the mapped port.
    assert reaches(client, NODE_IP, 8080), f"{NODE_IP}:8080 -> {web.ip}:7777"
    nat = lab.node.netns.exec("iptables", "-t", "nat", "-S").stdout
    assert f"{web.ip}:7777" in nat

    # CHECK of the chain, each plugin with the final result (Debian's portmap 1.1.1 failed here:
    # it checked an IPv6 DNAT chain an IPv4-only pod never has).
    for i, plugin in ((0, transparent()), (1, portmap)):
        check = lab.cni(plugin, "CHECK", web, net_conf(i, second.doc), cni_path=cni_path())
        assert check.ok, (plugin.name, check)
    # DEL in reverse order, each with the final result, as a runtime does.
    assert lab.cni(portmap, "DEL", web, net_conf(1, second.doc), cni_path=cni_path()).ok
    assert lab.cni(transparent(), "DEL", web, net_conf(0, second.doc), cni_path=cni_path()).ok
    assert f"{web.ip}:7777" not in lab.node.netns.exec("iptables", "-t", "nat", "-S").stdout
    delete(lab, client, net_conf(0, None))
    assert host_local_allocations(tmp_path) == []


# ---- with a real agent --------------------------------------------------------------------------

def agent_call(socket_path: str | Path, request: dict, timeout: float = 5) -> dict:
    """One request on the agent's socket (node-agent/protocol.h)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall((json.dumps({"v": 1, **request}) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


class Agent:
    """vnet-ipam-agent for one node, against a real API server that holds one Ready IPBlock."""

    def __init__(self, cluster, workdir: Path, node: str, block: str = AGENT_BLOCK,
                 cooldown_s: int = 30, gc_grace_s: int = 3600):
        self.node = node
        self.workdir = workdir
        self.socket = workdir / "agent.sock"
        self.cni_conf_dir = workdir / "net.d"
        apply_crds_and_block(cluster, node, block)
        self.log = open(workdir / "agent.log", "w")
        self.proc = subprocess.Popen(
            [str(built("node-agent/vnet-ipam-agent")), "--kubeconfig", str(cluster.kubeconfig),
             "--node-name", node, "--socket", str(self.socket),
             "--state-dir", str(workdir / "state"), "--cni-conf-dir", str(self.cni_conf_dir),
             "--metrics-address", f"127.0.0.1:{free_port()}",
             "--gc-grace-seconds", str(gc_grace_s),
             "--release-cooldown-seconds", str(cooldown_s)],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def ipam_conf(self, **extra) -> dict:
        return {"type": "vnet-ipam", "socket": str(self.socket), **extra}

    def wait_ready(self, deadline_s: float = 60) -> None:
        """Polls the plugin's STATUS (the runtime's own readiness question) until it says yes."""
        conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
                "ipam": self.ipam_conf()}
        res = None

        def ready() -> bool:
            nonlocal res
            res = run_cni(vnet_ipam(), "STATUS", conf, node=None, ifname=None)
            assert res.ok or self.proc.poll() is None, \
                f"agent exited: {(self.workdir / 'agent.log').read_text()}"
            return res.ok

        poll("the agent to be ready (CNI STATUS)", ready, deadline_s, describe=lambda: str(res))

    def allocations(self) -> list[dict]:
        res = agent_call(self.socket, {"op": "list"})
        assert res["ok"], res
        return res.get("allocations", [])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def apply_crds_and_block(cluster, node: str, block: str) -> str:
    """Installs the CRDs and one IPBlock of `node`, Ready (the controller's job, done by hand)."""
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for crd in ("ipblocks.vnetipam.io", "podsubnets.vnetipam.io"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    name = "pods-" + block.replace(".", "-").replace("/", "-")
    obj = {"apiVersion": "vnetipam.io/v1alpha1", "kind": "IPBlock",
           "metadata": {"name": name, "labels": {"vnetipam.io/node": node,
                                                 "vnetipam.io/subnet": "pods"}},
           "spec": {"podSubnet": "pods", "cidr": block, "nodeName": node}}
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e-test-controller", "-f", "-",
                    input=json.dumps(obj))
    status = {"apiVersion": obj["apiVersion"], "kind": "IPBlock", "metadata": {"name": name},
              "status": {"phase": "Ready"}}
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e-test-controller",
                    "--subresource=status", "-f", "-", input=json.dumps(status))
    return name


@pytest.fixture(scope="module")
def agent(kube, tmp_path_factory):
    a = Agent(kube, tmp_path_factory.mktemp("agent"), f"cni-node-{os.getpid()}")
    yield a
    a.stop()


@pytest.fixture(scope="module")
def short_grace_agent(kube, tmp_path_factory):
    """An agent (its own node and block) that releases what CNI GC marked after 2 s, not 1 h."""
    a = Agent(kube, tmp_path_factory.mktemp("gc-agent"), f"cni-gc-node-{os.getpid()}",
              block="10.240.65.0/24", gc_grace_s=2)
    yield a
    a.stop()


def test_vnet_ipam_alone_add_check_del(agent, lab):
    pod = lab.add_pod(lab.node, "p1")
    conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
            "ipam": agent.ipam_conf()}
    args = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "p1"}
    res = lab.cni(vnet_ipam(), "ADD", pod, conf, args=args)
    assert res.ok, res
    ip = res.ips()[0]
    assert res.doc == {"cniVersion": "1.1.0",
                       "ips": [{"address": f"{ip}/32", "gateway": GATEWAY}],
                       "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}]}
    held = [a for a in agent.allocations() if a["containerID"] == pod.container_id]
    assert [(a["address"], a["ifName"], a["podName"]) for a in held] == [(ip, "eth0", "p1")]
    # A retried ADD gets the same address.
    again = lab.cni(vnet_ipam(), "ADD", pod, conf, args=args)
    assert again.ips() == [ip]
    check = lab.cni(vnet_ipam(), "CHECK", pod, {**conf, "prevResult": res.doc}, args=args)
    assert check.ok, check
    for _ in range(2):
        assert lab.cni(vnet_ipam(), "DEL", pod, conf, args=args).ok
        assert not [a for a in agent.allocations() if a["containerID"] == pod.container_id]
    gone = lab.cni(vnet_ipam(), "CHECK", pod, {**conf, "prevResult": res.doc}, args=args)
    assert gone.code == 3, gone


def test_vnet_ipam_bad_stdin_allocates_nothing(agent, lab):
    pod = lab.add_pod(lab.node, "p1")
    before = agent.allocations()
    for conf, code in [({"cniVersion": "9.0.0", "name": "vnet", "type": "vnet-ipam",
                         "ipam": agent.ipam_conf()}, 1),
                       ({"cniVersion": "1.1.0", "type": "vnet-ipam",
                         "ipam": agent.ipam_conf()}, 7),
                       ({"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
                         "ipam": agent.ipam_conf(timeoutMs="soon")}, 7)]:
        res = lab.cni(vnet_ipam(), "ADD", pod, conf)
        assert res.code == code, res
    assert agent.allocations() == before


def test_vnet_ipam_unreachable_agent_is_try_again_later(lab, tmp_path):
    pod = lab.add_pod(lab.node, "p1")
    conf = {"cniVersion": "1.1.0", "name": "vnet", "type": "vnet-ipam",
            "ipam": {"type": "vnet-ipam", "socket": str(tmp_path / "nobody.sock")}}
    assert lab.cni(vnet_ipam(), "ADD", pod, conf).code == 11
    status = run_cni(vnet_ipam(), "STATUS", conf, node=None, ifname=None)
    assert status.code == 50, status


def test_vnet_transparent_with_vnet_ipam(agent, lab, servers):
    conf = transparent_conf(agent.ipam_conf(), version="1.1.0")
    a, b = lab.add_pod(lab.node, "a"), lab.add_pod(lab.node, "b")
    for p in (a, b):
        add(lab, p, conf, args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": p.name})
        assert p.result["ips"] == [{"address": f"{p.ip}/32", "gateway": GATEWAY, "interface": 1}]
        assert p.ip in {x["address"] for x in agent.allocations()}
        check = lab.cni(transparent(), "CHECK", p, {**conf, "prevResult": p.result},
                        cni_path=cni_path())
        assert check.ok, check
    servers(b.netns)
    assert reaches(a, b.ip, 7777, "tcp") and reaches(a, b.ip, 7777, "udp")
    status = run_cni(transparent(), "STATUS", conf, node=lab.node, ifname=None,
                     cni_path=cni_path())
    assert status.ok, status
    for p in (a, b):
        delete(lab, p, conf)
        delete(lab, p, conf)
        assert p.ip not in {x["address"] for x in agent.allocations()}
    assert host_veths(lab.node.netns) == []


def test_gc_goes_through_vnet_transparent_to_the_agent(agent, lab):
    conf = transparent_conf(agent.ipam_conf(), version="1.1.0")
    keep, stale = lab.add_pod(lab.node, "keep"), lab.add_pod(lab.node, "stale")
    for p in (keep, stale):
        add(lab, p, conf)
    gc_conf = {**conf, "cni.dev/valid-attachments": [
        {"containerID": keep.container_id, "ifname": "eth0"}]}
    res = run_cni(transparent(), "GC", gc_conf, node=lab.node, ifname=None, cni_path=cni_path())
    assert res.ok, res
    # The agent marks the stale one (released after its grace period); the kept one is untouched.
    held = {x["containerID"] for x in agent.allocations()}
    assert keep.container_id in held
    for p in (keep, stale):
        delete(lab, p, conf)


def test_gc_deletes_the_stale_host_veth_and_the_agent_releases_its_address(
        short_grace_agent, lab):
    """Three pods ADDed through vnet-transparent + vnet-ipam; GC lists two. The third's host veth
    (and with it its pod end and /32 route) goes at once; the agent releases its address after
    its grace period; the listed two keep veth, route and address."""
    agent = short_grace_agent
    conf = transparent_conf(agent.ipam_conf(), version="1.1.0")
    keep = [lab.add_pod(lab.node, "keep1"), lab.add_pod(lab.node, "keep2")]
    stale = lab.add_pod(lab.node, "stale")
    for p in (*keep, stale):
        add(lab, p, conf)
    veth = {p.name: p.result["interfaces"][0]["name"] for p in (*keep, stale)}
    assert sorted(host_veths(lab.node.netns)) == sorted(veth.values())

    def host_routes() -> dict[str, str]:
        return {r["dst"]: r["dev"] for r in lab.node.netns.routes() if "dev" in r}
    assert host_routes()[stale.ip] == veth["stale"]

    gc_conf = {**conf, "cni.dev/valid-attachments": [
        {"containerID": p.container_id, "ifname": "eth0"} for p in keep]}
    res = run_cni(transparent(), "GC", gc_conf, node=lab.node, ifname=None, cni_path=cni_path())
    assert res.ok, res

    # The veth went in GC itself (the kernel takes the pod end and the /32 route with it).
    assert sorted(host_veths(lab.node.netns)) == sorted(veth[p.name] for p in keep)
    routes = host_routes()
    assert stale.ip not in routes, routes
    assert {p.ip: routes.get(p.ip) for p in keep} == {p.ip: veth[p.name] for p in keep}
    assert "eth0" not in stale.netns.links()
    # The agent marked the stale address and releases it once the grace period has passed.
    poll("the agent to release the stale address",
         lambda: stale.ip not in {x["address"] for x in agent.allocations()}, 30,
         describe=lambda: str(agent.allocations()))
    held = {x["address"] for x in agent.allocations()}
    assert {p.ip for p in keep} <= held, held
    # A second GC with the same list finds nothing more to delete.
    assert run_cni(transparent(), "GC", gc_conf, node=lab.node, ifname=None,
                   cni_path=cni_path()).ok
    assert sorted(host_veths(lab.node.netns)) == sorted(veth[p.name] for p in keep)

    for p in (*keep, stale):
        delete(lab, p, conf)
    assert host_veths(lab.node.netns) == []


def test_vnet_ipam_under_ptp(agent, lab, servers):
    """Debian's ptp with vnet-ipam as its IPAM: ptp needs an address length below /32 (it deletes
    the kernel's subnet route) and no routes in the IPAM result (it adds them before its own
    gateway route exists), so the ipam section says so."""
    ptp = REFERENCE_CNI_DIR / "ptp"
    conf = {"cniVersion": "1.0.0", "name": "vnet-ptp", "type": "ptp", "ipMasq": False,
            "mtu": 1500, "ipam": agent.ipam_conf(addressPrefixLength=16, routes=[])}
    a, b = lab.add_pod(lab.node, "a"), lab.add_pod(lab.node, "b")
    for p in (a, b):
        res = lab.cni(ptp, "ADD", p, conf, cni_path=cni_path())
        assert res.ok, res
        p.ip = res.ips()[0]
        p.result = res.doc
        assert p.ip in {x["address"] for x in agent.allocations()}
        check = lab.cni(ptp, "CHECK", p, {**conf, "prevResult": res.doc}, cni_path=cni_path())
        assert check.ok, check
    servers(b.netns)
    assert reaches(a, b.ip, 7777, "tcp") and reaches(a, b.ip, 7777, "udp")
    for p in (a, b):
        assert lab.cni(ptp, "DEL", p, conf, cni_path=cni_path()).ok
        assert lab.cni(ptp, "DEL", p, conf, cni_path=cni_path()).ok
        assert p.ip not in {x["address"] for x in agent.allocations()}


# ---- the spec to the letter: one interface name, one attachment ----------------------------------

def attach(lab: Lab, command: str, pod: Pod, conf: dict, ifname: str, **kw):
    """run_cni for one of the pod's attachments (its container id, netns, and `ifname`)."""
    return run_cni(transparent(), command, conf, node=pod.node, container_id=pod.container_id,
                   netns=pod.netns.path, ifname=ifname, cni_path=cni_path(), **kw)


def test_a_second_add_of_the_same_attachment_is_refused_and_allocates_nothing(agent, lab):
    """The spec: "If an interface of the requested name already exists in the container, the CNI
    plugin MUST return with an error." The second ADD fails with 102 before IPAM: the agent holds
    one address for the attachment, the interface keeps its MAC, and CHECK still passes."""
    conf = transparent_conf(agent.ipam_conf(), version="1.1.0")
    pod = lab.add_pod(lab.node, "p1")
    first = add(lab, pod, conf)
    mac = first.doc["interfaces"][1]["mac"]
    again = attach(lab, "ADD", pod, conf, "eth0")
    assert again.code == 102, again
    assert "interface eth0 already exists" in again.doc["msg"], again
    held = [(x["address"], x["ifName"]) for x in agent.allocations()
            if x["containerID"] == pod.container_id]
    assert held == [(pod.ip, "eth0")]
    assert json.loads(pod.netns.ip("-j", "link", "show", "dev", "eth0").stdout)[0]["address"] \
        == mac, "eth0 was rebuilt"
    assert pod.netns.addresses("eth0") == [f"{pod.ip}/32"]
    check = attach(lab, "CHECK", pod, {**conf, "prevResult": first.doc}, "eth0")
    assert check.ok, check
    delete(lab, pod, conf)
    assert not [x for x in agent.allocations() if x["containerID"] == pod.container_id]


# ---- several networks on one pod --------------------------------------------------------------------

def two_attachments(agent, lab, conf0: dict, conf1: dict, prefix0: str, prefix1: str):
    """eth0 of conf0 and eth1 of conf1 on one pod, through vnet-transparent + the agent: ADD,
    CHECK, DEL of eth1 (eth0 stays whole and CHECKs), ADD of eth1 again, GC of eth1's network
    listing what a runtime lists for it (eth0 when it is eth0's network too, else nothing): eth1's
    veth goes at once and the agent releases its address; eth0 keeps all. With two networks, then
    eth1 again and GC of eth0's network listing eth0 alone: that network's stale attachment (a
    second pod's) goes, eth1 of the other network keeps its veth and its address. DEL of both."""
    same_network = conf0["name"] == conf1["name"]
    pod = lab.add_pod(lab.node, "multi")
    results = {}
    for ifname, conf in (("eth0", conf0), ("eth1", conf1)):
        res = attach(lab, "ADD", pod, conf, ifname)
        assert res.ok, (ifname, res)
        results[ifname] = res.doc
    ip = {i: results[i]["ips"][0]["address"].split("/")[0] for i in results}
    veth = {i: results[i]["interfaces"][0]["name"] for i in results}
    assert ip["eth0"] != ip["eth1"]
    assert veth["eth0"].startswith(prefix0) and veth["eth1"].startswith(prefix1)
    assert veth["eth0"] != veth["eth1"]

    def held() -> dict[str, str]:
        return {x["ifName"]: x["address"] for x in agent.allocations()
                if x["containerID"] == pod.container_id}

    def host_routes() -> dict[str, str]:
        return {r["dst"]: r["dev"] for r in lab.node.netns.routes() if "dev" in r}

    def eth0_whole() -> None:
        assert held().get("eth0") == ip["eth0"], held()
        assert pod.netns.addresses("eth0") == [f"{ip['eth0']}/32"]
        assert veth["eth0"] in lab.node.netns.links()
        assert host_routes().get(ip["eth0"]) == veth["eth0"]
        check = attach(lab, "CHECK", pod, {**conf0, "prevResult": results["eth0"]}, "eth0")
        assert check.ok, check

    assert held() == ip
    assert {i: host_routes().get(ip[i]) for i in ip} == veth
    for ifname, conf in (("eth0", conf0), ("eth1", conf1)):
        check = attach(lab, "CHECK", pod, {**conf, "prevResult": results[ifname]}, ifname)
        assert check.ok, (ifname, check)

    # DEL of eth1 leaves eth0 whole.
    assert attach(lab, "DEL", pod, conf1, "eth1").ok
    assert "eth1" not in pod.netns.links() and veth["eth1"] not in lab.node.netns.links()
    assert ip["eth1"] not in host_routes()
    assert "eth1" not in held()
    eth0_whole()

    # eth1 again, then GC of eth1's network without eth1: a runtime lists one network's
    # attachments in its GC, so eth0 is listed only when it is the same network.
    res = attach(lab, "ADD", pod, conf1, "eth1")
    assert res.ok, res
    ip["eth1"] = res.ips()[0]
    assert res.doc["interfaces"][0]["name"] == veth["eth1"], "the same attachment, the same name"
    networks = {x["ifName"]: x.get("network") for x in agent.allocations()
                if x["containerID"] == pod.container_id}
    assert networks == {"eth0": conf0["name"], "eth1": conf1["name"]}, networks
    gc = {**conf1, "cni.dev/valid-attachments": [{"containerID": pod.container_id,
                                                   "ifname": "eth0"}] if same_network else []}
    res = run_cni(transparent(), "GC", gc, node=lab.node, ifname=None, cni_path=cni_path())
    assert res.ok, res
    assert veth["eth1"] not in lab.node.netns.links() and "eth1" not in pod.netns.links()
    assert ip["eth1"] not in host_routes()
    poll("the agent to release eth1's address", lambda: "eth1" not in held(), 30,
         describe=lambda: str(held()))
    eth0_whole()

    if not same_network:
        # eth1 again, and a second pod on eth0's network that its GC does not list: the GC of
        # eth0's network releases that one after the grace period and never marks eth1, which is
        # the other network's. Both marks would be set by the same GC, so once the stale one is
        # gone, a mark on eth1 would have released it too.
        res = attach(lab, "ADD", pod, conf1, "eth1")
        assert res.ok, res
        ip["eth1"] = res.ips()[0]
        results["eth1"] = res.doc
        stale = lab.add_pod(lab.node, "stale")
        res = attach(lab, "ADD", stale, conf0, "eth0")
        assert res.ok, res
        stale_ip = res.ips()[0]
        gc = {**conf0, "cni.dev/valid-attachments": [{"containerID": pod.container_id,
                                                       "ifname": "eth0"}]}
        res = run_cni(transparent(), "GC", gc, node=lab.node, ifname=None, cni_path=cni_path())
        assert res.ok, res
        poll("the agent to release the stale pod's address",
             lambda: stale_ip not in {x["address"] for x in agent.allocations()}, 30,
             describe=lambda: str(agent.allocations()))
        assert held() == ip, "the GC of eth0's network took eth1 of the other network"
        assert veth["eth1"] in lab.node.netns.links()
        assert host_routes().get(ip["eth1"]) == veth["eth1"]
        check = attach(lab, "CHECK", pod, {**conf1, "prevResult": results["eth1"]}, "eth1")
        assert check.ok, check
        eth0_whole()
        assert attach(lab, "DEL", stale, conf0, "eth0").ok
        assert attach(lab, "DEL", pod, conf1, "eth1").ok
        assert "eth1" not in held()

    assert attach(lab, "DEL", pod, conf0, "eth0").ok
    assert held() == {}
    assert host_veths(lab.node.netns, prefix0) == [] and host_veths(lab.node.netns, prefix1) == []
    assert pod.netns.links() == ["lo"]


def test_two_networks_with_their_own_prefixes_on_one_pod(short_grace_agent, lab):
    """Two conflists (as Multus adds a second network): eth0 on one, eth1 on the other, each with
    its own hostVethPrefix, both served by the agent."""
    agent = short_grace_agent
    conf0 = transparent_conf(agent.ipam_conf(), version="1.1.0", name="net-a")
    conf1 = {**transparent_conf(agent.ipam_conf(), version="1.1.0", name="net-b"),
             "hostVethPrefix": "vsec"}
    two_attachments(agent, lab, conf0, conf1, "vnet", "vsec")


def test_the_same_network_twice_on_one_pod(short_grace_agent, lab):
    """eth0 and eth1 of one conflist: one prefix, two host veths (eth0's named as every release
    names it, eth1's by the container and the interface)."""
    agent = short_grace_agent
    conf = transparent_conf(agent.ipam_conf(), version="1.1.0")
    two_attachments(agent, lab, conf, conf, "vnet", "vnet")


# ---- the agent's conflist, run as a runtime runs it --------------------------------------------------

def libcni_version(conflist: dict, implemented: str = "1.1.0") -> str:
    """The version libcni (v1.2 and later) runs a list at: the highest of cniVersion and
    cniVersions that it implements."""
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))
    versions = [conflist["cniVersion"], *conflist.get("cniVersions", [])]
    return max((v for v in versions if key(v) <= key(implemented)), key=key)


def test_the_agents_conflist_at_1_1_0_add_check_status_gc_del(agent, lab, servers):
    """The conflist the agent wrote, exactly, with the reference portmap the image ships: a
    runtime that speaks 1.1.0 runs it at 1.1.0 (one at 1.0.0 would run cniVersion); ADD through
    the chain with a hostPort, CHECK of each plugin with the final result (portmap included),
    STATUS and GC (1.1.0 commands) answered by each plugin, DEL in reverse order."""
    conflist = json.loads((agent.cni_conf_dir / "10-vnet-ipam.conflist").read_text())
    assert [p["type"] for p in conflist["plugins"]] == ["vnet-transparent", "portmap"]
    version = libcni_version(conflist)
    assert version == "1.1.0"
    assert libcni_version(conflist, implemented="1.0.0") == "1.0.0"
    plugins = [(transparent() if p["type"] == "vnet-transparent"
                else REFERENCE_CNI_DIR / p["type"]) for p in conflist["plugins"]]
    mappings = [{"hostPort": 8080, "containerPort": 7777, "protocol": "tcp"}]

    def net_conf(i: int, prev: dict | None = None, **extra) -> dict:
        conf = {"cniVersion": version, "name": conflist["name"], **conflist["plugins"][i],
                **extra}
        caps = conf.pop("capabilities", {})
        if caps.get("portMappings"):
            conf["runtimeConfig"] = {"portMappings": mappings}
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    web, client = lab.add_pod(lab.node, "web"), lab.add_pod(lab.node, "client")
    add(lab, client, net_conf(0))
    prev = None
    for i, plugin in enumerate(plugins):
        res = lab.cni(plugin, "ADD", web, net_conf(i, prev), cni_path=cni_path())
        assert res.ok, (plugin.name, res)
        assert res.doc["cniVersion"] == "1.1.0", res
        prev = res.doc
    web.ip = prev["ips"][0]["address"].split("/")[0]
    servers(web.netns)
    assert reaches(client, NODE_IP, 8080), f"{NODE_IP}:8080 -> {web.ip}:7777"

    for i, plugin in enumerate(plugins):
        check = lab.cni(plugin, "CHECK", web, net_conf(i, prev), cni_path=cni_path())
        assert check.ok, (plugin.name, check)
        status = run_cni(plugin, "STATUS", net_conf(i), node=lab.node, ifname=None,
                         cni_path=cni_path())
        assert status.ok, (plugin.name, status)
    # A second network on web (net1, vnet-ipam alone, as Multus adds one): the GC of the agent's
    # network does not list it, and must not take it.
    other = {"cniVersion": "1.1.0", "name": "other-net", "type": "vnet-ipam",
             "ipam": agent.ipam_conf()}
    net1 = run_cni(vnet_ipam(), "ADD", other, node=lab.node, container_id=web.container_id,
                   netns=web.netns.path, ifname="net1")
    assert net1.ok, net1
    networks = {x["ifName"]: x.get("network") for x in agent.allocations()
                if x["containerID"] == web.container_id}
    assert networks == {"eth0": conflist["name"], "net1": "other-net"}, networks
    # GC listing both pods: nothing of theirs goes.
    valid = [{"containerID": p.container_id, "ifname": "eth0"} for p in (web, client)]
    for i, plugin in enumerate(plugins):
        gc = run_cni(plugin, "GC", net_conf(i, **{"cni.dev/valid-attachments": valid}),
                     node=lab.node, ifname=None, cni_path=cni_path())
        assert gc.ok, (plugin.name, gc)
    assert reaches(client, NODE_IP, 8080)
    # What that GC asked the agent, answered with what it marked (released an hour later under
    # this agent's grace): nothing of the two pods, net1 of the other network included.
    marked = agent_call(agent.socket, {"op": "gc", "network": conflist["name"],
                                       "validAttachments": [{"containerID": v["containerID"],
                                                             "ifName": v["ifname"]}
                                                            for v in valid]})
    assert marked["ok"], marked
    ours = {web.container_id, client.container_id}
    assert not [x for x in marked.get("allocations", []) if x["containerID"] in ours], marked
    # The other network's GC without net1 marks net1, and nothing of the agent's network.
    marked = agent_call(agent.socket, {"op": "gc", "network": "other-net", "validAttachments": []})
    assert [(x["containerID"], x["ifName"]) for x in marked.get("allocations", [])
            if x["containerID"] in ours] == [(web.container_id, "net1")], marked
    assert run_cni(vnet_ipam(), "DEL", other, node=lab.node, container_id=web.container_id,
                   netns=web.netns.path, ifname="net1").ok
    for i, plugin in enumerate(plugins):
        check = lab.cni(plugin, "CHECK", web, net_conf(i, prev), cni_path=cni_path())
        assert check.ok, (plugin.name, check)

    for i, plugin in reversed(list(enumerate(plugins))):
        assert lab.cni(plugin, "DEL", web, net_conf(i, prev), cni_path=cni_path()).ok
    assert f"{web.ip}:7777" not in lab.node.netns.exec("iptables", "-t", "nat", "-S").stdout
    delete(lab, client, net_conf(0))
    held = {x["containerID"] for x in agent.allocations()}
    assert web.container_id not in held and client.container_id not in held
