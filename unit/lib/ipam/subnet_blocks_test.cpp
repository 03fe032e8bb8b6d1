#include "lib/ipam/subnet_blocks.h"

#include <random>
#include <set>

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::ipam {
namespace {

using testing::P;

SubnetBlockSet carved(std::string_view subnet, int len, CarveOptions options = {}) {
  auto set = SubnetBlockSet::carve(P(subnet), len, options);
  EXPECT_TRUE(set.has_value()) << (set ? "" : set.error().message);
  set->finishOccupying();
  return std::move(*set);
}

#define EXPECT_INVARIANTS(set) EXPECT_EQ((set).invariantViolation(), std::nullopt)

TEST(SubnetBlockSet, AzureReservedAddressesExcludeTheFirstAndLastBlock) {
  SubnetBlockSet set = carved("10.240.0.0/24", 28);
  EXPECT_EQ(set.blockCount(), 16u);
  EXPECT_EQ(set.excludedCount(), 2u);
  EXPECT_EQ(set.usableCount(), 14u);
  EXPECT_TRUE(set.isExcluded(0)) << "holds .0-.3";
  EXPECT_TRUE(set.isExcluded(15)) << "holds .255";
  EXPECT_FALSE(set.isExcluded(1));
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.16/28")) << "first usable block";
  EXPECT_INVARIANTS(set);
}

TEST(SubnetBlockSet, WithoutAzureReservationEveryBlockIsUsable) {
  SubnetBlockSet set = carved("10.240.0.0/24", 28, {.excludeAzureReserved = false});
  EXPECT_EQ(set.usableCount(), 16u);
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.0/28"));
}

TEST(SubnetBlockSet, ReservedCIDRsExcludeEveryBlockTheyTouch) {
  SubnetBlockSet set =
      carved("10.0.0.0/24", 28,
             {.excludeAzureReserved = false,
              .reserved = {P("10.0.0.20/32"), P("10.0.0.64/27"), P("10.0.0.0/8")}});
  // 10.0.0.0/8 overlaps the whole subnet: nothing is usable.
  EXPECT_EQ(set.usableCount(), 0u);
  EXPECT_EQ(set.allocateNext().error().code, ErrorCode::kExhausted);

  SubnetBlockSet partial =
      carved("10.0.0.0/24", 28,
             {.excludeAzureReserved = false, .reserved = {P("10.0.0.20/32"), P("10.0.0.64/27")}});
  EXPECT_EQ(partial.excludedCount(), 3u) << "block 1 for .20, blocks 4 and 5 for .64/27";
  EXPECT_TRUE(partial.isExcluded(1));
  EXPECT_TRUE(partial.isExcluded(4));
  EXPECT_TRUE(partial.isExcluded(5));
  EXPECT_FALSE(partial.isExcluded(6));
  EXPECT_INVARIANTS(partial);
}

TEST(SubnetBlockSet, RejectsBadCarvingWithReasons) {
  auto shorter = SubnetBlockSet::carve(P("10.0.0.0/24"), 20);
  ASSERT_FALSE(shorter);
  EXPECT_EQ(shorter.error().message,
            "block prefix length /20 does not fit subnet 10.0.0.0/24: expected 24-32");
  auto too_many = SubnetBlockSet::carve(P("10.0.0.0/8"), 35);
  ASSERT_FALSE(too_many);
  auto huge = SubnetBlockSet::carve(P("fd00::/48"), 112);
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("2^64 blocks"), std::string::npos) << huge.error().message;
  auto outside = SubnetBlockSet::carve(P("10.0.0.0/24"), 28, {.reserved = {P("10.1.0.0/24")}});
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().message,
            "reserved range 10.1.0.0/24 does not overlap subnet 10.0.0.0/24");
  auto family = SubnetBlockSet::carve(P("10.0.0.0/24"), 28, {.reserved = {P("fd00::/64")}});
  ASSERT_FALSE(family);
}

TEST(SubnetBlockSet, EdgePrefixLengths) {
  // A /32 subnet with /32 blocks: one block, and it is Azure-reserved.
  SubnetBlockSet one = carved("10.0.0.7/32", 32);
  EXPECT_EQ(one.blockCount(), 1u);
  EXPECT_EQ(one.usableCount(), 0u);
  SubnetBlockSet one_plain = carved("10.0.0.7/32", 32, {.excludeAzureReserved = false});
  EXPECT_EQ(one_plain.allocateNext().value(), P("10.0.0.7/32"));
  EXPECT_EQ(one_plain.allocateNext().error().code, ErrorCode::kExhausted);

  // A /0 carved into /26 blocks: 2^26 blocks, the maximum.
  auto all = SubnetBlockSet::carve(P("0.0.0.0/0"), 26);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->blockCount(), std::uint64_t{1} << 26);
  EXPECT_EQ(all->blockAt(all->blockCount() - 1), P("255.255.255.192/26"));

  // IPv6 /128 blocks of a /112, and /80 blocks of a /64 (the carving takes any length; the API
  // bounds it).
  SubnetBlockSet v6 = carved("fd00::/112", 128, {.excludeAzureReserved = false});
  EXPECT_EQ(v6.blockCount(), 65536u);
  EXPECT_EQ(v6.allocateNext().value(), P("fd00::/128"));
  SubnetBlockSet v6az = carved("fd00:10::/64", 80);
  EXPECT_EQ(v6az.blockCount(), 65536u);
  EXPECT_EQ(v6az.excludedCount(), 2u);
  EXPECT_EQ(v6az.allocateNext().value(), P("fd00:10:0:0:1::/80"));
  EXPECT_EQ(v6az.blockAt(65535), P("fd00:10::ffff:0:0:0/80"));
}

TEST(SubnetBlockSet, FirstAndLastUsableBlocks) {
  SubnetBlockSet set = carved("10.240.0.0/24", 28);
  std::vector<Prefix> got;
  while (auto b = set.allocateNext())
    got.push_back(*b);
  ASSERT_EQ(got.size(), 14u);
  EXPECT_EQ(got.front(), P("10.240.0.16/28"));
  EXPECT_EQ(got.back(), P("10.240.0.224/28"));
  EXPECT_EQ(set.freeCount(), 0u);
  const auto exhausted = set.allocateNext();
  ASSERT_FALSE(exhausted);
  EXPECT_EQ(exhausted.error().code, ErrorCode::kExhausted);
  EXPECT_EQ(exhausted.error().message,
            "subnet 10.240.0.0/24 is exhausted: all 14 usable /28 blocks are allocated");
  EXPECT_INVARIANTS(set);
}

TEST(SubnetBlockSet, AllocationRotatesSoAReleasedBlockIsReusedLast) {
  SubnetBlockSet set = carved("10.0.0.0/26", 28, {.excludeAzureReserved = false});
  const Prefix a = set.allocateNext().value();
  ASSERT_TRUE(set.release(a));
  EXPECT_NE(set.allocateNext().value(), a);
  EXPECT_NE(set.allocateNext().value(), a);
  EXPECT_NE(set.allocateNext().value(), a);
  EXPECT_EQ(set.allocateNext().value(), a) << "only the released block is left";
}

TEST(SubnetBlockSet, OccupyMustComeBeforeAllocation) {
  auto set = SubnetBlockSet::carve(P("10.240.0.0/24"), 28);
  ASSERT_TRUE(set);
  const auto early = set->allocateNext();
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, ErrorCode::kNotReady);
  ASSERT_TRUE(set->occupy(P("10.240.0.16/28")));
  ASSERT_TRUE(set->occupy(P("10.240.0.16/28"))) << "occupy is idempotent";
  ASSERT_TRUE(set->occupy(P("10.240.0.48/28")));
  EXPECT_EQ(set->allocatedCount(), 2u);
  set->finishOccupying();
  EXPECT_EQ(set->allocateNext().value(), P("10.240.0.32/28")) << "skips the occupied block";
  EXPECT_EQ(set->allocateNext().value(), P("10.240.0.64/28"));
  ASSERT_TRUE(set->occupy(P("10.240.0.128/28"))) << "occupy still works after allocation starts";
  EXPECT_EQ(set->allocatedCount(), 5u);
  EXPECT_INVARIANTS(*set);
}

TEST(SubnetBlockSet, RefusesForeignReservedAndDoubleReleasedBlocks) {
  SubnetBlockSet set = carved("10.240.0.0/24", 28);
  EXPECT_EQ(set.occupy(P("10.241.0.16/28")).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(set.occupy(P("10.240.0.16/29")).error().message,
            "10.240.0.16/29 is not a block of subnet 10.240.0.0/24: expected a /28 inside it");
  EXPECT_EQ(set.occupy(P("10.240.0.0/28")).error().code, ErrorCode::kConflict);
  EXPECT_EQ(set.release(P("10.240.0.240/28")).error().code, ErrorCode::kConflict);
  const Prefix b = set.allocateNext().value();
  ASSERT_TRUE(set.release(b));
  const auto again = set.release(b);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(again.error().message,
            "cannot release 10.240.0.16/28: it is not allocated in subnet 10.240.0.0/24");
  EXPECT_EQ(set.allocatedCount(), 0u);
  EXPECT_INVARIANTS(set);
}

// A deliberately simple model: a set of taken indexes and a cursor, scanned linearly.
struct ReferenceBlocks {
  std::uint64_t count;
  std::set<std::uint64_t> excluded, allocated;
  std::uint64_t next = 0;

  std::optional<std::uint64_t> allocateNext() {
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint64_t c = (next + i) % count;
      if (!excluded.contains(c) && !allocated.contains(c)) {
        allocated.insert(c);
        next = c + 1;
        return c;
      }
    }
    return std::nullopt;
  }
};

TEST(SubnetBlockSet, MatchesReferenceModelOnRandomSequences) {
  std::mt19937_64 rng(7);
  const CarveOptions options{.reserved = {P("10.8.1.0/24"), P("10.8.7.77/32")}};
  auto made = SubnetBlockSet::carve(P("10.8.0.0/20"), 28, options);
  ASSERT_TRUE(made);
  SubnetBlockSet set = std::move(*made);
  ReferenceBlocks model{.count = set.blockCount()};
  for (std::uint64_t i = 0; i < model.count; ++i) {
    if (set.isExcluded(i)) model.excluded.insert(i);
  }
  // Reserved: block 0 (.0-.3), 16 blocks of 10.8.1.0/24, the block of 10.8.7.77, the last block.
  ASSERT_EQ(model.excluded.size(), 19u);

  // Restart phase: occupy a random subset first.
  std::uniform_int_distribution<std::uint64_t> pick(0, model.count - 1);
  for (int i = 0; i < 40; ++i) {
    const std::uint64_t b = pick(rng);
    const auto r = set.occupy(set.blockAt(b));
    ASSERT_EQ(r.has_value(), !model.excluded.contains(b));
    if (r) model.allocated.insert(b);
  }
  set.finishOccupying();

  for (int step = 0; step < 20000; ++step) {
    const std::uint64_t b = pick(rng);
    switch (rng() % 4) {
      case 0:
      case 1: {
        const auto got = set.allocateNext();
        const auto want = model.allocateNext();
        ASSERT_EQ(got.has_value(), want.has_value()) << "step " << step;
        if (want) {
          ASSERT_EQ(*got, set.blockAt(*want)) << "step " << step;
        }
        break;
      }
      case 2: {
        const auto r = set.release(set.blockAt(b));
        const bool ok = !model.excluded.contains(b) && model.allocated.erase(b) == 1;
        ASSERT_EQ(r.has_value(), ok) << "step " << step;
        break;
      }
      default: {
        const auto r = set.occupy(set.blockAt(b));
        ASSERT_EQ(r.has_value(), !model.excluded.contains(b)) << "step " << step;
        if (r) model.allocated.insert(b);
      }
    }
    ASSERT_EQ(set.allocatedCount(), model.allocated.size()) << "step " << step;
    ASSERT_EQ(set.freeCount(), model.count - model.excluded.size() - model.allocated.size());
    ASSERT_EQ(set.invariantViolation(), std::nullopt) << "step " << step;
  }
}

TEST(SubnetBlockSet, SlashEightIntoSlash28IsAMillionBlocksInAboutOneBitEach) {
  auto set = SubnetBlockSet::carve(P("10.0.0.0/8"), 28);
  ASSERT_TRUE(set);
  EXPECT_EQ(set->blockCount(), std::uint64_t{1} << 20);
  EXPECT_EQ(set->usableCount(), (std::uint64_t{1} << 20) - 2);
  set->finishOccupying();
  std::uint64_t n = 0;
  while (set->allocateNext())
    ++n;
  EXPECT_EQ(n, set->usableCount());
  EXPECT_EQ(set->invariantViolation(), std::nullopt);
}

TEST(SubnetBlockSet, ABlockHeldForOthersIsSkippedUntilTheHoldEnds) {
  SubnetBlockSet set = carved("10.240.0.0/26", 28, {.excludeAzureReserved = false});
  ASSERT_TRUE(set.holdForOthers(P("10.240.0.0/28")));
  ASSERT_TRUE(set.holdForOthers(P("10.240.0.32/28")));
  EXPECT_TRUE(set.isHeldForOthers(P("10.240.0.0/28")));
  EXPECT_EQ(set.heldForOthersCount(), 2u);
  EXPECT_EQ(set.freeCount(), 4u) << "a hold is not an allocation";
  EXPECT_EQ(set.freeUnheldCount(), 2u) << "but a held block cannot be handed out";
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.16/28"));
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.48/28"));
  const auto none = set.allocateNext();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kExhausted);
  EXPECT_NE(none.error().message.find("held by others"), std::string::npos) << none.error().message;
  EXPECT_INVARIANTS(set);
  // The hold ends: the block is handed out again.
  EXPECT_TRUE(set.releaseHoldForOthers(P("10.240.0.32/28")));
  EXPECT_FALSE(set.releaseHoldForOthers(P("10.240.0.32/28")));
  EXPECT_EQ(set.freeUnheldCount(), 1u) << "the held .0 is free, not handed out";
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.32/28"));
  EXPECT_EQ(set.freeUnheldCount(), 0u);
  // occupy() and release() ignore holds; a block not of the subnet cannot be held; an excluded one
  // needs no hold.
  EXPECT_TRUE(set.occupy(P("10.240.0.0/28")));
  EXPECT_TRUE(set.release(P("10.240.0.0/28")));
  EXPECT_FALSE(set.holdForOthers(P("10.241.0.0/28")));
  SubnetBlockSet azure = carved("10.240.0.0/24", 28);
  EXPECT_TRUE(azure.holdForOthers(P("10.240.0.0/28")));
  EXPECT_FALSE(azure.isHeldForOthers(P("10.240.0.0/28")));
  EXPECT_INVARIANTS(set);
  EXPECT_INVARIANTS(azure);
}

TEST(SubnetBlockSet, ANewlyReservedRangeIsNeverHandedOutAndItsAllocationsAreCountedApart) {
  // 10.240.0.0/26 in /28s with Azure's addresses: block 0 (.0-.3) and block 3 (.63) excluded.
  SubnetBlockSet set = carved("10.240.0.0/25", 28);
  ASSERT_EQ(set.usableCount(), 6u);
  ASSERT_EQ(set.allocateNext().value(), P("10.240.0.16/28"));
  ASSERT_EQ(set.allocateNext().value(), P("10.240.0.32/28"));
  ASSERT_TRUE(set.holdForOthers(P("10.240.0.64/28")));

  // Reserve .16-.31 (allocated), .48/28 (free) and .64/28 (held for others); a range of another
  // family and one outside the subnet change nothing.
  const std::vector<Prefix> reserved = {P("10.240.0.16/28"), P("10.240.0.48/28"),
                                        P("10.240.0.64/28"), P("fd00::/64"), P("10.9.0.0/16")};
  set.setReserved(reserved);
  EXPECT_INVARIANTS(set);
  EXPECT_EQ(set.reserved(),
            (std::vector<Prefix>{P("10.240.0.16/28"), P("10.240.0.48/28"), P("10.240.0.64/28")}));
  EXPECT_EQ(set.excludedCount(), 5u) << "0, 1, 3, 4 and 7";
  EXPECT_EQ(set.usableCount(), 3u);
  EXPECT_EQ(set.allocatedCount(), 1u) << ".32 only: .16 is a reserved allocation";
  EXPECT_EQ(set.reservedAllocatedCount(), 1u);
  EXPECT_TRUE(set.isReservedAllocated(P("10.240.0.16/28")));
  EXPECT_TRUE(set.isAllocated(P("10.240.0.16/28"))) << "its holder still has it";
  EXPECT_FALSE(set.isHeldForOthers(P("10.240.0.64/28"))) << "excluded: the hold is moot";
  EXPECT_TRUE(set.occupy(P("10.240.0.16/28")))
      << "occupying a reserved allocation again is a no-op";
  EXPECT_EQ(set.occupy(P("10.240.0.48/28")).error().code, ErrorCode::kConflict)
      << "a block newly made in a reserved range is refused";
  EXPECT_EQ(set.freeCount(), 2u);
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.80/28"));
  EXPECT_EQ(set.allocateNext().value(), P("10.240.0.96/28"));
  EXPECT_EQ(set.allocateNext().error().code, ErrorCode::kExhausted);

  // The holder gives the reserved block back: it stays excluded, not free.
  EXPECT_TRUE(set.release(P("10.240.0.16/28")));
  EXPECT_FALSE(set.isAllocated(P("10.240.0.16/28")));
  EXPECT_EQ(set.reservedAllocatedCount(), 0u);
  EXPECT_EQ(set.release(P("10.240.0.16/28")).error().code, ErrorCode::kConflict);
  EXPECT_EQ(set.freeCount(), 0u);
  EXPECT_INVARIANTS(set);
}

TEST(SubnetBlockSet, ARangeNoLongerReservedIsFreeUnlessABlockThereIsAllocated) {
  SubnetBlockSet set = carved("10.240.0.0/26", 28, {.excludeAzureReserved = false});
  ASSERT_EQ(set.allocateNext().value(), P("10.240.0.0/28"));
  const std::vector<Prefix> both = {P("10.240.0.0/27")};
  set.setReserved(both);  // .0 (allocated) and .16 (free)
  EXPECT_EQ(set.usableCount(), 2u);
  EXPECT_EQ(set.reservedAllocatedCount(), 1u);

  set.setReserved({});
  EXPECT_INVARIANTS(set);
  EXPECT_EQ(set.usableCount(), 4u);
  EXPECT_EQ(set.reservedAllocatedCount(), 0u);
  EXPECT_EQ(set.allocatedCount(), 1u) << "the block still held is an allocation again";
  EXPECT_TRUE(set.isAllocated(P("10.240.0.0/28")));
  EXPECT_FALSE(set.isAllocated(P("10.240.0.16/28")));
  EXPECT_EQ(set.freeCount(), 3u);
  // Azure-reserved blocks stay excluded whatever the reserved ranges.
  SubnetBlockSet azure = carved("10.240.0.0/26", 28, {.reserved = {P("10.240.0.0/26")}});
  EXPECT_EQ(azure.usableCount(), 0u);
  azure.setReserved({});
  EXPECT_EQ(azure.usableCount(), 2u);
  EXPECT_TRUE(azure.isExcluded(0));
  EXPECT_TRUE(azure.isExcluded(3));
  EXPECT_INVARIANTS(azure);
}

TEST(SubnetBlockSet, ReservedEditsKeepEveryInvariantAcrossRandomSteps) {
  std::mt19937 rng(7);
  SubnetBlockSet set = carved("10.0.0.0/22", 28);
  std::set<Prefix> held;  // what the holders have: released only by them
  for (int step = 0; step < 2000; ++step) {
    switch (rng() % 4) {
      case 0:
        if (auto block = set.allocateNext()) held.insert(*block);
        break;
      case 1:
        if (!held.empty()) {
          auto it = std::next(held.begin(), static_cast<long>(rng() % held.size()));
          ASSERT_TRUE(set.release(*it)) << it->toString();
          held.erase(it);
        }
        break;
      case 2: {
        std::vector<Prefix> reserved;
        for (auto n = rng() % 3; n > 0; --n) {
          const auto length = static_cast<int>(24 + rng() % 8);
          const auto address = static_cast<std::uint32_t>((10u << 24) + rng() % 1024);
          reserved.push_back(Prefix::masked(IPAddress::v4(address), length));
        }
        set.setReserved(reserved);
        break;
      }
      default: break;
    }
    ASSERT_EQ(set.invariantViolation(), std::nullopt) << "step " << step;
    for (const Prefix& block : held)
      ASSERT_TRUE(set.isAllocated(block)) << block.toString() << " at step " << step;
    ASSERT_EQ(set.allocatedCount() + set.reservedAllocatedCount(), held.size());
  }
}

}  // namespace
}  // namespace vnetipam::ipam
