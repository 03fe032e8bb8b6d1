#!/usr/bin/env bash
# Builds the real Kubernetes binaries used by the e2e tests, from the Go module
# proxy with the machine's Go, and caches them outside the checkout:
#   control plane: kube-apiserver, kube-controller-manager, kube-scheduler, etcd
#   real nodes:    kubelet, kube-proxy
#   the client:    kubectl (the tests' and the demo's; the machine's own is not relied on)
#
#   ${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/kube/<k8s-version>-etcd-<etcd-version>/
#
# Versions come from the pinned modules: e2e/kube/go.mod (k8s.io/kubernetes)
# and e2e/kube/etcd/go.mod (go.etcd.io/etcd/server/v3); go.sum files make the
# builds reproducible (builds run with -mod=readonly, the go default; -trimpath,
# -buildvcs=false and the release's own date as build date keep the output
# independent of the checkout and the day).
#
# Idempotent: when the three binaries are cached, prints the directory and
# exits at once. Otherwise builds into a temporary directory next to it and
# renames it into place (atomic), under a lock so concurrent callers build once.
# The cache directory is always the last line on stdout; logs go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBE_MOD="$ROOT/e2e/kube"
ETCD_MOD="$ROOT/e2e/kube/etcd"
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
BINARIES=("${KUBE_COMMANDS[@]}" etcd)

LOG_NAME=build-kube
# shellcheck source=scripts/go-build-cache.sh
source "$ROOT/scripts/go-build-cache.sh"

KUBE_VERSION="$(mod_version "$KUBE_MOD/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(mod_version "$ETCD_MOD/go.mod" go.etcd.io/etcd/server/v3)"
[[ $KUBE_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "cannot read k8s.io/kubernetes version from $KUBE_MOD/go.mod"
[[ $ETCD_VERSION =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "cannot read etcd version from $ETCD_MOD/go.mod"

CACHE="${VNETIPAM_CACHE:-$HOME/.cache/vnet-ipam}/kube"
OUT="$CACHE/${KUBE_VERSION}-etcd-${ETCD_VERSION}"

cached() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$OUT/$b" ]] || return 1; done
}

cache_enter
go_setup "$KUBE_MOD"
cache_tmp "${KUBE_VERSION}-etcd-${ETCD_VERSION}"
# A cache from before a binary joined the list keeps what it has (hard links): only the missing
# binaries are built.
if [[ -d $OUT ]]; then
  cp -al "$OUT/." "$TMP/"
  rm -f "$TMP/BUILDINFO"
fi

# Version stamps as the Kubernetes release build sets them (hack/lib/version.sh);
# the build date is the release's own time, so the binaries are reproducible.
KUBE_TIME="$(cd "$KUBE_MOD" && "$GO" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
major="${KUBE_VERSION#v}"; minor="${major#*.}"; major="${major%%.*}"; minor="${minor%%.*}"
VERSION_LDFLAGS=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  VERSION_LDFLAGS+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  VERSION_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$KUBE_TIME"
done

log "building ${KUBE_COMMANDS[*]} $KUBE_VERSION and etcd $ETCD_VERSION with $GOVERSION into $OUT"
start=$SECONDS
(
  cd "$KUBE_MOD"
  for cmd in "${KUBE_COMMANDS[@]}"; do
    [[ -x $TMP/$cmd ]] && continue
    log "go build k8s.io/kubernetes/cmd/$cmd"
    nice -n 10 "$GO" build -trimpath -buildvcs=false -ldflags="-s -w$VERSION_LDFLAGS" \
      -o "$TMP/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
)
(
  cd "$ETCD_MOD"
  [[ -x $TMP/etcd ]] && exit 0
  log "go build go.etcd.io/etcd/server/v3/etcdmain (etcd)"
  nice -n 10 "$GO" build -trimpath -buildvcs=false -ldflags="-s -w" -o "$TMP/etcd" .
)
elapsed=$((SECONDS - start))

"$TMP/kube-apiserver" --version >&2
"$TMP/etcd" --version >&2
cat >"$TMP/BUILDINFO" <<EOF
k8s.io/kubernetes $KUBE_VERSION
go.etcd.io/etcd/server/v3 $ETCD_VERSION
go $GOVERSION
build_seconds $elapsed
built $(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

cache_commit
