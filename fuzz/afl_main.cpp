// The AFL++ driver: persistent mode with the test case in shared memory, so one process runs
// thousands of inputs and afl-fuzz does not fork per input. Built with afl-g++ (GCC's classic
// afl-as instrumentation) and linked with AFL++'s compiler runtime, which provides the persistent
// loop; afl_glue.c explains how the two share one coverage map. Outside afl-fuzz the loop runs
// once on stdin, so `fuzz_<target> < input` reproduces a finding.
#include <cstddef>
#include <string_view>

#include <unistd.h>  // read(), which __AFL_FUZZ_TESTCASE_LEN calls outside afl-fuzz

#include "fuzz/fuzz_target.h"

// The AFL++ macros are C: they cast the old way.
#pragma GCC diagnostic ignored "-Wold-style-cast"

__AFL_FUZZ_INIT();

int main() {
  const unsigned char* buffer = __AFL_FUZZ_TESTCASE_BUF;
  // Restarting the process every 10,000 inputs bounds what a slow leak can pile up.
  while (__AFL_LOOP(10000)) {
    const auto length = static_cast<std::size_t>(__AFL_FUZZ_TESTCASE_LEN);
    vnetipam::fuzz::fuzzOne(std::string_view(reinterpret_cast<const char*>(buffer), length));
  }
  return 0;
}
