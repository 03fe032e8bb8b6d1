#!/usr/bin/env python3
"""The demo's orchestration (scripts/demo.sh is the entry point; run as root).

    demo.py up --kube-bin DIR --image ARCHIVE --mock-bin FILE   start the demo (detached), show it
    demo.py status              show the running demo again
    demo.py is-up               exit 0 when a demo is running
    demo.py down                stop it: every process it made, every namespace and cgroup

What runs: a real Kubernetes cluster of three nodes on this machine (e2e/realnodes.py): etcd,
kube-apiserver, kube-controller-manager and kube-scheduler in a control-plane network namespace;
three nodes, each a network + mount namespace with containerd, runc, a kubelet and a kube-proxy,
on a fabric namespace that plays the VNET. The project's image (scripts/build-image.sh) and the
`netcheck` workload image are imported into every node's containerd (no registry). The chart is
installed with helm in `cloud: azure` mode against the Azure VNET mock (run in the control-plane
namespace, its SDN emulation routing every NIC prefix in the fabric), then a PodSubnet and a
6-replica netcheck Deployment; a real Prometheus, inside the control-plane namespace, scrapes the
controller and the agents on the node addresses. (`--cloud none` installs the chart without a
cloud instead and the supervisor routes each block to its node itself, as a flat network would.)

How it stays up: `up` starts a supervisor (`demo.py serve`, its own session, detached from the
terminal) that builds all that and then waits for SIGTERM. The API server, Prometheus and the mock
are reached from this (root) namespace only through the supervisor's forwarders (127.0.0.1 ports
whose upstream sockets are made inside the control-plane namespace): nothing is added to the root
namespace, and the kubeconfig works while the supervisor runs. The control plane and the node
daemons are its children and are killed by the kernel if it dies (PR_SET_PDEATHSIG); on SIGTERM it
stops everything itself (RealCluster.stop()). Every PID is recorded in <state>/pids.json as soon as
it exists, so `down` stops by PID whatever is left even after a SIGKILL of the supervisor, then
kills what is left in the vipdemo-* network namespaces, the nodes' cgroups and mount namespaces
(the pods and containerd shims), removes those cgroups and the namespaces.

`up` while a demo is up does not restart it: it says so and shows the running one again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))

from polling import poll  # noqa: E402

STATE = Path(os.environ.get("VNETIPAM_DEMO_DIR", "/tmp/vnet-ipam-demo"))
NETNS_PREFIX = "vipdemo-"
SUPERVISOR_PID = STATE / "supervisor.pid"
PIDS = STATE / "pids.json"
READY = STATE / "ready.json"
FAILED = STATE / "failed.txt"
LOG = STATE / "demo.log"
NODES = 3
PODSUBNET = "pods"
APP = "web"
REPLICAS = 6
IMAGE_TAG = "demo"
MOCK_PORT = 8443
PROMETHEUS_PORT = 9099  # inside the control-plane namespace; reached through a Forwarder
NODE_IPS_RESERVED = "10.240.0.0/24"  # cloud: azure: node addresses; blocks come from the rest
POD_CIDR = "10.240.64.0/20"  # cloud: none: the PodSubnet's CIDR, inside the fabric's /16
START_DEADLINE_S = 900
CGROUPS = Path("/sys/fs/cgroup")


# ---- processes by PID ----------------------------------------------------------------------

def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def alive(pid: int, expect: str | None = None) -> bool:
    """The PID runs and (when given) its command line contains `expect` (guards PID reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return expect is None or expect in cmdline(pid)


def supervisor_pid() -> int | None:
    try:
        pid = int(SUPERVISOR_PID.read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid, "demo.py serve") else None


def stop_pid(pid: int, expect: str, timeout: float = 20) -> bool:
    """SIGTERM, then SIGKILL after timeout; only when the PID still runs `expect`."""
    if not alive(pid, expect):
        return False
    os.kill(pid, signal.SIGTERM)
    if not gone_within(pid, timeout) and alive(pid, expect):
        os.kill(pid, signal.SIGKILL)
        gone_within(pid, 10)
    return True


def gone_within(pid: int, timeout: float) -> bool:
    """Whether `pid` exits within `timeout` seconds."""
    try:
        poll(f"pid {pid} to exit", lambda: not alive(pid), timeout)
        return True
    except AssertionError:
        return False


# ---- the supervisor --------------------------------------------------------------------------

class Record:
    """pids.json: name -> {pid, cmd}; written after every start."""

    def __init__(self):
        self.pids: dict[str, dict] = {}

    def add(self, name: str, pid: int, cmd: str | None = None) -> None:
        """cmd: a string the process's command line contains (default: its program's name),
        checked before signalling so a reused PID is never hit."""
        self.pids[name] = {"pid": pid,
                           "cmd": cmd or Path(cmdline(pid).split(" ")[0]).name or name}
        tmp = PIDS.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.pids, indent=2) + "\n")
        tmp.replace(PIDS)


def demo_cluster(record: Record, **kwargs):
    """A RealCluster that records the PID of every process it starts as it starts it."""
    import realnodes

    class DemoCluster(realnodes.RealCluster):
        def _process(self, name, argv):
            proc = super()._process(name, argv)
            record.add(name, proc.pid, Path(argv[0]).name)
            return proc

        def _node_process(self, node, name, argv):
            proc = super()._node_process(node, name, argv)
            record.add(f"{node.name}/{name}", proc.pid, Path(argv[0]).name)
            return proc

        def _write_node_pki(self, node):
            # The node's first process (it holds the node's mount namespace) has just set up
            # the mounts: record it before anything else starts on the node.
            record.add(f"{node.name}/holder", node.holder.pid, "sleep infinity")
            super()._write_node_pki(node)

    return DemoCluster(**kwargs)


def serve(kube_bin: str, image: str, mock_bin: str, cloud: str) -> int:
    """Builds the demo cluster, writes ready.json, and holds it until SIGTERM/SIGINT."""
    import azure_mock
    import prometheus
    import realnodes

    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {time.monotonic() - started:6.1f}s  {msg}",
              flush=True)

    stop = {"now": False}

    def on_signal(signum, _frame):
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    record = Record()
    record.add("supervisor", os.getpid(), "demo.py serve")
    rc = mock = prom = None
    try:
        workdir = STATE / "cluster"
        workdir.mkdir(parents=True, exist_ok=True)
        netcheck = realnodes.build_static_image(workdir, "netcheck.c", realnodes.NETCHECK_IMAGE,
                                                ["/netcheck"])
        log(f"starting a real cluster of {NODES} nodes (namespaces {NETNS_PREFIX}*): etcd, "
            "kube-apiserver, kube-controller-manager, kube-scheduler; containerd, kubelet and "
            "kube-proxy on every node; importing the images")
        provider_id = azure_mock.provider_id if cloud == "azure" else None  # VM node-i
        rc = demo_cluster(record, workdir=workdir, binaries=Path(kube_bin), nodes=NODES,
                          images=[Path(image), netcheck], prefix=NETNS_PREFIX,
                          provider_id=provider_id)
        rc.start()
        log(f"cluster up: API server {rc.internal_server} in {rc.cp.name}, reached here at "
            f"{rc.server}; nodes " + ", ".join(f"{n.name} {n.ip}" for n in rc.nodes.values()))
        w = realnodes.Workloads(rc)
        if cloud == "azure":
            (STATE / "mock").mkdir(exist_ok=True)
            mock = azure_mock.Mock(STATE / "mock", ["--sdn-netns", rc.fabric.name,
                                                    "--role-file", str(azure_mock.CONTROLLER_ROLE)],
                                   azure_mock.vm_topology([n.ip for n in rc.nodes.values()]),
                                   netns=rc.cp.path, host=realnodes.CP_IP,
                                   port=MOCK_PORT, binary=Path(mock_bin))
            record.add("azure-vnet-mock", mock.proc.pid, "azure-vnet-mock")
            log(f"Azure VNET mock at {mock.url} in {rc.cp.name}, SDN emulation in "
                f"{rc.fabric.name}; VMs node-0..{NODES - 1}")
            config = json.loads(mock.write_azure_json(mock.workdir / "azure.json").read_text())
            values = {"cloud": "azure",
                      "azure": {"config": config, "caBundle": mock.cert.read_text(),
                                "endpoints": {"resourceManager": mock.url,
                                              "authorityHost": mock.url, "imds": mock.url}}}
            subnet = {"azureSubnetID": azure_mock.subnet_id("nodes"),
                      "reservedCIDRs": [NODE_IPS_RESERVED]}
        else:
            values = {"cloud": "none"}
            subnet = {"cidr": POD_CIDR}
        log(f"helm install {realnodes.RELEASE} charts/vnet-ipam (cloud: {cloud}, image "
            f"{realnodes.IMAGE_REPOSITORY}:{IMAGE_TAG})")
        w.install(IMAGE_TAG, values)
        w.apply({"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
                 "metadata": {"name": PODSUBNET},
                 "spec": {**subnet, "blockPrefixLength": 28, "minFreeIPsPerNode": 8}})
        log(f"PodSubnet {PODSUBNET}: " + (f"the mock's subnet nodes, {NODE_IPS_RESERVED} kept "
                                         "for the nodes" if cloud == "azure" else POD_CIDR)
            + ", /28 blocks")
        w.wait_rollout("daemonset/vnet-ipam-agent", realnodes.NAMESPACE)
        w.wait_rollout("deployment/vnet-ipam-controller", realnodes.NAMESPACE)
        rc.wait_nodes_ready()
        log("agents and controllers rolled out, every node Ready")
        w.deployment(APP, REPLICAS)
        pods = w.running_pods(f"app={APP}", REPLICAS, timeout=300)
        if cloud == "none":
            w.route_blocks()
        log(f"deployment {APP}: {REPLICAS} netcheck pods Running: " + ", ".join(
            f"{p['status']['podIP']} on {p['spec']['nodeName']}" for p in pods))
        controllers = w.pods("app.kubernetes.io/component=controller", realnodes.NAMESPACE)
        targets = {
            "controller": sorted({f"{rc.nodes[p['spec']['nodeName']].ip}:9090"
                                  for p in controllers}),
            "agent": [f"{n.ip}:9091" for n in rc.nodes.values()],
        }
        fwd = rc.forward(PROMETHEUS_PORT, host="127.0.0.1")
        prom = prometheus.PrometheusServer(STATE / "prometheus", targets, port=PROMETHEUS_PORT,
                                           argv_prefix=rc.in_cp(),
                                           url=f"http://{fwd.address}")
        record.add("prometheus", prom.pid, "prometheus")
        prom.wait_target_up("agent", deadline_s=60)
        prom.wait_target_up("controller", deadline_s=60)
        log(f"Prometheus in {rc.cp.name} scraping {targets}; reached here at {prom.url}")
        ready = {"kubeconfig": str(rc.kubeconfig), "server": rc.server, "cloud": cloud,
                 "kubectl": str(Path(kube_bin) / "kubectl"),
                 "prometheus": prom.url, "fabric": rc.fabric.name, "controlPlane": rc.cp.name,
                 "mock": ({"url": f"https://127.0.0.1:{mock.local_port}",
                           "cert": str(mock.cert), "inCluster": mock.url,
                           "adminTokenFile": str(mock.admin_token_file)} if mock else None),
                 "nodes": {n.name: {"ip": n.ip, "netns": n.netns.name,
                                    "cgroupRoot": n.cgroup_root}
                           for n in rc.nodes.values()},
                 "metricsTargets": targets, "upSeconds": round(time.monotonic() - started, 1)}
        tmp = READY.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready, indent=2) + "\n")
        tmp.replace(READY)
        log("demo is up")
        while not stop["now"]:
            if cloud == "none":  # no SDN: play the network that routes each block to its node
                time.sleep(2)
                try:
                    w.route_blocks()
                except (AssertionError, OSError, subprocess.SubprocessError, ValueError) as e:
                    log(f"routing the blocks: {e}")  # again in 2 s
            else:
                signal.pause()
        return 0
    except KeyboardInterrupt:
        log("stopping")
        return 0
    except BaseException as e:
        FAILED.write_text(f"{type(e).__name__}: {e}\n")
        log(f"failed: {type(e).__name__}: {e}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        READY.unlink(missing_ok=True)
        t = time.monotonic()
        for what, fn in (("prometheus", lambda: prom and prom.stop()),
                         ("the mock", lambda: mock and mock.stop()),
                         ("the cluster", lambda: rc and rc.stop())):
            try:
                fn()
            except Exception as e:  # keep going: everything else must still stop
                log(f"stopping {what}: {e}")
        log(f"stopped in {time.monotonic() - t:.1f}s")


# ---- up / status / down ----------------------------------------------------------------------

def up(kube_bin: str, image: str, mock_bin: str, cloud: str) -> int:
    if supervisor_pid() is not None:
        return status(already_up=True)
    if STATE.exists() or leftovers({}):
        print("==> a previous demo left state behind; cleaning it up first")
        if down(quiet=True) != 0:
            return 1
    STATE.mkdir(parents=True)
    print(f"==> starting the demo (state and logs in {STATE}; log: {LOG})")
    with open(LOG, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--kube-bin", kube_bin,
             "--image", image, "--mock-bin", mock_bin, "--cloud", cloud],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    SUPERVISOR_PID.write_text(f"{proc.pid}\n")
    shown = 0
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        lines = LOG.read_text(errors="replace").splitlines()
        for line in lines[shown:]:
            print(f"    {line}")
        shown = len(lines)
        if READY.exists():
            break
        if proc.poll() is not None or FAILED.exists() or time.monotonic() > deadline:
            reason = FAILED.read_text().strip() if FAILED.exists() else (
                f"supervisor exited {proc.returncode}" if proc.poll() is not None
                else f"not up after {START_DEADLINE_S}s")
            print(f"demo: failed to start: {reason}\n  full log: {LOG}\n"
                  f"  component logs under {STATE}/cluster (nodes/*/ for kubelet and containerd)"
                  "\n  cleaning up (scripts/demo.sh down); the logs stay", file=sys.stderr)
            down(quiet=True, keep_logs=True)
            return 1
        time.sleep(0.3)
    return status()


def kubectl(cfg: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """kubectl built with the cluster's binaries (scripts/build-kube.sh), next to the kubeconfig's
    record in ready.json."""
    binary = json.loads(READY.read_text()).get("kubectl", "kubectl")
    return subprocess.run([binary, f"--kubeconfig={cfg}", *args], capture_output=True,
                          text=True, timeout=timeout)


def kubectl_text(cfg: str, *args: str) -> str:
    res = kubectl(cfg, *args)
    return res.stdout if res.returncode == 0 else res.stdout + res.stderr


# The kubectl plugin (docs/kubectl-ipam.md), built by scripts/demo.sh into the image's build dir.
KUBECTL_IPAM = Path(os.environ.get("VNETIPAM_KUBECTL_IPAM",
                                   ROOT / "build-image" / "kubectl-ipam" / "kubectl-ipam"))


def kubectl_ipam_text(cfg: str, *args: str, binary: Path | None = None) -> str:
    """What `kubectl ipam ARGS` prints (kubectl runs the kubectl-ipam binary with ARGS), with its
    exit status when it is not 0 (check exits 1 when it finds a problem)."""
    binary = binary or KUBECTL_IPAM
    if not binary.is_file():
        return f"  ({binary} is not built: scripts/demo.sh up builds it)\n"
    res = subprocess.run([str(binary), *args, f"--kubeconfig={cfg}"], capture_output=True,
                         text=True, timeout=60)
    return res.stdout + res.stderr + (f"  (exit {res.returncode})\n" if res.returncode else "")


def mock_nic_prefixes(mock: dict) -> dict[str, list[str]]:
    """NIC name -> its IP prefixes, from the mock's /mock/state (through the forwarder)."""
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=mock["cert"])
    # Through the forwarder the mock sees a peer off loopback: it wants its admin token.
    headers = {}
    if mock.get("adminTokenFile"):
        token = Path(mock["adminTokenFile"]).read_text().strip()
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(mock["url"] + "/mock/state", headers=headers)
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        doc = json.load(r)
    return {n["name"]: [c["privateIPAddress"] for c in n["ipConfigurations"]
                        if "/" in c["privateIPAddress"]] for n in doc["networkInterfaces"]}


def status(already_up: bool = False) -> int:
    import prometheus
    import realnodes

    pid = supervisor_pid()
    if pid is None or not READY.exists():
        if pid is not None:
            print(f"demo: starting (supervisor pid {pid}; log: {LOG})")
        elif STATE.exists() or demo_netns():
            print("demo: not up, but a previous demo left state, processes or namespaces "
                  "behind: scripts/demo.sh down removes them")
        else:
            print("demo: not up (scripts/demo.sh up starts it)")
        return 1
    info = json.loads(READY.read_text())
    cfg = info["kubeconfig"]
    if already_up:
        print(f"demo: already up (supervisor pid {pid}); not restarting it. "
              "scripts/demo.sh down stops it.\n")

    def section(title: str) -> None:
        print(f"\n=== {title}")

    def pods() -> list[dict]:
        res = kubectl(cfg, "get", "pods", "-l", f"app={APP}", "-o", "json")
        if res.returncode != 0:
            return []
        return [p for p in json.loads(res.stdout)["items"]
                if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
                and p["status"].get("phase") == "Running"]

    # The figures settle a moment after the pods start: the agents report status.used in
    # batches, the controller sums them, Prometheus scrapes. Show them once they have (or after
    # a bounded wait, as they are then).
    def settled() -> bool:
        running = len(pods())
        ips = kubectl_text(cfg, "get", "podsubnet", PODSUBNET, "-o",
                           "jsonpath={.status.allocatedIPs}").strip()
        if ips != str(running):
            return False

        def value(expr: str) -> float | None:
            samples = prometheus.query(info["prometheus"], expr)
            return samples[0]["value"] if len(samples) == 1 else None
        try:
            return (value("max(vnetipam_controller_leader)") == 1
                    and value(f"max(vnetipam_podsubnet_allocated_ips{{podsubnet=\"{PODSUBNET}\"}})")
                    == running
                    and (value("sum(vnetipam_agent_allocations_total)") or 0) >= running)
        except Exception:
            return False

    try:
        poll("the figures to settle", settled, 45, interval=0.5)
    except AssertionError:
        pass  # shown as they are

    section("kubectl get nodes -o wide")
    print(kubectl_text(cfg, "get", "nodes", "-o", "wide"), end="")
    section("kubectl get pods -o wide    (real pods in containerd; addresses from their "
            "node's blocks)")
    print(kubectl_text(cfg, "get", "pods", "-o", "wide"), end="")
    section("kubectl -n vnet-ipam-system get pods -o wide    (the chart: host network)")
    print(kubectl_text(cfg, "-n", "vnet-ipam-system", "get", "pods", "-o", "wide"), end="")
    section("kubectl get podsubnets")
    print(kubectl_text(cfg, "get", "podsubnets"), end="")
    section("kubectl get ipblocks -o wide")
    print(kubectl_text(cfg, "get", "ipblocks", "-o", "wide"), end="")
    section("kubectl ipam show    (the kubectl-ipam plugin: per PodSubnet, blocks and addresses)")
    print(kubectl_ipam_text(cfg, "show"), end="")
    running = pods()
    if running:
        node = sorted(p["spec"]["nodeName"] for p in running)[0]
        section(f"kubectl ipam show --node {node}    (its blocks, and the pods holding addresses)")
        print(kubectl_ipam_text(cfg, "show", "--node", node), end="")
        pod = sorted(p["metadata"]["name"] for p in running)[0]
        section(f"kubectl ipam why {pod}    (why a pod has no address; this one has one)")
        print(kubectl_ipam_text(cfg, "why", pod), end="")
    section("kubectl ipam check    (every pod address in a Ready block of its node, no duplicates, "
            "blocks on their NICs)")
    print(kubectl_ipam_text(cfg, "check"), end="")
    if info.get("mock"):
        section("the blocks on the nodes' NICs (Azure VNET mock) and the VNET's routes (its SDN)")
        try:
            for nic, prefixes in sorted(mock_nic_prefixes(info["mock"]).items()):
                print(f"  NIC {nic:<11} {' '.join(prefixes) or '-'}")
        except Exception as e:
            print(f"  (mock state: {e})")
    else:
        section("the VNET's routes (cloud: none: the supervisor routes each block to its node)")
    routes = subprocess.run(["ip", "-n", info["fabric"], "-j", "route", "show"],
                            capture_output=True, text=True)
    ip_to_node = {n["ip"]: name for name, n in info["nodes"].items()}
    for r in json.loads(routes.stdout or "[]"):
        if "gateway" in r:
            print(f"  route {r['dst']:<17} via {r['gateway']} ({ip_to_node.get(r['gateway'], '?')})")

    section("TCP between pods: kubectl exec <client> -- /netcheck time <server IP> 8080")
    pairs = realnodes.pod_pairs(running)
    failures = 0
    for client, server in pairs:
        ip = server["status"]["podIP"]
        res = kubectl(cfg, "exec", client["metadata"]["name"], "--", "/netcheck", "time", ip,
                      "8080", "2000")
        where = ("same node " if client["spec"]["nodeName"] == server["spec"]["nodeName"]
                 else "other node")
        answer = res.stdout.split()
        if res.returncode == 0 and len(answer) == 2:
            verdict = f"answered by {answer[0]} in {float(answer[1]):.3f} ms"
        else:
            failures += 1
            verdict = f"NO ANSWER: {(res.stderr or res.stdout).strip()}"
        print(f"  {client['metadata']['name']} ({client['status']['podIP']}, "
              f"{client['spec']['nodeName']}) -> {ip} ({where}): {verdict}")
    if not pairs:
        failures += 1
        print("  (no running pods)")

    section(f"live metrics from Prometheus ({info['prometheus']}; scraping "
            f"{', '.join(t for ts in info['metricsTargets'].values() for t in ts)})")
    sel = f'{{podsubnet="{PODSUBNET}"}}'
    queries = [
        (f"blocks allocated in PodSubnet {PODSUBNET}", f"max(vnetipam_podsubnet_allocated_blocks{sel})"),
        ("IPs in the pool", f"max(vnetipam_podsubnet_ips{sel})"),
        ("IPs used by pods", f"max(vnetipam_podsubnet_allocated_ips{sel})"),
        ("controller replicas leading", "sum(vnetipam_controller_leader)"),
        ("pod IP allocations (all agents)", "sum(vnetipam_agent_allocations_total)"),
        ("free IPs on node blocks (all agents)", "sum(vnetipam_agent_block_free_ips)"),
        ("Azure ARM requests (controller)", "sum(vnetipam_azure_requests_total)"),
    ]
    for label, expr in queries:
        try:
            samples = prometheus.query(info["prometheus"], expr)
            value = f"{samples[0]['value']:g}" if samples else "(no data yet)"
        except Exception as e:  # a status page keeps going
            value = f"(query failed: {e})"
        print(f"  {label:<40} {value:>8}    {expr}")
    try:
        per_node = prometheus.query(
            info["prometheus"], "sum by (node) (max by (node, family) (vnetipam_node_blocks))")
        print("  blocks per node: " + ", ".join(
            f"{s['metric'].get('node')}={s['value']:g}" for s in
            sorted(per_node, key=lambda s: s["metric"].get("node", ""))))
    except Exception as e:
        print(f"  blocks per node: (query failed: {e})")

    print(f"\nexport KUBECONFIG={cfg}    # works while the demo runs (supervisor pid {pid})")
    print(f"alias kubectl={info.get('kubectl', 'kubectl')}    # built with the cluster (any kubectl works)")
    print("kubectl get ipblocks -o wide      # the main view of the cluster")
    print(f"cp {KUBECTL_IPAM} /usr/local/bin/    # then: kubectl ipam show|check|why POD")
    print(f"Prometheus: {info['prometheus']}   logs: {STATE}   up in {info['upSeconds']}s")
    print("scripts/demo.sh status            # this again")
    print("scripts/demo.sh down              # stop every process, remove every namespace")
    return 1 if failures else 0


def netns_pids(name: str) -> set[int]:
    res = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return {int(x) for x in res.stdout.split()} - {os.getpid()}


def our_cgroup_roots() -> list[str]:
    """"/vipdemo-..." cgroups in any hierarchy (the nodes' cgroupRoots)."""
    roots = set()
    for hierarchy in CGROUPS.iterdir() if CGROUPS.exists() else ():
        for d in hierarchy.glob(NETNS_PREFIX + "*"):
            if d.is_dir():
                roots.add("/" + d.name)
    return sorted(roots)


def netns_inodes() -> set[int]:
    inodes = set()
    for ns in demo_netns():
        try:
            inodes.add(Path(f"/run/netns/{ns}").stat().st_ino)
        except OSError:
            pass
    return inodes


def recorded_alive(recorded: dict) -> dict[str, int]:
    """name -> PID of the recorded processes still running what they ran and, while our
    namespaces exist, inside one of them (every process the supervisor starts is): a reused PID
    is never signalled."""
    inodes = netns_inodes()
    out = {}
    for name, entry in recorded.items():
        pid = entry["pid"]
        if not alive(pid, entry["cmd"]):
            continue
        try:
            if inodes and os.stat(f"/proc/{pid}/ns/net").st_ino not in inodes:
                continue
        except OSError:
            continue
        out[name] = pid
    return out


def holder_mount_ns_pids(recorded: dict) -> set[int]:
    """The processes in the mount namespaces of the recorded node holders, only while a holder
    still is ours (it runs `sleep infinity` in a vipdemo- network namespace) and its mount
    namespace is not this process's."""
    import realnodes

    ours = netns_inodes()
    mine = os.readlink("/proc/self/ns/mnt")
    pids: set[int] = set()
    for name, entry in recorded.items():
        pid = entry["pid"]
        if not name.endswith("/holder") or not alive(pid, "sleep infinity"):
            continue
        try:
            net_ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            mnt = os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            continue
        if net_ino in ours and mnt != mine:
            pids |= realnodes.mount_ns_pids(pid) | {pid}
    return pids


def demo_netns() -> list[str]:
    import netlab
    return [n for n in netlab.netns_list() if n.startswith(NETNS_PREFIX)]


def leftovers(recorded: dict) -> set[int]:
    """What is left of a demo: recorded PIDs still running what they ran, and every process in
    a vipdemo- network namespace, cgroup, or node mount namespace."""
    import realnodes

    pids = set(recorded_alive(recorded).values())
    for ns in demo_netns():
        pids |= netns_pids(ns)
    for root in our_cgroup_roots():
        pids |= realnodes.cgroup_pids(root)
    pids |= holder_mount_ns_pids(recorded)
    return {p for p in pids if alive(p)} - {os.getpid()}


def down(quiet: bool = False, keep_logs: bool = False) -> int:
    import realnodes

    say = (lambda *_: None) if quiet else print
    t = time.monotonic()
    pid = supervisor_pid()
    if pid is not None:
        say(f"==> stopping the supervisor (pid {pid}): it stops the cluster, the mock and "
            "Prometheus")
        stop_pid(pid, "demo.py serve", timeout=180)
    recorded = {}
    try:
        recorded = json.loads(PIDS.read_text())
    except (OSError, ValueError):
        pass
    recorded.pop("supervisor", None)
    # Leftovers (after a SIGKILL of the supervisor): the recorded processes by PID, then whatever
    # is still in our namespaces and cgroups (pods, shims, the node holders), in rounds, as
    # killing a parent can leave children behind.
    left = recorded_alive(recorded)
    for name, p in left.items():
        say(f"    stopping leftover {name} (pid {p})")
        os.kill(p, signal.SIGTERM)
    for p in left.values():
        gone_within(p, 5)
    for _ in range(10):
        left = leftovers(recorded)
        if not left:
            break
        say(f"    killing {len(left)} leftover processes in {NETNS_PREFIX}* namespaces and "
            f"cgroups: {' '.join(str(p) for p in sorted(left))}")
        realnodes.kill_all(left)
    for root in our_cgroup_roots():
        where = sorted(d.parent.name for d in CGROUPS.glob(f"*/{root.lstrip('/')}"))
        try:
            realnodes.remove_cgroups(root)
            for d in CGROUPS.glob(f"*/{root.lstrip('/')}"):  # any other hierarchy (unified)
                for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                                  key=lambda p: -len(p.parts)):
                    realnodes.rmdir_when_empty(sub)
                realnodes.rmdir_when_empty(d)
            say(f"    removed cgroup {root} (left in: {', '.join(where)})")
        except OSError as e:
            print(f"demo: cgroup {root}: {e}", file=sys.stderr)
    for name in demo_netns():
        subprocess.run(["ip", "netns", "delete", name], check=False)
        say(f"    removed leftover namespace {name}")
    left_ns, left_cg, left_pids = demo_netns(), our_cgroup_roots(), leftovers(recorded)
    if left_ns or left_cg or left_pids:
        print(f"demo: could not remove: namespaces {left_ns}, cgroups {left_cg}, processes "
              f"{sorted(left_pids)}", file=sys.stderr)
        return 1
    if STATE.exists() and not keep_logs:
        subprocess.run(["rm", "-rf", "--one-file-system", str(STATE)], check=False)
    say(f"==> demo is down in {time.monotonic() - t:.1f}s: {len(recorded)} recorded processes "
        f"gone, no {NETNS_PREFIX}* namespace or cgroup left")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["up", "serve", "status", "is-up", "down"])
    ap.add_argument("--kube-bin", help="directory with the Kubernetes binaries (build-kube.sh)")
    ap.add_argument("--image", help="the project's OCI image archive (build-image.sh)")
    ap.add_argument("--mock-bin", help="the azure-vnet-mock binary to run on this machine")
    ap.add_argument("--cloud", choices=["azure", "none"], default="azure",
                    help="the chart's cloud mode (default azure, against the mock)")
    ap.add_argument("--already-up", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("demo: run as root (network namespaces)", file=sys.stderr)
        return 1
    if a.command in ("up", "serve"):
        for flag in ("kube_bin", "image", "mock_bin"):
            if not getattr(a, flag):
                ap.error(f"{a.command} needs --{flag.replace('_', '-')}")
        args = (str(Path(a.kube_bin).resolve()), str(Path(a.image).resolve()),
                str(Path(a.mock_bin).resolve()), a.cloud)
        return up(*args) if a.command == "up" else serve(*args)
    if a.command == "status":
        return status(a.already_up)
    if a.command == "is-up":
        return 0 if supervisor_pid() is not None and READY.exists() else 1
    return down()


if __name__ == "__main__":
    sys.exit(main())
