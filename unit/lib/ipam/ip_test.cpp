#include "lib/ipam/ip.h"

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::ipam {
namespace {

using testing::A;
using testing::P;

TEST(IPAddress, ParsesAndFormatsIPv4) {
  EXPECT_EQ(A("10.240.0.4").bits(), U128{0x0af00004});
  EXPECT_EQ(A("10.240.0.4").family(), Family::kV4);
  EXPECT_EQ(A("0.0.0.0").toString(), "0.0.0.0");
  EXPECT_EQ(A("255.255.255.255").toString(), "255.255.255.255");
  EXPECT_EQ(IPAddress::v4(0xc0a80101).toString(), "192.168.1.1");
}

TEST(IPAddress, ParsesAndFormatsIPv6Canonically) {
  EXPECT_EQ(A("fd00:0:0:0:0:0:0:1").toString(), "fd00::1");
  EXPECT_EQ(A("::").toString(), "::");
  EXPECT_EQ(A("::").family(), Family::kV6);
  EXPECT_EQ(A("FD00:10:240::4").toString(), "fd00:10:240::4");
  EXPECT_EQ(A("::1").bits(), U128{1});
  EXPECT_EQ(A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").bits(), ~U128{0});
}

// The same text Go's net/netip prints, which is what the API server's CEL compares against.
TEST(IPAddress, FormatsIPv6LikeGo) {
  EXPECT_EQ(A("::1:0").toString(), "::1:0") << "not glibc's ::0.1.0.0";
  EXPECT_EQ(A("::1.2.3.4").toString(), "::102:304");
  EXPECT_EQ(A("::ffff:1.2.3.4").toString(), "::ffff:1.2.3.4");
  EXPECT_EQ(A("::1").toString(), "::1");
  EXPECT_EQ(A("1::").toString(), "1::");
  EXPECT_EQ(A("1:0:0:2:0:0:0:3").toString(), "1:0:0:2::3") << "the longest zero run";
  EXPECT_EQ(A("1:0:0:2:0:0:3:4").toString(), "1::2:0:0:3:4") << "the first of equal runs";
  EXPECT_EQ(A("1:0:2:3:4:5:6:7").toString(), "1:0:2:3:4:5:6:7") << "one zero is not a run";
  EXPECT_EQ(A("fd00:10:240:0:1::").toString(), "fd00:10:240:0:1::");
}

TEST(IPAddress, RejectsMalformedTextWithAHint) {
  for (std::string_view bad : {"", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.1 ", "a.b.c.d",
                               "1.2.3.4.5", "10.0.0.-1"}) {
    auto r = IPAddress::parse(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(std::string("\"") + std::string(bad) + "\""),
              std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("expected"), std::string::npos) << r.error().message;
  }
  for (std::string_view bad : {"fd00::1::2", "fd00:::1", "12345::", "g::1", ":"}) {
    auto r = IPAddress::parse(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message.find("IPv6"), std::string::npos) << r.error().message;
  }
}

TEST(IPAddress, OrdersV4BeforeV6ThenNumerically) {
  EXPECT_LT(A("10.0.0.1"), A("10.0.0.2"));
  EXPECT_LT(A("255.255.255.255"), A("::"));
  EXPECT_EQ(A("10.0.0.1"), A("10.0.0.1"));
}

TEST(Prefix, ParsesAlignedPrefixes) {
  const Prefix p = P("10.240.0.16/28");
  EXPECT_EQ(p.address(), A("10.240.0.16"));
  EXPECT_EQ(p.length(), 28);
  EXPECT_EQ(p.size(), U128{16});
  EXPECT_EQ(p.last(), A("10.240.0.31"));
  EXPECT_EQ(p.toString(), "10.240.0.16/28");
  EXPECT_EQ(P("fd00:10::/64").toString(), "fd00:10::/64");
}

TEST(Prefix, EdgeLengths) {
  const Prefix all4 = P("0.0.0.0/0");
  EXPECT_EQ(all4.size(), U128{1} << 32);
  EXPECT_EQ(all4.last(), A("255.255.255.255"));
  EXPECT_TRUE(all4.contains(A("203.0.113.9")));
  EXPECT_FALSE(all4.contains(A("::1"))) << "families never contain each other";

  const Prefix host4 = P("10.0.0.7/32");
  EXPECT_EQ(host4.size(), U128{1});
  EXPECT_EQ(host4.first(), host4.last());
  EXPECT_TRUE(host4.contains(A("10.0.0.7")));
  EXPECT_FALSE(host4.contains(A("10.0.0.6")));

  const Prefix all6 = P("::/0");
  EXPECT_EQ(all6.size(), ~U128{0}) << "2^128 saturates";
  EXPECT_EQ(all6.last(), A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));

  const Prefix host6 = P("fd00::5/128");
  EXPECT_EQ(host6.size(), U128{1});
  EXPECT_TRUE(host6.contains(A("fd00::5")));
  EXPECT_FALSE(host6.contains(A("fd00::4")));
}

TEST(Prefix, MisalignedPrefixSuggestsTheAlignedOne) {
  auto r = Prefix::parse("10.0.0.5/28");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotAligned);
  EXPECT_EQ(r.error().message, "\"10.0.0.5/28\" is not aligned: did you mean 10.0.0.0/28?");

  auto r6 = Prefix::parse("fd00::1/64");
  ASSERT_FALSE(r6.has_value());
  EXPECT_EQ(r6.error().message, "\"fd00::1/64\" is not aligned: did you mean fd00::/64?");
}

TEST(Prefix, RejectsBadLengthsAndSyntax) {
  for (std::string_view bad : {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08",
                               "10.0.0.0/2a", "fd00::/129", "/24", "10.0.0/24"}) {
    auto r = Prefix::parse(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message.find(std::string("\"") + std::string(bad) + "\""),
              std::string::npos)
        << r.error().message;
  }
  EXPECT_NE(Prefix::parse("10.0.0.0/33").error().message.find("expected 0-32"), std::string::npos);
  EXPECT_NE(Prefix::parse("fd00::/129").error().message.find("expected 0-128"), std::string::npos);
}

TEST(Prefix, MakeAndMasked) {
  EXPECT_EQ(Prefix::masked(A("10.1.2.3"), 8).toString(), "10.0.0.0/8");
  EXPECT_EQ(Prefix::masked(A("10.1.2.3"), 0).toString(), "0.0.0.0/0");
  EXPECT_EQ(Prefix::masked(A("10.1.2.3"), 32).toString(), "10.1.2.3/32");
  EXPECT_TRUE(Prefix::isAligned(A("10.0.0.0"), 8));
  EXPECT_FALSE(Prefix::isAligned(A("10.0.0.1"), 31));
  EXPECT_TRUE(Prefix::isAligned(A("10.0.0.1"), 32));
  EXPECT_EQ(Prefix::make(A("10.0.0.0"), 33).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(Prefix::make(A("10.0.0.0"), -1).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(Prefix::make(A("10.0.0.16"), 27).error().code, ErrorCode::kNotAligned);
}

TEST(Prefix, ContainsAndOverlaps) {
  const Prefix subnet = P("10.240.0.0/16");
  const Prefix block = P("10.240.3.16/28");
  EXPECT_TRUE(subnet.contains(block));
  EXPECT_FALSE(block.contains(subnet));
  EXPECT_TRUE(subnet.overlaps(block));
  EXPECT_TRUE(block.overlaps(subnet));
  EXPECT_TRUE(block.contains(block));
  EXPECT_FALSE(P("10.240.3.0/28").overlaps(block)) << "adjacent blocks do not overlap";
  EXPECT_FALSE(P("10.241.0.0/16").overlaps(subnet));
  EXPECT_FALSE(P("::/0").overlaps(subnet)) << "families never overlap";
  EXPECT_TRUE(subnet.contains(A("10.240.255.255")));
  EXPECT_FALSE(subnet.contains(A("10.241.0.0")));
}

}  // namespace
}  // namespace vnetipam::ipam
