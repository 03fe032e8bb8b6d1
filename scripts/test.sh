#!/usr/bin/env bash
# The one test command: installs what the project needs, configures, builds (warnings are errors),
# checks formatting, and runs every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/check-format.sh

build_dir=${VNETIPAM_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DVNETIPAM_WERROR=ON
cmake --build "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
