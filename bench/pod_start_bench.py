#!/usr/bin/env python3
"""Pod start latency on real nodes: the vnet-ipam chart against the reference ptp + host-local,
on the same three kubelet + containerd nodes, in one run. Not a test: it prints numbers.

    scripts/build-kube.sh && scripts/build-image.sh
    python3 bench/pod_start_bench.py [--pods 60] [--rounds 2]

The cluster is e2e/realnodes.py's: control plane and nodes in network namespaces on this
machine. Each round runs both sides on the same nodes, the order flipping each round:
  - ptp + host-local: each node gets the reference ptp, host-local and loopback plugins (the
    release scripts/build-cni-plugins.sh builds, as the image ships) and a
    conflist with its own /24 (what a static per-node pod CIDR gives);
  - vnet-ipam: the chart installed with helm (`cloud: none`, the local image), a PodSubnet, and
    the agents' conflist; the agents and the controller are up and every node has a Ready block
    before the clock starts (what a running cluster has).
One sample is one pod of a `--pods`-replica Deployment (spread evenly, no readiness probe): from
the moment a watch sees the Pod created to the moment it sees it Ready. The watch also records
when each pod was scheduled and when its sandbox had its network (PodReadyToStartContainers), so
the table shows where the time goes. Between sides the Deployment is deleted and its pods are
waited for until gone, then the side's CNI config is removed.

Budget: both sides share the nodes, the kubelets (default QPS), containerd, the control plane
and the machine's 2 cores; the only difference is the CNI configuration on the nodes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))

import netlab  # noqa: E402
import realnodes  # noqa: E402
from cluster import build_binaries  # noqa: E402
from polling import poll  # noqa: E402
from realnodes import NAMESPACE, RealCluster, Workloads  # noqa: E402

APP = "bench"
POD_CIDR = "10.240.64.0/18"
REFERENCE_PLUGINS = ("ptp", "host-local", "loopback")
REFERENCE_CONF = "10-reference.conflist"


class PodWatch:
    """Watches the Deployment's pods; per pod, when (time.monotonic()) each phase was first seen."""

    def __init__(self, rc: RealCluster, selector: str):
        self.seen: dict[str, dict[str, float]] = {}
        self._closed = False
        url = (f"{rc.server}/api/v1/namespaces/default/pods?watch=1&labelSelector={selector}"
               "&allowWatchBookmarks=false")
        self._resp = urllib.request.urlopen(urllib.request.Request(url),
                                            context=rc._ssl_context(), timeout=600)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._resp:
                now = time.monotonic()
                ev = json.loads(line)
                pod = ev["object"]
                name = pod["metadata"]["name"]
                t = self.seen.setdefault(name, {})
                t.setdefault("created", now)
                for c in pod.get("status", {}).get("conditions", []):
                    if c["status"] == "True":
                        t.setdefault(c["type"], now)
        except Exception:  # noqa: BLE001 - closing the response ends the stream mid-read
            if not self._closed:
                raise

    def close(self) -> None:
        self._closed = True
        self._resp.close()


def measure(w: Workloads, pods: int) -> list[dict[str, float]]:
    watch = PodWatch(w.rc, f"app={APP}")
    try:
        w.deployment(APP, pods, readiness=False)
        w.running_pods(f"app={APP}", pods, timeout=600)
        poll("the watch to see every pod Ready",
             lambda: sum("Ready" in t for t in watch.seen.values()) >= pods, 30)
        return [t for t in watch.seen.values() if "Ready" in t]
    finally:
        watch.close()
        w.rc.kubectl("delete", "deployment", APP, "--wait=true", timeout=300)
        poll("the pods to be gone", lambda: not w.pods(f"app={APP}"), 300, interval=0.5)


def reference_on(rc: RealCluster) -> None:
    for i, node in enumerate(rc.nodes.values()):
        bindir = node.path("/opt/cni/bin")
        bindir.mkdir(parents=True, exist_ok=True)
        for p in REFERENCE_PLUGINS:
            (bindir / p).write_bytes((netlab.reference_cni_dir() / p).read_bytes())
            (bindir / p).chmod(0o755)
        conf = node.path("/etc/cni/net.d")
        conf.mkdir(parents=True, exist_ok=True)
        (conf / REFERENCE_CONF).write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "reference",
            "plugins": [{"type": "ptp", "mtu": 1500,
                         "ipam": {"type": "host-local",
                                  "ranges": [[{"subnet": f"10.240.{128 + i}.0/24"}]],
                                  "routes": [{"dst": "0.0.0.0/0"}]}}]}))
    rc.wait_nodes_ready()


def reference_off(rc: RealCluster) -> None:
    for node in rc.nodes.values():
        node.path(f"/etc/cni/net.d/{REFERENCE_CONF}").unlink(missing_ok=True)


def vnet_ipam_on(w: Workloads, installed: list[bool]) -> None:
    if not installed[0]:
        w.install(realnodes.IMAGE_TAG, {"cloud": "none"})
        w.apply({"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
                 "metadata": {"name": "pods"},
                 "spec": {"cidr": POD_CIDR, "blockPrefixLength": 26, "minFreeIPsPerNode": 32}})
        installed[0] = True
    else:
        w.rc.kubectl("-n", NAMESPACE, "patch", "daemonset/vnet-ipam-agent", "--type=json", "-p",
                     json.dumps([{"op": "remove",
                                  "path": "/spec/template/spec/nodeSelector/bench"}]))
    w.wait_rollout("daemonset/vnet-ipam-agent", NAMESPACE)
    w.wait_rollout("deployment/vnet-ipam-controller", NAMESPACE)
    w.rc.wait_nodes_ready()


def vnet_ipam_off(w: Workloads) -> None:
    # The agents withdraw their conflist when they stop; a DaemonSet selecting no node stops
    # them and keeps the release (and its blocks) for the next round.
    w.rc.kubectl("-n", NAMESPACE, "patch", "daemonset/vnet-ipam-agent", "--type=merge", "-p",
                 json.dumps({"spec": {"template": {"spec": {"nodeSelector": {"bench": "off"}}}}}))
    poll("the agents to stop", lambda: not w.pods("app.kubernetes.io/component=agent",
                                                  NAMESPACE), 120, interval=0.5)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    ready = [t["Ready"] - t["created"] for t in samples]
    sched = [t["PodScheduled"] - t["created"] for t in samples if "PodScheduled" in t]
    net = [t["PodReadyToStartContainers"] - t.get("PodScheduled", t["created"]) for t in samples
           if "PodReadyToStartContainers" in t]
    run = [t["Ready"] - t["PodReadyToStartContainers"] for t in samples
           if "PodReadyToStartContainers" in t]
    return {"n": len(ready), "p50": pct(ready, 0.5), "p99": pct(ready, 0.99),
            "mean": statistics.fmean(ready), "sched": statistics.median(sched) if sched else 0,
            "sandbox": statistics.median(net) if net else 0,
            "containers": statistics.median(run) if run else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    import tempfile
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="vnet-ipam-podstart-"))
    workdir.mkdir(parents=True, exist_ok=True)
    images = [realnodes.build_project_image(realnodes.IMAGE_TAG),
              realnodes.build_static_image(workdir, "netcheck.c", realnodes.NETCHECK_IMAGE,
                                           ["/netcheck"])]
    rc = RealCluster(workdir, build_binaries(), nodes=3, images=images)
    results: dict[str, list] = {"ptp+host-local": [], "vnet-ipam": []}
    try:
        rc.start()
        w = Workloads(rc)
        installed = [False]
        for r in range(a.rounds):
            order = ["ptp+host-local", "vnet-ipam"] if r % 2 == 0 else ["vnet-ipam",
                                                                         "ptp+host-local"]
            for side in order:
                if side == "ptp+host-local":
                    reference_on(rc)
                    results[side] += measure(w, a.pods)
                    reference_off(rc)
                else:
                    vnet_ipam_on(w, installed)
                    results[side] += measure(w, a.pods)
                    vnet_ipam_off(w)
                s = summary(results[side][-a.pods:])
                print(f"round {r + 1} {side}: p50 {s['p50']:.2f} s, p99 {s['p99']:.2f} s",
                      flush=True)
    finally:
        rc.stop()
    print(f"\nPod creation to Ready, {a.pods} pods x {a.rounds} rounds on 3 real nodes "
          "(kubelet + containerd 1.6 + runc), 2 cores shared; no readiness probe.")
    print(f"{'CNI':<16} {'n':>4} {'p50 s':>7} {'p99 s':>7} {'mean s':>7}   median: "
          "to scheduled / scheduled to sandbox+network / to Ready")
    rows = {side: summary(samples) for side, samples in results.items()}
    for side, s in rows.items():
        print(f"{side:<16} {s['n']:>4} {s['p50']:>7.2f} {s['p99']:>7.2f} {s['mean']:>7.2f}   "
              f"{s['sched']:.2f} / {s['sandbox']:.2f} / {s['containers']:.2f}")
    ours, ref = rows["vnet-ipam"], rows["ptp+host-local"]
    print(f"ratio vnet-ipam / ptp+host-local: p50 {ours['p50'] / ref['p50']:.2f}, "
          f"p99 {ours['p99'] / ref['p99']:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
