#!/usr/bin/env bash
# The one-command demo: a three-node vnet-ipam cluster simulated on this machine.
#
#   scripts/demo.sh          (or: up)   install packages, build, start everything, show it working
#   scripts/demo.sh status              show it again (podsubnets, ipblocks, pings, metrics)
#   scripts/demo.sh down                stop every process and remove every namespace it made
#
# Runs as root (network namespaces). `up` on a demo that is already up does not restart it: it
# says so and shows the running one again. Everything lives under ${VNETIPAM_DEMO_DIR:-/tmp/vnet-ipam-demo}
# (logs, kubeconfig, recorded PIDs); the namespaces are named vipdemo-*. The processes keep running
# after this script returns; see scripts/demo.py for how they are held and stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cmd=${1:-up}
build_dir=$(realpath -m "${VNETIPAM_BUILD_DIR:-build}")
export VNETIPAM_BUILD_DIR=$build_dir

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
    echo "==> building into $build_dir"
    if [ ! -f "$build_dir/build.ninja" ]; then
      cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    cmake --build "$build_dir" --target vnet-ipam-controller vnet-ipam-agent vnet-ipam \
      vnet-transparent azure-vnet-mock
    echo "==> kube-apiserver and etcd (scripts/build-kube.sh; the first run on a machine builds them, about 20 minutes)"
    kube_bin=$(scripts/build-kube.sh | tail -n 1)
    exec python3 scripts/demo.py up --kube-bin "$kube_bin"
    ;;
  status | down)
    exec python3 scripts/demo.py "$cmd"
    ;;
  *)
    echo "usage: scripts/demo.sh [up|status|down]" >&2
    exit 2
    ;;
esac
