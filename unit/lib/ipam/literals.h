// Address and prefix literals for tests: parse, and fail the current test (naming the text and
// the parse error) when the literal itself is wrong.
#pragma once

#include <string_view>

#include <gtest/gtest.h>

#include "lib/ipam/ip.h"

namespace vnetipam::ipam::testing {

inline IPAddress A(std::string_view s) {
  auto a = IPAddress::parse(s);
  EXPECT_TRUE(a.has_value()) << s << ": " << (a ? "" : a.error().message);
  return a.value_or(IPAddress{});
}

inline Prefix P(std::string_view s) {
  auto p = Prefix::parse(s);
  EXPECT_TRUE(p.has_value()) << s << ": " << (p ? "" : p.error().message);
  return p.value_or(Prefix{});
}

}  // namespace vnetipam::ipam::testing
