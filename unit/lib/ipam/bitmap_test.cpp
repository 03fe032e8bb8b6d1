#include "lib/ipam/bitmap.h"

#include <random>
#include <set>

#include <gtest/gtest.h>

namespace vnetipam::ipam {
namespace {

// The reference answer for findClearFrom: a linear scan of a plain set.
std::optional<std::uint64_t> referenceFind(const std::set<std::uint64_t>& taken, std::uint64_t size,
                                           std::uint64_t start) {
  if (start >= size) start = 0;
  for (std::uint64_t i = 0; i < size; ++i) {
    const std::uint64_t candidate = (start + i) % size;
    if (!taken.contains(candidate)) return candidate;
  }
  return std::nullopt;
}

TEST(Bitmap, EmptyBitmapHasNothingToFind) {
  Bitmap b(0);
  EXPECT_EQ(b.findClearFrom(0), std::nullopt);
  EXPECT_EQ(b.invariantViolation(), std::nullopt);
}

TEST(Bitmap, SetClearAndFindInOneWord) {
  Bitmap b(10);
  EXPECT_EQ(b.findClearFrom(0), 0u);
  EXPECT_TRUE(b.set(0));
  EXPECT_FALSE(b.set(0)) << "setting twice reports it was already set";
  EXPECT_EQ(b.findClearFrom(0), 1u);
  EXPECT_EQ(b.findClearFrom(9), 9u);
  for (std::uint64_t i = 1; i < 10; ++i)
    b.set(i);
  EXPECT_EQ(b.countSet(), 10u);
  EXPECT_EQ(b.findClearFrom(0), std::nullopt) << "padding bits past the end are never found";
  EXPECT_TRUE(b.clear(3));
  EXPECT_FALSE(b.clear(3));
  EXPECT_EQ(b.findClearFrom(4), 3u) << "wraps around to the start";
  EXPECT_EQ(b.invariantViolation(), std::nullopt);
}

TEST(Bitmap, FindsTheLastFreeBitOfAMillion) {
  const std::uint64_t n = std::uint64_t{1} << 20;
  Bitmap b(n);
  for (std::uint64_t i = 0; i < n; ++i)
    b.set(i);
  EXPECT_EQ(b.findClearFrom(12345), std::nullopt);
  b.clear(n - 1);
  EXPECT_EQ(b.findClearFrom(0), n - 1);
  b.clear(7);
  EXPECT_EQ(b.findClearFrom(8), n - 1);
  EXPECT_EQ(b.findClearFrom(n - 1), n - 1);
  b.set(n - 1);
  EXPECT_EQ(b.findClearFrom(8), 7u) << "wraps past the end back to 7";
  EXPECT_EQ(b.invariantViolation(), std::nullopt);
}

// Random set/clear/find against the reference, at sizes around word and level boundaries.
TEST(Bitmap, MatchesReferenceOnRandomSequences) {
  std::mt19937_64 rng(42);
  for (std::uint64_t size : {1u, 63u, 64u, 65u, 4095u, 4096u, 4097u, 262145u}) {
    Bitmap b(size);
    std::set<std::uint64_t> taken;
    std::uniform_int_distribution<std::uint64_t> pick(0, size - 1);
    for (int step = 0; step < 3000; ++step) {
      const std::uint64_t i = pick(rng);
      switch (rng() % 3) {
        case 0: ASSERT_EQ(b.set(i), taken.insert(i).second) << "size " << size; break;
        case 1: ASSERT_EQ(b.clear(i), taken.erase(i) == 1) << "size " << size; break;
        default: ASSERT_EQ(b.findClearFrom(i), referenceFind(taken, size, i)) << "size " << size;
      }
      ASSERT_EQ(b.countSet(), taken.size());
      if (size <= 4097 || step % 500 == 0) {
        ASSERT_EQ(b.invariantViolation(), std::nullopt) << "size " << size << " step " << step;
      }
    }
    // Fill it completely, then free one bit at a time.
    for (std::uint64_t i = 0; i < size; ++i)
      b.set(i);
    ASSERT_EQ(b.findClearFrom(0), std::nullopt);
    const std::uint64_t hole = pick(rng);
    b.clear(hole);
    ASSERT_EQ(b.findClearFrom(pick(rng)), hole);
    ASSERT_EQ(b.invariantViolation(), std::nullopt);
  }
}

}  // namespace
}  // namespace vnetipam::ipam
