"""The NetworkPolicy engine of the real-node e2e tests: kube-router's network policy controller.

Built from the Go module proxy by scripts/build-netpol.sh (pinned in e2e/kube/netpol/go.mod, whose
header says why this engine) and cached outside the checkout. It runs once per node, inside the
node's network and mount namespaces, and needs `iptables`, `iptables-save`, `iptables-restore`
(the same backend as the node's kube-proxy) and `ipset` on PATH. It never runs in the machine's
own network namespace: it rewrites the filter table of the namespace it runs in.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "scripts" / "build-netpol.sh"

# Exits 0 inside a node once the engine has installed its top-level chain (the jump from FORWARD
# is in place; a pod's own chain follows at the next sync after the pod gets its IP).
READY_CHECK = ["iptables", "-w", "-t", "filter", "-S", "KUBE-ROUTER-FORWARD"]


def binary() -> Path:
    """The kube-router executable: $VNETIPAM_NETPOL_BIN when set, otherwise the one
    scripts/build-netpol.sh returns (at once when cached; it builds it, about a minute, if not)."""
    if os.environ.get("VNETIPAM_NETPOL_BIN"):
        return Path(os.environ["VNETIPAM_NETPOL_BIN"])
    out = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return Path(out.strip().splitlines()[-1]) / "kube-router"


def argv(node_name: str, node_ip: str, kubeconfig: Path | str, *,
         health_port: int | None = None, metrics_port: int | None = None,
         service_cidr: str = "10.96.0.0/24", sync_period: str = "1m") -> list[str]:
    """argv that runs the engine for one node (to be prefixed with the node's nsenter).

    What it enforces: every networking.k8s.io/v1 NetworkPolicy (ingress and egress, pod and
    namespace selectors, ipBlock with except, numbered, named and ranged ports), for the pods
    whose status.hostIP is this node's InternalIP. How: in the filter table of the namespace it
    runs in, FORWARD, OUTPUT and INPUT jump to KUBE-ROUTER-* chains, which send packets whose
    destination (ingress) or source (egress) is a local pod's IP to that pod's chain; the pod's
    chain accepts ESTABLISHED/RELATED and traffic from the node itself, runs the policies that
    select the pod (ipsets of the peers' IPs, all pods cluster-wide), and REJECTs what none allows.
    Matching is by pod IP, not interface, so per-pod veths with /32 host routes are covered: pod to
    pod on one node is checked twice in this node's FORWARD (sender's egress, receiver's ingress),
    across nodes in the sender's node's FORWARD (egress) and the receiver's (ingress). It relies on
    pod IPs reaching the receiving node unmasqueraded.

    It reads this node's Node object once at start (so start it after the kubelet registered the
    node) and takes the node's InternalIP from it: `node_ip` must be that address (the kubelet's
    --node-ip); it is only used here to bind the metrics listener. `service_cidr` is the API
    server's --service-cluster-ip-range (required; its INPUT chain lets traffic to it pass). No
    pod CIDR, no sysctl, no kernel module load. Listens on nothing unless asked: `health_port`
    serves /healthz on every address of the node, `metrics_port` serves /metrics on node_ip.
    Policy changes are applied on the API event; `sync_period` is the resync that repairs rules."""
    return [
        # NODE_NAME is the first name it tries (then the hostname, shared with the machine here).
        "env", f"NODE_NAME={node_name}",
        str(binary()),
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
        "--run-loadbalancer=false", "--enable-cni=false",
        "--enable-ipv4=true", "--enable-ipv6=false",
        f"--service-cluster-ip-range={service_cidr}",
        f"--iptables-sync-period={sync_period}",
        f"--health-port={health_port or 0}",
        f"--metrics-port={metrics_port or 0}", f"--metrics-addr={node_ip}",
        "--v=1",
    ]
