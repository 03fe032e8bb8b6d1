# Sourced by scripts/build-kube.sh and scripts/build-netpol.sh: Go programs built from the module
# proxy with the machine's Go and cached outside the checkout, one directory per pinned version.
# The caller sets LOG_NAME, CACHE and OUT and defines cached() (true when $OUT holds everything),
# then calls, in order: cache_enter, go_setup MODULE_DIR, cache_tmp NAME, builds into $TMP, and
# cache_commit. The cache directory is always the last line on stdout; logs go to stderr.

log() { echo "$LOG_NAME: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Version of a required module, read from a go.mod ("require path vX" or a line inside a require
# block): mod_version GO_MOD MODULE_PATH.
mod_version() {
  awk -v p="$2" '$1 == p { print $2; exit } $1 == "require" && $2 == p { print $3; exit }' "$1"
}

# Prints $OUT and exits when it is cached. Otherwise takes $CACHE/.build.lock (waiting for a
# concurrent builder, so concurrent callers build once) and returns, unless that builder left
# $OUT cached.
cache_enter() {
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
}

# Sets GO and GOVERSION (as seen from MODULE_DIR). GOTOOLCHAIN "auto" uses the machine's Go when it
# is new enough for the go.mod files, otherwise fetches the toolchain they name from the module
# proxy. No cgo: every program built here is static.
go_setup() {
  GO="${GO:-$(command -v go || true)}"
  [[ -n $GO ]] || GO=/usr/local/go/bin/go
  [[ -x $GO ]] || die "no go toolchain (looked in PATH and /usr/local/go/bin)"
  export GOTOOLCHAIN="${VNETIPAM_GOTOOLCHAIN:-auto}"
  export CGO_ENABLED=0
  GOVERSION="$(cd "$1" && "$GO" env GOVERSION)"
}

# Makes TMP, a directory next to $OUT that becomes it (cache_commit) or goes on exit: cache_tmp NAME.
cache_tmp() {
  TMP="$(mktemp -d "$CACHE/.tmp-$1.XXXXXX")"
  chmod 755 "$TMP"
  trap 'rm -rf "$TMP"' EXIT
}

# Renames $TMP into place (atomic) and prints it; `elapsed` is the build's seconds.
cache_commit() {
  rm -rf "$OUT" # a partial directory left by hand, if any
  mv -T "$TMP" "$OUT"
  trap - EXIT
  log "built in ${elapsed}s"
  echo "$OUT"
}
