#include "lib/azure/arm_pacer.h"

#include <chrono>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "lib/azure/arm_client.h"
#include "unit/lib/azure/fake_credential.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::azure {
namespace {

using namespace std::chrono_literals;
using base::testing::FakeClock;
using http::testing::FakeTransport;
using testing::FakeCredential;

constexpr bool kRead = true;
constexpr bool kWrite = false;

double seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

// Sends `n` requests of one class through the pacer as ArmClient does (reserve, then sleep on
// the clock), and returns when the last one went out, from the start.
Clock::Duration paceMany(ArmPacer& pacer, FakeClock& clock, bool read, int n) {
  const auto start = clock.now();
  for (int i = 0; i < n; ++i)
    clock.sleepFor(pacer.reserve(read));
  return clock.now() - start;
}

class RemainingObserver final : public ArmObserver {
 public:
  void onRequest(std::string_view, int, std::chrono::nanoseconds) override {}
  void onWait(std::string_view, WaitReason reason, std::chrono::nanoseconds d) override {
    waits[std::string(toString(reason))] += d;
  }
  void onRateLimitRemaining(bool read, std::string_view header, std::int64_t remaining) override {
    seen[std::string(read ? "read " : "write ") + std::string(header)] = remaining;
  }
  std::map<std::string, std::int64_t> seen;
  std::map<std::string, std::chrono::nanoseconds> waits;
};

TEST(ArmPacer, SpendsTheWriteBudgetAtAnEvenPace) {
  FakeClock clock;
  ArmPacer pacer(clock, {.writesPer5Min = 500}, nullptr);
  // A burst of 1% (5), then (500 - 5) per 300 s: 1,000 writes take (1000 - 5) / 1.65 s.
  const auto took = paceMany(pacer, clock, kWrite, 1000);
  EXPECT_NEAR(seconds(took), 995 * 300.0 / 495, 0.01);
  // Never more than the budget in any 5 minutes: from a rested bucket, 300 s hold 500.
  FakeClock fresh;
  ArmPacer rested(fresh, {.writesPer5Min = 500}, nullptr);
  int sent = 0;
  const auto start = fresh.now();
  while (true) {
    const auto wait = rested.reserve(kWrite);
    if (fresh.now() + wait - start > 300s) break;
    fresh.sleepFor(wait);
    ++sent;
  }
  EXPECT_EQ(sent, 500);
  // Reads have their own budget: untouched by all those writes.
  EXPECT_EQ(pacer.reserve(kRead), Clock::Duration::zero());
}

TEST(ArmPacer, ZeroBudgetDoesNotPace) {
  FakeClock clock;
  ArmPacer pacer(clock, {.readsPer5Min = 0, .writesPer5Min = 0}, nullptr);
  EXPECT_EQ(paceMany(pacer, clock, kWrite, 10000), Clock::Duration::zero());
}

TEST(ArmPacer, TimeScaleRunsTheBudgetFaster) {
  FakeClock clock;
  ArmPacer pacer(clock, {.writesPer5Min = 500, .timeScale = 60}, nullptr);
  EXPECT_NEAR(seconds(paceMany(pacer, clock, kWrite, 1000)), 995 * 5.0 / 495, 0.01);
}

TEST(ArmPacer, RemainingUnderTheReserveHoldsTheClass) {
  FakeClock clock;
  RemainingObserver observer;
  ArmPacer pacer(clock, {.readReserve = 50, .writeReserve = 20}, &observer);
  http::Headers headers{{"x-ms-ratelimit-remaining-subscription-writes", "25"},
                        {"x-ms-ratelimit-remaining-subscription-global-writes", "2999"}};
  pacer.observe(kWrite, headers);
  EXPECT_EQ(pacer.holdLeft(kWrite).left, Clock::Duration::zero()) << "25 >= the reserve of 20";
  EXPECT_EQ(observer.seen["write x-ms-ratelimit-remaining-subscription-writes"], 25);
  EXPECT_EQ(observer.seen["write x-ms-ratelimit-remaining-subscription-global-writes"], 2999);
  // ARM's write bucket at 15: 5 short of the reserve, back in 0.5 s at 10 a second.
  pacer.observe(kWrite, {{"x-ms-ratelimit-remaining-subscription-writes", "15"}});
  auto held = pacer.holdLeft(kWrite);
  EXPECT_EQ(held.left, 500ms);
  EXPECT_EQ(held.reason, WaitReason::kReserve);
  EXPECT_EQ(pacer.holdLeft(kRead).left, Clock::Duration::zero()) << "reads go on";
  // The Network RP's count under the reserve: wait the whole window.
  pacer.observe(kWrite, {{"x-ms-ratelimit-remaining-subscription-resource-requests", "3"}});
  EXPECT_EQ(pacer.holdLeft(kWrite).left, 300s);
  clock.advance(300s);
  EXPECT_EQ(pacer.holdLeft(kWrite).left, Clock::Duration::zero());
  // The read class reads the read headers: a write count on a read response is not its own.
  pacer.observe(kRead, {{"x-ms-ratelimit-remaining-subscription-writes", "0"},
                        {"x-ms-ratelimit-remaining-subscription-reads", "200"}});
  EXPECT_EQ(pacer.holdLeft(kRead).left, Clock::Duration::zero());
  pacer.observe(kRead, {{"x-ms-ratelimit-remaining-subscription-global-reads", "0"}});
  EXPECT_EQ(pacer.holdLeft(kRead).left,
            std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(50.0 / 375)));
  // Garbage is ignored.
  pacer.observe(kWrite, {{"x-ms-ratelimit-remaining-subscription-writes", "few"}});
  EXPECT_EQ(pacer.holdLeft(kWrite).left, Clock::Duration::zero());
}

TEST(ArmPacer, ClientsSharingAPacerShareItsBudgetAndItsHolds) {
  FakeClock clock;
  FakeTransport transport;
  FakeCredential credential;
  RemainingObserver observer;
  // Budget 303 per 5 min: a burst of 3, then one a second ((303 - 3) / 300 s).
  ArmPacer pacer(clock, {.writesPer5Min = 303, .writeReserve = 20}, &observer);
  const ArmClientOptions options{
      .random01 = [] { return 0.0; }, .observer = &observer, .pacer = &pacer};
  ArmClient a(transport, "https://arm.test", credential, clock, options);
  ArmClient b(transport, "https://arm.test", credential, clock, options);
  const auto respond = [&](std::string remaining) {
    transport.respond(200, "{}", {{"x-ms-ratelimit-remaining-subscription-writes", remaining}});
  };
  for (int i = 0; i < 6; ++i)
    respond("199");
  const auto start = clock.now();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.send("Put", "PUT", "/x", "{}"));
    ASSERT_TRUE(b.send("Put", "PUT", "/x", "{}"));
  }
  EXPECT_EQ(clock.now() - start, 3s) << "six writes of two clients: three at once, three paced";
  EXPECT_EQ(observer.waits["write_budget"], 3s);
  EXPECT_EQ(observer.seen["write x-ms-ratelimit-remaining-subscription-writes"], 199);
  // a's response says none remain: b's next write waits for ARM's bucket to hold the reserve
  // again ((20 - 0) / 10 a second = 2 s), one second more than its budget wait.
  respond("0");
  respond("199");
  ASSERT_TRUE(a.send("Put", "PUT", "/x", "{}"));
  const auto before = clock.now();
  ASSERT_TRUE(b.send("Put", "PUT", "/x", "{}"));
  EXPECT_EQ(clock.now() - before, 2s);
  EXPECT_EQ(observer.waits["reserve"], 1s);
  // Reads went on all along.
  transport.respond(200, "{}");
  const auto readStart = clock.now();
  ASSERT_TRUE(a.get("Get", "/x"));
  EXPECT_EQ(clock.now(), readStart);
}

TEST(ArmPacer, A429ToOneClientHoldsTheOthers) {
  FakeClock clock;
  FakeTransport transport;
  FakeCredential credential;
  RemainingObserver observer;
  ArmPacer pacer(clock, {.readsPer5Min = 0, .writesPer5Min = 0}, &observer);
  ArmClient a(transport, "https://arm.test", credential, clock,
              {.maxThrottleRetries = 0, .observer = &observer, .pacer = &pacer});
  ArmClient b(transport, "https://arm.test", credential, clock,
              {.observer = &observer, .pacer = &pacer});
  transport.respond(429, "{}", {{"Retry-After", "7"}});
  transport.respond(200, "{}");
  auto refused = a.send("Put", "PUT", "/x", "{}");  // gives up at once, but holds the class
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  const auto before = clock.now();
  ASSERT_TRUE(b.send("Put", "PUT", "/y", "{}"));
  EXPECT_EQ(clock.now() - before, 7s);
  EXPECT_EQ(observer.waits["throttled"], 7s);
}

}  // namespace
}  // namespace vnetipam::azure
