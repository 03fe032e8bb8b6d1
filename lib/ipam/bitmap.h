// A fixed-size bitmap that finds a clear bit in O(log64 n) word operations.
//
// Level 0 holds one bit per element (1 = taken). Each level above holds one bit per word of the
// level below, set when that word is full. Finding the next clear bit descends from the first
// non-full word, so a pool that is 99% full costs the same as an empty one. Memory is n bits plus
// about n/63 bits of summary: a 1,048,576-element bitmap takes 131 KiB.
//
// Not thread-safe; callers serialise access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vnetipam::ipam {

class Bitmap {
 public:
  explicit Bitmap(std::uint64_t size = 0);

  std::uint64_t size() const { return size_; }
  std::uint64_t countSet() const { return set_; }

  // Precondition for all three: index < size().
  bool test(std::uint64_t index) const;
  // Returns true if the bit was clear (it is set now).
  bool set(std::uint64_t index);
  // Returns true if the bit was set (it is clear now).
  bool clear(std::uint64_t index);

  // The first clear bit at or after `start`, wrapping around to 0; nullopt when every bit is set.
  // `start` may be >= size(), which searches from 0.
  std::optional<std::uint64_t> findClearFrom(std::uint64_t start) const;

  // Describes the first broken internal invariant (summary levels out of step with the words
  // below, padding bits clear, count wrong), or nullopt when all hold. For tests.
  std::optional<std::string> invariantViolation() const;

 private:
  std::optional<std::uint64_t> findClearAtOrAfter(std::size_t level, std::uint64_t pos) const;

  std::uint64_t size_;
  std::uint64_t set_ = 0;
  // levels_[0] are the element bits; levels_.back() is a single word. Bits past the end of a level
  // are kept set, so they read as "taken" and are never found.
  std::vector<std::vector<std::uint64_t>> levels_;
};

}  // namespace vnetipam::ipam
