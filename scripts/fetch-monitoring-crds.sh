#!/usr/bin/env bash
# Fetches the real prometheus-operator CRDs for ServiceMonitor and PrometheusRule, so the tests
# validate the chart's monitoring objects against the schemas prometheus-operator serves, not
# stand-ins. They ship in the prometheus-operator Go module (example/prometheus-operator-crd/),
# which the Go module proxy serves; the module's checksum is pinned below, so what the tests
# validate against is exactly this release. Cached outside the checkout:
#
#   ${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/monitoring-crds/<version>/
#
# Idempotent, under a lock so concurrent callers fetch once. The cache directory is always the
# last line on stdout; logs go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE=github.com/prometheus-operator/prometheus-operator
VERSION=v0.85.0
SUM="h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
CRDS=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)

LOG_NAME=fetch-monitoring-crds
# shellcheck source=scripts/go-build-cache.sh
source "$ROOT/scripts/go-build-cache.sh"

CACHE="${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/monitoring-crds"
OUT="$CACHE/$VERSION"

cached() {
  local f
  for f in "${CRDS[@]}"; do [[ -s "$OUT/$f" ]] || return 1; done
}

cache_enter
cache_tmp "$VERSION"
go_setup "$TMP"

start=$SECONDS
# A module cache of its own inside TMP: only the two files are kept.
info="$(GOMODCACHE="$TMP/mod" GOFLAGS=-modcacherw "$GO" mod download -json "$MODULE@$VERSION")" ||
  die "go mod download $MODULE@$VERSION failed: $info"
got="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Sum"])' <<<"$info")"
[[ $got == "$SUM" ]] || die "$MODULE@$VERSION has checksum $got, pinned $SUM"
dir="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <<<"$info")"
for f in "${CRDS[@]}"; do
  install -m 644 "$dir/example/prometheus-operator-crd/$f" "$TMP/$f"
done
rm -rf "$TMP/mod"
elapsed=$((SECONDS - start))
cache_commit
