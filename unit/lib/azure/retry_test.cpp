#include "lib/azure/retry.h"

#include <chrono>

#include <gtest/gtest.h>

#include "lib/azure/error.h"

namespace vnetipam::azure {
namespace {

using namespace std::chrono_literals;

std::chrono::system_clock::time_point at(int y, unsigned m, unsigned d, int h, int min, int s) {
  return std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d}} +
         std::chrono::hours{h} + std::chrono::minutes{min} + std::chrono::seconds{s};
}

TEST(RetryTest, RetryAfterInSeconds) {
  const auto wall = at(2024, 1, 1, 0, 0, 0);
  EXPECT_EQ(retryAfter({{"Retry-After", "10"}}, wall), Clock::Duration(10s));
  EXPECT_EQ(retryAfter({{"retry-after", " 0 "}}, wall), Clock::Duration(0s));
  EXPECT_FALSE(retryAfter({}, wall).has_value());
  EXPECT_FALSE(retryAfter({{"Retry-After", "soon"}}, wall).has_value());
  EXPECT_FALSE(retryAfter({{"Retry-After", "-5"}}, wall).has_value());
}

TEST(RetryTest, RetryAfterAsADateIsMeasuredAgainstTheResponseDate) {
  // Our wall clock is an hour off; the server's Date header is what counts.
  const auto wall = at(2024, 1, 1, 13, 0, 0);
  EXPECT_EQ(retryAfter({{"Retry-After", "Mon, 01 Jan 2024 12:00:30 GMT"},
                        {"Date", "Mon, 01 Jan 2024 12:00:00 GMT"}},
                       wall),
            Clock::Duration(30s));
  // Without a Date header, our calendar time.
  EXPECT_EQ(retryAfter({{"Retry-After", "Mon, 01 Jan 2024 13:00:05 GMT"}}, wall),
            Clock::Duration(5s));
  // A date already past means no wait.
  EXPECT_EQ(retryAfter({{"Retry-After", "Mon, 01 Jan 2024 12:00:00 GMT"}}, wall),
            Clock::Duration::zero());
}

TEST(RetryTest, JitteredBackoffGrowsAndIsCapped) {
  EXPECT_EQ(jitteredBackoff(0, 500ms, 30s, 0.0), Clock::Duration(250ms));
  EXPECT_EQ(jitteredBackoff(0, 500ms, 30s, 1.0), Clock::Duration(500ms));
  EXPECT_EQ(jitteredBackoff(3, 500ms, 30s, 0.0), Clock::Duration(2s));
  EXPECT_EQ(jitteredBackoff(30, 500ms, 30s, 0.5), Clock::Duration(22500ms));
}

TEST(RedactTest, RemovesEveryKindOfCredential) {
  const std::string text =
      "Authorization: Bearer abc.def.ghi body {\"access_token\":\"tok123\",\"client_secret\": "
      "\"sec\"} form client_secret=s3cret&client_assertion=eyJhbGciOi.eyJzdWIi.sig&x=1 jwt "
      "eyJ0eXAi.eyJhdWQi.c2ln";
  const std::string out = redactSecrets(text);
  for (const char* leaked : {"abc.def", "tok123", "\"sec\"", "s3cret", "eyJhbGciOi", "eyJ0eXAi"})
    EXPECT_EQ(out.find(leaked), std::string::npos) << leaked << " in " << out;
  EXPECT_NE(out.find("Bearer <redacted>"), std::string::npos) << out;
  EXPECT_NE(out.find("&x=1"), std::string::npos) << out;
  EXPECT_EQ(redactSecrets("SubnetIsFull: no room"), "SubnetIsFull: no room");
}

}  // namespace
}  // namespace vnetipam::azure
