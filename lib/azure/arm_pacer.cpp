#include "lib/azure/arm_pacer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>
#include <string_view>

namespace vnetipam::azure {

namespace {

using Seconds = std::chrono::duration<double>;

// A remaining-count header, the class it belongs to, and how fast its count comes back (ARM's
// documented refill per second; 0: the resource provider's 5-minute window).
struct CountHeader {
  std::string_view name;
  bool read;
  double refillPerSecond;
};
constexpr std::array kCountHeaders = {
    CountHeader{"x-ms-ratelimit-remaining-subscription-reads", true, 25},
    CountHeader{"x-ms-ratelimit-remaining-subscription-global-reads", true, 25 * 15},
    CountHeader{"x-ms-ratelimit-remaining-subscription-writes", false, 10},
    CountHeader{"x-ms-ratelimit-remaining-subscription-global-writes", false, 10 * 15},
    CountHeader{"x-ms-ratelimit-remaining-subscription-deletes", false, 10},
    CountHeader{"x-ms-ratelimit-remaining-subscription-global-deletes", false, 10 * 15},
    CountHeader{"x-ms-ratelimit-remaining-subscription-resource-requests", true, 0},
};

}  // namespace

ArmPacer::ArmPacer(Clock& clock, ArmPacerOptions options, ArmObserver* observer)
    : clock_(clock), options_(options), observer_(observer) {
  if (!(options_.timeScale > 0)) throw std::invalid_argument("ArmPacer: timeScale must be > 0");
  window_ = std::chrono::duration_cast<Clock::Duration>(Seconds(300.0 / options_.timeScale));
  reads_ = makeBudget(options_.readsPer5Min, options_.readReserve);
  writes_ = makeBudget(options_.writesPer5Min, options_.writeReserve);
}

ArmPacer::Budget ArmPacer::makeBudget(int per5Min, int reserve) const {
  Budget b;
  b.reserve = std::max(0, reserve);
  b.last = clock_.now();
  if (per5Min <= 0) return b;
  // The burst comes out of the budget: burst + refill over 5 minutes = the budget.
  b.burst = std::max(1, per5Min / 100);
  b.tokens = b.burst;
  b.rate = std::max(1.0, per5Min - b.burst) / Seconds(window_).count();
  return b;
}

Clock::Duration ArmPacer::reserve(bool read) {
  std::lock_guard lock(mutex_);
  Budget& b = read ? reads_ : writes_;
  if (b.rate <= 0) return Clock::Duration::zero();
  const auto now = clock_.now();
  b.tokens = std::min(b.burst, b.tokens + Seconds(now - b.last).count() * b.rate);
  b.last = now;
  b.tokens -= 1;
  if (b.tokens >= 0) return Clock::Duration::zero();
  return std::chrono::duration_cast<Clock::Duration>(Seconds(-b.tokens / b.rate));
}

ArmPacer::Hold ArmPacer::holdLeft(bool read) {
  std::lock_guard lock(mutex_);
  const Budget& b = read ? reads_ : writes_;
  return {std::max(Clock::Duration::zero(), b.heldUntil - clock_.now()), b.heldFor};
}

void ArmPacer::hold(bool read, Clock::Duration pause, WaitReason reason) {
  std::lock_guard lock(mutex_);
  Budget& b = read ? reads_ : writes_;
  const auto until = clock_.now() + pause;
  if (until > b.heldUntil) {
    b.heldUntil = until;
    b.heldFor = reason;
  }
}

void ArmPacer::observe(bool read, const http::Headers& headers) {
  for (const auto& h : kCountHeaders) {
    // The resource provider's count answers both classes: it is sent for the class asked.
    if (h.read != read && h.refillPerSecond > 0) continue;
    const auto it = headers.find(h.name);
    if (it == headers.end()) continue;
    std::int64_t remaining = 0;
    const std::string& text = it->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), remaining);
    if (ec != std::errc() || end != text.data() + text.size() || remaining < 0) continue;
    if (observer_) observer_->onRateLimitRemaining(read, h.name, remaining);
    const int reserve = read ? options_.readReserve : options_.writeReserve;
    if (remaining >= reserve) continue;
    // Under the reserve: wait until the count can be back at it.
    const Clock::Duration pause = h.refillPerSecond > 0
                                      ? std::chrono::duration_cast<Clock::Duration>(
                                            Seconds(static_cast<double>(reserve - remaining) /
                                                    (h.refillPerSecond * options_.timeScale)))
                                      : window_;
    hold(read, pause, WaitReason::kReserve);
  }
}

}  // namespace vnetipam::azure
