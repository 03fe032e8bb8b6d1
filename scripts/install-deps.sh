#!/usr/bin/env bash
# Installs every Debian package vnet-ipam builds, tests or runs with. Idempotent: packages already
# present are skipped without touching apt, so a warm machine pays nothing.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config clang-format
  # libraries
  libcpprest-dev nlohmann-json3-dev libssl-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  libnl-3-dev libnl-route-3-dev libboost-system-dev zlib1g-dev libyaml-cpp-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # end-to-end: network namespaces and routes (ip), certificates for the fixtures (openssl)
  iproute2 openssl
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
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
