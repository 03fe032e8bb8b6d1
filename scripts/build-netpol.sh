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

log() { echo "build-netpol: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Version of the required module, read from go.mod ("require path vX" or a line inside a require
# block).
VERSION="$(awk -v p="$PKG" \
  '$1 == p { print $2; exit } $1 == "require" && $2 == p { print $3; exit }' \
  "$MOD/go.mod")"
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read $PKG version from $MOD/go.mod"

CACHE="${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/netpol"
OUT="$CACHE/$ENGINE-$VERSION"

cached() { [[ -x "$OUT/$ENGINE" ]]; }

if cached; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  log "another build holds $CACHE/.build.lock; waiting"
  flock 9
fi
if cached; then # built by whoever held the lock
  echo "$OUT"
  exit 0
fi

GO="${GO:-$(command -v go || true)}"
[[ -n $GO ]] || GO=/usr/local/go/bin/go
[[ -x $GO ]] || die "no go toolchain (looked in PATH and /usr/local/go/bin)"
# "auto": use the machine's Go when it is new enough for go.mod, otherwise fetch the toolchain it
# names from the module proxy.
export GOTOOLCHAIN="${VNETIPAM_GOTOOLCHAIN:-auto}"
export CGO_ENABLED=0 # kube-router has no cgo; its release builds are static too
GOVERSION="$(cd "$MOD" && "$GO" env GOVERSION)"

TMP="$(mktemp -d "$CACHE/.tmp-$ENGINE-$VERSION.XXXXXX")"
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT

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

rm -rf "$OUT" # a partial directory left by hand, if any
mv -T "$TMP" "$OUT"
trap - EXIT
log "built in ${elapsed}s"
echo "$OUT"
