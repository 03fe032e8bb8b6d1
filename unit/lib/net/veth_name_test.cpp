#include "lib/net/veth_name.h"

#include <gtest/gtest.h>

#include "lib/net/host_veth_gc.h"

namespace vnetipam::net {
namespace {

TEST(HostVethNameTest, FillsFifteenCharactersAfterThePrefix) {
  const auto name = hostVethName("vnet", "4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99");
  ASSERT_TRUE(name.has_value()) << name.error().message;
  EXPECT_EQ(name->size(), 15u);
  EXPECT_TRUE(name->starts_with("vnet"));
  EXPECT_EQ(name->find_first_not_of("0123456789abcdef", 4), std::string::npos);
}

TEST(HostVethNameTest, IsDeterministicAndPinned) {
  // Pinned: a change of hash would orphan every running pod's veth on upgrade.
  EXPECT_EQ(*hostVethName("cali", "abc"), *hostVethName("cali", "abc"));
  EXPECT_EQ(*hostVethName("vnet", "abc"), "vnete71fa219054");
  EXPECT_NE(*hostVethName("vnet", "abc"), *hostVethName("vnet", "abd"));
}

TEST(HostVethNameTest, ShorterAndLongerPrefixes) {
  EXPECT_EQ(hostVethName("v", "abc")->size(), 15u);
  const auto longest = hostVethName("abcdefghijk", "abc");
  ASSERT_TRUE(longest.has_value());
  EXPECT_EQ(*longest, "abcdefghijke71f");
}

TEST(HostVethNameTest, RefusesBadInput) {
  EXPECT_EQ(hostVethName("vnet", "").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("", "abc").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("abcdefghijkl", "abc").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("a/b", "abc").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("a b", "abc").error().code, ErrorCode::kInvalidArgument);
}

TEST(HostVethNameTest, RecognisesItsOwnShapeOnly) {
  EXPECT_TRUE(isHostVethName("vnet", *hostVethName("vnet", "abc")));
  EXPECT_TRUE(isHostVethName("v", *hostVethName("v", "abc")));
  EXPECT_FALSE(isHostVethName("vnet", *hostVethName("vnetx", "abc")));  // 'x' is not hex
  EXPECT_FALSE(isHostVethName("vnet", "vnet0123"));                     // too short
  EXPECT_FALSE(isHostVethName("vnet", "vnet0123456789A"));              // upper case
  EXPECT_FALSE(isHostVethName("vnet", "vnex0123456789a"));              // another prefix
  EXPECT_FALSE(isHostVethName("", "0123456789abcde"));                  // no prefix: never
}

TEST(HostVethGcPrefixTest, RefusesEmptyAndOtherPluginsPrefixes) {
  EXPECT_FALSE(gcPrefixUnsafe("vnet").has_value());
  EXPECT_FALSE(gcPrefixUnsafe("tst").has_value());
  for (const char* p : {"", "cali", "calico", "ca", "lxc", "lx", "veth", "v", "azv", "eni"}) {
    EXPECT_TRUE(gcPrefixUnsafe(p).has_value()) << "prefix '" << p << "'";
  }
}

}  // namespace
}  // namespace vnetipam::net
