#!/usr/bin/env python3
"""Writes a one-layer OCI image archive from a root filesystem directory, without a registry or a
container engine:

    scripts/oci_archive.py --rootfs DIR --ref REGISTRY/NAME:TAG --out FILE \\
        [--entrypoint ARG]... [--cmd ARG]... [--env K=V]... [--workdir DIR] [--user U] \\
        [--label K=V]... [--arch amd64] [--os linux]

The archive is an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/...): the
layer is a gzip'd tar of DIR, then the image config and the manifest. index.json names the image
with both io.containerd.image.name and org.opencontainers.image.ref.name set to the full
reference, so `ctr -n k8s.io images import FILE` stores it under that name, which is the name the
kubelet asks the CRI for (give the full name: registry.k8s.io/pause:3.10, not pause:3.10).

The same DIR and arguments make the same bytes: entries sorted, owned by 0:0, every mtime (and
the config's "created") SOURCE_DATE_EPOCH or 0, gzip without a name or a time. When FILE already
holds the same image (same config digest, hence the same layer content, and the same reference)
it is left alone, so a repeated build is quick.

Importable too: write_archive(rootfs, reference, out, ImageConfig(...)). Only the standard
library is used.
"""

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import os
import platform
import re
import stat
import sys
import tarfile
import tempfile
import time

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# name[:port]/path...:tag; the loose shape of a reference, enough to catch a missing tag or a
# stray space before containerd does.
REFERENCE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+"
                       r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclasses.dataclass
class ImageConfig:
    """The runtime part of the image config (its "config" object)."""
    entrypoint: list = dataclasses.field(default_factory=list)
    cmd: list = dataclasses.field(default_factory=list)
    env: list = dataclasses.field(default_factory=lambda: [DEFAULT_PATH])
    workdir: str = "/"
    user: str = ""
    labels: dict = dataclasses.field(default_factory=dict)
    arch: str = ""  # default: this machine's
    os: str = "linux"
    created_by: str = "scripts/oci_archive.py"


@dataclasses.dataclass
class Summary:
    archive: str
    reference: str
    manifest_digest: str
    rootfs_bytes: int  # the regular files' contents
    layer_tar_bytes: int
    layer_gzip_bytes: int
    archive_bytes: int
    unchanged: bool


def host_arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingWriter:
    """A write-only file that hashes and counts what goes through it to `sink`."""

    def __init__(self, sink):
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.hash.update(data)
        self.size += len(data)
        return self.sink.write(data)

    def flush(self):
        self.sink.flush()

    def digest(self):
        return "sha256:" + self.hash.hexdigest()


def walk_sorted(root, rel=""):
    """(relative path, absolute path) of everything under root, each directory before what it
    holds, names in byte order."""
    base = os.path.join(root, rel) if rel else root
    for name in sorted(os.listdir(base)):
        child = f"{rel}/{name}" if rel else name
        path = os.path.join(root, child)
        yield child, path
        if stat.S_ISDIR(os.lstat(path).st_mode):
            yield from walk_sorted(root, child)


def write_layer(rootfs, sink, mtime):
    """Writes the tar of rootfs to sink; the bytes of the regular files in it."""
    content_bytes = 0
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in walk_sorted(rootfs):
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                content_bytes += st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                raise ValueError(f"{path}: not a directory, symlink or regular file")
    return content_bytes


def read_existing(out):
    """(reference, config digest, manifest digest, layer gzip size) of the archive at out, or
    None when there is none or it is not one of ours."""
    try:
        with tarfile.open(out, "r:") as tar:
            index = json.load(tar.extractfile("index.json"))
            entry = index["manifests"][0]
            digest = entry["digest"]
            manifest = json.load(tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1]))
            config = manifest["config"]["digest"]
            # The config and layer blobs must be there too, not just named.
            for blob in (config, manifest["layers"][0]["digest"]):
                tar.getmember("blobs/sha256/" + blob.split(":", 1)[1])
            return (entry.get("annotations", {}).get("io.containerd.image.name"), config, digest,
                    manifest["layers"][0]["size"])
    except (OSError, KeyError, IndexError, ValueError, tarfile.TarError):
        return None


def add_file(tar, name, f, size, mtime):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = mtime
    tar.addfile(info, f)


def add_bytes(tar, name, data, mtime):
    add_file(tar, name, io.BytesIO(data), len(data), mtime)


def add_dir(tar, name, mtime):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    tar.addfile(info)


def write_archive(rootfs, reference, out, image=None, mtime=None):
    """Writes the archive for rootfs to out (atomically: a temporary file, then a rename)."""
    image = image or ImageConfig()
    if not REFERENCE.match(reference):
        raise ValueError(f"{reference!r} is not a full image reference (registry/name:tag)")
    if not os.path.isdir(rootfs):
        raise ValueError(f"{rootfs}: not a directory")
    if mtime is None:
        mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    out = os.path.abspath(out)
    out_dir = os.path.dirname(out)
    os.makedirs(out_dir, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".oci-archive.") as work:
        layer_tar = os.path.join(work, "layer.tar")
        with open(layer_tar, "wb") as f:
            tar_writer = HashingWriter(f)
            content_bytes = write_layer(rootfs, tar_writer, mtime)
        diff_id = tar_writer.digest()

        runtime = {"Env": list(image.env), "WorkingDir": image.workdir}
        if image.entrypoint:
            runtime["Entrypoint"] = list(image.entrypoint)
        if image.cmd:
            runtime["Cmd"] = list(image.cmd)
        if image.user:
            runtime["User"] = image.user
        if image.labels:
            runtime["Labels"] = dict(image.labels)
        arch = image.arch or host_arch()
        config = canonical_json({
            "architecture": arch,
            "os": image.os,
            "created": created,
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": image.created_by}],
        })
        config_digest = sha256_digest(config)

        existing = read_existing(out)
        if existing and existing[0] == reference and existing[1] == config_digest:
            return Summary(out, reference, existing[2], content_bytes, tar_writer.size,
                           existing[3], os.path.getsize(out), unchanged=True)

        layer_gz = os.path.join(work, "layer.tar.gz")
        with open(layer_gz, "wb") as raw, open(layer_tar, "rb") as src:
            gz_writer = HashingWriter(raw)
            # No file name and mtime 0 in the gzip header: the same tar gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=gz_writer, mtime=0,
                               compresslevel=6) as gz:
                while chunk := src.read(1 << 20):
                    gz.write(chunk)
        layer_digest = gz_writer.digest()

        manifest = canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest,
                        "size": gz_writer.size}],
        })
        manifest_digest = sha256_digest(manifest)
        index = canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "platform": {"architecture": arch, "os": image.os},
                "annotations": {
                    "io.containerd.image.name": reference,
                    "org.opencontainers.image.ref.name": reference,
                },
            }],
        })
        layout = canonical_json({"imageLayoutVersion": "1.0.0"})

        tmp_out = os.path.join(work, "archive.tar")
        blobs = sorted([(config_digest, config), (manifest_digest, manifest),
                        (layer_digest, None)], key=lambda blob: blob[0])
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            add_dir(tar, "blobs", mtime)
            add_dir(tar, "blobs/sha256", mtime)
            for digest, data in blobs:
                name = "blobs/sha256/" + digest.split(":", 1)[1]
                if data is not None:
                    add_bytes(tar, name, data, mtime)
                else:
                    with open(layer_gz, "rb") as f:
                        add_file(tar, name, f, gz_writer.size, mtime)
            add_bytes(tar, "index.json", index, mtime)
            add_bytes(tar, "oci-layout", layout, mtime)
        os.replace(tmp_out, out)

    return Summary(out, reference, manifest_digest, content_bytes, tar_writer.size, gz_writer.size,
                   os.path.getsize(out), unchanged=False)


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def key_values(pairs, flag):
    result = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise SystemExit(f"oci_archive: {flag} {pair!r}: expected KEY=VALUE")
        result[key] = value
    return result


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rootfs", required=True, help="the directory that becomes /")
    parser.add_argument("--ref", required=True, help="full reference, e.g. ghcr.io/o/n:tag")
    parser.add_argument("--out", required=True, help="the archive to write")
    parser.add_argument("--entrypoint", action="append", default=[], help="repeat per argument")
    parser.add_argument("--cmd", action="append", default=[], help="repeat per argument")
    parser.add_argument("--env", action="append", default=None,
                        help=f"KEY=VALUE, repeated (default: {DEFAULT_PATH})")
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--user", default="")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE, repeated")
    parser.add_argument("--arch", default="", help=f"default: this machine's ({host_arch()})")
    parser.add_argument("--os", default="linux")
    args = parser.parse_args(argv)

    if args.env is not None:
        key_values(args.env, "--env")  # checks the shape only; the order is kept
    image = ImageConfig(entrypoint=args.entrypoint, cmd=args.cmd,
                        env=args.env if args.env is not None else [DEFAULT_PATH],
                        workdir=args.workdir, user=args.user,
                        labels=key_values(args.label, "--label"), arch=args.arch, os=args.os)
    try:
        s = write_archive(args.rootfs, args.ref, args.out, image)
    except ValueError as e:
        print(f"oci_archive: {e}", file=sys.stderr)
        return 2
    print(f"image {s.reference} (manifest {s.manifest_digest})"
          f"{', unchanged' if s.unchanged else ''}")
    print(f"size: rootfs {mib(s.rootfs_bytes)} uncompressed (layer tar {mib(s.layer_tar_bytes)}),"
          f" layer {mib(s.layer_gzip_bytes)} gzip, archive {mib(s.archive_bytes)}")
    print(s.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
