#!/usr/bin/env python3
"""The demo's orchestration (scripts/demo.sh is the entry point; run as root).

    demo.py up --kube-bin DIR   start the demo (detached) and show it
    demo.py status              show the running demo again
    demo.py is-up               exit 0 when a demo is running
    demo.py down                stop it: every process it made and every namespace it made

How it stays up: `up` starts a supervisor (`demo.py serve`, its own session, detached from the
terminal) that builds the simulated cluster of e2e/simcluster.py and then waits for SIGTERM. The
control plane, the controller and the agents are its children and are killed by the kernel if it
dies (PR_SET_PDEATHSIG); the mock and Prometheus are stopped by it. Every PID is recorded in
<state>/pids.json as soon as it exists, so `down` can stop by PID whatever is left even after a
SIGKILL of the supervisor, and removes the namespaces named vipdemo-*.

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
PODSUBNET = "pods"
PODS_PER_NODE = 2
START_DEADLINE_S = 300


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


def serve(kube_bin: str) -> int:
    """Builds the demo cluster, writes ready.json, and holds it until SIGTERM/SIGINT."""
    from cluster import Cluster
    import prometheus
    from simcluster import SimCluster

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    stop = {"now": False}

    def on_signal(signum, _frame):
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    record = Record()
    record.add("supervisor", os.getpid(), "demo.py serve")
    kube = sim = prom = None
    try:
        log("control plane: etcd + kube-apiserver")
        kube = Cluster(STATE / "kube", Path(kube_bin))
        kube.start()
        record.add("etcd", kube.etcd.pid)
        record.add("kube-apiserver", kube.apiserver.pid)
        log(f"control plane ready at {kube.server}")
        sim = SimCluster(kube, STATE / "cluster", nodes=3, name=PODSUBNET, node_prefix="node",
                         netns_prefix=NETNS_PREFIX, log=log)
        sim.start()
        for name, pid in sim.pids().items():
            record.add(name, pid)
        log("PodSubnet pods: the mock's subnet 10.240.0.0/16 in /28 blocks")
        sim.create_podsubnet()
        sim.wait_cni_configs()
        sim.wait_blocks_ready()
        log("every node has a Ready block, routed by the SDN emulation")
        prom = prometheus.PrometheusServer(STATE / "prometheus", sim.metrics_targets())
        record.add("prometheus", prom.pid)
        log(f"prometheus: {prom.url}")
        pods = []
        for i in range(PODS_PER_NODE):
            for node in sim.node_names:
                h = sim.add_pod(node, f"web-{node.rsplit('-', 1)[1]}-{i}")
                pods.append({"name": h.name, "node": h.node, "ip": h.ip,
                             "netns": h.pod.netns.name, "hostVeth": h.host_veth})
                log(f"pod {h.name} on {h.node}: {h.ip}")
        ready = {"kubeconfig": str(kube.kubeconfig), "server": kube.server,
                 "prometheus": prom.url, "mock": sim.mock.url, "fabric": sim.lab.fabric.name,
                 "nodes": {n.name: {"ip": n.ip, "netns": n.netns.name}
                           for n in sim.lab.nodes.values()},
                 "agents": {a.node: {"metrics": a.metrics, "socket": str(a.socket)}
                            for a in sim.agents.values()},
                 "controllerMetrics": sim.controller_metrics, "pods": pods}
        tmp = READY.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready, indent=2) + "\n")
        tmp.replace(READY)
        log("demo is up")
        while not stop["now"]:
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
        for what, fn in (("cluster", lambda: sim and sim.stop(release=False)),
                         ("prometheus", lambda: prom and prom.stop()),
                         ("control plane", lambda: kube and kube.stop())):
            try:
                fn()
            except Exception as e:  # keep going: everything else must still stop
                log(f"stopping {what}: {e}")
        log("stopped")


# ---- up / status / down ----------------------------------------------------------------------

def up(kube_bin: str) -> int:
    if supervisor_pid() is not None:
        return status(already_up=True)
    if STATE.exists():
        print("==> a previous demo left state behind; cleaning it up first")
        down(quiet=True)
    STATE.mkdir(parents=True)
    print(f"==> starting the demo (state and logs in {STATE}; log: {LOG})")
    with open(LOG, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--kube-bin", kube_bin],
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
                  f"  component logs under {STATE}/cluster and {STATE}/kube\n"
                  "  cleaning up (scripts/demo.sh down)", file=sys.stderr)
            down(quiet=True, keep_logs=True)
            return 1
        time.sleep(0.3)
    return status()


def kubectl(cfg: str, *args: str) -> str:
    res = subprocess.run(["kubectl", f"--kubeconfig={cfg}", *args], capture_output=True,
                         text=True, timeout=60)
    return res.stdout if res.returncode == 0 else res.stdout + res.stderr


def ping_ms(netns: str, ip: str) -> float | None:
    res = subprocess.run(["ip", "netns", "exec", netns, "ping", "-n", "-c", "1", "-W", "2", ip],
                         capture_output=True, text=True, timeout=20)
    if res.returncode != 0:
        return None
    for part in res.stdout.split():
        if part.startswith("time="):
            return float(part[5:])
    return 0.0


def status(already_up: bool = False) -> int:
    import prometheus

    pid = supervisor_pid()
    if pid is None or not READY.exists():
        print("demo: not up (scripts/demo.sh up starts it)")
        return 1
    info = json.loads(READY.read_text())
    cfg = info["kubeconfig"]
    if already_up:
        print(f"demo: already up (supervisor pid {pid}); not restarting it. "
              "scripts/demo.sh down stops it.\n")

    def section(title: str) -> None:
        print(f"\n=== {title}")

    # The figures settle a moment after the pods start: the agents report status.used in
    # batches, the controller sums them, Prometheus discovers and scrapes its targets. Show them
    # once they have (or after a bounded wait, as they are then).
    def settled() -> bool:
        ips = kubectl(cfg, "get", "podsubnet", PODSUBNET, "-o",
                      "jsonpath={.status.allocatedIPs}").strip()
        if ips != str(len(info["pods"])):
            return False
        # Prometheus has scraped every agent since its last pod started (the agents' allocation
        # counters add up to the pods; each agent's free-IP gauge comes in the same scrape), and
        # the controller since the pool's figure settled.
        def value(expr: str) -> float | None:
            samples = prometheus.query(info["prometheus"], expr)
            return samples[0]["value"] if len(samples) == 1 else None
        try:
            return (value("max(vnetipam_controller_leader)") == 1
                    and value("sum(vnetipam_podsubnet_allocated_ips)") == len(info["pods"])
                    and (value("sum(vnetipam_agent_allocations_total)") or 0) >= len(info["pods"]))
        except Exception:
            return False

    try:
        poll("the figures to settle", settled, 45, interval=0.5)
    except AssertionError:
        pass  # shown as they are

    section("kubectl get podsubnets")
    print(kubectl(cfg, "get", "podsubnets"), end="")
    section("kubectl get ipblocks -o wide")
    print(kubectl(cfg, "get", "ipblocks", "-o", "wide"), end="")
    section("pods (network namespaces playing the pods; addresses from the nodes' blocks)")
    for p in info["pods"]:
        print(f"  {p['name']:<10} node {p['node']:<7} {p['ip']:<15} host veth {p['hostVeth']}")

    section("pods pinging each other across nodes (and on the same node)")
    pods = info["pods"]
    failures = 0
    for src in pods[: len(info["nodes"])]:
        for dst in pods:
            if dst is src:
                continue
            ms = ping_ms(src["netns"], dst["ip"])
            where = "same node " if dst["node"] == src["node"] else "other node"
            verdict = f"ok  {ms:.3f} ms" if ms is not None else "NO ANSWER"
            failures += ms is None
            print(f"  {src['name']} ({src['ip']}) -> {dst['name']} ({dst['ip']}, {where}): "
                  f"{verdict}")

    section(f"live metrics from Prometheus ({info['prometheus']})")
    queries = [
        ("blocks allocated in PodSubnet pods", f'vnetipam_podsubnet_allocated_blocks{{podsubnet="{PODSUBNET}"}}'),
        ("IPs in the pool", f'vnetipam_podsubnet_ips{{podsubnet="{PODSUBNET}"}}'),
        ("IPs used by pods", f'vnetipam_podsubnet_allocated_ips{{podsubnet="{PODSUBNET}"}}'),
        ("controller is leader", "max(vnetipam_controller_leader)"),
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
        per_node = prometheus.query(info["prometheus"], "vnetipam_node_blocks")
        print("  blocks per node: " + ", ".join(
            f"{s['metric'].get('node')}={s['value']:g}" for s in
            sorted(per_node, key=lambda s: s["metric"].get("node", ""))))
    except Exception as e:
        print(f"  blocks per node: (query failed: {e})")

    print(f"\nexport KUBECONFIG={cfg}")
    print("kubectl get ipblocks -o wide      # the main view of the cluster")
    print(f"Prometheus: {info['prometheus']}   logs: {STATE}")
    print("scripts/demo.sh down              # stop every process, remove every namespace")
    return 1 if failures else 0


def down(quiet: bool = False, keep_logs: bool = False) -> int:
    import netlab

    say = (lambda *_: None) if quiet else print
    pid = supervisor_pid()
    if pid is not None:
        say(f"==> stopping the supervisor (pid {pid}) and what it runs")
        stop_pid(pid, "demo.py serve", timeout=60)
    recorded = {}
    try:
        recorded = json.loads(PIDS.read_text())
    except (OSError, ValueError):
        pass
    for name, entry in recorded.items():
        if stop_pid(entry["pid"], entry["cmd"]):
            say(f"    stopped leftover {name} (pid {entry['pid']})")
    for name in netlab.netns_list():
        if name.startswith(NETNS_PREFIX):
            subprocess.run(["ip", "netns", "delete", name], check=False)
            say(f"    removed leftover namespace {name}")
    left_ns = [n for n in netlab.netns_list() if n.startswith(NETNS_PREFIX)]
    left_pids = [f"{n} ({e['pid']})" for n, e in recorded.items() if alive(e["pid"], e["cmd"])]
    if left_ns or left_pids:
        print(f"demo: could not remove: namespaces {left_ns}, processes {left_pids}",
              file=sys.stderr)
        return 1
    if STATE.exists() and not keep_logs:
        subprocess.run(["rm", "-rf", "--one-file-system", str(STATE)], check=False)
    say(f"==> demo is down: {len(recorded)} recorded processes gone, no {NETNS_PREFIX}* namespace left")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["up", "serve", "status", "is-up", "down"])
    ap.add_argument("--kube-bin", help="directory with etcd and kube-apiserver (build-kube.sh)")
    ap.add_argument("--already-up", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("demo: run as root (network namespaces)", file=sys.stderr)
        return 1
    if a.command in ("up", "serve") and not a.kube_bin:
        ap.error(f"{a.command} needs --kube-bin")
    if a.command == "up":
        return up(a.kube_bin)
    if a.command == "serve":
        return serve(a.kube_bin)
    if a.command == "status":
        return status(a.already_up)
    if a.command == "is-up":
        return 0 if supervisor_pid() is not None and READY.exists() else 1
    return down()


if __name__ == "__main__":
    sys.exit(main())
