#include "lib/http/rate_limiter.h"

#include <chrono>

#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"

namespace vnetipam::http {
namespace {

using base::testing::FakeClock;
using std::chrono::milliseconds;

TEST(TokenBucket, AllowsABurstThenSpacesRequestsAtQps) {
  FakeClock clock;
  TokenBucket bucket(clock, /*qps=*/10, /*burst=*/3);
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  // Empty: the 4th waits one refill (100 ms), the 5th queues behind it (200 ms).
  EXPECT_EQ(bucket.reserve(), milliseconds(100));
  EXPECT_EQ(bucket.reserve(), milliseconds(200));
}

TEST(TokenBucket, RefillsWithTimeButNotBeyondTheBurst) {
  FakeClock clock;
  TokenBucket bucket(clock, /*qps=*/2, /*burst=*/2);
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  clock.advance(std::chrono::seconds(60));  // would be 120 tokens without the cap
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
  EXPECT_EQ(bucket.reserve(), milliseconds(500));
}

TEST(TokenBucket, AcquireSleepsOnTheClock) {
  FakeClock clock;
  TokenBucket bucket(clock, /*qps=*/4, /*burst=*/1);
  bucket.acquire();
  bucket.acquire();
  bucket.acquire();
  ASSERT_EQ(clock.sleeps().size(), 2u);
  EXPECT_EQ(clock.sleeps()[0], milliseconds(250));
  EXPECT_EQ(clock.sleeps()[1], milliseconds(250));
}

TEST(TokenBucket, ZeroQpsMeansNoLimit) {
  FakeClock clock;
  TokenBucket bucket(clock, 0, 1);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(bucket.reserve(), base::Clock::Duration::zero());
}

}  // namespace
}  // namespace vnetipam::http
