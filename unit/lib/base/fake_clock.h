// The one fake of base::Clock, shared by every test that injects a clock (and the fuzz targets).
// It only moves when told to, or when someone sleeps on it (sleeping advances it at once and is
// recorded), so tests of waits and backoff never sleep. Both times move together; setWall() steps
// calendar time alone, as a clock that is set or skewed does.
#pragma once

#include <mutex>
#include <vector>

#include "lib/base/clock.h"

namespace vnetipam::base::testing {

class FakeClock final : public Clock {
 public:
  // 2026-11-26T12:00:00Z.
  static constexpr std::chrono::seconds kWallStart{1'795'694'400};

  FakeClock() = default;
  explicit FakeClock(WallTimePoint wall) : wall_(wall) {}

  TimePoint now() override {
    std::lock_guard lock(mutex_);
    return now_;
  }
  WallTimePoint wallNow() override {
    std::lock_guard lock(mutex_);
    return wall_;
  }
  void sleepFor(Duration d) override {
    std::lock_guard lock(mutex_);
    sleeps_.push_back(d);
    moveLocked(d);
  }
  void advance(Duration d) {
    std::lock_guard lock(mutex_);
    moveLocked(d);
  }
  void setWall(WallTimePoint t) {
    std::lock_guard lock(mutex_);
    wall_ = t;
  }
  std::vector<Duration> sleeps() const {
    std::lock_guard lock(mutex_);
    return sleeps_;
  }

 private:
  void moveLocked(Duration d) {
    now_ += d;
    wall_ += std::chrono::duration_cast<WallTimePoint::duration>(d);
  }

  mutable std::mutex mutex_;
  TimePoint now_{std::chrono::hours(1)};
  WallTimePoint wall_{kWallStart};
  std::vector<Duration> sleeps_;
};

}  // namespace vnetipam::base::testing
