#include "lib/http/rate_limiter.h"

#include <algorithm>
#include <chrono>

namespace vnetipam::http {

TokenBucket::TokenBucket(base::Clock& clock, double qps, int burst)
    : clock_(clock),
      qps_(qps),
      burst_(static_cast<double>(std::max(burst, 1))),
      tokens_(burst_),
      last_(clock.now()) {}

base::Clock::Duration TokenBucket::reserve() {
  if (qps_ <= 0) return base::Clock::Duration::zero();
  std::lock_guard lock(mutex_);
  const base::Clock::TimePoint now = clock_.now();
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) return base::Clock::Duration::zero();
  return std::chrono::ceil<base::Clock::Duration>(std::chrono::duration<double>(-tokens_ / qps_));
}

void TokenBucket::acquire() {
  const base::Clock::Duration wait = reserve();
  if (wait > base::Clock::Duration::zero()) clock_.sleepFor(wait);
}

}  // namespace vnetipam::http
