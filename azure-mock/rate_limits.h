// The request limits a call to Azure meets before it reaches the resource, as the mock enforces
// them. Two levels, as in Azure (Azure Resource Manager, "Understand how Azure Resource Manager
// throttles requests", the regional token-bucket limits in force since 2024):
//
// 1. ARM, per subscription: a token bucket per subscription, per service principal (the token's
//    appid) and per operation type: reads 250 tokens refilled 25 a second, writes 200 refilled 10
//    a second, deletes 200 refilled 10 a second. On top, a global bucket per subscription and
//    operation type shared by all principals, 15 times the principal's (3,750 / 375 a second for
//    reads, 3,000 / 150 for writes and deletes). Every response says what is left in both:
//    x-ms-ratelimit-remaining-subscription-{reads,writes,deletes} and
//    x-ms-ratelimit-remaining-subscription-global-{reads,writes,deletes} (real responses show
//    249 and 3749 after one read). ARM's tenant limits apply to tenant-level requests, which the
//    mock does not serve.
// 2. The Network resource provider, per subscription: 1,000 writes (PUT and DELETE together) and
//    10,000 reads (GET) per 5 minutes. The page gives no algorithm; the mock counts them over a
//    sliding 5-minute window, the strict reading (no window edge to burst across). What is left
//    in the window goes out as x-ms-ratelimit-remaining-subscription-resource-requests, the
//    header ARM documents for a resource type's own limit; only Microsoft.Network paths count.
//
// A refused request is a 429 with Retry-After (whole seconds, at least 1) for when the bucket or
// window has room again. With timeScale N, time runs N times faster for all of it: the window
// lasts 5 min / N, the buckets refill N times faster, Retry-After is in those faster seconds, so a
// benchmark sees Azure's limits in minutes instead of hours.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"

namespace vnetipam::azuremock {

enum class ArmOperation { kRead, kWrite, kDelete };

// GET and HEAD read; DELETE deletes; anything else writes.
ArmOperation armOperationOf(std::string_view method);

struct RateLimitOptions {
  bool subscriptionLimits = true;  // ARM's token buckets
  int readsPer5Min = 10000;        // the NRP read limit; 0: off
  int writesPer5Min = 1000;        // the NRP write limit; 0: off
  double timeScale = 1;            // > 0
};

// What admit() decided: whether the request goes on, and the headers every response carries.
struct Admission {
  bool allowed = true;
  std::string code;     // the CloudError code of a refusal
  std::string message;  // its message
  std::int64_t retryAfterSeconds = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // x-ms-ratelimit-remaining-*
};

class RateLimits {
 public:
  RateLimits(RateLimitOptions options, base::Clock& clock);

  // Counts one request of `principal` ("" when unknown) to `subscription`, or refuses it. A
  // request ARM refuses costs nothing; one the NRP refuses has cost its ARM token, as in Azure
  // (ARM passed it on). `network`: the path is under Microsoft.Network. Not thread-safe.
  Admission admit(std::string_view subscription, std::string_view principal, ArmOperation op,
                  bool network);

  // {"timeScale", "throttledSubscription", "throttledGlobal", "throttledNetwork", ...}.
  nlohmann::json toJson() const;

 private:
  struct Bucket {
    double tokens = 0;
    base::Clock::TimePoint last{};
  };
  Bucket& bucket(std::string key, double capacity, base::Clock::TimePoint now, double refill);

  RateLimitOptions options_;
  base::Clock& clock_;
  base::Clock::Duration window_;
  std::map<std::string, Bucket> buckets_;
  // Per lower-cased subscription: when each counted NRP read / write was admitted (oldest first).
  std::map<std::string, std::deque<base::Clock::TimePoint>> networkReads_;
  std::map<std::string, std::deque<base::Clock::TimePoint>> networkWrites_;
  std::uint64_t throttledSubscription_ = 0;
  std::uint64_t throttledGlobal_ = 0;
  std::uint64_t throttledNetworkReads_ = 0;
  std::uint64_t throttledNetworkWrites_ = 0;
};

}  // namespace vnetipam::azuremock
