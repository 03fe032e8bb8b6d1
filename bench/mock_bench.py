#!/usr/bin/env python3
"""How azure-vnet-mock scales with the number of VMs: the time from exec to /mock/healthz
answering (topology load), and the time of K sequential NIC PUTs, each adding one /28 prefix to
another NIC. The topology has the shape bench/controller_bench.py gives the mock (one subnet
10.0.0.0/12 in a 10.0.0.0/8 VNET, VM vm-<i> with NIC vm-<i>-nic at base + 4 + i).

    python3 bench/mock_bench.py --vms 1000,5000 --puts 5000 \
        --binary build-lab/azure-mock/azure-vnet-mock [--binary /tmp/old-azure-vnet-mock]

Several --binary flags are run in turn, round after round (--rounds), so a before/after pair
shares the machine's load. Plain HTTP on loopback, --no-auth, zero latency and async delay, no
NRP limits: what is timed is the mock. Also prints the mock process's CPU seconds (user+system,
from /proc), which the load of other processes disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from azure_mock import API, int_to_ip, ip_to_int, nic_id, topology_with_subnets  # noqa: E402
from cluster import free_port  # noqa: E402
from polling import wait_http_ok  # noqa: E402

SUBNET = "10.0.0.0/12"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def run_one(binary: str, topo_path: Path, vms: int, puts: int, workdir: Path) -> dict:
    port = free_port()
    log = open(workdir / "mock.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [binary, "--listen", f"http://127.0.0.1:{port}", "--topology", str(topo_path),
         "--no-auth", "--latency-ms", "0", "--async-delay-ms", "0", "--writes-per-5min", "0",
         "--reads-per-5min", "0", "--no-subscription-limits", "--seed", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    out: dict = {"binary": binary, "vms": vms}
    try:
        def alive() -> None:
            if proc.poll() is not None:
                raise SystemExit(f"{binary} exited {proc.returncode}")

        # The mock loads its topology before it listens: healthy = loaded.
        wait_http_ok(f"{binary} healthy", f"http://127.0.0.1:{port}/mock/healthz", 600,
                     alive=alive, interval=0.01)
        out["load_s"] = round(time.monotonic() - started, 3)
        out["load_cpu_s"] = round(cpu_seconds(proc.pid), 2)
        if puts:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            base = ip_to_int(SUBNET.split("/")[0])
            # Blocks above the primaries: /28 number k of the subnet's second half.
            first_block = base + (1 << 19)
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            for k in range(puts):
                i = k % vms
                path = f"{nic_id(i, 'vm')}?{API}"
                body = {"location": "eastus", "properties": {"ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"primary": True}},
                    {"name": f"block{k}", "properties": {
                        "privateIPAllocationMethod": "Static",
                        "privateIPAddress": int_to_ip(first_block + 16 * k),
                        "privateIPAddressPrefixLength": 28}}]}}
                conn.request("PUT", path, json.dumps(body),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
                if resp.status not in (200, 201):
                    raise SystemExit(f"PUT {i}: {resp.status} {raw[:300]!r}")
            out["puts"] = puts
            out["puts_s"] = round(time.monotonic() - t0, 3)
            out["puts_cpu_s"] = round(cpu_seconds(proc.pid) - cpu0, 2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    out["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", action="append", required=True)
    ap.add_argument("--vms", default="1000,5000")
    ap.add_argument("--puts", type=int, default=0, help="sequential NIC PUTs after the load")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mock-scale-") as tmp:
        workdir = Path(tmp)
        for vms in (int(v) for v in args.vms.split(",")):
            topo = topology_with_subnets(
                [{"name": "pods", "prefix": SUBNET, "vms": vms, "vmPrefix": "vm"}],
                address_prefixes=["10.0.0.0/8"])
            topo_path = workdir / f"topology-{vms}.json"
            topo_path.write_text(json.dumps(topo))
            for _ in range(args.rounds):
                for binary in args.binary:
                    print(json.dumps(run_one(binary, topo_path, vms, args.puts, workdir)),
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
