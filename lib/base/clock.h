// Time as the project's code sees it: one injected Clock, so tests drive it by hand and never
// sleep. now() is monotonic time for waits, timeouts and backoff; wallNow() is calendar time for
// what is written into objects and compared with other machines' clocks (leases, events,
// conditions, Retry-After dates). The real one is systemClock(); every test uses the one fake,
// base::testing::FakeClock (unit/lib/base/fake_clock.h).
#pragma once

#include <chrono>
#include <thread>

namespace vnetipam::base {

class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  using WallTimePoint = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  // Monotonic now. Thread-safe.
  virtual TimePoint now() = 0;
  // Calendar now. Thread-safe.
  virtual WallTimePoint wallNow() = 0;
  // Blocks the calling thread for `d` (a fake advances both times by `d` and returns).
  // Thread-safe.
  virtual void sleepFor(Duration d) = 0;
};

// steady_clock, system_clock and this_thread::sleep_for. Stateless.
class SystemClock final : public Clock {
 public:
  TimePoint now() override { return std::chrono::steady_clock::now(); }
  WallTimePoint wallNow() override { return std::chrono::system_clock::now(); }
  void sleepFor(Duration d) override { std::this_thread::sleep_for(d); }
};

// The process's real clock.
inline Clock& systemClock() {
  static SystemClock clock;
  return clock;
}

}  // namespace vnetipam::base
