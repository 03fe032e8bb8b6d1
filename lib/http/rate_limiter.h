// Client-side rate limiting: a token bucket of `burst` tokens refilled at `qps` per second, as
// client-go's QPS/Burst. Each request takes one token; when none is left the caller waits (on the
// injected clock) until its reserved token has been refilled.
#pragma once

#include <mutex>

#include "lib/base/clock.h"

namespace vnetipam::http {

class TokenBucket {
 public:
  // qps <= 0 disables limiting. burst < 1 is treated as 1. The bucket starts full.
  TokenBucket(base::Clock& clock, double qps, int burst);

  // Takes a token and returns how long the caller must wait before using it (zero when one was
  // available). Reservations queue in call order. Thread-safe.
  base::Clock::Duration reserve();

  // reserve(), then sleeps on the clock for the returned time. Thread-safe.
  void acquire();

 private:
  base::Clock& clock_;
  const double qps_;
  const double burst_;
  std::mutex mutex_;
  double tokens_;  // may go negative: tokens already promised to waiting callers
  base::Clock::TimePoint last_;
};

}  // namespace vnetipam::http
