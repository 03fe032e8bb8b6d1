// A Clock that only moves when told to, or when someone sleeps on it (sleeping advances it at
// once and is recorded), so tests of waits and backoff never sleep. The one fake of base::Clock,
// shared by every test that injects a clock.
#pragma once

#include <mutex>
#include <vector>

#include "lib/base/clock.h"

namespace vnetipam::base::testing {

class FakeClock final : public Clock {
 public:
  TimePoint now() override {
    std::lock_guard lock(mutex_);
    return now_;
  }
  void sleepFor(Duration d) override {
    std::lock_guard lock(mutex_);
    sleeps_.push_back(d);
    now_ += d;
  }
  void advance(Duration d) {
    std::lock_guard lock(mutex_);
    now_ += d;
  }
  std::vector<Duration> sleeps() const {
    std::lock_guard lock(mutex_);
    return sleeps_;
  }

 private:
  mutable std::mutex mutex_;
  TimePoint now_{std::chrono::hours(1)};
  std::vector<Duration> sleeps_;
};

}  // namespace vnetipam::base::testing
