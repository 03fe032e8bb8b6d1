#include "lib/base/host_port.h"

#include <gtest/gtest.h>

namespace vnetipam::base {
namespace {

TEST(SplitHostPort, AcceptsTheUsualForms) {
  auto v4 = splitHostPort("0.0.0.0:9090");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->host, "0.0.0.0");
  EXPECT_EQ(v4->port, 9090);
  EXPECT_EQ(splitHostPort("[::1]:80")->host, "::1") << "brackets dropped";
  EXPECT_EQ(splitHostPort("::1:80")->host, "::1") << "the last colon splits";
  EXPECT_EQ(splitHostPort(":9091")->host, "") << "the caller decides what no host means";
  EXPECT_EQ(splitHostPort("localhost:0")->port, 0);
  EXPECT_EQ(splitHostPort("localhost:65535")->port, 65535);
}

TEST(SplitHostPort, NamesWhatIsWrong) {
  auto none = splitHostPort("9090");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error(), "\"9090\" has no port: use HOST:PORT");
  auto name = splitHostPort("localhost:http");
  ASSERT_FALSE(name.has_value());
  EXPECT_EQ(name.error(), "\"localhost:http\" has an invalid port \"http\": want 0-65535");
  EXPECT_FALSE(splitHostPort("1.2.3.4:70000").has_value());
  EXPECT_FALSE(splitHostPort("1.2.3.4:-1").has_value());
  EXPECT_FALSE(splitHostPort("1.2.3.4:").has_value());
  EXPECT_FALSE(splitHostPort("1.2.3.4:80 ").has_value());
}

}  // namespace
}  // namespace vnetipam::base
