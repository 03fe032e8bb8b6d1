// Time as the project's code sees it: injected, so tests drive it by hand and never sleep.
// Clock is monotonic time for waits, timeouts and backoff; WallClock is calendar time for what is
// written into objects and compared with other machines' clocks (leases, events, conditions).
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace vnetipam::base {

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

// Calendar now. Options that take one default to system_clock::now when left empty.
using WallClock = std::function<std::chrono::system_clock::time_point()>;

}  // namespace vnetipam::base
