#include "lib/base/time.h"

#include <gtest/gtest.h>

#include "lib/base/clock.h"
#include "unit/lib/base/fake_clock.h"

namespace vnetipam::base {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_seconds;
using testing::FakeClock;

TEST(ParseRfc3339, AsKubernetesWritesItAndWithOffsetsAndFractions) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), sys_seconds{});
  EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00Z"), sys_seconds(std::chrono::seconds(1'800'000'000)));
  EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00.123456Z"),
            sys_seconds(std::chrono::seconds(1'800'000'000)))
      << "fractions dropped";
  EXPECT_EQ(parseRfc3339("2027-01-15T09:00:00+01:00"),
            sys_seconds(std::chrono::seconds(1'800'000'000)));
  EXPECT_EQ(parseRfc3339("2027-01-15T07:30:00-00:30"),
            sys_seconds(std::chrono::seconds(1'800'000'000)));
}

TEST(ParseRfc3339, RefusesWhatIsNotOne) {
  EXPECT_EQ(parseRfc3339("2027-02-30T00:00:00Z"), std::nullopt) << "no such day";
  EXPECT_EQ(parseRfc3339("2027-01-15T24:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("yesterday"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00"), std::nullopt) << "an offset is required";
  EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00Zjunk"), std::nullopt);
}

TEST(FormatRfc3339, WholeSecondsInUtc) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)) +
                 std::chrono::milliseconds(999);
  EXPECT_EQ(formatRfc3339(t), "2023-11-14T22:13:20Z");
  EXPECT_EQ(parseRfc3339(formatRfc3339(t)), std::chrono::floor<std::chrono::seconds>(t));
}

TEST(FormatRfc3339Micro, SixFractionalDigitsInUtc) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1'795'694'400));
  EXPECT_EQ(formatRfc3339Micro(t), "2026-11-26T12:00:00.000000Z");
  EXPECT_EQ(formatRfc3339Micro(t + std::chrono::microseconds(86'400'000'123)),
            "2026-11-27T12:00:00.000123Z");
  EXPECT_EQ(formatRfc3339Micro(t + std::chrono::nanoseconds(999)), "2026-11-26T12:00:00.000000Z");
  EXPECT_EQ(formatRfc3339Micro(std::chrono::system_clock::time_point{}),
            "1970-01-01T00:00:00.000000Z");
}

TEST(ParseHttpDate, TheThreeFormsOfRfc9110) {
  const sys_seconds t = std::chrono::sys_days(std::chrono::year(1994) / 11 / 6) +
                        std::chrono::hours(8) + std::chrono::minutes(49) + std::chrono::seconds(37);
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), t);
  EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994"), t);
  EXPECT_EQ(parseHttpDate(" \tSun, 06 Nov 1994 08:49:37 GMT "), t);
  EXPECT_EQ(parseHttpDate("Wed, 21 Oct 2015 07:28:00 GMT"),
            sys_seconds(std::chrono::sys_days(std::chrono::year(2015) / 10 / 21) +
                        std::chrono::hours(7) + std::chrono::minutes(28)));
}

TEST(ParseHttpDate, RefusesWhatIsNotOne) {
  for (const char* bad : {"", "soon", "21 Oct 2015 07:28:00 GMT", "Wed, 21 Foo 2015 07:28:00 GMT",
                          "Wed, 31 Feb 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 PST",
                          "Wed, 21 Oct 2015 25:00:00 GMT", "Wed, 21 Oct 2015 07:28 GMT"}) {
    EXPECT_EQ(parseHttpDate(bad), std::nullopt) << bad;
  }
}

TEST(SystemClock, IsTheProcessesSteadyAndCalendarTime) {
  Clock& clock = systemClock();
  EXPECT_EQ(&clock, &systemClock()) << "one real clock";
  const auto steadyBefore = std::chrono::steady_clock::now();
  const auto wallBefore = std::chrono::system_clock::now();
  const auto steady = clock.now();
  const auto wall = clock.wallNow();
  EXPECT_GE(steady, steadyBefore);
  EXPECT_LE(steady, std::chrono::steady_clock::now());
  EXPECT_GE(wall, wallBefore - 1s) << "calendar time may be stepped, never by much in a test";
  EXPECT_LE(wall, std::chrono::system_clock::now() + 1s);
}

TEST(FakeClock, SleepingAndAdvancingMoveBothTimesAndOnlySleepsAreRecorded) {
  FakeClock clock;
  const auto steady = clock.now();
  EXPECT_EQ(clock.wallNow(), Clock::WallTimePoint(FakeClock::kWallStart));
  clock.sleepFor(3s);
  clock.advance(500ms);
  EXPECT_EQ(clock.now() - steady, 3500ms);
  EXPECT_EQ(clock.wallNow() - Clock::WallTimePoint(FakeClock::kWallStart), 3500ms);
  EXPECT_EQ(clock.sleeps(), std::vector<Clock::Duration>{3s});
}

TEST(FakeClock, SetWallStepsCalendarTimeAlone) {
  const Clock::WallTimePoint epoch{};
  FakeClock clock(epoch);
  EXPECT_EQ(clock.wallNow(), epoch);
  const auto steady = clock.now();
  clock.setWall(epoch + 24h);
  EXPECT_EQ(clock.wallNow(), epoch + 24h);
  EXPECT_EQ(clock.now(), steady) << "a calendar step is no monotonic time";
  clock.advance(1s);
  EXPECT_EQ(clock.wallNow(), epoch + 24h + 1s);
}

}  // namespace
}  // namespace vnetipam::base
