#!/usr/bin/env bash
# Makes the root filesystem of the vnet-ipam image from a CMake build directory:
#   scripts/image-rootfs.sh BUILD_DIR OUT_DIR [CNI_PLUGIN_DIR]
#
# The Dockerfile and scripts/build-image.sh both call this script, so an image built either way
# holds the same files. What goes in, and nothing else (there is no shell, no package manager):
#   /usr/local/bin         the five binaries, stripped: vnet-ipam-controller, vnet-ipam-agent,
#                          vnet-ipam, vnet-transparent, azure-vnet-mock
#   /usr/local/lib/cni     loopback and portmap from CNI_PLUGIN_DIR (default: what
#                          scripts/build-cni-plugins.sh builds, the pinned release that speaks CNI
#                          spec 1.1.0 like the agent's conflist): the agent's init container
#                          installs them on the node (containerd needs loopback for every sandbox;
#                          the agent's conflist chains portmap)
#   the shared libraries   what ldd says the binaries load, each at its real path, with the
#                          symlinks the loader follows (the loader at /lib64/..., SONAME links)
#   /etc                   passwd and group (root, nonroot 65532), nsswitch.conf, the CA bundle
#                          (the controller talks to Azure over TLS)
#   /tmp                   mode 1777
# Every file gets the mtime SOURCE_DATE_EPOCH (default 0), so the same inputs make the same tree.
# As root, each daemon is then started inside the tree (chroot): a library missing from the list
# fails the build here instead of the pod on a node.
set -euo pipefail
umask 022

if [ $# -ne 2 ] && [ $# -ne 3 ]; then
  echo "usage: $0 BUILD_DIR OUT_DIR [CNI_PLUGIN_DIR]" >&2
  exit 2
fi
build=$1
out=$2
epoch=${SOURCE_DATE_EPOCH:-0}
# The reference plugins built from source at the pinned release (the Dockerfile builds them in a
# stage of its own and passes their directory).
if [ $# -eq 3 ]; then
  reference_plugin_dir=$3
else
  reference_plugin_dir=$("$(dirname "$0")/build-cni-plugins.sh" | tail -n1)
fi
reference_plugins=(loopback portmap)
# Debian's OPENSSLDIR: OpenSSL's default trust store is cert.pem and certs/ under it.
openssl_dir=/usr/lib/ssl
ca_bundle=/etc/ssl/certs/ca-certificates.crt

declare -A binaries=(
  [vnet-ipam-controller]=controller/vnet-ipam-controller
  [vnet-ipam-agent]=node-agent/vnet-ipam-agent
  [vnet-ipam]=node-agent/cni/vnet-ipam
  [vnet-transparent]=node-agent/cni/vnet-transparent
  [azure-vnet-mock]=azure-mock/azure-vnet-mock
)

die() {
  echo "image-rootfs: $*" >&2
  exit 1
}

missing=()
for name in "${!binaries[@]}"; do
  [ -f "$build/${binaries[$name]}" ] || missing+=("$build/${binaries[$name]}")
done
for plugin in "${reference_plugins[@]}"; do
  [ -f "$reference_plugin_dir/$plugin" ] || missing+=("$reference_plugin_dir/$plugin")
done
[ -f "$ca_bundle" ] || missing+=("$ca_bundle")
if [ ${#missing[@]} -gt 0 ]; then
  die "missing: ${missing[*]} (build the five targets and the reference plugins" \
    "(scripts/build-cni-plugins.sh); scripts/install-deps.sh installs the rest)"
fi

# OUT_DIR is emptied first; refuse to empty a directory that is not an earlier rootfs (its
# passwd names our nonroot user).
[ ! -e "$out" ] || [ -d "$out" ] || die "$out exists and is not a directory"
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
[ "$out" != / ] || die "OUT_DIR must not be /"
if [ -n "$(ls -A "$out")" ]; then
  if ! grep -qs '^nonroot:x:65532:' "$out/etc/passwd" ||
    [ ! -e "$out/usr/local/bin/vnet-ipam-agent" ]; then
    die "$out is not empty and not an earlier rootfs; refusing to empty it"
  fi
  find "$out" -mindepth 1 -delete
fi

mkdir -p "$out/usr/local/bin" "$out/usr/local/lib/cni" "$out/etc/ssl/certs" "$out$openssl_dir" \
  "$out/tmp"
chmod 1777 "$out/tmp"

for name in "${!binaries[@]}"; do
  strip --strip-unneeded -o "$out/usr/local/bin/$name" "$build/${binaries[$name]}"
  chmod 0755 "$out/usr/local/bin/$name"
done
for plugin in "${reference_plugins[@]}"; do
  install -m 0755 "$reference_plugin_dir/$plugin" "$out/usr/local/lib/cni/$plugin"
done

# Recreates the host's symlinked ancestors of `path` in the tree (on merged-/usr Debian: /lib ->
# usr/lib, /lib64 -> usr/lib64), so a path the binaries or the loader name resolves the same way.
link_ancestors() {
  local dir prefix=""
  local -a parts
  IFS=/ read -ra parts <<<"${1#/}"
  for dir in "${parts[@]:0:${#parts[@]}-1}"; do
    prefix="$prefix/$dir"
    if [ -L "$prefix" ] && [ ! -L "$out$prefix" ]; then
      ln -s "$(readlink "$prefix")" "$out$prefix"
    fi
  done
}

# Copies a library (or the loader) named `path` by ldd: the file at its real path, and a
# relative symlink from `path`'s name (the SONAME the loader looks for) when that differs.
copy_library() {
  local path=$1 real linkdir link
  real=$(readlink -f "$path")
  link_ancestors "$path"
  mkdir -p "$out$(dirname "$real")"
  [ -e "$out$real" ] || cp "$real" "$out$real"
  linkdir=$(readlink -f "$(dirname "$path")")
  link="$linkdir/$(basename "$path")"
  if [ "$link" != "$real" ] && [ ! -L "$out$link" ]; then
    mkdir -p "$out$linkdir"
    ln -s "$(realpath --relative-to="$linkdir" "$real")" "$out$link"
  fi
}

# ldd lines: "libx.so.1 => /path/libx.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)",
# "linux-vdso.so.1 (0x...)" (in the kernel, nothing to copy), "libx.so.1 => not found".
# The CNI plugins are static: ldd says so and lists nothing.
mapfile -t libraries < <(
  for name in "${!binaries[@]}"; do
    ldd "$out/usr/local/bin/$name" 2>/dev/null || true
  done | awk '
    /=> not found/ { print "MISSING " $1; next }
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }' | sort -u
)
for library in "${libraries[@]}"; do
  case $library in
    MISSING*) die "a binary needs ${library#MISSING } and ldd cannot find it" ;;
  esac
  copy_library "$library"
done

cp "$ca_bundle" "$out$ca_bundle"
ln -s "$ca_bundle" "$out$openssl_dir/cert.pem"
ln -s "$(dirname "$ca_bundle")" "$out$openssl_dir/certs"

# nonroot is the controller's user (runAsUser 65532); the agent runs as root.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$out/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$out/etc/group"
# glibc's defaults without this file differ between versions; say what is meant. No NSS modules
# beyond glibc's built-in files and dns are in the image.
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$out/etc/nsswitch.conf"

find "$out" -exec touch -h -d "@$epoch" {} +

# The CNI plugins run on the node, exec'd by its runtime, not in this image: they must need no
# shared library (they are linked statically).
for name in vnet-ipam vnet-transparent; do
  if readelf -d "$out/usr/local/bin/$name" | grep -q '(NEEDED)'; then
    die "$name needs shared libraries, but it runs on the node, where they may not be"
  fi
done
if [ "$(id -u)" -eq 0 ] && command -v chroot >/dev/null; then
  for name in vnet-ipam-controller vnet-ipam-agent azure-vnet-mock; do
    chroot "$out" "/usr/local/bin/$name" --help >/dev/null ||
      die "$name --help fails inside $out: a library is missing?"
  done
  checked="the daemons start inside it"
else
  checked="the daemons not started inside it (chroot needs root)"
fi
echo "image-rootfs: $out: $(find "$out" -type f | wc -l) files, $(du -s --apparent-size --block-size=K "$out" |
  cut -f1)iB; $checked"
