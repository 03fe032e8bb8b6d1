#!/usr/bin/env bash
# Builds the reference CNI plugins vnet-ipam ships and tests with (loopback, portmap, ptp,
# host-local) from github.com/containernetworking/plugins at the release pinned in
# scripts/cni-plugins/go.mod (its header says why not Debian's), from the Go module proxy with the
# machine's Go, and caches them outside the checkout:
#
#   ${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/cni-plugins/<version>/{loopback,portmap,ptp,host-local}
#
# The module's checksum is pinned below as well as in go.sum: a go.mod moved to another release
# without updating both fails here. Static (no cgo), -trimpath, -buildvcs=false, the release's
# version stamped as its own Makefile does: the same sources give the same binaries. Each binary
# must then answer VERSION with spec 1.1.0 among its versions, which the agent's conflist is at.
#
# Idempotent: when the plugins are cached, prints the directory and exits at once. Otherwise builds
# into a temporary directory next to it and renames it into place (atomic), under a lock so
# concurrent callers build once. The cache directory is always the last line on stdout; logs go to
# stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD="$ROOT/scripts/cni-plugins"
MODULE=github.com/containernetworking/plugins
SUM="h1:8oU6WsIsU3bpnNZuvHp74a6cE1MJwbj2P7s4/yTUNlA="
declare -A PACKAGES=(
  [loopback]=plugins/main/loopback
  [portmap]=plugins/meta/portmap
  [ptp]=plugins/main/ptp
  [host-local]=plugins/ipam/host-local
)
SPEC_VERSION=1.1.0

LOG_NAME=build-cni-plugins
# shellcheck source=scripts/go-build-cache.sh
source "$ROOT/scripts/go-build-cache.sh"

VERSION="$(mod_version "$MOD/go.mod" "$MODULE")"
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read $MODULE version from $MOD/go.mod"
grep -qxF "$MODULE $VERSION $SUM" "$MOD/go.sum" ||
  die "$MOD/go.sum does not pin $MODULE $VERSION to $SUM: update both together"

CACHE="${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/cni-plugins"
OUT="$CACHE/$VERSION"

cached() {
  local p
  for p in "${!PACKAGES[@]}"; do [[ -x "$OUT/$p" ]] || return 1; done
}

cache_enter
go_setup "$MOD"
cache_tmp "cni-plugins-$VERSION"

LDFLAGS="-s -w -X $MODULE/pkg/utils/buildversion.BuildVersion=$VERSION"
log "building $MODULE $VERSION (${!PACKAGES[*]}) with $GOVERSION into $OUT"
start=$SECONDS
(
  cd "$MOD"
  pkgs=()
  for p in "${!PACKAGES[@]}"; do pkgs+=("$MODULE/${PACKAGES[$p]}"); done
  nice -n 10 "$GO" build -trimpath -buildvcs=false -ldflags="$LDFLAGS" -o "$TMP/" "${pkgs[@]}"
)
elapsed=$((SECONDS - start))

for p in "${!PACKAGES[@]}"; do
  answer="$(CNI_COMMAND=VERSION "$TMP/$p" </dev/null)" || die "$p does not answer VERSION"
  [[ $answer == *"\"$SPEC_VERSION\""* ]] || die "$p does not speak CNI spec $SPEC_VERSION: $answer"
done
cat >"$TMP/BUILDINFO" <<INFO
$MODULE $VERSION $SUM
go $GOVERSION
build_seconds $elapsed
built $(date -u +%Y-%m-%dT%H:%M:%SZ)
INFO

cache_commit
