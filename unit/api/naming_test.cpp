#include "api/naming.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "api/constants.h"

namespace vnetipam::api {
namespace {

ipam::Prefix prefix(std::string_view text) {
  auto p = ipam::Prefix::parse(text);
  EXPECT_TRUE(p) << text;
  return p.value_or(ipam::Prefix{});
}

std::string name(std::string_view subnet, std::string_view cidr) {
  auto n = blockName(subnet, prefix(cidr));
  EXPECT_TRUE(n) << n.error().message;
  return n.value_or("");
}

TEST(BlockNameTest, IPv4) {
  EXPECT_EQ(name("pods", "10.240.0.16/28"), "pods-10-240-0-16-28");
  EXPECT_EQ(name("pods", "0.0.0.0/16"), "pods-0-0-0-0-16");
  EXPECT_EQ(name("pods", "255.255.255.255/32"), "pods-255-255-255-255-32");
}

TEST(BlockNameTest, IPv6UsesTheCompressedForm) {
  EXPECT_EQ(name("pods", "fd00:10:240::/80"), "pods-fd00-10-240---80");
  EXPECT_EQ(name("pods", "fd00:10:240:0:0:0:0:0/80"), "pods-fd00-10-240---80");
  EXPECT_EQ(name("pods", "FD00:10:240::/80"), "pods-fd00-10-240---80");
  EXPECT_EQ(name("pods", "fd00:1:2:3:4:5:6:7/128"), "pods-fd00-1-2-3-4-5-6-7-128");
  EXPECT_EQ(name("pods", "fd00:0:0:1::/64"), "pods-fd00-0-0-1---64");
}

TEST(BlockNameTest, IPv6EdgesStayValidNames) {
  // "::" at either end of the address: the subnet name in front keeps the name valid.
  EXPECT_EQ(name("pods", "::/64"), "pods----64");
  EXPECT_EQ(name("pods", "::1/128"), "pods---1-128");
  EXPECT_EQ(name("pods", "fd00::/64"), "pods-fd00---64");
  EXPECT_TRUE(isDns1123Subdomain(name("pods", "::/64")));
  EXPECT_TRUE(isDns1123Subdomain(name("pods", "::1/128")));
}

TEST(BlockNameTest, DottedSubnetNameKeepsItsDots) {
  EXPECT_EQ(name("pods.v4", "10.240.0.7/32"), "pods.v4-10-240-0-7-32");
}

TEST(BlockNameTest, LongestSubnetNameStillFits) {
  const std::string subnet(kMaxPodSubnetNameLength, 'p');
  const std::string n = name(subnet, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
  EXPECT_LE(n.size(), 253u);
  EXPECT_TRUE(isDns1123Subdomain(n));
}

TEST(BlockNameTest, RefusesNamesThatCannotBeValid) {
  const std::string too_long(240, 'p');
  auto n = blockName(too_long, prefix("fd00:10:240::/80"));
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_NE(n.error().message.find("longer than 253 characters"), std::string::npos);

  EXPECT_FALSE(blockName("Pods", prefix("10.240.0.16/28")));
  EXPECT_FALSE(blockName("", prefix("10.240.0.16/28")));
  EXPECT_FALSE(blockName("pods-", prefix("10.240.0.16/28")));
}

TEST(BlockNameTest, DistinctPrefixesOfOneSubnetGetDistinctValidNames) {
  std::set<std::string> seen;
  int count = 0;
  for (const char* cidr :
       {"10.240.0.0/28", "10.240.0.16/28", "10.240.0.0/27", "10.240.1.0/28", "10.24.0.0/28",
        "10.2.40.0/28", "1.0.2.40/32", "fd00::/64", "fd00::/80", "fd00:0:0:1::/80",
        "fd00::1:0:0:0/80", "fd00:10:240::/80", "fd00:10:240:0:1::/80", "::/64", "::1/128",
        "::1:0/112", "1::/64", "0:1::/64", "10:240::/64"}) {
    const std::string n = name("pods", cidr);
    EXPECT_TRUE(isDns1123Subdomain(n)) << n;
    EXPECT_TRUE(seen.insert(n).second) << "duplicate name " << n << " for " << cidr;
    ++count;
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(count));
}

TEST(Dns1123SubdomainTest, AcceptsAndRefuses) {
  EXPECT_TRUE(isDns1123Subdomain("node-1"));
  EXPECT_TRUE(isDns1123Subdomain("a"));
  EXPECT_TRUE(isDns1123Subdomain("0"));
  EXPECT_TRUE(isDns1123Subdomain("aks-nodepool1-12345678-vmss000000"));
  EXPECT_TRUE(isDns1123Subdomain("ip-10-0-0-1.ec2.internal"));
  EXPECT_TRUE(isDns1123Subdomain("a--b"));
  EXPECT_TRUE(isDns1123Subdomain(std::string(253, 'a')));

  EXPECT_FALSE(isDns1123Subdomain(""));
  EXPECT_FALSE(isDns1123Subdomain(std::string(254, 'a')));
  EXPECT_FALSE(isDns1123Subdomain("Node-1"));
  EXPECT_FALSE(isDns1123Subdomain("node_1"));
  EXPECT_FALSE(isDns1123Subdomain("-node"));
  EXPECT_FALSE(isDns1123Subdomain("node-"));
  EXPECT_FALSE(isDns1123Subdomain(".node"));
  EXPECT_FALSE(isDns1123Subdomain("node."));
  EXPECT_FALSE(isDns1123Subdomain("a..b"));
  EXPECT_FALSE(isDns1123Subdomain("a.-b"));
  EXPECT_FALSE(isDns1123Subdomain("a b"));
}

TEST(LabelSyntaxTest, Keys) {
  EXPECT_TRUE(isLabelKey("pool"));
  EXPECT_TRUE(isLabelKey("kubernetes.io/os"));
  EXPECT_TRUE(isLabelKey("node.kubernetes.io/instance-type"));
  EXPECT_TRUE(isLabelKey("A_b.c-D"));
  EXPECT_TRUE(isLabelKey(std::string(63, 'k')));

  EXPECT_FALSE(isLabelKey(""));
  EXPECT_FALSE(isLabelKey(std::string(64, 'k')));
  EXPECT_FALSE(isLabelKey("bad key"));
  EXPECT_FALSE(isLabelKey("_pool"));
  EXPECT_FALSE(isLabelKey("pool-"));
  EXPECT_FALSE(isLabelKey("Example.com/pool"));
  EXPECT_FALSE(isLabelKey("/pool"));
  EXPECT_FALSE(isLabelKey("example.com/"));
  EXPECT_FALSE(isLabelKey("a/b/c"));
}

TEST(LabelSyntaxTest, Values) {
  EXPECT_TRUE(isLabelValue(""));
  EXPECT_TRUE(isLabelValue("linux"));
  EXPECT_TRUE(isLabelValue("Standard_D4s_v5"));
  EXPECT_TRUE(isLabelValue(std::string(63, 'v')));

  EXPECT_FALSE(isLabelValue(std::string(64, 'v')));
  EXPECT_FALSE(isLabelValue("bad value"));
  EXPECT_FALSE(isLabelValue("-x"));
  EXPECT_FALSE(isLabelValue("x."));
  EXPECT_FALSE(isLabelValue("a/b"));
}

}  // namespace
}  // namespace vnetipam::api
