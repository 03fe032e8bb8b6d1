// Time as the Kubernetes client sees it: injected, so tests drive it by hand and never sleep.
#pragma once

#include <chrono>
#include <thread>

namespace vnetipam::kube {

class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  // Monotonic now. Thread-safe.
  virtual TimePoint now() = 0;
  // Blocks the calling thread for `d` (a fake advances now() by `d` and returns). Thread-safe.
  virtual void sleepFor(Duration d) = 0;
};

class SteadyClockImpl final : public Clock {
 public:
  TimePoint now() override { return std::chrono::steady_clock::now(); }
  void sleepFor(Duration d) override { std::this_thread::sleep_for(d); }
};

}  // namespace vnetipam::kube
