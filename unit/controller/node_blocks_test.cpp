#include "controller/node_blocks.h"

#include <algorithm>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::controller {
namespace {

using api::BlockPhase;
using std::chrono::seconds;

using ipam::testing::P;

const Time kT0{seconds{1'700'000'000}};

// minFree 8, at most 4 blocks of 16, release after 300 s.
NodeBlockPolicy policy() {
  return {.minFreeIPsPerNode = 8,
          .maxBlocksPerNode = 4,
          .releaseDelay = seconds{300},
          .blockCapacity = 16};
}

NodeBlock block(std::string_view cidr, std::int64_t used, BlockPhase phase = BlockPhase::kReady,
                Time created = kT0) {
  return NodeBlock{.name = std::string("b-") + std::string(cidr),
                   .cidr = P(cidr),
                   .phase = phase,
                   .used = used,
                   .capacity = 16,
                   .created = created,
                   .emptySince = used == 0 ? std::optional<Time>(kT0) : std::nullopt};
}

NodeBlockDecision decide(std::span<const NodeBlock> blocks, Time now = kT0,
                         NodeState node = NodeState::kSelected, std::uint64_t pool = 100,
                         const NodeBlockPolicy& p = policy()) {
  return decideNodeBlocks(p, {.node = node, .blocks = blocks, .poolFreeBlocks = pool, .now = now});
}

TEST(NodeBlockPolicy, FromSpecComputesBlockCapacity) {
  api::PodSubnetSpec spec;
  spec.blockPrefixLength = 28;
  spec.minFreeIPsPerNode = 5;
  spec.maxBlocksPerNode = 7;
  spec.releaseDelaySeconds = 42;
  NodeBlockPolicy p = NodeBlockPolicy::fromSpec(spec, ipam::Family::kV4);
  EXPECT_EQ(p.blockCapacity, 16);
  EXPECT_EQ(p.minFreeIPsPerNode, 5);
  EXPECT_EQ(p.maxBlocksPerNode, 7);
  EXPECT_EQ(p.releaseDelay, seconds{42});
  spec.blockPrefixLength = 80;
  EXPECT_EQ(NodeBlockPolicy::fromSpec(spec, ipam::Family::kV6).blockCapacity,
            std::int64_t{1} << 48);
  spec.blockPrefixLength = 64;
  EXPECT_EQ(NodeBlockPolicy::fromSpec(spec, ipam::Family::kV6).blockCapacity, std::int64_t{1} << 62)
      << "saturates";
}

TEST(TrackEmptySince, StartsWhenFirstSeenEmptyAndClearsOnUse) {
  EXPECT_EQ(trackEmptySince(std::nullopt, 0, kT0), kT0);
  EXPECT_EQ(trackEmptySince(kT0, 0, kT0 + seconds{50}), kT0) << "keeps the first time";
  EXPECT_EQ(trackEmptySince(kT0, 3, kT0 + seconds{50}), std::nullopt);
}

TEST(NodeBlocks, NodeWithoutBlocksGetsEnoughForMinFree) {
  NodeBlockDecision d = decide({});
  EXPECT_EQ(d.freeIPs, 0);
  EXPECT_EQ(d.blocksToAdd, 1);
  EXPECT_TRUE(d.releases.empty());
  EXPECT_FALSE(d.shortOfPool);

  NodeBlockPolicy big = policy();
  big.minFreeIPsPerNode = 40;  // 40 / 16 -> 3 blocks
  EXPECT_EQ(decide({}, kT0, NodeState::kSelected, 100, big).blocksToAdd, 3);
}

TEST(NodeBlocks, FreeCountsPendingAndProgrammedButNotLeavingBlocks) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 10, BlockPhase::kPending),
                                   block("10.0.0.32/28", 12, BlockPhase::kProgrammed),
                                   block("10.0.0.48/28", 0, BlockPhase::kReleasing)};
  NodeBlock deleting = block("10.0.0.64/28", 0, BlockPhase::kReady);
  deleting.deleting = true;
  blocks.push_back(deleting);
  NodeBlockDecision d = decide(blocks);
  EXPECT_EQ(d.freeIPs, 6 + 4);
  EXPECT_EQ(d.blocksToAdd, 0) << "10 free >= 8";
}

TEST(NodeBlocks, UsedAboveCapacityCountsAsNoFree) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 20), block("10.0.0.32/28", 6)};
  EXPECT_EQ(decide(blocks).freeIPs, 10);
}

TEST(NodeBlocks, AddsWhenFreeDropsBelowMinFree) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 9)};  // 7 free
  NodeBlockDecision d = decide(blocks);
  EXPECT_EQ(d.freeIPs, 7);
  EXPECT_EQ(d.blocksToAdd, 1);
  blocks[0].used = 8;  // exactly 8 free
  EXPECT_EQ(decide(blocks).blocksToAdd, 0);
}

TEST(NodeBlocks, NeverBeyondMaxBlocksCountingLeavingBlocks) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 16), block("10.0.0.32/28", 16),
                                   block("10.0.0.48/28", 16),
                                   block("10.0.0.64/28", 0, BlockPhase::kReleasing)};
  NodeBlockDecision d = decide(blocks);
  EXPECT_EQ(d.blocksToAdd, 0) << "4 held, max 4";
  EXPECT_TRUE(d.atMaxBlocks);
  EXPECT_FALSE(d.shortOfPool);

  NodeBlockPolicy p = policy();
  p.minFreeIPsPerNode = 48;  // wants 3, room for 1
  blocks.pop_back();
  d = decide(blocks, kT0, NodeState::kSelected, 100, p);
  EXPECT_EQ(d.blocksToAdd, 1);
  EXPECT_TRUE(d.atMaxBlocks);
}

TEST(NodeBlocks, ExhaustedPoolReportsTheNodeShort) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 16)};
  NodeBlockDecision d = decide(blocks, kT0, NodeState::kSelected, 0);
  EXPECT_EQ(d.blocksToAdd, 0);
  EXPECT_TRUE(d.shortOfPool);
  EXPECT_FALSE(d.atMaxBlocks);

  NodeBlockPolicy p = policy();
  p.minFreeIPsPerNode = 40;  // wants 3, pool has 2
  d = decide({}, kT0, NodeState::kSelected, 2, p);
  EXPECT_EQ(d.blocksToAdd, 2);
  EXPECT_TRUE(d.shortOfPool);

  d = decide({}, kT0, NodeState::kSelected, 3, p);
  EXPECT_EQ(d.blocksToAdd, 3);
  EXPECT_FALSE(d.shortOfPool);
}

TEST(NodeBlocks, AtMaxIsNotShortOfPool) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 16), block("10.0.0.32/28", 16),
                                   block("10.0.0.48/28", 16), block("10.0.0.64/28", 16)};
  NodeBlockDecision d = decide(blocks, kT0, NodeState::kSelected, 0);
  EXPECT_TRUE(d.atMaxBlocks);
  EXPECT_FALSE(d.shortOfPool) << "the pool could not have helped";
}

TEST(NodeBlocks, EmptyExtraBlockIsReleasedAfterTheDelay) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 4), block("10.0.0.32/28", 0)};
  NodeBlockDecision early = decide(blocks, kT0 + seconds{299});
  EXPECT_TRUE(early.releases.empty());
  EXPECT_EQ(early.recheckAt, kT0 + seconds{300});

  NodeBlockDecision due = decide(blocks, kT0 + seconds{300});
  ASSERT_EQ(due.releases.size(), 1u);
  EXPECT_EQ(due.releases[0],
            (BlockRelease{"b-10.0.0.32/28", P("10.0.0.32/28"), ReleaseReason::kEmptyExtraBlock}));
  EXPECT_EQ(due.blocksToAdd, 0);
}

TEST(NodeBlocks, EmptyBlockWithoutEmptySinceIsNotReleased) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 4), block("10.0.0.32/28", 0)};
  blocks[1].emptySince.reset();
  EXPECT_TRUE(decide(blocks, kT0 + seconds{10'000}).releases.empty());
}

TEST(NodeBlocks, BlockWhoseRemovalDropsBelowMinFreeIsKept) {
  // 2 + 16 free = 18; removing the empty one leaves 2 < 8.
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 14), block("10.0.0.32/28", 0)};
  NodeBlockDecision d = decide(blocks, kT0 + seconds{10'000});
  EXPECT_TRUE(d.releases.empty());
  EXPECT_EQ(d.recheckAt, std::nullopt) << "not a candidate at all";
}

TEST(NodeBlocks, NonEmptyBlockIsNeverReleased) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 0), block("10.0.0.32/28", 1),
                                   block("10.0.0.48/28", 1)};
  NodeBlockDecision d = decide(blocks, kT0 + seconds{10'000});
  ASSERT_EQ(d.releases.size(), 1u);
  EXPECT_EQ(d.releases[0].cidr, P("10.0.0.16/28")) << "the only empty one, though lowest";
}

TEST(NodeBlocks, LastBlockOfALiveNodeIsKept) {
  NodeBlockPolicy p = policy();
  p.minFreeIPsPerNode = 0;
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 0)};
  EXPECT_TRUE(decide(blocks, kT0 + seconds{10'000}, NodeState::kSelected, 100, p).releases.empty());
  // A leaving block does not make the other one "not the last".
  blocks.push_back(block("10.0.0.32/28", 0, BlockPhase::kReleasing));
  EXPECT_TRUE(decide(blocks, kT0 + seconds{10'000}, NodeState::kSelected, 100, p).releases.empty());
}

TEST(NodeBlocks, ReleasesAtMostOnePreferringTheMostRecentlyCreated) {
  std::vector<NodeBlock> blocks = {
      block("10.0.0.16/28", 0, BlockPhase::kReady, kT0 - seconds{100}),
      block("10.0.0.32/28", 0, BlockPhase::kReady, kT0 - seconds{10}),  // newest
      block("10.0.0.48/28", 0, BlockPhase::kReady, kT0 - seconds{50}),
      block("10.0.0.64/28", 0, BlockPhase::kReady, kT0 - seconds{50})};
  NodeBlockDecision d = decide(blocks, kT0 + seconds{300});
  ASSERT_EQ(d.releases.size(), 1u);
  EXPECT_EQ(d.releases[0].cidr, P("10.0.0.32/28"));

  blocks[1].created = kT0 - seconds{50};  // three-way tie: the highest CIDR
  d = decide(blocks, kT0 + seconds{300});
  ASSERT_EQ(d.releases.size(), 1u);
  EXPECT_EQ(d.releases[0].cidr, P("10.0.0.64/28"));
}

TEST(NodeBlocks, LeavingBlocksAreNotReleasedAgain) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 0),
                                   block("10.0.0.32/28", 0, BlockPhase::kReleasing)};
  blocks.push_back(block("10.0.0.48/28", 0));
  blocks.back().deleting = true;
  NodeBlockDecision d = decide(blocks, kT0 + seconds{10'000});
  EXPECT_TRUE(d.releases.empty()) << "only one active block";
}

TEST(NodeBlocks, NoReleaseWhileAdding) {
  // 0 free in the full block, 4 in the nearly full: 4 < 8 → add; no release in the same pass.
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 16), block("10.0.0.32/28", 12)};
  NodeBlockDecision d = decide(blocks, kT0 + seconds{10'000});
  EXPECT_EQ(d.blocksToAdd, 1);
  EXPECT_TRUE(d.releases.empty());
}

TEST(NodeBlocks, GoneNodeReleasesEveryBlockEvenInUse) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 5), block("10.0.0.32/28", 0),
                                   block("10.0.0.48/28", 0, BlockPhase::kReleasing)};
  NodeBlockDecision d = decide(blocks, kT0, NodeState::kGone);
  ASSERT_EQ(d.releases.size(), 2u) << "the one already releasing is not repeated";
  EXPECT_EQ(d.releases[0],
            (BlockRelease{"b-10.0.0.16/28", P("10.0.0.16/28"), ReleaseReason::kNodeGone}));
  EXPECT_EQ(d.releases[1].cidr, P("10.0.0.32/28"));
  EXPECT_EQ(d.blocksToAdd, 0);
  EXPECT_FALSE(d.shortOfPool);
}

TEST(NodeBlocks, UnselectedNodeReleasesEveryBlockAndGetsNone) {
  std::vector<NodeBlock> blocks = {block("10.0.0.16/28", 16)};
  NodeBlockDecision d = decide(blocks, kT0, NodeState::kNotSelected, 0);
  ASSERT_EQ(d.releases.size(), 1u);
  EXPECT_EQ(d.releases[0].reason, ReleaseReason::kNodeNotSelected);
  EXPECT_EQ(d.blocksToAdd, 0);
  EXPECT_FALSE(d.shortOfPool) << "an unselected node is not short";
  EXPECT_TRUE(decide({}, kT0, NodeState::kGone).releases.empty());
  EXPECT_EQ(decide({}, kT0, NodeState::kGone).blocksToAdd, 0);
}

TEST(NodeBlocks, ReasonNames) {
  EXPECT_EQ(toString(ReleaseReason::kNodeGone), "NodeGone");
  EXPECT_EQ(toString(ReleaseReason::kNodeNotSelected), "NodeNotSelected");
  EXPECT_EQ(toString(ReleaseReason::kEmptyExtraBlock), "EmptyExtraBlock");
}

// A simulated node: pods come and go at random, time passes, and every decision is applied as the
// controller would (added blocks come from a finite pool; a released block goes back to it).
TEST(NodeBlocksProperty, RandomUsageNeverBreaksTheRules) {
  const NodeBlockPolicy p{.minFreeIPsPerNode = 10,
                          .maxBlocksPerNode = 6,
                          .releaseDelay = seconds{30},
                          .blockCapacity = 16};
  // Pods never exceed what max blocks can hold with minFree to spare, so minFree is reachable.
  const std::int64_t max_pods = p.maxBlocksPerNode * p.blockCapacity - p.minFreeIPsPerNode;
  for (std::uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    std::uint64_t pool = seed % 4 == 0 ? 3 : 1000;  // some runs starve the pool
    std::vector<NodeBlock> blocks;
    std::uint32_t next_cidr = 0;
    std::int64_t pods = 0;
    Time now = kT0;
    for (int step = 0; step < 400; ++step) {
      // Usage change: add or remove up to 20 pods, each into / out of a random block.
      const int delta = std::uniform_int_distribution<int>(-20, 20)(rng);
      for (int i = 0; i < std::abs(delta); ++i) {
        std::vector<NodeBlock*> candidates;
        for (NodeBlock& b : blocks) {
          if (delta > 0 ? b.used < b.capacity : b.used > 0) candidates.push_back(&b);
        }
        if (candidates.empty() || (delta > 0 && pods >= max_pods)) break;
        NodeBlock* b =
            candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng)];
        b->used += delta > 0 ? 1 : -1;
        pods += delta > 0 ? 1 : -1;
      }
      now += seconds{std::uniform_int_distribution<int>(0, 20)(rng)};
      for (NodeBlock& b : blocks)
        b.emptySince = trackEmptySince(b.emptySince, b.used, now);

      const NodeBlockDecision d = decideNodeBlocks(
          p, {.node = NodeState::kSelected, .blocks = blocks, .poolFreeBlocks = pool, .now = now});
      ASSERT_LE(d.releases.size(), 1u);
      for (const BlockRelease& r : d.releases) {
        auto it = std::ranges::find(blocks, r.name, &NodeBlock::name);
        ASSERT_NE(it, blocks.end());
        ASSERT_EQ(it->used, 0) << "seed " << seed << " step " << step << ": released in use";
        ASSERT_GE(now - *it->emptySince, p.releaseDelay);
        blocks.erase(it);
        ++pool;
      }
      ASSERT_LE(static_cast<std::uint64_t>(d.blocksToAdd), pool);
      for (std::int64_t i = 0; i < d.blocksToAdd; ++i) {
        const ipam::Prefix cidr =
            ipam::Prefix::masked(ipam::IPAddress::v4(0x0A00'0000U + next_cidr * 16U), 28);
        ++next_cidr;
        blocks.push_back({.name = "b" + std::to_string(next_cidr),
                          .cidr = cidr,
                          .phase = BlockPhase::kPending,
                          .used = 0,
                          .capacity = 16,
                          .created = now,
                          .emptySince = now});
        --pool;
      }
      ASSERT_LE(static_cast<std::int64_t>(blocks.size()), p.maxBlocksPerNode)
          << "seed " << seed << " step " << step;
      std::int64_t free_ips = 0;
      for (const NodeBlock& b : blocks)
        free_ips += b.capacity - b.used;
      if (!d.shortOfPool) {
        ASSERT_GE(free_ips, p.minFreeIPsPerNode) << "seed " << seed << " step " << step;
      } else {
        ASSERT_EQ(pool, 0u) << "short only when the pool is empty";
      }
      ASSERT_FALSE(blocks.empty()) << "a live node keeps a block";
    }
  }
}

// decideNodeBlockChores: the rest of a Node pass, block by block.
TEST(NodeBlockChores, ARefusedBlockIsReportedOnce) {
  const std::vector<NodeBlockFacts> blocks = {{.name = "new", .refusedUnreported = true},
                                              {.name = "reported"}};
  EXPECT_EQ(decideNodeBlockChores(blocks, true).reportInvalid, std::vector<std::string>{"new"});
}

TEST(NodeBlockChores, AGonePodSubnetTakesItsAcceptedBlocksAndChecksTheUndecided) {
  const std::vector<NodeBlockFacts> blocks = {
      {.name = "accepted", .accepted = true, .subnetKnown = false},
      {.name = "accepted-leaving", .accepted = true, .subnetKnown = false, .deleting = true},
      {.name = "undecided", .undecided = true, .subnetKnown = false},
      {.name = "refused", .subnetKnown = false},
      {.name = "known", .accepted = true}};
  const NodeBlockChores chores = decideNodeBlockChores(blocks, true);
  EXPECT_EQ(chores.releaseSubnetGone, std::vector<std::string>{"accepted"});
  EXPECT_EQ(chores.checkSubnet, std::vector<std::string>{"undecided"})
      << "never judged: a GET tells whether the PodSubnet ever existed";
  EXPECT_TRUE(chores.reportInvalid.empty());
  EXPECT_TRUE(chores.dropAgentDrain.empty());
}

TEST(NodeBlockChores, AgentDrainIsDroppedOnlyForLeavingBlocksOfAGoneNode) {
  const std::vector<NodeBlockFacts> blocks = {
      {.name = "leaving", .accepted = true, .deleting = true, .agentDrain = true},
      {.name = "drained", .accepted = true, .deleting = true},
      {.name = "staying", .accepted = true, .agentDrain = true}};
  EXPECT_EQ(decideNodeBlockChores(blocks, false).dropAgentDrain,
            std::vector<std::string>{"leaving"});
  EXPECT_TRUE(decideNodeBlockChores(blocks, true).dropAgentDrain.empty())
      << "while the Node exists its agent gives the block up";
}

}  // namespace
}  // namespace vnetipam::controller
