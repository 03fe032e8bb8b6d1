#include "azure-mock/rate_limits.h"

#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using namespace std::chrono_literals;
using base::testing::FakeClock;
using testing::kRg;
using testing::MockFixture;
using testing::parsed;

std::string header(const Admission& a, std::string_view name) {
  for (const auto& [k, v] : a.headers) {
    if (k == name) return v;
  }
  return "<none>";
}

// N admissions; how many were allowed.
int admitMany(RateLimits& limits, int n, std::string_view principal, ArmOperation op,
              bool network = false) {
  int allowed = 0;
  for (int i = 0; i < n; ++i)
    allowed += limits.admit("subid", principal, op, network).allowed ? 1 : 0;
  return allowed;
}

TEST(RateLimits, ArmWriteBucketIsTwoHundredRefilledTenASecond) {
  FakeClock clock;
  RateLimits limits({.readsPer5Min = 0, .writesPer5Min = 0}, clock);
  EXPECT_EQ(admitMany(limits, 200, "app", ArmOperation::kWrite), 200);
  auto refused = limits.admit("subid", "app", ArmOperation::kWrite, false);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.code, "SubscriptionRequestsThrottled");
  EXPECT_EQ(refused.retryAfterSeconds, 1);  // one token back in 0.1 s
  EXPECT_EQ(header(refused, "x-ms-ratelimit-remaining-subscription-writes"), "0");
  EXPECT_EQ(header(refused, "x-ms-ratelimit-remaining-subscription-global-writes"), "2800");
  // Reads and deletes have buckets of their own.
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kRead, false).allowed);
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kDelete, false).allowed);
  // 10 a second: after one second, exactly ten more.
  clock.advance(1s);
  EXPECT_EQ(admitMany(limits, 11, "app", ArmOperation::kWrite), 10);
  EXPECT_EQ(limits.toJson()["throttledSubscription"], 2);
}

TEST(RateLimits, ReadBucketAndItsHeadersAsArmSendsThem) {
  FakeClock clock;
  RateLimits limits({}, clock);
  const auto first = limits.admit("subid", "app", ArmOperation::kRead, true);
  ASSERT_TRUE(first.allowed);
  // What a real ARM response carries after one read.
  EXPECT_EQ(header(first, "x-ms-ratelimit-remaining-subscription-reads"), "249");
  EXPECT_EQ(header(first, "x-ms-ratelimit-remaining-subscription-global-reads"), "3749");
  EXPECT_EQ(header(first, "x-ms-ratelimit-remaining-subscription-resource-requests"), "9999");
  EXPECT_EQ(admitMany(limits, 250, "app", ArmOperation::kRead), 249);
  clock.advance(200ms);  // 25 a second: five back
  EXPECT_EQ(admitMany(limits, 6, "app", ArmOperation::kRead), 5);
}

TEST(RateLimits, GlobalBucketIsFifteenPrincipalsWorth) {
  FakeClock clock;
  RateLimits limits({.readsPer5Min = 0, .writesPer5Min = 0}, clock);
  for (int p = 0; p < 15; ++p)
    ASSERT_EQ(admitMany(limits, 200, fmt::format("app-{}", p), ArmOperation::kWrite), 200);
  // A sixteenth principal has a full bucket of its own but the subscription's is empty.
  auto refused = limits.admit("subid", "app-15", ArmOperation::kWrite, false);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(header(refused, "x-ms-ratelimit-remaining-subscription-writes"), "200");
  EXPECT_EQ(header(refused, "x-ms-ratelimit-remaining-subscription-global-writes"), "0");
  EXPECT_EQ(limits.toJson()["throttledGlobal"], 1);
  EXPECT_EQ(limits.toJson()["throttledSubscription"], 0);
}

TEST(RateLimits, NetworkLimitIsASlidingFiveMinuteWindow) {
  FakeClock clock;
  RateLimits limits({.subscriptionLimits = false, .writesPer5Min = 3}, clock);
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kWrite, true).allowed);  // t = 0
  clock.advance(100s);
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kDelete, true).allowed);  // t = 100
  auto third = limits.admit("subid", "app", ArmOperation::kWrite, true);
  EXPECT_TRUE(third.allowed);
  EXPECT_EQ(header(third, "x-ms-ratelimit-remaining-subscription-resource-requests"), "0");
  clock.advance(50s);  // t = 150: the t = 0 write counts until t = 300
  auto refused = limits.admit("subid", "app", ArmOperation::kWrite, true);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retryAfterSeconds, 150);
  EXPECT_EQ(limits.toJson()["throttledNetworkWrites"], 1);
  // Paths outside Microsoft.Network do not count, and reads have their own window.
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kWrite, false).allowed);
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kRead, true).allowed);
  // t = 300: only the t = 0 write has left the window. Fixed windows would give all three back.
  clock.advance(150s);
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kWrite, true).allowed);
  refused = limits.admit("subid", "app", ArmOperation::kWrite, true);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retryAfterSeconds, 100);
  clock.advance(100s);
  EXPECT_EQ(admitMany(limits, 3, "app", ArmOperation::kWrite, true), 2);
}

TEST(RateLimits, TimeScaleShrinksTheWindowAndSpeedsTheRefill) {
  FakeClock clock;
  RateLimits limits({.writesPer5Min = 1000, .timeScale = 60}, clock);
  EXPECT_EQ(admitMany(limits, 200, "app", ArmOperation::kWrite, true), 200);
  clock.advance(100ms);  // 600 a second
  EXPECT_EQ(admitMany(limits, 61, "app", ArmOperation::kWrite, true), 60);
  // 1000 writes fill the window of 5 s; Retry-After counts those 5 s, not 5 minutes.
  for (int i = 0; i < 20; ++i) {
    clock.advance(100ms);
    admitMany(limits, 60, "app", ArmOperation::kWrite, true);
  }
  auto refused = limits.admit("subid", "app", ArmOperation::kWrite, true);
  ASSERT_FALSE(refused.allowed);
  EXPECT_EQ(header(refused, "x-ms-ratelimit-remaining-subscription-resource-requests"), "0");
  EXPECT_LE(refused.retryAfterSeconds, 5);
  clock.advance(5s);
  EXPECT_TRUE(limits.admit("subid", "app", ArmOperation::kWrite, true).allowed);
}

std::string vmPath() {
  return std::string(kRg) +
         "/providers/Microsoft.Compute/virtualMachines/vm1?api-version=2024-07-01";
}

TEST(ArmHandlerRateLimits, EveryResponseSaysWhatIsLeft) {
  MockFixture m;
  auto r = m.getNic();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-reads"), "249");
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-global-reads"), "3749");
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-resource-requests"), "9999");
  // A Compute read counts for ARM, not for the Network RP.
  r = m.call("GET", vmPath());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-reads"), "248");
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-resource-requests"), "");
  // A 404 was still a request.
  r = m.getNic("nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-resource-requests"), "9998");
  r = m.call("DELETE", std::string(kRg) +
                           "/providers/Microsoft.Network/networkInterfaces/nic-b"
                           "?api-version=2024-05-01");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-deletes"), "199");
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-resource-requests"), "999");
  // An unauthenticated call is refused before ARM counts anything.
  r = m.call("GET", vmPath(), "", {{"Authorization", ""}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-reads"), "");
}

TEST(ArmHandlerRateLimits, ThrottledWritesWaitTheirRetryAfterAndAreCounted) {
  HandlerOptions options;
  options.writesPer5Min = 0;
  MockFixture m(StateOptions{.asyncDelay = 0ms}, options);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(m.putNic(testing::nicBody({})).status, 200) << i;
  auto r = m.putNic(testing::nicBody({}));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(parsed(r)["error"]["code"], "SubscriptionRequestsThrottled");
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-writes"), "0");
  EXPECT_EQ(m.getNic().status, 200) << "reads have their own bucket";
  m.clock.advance(1s);
  EXPECT_EQ(m.putNic(testing::nicBody({})).status, 200);
  const auto state = parsed(m.call("GET", "/mock/state"));
  EXPECT_EQ(state["counters"]["throttled"], 1);
  EXPECT_EQ(state["rateLimits"]["throttledSubscription"], 1);
  EXPECT_EQ(state["rateLimits"]["timeScale"], 1.0);
}

TEST(ArmHandlerRateLimits, SubscriptionLimitsCanBeTurnedOff) {
  HandlerOptions options;
  options.subscriptionLimits = false;
  options.writesPer5Min = 0;
  MockFixture m(StateOptions{.asyncDelay = 0ms}, options);
  for (int i = 0; i < 250; ++i)
    ASSERT_EQ(m.putNic(testing::nicBody({})).status, 200) << i;
  EXPECT_EQ(m.putNic(testing::nicBody({})).header("x-ms-ratelimit-remaining-subscription-writes"),
            "");
}

}  // namespace
}  // namespace vnetipam::azuremock
