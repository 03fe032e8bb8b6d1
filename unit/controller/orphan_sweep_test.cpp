// The orphan sweep (orphan_sweep.h): the rules O1-O6 one by one, which NICs a sweep reads, and the
// sweeper against the fake cloud and a controller fed like the watch feeds it: a prefix on a NIC of
// no Node goes after the grace, with its Event and metric; a block's prefix, a foreign
// ipConfiguration and the Nodes' NICs are never touched.
#include "controller/orphan_sweep.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "controller/metrics.h"
#include "controller/orphan_sweeper.h"
#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

ipam::Prefix prefix(std::string_view text) { return ipam::Prefix::parse(text).value(); }

const std::string kRg = "/subscriptions/s/resourceGroups/rg/providers/";
const std::string kGoneNic = kRg + "Microsoft.Network/networkInterfaces/vm-gone-nic";
const std::string kGoneVm = kRg + "Microsoft.Compute/virtualMachines/vm-gone";
const std::string kNodeNic = kRg + "Microsoft.Network/networkInterfaces/vm-a-nic";
const std::string kNodeVm = kRg + "Microsoft.Compute/virtualMachines/vm-a";

const Time kT0{std::chrono::sys_days{std::chrono::year{2026} / 1 / 2}};

OrphanSweepView viewWith(std::vector<ipam::Prefix> owned = {}) {
  OrphanSweepView view;
  view.podSubnets = {
      {.name = "pods", .uid = "u1", .azureSubnetId = kSubnetId, .ranges = {prefix("10.0.0.0/24")}},
      {.name = "waiting", .uid = "u2", .azureSubnetId = std::nullopt, .ranges = {}}};
  view.owned = std::move(owned);
  return view;
}

// ---- the rules ----

TEST(PlanOrphanSweep, AnUnownedPrefixIsRemovedOnlyOnceTheGraceHasPassed) {
  const OrphanSweepView view = viewWith();
  const std::vector<SweptNic> nics = {
      {.id = kGoneNic, .vmId = kGoneVm, .ours = {prefix("10.0.0.64/28")}}};
  // O4: first seen.
  OrphanSweepPlan plan = planOrphanSweep(
      {.view = view, .nics = nics, .firstSeen = {}, .grace = seconds(120), .now = kT0});
  EXPECT_TRUE(plan.removals.empty());
  ASSERT_EQ(plan.found.size(), 1u);
  EXPECT_EQ(plan.found[0].prefixes[0].podSubnet, "pods");
  EXPECT_EQ(plan.recheckAt, kT0 + seconds(120));
  const OrphanKey key{armIdKey(kGoneNic), prefix("10.0.0.64/28")};
  EXPECT_EQ(plan.firstSeen, (std::map<OrphanKey, Time>{{key, kT0}}));

  // O5: within the grace, kept, the first sighting remembered.
  plan = planOrphanSweep({.view = view,
                          .nics = nics,
                          .firstSeen = plan.firstSeen,
                          .grace = seconds(120),
                          .now = kT0 + seconds(119)});
  EXPECT_TRUE(plan.removals.empty());
  EXPECT_TRUE(plan.found.empty());
  EXPECT_EQ(plan.firstSeen.at(key), kT0);
  EXPECT_EQ(plan.recheckAt, kT0 + seconds(120));

  // O6: the grace is over.
  plan = planOrphanSweep({.view = view,
                          .nics = nics,
                          .firstSeen = plan.firstSeen,
                          .grace = seconds(120),
                          .now = kT0 + seconds(120)});
  ASSERT_EQ(plan.removals.size(), 1u);
  EXPECT_EQ(plan.removals[0], (OrphanRemoval{.nicId = kGoneNic,
                                             .vmId = kGoneVm,
                                             .prefixes = {{.prefix = prefix("10.0.0.64/28"),
                                                           .podSubnet = "pods",
                                                           .podSubnetUid = "u1",
                                                           .firstSeen = kT0}}}));
  EXPECT_TRUE(plan.firstSeen.empty());
  EXPECT_EQ(plan.recheckAt, std::nullopt);
}

TEST(PlanOrphanSweep, AZeroGraceRemovesAtFirstSight) {
  const OrphanSweepView view = viewWith();
  const std::vector<SweptNic> nics = {
      {.id = kGoneNic, .vmId = "", .ours = {prefix("10.0.0.64/28")}}};
  const OrphanSweepPlan plan = planOrphanSweep(
      {.view = view, .nics = nics, .firstSeen = {}, .grace = seconds(0), .now = kT0});
  ASSERT_EQ(plan.removals.size(), 1u);
  EXPECT_EQ(plan.removals[0].prefixes[0].firstSeen, kT0);
}

TEST(PlanOrphanSweep, TheNicPassesNicsAndTheNodesVmsAreNeverSwept) {
  OrphanSweepView view = viewWith();
  view.nicPassNics.insert(armIdKey(kNodeNic));
  view.nodeVms.insert(armIdKey(kNodeVm));
  const std::string otherNic = kRg + "Microsoft.Network/networkInterfaces/vm-a-nic2";
  // O1: the NIC pass's NIC (ids ignore case), and another NIC of a Node's VM.
  const std::vector<SweptNic> nics = {{.id = kRg + "Microsoft.Network/networkInterfaces/VM-A-NIC",
                                       .vmId = kNodeVm,
                                       .ours = {prefix("10.0.0.64/28")}},
                                      {.id = otherNic,
                                       .vmId = kRg + "Microsoft.Compute/VIRTUALMACHINES/vm-a",
                                       .ours = {prefix("10.0.0.80/28")}}};
  const OrphanSweepPlan plan = planOrphanSweep(
      {.view = view, .nics = nics, .firstSeen = {}, .grace = seconds(0), .now = kT0});
  EXPECT_TRUE(plan.removals.empty());
  EXPECT_TRUE(plan.firstSeen.empty());
}

TEST(PlanOrphanSweep, APrefixOutsideEveryCarvedRangeIsNeverTouched) {
  const OrphanSweepView view = viewWith();
  // O2: outside 10.0.0.0/24, and wider than it.
  const std::vector<SweptNic> nics = {
      {.id = kGoneNic, .vmId = "", .ours = {prefix("10.1.0.0/28"), prefix("10.0.0.0/23")}}};
  const OrphanSweepPlan plan = planOrphanSweep(
      {.view = view, .nics = nics, .firstSeen = {}, .grace = seconds(0), .now = kT0});
  EXPECT_TRUE(plan.removals.empty());
  EXPECT_TRUE(plan.found.empty());
}

TEST(PlanOrphanSweep, AnOwnedPrefixIsForgottenAndAGraceStartsAfreshWhenItIsUnownedAgain) {
  const std::vector<SweptNic> nics = {
      {.id = kGoneNic, .vmId = "", .ours = {prefix("10.0.0.64/28")}}};
  const OrphanKey key{armIdKey(kGoneNic), prefix("10.0.0.64/28")};
  // O3: owned (by an overlapping CIDR too), even long after it was first seen.
  for (const ipam::Prefix& owner : {prefix("10.0.0.64/28"), prefix("10.0.0.64/27")}) {
    const OrphanSweepView view = viewWith({owner});
    const OrphanSweepPlan plan = planOrphanSweep({.view = view,
                                                  .nics = nics,
                                                  .firstSeen = {{key, kT0}},
                                                  .grace = seconds(120),
                                                  .now = kT0 + seconds(600)});
    EXPECT_TRUE(plan.removals.empty()) << owner.toString();
    EXPECT_TRUE(plan.firstSeen.empty()) << owner.toString();
  }
  // A prefix no sweep saw again is forgotten too: unowned later, its grace starts over.
  const OrphanSweepView view = viewWith();
  const OrphanSweepPlan plan = planOrphanSweep({.view = view,
                                                .nics = {},
                                                .firstSeen = {{key, kT0}},
                                                .grace = seconds(120),
                                                .now = kT0 + seconds(600)});
  EXPECT_TRUE(plan.firstSeen.empty());
}

TEST(NicsToSweep, EachNicWithAnIpConfigurationOfOursThatTheNicPassDoesNotWriteOnce) {
  OrphanSweepView view = viewWith();
  view.nicPassNics.insert(armIdKey(kNodeNic));
  const auto prefix = [](const char* text) { return *ipam::Prefix::parse(text); };
  const std::vector<OwnIpConfiguration> ours = {
      {.nicId = kNodeNic, .prefix = prefix("10.0.0.16/28")},  // the NIC pass's
      {.nicId = kGoneNic, .prefix = prefix("10.0.0.64/28")},
      // The same NIC spelt otherwise: once.
      {.nicId = kRg + "Microsoft.Network/NETWORKINTERFACES/VM-GONE-NIC",
       .prefix = prefix("10.0.0.80/28")},
      {.nicId = kGoneNic, .prefix = std::nullopt}};
  EXPECT_EQ(nicsToSweep(view, ours), std::vector<std::string>{kGoneNic});
}

// ---- the sweeper, with a controller ----

class OrphanSweeperTest : public ControllerFixture {
 protected:
  OrphanSweeperTest() : ControllerFixture(true) {}

  void SetUp() override {
    ControllerFixture::SetUp();
    ControllerConfig config;
    config.statusInterval = std::chrono::milliseconds(0);
    config.nicOrphanGrace = seconds(120);
    controller_ =
        std::make_unique<Controller>(client_, &cloud_, queue_, &events_, &metrics_, config, clock_);
    controller_->setWritable(true);
    // Node a's VM and NIC, and a VM that is no Node, both in the PodSubnet's Azure subnet.
    cloud_.addNode(kVm, kNodeNic);
    cloud_.placeNic(kNodeNic, kSubnetId, kNodeVm);
    cloud_.placeNic(kGoneNic, kSubnetId, kGoneVm);
    cloud_.setSubnet(kSubnetId, {prefix("10.0.0.0/24")});
    addNode(nodeJson("a", kVm));
    addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
    runUntilQuiet();
    const auto mine = blocksOf("a");
    ASSERT_EQ(mine.size(), 1u);
    blockCidr_ = prefix(mine[0]["spec"]["cidr"].get<std::string>());
    ASSERT_EQ(cloud_.nic(kNodeNic), std::vector<ipam::Prefix>{blockCidr_}) << mine[0].dump();
    EXPECT_EQ(cloud_.subnetReads, 1) << "the carve reads which of our prefixes are on NICs";
    cloud_.subnetReads = 0;
  }

  OrphanSweeper sweeper(bool* writable = nullptr) {
    return OrphanSweeper(
        cloud_,
        {.view =
             [this](std::span<const ipam::Prefix> p) { return controller_->orphanSweepView(p); },
         .canWrite =
             [this, writable] {
               return (writable == nullptr || *writable) && controller_->canWrite();
             }},
        &events_, &metrics_, {.period = seconds(300), .grace = seconds(120)}, clock_);
  }

  std::string scrape() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  ControllerMetrics metrics_{registry_};
  ipam::Prefix blockCidr_;
};

TEST_F(OrphanSweeperTest, APrefixOnANicOfNoNodeGoesAfterTheGraceAndNothingElseIsTouched) {
  // The NIC of no Node: an orphan of ours, the live block's prefix (an IPBlock owns it), a
  // foreign ipConfiguration inside the range, and a prefix of ours outside every PodSubnet.
  const ipam::Prefix orphan = prefix("10.0.0.192/28");
  const ipam::Prefix foreign = prefix("10.0.0.208/28");
  const ipam::Prefix outside = prefix("10.9.0.0/28");
  cloud_.setNic(kGoneNic, {orphan, blockCidr_, foreign, outside});
  cloud_.setForeign(kGoneNic, {foreign});
  const auto nodeNicBefore = cloud_.nic(kNodeNic);
  const std::size_t eventsBefore = events_.events.size();
  OrphanSweeper sweep = sweeper();

  auto result = sweep.sweepOnce();
  EXPECT_TRUE(result.errors.empty()) << result.errors[0];
  EXPECT_TRUE(result.removed.empty());
  EXPECT_EQ(result.recheckAt, std::chrono::floor<seconds>(clock_.wallNow()) + seconds(120));
  EXPECT_EQ(cloud_.subnetReads, 1);

  clock_.advance(seconds(119));
  result = sweep.sweepOnce();
  EXPECT_TRUE(result.removed.empty());
  EXPECT_TRUE(cloud_.removes.empty());

  clock_.advance(seconds(1));
  result = sweep.sweepOnce();
  EXPECT_TRUE(result.errors.empty());
  ASSERT_EQ(result.removed.size(), 1u);
  EXPECT_EQ(result.removed[0].nicId, kGoneNic);
  ASSERT_EQ(result.removed[0].prefixes.size(), 1u);
  EXPECT_EQ(result.removed[0].prefixes[0].prefix, orphan);
  // Exactly the orphan was asked off, of that NIC only.
  ASSERT_EQ(cloud_.removes.size(), 1u);
  EXPECT_EQ(cloud_.removes[0].first, kGoneNic);
  EXPECT_EQ(cloud_.removes[0].second, std::vector<ipam::Prefix>{orphan});
  auto left = cloud_.nic(kGoneNic);
  auto expected = std::vector<ipam::Prefix>{blockCidr_, foreign, outside};
  std::ranges::sort(expected);
  EXPECT_EQ(left, expected);
  EXPECT_EQ(cloud_.nic(kNodeNic), nodeNicBefore);

  // One Warning Event on the PodSubnet, and the counter.
  ASSERT_EQ(events_.events.size(), eventsBefore + 1);
  const RecordedEvent& event = events_.events.back();
  EXPECT_EQ(event.kind, "PodSubnet");
  EXPECT_EQ(event.name, "pods");
  EXPECT_EQ(event.reason, kEventOrphanPrefixRemoved);
  EXPECT_NE(event.note.find("10.0.0.192/28"), std::string::npos) << event.note;
  EXPECT_NE(event.note.find(kGoneNic), std::string::npos) << event.note;
  EXPECT_NE(scrape().find("vnetipam_orphan_prefixes_removed_total{podsubnet=\"pods\"} 1"),
            std::string::npos)
      << scrape();

  // Nothing more to do.
  clock_.advance(seconds(600));
  result = sweep.sweepOnce();
  EXPECT_TRUE(result.removed.empty());
  EXPECT_EQ(cloud_.removes.size(), 1u);
}

TEST_F(OrphanSweeperTest, TheNodesNicIsLeftToTheNicPass) {
  // An unowned prefix on node a's NIC: the sweep never writes it (the NIC pass does, N9-N11).
  auto onNode = cloud_.nic(kNodeNic);
  onNode.push_back(prefix("10.0.0.192/28"));
  cloud_.setNic(kNodeNic, onNode);
  OrphanSweeper sweep = sweeper();
  (void)sweep.sweepOnce();
  clock_.advance(seconds(600));
  const auto result = sweep.sweepOnce();
  EXPECT_TRUE(result.removed.empty());
  EXPECT_TRUE(cloud_.removes.empty());
}

TEST_F(OrphanSweeperTest, APrefixAnIpBlockOwnsIsNeverRemovedWhateverItsNode) {
  // A block of a node that is gone names this CIDR: the NIC pass finds that node's NIC through the
  // block, so the sweep never removes it, here or on any NIC.
  const ipam::Prefix cidr = prefix("10.0.0.192/28");
  api_.put(blockPathOf("b-gone"), blockJson("pods", cidr.toString(), "gone-node", "b-gone"));
  syncBlocks();
  const OrphanSweepView view = controller_->orphanSweepView(std::vector<ipam::Prefix>{cidr});
  EXPECT_EQ(view.owned, std::vector<ipam::Prefix>{cidr});
  cloud_.setNic(kGoneNic, {cidr});
  OrphanSweeper sweep = sweeper();
  (void)sweep.sweepOnce();
  clock_.advance(seconds(600));
  EXPECT_TRUE(sweep.sweepOnce().removed.empty());
  EXPECT_TRUE(cloud_.removes.empty());
  EXPECT_EQ(cloud_.nic(kGoneNic), std::vector<ipam::Prefix>{cidr});
}

TEST_F(OrphanSweeperTest, TheViewOwnsWhatTheBlocksHoldAndKnowsTheNodesNicsAndVms) {
  const OrphanSweepView view = controller_->orphanSweepView(
      std::vector<ipam::Prefix>{blockCidr_, prefix("10.0.0.192/28"), prefix("10.0.0.0/25")});
  // The block's CIDR, and a wider prefix holding it; not a free one.
  EXPECT_EQ(view.owned, (std::vector<ipam::Prefix>{blockCidr_, prefix("10.0.0.0/25")}));
  EXPECT_TRUE(view.nicPassNics.contains(armIdKey(kNodeNic)));
  EXPECT_TRUE(view.nodeVms.contains(armIdKey(kNodeVm)));
  ASSERT_EQ(view.podSubnets.size(), 1u);
  EXPECT_EQ(view.podSubnets[0].ranges, std::vector{prefix("10.0.0.0/24")});
  EXPECT_EQ(view.podSubnets[0].azureSubnetId, std::string(kSubnetId));
}

TEST_F(OrphanSweeperTest, OnlyTheLeaderSweepsAndAFailedRemovalIsRetriedWithoutANewGrace) {
  const ipam::Prefix orphan = prefix("10.0.0.192/28");
  cloud_.setNic(kGoneNic, {orphan});
  bool writable = false;
  OrphanSweeper sweep = sweeper(&writable);
  EXPECT_TRUE(sweep.sweepOnce().removed.empty());
  EXPECT_EQ(cloud_.subnetReads, 0);  // not even a read while not leading

  writable = true;
  (void)sweep.sweepOnce();
  clock_.advance(seconds(120));
  cloud_.failNextRemove();
  auto result = sweep.sweepOnce();
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("connection reset"), std::string::npos) << result.errors[0];
  EXPECT_EQ(cloud_.nic(kGoneNic), std::vector<ipam::Prefix>{orphan});

  clock_.advance(seconds(1));
  result = sweep.sweepOnce();
  ASSERT_EQ(result.removed.size(), 1u);
  EXPECT_TRUE(cloud_.nic(kGoneNic).empty());
  EXPECT_EQ(cloud_.removes.size(), 2u);
}

}  // namespace
}  // namespace vnetipam::controller::testing

namespace vnetipam::controller::testing {
namespace {

// A controller that PUT a join's prefix on its node's NIC and died before creating the IPBlock:
// the next one must not carve that CIDR for another node (Azure would refuse it on a second NIC),
// and the node's NIC pass makes the IPBlock the join was for.
class JoinCutShortTest : public ControllerFixture {
 protected:
  JoinCutShortTest() : ControllerFixture(true) {}
  void SetUp() override {
    ControllerFixture::SetUp();
    cloud_.setSubnet(kSubnetId, {prefix("10.0.0.0/24")});
    cloud_.addNode(kVm, kNodeNic);
    cloud_.placeNic(kNodeNic, kSubnetId, kNodeVm);
    cloud_.addNode(kVmB, kNicB);
    cloud_.placeNic(kNicB, kSubnetId, kVmBId);
  }
  static constexpr const char* kVmB =
      "azure:///subscriptions/s/resourceGroups/rg/providers/"
      "Microsoft.Compute/virtualMachines/vm-b";
  const std::string kVmBId = kRg + "Microsoft.Compute/virtualMachines/vm-b";
  const std::string kNicB = kRg + "Microsoft.Network/networkInterfaces/vm-b-nic";
};

TEST_F(JoinCutShortTest, ItsPrefixIsNotCarvedForAnotherNodeAndBecomesItsNodesBlock) {
  // Dead controllers' joins put every usable block of the pool but 10.0.0.128/28 on node a's NIC
  // (10.0.0.0/28 and 10.0.0.240/28 hold addresses Azure reserves).
  std::vector<ipam::Prefix> onA;
  for (int i = 1; i < 15; ++i) {
    if (i != 8) onA.push_back(prefix(fmt::format("10.0.0.{}/28", 16 * i)));
  }
  cloud_.setNic(kNodeNic, onA);

  // A new controller sees node b first: the one block no NIC carries is the only one it may get.
  addNode(nodeJson("b", kVmB));
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("b").size(), 1u);
  EXPECT_EQ(blocksOf("b")[0]["spec"]["cidr"], "10.0.0.128/28")
      << "the carve read the subnet's ipConfigurations: node a's NIC carries the others";
  EXPECT_EQ(cloud_.nic(kNicB), std::vector{prefix("10.0.0.128/28")});

  // Node a's NIC pass makes the IPBlocks the joins were for, Ready on its NIC.
  addNode(nodeJson("a", kVm));
  runUntilQuiet();
  std::vector<ipam::Prefix> mine;
  for (const json& b : blocksOf("a")) {
    mine.push_back(prefix(b["spec"]["cidr"].get<std::string>()));
    EXPECT_EQ(b["metadata"]["annotations"]["vnetipam.io/programmed-on"], kNodeNic);
  }
  std::ranges::sort(mine);
  EXPECT_EQ(mine, onA);
  EXPECT_EQ(cloud_.nic(kNodeNic), onA);
  EXPECT_FALSE(events_.has("UnownedPrefixFound")) << "they are the node's, not orphans";
  EXPECT_EQ(controller_->poolFree("pods"), 0u);
}

TEST_F(JoinCutShortTest, OneInARangeReservedSinceIsNoBlockAndLeavesTheNic) {
  cloud_.setNic(kNodeNic, {prefix("10.0.0.64/28")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson(
      "pods", {{"azureSubnetID", kSubnetId}, {"reservedCIDRs", json::array({"10.0.0.64/28"})}}));
  runUntilQuiet();
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_NE(mine[0]["spec"]["cidr"], "10.0.0.64/28") << "a reserved range is never a block";
  clock_.advance(std::chrono::seconds(121));
  ASSERT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.nic(kNodeNic), std::vector{prefix(mine[0]["spec"]["cidr"].get<std::string>())})
      << "the prefix no block may own left the NIC after the grace";
}

}  // namespace
}  // namespace vnetipam::controller::testing
