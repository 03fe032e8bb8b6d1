#!/usr/bin/env bash
# The one test command: installs what the project needs, configures, builds (warnings are errors),
# checks formatting, and runs every test: the unit tests (ctest), a bounded fuzz run (scripts/fuzz.sh)
# and the end-to-end suites (pytest).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/install-helm.sh >/dev/null  # helm for e2e/test_helm.py, cached in ~/.cache/vnet-ipam/helm/
scripts/check-format.sh
# The generated references must match their sources (test_helm.py checks docs/configuration.md).
python3 scripts/gen-metrics-docs.py --check

build_dir=${VNETIPAM_BUILD_DIR:-build}
# ccache, where the machine has it, as scripts/fuzz.sh and scripts/build-image.sh use it.
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build_dir" -G Ninja -DVNETIPAM_WERROR=ON "${launcher[@]}"
cmake --build "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
# Coverage-guided fuzzing (docs/fuzzing.md): each AFL++ fuzzer runs 20 s from its seed corpus, in
# an instrumented build of its own; a crash or a hang fails. The seeds themselves ran just above,
# as the ctest tests fuzz_corpus_*.
scripts/fuzz.sh 20

# End-to-end suites run against a real etcd + kube-apiserver built from the Go module proxy and
# cached outside the checkout (the first run on a machine builds them: about 20 minutes on 2 cores).
scripts/build-kube.sh >/dev/null
# The real-node suites (e2e/test_realnodes*.py) also need the NetworkPolicy engine, built and cached
# the same way, and import the project's image, which e2e/realnodes.py makes from this build.
scripts/build-netpol.sh >/dev/null
# The reference CNI plugins (loopback, portmap, ptp, host-local) the image ships and the suites run
# beside ours, built and cached the same way (seconds).
scripts/build-cni-plugins.sh >/dev/null
python3 -m pytest e2e -q -p no:cacheprovider
