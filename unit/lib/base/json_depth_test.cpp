#include "lib/base/json_depth.h"

#include <string>

#include <gtest/gtest.h>

namespace vnetipam::base {
namespace {

TEST(JsonNestingDepth, CountsObjectsAndArraysOutsideStrings) {
  EXPECT_EQ(jsonNestingDepth("", 64), 0);
  EXPECT_EQ(jsonNestingDepth("42", 64), 0);
  EXPECT_EQ(jsonNestingDepth("{}", 64), 1);
  EXPECT_EQ(jsonNestingDepth(R"({"a":[1,{"b":[]}]})", 64), 4);
  // Brackets inside strings, escaped quotes and escaped backslashes do not count.
  EXPECT_EQ(jsonNestingDepth(R"({"a":"[[[{{{\"[[["})", 64), 1);
  EXPECT_EQ(jsonNestingDepth(R"(["\\", [[]]])", 64), 3);
}

TEST(JsonNestingDepth, StopsAsSoonAsTheLimitIsPassed) {
  EXPECT_EQ(jsonNestingDepth(R"("\\")"
                             "[[",
                             1),
            2);
  EXPECT_EQ(jsonNestingDepth(std::string(1000, '['), 64), 65);
  EXPECT_EQ(jsonNestingDepth(std::string(200000, '[') + std::string(200000, ']'), 16), 17);
}

TEST(JsonNestingDepth, StrayClosingBracketsNeverCountBelowZero) {
  // Without the floor, "]]]][[[[[" would look 1 deep after going to -4.
  EXPECT_EQ(jsonNestingDepth("]]]][[[[[", 64), 5);
}

}  // namespace
}  // namespace vnetipam::base
