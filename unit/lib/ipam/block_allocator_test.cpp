#include "lib/ipam/block_allocator.h"

#include <map>
#include <random>

#include <gtest/gtest.h>

#include "unit/lib/ipam/literals.h"

namespace vnetipam::ipam {
namespace {

using std::chrono::seconds;

using testing::A;
using testing::P;
const TimePoint T0 = TimePoint{} + std::chrono::hours(24 * 365 * 50);

Owner pod(int n, std::string ifname = "eth0") {
  return Owner{"c0ffee" + std::to_string(n), std::move(ifname)};
}

BlockAllocator block(std::string_view cidr, seconds cooldown = BlockAllocator::kDefaultCooldown) {
  auto b = BlockAllocator::create(P(cidr), cooldown);
  EXPECT_TRUE(b) << (b ? "" : b.error().message);
  return std::move(*b);
}

#define EXPECT_INVARIANTS(b) EXPECT_EQ((b).invariantViolation(), std::nullopt)

TEST(BlockAllocator, HandsOutEveryAddressOfTheBlockOnce) {
  BlockAllocator b = block("10.240.0.16/28");
  EXPECT_EQ(b.capacity(), 16u);
  std::set<IPAddress> seen;
  for (int i = 0; i < 16; ++i) {
    const auto a = b.allocate(pod(i), T0);
    ASSERT_TRUE(a) << i;
    EXPECT_TRUE(P("10.240.0.16/28").contains(*a));
    EXPECT_TRUE(seen.insert(*a).second) << a->toString() << " handed out twice";
    EXPECT_INVARIANTS(b);
  }
  EXPECT_EQ(b.allocate(pod(0), T0).value(), A("10.240.0.16")) << "a retried ADD, not a new one";
  const auto full = b.allocate(pod(99), T0);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kExhausted);
  EXPECT_EQ(full.error().message,
            "block 10.240.0.16/28 has no free address: 16 allocated, 0 cooling down");
}

TEST(BlockAllocator, SameOwnerGetsTheSameAddressAndInterfacesAreDistinctOwners) {
  BlockAllocator b = block("10.0.0.0/28");
  const IPAddress first = b.allocate(pod(1), T0).value();
  EXPECT_EQ(b.allocate(pod(1), T0 + seconds(5)).value(), first);
  const IPAddress second = b.allocate(pod(1, "net1"), T0).value();
  EXPECT_NE(second, first);
  EXPECT_EQ(b.allocatedCount(), 2u);
  EXPECT_EQ(b.addressOf(pod(1)), first);
  EXPECT_EQ(b.ownerOf(second), pod(1, "net1"));
  EXPECT_EQ(b.ownerOf(A("10.0.0.9")), std::nullopt);
}

// An allocation taken back before it was ever handed out (the other family of a dual-stack ADD
// failed) is free at once, and the next allocate picks the same address: no cooling, so a retried
// ADD does not cool one more address each time.
TEST(BlockAllocator, UnallocateFreesAtOnceWithoutCooling) {
  BlockAllocator b = block("10.0.0.0/30");
  const IPAddress first = b.allocate(pod(1), T0).value();
  const IPAddress taken = b.allocate(pod(2), T0).value();
  EXPECT_EQ(b.unallocate(taken, pod(1)).error().code, ErrorCode::kWrongOwner);
  ASSERT_TRUE(b.unallocate(taken, pod(2)));
  EXPECT_EQ(b.unallocate(taken, pod(2)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(b.coolingCount(T0), 0u);
  EXPECT_EQ(b.freeCount(T0), 3u);
  EXPECT_FALSE(b.addressOf(pod(2)));
  EXPECT_EQ(b.allocate(pod(3), T0).value(), taken) << "the scan resumes where it was";
  EXPECT_EQ(b.ownerOf(first), pod(1));
  EXPECT_INVARIANTS(b);
}

TEST(BlockAllocator, OnlyTheOwnerMayRelease) {
  BlockAllocator b = block("10.0.0.0/28");
  const IPAddress a = b.allocate(pod(1), T0).value();
  const auto wrong = b.release(a, pod(2), T0);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kWrongOwner);
  EXPECT_EQ(wrong.error().message,
            "cannot release 10.0.0.0 for container c0ffee2 interface eth0: it is held by "
            "container c0ffee1 interface eth0");
  EXPECT_EQ(b.release(a, pod(1, "net1"), T0).error().code, ErrorCode::kWrongOwner);
  EXPECT_EQ(b.ownerOf(a), pod(1)) << "a refused release changes nothing";
  ASSERT_TRUE(b.release(a, pod(1), T0));
  const auto twice = b.release(a, pod(1), T0);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(b.release(A("10.0.1.1"), pod(1), T0).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(b.releaseOwner(pod(1), T0).error().code, ErrorCode::kNotFound);
  EXPECT_INVARIANTS(b);
}

TEST(BlockAllocator, ReleasedAddressesCoolDownBeforeReuse) {
  BlockAllocator b = block("10.0.0.0/30", seconds(30));
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(b.allocate(pod(i), T0));
  const IPAddress freed = b.releaseOwner(pod(2), T0 + seconds(1)).value();
  EXPECT_EQ(freed, A("10.0.0.2"));
  EXPECT_EQ(b.coolingCount(T0 + seconds(1)), 1u);
  EXPECT_EQ(b.freeCount(T0 + seconds(1)), 0u);
  const auto early = b.allocate(pod(9), T0 + seconds(30));
  ASSERT_FALSE(early) << "29 s after the release the address is still cooling";
  EXPECT_EQ(early.error().message,
            "block 10.0.0.0/30 has no free address: 3 allocated, 1 cooling down");
  EXPECT_EQ(b.freeCount(T0 + seconds(31)), 1u);
  EXPECT_EQ(b.allocate(pod(9), T0 + seconds(31)).value(), freed) << "30 s later it is free";
  EXPECT_INVARIANTS(b);
}

TEST(BlockAllocator, PrefersAddressesThatWereNeverUsedOverRecentlyCooled) {
  BlockAllocator b = block("10.0.0.0/29", seconds(0));
  const IPAddress a = b.allocate(pod(1), T0).value();
  ASSERT_TRUE(b.release(a, pod(1), T0));
  EXPECT_NE(b.allocate(pod(2), T0).value(), a) << "the cursor moves on even with no cooldown";
}

TEST(BlockAllocator, RestoresAllocationsAndCoolingAfterARestart) {
  BlockAllocator b = block("10.0.0.0/29");
  ASSERT_TRUE(b.occupy(A("10.0.0.3"), pod(1)));
  ASSERT_TRUE(b.occupy(A("10.0.0.3"), pod(1))) << "idempotent for the same owner";
  EXPECT_EQ(b.occupy(A("10.0.0.3"), pod(2)).error().code, ErrorCode::kConflict);
  EXPECT_EQ(b.occupy(A("10.0.0.4"), pod(1)).error().code, ErrorCode::kConflict)
      << "one owner holds one address per block";
  ASSERT_TRUE(b.occupyCooling(A("10.0.0.5"), T0 - seconds(10)));
  EXPECT_EQ(b.occupyCooling(A("10.0.0.3"), T0).error().code, ErrorCode::kConflict);
  EXPECT_EQ(b.allocate(pod(1), T0).value(), A("10.0.0.3"));
  std::set<IPAddress> handed;
  for (int i = 2; i < 8; ++i)
    handed.insert(b.allocate(pod(i), T0).value());
  EXPECT_FALSE(handed.contains(A("10.0.0.5"))) << "still cooling 10 s after its release";
  EXPECT_FALSE(handed.contains(A("10.0.0.3")));
  EXPECT_EQ(b.allocate(pod(8), T0).error().code, ErrorCode::kExhausted);
  EXPECT_EQ(b.allocate(pod(8), T0 + seconds(20)).value(), A("10.0.0.5"));
  ASSERT_EQ(b.allocations().size(), 8u);
  EXPECT_EQ(b.allocations().front().address, A("10.0.0.0"));
  EXPECT_INVARIANTS(b);
}

TEST(BlockAllocator, EdgeBlockSizes) {
  BlockAllocator one = block("10.0.0.9/32");
  EXPECT_EQ(one.allocate(pod(1), T0).value(), A("10.0.0.9"));
  EXPECT_EQ(one.allocate(pod(2), T0).error().code, ErrorCode::kExhausted);

  BlockAllocator v6 = block("fd00::/128");
  EXPECT_EQ(v6.allocate(pod(1), T0).value(), A("fd00::"));

  BlockAllocator v6big = block("fd00::/112");
  EXPECT_EQ(v6big.capacity(), 65536u);

  const auto too_big = BlockAllocator::create(P("fd00::/80"));
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().message,
            "block fd00::/80 has 2^48 addresses, more than the 2^16 a node block may have: "
            "expected a prefix length of at least /112");
  EXPECT_FALSE(BlockAllocator::create(P("10.0.0.0/28"), seconds(-1)));
}

// A deliberately simple model: per-address state and an owner map, scanned linearly.
struct ReferenceBlock {
  enum State { kFree, kAllocated, kCooling };
  std::vector<State> state;
  std::vector<TimePoint> until;
  std::map<std::pair<std::string, std::string>, std::size_t> owners;
  std::size_t next = 0;
  seconds cooldown;

  std::optional<std::size_t> allocate(const Owner& o, TimePoint now) {
    if (auto it = owners.find({o.containerID, o.ifName}); it != owners.end()) return it->second;
    for (std::size_t i = 0; i < state.size(); ++i) {
      if (state[i] == kCooling && until[i] <= now) state[i] = kFree;
    }
    for (std::size_t k = 0; k < state.size(); ++k) {
      const std::size_t i = (next + k) % state.size();
      if (state[i] == kFree) {
        state[i] = kAllocated;
        owners[{o.containerID, o.ifName}] = i;
        next = i + 1;
        return i;
      }
    }
    return std::nullopt;
  }
  std::optional<std::size_t> release(const Owner& o, TimePoint now) {
    auto it = owners.find({o.containerID, o.ifName});
    if (it == owners.end()) return std::nullopt;
    const std::size_t i = it->second;
    owners.erase(it);
    state[i] = kCooling;
    until[i] = now + cooldown;
    return i;
  }
};

TEST(BlockAllocator, MatchesReferenceModelOnRandomSequences) {
  std::mt19937_64 rng(1234);
  for (const char* cidr : {"10.1.0.0/28", "10.1.0.0/26", "fd00::/120"}) {
    BlockAllocator b = block(cidr, seconds(30));
    ReferenceBlock model{.state = std::vector(b.capacity(), ReferenceBlock::kFree),
                         .until = std::vector(b.capacity(), TimePoint{}),
                         .cooldown = seconds(30)};
    const auto addr = [&](std::size_t i) {
      return IPAddress::fromBits(b.block().family(), b.block().address().bits() + i);
    };
    TimePoint now = T0;
    const int owners = static_cast<int>(b.capacity()) * 2;
    for (int step = 0; step < 20000; ++step) {
      now += std::chrono::milliseconds(rng() % 2000);
      const Owner o = pod(static_cast<int>(rng() % static_cast<unsigned>(owners)),
                          rng() % 4 == 0 ? "net1" : "eth0");
      switch (rng() % 5) {
        case 0:
        case 1:
        case 2: {
          const auto got = b.allocate(o, now);
          const auto want = model.allocate(o, now);
          ASSERT_EQ(got.has_value(), want.has_value()) << cidr << " step " << step;
          if (want) {
            ASSERT_EQ(*got, addr(*want)) << cidr << " step " << step;
          }
          break;
        }
        case 3: {
          const auto got = b.releaseOwner(o, now);
          const auto want = model.release(o, now);
          ASSERT_EQ(got.has_value(), want.has_value()) << cidr << " step " << step;
          if (want) {
            ASSERT_EQ(*got, addr(*want));
          }
          break;
        }
        default: {
          // Release by address: must succeed only for the owner.
          const std::size_t i = rng() % b.capacity();
          const auto got = b.release(addr(i), o, now);
          const auto it = model.owners.find({o.containerID, o.ifName});
          const bool mine = it != model.owners.end() && it->second == i;
          ASSERT_EQ(got.has_value(), mine) << cidr << " step " << step;
          if (mine) model.release(o, now);
        }
      }
      ASSERT_EQ(b.allocatedCount(), model.owners.size());
      std::uint64_t cooling = 0;
      for (std::size_t i = 0; i < model.state.size(); ++i) {
        cooling += model.state[i] == ReferenceBlock::kCooling && model.until[i] > now ? 1u : 0u;
      }
      ASSERT_EQ(b.coolingCount(now), cooling) << cidr << " step " << step;
      ASSERT_EQ(b.invariantViolation(), std::nullopt) << cidr << " step " << step;
    }
  }
}

}  // namespace
}  // namespace vnetipam::ipam
