#include "azure-mock/rate_limits.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::azuremock {

namespace {

using Clock = base::Clock;

// ARM's per-principal buckets (capacity, refill per second); the global one is 15 times each.
struct BucketSize {
  double capacity;
  double refill;
};
constexpr BucketSize kPrincipalBucket[] = {{250, 25}, {200, 10}, {200, 10}};
constexpr double kGlobalFactor = 15;
constexpr std::string_view kOperationName[] = {"reads", "writes", "deletes"};

std::int64_t wholeSeconds(double seconds) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(seconds - 1e-9)));
}

}  // namespace

ArmOperation armOperationOf(std::string_view method) {
  if (method == "GET" || method == "HEAD") return ArmOperation::kRead;
  if (method == "DELETE") return ArmOperation::kDelete;
  return ArmOperation::kWrite;
}

RateLimits::RateLimits(RateLimitOptions options, base::Clock& clock)
    : options_(options), clock_(clock) {
  if (!(options_.timeScale > 0)) throw std::invalid_argument("RateLimits: timeScale must be > 0");
  window_ = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(300.0 / options_.timeScale));
}

RateLimits::Bucket& RateLimits::bucket(std::string key, double capacity, Clock::TimePoint now,
                                       double refill) {
  auto [it, created] = buckets_.try_emplace(std::move(key), Bucket{capacity, now});
  Bucket& b = it->second;
  if (!created) {
    const double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(capacity, b.tokens + std::max(0.0, elapsed) * refill);
    b.last = now;
  }
  return b;
}

Admission RateLimits::admit(std::string_view subscription, std::string_view principal,
                            ArmOperation op, bool network) {
  Admission a;
  const auto now = clock_.now();
  const std::string sub = text::asciiLower(subscription);
  const auto index = static_cast<std::size_t>(op);
  const std::string_view name = kOperationName[index];

  if (options_.subscriptionLimits) {
    const BucketSize size = kPrincipalBucket[index];
    const double refill = size.refill * options_.timeScale;
    Bucket& own = bucket(fmt::format("{}|{}|{}", sub, principal, name), size.capacity, now, refill);
    Bucket& global = bucket(fmt::format("{}|*|{}", sub, name), size.capacity * kGlobalFactor, now,
                            refill * kGlobalFactor);
    if (own.tokens >= 1 && global.tokens >= 1) {
      own.tokens -= 1;
      global.tokens -= 1;
    } else {
      // Whichever bucket is short decides when to come back.
      const double wait =
          std::max((1 - own.tokens) / refill, (1 - global.tokens) / (refill * kGlobalFactor));
      a.allowed = false;
      a.code = "SubscriptionRequestsThrottled";
      a.retryAfterSeconds = wholeSeconds(wait);
      a.message = fmt::format(
          "Number of '{}' requests for subscription '{}' actor '{}' exceeded. Please try again "
          "after '{}' seconds after the last request.",
          name, subscription, principal.empty() ? "unknown" : principal, a.retryAfterSeconds);
      if (own.tokens < 1)
        ++throttledSubscription_;
      else
        ++throttledGlobal_;
    }
    a.headers.emplace_back(fmt::format("x-ms-ratelimit-remaining-subscription-{}", name),
                           std::to_string(static_cast<std::int64_t>(own.tokens)));
    a.headers.emplace_back(fmt::format("x-ms-ratelimit-remaining-subscription-global-{}", name),
                           std::to_string(static_cast<std::int64_t>(global.tokens)));
  }

  const bool read = op == ArmOperation::kRead;
  const int limit = read ? options_.readsPer5Min : options_.writesPer5Min;
  if (network && limit > 0) {
    auto& times = (read ? networkReads_ : networkWrites_)[sub];
    while (!times.empty() && now - times.front() >= window_)
      times.pop_front();
    if (a.allowed && std::cmp_less(times.size(), limit)) {
      times.push_back(now);
    } else if (a.allowed) {
      const double wait = std::chrono::duration<double>(times.front() + window_ - now).count();
      a.allowed = false;
      a.code = "SubscriptionRequestsThrottled";
      a.retryAfterSeconds = wholeSeconds(wait);
      a.message = fmt::format(
          "Number of {} requests for subscription '{}' exceeded the Microsoft.Network limit of "
          "{} per 5 minutes. Please try again after '{}' seconds.",
          read ? "read" : "write", subscription, limit, a.retryAfterSeconds);
      ++(read ? throttledNetworkReads_ : throttledNetworkWrites_);
    }
    a.headers.emplace_back("x-ms-ratelimit-remaining-subscription-resource-requests",
                           std::to_string(limit - static_cast<int>(times.size())));
  }
  return a;
}

nlohmann::json RateLimits::toJson() const {
  return {{"timeScale", options_.timeScale},
          {"subscriptionLimits", options_.subscriptionLimits},
          {"networkReadsPer5Min", options_.readsPer5Min},
          {"networkWritesPer5Min", options_.writesPer5Min},
          {"throttledSubscription", throttledSubscription_},
          {"throttledGlobal", throttledGlobal_},
          {"throttledNetworkReads", throttledNetworkReads_},
          {"throttledNetworkWrites", throttledNetworkWrites_}};
}

}  // namespace vnetipam::azuremock
