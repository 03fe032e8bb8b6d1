// The test process's own memory use, from /proc/self, for tests that bound what one input costs.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>

namespace vnetipam::testing {

// A "Vm..." line of /proc/self/status in KiB (VmRSS: now, VmHWM: the peak), -1 if absent.
inline std::int64_t procStatusKiB(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::stoll(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// Makes VmHWM start again from VmRSS, so that after a call VmHWM minus the VmRSS before it is the
// call's peak growth, allocations already freed included. False where the kernel does not allow it.
inline bool resetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// How far the resident set grew, at its peak, while `f` ran; in KiB.
template <typename F>
std::int64_t peakRssGrowthKiB(F&& f) {
  const bool peakReset = resetPeakRss();
  const std::int64_t before = procStatusKiB("VmRSS");
  f();
  const std::int64_t after = procStatusKiB(peakReset ? "VmHWM" : "VmRSS");
  return after - before;
}

}  // namespace vnetipam::testing
