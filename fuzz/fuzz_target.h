// One fuzz target: a function that feeds one input to a decoder of the project and returns.
//
// Each target is linked twice (fuzz/CMakeLists.txt): into an AFL++ fuzzer (afl_main.cpp) and into
// a replay binary (replay_main.cpp) that runs every file of the seed corpus once, as a ctest test.
// A target catches nothing: an exception that escapes a decoder reaches std::terminate and a bug
// aborts, so both count as crashes. Checks of its own that a decoder's answer makes sense call
// fuzzCheck(), which aborts with a message.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace vnetipam::fuzz {

// Runs one input. Must leave no state behind that changes how the next input runs: the AFL
// driver calls it many times in one process.
void fuzzOne(std::string_view input);

// What a target says it is, for the replay binary's output.
extern const char* const kTargetName;

inline void fuzzCheck(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz check failed: %s\n", what);
    std::abort();
  }
}

}  // namespace vnetipam::fuzz
