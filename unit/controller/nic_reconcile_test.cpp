#include "controller/nic_reconcile.h"

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

}  // namespace
}  // namespace vnetipam::controller
