#include "controller/block_trust.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::controller {
namespace {

using ipam::testing::P;
using std::chrono::seconds;

const TrustPool kPool{.ranges = {P("10.0.0.0/24")},
                      .blockPrefixLength = 28,
                      .reserved = {P("10.0.0.192/27")},
                      .azure = false};

TrustCandidate candidate(std::string name, std::string_view cidr, std::string subnet = "pods") {
  return {.name = std::move(name),
          .podSubnet = std::move(subnet),
          .subnetLabel = std::nullopt,
          .cidr = P(cidr),
          .created = Time{seconds{100}}};
}

TrustVerdict judge(const TrustCandidate& c, const std::map<ipam::Prefix, std::string>& held = {},
                   const TrustPool& pool = kPool) {
  return judgeBlock(c, SubnetView::kCarved, &pool, held);
}

TEST(BlockTrust, ABlockOfTheRightLengthInsideItsPodSubnetIsAccepted) {
  EXPECT_EQ(judge(candidate("pods-10-0-0-16-28", "10.0.0.16/28")).trust, Trust::kAccepted);
}

TEST(BlockTrust, ABlockTheLabelSaysBelongsElsewhereIsRefused) {
  TrustCandidate c = candidate("pods-10-0-0-16-28", "10.0.0.16/28");
  c.subnetLabel = "pods";
  EXPECT_EQ(judge(c).trust, Trust::kAccepted);
  c.subnetLabel = "other";
  const TrustVerdict v = judge(c);
  EXPECT_EQ(v.trust, Trust::kInvalid);
  EXPECT_EQ(toString(v.rule), "SubnetLabelMismatch");
  EXPECT_NE(v.message.find("vnetipam.io/subnet"), std::string::npos) << v.message;
}

TEST(BlockTrust, AnUnknownPodSubnetIsRefusedOnlyOnceAGetConfirmedIt) {
  const TrustCandidate c = candidate("ghost-10-0-0-16-28", "10.0.0.16/28", "ghost");
  EXPECT_EQ(judgeBlock(c, SubnetView::kNotSeen, nullptr, {}).trust, Trust::kUndecided);
  EXPECT_EQ(judgeBlock(c, SubnetView::kNotCarved, nullptr, {}).trust, Trust::kUndecided);
  const TrustVerdict v = judgeBlock(c, SubnetView::kAbsent, nullptr, {});
  EXPECT_EQ(v.trust, Trust::kInvalid);
  EXPECT_EQ(toString(v.rule), "UnknownPodSubnet");
  EXPECT_NE(v.message.find("spec.podSubnet"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("ghost"), std::string::npos) << v.message;
}

TEST(BlockTrust, ABlockOutsideItsPodSubnetIsRefused) {
  for (const char* cidr : {"10.1.0.0/16", "10.1.0.0/28", "10.0.0.0/16", "fd00::/120"}) {
    const TrustVerdict v = judge(candidate("x", cidr));
    EXPECT_EQ(v.trust, Trust::kInvalid) << cidr;
    EXPECT_EQ(toString(v.rule), "OutsidePodSubnet") << cidr;
    EXPECT_NE(v.message.find("spec.cidr"), std::string::npos) << v.message;
    EXPECT_NE(v.message.find("10.0.0.0/24"), std::string::npos) << v.message;
  }
}

TEST(BlockTrust, EachRangeOfAPoolOfSeveralHoldsBlocksWithItsOwnAzureAddresses) {
  TrustPool two = kPool;
  two.ranges.push_back(P("10.9.0.0/26"));
  two.azure = true;
  EXPECT_EQ(judge(candidate("a", "10.9.0.16/28"), {}, two).trust, Trust::kAccepted);
  EXPECT_EQ(toString(judge(candidate("b", "10.9.0.0/28"), {}, two).rule), "ReservedRange")
      << "Azure keeps the first four addresses of each prefix";
  EXPECT_EQ(toString(judge(candidate("c", "10.9.0.48/28"), {}, two).rule), "ReservedRange");
  const TrustVerdict outside = judge(candidate("d", "10.9.0.64/28"), {}, two);
  EXPECT_EQ(toString(outside.rule), "OutsidePodSubnet");
  EXPECT_NE(outside.message.find("(10.0.0.0/24, 10.9.0.0/26)"), std::string::npos)
      << outside.message;
}

TEST(BlockTrust, ABlockInAReservedRangeIsRefused) {
  const TrustVerdict v = judge(candidate("pods-10-0-0-208-28", "10.0.0.208/28"));
  EXPECT_EQ(v.trust, Trust::kInvalid);
  EXPECT_EQ(toString(v.rule), "ReservedRange");
  EXPECT_NE(v.message.find("10.0.0.192/27"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("reservedCIDRs"), std::string::npos) << v.message;

  // Azure keeps the first four and the last address of its subnets.
  TrustPool azure = kPool;
  azure.azure = true;
  azure.reserved.clear();
  EXPECT_EQ(toString(judge(candidate("a", "10.0.0.0/28"), {}, azure).rule), "ReservedRange");
  EXPECT_EQ(toString(judge(candidate("b", "10.0.0.240/28"), {}, azure).rule), "ReservedRange");
  EXPECT_EQ(judge(candidate("c", "10.0.0.16/28"), {}, azure).trust, Trust::kAccepted);
}

TEST(BlockTrust, ABlockOverlappingAHeldOneIsRefusedNamingIt) {
  const std::map<ipam::Prefix, std::string> held = {{P("10.0.0.16/28"), "pods-10-0-0-16-28"},
                                                    {P("10.0.0.48/28"), "pods-10-0-0-48-28"}};
  // A /27 over the held /28 (the length rule would refuse it too: the overlap is the reason
  // given, because it names what it would take).
  TrustVerdict v = judge(candidate("pods-10-0-0-0-27", "10.0.0.0/27"), held);
  EXPECT_EQ(v.trust, Trust::kInvalid);
  EXPECT_EQ(toString(v.rule), "Overlap");
  EXPECT_NE(v.message.find("pods-10-0-0-16-28"), std::string::npos) << v.message;
  // A smaller block inside a held one, and the same CIDR under another name.
  EXPECT_EQ(toString(judge(candidate("y", "10.0.0.52/30"), held).rule), "Overlap");
  v = judge(candidate("other-name", "10.0.0.48/28"), held);
  EXPECT_EQ(toString(v.rule), "Overlap");
  EXPECT_NE(v.message.find("pods-10-0-0-48-28"), std::string::npos) << v.message;
  // The holder itself, judged again, stays accepted; a free neighbour is fine.
  EXPECT_EQ(judge(candidate("pods-10-0-0-48-28", "10.0.0.48/28"), held).trust, Trust::kAccepted);
  EXPECT_EQ(judge(candidate("pods-10-0-0-32-28", "10.0.0.32/28"), held).trust, Trust::kAccepted);
}

TEST(BlockTrust, ABlockOfTheWrongLengthIsRefused) {
  for (const char* cidr : {"10.0.0.0/27", "10.0.0.64/29", "10.0.0.128/26"}) {
    const TrustVerdict v = judge(candidate("x", cidr));
    EXPECT_EQ(v.trust, Trust::kInvalid) << cidr;
    EXPECT_EQ(toString(v.rule), "WrongPrefixLength") << cidr;
    EXPECT_NE(v.message.find("blockPrefixLength 28"), std::string::npos) << v.message;
  }
}

TEST(BlockTrust, AdmissionIsByCreationTimeThenName) {
  std::vector<TrustCandidate> blocks = {
      candidate("b", "10.0.0.0/28"), candidate("a", "10.0.0.0/28"), candidate("z", "10.0.0.0/28")};
  blocks[2].created = Time{seconds{50}};
  sortForAdmission(blocks);
  EXPECT_EQ(blocks[0].name, "z");
  EXPECT_EQ(blocks[1].name, "a");
  EXPECT_EQ(blocks[2].name, "b");
}

}  // namespace
}  // namespace vnetipam::controller
