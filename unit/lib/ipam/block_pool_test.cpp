#include "lib/ipam/block_pool.h"

#include <set>

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::ipam {
namespace {

using testing::P;

#define EXPECT_INVARIANTS(pool) EXPECT_EQ((pool).invariantViolation(), std::nullopt)

BlockPool carved(std::string_view range, int len, CarveOptions options = {}) {
  auto pool = BlockPool::carve(P(range), len, options);
  EXPECT_TRUE(pool.has_value()) << (pool ? "" : pool.error().message);
  return std::move(*pool);
}

TEST(BlockPool, ARangeAddedToAFullPoolIsHandedOutAndCounted) {
  BlockPool pool = carved("10.0.0.0/26", 28);  // Azure keeps .0-.3 and .63: 2 usable
  pool.finishOccupying();
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.16/28"));
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.32/28"));
  const auto full = pool.allocateNext();
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kExhausted);

  ASSERT_TRUE(pool.addRange(P("10.0.8.0/26")));
  EXPECT_EQ(pool.ranges().size(), 2u);
  EXPECT_EQ(pool.usableCount(), 4u) << "Azure's addresses are kept in each range";
  EXPECT_EQ(pool.allocatedCount(), 2u);
  EXPECT_EQ(pool.freeCount(), 2u);
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.8.16/28")) << "ready at once: not occupying";
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.8.32/28"));
  const auto both = pool.allocateNext();
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().code, ErrorCode::kExhausted);
  EXPECT_NE(both.error().message.find("10.0.0.0/26, 10.0.8.0/26"), std::string::npos)
      << both.error().message;

  // A block released in the first range is found after the second is full.
  ASSERT_TRUE(pool.release(P("10.0.0.16/28")));
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.16/28"));
  EXPECT_INVARIANTS(pool);
}

TEST(BlockPool, BlocksAreFoundInTheRangeThatHoldsThem) {
  BlockPool pool = carved("10.0.0.0/24", 28, {.excludeAzureReserved = false});
  ASSERT_TRUE(pool.addRange(P("10.1.0.0/25")));
  ASSERT_TRUE(pool.occupy(P("10.1.0.32/28")));
  ASSERT_TRUE(pool.occupy(P("10.0.0.32/28")));
  EXPECT_TRUE(pool.isAllocated(P("10.1.0.32/28")));
  EXPECT_FALSE(pool.isAllocated(P("10.1.0.48/28")));
  EXPECT_TRUE(pool.contains(P("10.1.0.48/28")));
  EXPECT_FALSE(pool.contains(P("10.2.0.0/28")));
  EXPECT_TRUE(pool.overlaps(P("10.1.0.0/16")));
  EXPECT_TRUE(pool.anyAllocatedIn(P("10.1.0.0/16")));
  EXPECT_TRUE(pool.anyAllocatedIn(P("10.1.0.32/27")));
  EXPECT_TRUE(pool.anyAllocatedIn(P("10.1.0.40/29"))) << "inside an allocated block";
  EXPECT_FALSE(pool.anyAllocatedIn(P("10.1.0.64/26")));
  EXPECT_FALSE(pool.anyAllocatedIn(P("10.0.0.64/26")));
  EXPECT_FALSE(pool.anyAllocatedIn(P("10.2.0.0/16")));

  const auto outside = pool.occupy(P("10.2.0.0/28"));
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, ErrorCode::kOutOfRange);
  EXPECT_NE(outside.error().message.find("10.0.0.0/24, 10.1.0.0/25"), std::string::npos)
      << outside.error().message;
  EXPECT_FALSE(pool.release(P("10.2.0.0/28")));
  EXPECT_FALSE(pool.holdForOthers(P("10.2.0.0/28")));

  // Not before every existing block is occupied, in every range.
  const auto early = pool.allocateNext();
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, ErrorCode::kNotReady);
  pool.finishOccupying();
  std::set<Prefix> handed;
  while (auto block = pool.allocateNext())
    handed.insert(*block);
  EXPECT_EQ(handed.size(), 16u + 8u - 2u);
  EXPECT_FALSE(handed.contains(P("10.1.0.32/28")));
  EXPECT_EQ(pool.freeCount(), 0u);
  EXPECT_INVARIANTS(pool);
}

TEST(BlockPool, ARangeThatCannotJoinIsRefusedWithItsReason) {
  BlockPool pool = carved("10.0.0.0/24", 28);
  const auto overlap = pool.addRange(P("10.0.0.128/25"));
  ASSERT_FALSE(overlap);
  EXPECT_EQ(overlap.error().code, ErrorCode::kConflict);
  EXPECT_NE(overlap.error().message.find("10.0.0.0/24"), std::string::npos);
  const auto family = pool.addRange(P("fd00::/64"));
  ASSERT_FALSE(family);
  EXPECT_EQ(family.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(pool.addRange(P("10.9.0.0/29"))) << "shorter than a /28 block";
  EXPECT_EQ(pool.ranges().size(), 1u);
  EXPECT_INVARIANTS(pool);
}

TEST(BlockPool, ReservedRangesApplyToEveryRangeIncludingOnesAddedLater) {
  BlockPool pool = carved("10.0.0.0/26", 28, {.excludeAzureReserved = false});
  pool.finishOccupying();
  ASSERT_TRUE(pool.occupy(P("10.0.0.16/28")));
  const std::vector<Prefix> reserved{P("10.0.8.0/28"), P("10.0.0.16/28"), P("10.7.0.0/24")};
  pool.setReserved(reserved);
  EXPECT_TRUE(pool.isReservedAllocated(P("10.0.0.16/28")));
  EXPECT_TRUE(pool.anyAllocatedIn(P("10.0.0.0/26"))) << "a reserved allocation counts";
  EXPECT_EQ(pool.reserved(), std::vector<Prefix>{P("10.0.0.16/28")}) << "only those in force";

  ASSERT_TRUE(pool.addRange(P("10.0.8.0/27")));
  EXPECT_EQ(pool.reserved(), (std::vector<Prefix>{P("10.0.8.0/28"), P("10.0.0.16/28")}))
      << "in the order given";
  EXPECT_EQ(pool.usableCount(), 3u + 1u);
  EXPECT_EQ(pool.reservedAllocatedCount(), 1u);
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.0/28"));
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.32/28"));
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.48/28"));
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.8.16/28")) << "10.0.8.0/28 is reserved";
  EXPECT_FALSE(pool.allocateNext());

  pool.setReserved({});
  EXPECT_TRUE(pool.reserved().empty());
  EXPECT_TRUE(pool.isAllocated(P("10.0.0.16/28"))) << "a reserved allocation stays allocated";
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.8.0/28"));
  EXPECT_INVARIANTS(pool);
}

TEST(BlockPool, ARetiredRangeHandsOutNothingAndItsBlocksAreReservedAllocations) {
  BlockPool pool = carved("10.0.0.0/27", 28, {.excludeAzureReserved = false});
  ASSERT_TRUE(pool.addRange(P("10.0.4.0/27")));
  pool.finishOccupying();
  ASSERT_TRUE(pool.occupy(P("10.0.4.16/28")));
  pool.setReserved(std::vector{P("10.0.0.0/28")});
  EXPECT_FALSE(pool.setRetired(std::vector{P("10.9.0.0/24")})) << "not a range of the pool";
  ASSERT_TRUE(pool.setRetired(std::vector{P("10.0.4.0/27")}));
  EXPECT_FALSE(pool.setRetired(std::vector{P("10.0.4.0/27")})) << "no change";
  EXPECT_EQ(pool.activeRanges(), std::vector{P("10.0.0.0/27")});
  EXPECT_EQ(pool.ranges().size(), 2u);
  EXPECT_EQ(pool.reserved(), std::vector{P("10.0.0.0/28")}) << "a retired range is no reservation";
  EXPECT_TRUE(pool.isReservedAllocated(P("10.0.4.16/28")));
  EXPECT_EQ(pool.usableCount(), 1u);
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.0.16/28"));
  EXPECT_FALSE(pool.allocateNext()) << "nothing from the retired range";
  ASSERT_TRUE(pool.release(P("10.0.4.16/28")));

  // Back on the subnet: active again, free.
  ASSERT_TRUE(pool.setRetired({}));
  EXPECT_EQ(pool.usableCount(), 3u);
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.4.0/28"));
  EXPECT_INVARIANTS(pool);
}

TEST(BlockPool, HoldsForOthersAreKeptPerRange) {
  BlockPool pool = carved("10.0.0.0/27", 28, {.excludeAzureReserved = false});
  ASSERT_TRUE(pool.addRange(P("10.0.4.0/28")));
  pool.finishOccupying();
  ASSERT_TRUE(pool.holdForOthers(P("10.0.4.0/28")));
  EXPECT_TRUE(pool.isHeldForOthers(P("10.0.4.0/28")));
  EXPECT_EQ(pool.heldForOthersCount(), 1u);
  EXPECT_EQ(pool.freeUnheldCount(), 2u);
  EXPECT_TRUE(pool.allocateNext());
  EXPECT_TRUE(pool.allocateNext());
  const auto held = pool.allocateNext();
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error().code, ErrorCode::kExhausted);
  EXPECT_TRUE(pool.releaseHoldForOthers(P("10.0.4.0/28")));
  EXPECT_EQ(pool.allocateNext().value(), P("10.0.4.0/28"));
  EXPECT_INVARIANTS(pool);
}

}  // namespace
}  // namespace vnetipam::ipam
