// Carving a subnet into equal blocks and handing them out: the controller's pure allocator.
//
// A SubnetBlockSet is one bit per block (see Bitmap) plus a short list of excluded ranges. It
// knows nothing of nodes, the API server or the cloud: the controller records who owns a block in
// the IPBlock object and uses this set only to decide which block is free.
//
// Restart safety: a new set refuses allocateNext() until finishOccupying() is called, so the
// caller cannot forget to occupy every block that already exists before handing out a new one.
// occupy() stays allowed afterwards (a block created by another writer, seen on a watch).
//
// The reserved ranges may change after the carve (setReserved): a range newly reserved is never
// handed out again, and a range no longer reserved is free again unless a block there is
// allocated. A block that was allocated when its range became reserved stays allocated, as a
// reserved allocation, until it is released.
//
// Not thread-safe; callers serialise access.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lib/ipam/bitmap.h"
#include "lib/ipam/error.h"
#include "lib/ipam/ip.h"

namespace vnetipam::ipam {

struct CarveOptions {
  // Azure keeps the first four addresses and the last address of every subnet (network, gateway,
  // two DNS, broadcast). A block touching any of them is never handed out.
  bool excludeAzureReserved = true;
  // Further ranges never handed out: every block overlapping one is excluded. Each must be of the
  // subnet's family and overlap the subnet.
  std::vector<Prefix> reserved;
};

class SubnetBlockSet {
 public:
  // 2^26 blocks (8 MiB of bitmap) is far beyond any real subnet (a /8 in /28s is 2^20).
  static constexpr int kMaxBlockBits = 26;

  // Fails when blockLength is shorter than the subnet or longer than the family allows, when the
  // subnet would have more than 2^kMaxBlockBits blocks, or when a reserved range is invalid.
  static Result<SubnetBlockSet> carve(Prefix subnet, int blockLength,
                                      const CarveOptions& options = {});

  Prefix subnet() const { return subnet_; }
  int blockLength() const { return block_length_; }

  // Every block of the subnet, usable or not.
  std::uint64_t blockCount() const { return used_.size(); }
  // Blocks that are never handed out (Azure-reserved or overlapping a reserved range).
  std::uint64_t excludedCount() const { return excluded_count_; }
  std::uint64_t usableCount() const { return blockCount() - excludedCount(); }
  // Allocated blocks that are usable (a reserved allocation is counted apart, below).
  std::uint64_t allocatedCount() const { return used_.countSet() - excluded_count_; }
  std::uint64_t freeCount() const { return usableCount() - allocatedCount(); }

  // The block at `index` (0 is the subnet's first). Precondition: index < blockCount().
  Prefix blockAt(std::uint64_t index) const;
  // The index of `block`, or an error naming the block and the subnet when it is not one of the
  // subnet's blocks (wrong family, outside, wrong length).
  Result<std::uint64_t> indexOf(const Prefix& block) const;

  bool isExcluded(std::uint64_t index) const;
  // Allocated, usable or a reserved allocation.
  bool isAllocated(const Prefix& block) const;
  // Whether an allocated block (a reserved allocation included) overlaps `range`, of any length:
  // a block's worth of work per block of the range inside the subnet.
  bool anyAllocatedIn(const Prefix& range) const;

  // Marks an existing block allocated. Idempotent. An excluded block is refused with kConflict
  // (a reserved allocation is already allocated: accepted as is): it is never handed out anyway,
  // but the caller holds an object that should not exist.
  Result<void> occupy(const Prefix& block);
  // Ends the restart phase: allocateNext() works from now on.
  void finishOccupying() { occupying_ = false; }
  bool occupying() const { return occupying_; }

  // The next free block after the last one handed out, wrapping around, so a just-released block
  // is the last to be reused. kNotReady before finishOccupying(); kExhausted when none is free.
  Result<Prefix> allocateNext();

  // kNotFound when the block is not allocated (a double release), kConflict when it is excluded
  // and not a reserved allocation. A reserved allocation released stays excluded.
  Result<void> release(const Prefix& block);

  // Replaces the reserved ranges (CarveOptions::reserved) of the set. Every block overlapping one
  // of `reserved` is excluded from now on; a block that was excluded only by a range no longer
  // there is usable again (free, or allocated if it was a reserved allocation). A block allocated
  // when it becomes excluded is a reserved allocation: still allocated (isAllocated, release), not
  // counted by allocatedCount() but by reservedAllocatedCount(), never handed out again. A hold
  // for others on a block that becomes excluded ends. Ranges of another family or outside the
  // subnet are ignored: a caller over several subnets passes every range to each.
  void setReserved(std::span<const Prefix> reserved);
  // The reserved ranges in force that overlap the subnet.
  const std::vector<Prefix>& reserved() const { return reserved_; }
  // Allocated blocks inside reserved ranges, which their holders are to give back.
  std::uint64_t reservedAllocatedCount() const { return reserved_allocated_.size(); }
  bool isReservedAllocated(const Prefix& block) const;

  // Blocks in which something else (another Azure resource) holds an address, as the cloud said
  // when it refused the block's prefix: allocateNext() skips them while they are held. A hold is
  // not an allocation: it does not change the counts above (the addresses others hold are counted
  // apart, from the cloud's usage figures), occupy() and release() ignore it, and a block that is
  // allocated may be held too (it was carved before the hold). holdForOthers() fails as indexOf()
  // does; an excluded block needs no hold and is accepted as is.
  Result<void> holdForOthers(const Prefix& block);
  // Returns true when the block was held.
  bool releaseHoldForOthers(const Prefix& block);
  bool isHeldForOthers(const Prefix& block) const;
  std::uint64_t heldForOthersCount() const { return held_.size(); }
  // The free blocks allocateNext() may hand out: freeCount() less the free ones held for others.
  std::uint64_t freeUnheldCount() const;

  // The first broken invariant, or nullopt. For tests, after every step.
  std::optional<std::string> invariantViolation() const;

 private:
  using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

  SubnetBlockSet(Prefix subnet, int block_length);
  Result<std::uint64_t> checkedIndex(const Prefix& block, std::string_view action) const;
  // The inclusive range of block indexes `range` covers; precondition: it overlaps the subnet.
  std::pair<std::uint64_t, std::uint64_t> indexesOf(const Prefix& range) const;
  // Sorted, disjoint, merged ranges: the Azure-reserved ones and those of `reserved`.
  Ranges excludedRanges(std::span<const Prefix> reserved) const;
  static bool inRanges(const Ranges& ranges, std::uint64_t index);

  Prefix subnet_;
  int block_length_;
  Bitmap used_;  // allocated or excluded
  // Sorted, disjoint, inclusive ranges of excluded block indexes; few, so searched by bisection.
  Ranges excluded_;
  Ranges azure_excluded_;         // CarveOptions::excludeAzureReserved: fixed at the carve
  std::vector<Prefix> reserved_;  // the reserved ranges in force that overlap the subnet
  std::uint64_t excluded_count_ = 0;
  std::set<std::uint64_t> reserved_allocated_;  // allocated and excluded, by index; few
  std::uint64_t next_ = 0;
  bool occupying_ = true;
  std::set<std::uint64_t> held_;  // holdForOthers(); few, by index
};

}  // namespace vnetipam::ipam
