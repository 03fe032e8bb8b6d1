#include "controller/pool_status.h"

#include <vector>

#include <gtest/gtest.h>

namespace vnetipam::controller {
namespace {

using std::chrono::seconds;

const Time kT0{seconds{1'700'000'000}};  // 2023-11-14T22:13:20Z

ipam::BlockPool carved(std::string_view subnet, int len) {
  auto set = ipam::BlockPool::carve(ipam::Prefix::parse(subnet).value(), len);
  EXPECT_TRUE(set.has_value());
  set->finishOccupying();
  return std::move(*set);
}

const api::Condition& cond(const api::PodSubnetStatus& s, std::string_view type) {
  for (const api::Condition& c : s.conditions) {
    if (c.type == type) return c;
  }
  ADD_FAILURE() << "no condition " << type;
  static const api::Condition kNone;
  return kNone;
}

TEST(PoolStatus, CountsFromTheSetAndTheBlocks) {
  ipam::BlockPool set = carved("10.240.0.0/24", 28);  // 16 blocks, 14 usable
  ASSERT_TRUE(set.allocateNext());
  ASSERT_TRUE(set.allocateNext());
  const std::vector<std::int64_t> used = {3, 11};
  api::PodSubnetStatus s =
      computePoolStatus({}, {.blocks = &set, .blockUsed = used, .generation = 4, .now = kT0});
  EXPECT_EQ(s.cidr, "10.240.0.0/24");
  EXPECT_EQ(s.totalBlocks, 14);
  EXPECT_EQ(s.allocatedBlocks, 2);
  EXPECT_EQ(s.allocatedIPs, 14);
  const api::Condition& ready = cond(s, api::kConditionReady);
  EXPECT_EQ(ready.status, "True");
  EXPECT_EQ(ready.reason, kReasonCarved);
  EXPECT_EQ(ready.observedGeneration, 4);
  EXPECT_EQ(ready.lastTransitionTime, "2023-11-14T22:13:20Z");
  EXPECT_NE(ready.message.find("14 usable /28"), std::string::npos) << ready.message;
  const api::Condition& exhausted = cond(s, api::kConditionExhausted);
  EXPECT_EQ(exhausted.status, "False");
  EXPECT_EQ(exhausted.reason, kReasonBlocksAvailable);
  EXPECT_EQ(exhausted.message, "12 of 14 blocks free");
}

TEST(PoolStatus, AnIPv6PoolCountsItsBlocksAndIsExhaustedOnItsOwn) {
  ipam::BlockPool big = carved("fd00:10::/48", 64);  // 65,536 /64 blocks, 2 reserved
  ASSERT_TRUE(big.allocateNext());
  const std::vector<std::int64_t> used = {5};
  api::PodSubnetStatus s = computePoolStatus({}, {.blocks = &big, .blockUsed = used, .now = kT0});
  EXPECT_EQ(s.cidr, "fd00:10::/48");
  EXPECT_EQ(s.totalBlocks, 65534);
  EXPECT_EQ(s.allocatedBlocks, 1);
  EXPECT_EQ(s.allocatedIPs, 5);
  EXPECT_NE(cond(s, api::kConditionReady).message.find("65534 usable /64"), std::string::npos)
      << cond(s, api::kConditionReady).message;

  // As the controller carves a spec.cidr: no Azure-reserved addresses, so two /128 blocks.
  auto small = ipam::BlockPool::carve(*ipam::Prefix::parse("fd00:20::/127"), 128,
                                      {.excludeAzureReserved = false, .reserved = {}});
  ASSERT_TRUE(small);
  small->finishOccupying();
  ASSERT_TRUE(small->allocateNext());
  ASSERT_TRUE(small->allocateNext());
  const std::vector<std::string> shortNodes = {"a"};
  s = computePoolStatus({}, {.blocks = &*small, .shortNodes = shortNodes, .now = kT0});
  const api::Condition& exhausted = cond(s, api::kConditionExhausted);
  EXPECT_EQ(exhausted.status, "True");
  EXPECT_NE(exhausted.message.find("no free /128 block left in fd00:20::/127"), std::string::npos)
      << exhausted.message;
}

// The pool's total IPs, for the gauge: an IPv6 pool of /64 blocks (2^16 blocks of 2^62, as
// prefixSize saturates) would overflow int64 multiplied out.
TEST(PoolStatus, PoolAddressesSaturateInsteadOfOverflowing) {
  EXPECT_EQ(poolAddresses(14, 16), 224);
  EXPECT_EQ(poolAddresses(0, 16), 0);
  EXPECT_EQ(poolAddresses(65536, std::int64_t{1} << 62), std::int64_t{1} << 62);
  EXPECT_EQ(poolAddresses(std::int64_t{1} << 26, std::int64_t{1} << 48), std::int64_t{1} << 62);
  EXPECT_EQ(poolAddresses(1 << 14, std::int64_t{1} << 48), std::int64_t{1} << 62);
  EXPECT_EQ(poolAddresses(1 << 13, std::int64_t{1} << 48), std::int64_t{1} << 61);
}

// With a cloud an IPv6 subnet is refused, naming where its CIDR came from; IPv4 is carved.
TEST(PoolStatus, WithACloudOnlyAnIPv4SubnetIsCarved) {
  EXPECT_FALSE(cloudCarveRefusal(*ipam::Prefix::parse("10.0.0.0/16"), true));
  const auto fromSpec = cloudCarveRefusal(*ipam::Prefix::parse("fd00:2::/64"), false);
  ASSERT_TRUE(fromSpec);
  EXPECT_EQ(*fromSpec,
            "spec.cidr fd00:2::/64 is IPv6: Azure takes only IPv4 (/28) prefixes on a NIC "
            "ipConfiguration, so --cloud=azure cannot program IPv6 blocks; use an IPv4 subnet, or "
            "--cloud=none where the network routes the blocks");
  const auto fromAzure = cloudCarveRefusal(*ipam::Prefix::parse("fd00:1::/64"), true);
  ASSERT_TRUE(fromAzure);
  EXPECT_TRUE(fromAzure->starts_with("the Azure subnet fd00:1::/64 is IPv6")) << *fromAzure;
}

// A dual-stack Azure subnet carves its IPv4 prefixes; the Ready condition names the IPv6 one it
// leaves alone and why, and an IPv4 one smaller than a block too.
TEST(PoolStatus, TheAzureSubnetsUncarvedPrefixesAreNamedInTheReadyCondition) {
  ipam::BlockPool set = carved("10.240.0.0/24", 28);
  const ipam::Prefix v6 = *ipam::Prefix::parse("fd00:1::/64");
  const std::vector<UncarvedPrefix> uncarved = {
      {.prefix = v6, .why = *uncarvableReason(v6, ipam::Family::kV4, 28)}};
  api::PodSubnetStatus s =
      computePoolStatus({}, {.blocks = &set, .uncarvedPrefixes = uncarved, .now = kT0});
  const api::Condition& ready = cond(s, api::kConditionReady);
  EXPECT_EQ(ready.status, "True");
  EXPECT_EQ(ready.reason, kReasonCarved);
  EXPECT_EQ(ready.message,
            "10.240.0.0/24 carved into 14 usable /28 blocks (2 excluded); the Azure subnet's "
            "IPv6 prefix fd00:1::/64 is not carved: Azure takes only IPv4 (/28) prefixes on a NIC "
            "ipConfiguration, so --cloud=azure cannot program IPv6 blocks (a dual-stack pod "
            "network needs --cloud=none and an IPv6 PodSubnet with spec.cidr)");
  EXPECT_EQ(s.cidr, "10.240.0.0/24") << "the carved prefix only";
  EXPECT_EQ(s.cidrs, std::vector<std::string>{"10.240.0.0/24"});

  const ipam::Prefix small = *ipam::Prefix::parse("10.241.0.0/29");
  EXPECT_EQ(uncarvableReason(small, ipam::Family::kV4, 28),
            "it is smaller than one /28 block (spec.blockPrefixLength)");
  EXPECT_EQ(uncarvableReason(*ipam::Prefix::parse("10.241.0.0/28"), ipam::Family::kV4, 28),
            std::nullopt);

  // A single-prefix subnet (and spec.cidr) says nothing more than before.
  EXPECT_EQ(uncarvedPrefixesNote({}), "");
  EXPECT_EQ(cond(computePoolStatus({}, {.blocks = &set, .now = kT0}), api::kConditionReady).message,
            "10.240.0.0/24 carved into 14 usable /28 blocks (2 excluded)");
}

// A pool of several ranges (an Azure subnet's prefixes): counted as one, each range named.
TEST(PoolStatus, APoolOfSeveralRangesListsEachInStatusCidrs) {
  ipam::BlockPool set = carved("10.240.0.0/26", 28);                 // 2 usable
  ASSERT_TRUE(set.addRange(*ipam::Prefix::parse("10.250.0.0/25")));  // 6 usable
  ASSERT_TRUE(set.allocateNext());
  const api::PodSubnetStatus s = computePoolStatus({}, {.blocks = &set, .now = kT0});
  EXPECT_EQ(s.cidr, "10.240.0.0/26");
  EXPECT_EQ(s.cidrs, (std::vector<std::string>{"10.240.0.0/26", "10.250.0.0/25"}));
  EXPECT_EQ(s.totalBlocks, 8);
  EXPECT_EQ(s.allocatedBlocks, 1);
  EXPECT_EQ(cond(s, api::kConditionReady).message,
            "10.240.0.0/26, 10.250.0.0/25 carved into 8 usable /28 blocks (4 excluded)");
}

TEST(PoolStatus, NotCarvedIsNotReadyWithTheReason) {
  api::PodSubnetStatus previous;
  previous.cidr = "10.240.0.0/24";
  api::PodSubnetStatus s = computePoolStatus(
      previous, {.notCarvedMessage = "spec.blockPrefixLength 20 is shorter than the subnet's /24",
                 .now = kT0});
  EXPECT_EQ(s.cidr, "10.240.0.0/24") << "kept from before";
  EXPECT_EQ(s.totalBlocks, 0);
  const api::Condition& ready = cond(s, api::kConditionReady);
  EXPECT_EQ(ready.status, "False");
  EXPECT_EQ(ready.reason, kReasonNotCarved);
  EXPECT_EQ(ready.message, "spec.blockPrefixLength 20 is shorter than the subnet's /24");
  EXPECT_EQ(cond(s, api::kConditionExhausted).status, "False");
  EXPECT_EQ(cond(computePoolStatus({}, {.now = kT0}), api::kConditionReady).message,
            "the subnet is not carved yet");
}

TEST(PoolStatus, ExhaustedOnlyWhenFullAndSomeNodeIsShort) {
  ipam::BlockPool set = carved("10.240.0.0/26", 28);  // 4 blocks, 2 usable
  ASSERT_TRUE(set.allocateNext());
  ASSERT_TRUE(set.allocateNext());
  api::PodSubnetStatus full = computePoolStatus({}, {.blocks = &set, .now = kT0});
  EXPECT_EQ(cond(full, api::kConditionExhausted).status, "False");
  EXPECT_EQ(cond(full, api::kConditionExhausted).reason, kReasonFullButNoNodeShort);

  std::vector<std::string> short_nodes = {"n1", "n2", "n3", "n4", "n5", "n6", "n7"};
  api::PodSubnetStatus s =
      computePoolStatus({}, {.blocks = &set, .shortNodes = short_nodes, .now = kT0});
  const api::Condition& exhausted = cond(s, api::kConditionExhausted);
  EXPECT_EQ(exhausted.status, "True");
  EXPECT_EQ(exhausted.reason, kReasonNoFreeBlocks);
  EXPECT_NE(exhausted.message.find("7 node(s)"), std::string::npos) << exhausted.message;
  EXPECT_NE(exhausted.message.find("n1, n2, n3, n4, n5 and 2 more"), std::string::npos)
      << exhausted.message;

  ipam::BlockPool roomy = carved("10.240.0.0/24", 28);
  EXPECT_EQ(cond(computePoolStatus({}, {.blocks = &roomy, .shortNodes = short_nodes, .now = kT0}),
                 api::kConditionExhausted)
                .status,
            "False")
      << "short nodes with free blocks left are not an exhausted pool";
}

TEST(PoolStatus, BlocksHeldForOthersAreNotFree) {
  ipam::BlockPool set = carved("10.240.0.0/26", 28);  // 4 blocks, 2 usable: .16 and .32
  const auto first = set.allocateNext();
  ASSERT_TRUE(first);
  const ipam::Prefix a = *ipam::Prefix::parse("10.240.0.16/28");
  const ipam::Prefix b = *ipam::Prefix::parse("10.240.0.32/28");
  const std::optional<ipam::Prefix> left = *first == a ? b : a;
  ASSERT_TRUE(set.holdForOthers(*left));
  const std::vector<std::string> shortNodes = {"n1"};
  const api::PodSubnetStatus s =
      computePoolStatus({}, {.blocks = &set, .shortNodes = shortNodes, .now = kT0});
  const api::Condition& exhausted = cond(s, api::kConditionExhausted);
  EXPECT_EQ(exhausted.status, "True") << "the only free block is held: nothing can be carved";
  EXPECT_EQ(exhausted.reason, kReasonNoFreeBlocks);
  EXPECT_NE(exhausted.message.find("1 of 2 allocated, 1 held while another Azure resource"),
            std::string::npos)
      << exhausted.message;
  // The hold ends: one block free again.
  ASSERT_TRUE(set.releaseHoldForOthers(*left));
  EXPECT_EQ(cond(computePoolStatus({}, {.blocks = &set, .shortNodes = shortNodes, .now = kT0}),
                 api::kConditionExhausted)
                .message,
            "1 of 2 blocks free");
}

TEST(PoolStatus, TransitionTimeChangesOnlyWithTheStatus) {
  ipam::BlockPool set = carved("10.240.0.0/26", 28);
  api::PodSubnetStatus first = computePoolStatus({}, {.blocks = &set, .now = kT0});
  first.extra["future"] = 1;
  const Time later = kT0 + seconds{600};
  api::PodSubnetStatus second = computePoolStatus(first, {.blocks = &set, .now = later});
  EXPECT_EQ(cond(second, api::kConditionReady).lastTransitionTime, "2023-11-14T22:13:20Z");
  EXPECT_EQ(second.extra, first.extra) << "unknown fields kept";

  ASSERT_TRUE(set.allocateNext());
  ASSERT_TRUE(set.allocateNext());
  std::vector<std::string> short_nodes = {"n1"};
  api::PodSubnetStatus third =
      computePoolStatus(second, {.blocks = &set, .shortNodes = short_nodes, .now = later});
  EXPECT_EQ(cond(third, api::kConditionExhausted).lastTransitionTime, "2023-11-14T22:23:20Z");
  EXPECT_EQ(cond(third, api::kConditionReady).lastTransitionTime, "2023-11-14T22:13:20Z");
}

// Blocks the pool held in a range reserved since: not in totalBlocks nor allocatedBlocks, named in
// the Ready message (the first five) as taking no new pods and being released.
TEST(PoolStatus, BlocksInANewlyReservedRangeAreNamedAsReleased) {
  ipam::BlockPool set = carved("10.240.0.0/24", 28);  // 14 usable
  for (int i = 0; i < 7; ++i)
    ASSERT_TRUE(set.allocateNext());
  const std::vector<ipam::Prefix> reserved = {ipam::Prefix::parse("10.240.0.0/25").value()};
  set.setReserved(reserved);  // blocks 1-7 reserved: 7 allocations, 0-7 excluded
  const std::vector<std::string> names = {"p-1", "p-2", "p-3", "p-4", "p-5", "p-6", "p-7"};
  api::PodSubnetStatus s =
      computePoolStatus({}, {.blocks = &set, .reservedBlocks = names, .now = kT0});
  EXPECT_EQ(s.totalBlocks, 7);
  EXPECT_EQ(s.allocatedBlocks, 0);
  EXPECT_EQ(cond(s, api::kConditionReady).message,
            "10.240.0.0/24 carved into 7 usable /28 blocks (9 excluded); 7 block(s) in "
            "spec.reservedCIDRs take no new pods and are released as their pods go: p-1, p-2, p-3, "
            "p-4, p-5 and 2 more");
  EXPECT_EQ(cond(s, api::kConditionExhausted).message, "7 of 7 blocks free");

  const std::vector<ipam::Prefix> outside = {ipam::Prefix::parse("10.9.0.0/16").value(),
                                             ipam::Prefix::parse("fd00::/64").value()};
  s = computePoolStatus({}, {.blocks = &set, .reservedOutside = outside, .now = kT0});
  EXPECT_EQ(cond(s, api::kConditionReady).message,
            "10.240.0.0/24 carved into 7 usable /28 blocks (9 excluded); spec.reservedCIDRs "
            "10.9.0.0/16, fd00::/64 lie outside 10.240.0.0/24: they reserve nothing");
}

}  // namespace
}  // namespace vnetipam::controller
