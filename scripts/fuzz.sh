#!/usr/bin/env bash
# Builds the AFL++ fuzzers (fuzz/, docs/fuzzing.md) in a build directory of their own and runs
# each one for a bounded time from its seed corpus. Exits non-zero if any run saves a crash or a
# hang; the inputs are kept under <build dir>/findings/<target>/ and named in the output.
#
#   scripts/fuzz.sh [seconds per target] [target...]     (default: 20 s, every target)
#
# VNETIPAM_FUZZ_BUILD_DIR overrides the build directory (default build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(cni_input agent_protocol journal azure_decoders mock_request)
fi
build_dir=${VNETIPAM_FUZZ_BUILD_DIR:-build-fuzz}

# afl-g++: GCC with AFL++'s classic (afl-as) instrumentation, the mode that works with the GCC
# this project needs; the C compiler stays plain for fuzz/afl_glue.c. No -Werror: AFL++ adds -O3,
# where GCC 12 warns about code it does not warn about at -O2.
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
CXX=afl-g++ CC=gcc AFL_QUIET=1 cmake -S . -B "$build_dir" -G Ninja -DVNETIPAM_BUILD_TESTS=OFF \
  -DVNETIPAM_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
AFL_QUIET=1 cmake --build "$build_dir" --target fuzzers

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The journal target makes a directory per process there; afl-fuzz ends its processes with
# SIGKILL, so they cannot remove their own. TMPDIR points them into $work, removed at exit.
mkdir "$work/tmp"
export TMPDIR="$work/tmp"
# No core_pattern or CPU governor tuning (not ours to change on a shared machine), no CPU binding
# (other work runs on these cores), and afl-fuzz's plain status lines instead of its UI.
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1
failed=()
for target in "${targets[@]}"; do
  dict=()
  if [ -f "fuzz/dict/$target.dict" ]; then dict=(-x "fuzz/dict/$target.dict"); fi
  # -t: a 2 s timeout per input, generous on a loaded machine; a real hang still exceeds it.
  if ! afl-fuzz -i "fuzz/corpus/$target" -o "$work/$target" -V "$seconds" -t 2000 -m none \
    "${dict[@]}" -- "$build_dir/fuzz/fuzz_$target" >"$work/$target.log" 2>&1; then
    echo "fuzz: afl-fuzz failed for $target:" >&2
    tail -20 "$work/$target.log" >&2
    failed+=("$target")
    continue
  fi
  stats="$work/$target/default/fuzzer_stats"
  stat() { sed -n "s/^$1 *: *//p" "$stats"; }
  crashes=$(stat saved_crashes)
  hangs=$(stat saved_hangs)
  echo "fuzz: $target: $(stat execs_done) runs, $(stat execs_per_sec)/s, $(stat edges_found)" \
    "edges, $(stat corpus_count) inputs, $crashes crashes, $hangs hangs"
  if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
    mkdir -p "$build_dir/findings/$target"
    find "$work/$target/default/crashes" "$work/$target/default/hangs" -type f -name 'id:*' \
      -exec cp {} "$build_dir/findings/$target/" \;
    echo "fuzz: $target: findings kept in $build_dir/findings/$target/:" >&2
    ls "$build_dir/findings/$target" >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: $build_dir/fuzz/fuzz_<target> < <input>)" >&2
  exit 1
fi
