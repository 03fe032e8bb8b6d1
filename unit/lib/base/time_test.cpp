#include "lib/base/time.h"

#include <gtest/gtest.h>

namespace vnetipam::base {
namespace {

using std::chrono::sys_seconds;

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

}  // namespace
}  // namespace vnetipam::base
