#include "node-agent/dataplane_drift.h"

#include <gtest/gtest.h>

namespace vnetipam::agent {
namespace {

using namespace std::chrono_literals;

ipam::IPAddress ip(std::string_view text) { return *ipam::IPAddress::parse(text); }
ipam::Prefix prefix(std::string_view text) { return *ipam::Prefix::parse(text); }

HeldAddress held(std::string_view address, std::string cid, std::string block = "b1") {
  return {.block = std::move(block),
          .address = ip(address),
          .owner = {.containerID = std::move(cid), .ifName = "eth0"},
          .podNamespace = "default",
          .podName = "p"};
}

ObservedRoute route(std::string_view dst, int oif) { return {.dst = prefix(dst), .oif = oif}; }

const std::vector<DriftBlock> kBlocks = {{.name = "b1", .cidr = prefix("10.0.0.0/28")},
                                         {.name = "b2", .cidr = prefix("10.0.0.16/28")}};

// lo, eth0 (the NIC), two up host veths and one down.
ObservedDataplane host() {
  return {.links = {{.name = "lo", .ifindex = 1, .up = true},
                    {.name = "eth0", .ifindex = 2, .up = true},
                    {.name = "vnetaaaaaaaaaaa", .ifindex = 10, .up = true},
                    {.name = "vnetbbbbbbbbbbb", .ifindex = 11, .up = true},
                    {.name = "vnetccccccccccc", .ifindex = 12, .up = false}},
          .routes = {route("0.0.0.0/0", 2), route("10.240.0.0/16", 2)}};
}

TEST(FindDriftTest, AllocationsWithTheirRoutesAreInSync) {
  ObservedDataplane observed = host();
  observed.routes.push_back(route("10.0.0.1/32", 10));
  observed.routes.push_back(route("10.0.0.17/32", 11));
  EXPECT_EQ(
      findDrift(kBlocks, {held("10.0.0.1", "a"), held("10.0.0.17", "b", "b2")}, observed, "vnet"),
      std::vector<DriftFinding>{});
}

TEST(FindDriftTest, EachWayARouteCanBeWrongIsNamed) {
  ObservedDataplane observed = host();
  observed.routes.push_back(route("10.0.0.2/32", 12));  // down veth
  observed.routes.push_back(route("10.0.0.3/32", 2));   // the NIC, not a veth
  observed.routes.push_back(route("10.0.0.4/32", 99));  // a device that is gone
  observed.routes.push_back(route("10.0.0.5/32", 0));   // no device
  observed.routes.push_back(route("10.0.0.6/31", 10));  // not a host route
  const auto found =
      findDrift(kBlocks,
                {held("10.0.0.1", "none"), held("10.0.0.2", "down"), held("10.0.0.3", "nic"),
                 held("10.0.0.4", "gone"), held("10.0.0.5", "nodev"), held("10.0.0.6", "net")},
                observed, "vnet");
  ASSERT_EQ(found.size(), 6u);
  for (const auto& f : found) {
    EXPECT_EQ(f.kind, DriftKind::kMissingRoute);
    EXPECT_EQ(f.block, "b1");
    EXPECT_EQ(f.pod, "default/p");
  }
  EXPECT_EQ(found[0].address, ip("10.0.0.1"));
  EXPECT_EQ(found[0].what, "no host route");
  EXPECT_EQ(found[1].what, "host veth vnetccccccccccc is down");
  EXPECT_EQ(found[2].what, "the host route goes out of eth0, not a host veth (vnet*)");
  EXPECT_EQ(found[3].what, "the host route's device (ifindex 99) does not exist");
  EXPECT_EQ(found[4].what, "the host route has no output device");
  EXPECT_EQ(found[5].what, "no host route") << "a /31 is not the pod's host route";
}

TEST(FindDriftTest, TheVethIsRecognisedByItsPrefixNotByItsName) {
  // Any name after the prefix will do: the plugin's naming scheme is its own.
  ObservedDataplane observed = host();
  observed.links.push_back({.name = "cali-anything", .ifindex = 20, .up = true});
  observed.routes.push_back(route("10.0.0.1/32", 20));
  EXPECT_TRUE(findDrift(kBlocks, {held("10.0.0.1", "a")}, observed, "cali").empty());
  const auto found = findDrift(kBlocks, {held("10.0.0.1", "a")}, observed, "vnet");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].what, "the host route goes out of cali-anything, not a host veth (vnet*)");
}

TEST(FindDriftTest, OneGoodRouteAmongSeveralIsEnough) {
  ObservedDataplane observed = host();
  observed.routes.push_back(route("10.0.0.1/32", 12));  // a down veth (say in another table)
  observed.routes.push_back(route("10.0.0.1/32", 10));
  EXPECT_TRUE(findDrift(kBlocks, {held("10.0.0.1", "a")}, observed, "vnet").empty());
}

TEST(FindDriftTest, RoutesToUnheldAddressesOfTheBlocksAreStale) {
  ObservedDataplane observed = host();
  observed.routes.push_back(route("10.0.0.1/32", 10));   // held
  observed.routes.push_back(route("10.0.0.9/32", 11));   // in b1, nobody holds it
  observed.routes.push_back(route("10.0.0.20/32", 99));  // in b2, its device gone too
  observed.routes.push_back(route("10.9.9.9/32", 11));   // not this node's blocks: not ours
  observed.routes.push_back(route("10.0.0.0/28", 2));    // the block itself: not a host route
  const auto found = findDrift(kBlocks, {held("10.0.0.1", "a")}, observed, "vnet");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], (DriftFinding{.kind = DriftKind::kStaleRoute,
                                    .block = "b1",
                                    .address = ip("10.0.0.9"),
                                    .what = "stale host route via vnetbbbbbbbbbbb (no allocation "
                                            "holds it)"}));
  EXPECT_EQ(found[1].block, "b2");
  EXPECT_EQ(found[1].what, "stale host route via ifindex 99 (no allocation holds it)");
}

// IPv6 allocations promise a /128 host route, judged like IPv4's /32 (a dual-stack pod holds one
// of each); the kernel's own IPv6 routes (fe80::/64 on every veth) are not host routes.
TEST(FindDriftTest, IPv6AllocationsAndTheirHostRoutes) {
  const std::vector<DriftBlock> blocks = {{.name = "b4", .cidr = prefix("10.0.0.0/28")},
                                          {.name = "b6", .cidr = prefix("fd00::/120")}};
  ObservedDataplane observed = host();
  observed.routes.push_back(route("10.0.0.1/32", 10));
  observed.routes.push_back(route("fd00::1/128", 10));    // the dual-stack pod's
  observed.routes.push_back(route("fd00::2/128", 12));    // a down veth
  observed.routes.push_back(route("fd00::9/128", 11));    // nobody holds it
  observed.routes.push_back(route("fe80::/64", 10));      // the kernel's
  observed.routes.push_back(route("fd00::/120", 2));      // the block itself
  observed.routes.push_back(route("fd00:1::5/128", 11));  // not this node's blocks
  const auto found = findDrift(blocks,
                               {held("10.0.0.1", "a", "b4"), held("fd00::1", "a", "b6"),
                                held("fd00::2", "b", "b6"), held("fd00::3", "c", "b6")},
                               observed, "vnet");
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].address, ip("fd00::2"));
  EXPECT_EQ(found[0].what, "host veth vnetccccccccccc is down");
  EXPECT_EQ(found[1].address, ip("fd00::3"));
  EXPECT_EQ(found[1].kind, DriftKind::kMissingRoute);
  EXPECT_EQ(found[1].what, "no host route");
  EXPECT_EQ(found[2], (DriftFinding{.kind = DriftKind::kStaleRoute,
                                    .block = "b6",
                                    .address = ip("fd00::9"),
                                    .what = "stale host route via vnetbbbbbbbbbbb (no allocation "
                                            "holds it)"}));
}

TEST(DriftTrackerTest, ANewAllocationIsConfirmedOnlyAtTheSecondCheck) {
  DriftTracker tracker(30s);
  const DriftTracker::TimePoint t0{};
  const std::vector<HeldAddress> h = {held("10.0.0.1", "a")};
  const auto found = findDrift(kBlocks, h, host(), "vnet");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_TRUE(tracker.confirm(h, found, t0).empty()) << "the plugin may still be wiring it";
  EXPECT_EQ(tracker.confirm(h, found, t0 + 1s), found) << "still missing a check later";
}

TEST(DriftTrackerTest, AFindingThatClearsBetweenChecksStartsOver) {
  DriftTracker tracker(30s);
  const DriftTracker::TimePoint t0{};
  const std::vector<HeldAddress> h = {held("10.0.0.1", "a")};
  const auto found = findDrift(kBlocks, h, host(), "vnet");
  EXPECT_TRUE(tracker.confirm(h, found, t0).empty());
  EXPECT_TRUE(tracker.confirm(h, {}, t0 + 1s).empty());
  EXPECT_TRUE(tracker.confirm(h, found, t0 + 2s).empty()) << "not two checks in a row";
}

TEST(DriftTrackerTest, AnAllocationOlderThanTheGraceIsConfirmedAtOnce) {
  DriftTracker tracker(10s);
  const DriftTracker::TimePoint t0{};
  const std::vector<HeldAddress> h = {held("10.0.0.1", "a")};
  EXPECT_TRUE(tracker.confirm(h, {}, t0).empty());  // in sync when first seen
  const auto found = findDrift(kBlocks, h, host(), "vnet");
  EXPECT_TRUE(tracker.confirm(h, found, t0 + 9s).empty());
  DriftTracker other(10s);
  other.confirm(h, {}, t0);
  EXPECT_EQ(other.confirm(h, found, t0 + 10s), found) << "known for the whole grace period";
}

TEST(DriftTrackerTest, AReallocatedAddressIsANewAllocation) {
  DriftTracker tracker(10s);
  const DriftTracker::TimePoint t0{};
  tracker.confirm({held("10.0.0.1", "old")}, {}, t0);
  // Released and handed to another container 20 s later: its age starts again.
  const std::vector<HeldAddress> h = {held("10.0.0.1", "new")};
  EXPECT_TRUE(tracker.confirm(h, findDrift(kBlocks, h, host(), "vnet"), t0 + 20s).empty());
}

TEST(DriftTrackerTest, AStaleRouteNeedsTwoChecks) {
  DriftTracker tracker(0s);
  const DriftTracker::TimePoint t0{};
  ObservedDataplane observed = host();
  observed.routes.push_back(route("10.0.0.9/32", 11));
  const auto found = findDrift(kBlocks, {}, observed, "vnet");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_TRUE(tracker.confirm({}, found, t0).empty()) << "a DEL may be between its two steps";
  EXPECT_EQ(tracker.confirm({}, found, t0 + 1s), found);
}

TEST(DataplaneConditionTest, InSyncOrDriftNamingAFewAddresses) {
  std::vector<DriftFinding> confirmed;
  for (int i = 1; i <= 5; ++i) {
    confirmed.push_back({.kind = DriftKind::kMissingRoute,
                         .block = "b1",
                         .address = ipam::IPAddress::v4(0x0a000000u + static_cast<unsigned>(i)),
                         .pod = "default/p" + std::to_string(i),
                         .what = "no host route"});
  }
  confirmed.push_back({.kind = DriftKind::kStaleRoute,
                       .block = "b1",
                       .address = ip("10.0.0.9"),
                       .what = "stale host route via vnetb (no allocation holds it)"});
  const auto conditions = dataplaneConditions(kBlocks, confirmed);
  ASSERT_EQ(conditions.size(), 2u);
  EXPECT_EQ(conditions.at("b2").status, "True");
  EXPECT_EQ(conditions.at("b2").reason, "InSync");
  const DataplaneCondition& b1 = conditions.at("b1");
  EXPECT_EQ(b1.status, "False");
  EXPECT_EQ(b1.reason, "Drift");
  EXPECT_EQ(b1.message,
            "5 held addresses without a working host route, 1 stale host route: "
            "10.0.0.1 (pod default/p1): no host route; 10.0.0.2 (pod default/p2): no host "
            "route; 10.0.0.3 (pod default/p3): no host route, and 3 more");
}

}  // namespace
}  // namespace vnetipam::agent
