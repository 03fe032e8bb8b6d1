#include "controller/nic_reconcile.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::controller {
namespace {

using api::BlockPhase;
using std::chrono::seconds;

using ipam::testing::P;

const Time kT0{seconds{1'700'000'000}};
const std::vector<ipam::Prefix> kManaged = {P("10.240.0.0/16")};

NicBlock block(std::string_view name, std::string_view cidr, BlockPhase phase,
               bool deleting = false) {
  return {.name = std::string(name), .cidr = P(cidr), .phase = phase, .deleting = deleting};
}

NicPlan plan(const std::vector<NicBlock>& blocks, const std::vector<ipam::Prefix>& nic,
             std::map<ipam::Prefix, Time> seen = {}, Time now = kT0) {
  return planNic({.blocks = blocks,
                  .nicPrefixes = nic,
                  .managedRanges = kManaged,
                  .unownedFirstSeen = std::move(seen),
                  .unownedGrace = seconds{60},
                  .now = now});
}

TEST(NicReconcile, N1PendingAbsentIsAddedAndStaysPending) {
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kPending)}, {});
  EXPECT_TRUE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
  EXPECT_TRUE(p.phaseChanges.empty());
  EXPECT_TRUE(p.events.empty());
}

TEST(NicReconcile, N2PendingPresentBecomesReady) {
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kPending)}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
  EXPECT_EQ(p.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kPending, BlockPhase::kReady}}));
}

TEST(NicReconcile, N3ProgrammedPresentBecomesReady) {
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kProgrammed)}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kProgrammed, BlockPhase::kReady}}));
}

TEST(NicReconcile, N4ReadyPresentIsLeftAlone) {
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kReady)}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_TRUE(p.phaseChanges.empty());
  EXPECT_TRUE(p.events.empty());
  EXPECT_TRUE(p.finishedReleasing.empty());
}

TEST(NicReconcile, N5N6VanishedPrefixIsReprogrammedWithAnEvent) {
  for (BlockPhase phase : {BlockPhase::kProgrammed, BlockPhase::kReady}) {
    NicPlan p = plan({block("a", "10.240.0.16/28", phase)}, {});
    EXPECT_TRUE(p.needsPut);
    EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
    EXPECT_EQ(p.phaseChanges, (std::vector<PhaseChange>{{"a", phase, BlockPhase::kPending}}));
    ASSERT_EQ(p.events.size(), 1u);
    EXPECT_EQ(p.events[0].reason, NicEventReason::kPrefixVanished);
    EXPECT_EQ(p.events[0].block, "a");
    EXPECT_EQ(p.events[0].prefix, P("10.240.0.16/28"));
    EXPECT_NE(p.events[0].message.find("10.240.0.16/28"), std::string::npos) << p.events[0].message;
  }
}

TEST(NicReconcile, N7LeavingPresentIsRemovedAndMarkedReleasing) {
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kReady, /*deleting=*/true),
                    block("b", "10.240.0.32/28", BlockPhase::kReleasing)},
                   {P("10.240.0.16/28"), P("10.240.0.32/28")});
  EXPECT_TRUE(p.needsPut);
  EXPECT_TRUE(p.desiredPrefixes.empty());
  EXPECT_EQ(p.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kReady, BlockPhase::kReleasing}}))
      << "b is already Releasing";
  EXPECT_TRUE(p.finishedReleasing.empty()) << "not until a GET shows the prefix gone";
}

TEST(NicReconcile, N8LeavingAbsentFinishes) {
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kReleasing, true),
                    block("b", "10.240.0.32/28", BlockPhase::kPending, true)},
                   {});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.finishedReleasing, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(p.phaseChanges.empty());
}

TEST(NicReconcile, N9UnownedPrefixIsKeptAndRemembered) {
  NicPlan p = plan({}, {P("10.240.1.0/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.1.0/28")});
  EXPECT_EQ(p.unownedFirstSeen, (std::map<ipam::Prefix, Time>{{P("10.240.1.0/28"), kT0}}));
  EXPECT_EQ(p.recheckAt, kT0 + seconds{60});
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].reason, NicEventReason::kUnownedPrefixFound);
}

TEST(NicReconcile, N10UnownedWithinGraceIsKeptQuietly) {
  std::map<ipam::Prefix, Time> seen{{P("10.240.1.0/28"), kT0}};
  NicPlan p = plan({}, {P("10.240.1.0/28")}, seen, kT0 + seconds{59});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.unownedFirstSeen, seen) << "keeps the first time, not now";
  EXPECT_EQ(p.recheckAt, kT0 + seconds{60});
  EXPECT_TRUE(p.events.empty());
}

TEST(NicReconcile, N11UnownedAfterGraceIsRemovedWithAnEvent) {
  std::map<ipam::Prefix, Time> seen{{P("10.240.1.0/28"), kT0}};
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kReady)},
                   {P("10.240.0.16/28"), P("10.240.1.0/28")}, seen, kT0 + seconds{60});
  EXPECT_TRUE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
  EXPECT_TRUE(p.unownedFirstSeen.empty());
  EXPECT_EQ(p.recheckAt, std::nullopt);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].reason, NicEventReason::kUnownedPrefixRemoved);
  EXPECT_EQ(p.events[0].prefix, P("10.240.1.0/28"));
}

TEST(NicReconcile, N11ZeroGraceRemovesAtOnce) {
  std::vector<ipam::Prefix> nic = {P("10.240.1.0/28")};
  NicPlan p = planNic({.blocks = {},
                       .nicPrefixes = nic,
                       .managedRanges = kManaged,
                       .unownedGrace = seconds{0},
                       .now = kT0});
  EXPECT_TRUE(p.needsPut);
  EXPECT_TRUE(p.desiredPrefixes.empty());
  EXPECT_TRUE(p.unownedFirstSeen.empty());
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].reason, NicEventReason::kUnownedPrefixRemoved);
}

TEST(NicReconcile, N12PrefixOutsideManagedRangesIsNeverTouched) {
  std::map<ipam::Prefix, Time> seen{{P("192.168.0.0/28"), kT0}};
  NicPlan p = plan({}, {P("192.168.0.0/28")}, seen, kT0 + seconds{10'000});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("192.168.0.0/28")});
  EXPECT_TRUE(p.events.empty());
  EXPECT_TRUE(p.unownedFirstSeen.empty());
}

TEST(NicReconcile, N13RememberedPrefixGoneFromNicIsForgotten) {
  std::map<ipam::Prefix, Time> seen{{P("10.240.1.0/28"), kT0}};
  NicPlan p = plan({}, {}, seen, kT0 + seconds{10});
  EXPECT_FALSE(p.needsPut);
  EXPECT_TRUE(p.unownedFirstSeen.empty());
  EXPECT_TRUE(p.events.empty());
}

TEST(NicReconcile, RememberedPrefixThatABlockNowOwnsIsForgotten) {
  std::map<ipam::Prefix, Time> seen{{P("10.240.0.16/28"), kT0}};
  NicPlan p = plan({block("a", "10.240.0.16/28", BlockPhase::kPending)}, {P("10.240.0.16/28")},
                   seen, kT0 + seconds{10'000});
  EXPECT_FALSE(p.needsPut) << "owned again: never removed";
  EXPECT_TRUE(p.unownedFirstSeen.empty());
  EXPECT_EQ(p.phaseChanges.size(), 1u);
}

TEST(NicReconcile, OnePutCarriesEveryChange) {
  std::map<ipam::Prefix, Time> seen{{P("10.240.9.0/28"), kT0}};
  NicPlan p =
      plan({block("new1", "10.240.0.16/28", BlockPhase::kPending),
            block("new2", "10.240.0.32/28", BlockPhase::kPending),
            block("gone", "10.240.0.48/28", BlockPhase::kReleasing),
            block("ok", "10.240.0.64/28", BlockPhase::kReady),
            block("lost", "10.240.0.80/28", BlockPhase::kReady)},
           {P("10.240.0.48/28"), P("10.240.0.64/28"), P("10.240.9.0/28"), P("172.16.0.0/28")}, seen,
           kT0 + seconds{120});
  EXPECT_TRUE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes,
            (std::vector{P("10.240.0.16/28"), P("10.240.0.32/28"), P("10.240.0.64/28"),
                         P("10.240.0.80/28"), P("172.16.0.0/28")}))
      << "sorted; the leaving and the stale unowned prefixes go, the foreign one stays";
  EXPECT_EQ(p.events.size(), 2u);
}

TEST(NicReconcile, LeavingAndLiveBlockSharingAPrefixKeepsIt) {
  NicPlan p = plan({block("old", "10.240.0.16/28", BlockPhase::kReleasing),
                    block("new", "10.240.0.16/28", BlockPhase::kReady)},
                   {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
}

TEST(NicReconcile, EarliestGraceEndIsTheRecheckTime) {
  std::map<ipam::Prefix, Time> seen{{P("10.240.1.0/28"), kT0}};
  NicPlan p = plan({}, {P("10.240.1.0/28"), P("10.240.2.0/28")}, seen, kT0 + seconds{30});
  EXPECT_EQ(p.recheckAt, kT0 + seconds{60});
  EXPECT_EQ(p.unownedFirstSeen.at(P("10.240.2.0/28")), kT0 + seconds{30});
}

TEST(NicReconcile, EventReasonNames) {
  EXPECT_EQ(toString(NicEventReason::kPrefixVanished), "PrefixVanished");
  EXPECT_EQ(toString(NicEventReason::kUnownedPrefixFound), "UnownedPrefixFound");
  EXPECT_EQ(toString(NicEventReason::kUnownedPrefixRemoved), "UnownedPrefixRemoved");
}

// N7d: a block being deleted whose agent has not removed vnetipam.io/agent-drain keeps its prefix
// (the agent may still serve pods from it); once the finalizer is gone, N7 takes it off.
TEST(NicReconcile, N7dADrainingBlockKeepsItsPrefixUntilTheAgentLetsGo) {
  NicBlock draining = block("a", "10.240.0.16/28", BlockPhase::kReady, /*deleting=*/true);
  draining.agentDrain = true;
  NicPlan p = plan({draining}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
  EXPECT_TRUE(p.finishedReleasing.empty());
  EXPECT_EQ(p.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kReady, BlockPhase::kReleasing}}));

  draining.agentDrain = false;
  p = plan({draining}, {P("10.240.0.16/28")});
  EXPECT_TRUE(p.needsPut);
  EXPECT_TRUE(p.desiredPrefixes.empty());
}

// A draining block whose prefix is gone already is not programmed again, and its nic-release
// finalizer may go (the prefix is off); agent-drain keeps the object, and so the CIDR.
TEST(NicReconcile, N8ADrainingBlockWithoutItsPrefixIsNotProgrammedAgain) {
  NicBlock draining = block("a", "10.240.0.16/28", BlockPhase::kReleasing, /*deleting=*/true);
  draining.agentDrain = true;
  NicPlan p = plan({draining}, {});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.finishedReleasing, std::vector<std::string>{"a"});
}

// N14: a refused block is never programmed, owns nothing (its CIDR on the NIC is unowned, removed
// after the grace), moves no phase; it loses the finalizer only once someone deletes it.
TEST(NicReconcile, N14ARefusedBlockIsNeverProgrammedAndOwnsNoPrefix) {
  NicBlock refused = block("x", "10.240.0.0/27", BlockPhase::kReady);
  refused.trust = Trust::kInvalid;
  NicPlan p = plan({refused}, {});
  EXPECT_FALSE(p.needsPut);
  EXPECT_TRUE(p.phaseChanges.empty());
  EXPECT_TRUE(p.finishedReleasing.empty());

  p = plan({refused}, {P("10.240.0.0/27")});
  EXPECT_EQ(p.unownedFirstSeen.size(), 1u) << "its prefix is nobody's";
  p = plan({refused}, {P("10.240.0.0/27")}, p.unownedFirstSeen, kT0 + seconds{61});
  EXPECT_TRUE(p.needsPut);
  EXPECT_TRUE(p.desiredPrefixes.empty());

  NicBlock pending = block("y", "10.240.0.16/28", BlockPhase::kPending);
  pending.trust = Trust::kInvalid;
  p = plan({pending}, {});
  EXPECT_FALSE(p.needsPut) << "a refused Pending block is not added";

  refused.phase = BlockPhase::kReleasing;  // leaving by its phase only: not deleted by anyone
  p = plan({refused}, {});
  EXPECT_TRUE(p.finishedReleasing.empty()) << "the controller never deletes a refused block";
  refused.deleting = true;
  p = plan({refused}, {});
  EXPECT_EQ(p.finishedReleasing, std::vector<std::string>{"x"});
}

// N14 beside an accepted block with the same prefix: the accepted one keeps it.
TEST(NicReconcile, N14ARefusedBlockDoesNotTakeAwayAnAcceptedBlocksPrefix) {
  NicBlock refused = block("other-10-240-0-16-28", "10.240.0.16/28", BlockPhase::kReady, true);
  refused.trust = Trust::kInvalid;
  NicPlan p =
      plan({block("a", "10.240.0.16/28", BlockPhase::kReady), refused}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.desiredPrefixes, std::vector{P("10.240.0.16/28")});
}

// N15: an undecided block keeps a prefix already there and gets nothing added or moved.
TEST(NicReconcile, N15AnUndecidedBlockKeepsItsPrefixButIsNotProgrammed) {
  NicBlock undecided = block("a", "10.240.0.16/28", BlockPhase::kPending);
  undecided.trust = Trust::kUndecided;
  NicPlan p = plan({undecided}, {});
  EXPECT_FALSE(p.needsPut);
  EXPECT_TRUE(p.phaseChanges.empty());
  p = plan({undecided}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_TRUE(p.phaseChanges.empty());
  EXPECT_TRUE(p.unownedFirstSeen.empty()) << "owned, so never removed as unowned";
}

TEST(NicReconcile, WithoutACloudAcceptedBlocksGoReadyAndLeavingOnesGoAtOnce) {
  std::vector<NicBlock> blocks = {
      block("pending", "10.240.0.16/28", BlockPhase::kPending),
      block("ready", "10.240.0.32/28", BlockPhase::kReady),
      block("leaving", "10.240.0.48/28", BlockPhase::kReady, true),
      block("refused", "10.240.0.64/28", BlockPhase::kPending),
      block("refused-gone", "10.240.0.80/28", BlockPhase::kPending, true),
      block("undecided", "10.240.0.96/28", BlockPhase::kPending)};
  blocks[3].trust = Trust::kInvalid;
  blocks[4].trust = Trust::kInvalid;
  blocks[5].trust = Trust::kUndecided;
  const std::vector<std::string> withFinalizer = {"ready", "leaving", "refused"};
  EXPECT_EQ(planWithoutCloud(blocks, withFinalizer),
            (NoCloudPlan{.toReady = {"pending"},
                         .finished = {"leaving", "refused-gone"},
                         .dropFinalizer = {"ready", "refused"}}));
}

// N16: another Azure resource holds an address inside one of three new blocks. The PUT carries the
// other two; the one held by others is quarantined (left out, not Ready, for the caller to
// release). Without a hold the same three blocks all go into one PUT, as ever.
NicPlan planHeld(const std::vector<NicBlock>& blocks, const std::vector<ipam::Prefix>& nic,
                 const std::vector<ipam::Prefix>& held) {
  return planNic({.blocks = blocks,
                  .nicPrefixes = nic,
                  .managedRanges = kManaged,
                  .unownedFirstSeen = {},
                  .unownedGrace = seconds{60},
                  .now = kT0,
                  .heldByOthers = held});
}

TEST(NicReconcile, N16OneBlockHeldByOthersAmongThreeIsLeftOutAndTheOthersArePut) {
  const std::vector<NicBlock> three = {block("a", "10.240.0.16/28", BlockPhase::kPending),
                                       block("b", "10.240.0.32/28", BlockPhase::kPending),
                                       block("c", "10.240.0.48/28", BlockPhase::kPending)};
  NicPlan none = planHeld(three, {}, {});
  EXPECT_TRUE(none.needsPut);
  EXPECT_EQ(none.desiredPrefixes,
            (std::vector{P("10.240.0.16/28"), P("10.240.0.32/28"), P("10.240.0.48/28")}));
  EXPECT_TRUE(none.quarantined.empty());
  EXPECT_TRUE(none.phaseChanges.empty());

  // A hold of a CIDR no block of this node has changes nothing either.
  EXPECT_EQ(planHeld(three, {}, {P("10.240.1.0/28")}).desiredPrefixes, none.desiredPrefixes);

  NicPlan held = planHeld(three, {}, {P("10.240.0.32/28")});
  EXPECT_TRUE(held.needsPut);
  EXPECT_EQ(held.desiredPrefixes, (std::vector{P("10.240.0.16/28"), P("10.240.0.48/28")}));
  EXPECT_EQ(held.quarantined, std::vector<std::string>{"b"});
  EXPECT_TRUE(held.phaseChanges.empty()) << "b stays Pending: never Ready";

  // The next GET shows the two: they go Ready, b stays quarantined and is still not added.
  held = planHeld(three, {P("10.240.0.16/28"), P("10.240.0.48/28")}, {P("10.240.0.32/28")});
  EXPECT_FALSE(held.needsPut);
  EXPECT_EQ(held.quarantined, std::vector<std::string>{"b"});
  EXPECT_EQ(held.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kPending, BlockPhase::kReady},
                                      {"c", BlockPhase::kPending, BlockPhase::kReady}}));
}

TEST(NicReconcile, N16AVanishedReadyBlockHeldByOthersGoesBackToPendingAndIsNotAddedAgain) {
  NicPlan p =
      planHeld({block("a", "10.240.0.16/28", BlockPhase::kReady)}, {}, {P("10.240.0.16/28")});
  EXPECT_FALSE(p.needsPut);
  EXPECT_EQ(p.quarantined, std::vector<std::string>{"a"});
  EXPECT_EQ(p.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kReady, BlockPhase::kPending}}));
}

TEST(NicReconcile, N16APrefixTheNicShowsIsOursWhateverTheHoldSays) {
  NicPlan p = planHeld({block("a", "10.240.0.16/28", BlockPhase::kPending)}, {P("10.240.0.16/28")},
                       {P("10.240.0.16/28")});
  EXPECT_TRUE(p.quarantined.empty());
  EXPECT_EQ(p.phaseChanges,
            (std::vector<PhaseChange>{{"a", BlockPhase::kPending, BlockPhase::kReady}}));
}

TEST(NicReconcile, N16LeavingRefusedAndUndecidedBlocksAreNotQuarantined) {
  NicBlock leaving = block("a", "10.240.0.16/28", BlockPhase::kPending, /*deleting=*/true);
  NicBlock refused = block("b", "10.240.0.32/28", BlockPhase::kPending);
  refused.trust = Trust::kInvalid;
  NicBlock undecided = block("c", "10.240.0.48/28", BlockPhase::kPending);
  undecided.trust = Trust::kUndecided;
  NicPlan p = planHeld({leaving, refused, undecided}, {},
                       {P("10.240.0.16/28"), P("10.240.0.32/28"), P("10.240.0.48/28")});
  EXPECT_TRUE(p.quarantined.empty());
  EXPECT_EQ(p.finishedReleasing, std::vector<std::string>{"a"}) << "N8 as ever";
}

TEST(NicReconcile, OnlyAzuresInUseCodesMeanAnAddressHeldByOthers) {
  EXPECT_TRUE(addressHeldByOthers("PrivateIPAddressInUse"));
  EXPECT_TRUE(addressHeldByOthers("PrivateIPAddressIsAllocated"));
  EXPECT_FALSE(addressHeldByOthers("SubnetIsFull"));
  EXPECT_FALSE(addressHeldByOthers("PrivateIPAddressIsReserved"));
  EXPECT_FALSE(addressHeldByOthers(""));
}

// Which block a refusal names: the PUT below adds b, c and d; a is on the NIC already.
class ConflictingBlockTest : public ::testing::Test {
 protected:
  std::optional<std::string> of(std::string_view message) const {
    // azure::ipConfigName's names ("vnetipam-10-240-0-16-28"); the pure core does not link it.
    return conflictingBlock(blocks_, nic_, desired_, message, [](const ipam::Prefix& p) {
      std::string address = p.address().toString();
      std::ranges::replace(address, '.', '-');
      return "vnetipam-" + address + "-" + std::to_string(p.length());
    });
  }
  std::vector<NicBlock> blocks_ = {block("a", "10.240.0.16/28", BlockPhase::kReady),
                                   block("b", "10.240.0.32/28", BlockPhase::kPending),
                                   block("c", "10.240.0.48/28", BlockPhase::kPending),
                                   block("d", "10.240.0.64/28", BlockPhase::kPending)};
  std::vector<ipam::Prefix> nic_ = {P("10.240.0.16/28")};
  std::vector<ipam::Prefix> desired_ = {P("10.240.0.16/28"), P("10.240.0.32/28"),
                                        P("10.240.0.48/28"), P("10.240.0.64/28")};
};

TEST_F(ConflictingBlockTest, TheIpConfigurationTheMessageNamesIsTheOne) {
  // The VNET mock's words, which are Azure's for PrivateIPAddressInUse.
  EXPECT_EQ(of("IP configuration /subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
               "networkInterfaces/n0/ipConfigurations/vnetipam-10-240-0-48-28 is using the same "
               "private IP address 10.240.0.48/28 as IP configuration /subscriptions/s/"
               "resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n3/"
               "ipConfigurations/foreign."),
            "c");
  // Case does not matter; a longer name is not this one.
  EXPECT_EQ(of("IP configuration .../ipConfigurations/VNETIPAM-10-240-0-64-28 is using ..."), "d");
  EXPECT_EQ(of("ipConfigurations/vnetipam-10-240-0-64-280 and 10.240.0.70"), "d")
      << "not named: the address decides";
}

TEST_F(ConflictingBlockTest, OtherwiseTheAddressTheMessageNames) {
  // Azure's PrivateIPAddressIsAllocated names the address and the other resource.
  EXPECT_EQ(of("IP configuration /x/ipConfigurations/ipconfig1 is using the private IP address "
               "10.240.0.37 which is already allocated to resource /y/networkInterfaces/other."),
            "b");
  // An address in no block the PUT adds (a's is on the NIC already) picks none of them...
  EXPECT_EQ(of("the private IP address 10.240.0.20 is in use."), std::nullopt);
  // ... and addresses in two blocks name no single one.
  EXPECT_EQ(of("10.240.0.37 and 10.240.0.50"), std::nullopt);
}

TEST_F(ConflictingBlockTest, WithoutAClueOnlyASingleAddedBlockIsTheOne) {
  EXPECT_EQ(of("Private IP address is in use."), std::nullopt) << "three added: no guess";
  nic_ = {P("10.240.0.16/28"), P("10.240.0.32/28"), P("10.240.0.64/28")};
  EXPECT_EQ(of("Private IP address is in use."), "c");
  // But an address the message names outside it: the refusal is not about c.
  EXPECT_EQ(of("the private IP address 10.240.0.200 is in use."), std::nullopt);
  EXPECT_EQ(of("the private IP address 10.240.0.50 is in use."), "c");
  // A leaving or refused block is never added, so never the one.
  blocks_[2].deleting = true;
  EXPECT_EQ(of("Private IP address is in use."), std::nullopt);
}

}  // namespace
}  // namespace vnetipam::controller
