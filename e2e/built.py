"""Where the e2e tests find the project's own binaries: the CMake build directory that
scripts/test.sh leaves (build/, or $VNETIPAM_BUILD_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = Path(os.environ.get("VNETIPAM_BUILD_DIR", ROOT / "build"))


def built(relpath: str) -> Path:
    """The executable at BUILD_DIR/relpath; fails the test with how to build it when missing."""
    path = BUILD_DIR / relpath
    assert path.is_file() and os.access(path, os.X_OK), (
        f"{path} is missing: build it first (cmake -S . -B build -G Ninja && "
        f"cmake --build build), or set VNETIPAM_BUILD_DIR")
    return path
