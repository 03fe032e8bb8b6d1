#!/usr/bin/env python3
"""Benchmark (run by hand, not a test): how fast vnet-ipam-controller gives N new nodes a Ready
block, against kube-controller-manager's node IPAM giving the same number of nodes a podCIDR, on
the same fresh API server in the same run.

    python3 bench/controller_bench.py --nodes 1000 [--build-dir build] [--order controller,kcm]
    python3 bench/controller_bench.py --nodes 5000 --budgets equal
    python3 bench/controller_bench.py --nodes 1000 --budgets arm --time-scale 10

Each contender runs under each client budget of --budgets, in that order:
  equal     both at the same client budget, --kube-api-qps 50 --kube-api-burst 100 (--qps and
            --burst change it): the honest ratio, because both are bound by client QPS;
  defaults  each at its own default (vnet-ipam 50/100, kube-controller-manager 20/30), printed
            too because that is what an operator gets without tuning;
  arm       vnet-ipam alone (kcm makes no Azure calls) at its default ARM budget against the
            mock's real limits (ARM's subscription token buckets, the Network RP's 1,000 writes and
            10,000 reads per 5 minutes), both run --time-scale times faster: the join must take
            what the write budget allows (writes made / the budget's rate; target <= 1.1x) and
            get no 429. Under equal and defaults the ARM budget and the mock's limits are off, so
            those runs measure the controller itself.
Each budget gets a fresh API server and mock, so no run sees another's objects.

One fresh etcd + kube-apiserver (e2e/cluster.py), the CRDs, and azure-vnet-mock (HTTPS, zero
latency, async operations completing at once, request limits off) with one VM + NIC per node.
Then, for each contender in turn:
  1. start it and wait until it is healthy (vnet-ipam: /readyz and the PodSubnet carved);
  2. create N Node objects at once (16 client threads) and start the clock at the first create;
  3. stop the clock when a watch has seen every node with a Ready IPBlock (vnet-ipam) or a
     spec.podCIDR (kube-controller-manager --controllers=nodeipam --allocate-node-cidrs);
  4. read: API requests the contender made (apiserver_request_total deltas, minus this script's
     own requests), Azure requests (mock counters), peak RSS (VmHWM of the process), then stop it
     and delete its nodes.
Prints a table and the time ratio vnet-ipam / kcm (target <= 1.0; memory target <= 64 MiB RSS at
5000 nodes). The Node objects of both phases have different names, so neither sees the other's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--build-dir", default=os.environ.get("VNETIPAM_BUILD_DIR", str(ROOT / "build")))
    p.add_argument("--order", default="controller,kcm",
                   help="which contenders run, in this order (controller, kcm)")
    p.add_argument("--budgets", default="equal,defaults",
                   help="client budgets to run, in this order (equal, defaults, arm)")
    p.add_argument("--time-scale", type=float, default=10,
                   help="under the arm budget: how many times faster the mock's request limits "
                        "and the controller's ARM budget run (60: 5 minutes last 5 s)")
    p.add_argument("--qps", type=float, default=50,
                   help="--kube-api-qps for both contenders under the equal budget")
    p.add_argument("--burst", type=int, default=100,
                   help="--kube-api-burst for both contenders under the equal budget")
    p.add_argument("--workers", type=int, default=None, help="vnet-ipam-controller --workers")
    p.add_argument("--create-threads", type=int, default=16)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir)")
    return p.parse_args()


ARGS = parse_args()
os.environ["VNETIPAM_BUILD_DIR"] = str(Path(ARGS.build_dir).resolve())

from azure_mock import Mock, provider_id, subnet_id, topology_with_subnets  # noqa: E402
from cluster import Cluster  # noqa: E402
from polling import poll  # noqa: E402
from controller_harness import (ControllerProcess, KubeApi, metric_sum,  # noqa: E402
                                parse_metrics, phase)

SUBNET = "10.0.0.0/12"            # 65,536 /28 blocks
RESERVED = ["10.0.0.0/18"]        # the NICs' primary addresses (10.0.0.4 + i, i < 16380)
KCM_CLUSTER_CIDR = "172.16.0.0/12"
KCM_MASK = 28                     # the same block size as vnet-ipam's


class Scoreboard:
    """Follows a watch and records when every expected node has what it should."""

    def __init__(self, api: KubeApi, path: str, expected: set[str], done_for):
        self.api = api
        self.path = path
        self.expected = expected
        self.done_for = done_for  # object -> node name that is done, or None
        self.done: set[str] = set()
        self.finished = threading.Event()
        self.finished_at: float | None = None
        self.first_at: float | None = None  # when the first node was done
        self.watches = 0  # requests: the watch ends every timeoutSeconds and is made again
        self.stop = threading.Event()
        _, rv = api.list(path + "?limit=1")
        self.thread = threading.Thread(target=self._run, args=(rv,), daemon=True)
        self.thread.start()

    def _run(self, rv: str) -> None:
        while not self.stop.is_set():
            try:
                self.watches += 1
                for ev in self.api.watch(self.path, rv, self.stop):
                    obj = ev["object"]
                    if ev["type"] == "BOOKMARK" or "metadata" not in obj:
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        continue
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        node = self.done_for(obj)
                        if node in self.expected and node not in self.done:
                            self.done.add(node)
                            if self.first_at is None:
                                self.first_at = time.monotonic()
                            if len(self.done) == len(self.expected):
                                self.finished_at = time.monotonic()
                                self.finished.set()
                                return
            except Exception as e:  # a dropped watch: resume from rv
                print(f"  watch {self.path}: {e}; resuming", file=sys.stderr)
                time.sleep(0.2)


def apiserver_requests(api: KubeApi) -> dict[tuple[str, str], float]:
    status, text = api.cluster.get("/metrics", timeout=30)
    assert status == 200
    out: dict[tuple[str, str], float] = {}
    for name, labels, value in parse_metrics(text.decode()):
        if name == "apiserver_request_total":
            key = (labels.get("resource", ""), labels.get("verb", ""))
            out[key] = out.get(key, 0) + value
    return out


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def create_nodes(api: KubeApi, names: list[str], labels: dict, azure: bool) -> None:
    def one(n: str) -> None:
        api.create_node(n, labels, provider_id(n) if azure else None)
    with ThreadPoolExecutor(ARGS.create_threads) as pool:
        list(pool.map(one, names))


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# The controller's default ARM write budget (--azure-write-budget-per-5min) and the burst its
# pacer takes out of it (lib/azure/arm_pacer.h): what the arm budget's expected time is made of.
ARM_WRITE_BUDGET = 500
ARM_READ_BUDGET = 5000
ARM_WRITE_BURST = ARM_WRITE_BUDGET // 100


def budget_flags(budget: str, style: str) -> list[str]:
    """The client-budget flags of one contender: none under `defaults`, --qps/--burst under
    `equal` (vnet-ipam-controller takes "--flag value", kube-controller-manager "--flag=value")."""
    if budget in ("defaults", "arm"):
        return []
    if budget != "equal":
        raise SystemExit(f"--budgets: unknown budget {budget}")
    pairs = [("--kube-api-qps", str(ARGS.qps)), ("--kube-api-burst", str(ARGS.burst))]
    if style == "=":
        return [f"{k}={v}" for k, v in pairs]
    return [x for kv in pairs for x in kv]


def by_label(samples, name: str, label: str) -> dict:
    """The samples of one metric summed per value of one label."""
    out: dict = {}
    for n, ls, v in samples:
        if n == name:
            out[ls.get(label, "")] = out.get(ls.get(label, ""), 0) + int(v)
    return out


def run_controller(api: KubeApi, cluster: Cluster, mock: Mock, workdir: Path, n: int,
                   budget: str) -> dict:
    names = [f"vm-{i}" for i in range(n)]
    api.create_podsubnet("bench", {"azureSubnetID": subnet_id("pods"), "reservedCIDRs": RESERVED,
                                   "minFreeIPsPerNode": 8})
    extra = budget_flags(budget, " ")
    if budget == "arm":
        # The defaults, said again: the e2e harness turns pacing off unless told.
        extra += ["--azure-write-budget-per-5min", str(ARM_WRITE_BUDGET),
                  "--azure-read-budget-per-5min", str(ARM_READ_BUDGET),
                  "--azure-budget-time-scale", str(ARGS.time_scale)]
    else:
        extra += ["--azure-read-budget-per-5min", "0", "--azure-write-budget-per-5min", "0"]
    if ARGS.workers is not None:
        extra += ["--workers", str(ARGS.workers)]
    ctl = ControllerProcess(workdir / "controller", cluster.kubeconfig, mock=mock,
                            identity="bench", extra=tuple(extra), log_level="warn").start()
    try:
        ctl.wait_ready(60)
        poll("the PodSubnet to be carved",
             lambda: ((api.podsubnet("bench") or {}).get("status") or {}).get("totalBlocks"), 60,
             describe=lambda: f"{api.podsubnet('bench')}\n{ctl.tail()}")
        mock_before = mock.state()["counters"]
        api_before = apiserver_requests(api)
        own_before = api.requests

        def ready_node(block: dict):
            return block["spec"]["nodeName"] if phase(block) == "Ready" else None
        board = Scoreboard(api, "/apis/vnetipam.io/v1alpha1/ipblocks", set(names), ready_node)
        t0 = time.monotonic()
        create_nodes(api, names, {"bench": "controller"}, azure=True)
        created = time.monotonic() - t0
        if not board.finished.wait(ARGS.timeout):
            raise SystemExit(f"vnet-ipam: only {len(board.done)}/{n} nodes Ready after "
                             f"{ARGS.timeout}s\n{ctl.tail()}")
        took = board.finished_at - t0
        first = board.first_at - t0
        rss = ctl.peak_rss_kib()
        own = api.requests - own_before + 1 + board.watches  # + the list before the watches
        api_delta = delta(apiserver_requests(api), api_before)
        api.requests += 1
        mock_after = mock.state()["counters"]
        samples = ctl.metrics()
        board.stop.set()
    finally:
        code = ctl.stop()
    return {
        "who": "vnet-ipam-controller", "nodes": n, "seconds": took, "create_seconds": created,
        "first_seconds": first,
        "api": api_delta, "own": own, "rss_kib": rss, "exit": code,
        "azure": {k: mock_after[k] - mock_before.get(k, 0) for k in ("armRequests", "armWrites",
                                                                      "throttled")},
        "azure_metric": metric_sum(samples, "vnetipam_azure_requests_total"),
        "azure_by_operation": by_label(samples, "vnetipam_azure_requests_total", "operation"),
        "azure_waits": {labels["reason"]: value for name, labels, value in samples
                        if name == "vnetipam_azure_wait_seconds_total"},
    }


def run_kcm(api: KubeApi, cluster: Cluster, n: int, budget: str) -> dict:
    names = [f"kcm-node-{i}" for i in range(n)]
    extra = budget_flags(budget, "=")
    proc = cluster.start_controller_manager(
        "--controllers=nodeipam", "--allocate-node-cidrs", f"--cluster-cidr={KCM_CLUSTER_CIDR}",
        f"--node-cidr-mask-size={KCM_MASK}", *extra)
    try:
        api_before = apiserver_requests(api)
        own_before = api.requests

        def with_cidr(node: dict):
            return node["metadata"]["name"] if (node.get("spec") or {}).get("podCIDR") else None
        board = Scoreboard(api, "/api/v1/nodes", set(names), with_cidr)
        t0 = time.monotonic()
        create_nodes(api, names, {"bench": "kcm"}, azure=False)
        created = time.monotonic() - t0
        if not board.finished.wait(ARGS.timeout):
            raise SystemExit(f"kcm: only {len(board.done)}/{n} nodes have a podCIDR after "
                             f"{ARGS.timeout}s\n{proc.tail()}")
        took = board.finished_at - t0
        first = board.first_at - t0
        rss = peak_rss_kib(proc.pid)
        own = api.requests - own_before + 1 + board.watches
        api_delta = delta(apiserver_requests(api), api_before)
        api.requests += 1
        board.stop.set()
    finally:
        cluster.stop_controller_manager(proc)
    return {"who": "kube-controller-manager nodeipam", "nodes": n, "seconds": took,
            "create_seconds": created, "first_seconds": first, "api": api_delta, "own": own, "rss_kib": rss,
            "azure": {}, "azure_metric": 0}


def delete_nodes(api: KubeApi, selector: str) -> None:
    api.ok("DELETE", f"/api/v1/nodes?labelSelector={selector}")


def summarise_api(r: dict) -> tuple[int, str]:
    """Requests the contender made: the apiserver's count minus this script's own (its node
    creates, lists and watches, counted by resource: nodes POST/LIST/WATCH)."""
    total = int(sum(r["api"].values()))
    contender = total - r["own"]
    by_resource: dict[str, int] = {}
    for (resource, verb), v in r["api"].items():
        by_resource[f"{resource}:{verb}"] = by_resource.get(f"{resource}:{verb}", 0) + int(v)
    top = sorted(by_resource.items(), key=lambda kv: -kv[1])[:8]
    return contender, ", ".join(f"{k}={v}" for k, v in top)


def budget_label(budget: str) -> str:
    if budget == "arm":
        return f"ARM limits x{ARGS.time_scale:g}"
    return f"qps {ARGS.qps:g}/burst {ARGS.burst}" if budget == "equal" else "own defaults"


def mock_limit_flags(budget: str) -> list[str]:
    """Azure's request limits at --time-scale under the arm budget; off otherwise."""
    if budget == "arm":
        return ["--time-scale", str(ARGS.time_scale)]
    return ["--writes-per-5min", "0", "--reads-per-5min", "0", "--no-subscription-limits"]


def arm_budget_report(r: dict) -> str:
    """The join's time against what the write budget allows, and the 429s."""
    writes = r["azure"]["armWrites"]
    rate = (ARM_WRITE_BUDGET - ARM_WRITE_BURST) / (300 / ARGS.time_scale)  # writes per second
    allowed = max(0, writes - ARM_WRITE_BURST) / rate
    ratio = r["seconds"] / allowed if allowed > 0 else float("nan")
    waits = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(r.get("azure_waits", {}).items()) if v)
    return (f"ARM budget x{ARGS.time_scale:g}: {writes} writes at {rate:.2f}/s allow "
            f"{allowed:.1f}s, took {r['seconds']:.1f}s: {ratio:.3f}x (target <= 1.1); "
            f"{r['azure']['throttled']} throttled responses (target 0); controller waits: "
            f"{waits or 'none'}")


def run_budget(workdir: Path, budget: str) -> list[dict]:
    """Both contenders under one client budget, on a fresh API server and mock."""
    n = ARGS.nodes
    topo = topology_with_subnets([{"name": "pods", "prefix": SUBNET, "vms": n, "vmPrefix": "vm"}],
                                 address_prefixes=["10.0.0.0/8"])
    (workdir / "kube").mkdir(parents=True, exist_ok=True)
    (workdir / "mock").mkdir(exist_ok=True)
    cluster = Cluster(workdir / "kube")
    cluster.start()
    mock = None
    results = []
    try:
        cluster.kubectl("apply", "-f", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/ipblocks.vnetipam.io", "crd/podsubnets.vnetipam.io")
        mock = Mock(workdir / "mock", ["--latency-ms", "0", "--async-delay-ms", "0",
                                       *mock_limit_flags(budget),
                                       "--page-size", "1000", "--seed", "1"], topo)
        api = KubeApi(cluster, user_agent="vnet-ipam-bench")
        for who in ARGS.order.split(","):
            if budget == "arm" and who != "controller":
                continue  # only vnet-ipam calls Azure
            print(f"== {who}: {n} nodes, client budget {budget_label(budget)}", flush=True)
            if who == "controller":
                r = run_controller(api, cluster, mock, workdir, n, budget)
                delete_nodes(api, "bench=controller")
            elif who == "kcm":
                r = run_kcm(api, cluster, n, budget)
                delete_nodes(api, "bench=kcm")
            else:
                raise SystemExit(f"--order: unknown contender {who}")
            r["budget"] = budget
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "api"}), flush=True)
    finally:
        if mock is not None:
            mock.stop()
        cluster.stop()
    return results


def main() -> int:
    workdir = Path(ARGS.workdir or tempfile.mkdtemp(prefix="vnet-ipam-ctlbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    budgets = ARGS.budgets.split(",")
    results = []
    for budget in budgets:
        results += run_budget(workdir / budget, budget)

    print()
    print(f"{'contender':34} {'client budget':22} {'nodes':>6} {'time s':>8} {'nodes/s':>8} "
          f"{'API req':>8} {'Azure req':>9} {'peak RSS MiB':>12}")
    for r in results:
        contender, _ = summarise_api(r)
        az = r["azure"].get("armRequests", "-")
        print(f"{r['who']:34} {budget_label(r['budget']):22} {r['nodes']:>6} "
              f"{r['seconds']:>8.2f} {r['nodes'] / r['seconds']:>8.1f} {contender:>8} "
              f"{az!s:>9} {r['rss_kib'] / 1024:>12.1f}")
    for r in results:
        _, detail = summarise_api(r)
        who = f"{r['who']} ({budget_label(r['budget'])})"
        print(f"  {who}: apiserver_request_total by resource:verb (incl. the bench's own "
              f"{r['own']}): {detail}")
        if r["azure"]:
            print(f"  {who}: Azure (mock) {r['azure']}, controller-counted attempts "
                  f"{int(r['azure_metric'])}: {r.get('azure_by_operation', {})}")
        if r["budget"] == "arm":
            print(f"  {who}: {arm_budget_report(r)}")
        print(f"  {who}: node creation by the bench took {r['create_seconds']:.2f}s; the first "
              f"node was done after {r['first_seconds']:.2f}s")
    print()
    for budget in budgets:
        times = {r["who"].split()[0]: r["seconds"] for r in results if r["budget"] == budget}
        if "vnet-ipam-controller" in times and "kube-controller-manager" in times:
            ratio = times["vnet-ipam-controller"] / times["kube-controller-manager"]
            print(f"ratio vnet-ipam / kcm time, client budget {budget_label(budget)}: "
                  f"{ratio:.2f}  (target <= 1.0 at the equal budget)")
    print(f"logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
