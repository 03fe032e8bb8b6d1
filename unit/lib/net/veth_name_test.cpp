#include "lib/net/veth_name.h"

#include <gtest/gtest.h>

#include "lib/net/host_veth_gc.h"

namespace vnetipam::net {
namespace {

TEST(HostVethNameTest, FillsFifteenCharactersAfterThePrefix) {
  const auto name = hostVethName("vnet", "4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99", "eth0");
  ASSERT_TRUE(name.has_value()) << name.error().message;
  EXPECT_EQ(name->size(), 15u);
  EXPECT_TRUE(name->starts_with("vnet"));
  EXPECT_EQ(name->find_first_not_of("0123456789abcdef", 4), std::string::npos);
}

TEST(HostVethNameTest, IsDeterministicAndPinned) {
  // Pinned: a change of hash would orphan every running pod's veth on upgrade.
  EXPECT_EQ(*hostVethName("cali", "abc", "eth0"), *hostVethName("cali", "abc", "eth0"));
  EXPECT_EQ(*hostVethName("vnet", "abc", "eth0"), "vnete71fa219054");
  EXPECT_NE(*hostVethName("vnet", "abc", "eth0"), *hostVethName("vnet", "abd", "eth0"));
}

// One veth per attachment: eth0 keeps the pinned name above (the hash of the container id alone,
// as releases that did not hash interface names gave every attachment), any other interface of the
// same container gets a name of its own.
TEST(HostVethNameTest, KeyedByContainerAndInterface) {
  EXPECT_EQ(*hostVethName("vnet", "abc", "eth0"), *legacyHostVethName("vnet", "abc"));
  const auto eth1 = *hostVethName("vnet", "abc", "eth1");
  EXPECT_NE(eth1, *hostVethName("vnet", "abc", "eth0"));
  EXPECT_NE(eth1, *hostVethName("vnet", "abc", "eth2"));
  EXPECT_NE(eth1, *hostVethName("vnet", "abd", "eth1"));
  EXPECT_EQ(eth1, *hostVethName("vnet", "abc", "eth1"));
  EXPECT_EQ(eth1, "vnet561a68de51a");  // pinned, as eth0's is
  EXPECT_TRUE(isHostVethName("vnet", eth1));
  EXPECT_EQ(hostVethName("vnet", "abc", "").error().code, ErrorCode::kInvalidArgument);
}

TEST(HostVethNameTest, ShorterAndLongerPrefixes) {
  EXPECT_EQ(hostVethName("v", "abc", "eth0")->size(), 15u);
  const auto longest = hostVethName("abcdefghijk", "abc", "eth0");
  ASSERT_TRUE(longest.has_value());
  EXPECT_EQ(*longest, "abcdefghijke71f");
}

TEST(HostVethNameTest, RefusesBadInput) {
  EXPECT_EQ(hostVethName("vnet", "", "eth0").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("", "abc", "eth0").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("abcdefghijkl", "abc", "eth0").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("a/b", "abc", "eth0").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(hostVethName("a b", "abc", "eth0").error().code, ErrorCode::kInvalidArgument);
}

TEST(HostVethNameTest, RecognisesItsOwnShapeOnly) {
  EXPECT_TRUE(isHostVethName("vnet", *hostVethName("vnet", "abc", "eth0")));
  EXPECT_TRUE(isHostVethName("v", *hostVethName("v", "abc", "eth0")));
  EXPECT_FALSE(isHostVethName("vnet", *hostVethName("vnetx", "abc", "eth0")));  // 'x' is not hex
  EXPECT_FALSE(isHostVethName("vnet", "vnet0123"));                             // too short
  EXPECT_FALSE(isHostVethName("vnet", "vnet0123456789A"));                      // upper case
  EXPECT_FALSE(isHostVethName("vnet", "vnex0123456789a"));                      // another prefix
  EXPECT_FALSE(isHostVethName("", "0123456789abcde"));                          // no prefix: never
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
