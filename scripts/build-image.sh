#!/usr/bin/env bash
# Builds the vnet-ipam image without a container engine or a registry, as an OCI image archive
# that containerd imports:
#
#   scripts/build-image.sh [--tag TAG] [--out FILE] [--build-dir DIR]
#   ctr -n k8s.io images import FILE
#
# TAG is a tag of ghcr.io/vnet-ipam/vnet-ipam (default dev) or a whole reference (with a '/').
# It builds the five binaries in their own Release build directory (default build-image) and the
# reference CNI plugins (scripts/build-cni-plugins.sh, cached), makes the root filesystem with
# scripts/image-rootfs.sh (as the Dockerfile does, so both give the same
# files) and writes the archive with scripts/oci_archive.py (default
# BUILD_DIR/vnet-ipam-image.tar). The output is the same for the same sources, and a run with
# nothing changed rewrites nothing. Build output goes to stderr; stdout's last three lines are
# the image, its sizes and the archive's path:
#   archive=$(scripts/build-image.sh | tail -n1)
set -euo pipefail
cd "$(dirname "$0")/.."

repository=ghcr.io/vnet-ipam/vnet-ipam
tag=dev
out=""
build_dir=build-image

usage() {
  if [ "$1" -eq 0 ]; then help_text; else help_text >&2; fi
  exit "$1"
}
help_text() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --tag=*) tag=${1#--tag=}; shift ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a value}; shift 2 ;;
    --build-dir=*) build_dir=${1#--build-dir=}; shift ;;
    -h | --help) usage 0 ;;
    *) echo "build-image: unexpected argument \"$1\"" >&2; usage 2 ;;
  esac
done
case $tag in
  */*) reference=$tag ;;
  *) reference=$repository:$tag ;;
esac
out=${out:-$build_dir/vnet-ipam-image.tar}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

scripts/install-deps.sh >&2

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVNETIPAM_BUILD_TESTS=OFF \
    -DVNETIPAM_BUILD_BENCHMARKS=OFF "${launcher[@]}" >&2
fi
cmake --build "$build_dir" --target vnet-ipam-controller vnet-ipam-agent vnet-ipam \
  vnet-transparent azure-vnet-mock >&2

plugin_dir=$(scripts/build-cni-plugins.sh | tail -n1)
scripts/image-rootfs.sh "$build_dir" "$build_dir/rootfs" "$plugin_dir" >&2
python3 scripts/oci_archive.py --rootfs "$build_dir/rootfs" --ref "$reference" --out "$out" \
  --label org.opencontainers.image.title=vnet-ipam \
  --label org.opencontainers.image.source=https://github.com/vnet-ipam/vnet-ipam
