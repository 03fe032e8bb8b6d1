#!/usr/bin/env bash
# Builds the NetworkPolicy engine the real-node e2e tests run on every node, kube-router's network
# policy controller (github.com/cloudnativelabs/kube-router/v2, run with --run-firewall only), from
# the Go module proxy with the machine's Go, and caches it outside the checkout:
#
#   ${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/netpol/kube-router-<version>/kube-router
#
# The version comes from the pinned module e2e/kube/netpol/go.mod (its header says why this engine);
# its go.sum makes the build reproducible (-mod=readonly, the go default; -trimpath, -buildvcs=false
# and the release's own date as build date keep the output independent of the checkout and the day).
#
# Idempotent: when the binary is cached, prints the directory and exits at once. Otherwise builds
# into a temporary directory next to it and renames it into place (atomic), under a lock so
# concurrent callers build once. The cache directory is always the last line on stdout; logs go to
# stderr. At run time the engine needs the iptables and ipset commands (scripts/install-deps.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD="$ROOT/e2e/kube/netpol"
PKG=github.com/cloudnativelabs/kube-router/v2
ENGINE=kube-router

LOG_NAME=build-netpol
# shellcheck source=scripts/go-build-cache.sh
source "$ROOT/scripts/go-build-cache.sh"

VERSION="$(mod_version "$MOD/go.mod" "$PKG")"
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read $PKG version from $MOD/go.mod"

CACHE="${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/netpol"
OUT="$CACHE/$ENGINE-$VERSION"

cached() { [[ -x "$OUT/$ENGINE" ]]; }

cache_enter
go_setup "$MOD" # kube-router has no cgo; its release builds are static too
cache_tmp "$ENGINE-$VERSION"

# Version stamps as kube-router's Makefile sets them; the build date is the release's own time.
BUILD_DATE="$(cd "$MOD" && "$GO" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$PKG")"
LDFLAGS="-s -w -X $PKG/pkg/version.Version=$VERSION -X $PKG/pkg/version.BuildDate=$BUILD_DATE"

log "building $PKG/cmd/kube-router $VERSION with $GOVERSION into $OUT"
start=$SECONDS
(
  cd "$MOD"
  nice -n 10 "$GO" build -trimpath -buildvcs=false -ldflags="$LDFLAGS" -o "$TMP/$ENGINE" \
    "$PKG/cmd/kube-router"
)
elapsed=$((SECONDS - start))

"$TMP/$ENGINE" --version >&2
cat >"$TMP/BUILDINFO" <<EOF
$PKG $VERSION
go $GOVERSION
build_seconds $elapsed
built $(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

cache_commit
