#!/usr/bin/env python3
"""CNI ADD+DEL latency: vnet-transparent + vnet-ipam (real agent, real API server) against the
reference ptp + host-local (built from source at the pinned release by
scripts/build-cni-plugins.sh), in the same run, on the same node namespace, with the same pods.
Not a test: it prints numbers.

    cmake --build build --target vnet-ipam vnet-transparent vnet-ipam-agent
    VNETIPAM_BUILD_DIR=build python3 bench/cni_bench.py [--pods 200] [--parallel 8] [--rounds 1]

What one sample is: exec ADD, then exec DEL, of one pod, as a runtime does (CNI_* environment,
config on stdin, exec'd by a worker thread that entered the node namespace once (see
enter_netns), so neither `ip netns exec` nor a fork of this process is timed). Pod namespaces are
made before timing (the runtime's work, not the plugin's). Both configurations run the same pods, sequentially and then `--parallel` at a time,
interleaved pod by pod (sequential) or in chunks of 4 x parallel pods, the order flipping each
time, so a load change on a shared machine hits both alike (see measure_pair). Both sides are two
processes per command (main plugin + the IPAM plugin it execs) started the same way.

Also: the IPAM plugins alone (vnet-ipam -> agent over its socket, durable journal; host-local ->
files under a lock), exec ADD+DEL.

--dual-stack: the main plugin pair with an IPv4 and an IPv6 address per pod, both sides on
host-local with two ranges (one IPv4, one IPv6): vnet-transparent+host-local against
ptp+host-local, so the ratio is the dataplane's alone.

Targets: main plugin pair <= 0.7x the peer (also dual-stack), IPAM alone <= 0.8x host-local.
The agent runs with --release-cooldown-seconds 0 so 200 ADD/DEL in a row cannot exhaust the
block; the cooldown only delays reuse, it costs nothing on the ADD/DEL path.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))

from built import built  # noqa: E402
from cluster import Cluster, build_binaries  # noqa: E402
from netlab import REFERENCE_CNI_DIR, Lab, run_cni  # noqa: E402
from test_cni import Agent  # noqa: E402

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(netns_path: Path) -> None:
    """Moves the calling thread (only: setns is per thread) into netns_path. Worker threads that
    exec the plugins call this once, so each exec is a plain vfork+exec that inherits the node
    namespace, as a runtime's exec from the node's namespace is. A per-exec preexec_fn would
    force Python into a full fork of this (large, threaded) process for every command, a cost
    neither plugin has under a real runtime, which would pad both sides' times alike."""
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns_path}")
    finally:
        os.close(fd)


class Config:
    def __init__(self, name: str, plugin: Path, conf: dict, cni_path: list[Path]):
        self.name, self.plugin, self.conf = name, plugin, conf
        self.cni_path = cni_path

    def add_del(self, pod) -> float:
        """ADD then DEL of one pod, from a worker thread already in the node namespace (so
        run_cni execs the plugin there directly); returns the seconds both took."""
        args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={pod.name}"
        t0 = time.perf_counter()
        for command in ("ADD", "DEL"):
            res = run_cni(self.plugin, command, self.conf, node=None,
                          container_id=pod.container_id, netns=pod.netns.path,
                          cni_path=self.cni_path, args=args)
            if not res.ok:
                raise RuntimeError(f"{self.name} {command} of {pod.name}: {res.stdout}")
        return time.perf_counter() - t0


def summary(samples: list[float], total: float) -> dict:
    samples = sorted(samples)
    return {"p50_ms": statistics.median(samples) * 1e3,
            "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3,
            "total_s": total}


def measure_pair(ours: Config, peer: Config, node_ns: Path, pods: list, parallel: int,
                 ours_first: bool) -> dict:
    """Both configurations on the same pods, interleaved finely so that both see the same load
    on a shared machine: sequentially, pod by pod (ours then peer on pod i, the order flipping
    every pod); `parallel` at a time, in chunks of 4 x parallel pods (one side runs a chunk with
    `parallel` workers, then the other the same chunk; the order flips every chunk). A total is
    the sum of one side's sample times (sequential) or chunk wall times (parallel)."""
    samples = {ours.name: [], peer.name: []}
    totals = {ours.name: 0.0, peer.name: 0.0}
    flip = ours_first
    chunk = 1 if parallel == 1 else 4 * parallel
    with ThreadPoolExecutor(parallel, initializer=enter_netns, initargs=(node_ns,)) as pool:
        for at in range(0, len(pods), chunk):
            part = pods[at:at + chunk]
            for c in ((ours, peer) if flip else (peer, ours)):
                t0 = time.perf_counter()
                times = list(pool.map(c.add_del, part))
                wall = time.perf_counter() - t0
                samples[c.name] += times
                # One pod at a time, the total leaves out the hand-off to the worker thread.
                totals[c.name] += sum(times) if parallel == 1 else wall
            flip = not flip
    return {name: summary(samples[name], totals[name]) for name in samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every measurement; rounds alternate which side goes first")
    ap.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    ap.add_argument("--ours-dir", type=Path, default=None,
                    help="take vnet-transparent and vnet-ipam from this directory instead of the "
                         "build (an older build, for before/after)")
    ap.add_argument("--peer-dir", type=Path, default=None,
                    help="A/B two builds: the peer is vnet-transparent+vnet-ipam from this "
                         "directory instead of ptp+host-local (main plugin pair only)")
    ap.add_argument("--only", choices=["main", "ipam"], default=None,
                    help="run only the main plugin pair or only the IPAM plugins")
    ap.add_argument("--dual-stack", action="store_true",
                    help="the main plugin pair only, an IPv4 and an IPv6 address per pod: "
                         "vnet-transparent and ptp, both with host-local and two ranges")
    args = ap.parse_args()
    if args.dual_stack and (args.peer_dir is not None or args.only == "ipam"):
        ap.error("--dual-stack compares vnet-transparent with ptp: not with --peer-dir or "
                 "--only ipam")
    if args.peer_dir is not None and args.only == "ipam":
        ap.error("--peer-dir compares the main plugin pair only: it cannot go with --only ipam")

    work = Path(tempfile.mkdtemp(prefix="cni-bench-"))
    cluster = Cluster(work / "kube", build_binaries())
    cluster.start()
    lab = Lab()
    agent = None
    try:
        node = lab.add_node("node-0", "10.240.0.4")
        node_ns = node.netns.path
        (work / "agent").mkdir()
        agent = Agent(cluster, work / "agent", "bench-node", block="10.240.64.0/24", cooldown_s=0)
        pods = [lab.add_pod(node, f"p{i}") for i in range(args.pods)]
        ours_dir = args.ours_dir or built("node-agent/cni/vnet-transparent").parent
        path = [ours_dir, REFERENCE_CNI_DIR]
        host_local = {"type": "host-local", "dataDir": str(work / "host-local"),
                      "ranges": [[{"subnet": "10.244.0.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}
        ipam = {"type": "vnet-ipam", "socket": str(agent.socket)}
        pairs = [
            ("main plugin + IPAM",
             Config("vnet-transparent+vnet-ipam", ours_dir / "vnet-transparent",
                    {"cniVersion": "1.0.0", "name": "vnet", "type": "vnet-transparent",
                     "hostVethPrefix": "vnet", "mtu": 1500, "ipam": ipam}, path),
             Config("ptp+host-local", REFERENCE_CNI_DIR / "ptp",
                    {"cniVersion": "1.0.0", "name": "peer", "type": "ptp", "ipMasq": False,
                     "mtu": 1500, "ipam": host_local}, path), 0.7),
            ("IPAM alone",
             Config("vnet-ipam", ours_dir / "vnet-ipam",
                    {"cniVersion": "1.0.0", "name": "vnet", "type": "vnet-ipam", "ipam": ipam},
                    path),
             Config("host-local", REFERENCE_CNI_DIR / "host-local",
                    {"cniVersion": "1.0.0", "name": "peer-ipam", "type": "host-local",
                     "ipam": host_local}, path), 0.8),
        ]
        if args.peer_dir is not None:
            peer_conf = {**pairs[0][1].conf, "name": "vnet-b"}
            pairs[0] = (pairs[0][0], pairs[0][1],
                        Config(f"vnet-transparent@{args.peer_dir.name}",
                               args.peer_dir / "vnet-transparent", peer_conf,
                               [args.peer_dir, *path]), pairs[0][3])
            pairs = pairs[:1]
        if args.dual_stack:
            dual = {**host_local, "ranges": [[{"subnet": "10.244.0.0/24"}],
                                             [{"subnet": "fd00:244::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
            pairs = [
                ("dual-stack",
                 Config("vnet-transparent+host-local", ours_dir / "vnet-transparent",
                        {"cniVersion": "1.0.0", "name": "vnet", "type": "vnet-transparent",
                         "hostVethPrefix": "vnet", "mtu": 1500, "ipam": dual}, path),
                 Config("ptp+host-local", REFERENCE_CNI_DIR / "ptp",
                        {"cniVersion": "1.0.0", "name": "peer", "type": "ptp", "ipMasq": False,
                         "mtu": 1500, "ipam": dual}, path), 0.7)]
        if args.only == "main":
            pairs = pairs[:1]
        elif args.only == "ipam":
            pairs = pairs[1:]
        # Warm the page cache and the agent's connection path: a few of each, not counted.
        with ThreadPoolExecutor(1, initializer=enter_netns, initargs=(node_ns,)) as warm:
            for _, ours, peer, _ in pairs:
                for c in (ours, peer):
                    for p in pods[:4]:
                        warm.submit(c.add_del, p).result()

        results = []
        print(f"{args.pods} pods, ADD+DEL each, node netns {node.netns.name}; budget: "
              f"{os.cpu_count()} CPUs, parallelism 1 and {args.parallel}"
              f"{', dual-stack (IPv4 + IPv6 per pod)' if args.dual_stack else ''}")
        print(f"{'what':20} {'mode':6} {'config':28} {'p50 ms':>8} {'p99 ms':>8} {'total s':>8}"
              f" {'ratio':>6} {'target':>6} {'load1':>6}")
        for title, ours, peer, target in pairs:
            for parallel in (1, args.parallel):
                mode = "seq" if parallel == 1 else f"x{parallel}"
                for r in range(args.rounds):
                    load = os.getloadavg()[0]
                    got = measure_pair(ours, peer, node_ns, pods, parallel, ours_first=r % 2 == 1)
                    ratio = got[ours.name]["total_s"] / got[peer.name]["total_s"]
                    for c in (peer, ours):
                        m = got[c.name]
                        tail = (f" {ratio:6.2f} {'<=' + str(target):>6} {load:6.2f}"
                                if c is ours else "")
                        print(f"{title:20} {mode:6} {c.name:28} {m['p50_ms']:8.2f} "
                              f"{m['p99_ms']:8.2f} {m['total_s']:8.2f}{tail}")
                    results.append({"what": title, "mode": mode, "round": r, "ratio": ratio,
                                    "loadavg_1m_at_start": load,
                                    "target": target, **{k: v for k, v in got.items()}})
        if args.json:
            print(json.dumps(results, indent=1))
    finally:
        if agent is not None:
            agent.stop()
        lab.close()
        cluster.stop()


if __name__ == "__main__":
    main()
