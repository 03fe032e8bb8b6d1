// A PodSubnet's pool: one or more address ranges (an Azure subnet may have several address
// prefixes, and may gain more while the pool is in use), each carved into equal blocks by a
// SubnetBlockSet. The pool answers as one set: counts are sums, a block belongs to the range that
// contains it, and allocateNext() hands out the blocks of one range until it is full, then those
// of the next (wrapping around), so a range added later is used once the earlier ones are full.
//
// The rules of SubnetBlockSet hold range by range: the restart phase (occupy, then
// finishOccupying), reserved ranges applied live, holds for others. A range added after
// finishOccupying() starts empty and ready: no block can exist in addresses the pool did not have.
// A range may be retired (an Azure subnet's prefix removed): it is reserved whole, so no block is
// handed out there and a block allocated there is a reserved allocation, released when empty.
//
// Not thread-safe; callers serialise access.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lib/ipam/error.h"
#include "lib/ipam/ip.h"
#include "lib/ipam/subnet_blocks.h"

namespace vnetipam::ipam {

class BlockPool {
 public:
  // A pool of one range; fails as SubnetBlockSet::carve does.
  static Result<BlockPool> carve(Prefix range, int blockLength, const CarveOptions& options = {});

  // Adds a range, carved with the pool's options and its reserved ranges in force. Fails when the
  // range is of another family, overlaps a range of the pool, or cannot be carved into the pool's
  // blocks (shorter than a block, too many blocks).
  Result<void> addRange(Prefix range);

  // The ranges, in the order they joined the pool, retired ones included.
  std::span<const Prefix> ranges() const { return ranges_; }
  // The ranges not retired, in the same order.
  std::vector<Prefix> activeRanges() const;
  // Retires exactly the ranges of `retired` that are ranges of the pool (others are ignored); a
  // range retired before and not in `retired` is active again. Returns true when that changed.
  bool setRetired(std::span<const Prefix> retired);
  const std::vector<Prefix>& retired() const { return retired_; }
  int blockLength() const { return block_length_; }
  Family family() const { return ranges_.front().family(); }
  // Whether `prefix` lies inside one range / overlaps any range.
  bool contains(const Prefix& prefix) const;
  bool overlaps(const Prefix& prefix) const;

  // The counts of SubnetBlockSet, summed over the ranges.
  std::uint64_t blockCount() const;
  std::uint64_t excludedCount() const;
  std::uint64_t usableCount() const;
  std::uint64_t allocatedCount() const;
  std::uint64_t freeCount() const;
  std::uint64_t reservedAllocatedCount() const;
  std::uint64_t heldForOthersCount() const;
  std::uint64_t freeUnheldCount() const;

  // As SubnetBlockSet's, on the range that contains the block; a block in no range is not
  // allocated (isAllocated) or refused (occupy, release, holdForOthers) with kOutOfRange.
  bool isAllocated(const Prefix& block) const;
  bool isReservedAllocated(const Prefix& block) const;
  // Whether an allocated block overlaps `range` (SubnetBlockSet::anyAllocatedIn), in any range.
  bool anyAllocatedIn(const Prefix& range) const;
  bool isHeldForOthers(const Prefix& block) const;
  Result<void> occupy(const Prefix& block);
  Result<void> release(const Prefix& block);
  Result<void> holdForOthers(const Prefix& block);
  bool releaseHoldForOthers(const Prefix& block);

  void finishOccupying();
  bool occupying() const { return occupying_; }
  // kNotReady before finishOccupying(); kExhausted when no range has a free block not held.
  Result<Prefix> allocateNext();

  // Every range takes the reserved ranges that overlap it (SubnetBlockSet::setReserved); a range
  // added later takes them too.
  void setReserved(std::span<const Prefix> reserved);
  // The reserved ranges in force (of those given to setReserved, the ones overlapping some
  // range), each once, in the order given.
  const std::vector<Prefix>& reserved() const { return reserved_in_force_; }

  // The first broken invariant of a range, or nullopt. For tests.
  std::optional<std::string> invariantViolation() const;

 private:
  BlockPool(SubnetBlockSet first, CarveOptions options);
  const SubnetBlockSet* setOf(const Prefix& block) const;
  SubnetBlockSet* setOf(const Prefix& block);
  Result<SubnetBlockSet*> checkedSetOf(const Prefix& block);
  // Puts options_.reserved, and each retired range on itself, on every set.
  void applyReserved();

  int block_length_;
  CarveOptions options_;              // as carved; options_.reserved is the last setReserved()
  std::vector<Prefix> ranges_;        // ranges_[i] is sets_[i].subnet()
  std::vector<SubnetBlockSet> sets_;  // few (an Azure subnet has a handful of prefixes at most)
  std::vector<Prefix> reserved_in_force_;
  std::vector<Prefix> retired_;  // ranges of the pool, in the order of ranges_
  std::size_t current_ = 0;      // the range allocateNext() tries first
  bool occupying_ = true;
};

}  // namespace vnetipam::ipam
