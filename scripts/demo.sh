#!/usr/bin/env bash
# The one-command demo: a real three-node Kubernetes cluster on this machine running vnet-ipam.
#
#   scripts/demo.sh          (or: up)   install packages, build, start everything, show it working
#   scripts/demo.sh status              show it again (nodes, pods, podsubnets, ipblocks, TCP
#                                       between pods, metrics)
#   scripts/demo.sh down                stop every process, remove every namespace and cgroup
#
# Runs as root (network and mount namespaces, cgroups). `up` on a demo that is already up does not
# restart it: it says so and shows the running one again. Everything lives under
# ${VNETIPAM_DEMO_DIR:-/tmp/vnet-ipam-demo} (logs, kubeconfig, recorded PIDs); the namespaces are
# named vipdemo-*, the nodes' cgroups /vipdemo-node-*. The processes keep running after this
# script returns; see scripts/demo.py for how they are held and stopped. VNETIPAM_DEMO_CLOUD=none
# installs the chart without a cloud (the demo then routes the blocks itself) instead of against
# the Azure VNET mock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cmd=${1:-up}
image_build_dir=build-image

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root: it creates network namespaces (nothing touches this machine's own interfaces or routes)" >&2
  exit 1
fi

case "$cmd" in
  up)
    if [ -x "$(command -v python3)" ] && python3 scripts/demo.py is-up 2>/dev/null; then
      exec python3 scripts/demo.py status --already-up
    fi
    echo "==> installing packages (scripts/install-deps.sh)"
    scripts/install-deps.sh
    echo "==> Kubernetes binaries (scripts/build-kube.sh; the first run on a machine builds them, about 20 minutes)"
    kube_bin=$(scripts/build-kube.sh | tail -n 1)
    echo "==> the vnet-ipam image (scripts/build-image.sh, into $image_build_dir)"
    image=$(scripts/build-image.sh --tag demo --build-dir "$image_build_dir" \
      --out "$image_build_dir/vnet-ipam-demo.tar" | tail -n 1)
    echo "==> kubectl-ipam, the kubectl plugin the status page runs (into $image_build_dir)"
    cmake --build "$image_build_dir" --target kubectl-ipam >&2
    exec python3 scripts/demo.py up --kube-bin "$kube_bin" --image "$image" \
      --mock-bin "$image_build_dir/azure-mock/azure-vnet-mock" --cloud "${VNETIPAM_DEMO_CLOUD:-azure}"
    ;;
  status | down)
    exec python3 scripts/demo.py "$cmd"
    ;;
  *)
    echo "usage: scripts/demo.sh [up|status|down]" >&2
    exit 2
    ;;
esac
