#include "lib/ipam/subnet_blocks.h"

#include <algorithm>

#include <fmt/format.h>

namespace vnetipam::ipam {

SubnetBlockSet::SubnetBlockSet(Prefix subnet, int block_length)
    : subnet_(subnet),
      block_length_(block_length),
      used_(std::uint64_t{1} << (block_length - subnet.length())) {}

Result<SubnetBlockSet> SubnetBlockSet::carve(Prefix subnet, int blockLength,
                                             const CarveOptions& options) {
  const int width = bitLength(subnet.family());
  if (blockLength < subnet.length() || blockLength > width) {
    return fail(ErrorCode::kOutOfRange,
                fmt::format("block prefix length /{} does not fit subnet {}: expected {}-{}",
                            blockLength, subnet.toString(), subnet.length(), width));
  }
  if (blockLength - subnet.length() > kMaxBlockBits) {
    return fail(ErrorCode::kOutOfRange,
                fmt::format("subnet {} in /{} blocks would be 2^{} blocks, more than the 2^{} "
                            "supported: use a block prefix length of at most /{}",
                            subnet.toString(), blockLength, blockLength - subnet.length(),
                            kMaxBlockBits, subnet.length() + kMaxBlockBits));
  }
  SubnetBlockSet set(subnet, blockLength);
  const int shift = width - blockLength;
  const auto indexOfAddress = [&](IPAddress a) {
    return static_cast<std::uint64_t>((a.bits() - subnet.address().bits()) >> shift);
  };
  if (options.excludeAzureReserved) {
    // The first four addresses lie in block 0 unless blocks are smaller than four addresses.
    const U128 first = subnet.address().bits();
    const U128 reserved_head = std::min<U128>(4, subnet.size());
    set.azure_excluded_.emplace_back(
        indexOfAddress(subnet.address()),
        indexOfAddress(IPAddress::fromBits(subnet.family(), first + reserved_head - 1)));
    const std::uint64_t last = indexOfAddress(subnet.last());
    set.azure_excluded_.emplace_back(last, last);
  }
  for (const Prefix& r : options.reserved) {
    if (r.family() != subnet.family() || !r.overlaps(subnet)) {
      return fail(ErrorCode::kOutOfRange,
                  fmt::format("reserved range {} does not overlap subnet {}", r.toString(),
                              subnet.toString()));
    }
  }
  set.excluded_ = set.excludedRanges(options.reserved);
  for (const Prefix& r : options.reserved) {
    if (std::ranges::find(set.reserved_, r) == set.reserved_.end()) set.reserved_.push_back(r);
  }
  for (const auto& [lo, hi] : set.excluded_) {
    for (std::uint64_t i = lo; i <= hi; ++i)
      set.used_.set(i);
    set.excluded_count_ += hi - lo + 1;
  }
  return set;
}

std::pair<std::uint64_t, std::uint64_t> SubnetBlockSet::indexesOf(const Prefix& range) const {
  const int shift = bitLength(subnet_.family()) - block_length_;
  const Prefix inside = subnet_.contains(range) ? range : subnet_;
  const auto indexOfAddress = [&](IPAddress a) {
    return static_cast<std::uint64_t>((a.bits() - subnet_.address().bits()) >> shift);
  };
  return {indexOfAddress(inside.first()), indexOfAddress(inside.last())};
}

SubnetBlockSet::Ranges SubnetBlockSet::excludedRanges(std::span<const Prefix> reserved) const {
  Ranges ranges = azure_excluded_;
  for (const Prefix& r : reserved) {
    if (r.family() == subnet_.family() && r.overlaps(subnet_)) ranges.push_back(indexesOf(r));
  }
  // Merge into sorted disjoint ranges.
  std::sort(ranges.begin(), ranges.end());
  Ranges merged;
  for (const auto& [lo, hi] : ranges) {
    if (!merged.empty() && lo <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, hi);
    } else {
      merged.emplace_back(lo, hi);
    }
  }
  return merged;
}

bool SubnetBlockSet::inRanges(const Ranges& ranges, std::uint64_t index) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), std::pair{index, ~std::uint64_t{0}});
  return it != ranges.begin() && std::prev(it)->second >= index;
}

void SubnetBlockSet::setReserved(std::span<const Prefix> reserved) {
  std::vector<Prefix> kept;
  for (const Prefix& r : reserved) {
    if (r.family() == subnet_.family() && r.overlaps(subnet_) &&
        std::ranges::find(kept, r) == kept.end()) {
      kept.push_back(r);
    }
  }
  if (kept == reserved_) return;
  Ranges next = excludedRanges(kept);
  // Blocks no longer excluded: a reserved allocation is an allocation again, the rest is free.
  for (const auto& [lo, hi] : excluded_) {
    for (std::uint64_t i = lo; i <= hi; ++i) {
      if (inRanges(next, i)) continue;
      if (reserved_allocated_.erase(i) == 0) used_.clear(i);
    }
  }
  // Blocks newly excluded: an allocated one becomes a reserved allocation.
  for (const auto& [lo, hi] : next) {
    for (std::uint64_t i = lo; i <= hi; ++i) {
      if (inRanges(excluded_, i)) continue;
      if (!used_.set(i)) reserved_allocated_.insert(i);
      held_.erase(i);
    }
  }
  excluded_ = std::move(next);
  excluded_count_ = 0;
  for (const auto& [lo, hi] : excluded_)
    excluded_count_ += hi - lo + 1;
  reserved_ = std::move(kept);
}

bool SubnetBlockSet::isReservedAllocated(const Prefix& block) const {
  const auto index = indexOf(block);
  return index && reserved_allocated_.contains(*index);
}

Prefix SubnetBlockSet::blockAt(std::uint64_t index) const {
  const int shift = bitLength(subnet_.family()) - block_length_;
  const U128 bits = subnet_.address().bits() + (U128{index} << shift);
  return Prefix::masked(IPAddress::fromBits(subnet_.family(), bits), block_length_);
}

Result<std::uint64_t> SubnetBlockSet::indexOf(const Prefix& block) const {
  if (block.length() != block_length_ || !subnet_.contains(block)) {
    return fail(ErrorCode::kOutOfRange,
                fmt::format("{} is not a block of subnet {}: expected a /{} inside it",
                            block.toString(), subnet_.toString(), block_length_));
  }
  const int shift = bitLength(subnet_.family()) - block_length_;
  return static_cast<std::uint64_t>((block.address().bits() - subnet_.address().bits()) >> shift);
}

bool SubnetBlockSet::isExcluded(std::uint64_t index) const { return inRanges(excluded_, index); }

bool SubnetBlockSet::isAllocated(const Prefix& block) const {
  const auto index = indexOf(block);
  if (!index) return false;
  return reserved_allocated_.contains(*index) || (!isExcluded(*index) && used_.test(*index));
}

bool SubnetBlockSet::anyAllocatedIn(const Prefix& range) const {
  if (range.family() != subnet_.family() || !range.overlaps(subnet_)) return false;
  if (range.length() >= block_length_) {
    return isAllocated(Prefix::masked(range.address(), block_length_));
  }
  const auto [lo, hi] = indexesOf(range);
  const auto reserved = reserved_allocated_.lower_bound(lo);
  if (reserved != reserved_allocated_.end() && *reserved <= hi) return true;
  for (std::uint64_t i = lo; i <= hi; ++i) {
    if (used_.test(i) && !isExcluded(i)) return true;
  }
  return false;
}

Result<std::uint64_t> SubnetBlockSet::checkedIndex(const Prefix& block,
                                                   std::string_view action) const {
  auto index = indexOf(block);
  if (!index) return index;
  if (isExcluded(*index)) {
    return fail(ErrorCode::kConflict,
                fmt::format("cannot {} {}: it overlaps addresses reserved in subnet {} and is "
                            "never handed out",
                            action, block.toString(), subnet_.toString()));
  }
  return index;
}

Result<void> SubnetBlockSet::occupy(const Prefix& block) {
  if (isReservedAllocated(block)) return {};
  auto index = checkedIndex(block, "occupy");
  if (!index) return std::unexpected(index.error());
  used_.set(*index);
  return {};
}

Result<Prefix> SubnetBlockSet::allocateNext() {
  if (occupying_) {
    return fail(ErrorCode::kNotReady,
                fmt::format("subnet {}: occupy every existing block and call finishOccupying() "
                            "before allocating",
                            subnet_.toString()));
  }
  // Each held free block is met at most once on the way round: held_.size() + 1 searches find a
  // free block that is not held, if there is one.
  std::uint64_t from = next_;
  for (std::size_t tries = 0; tries <= held_.size(); ++tries) {
    const auto index = used_.findClearFrom(from);
    if (!index) break;
    if (held_.contains(*index)) {
      from = *index + 1;
      continue;
    }
    used_.set(*index);
    next_ = *index + 1;
    return blockAt(*index);
  }
  if (!held_.empty() && freeCount() > 0) {
    return fail(ErrorCode::kExhausted,
                fmt::format("subnet {} is exhausted: every free /{} block holds an address of "
                            "another resource ({} blocks held by others)",
                            subnet_.toString(), block_length_, held_.size()));
  }
  return fail(ErrorCode::kExhausted,
              fmt::format("subnet {} is exhausted: all {} usable /{} blocks are allocated",
                          subnet_.toString(), usableCount(), block_length_));
}

Result<void> SubnetBlockSet::holdForOthers(const Prefix& block) {
  auto index = indexOf(block);
  if (!index) return std::unexpected(index.error());
  if (!isExcluded(*index)) held_.insert(*index);
  return {};
}

bool SubnetBlockSet::releaseHoldForOthers(const Prefix& block) {
  const auto index = indexOf(block);
  return index && held_.erase(*index) > 0;
}

std::uint64_t SubnetBlockSet::freeUnheldCount() const {
  std::uint64_t heldFree = 0;
  for (const std::uint64_t index : held_) {
    if (!used_.test(index)) ++heldFree;
  }
  return freeCount() - heldFree;
}

bool SubnetBlockSet::isHeldForOthers(const Prefix& block) const {
  const auto index = indexOf(block);
  return index && held_.contains(*index);
}

Result<void> SubnetBlockSet::release(const Prefix& block) {
  if (const auto reserved = indexOf(block); reserved && reserved_allocated_.erase(*reserved) > 0) {
    return {};  // stays excluded
  }
  auto index = checkedIndex(block, "release");
  if (!index) return std::unexpected(index.error());
  if (!used_.clear(*index)) {
    return fail(ErrorCode::kNotFound,
                fmt::format("cannot release {}: it is not allocated in subnet {}", block.toString(),
                            subnet_.toString()));
  }
  return {};
}

std::optional<std::string> SubnetBlockSet::invariantViolation() const {
  if (auto v = used_.invariantViolation()) return "bitmap: " + *v;
  std::uint64_t excluded = 0;
  for (std::size_t i = 0; i < excluded_.size(); ++i) {
    const auto [lo, hi] = excluded_[i];
    if (lo > hi || hi >= blockCount())
      return fmt::format("excluded range {}-{} is invalid", lo, hi);
    if (i > 0 && lo <= excluded_[i - 1].second + 1) {
      return fmt::format("excluded ranges {} and {} are not sorted and disjoint", i - 1, i);
    }
    for (std::uint64_t b = lo; b <= hi; ++b) {
      if (!used_.test(b)) return fmt::format("excluded block {} is not marked taken", b);
    }
    excluded += hi - lo + 1;
  }
  if (excluded != excluded_count_) {
    return fmt::format("excluded count {} but ranges cover {}", excluded_count_, excluded);
  }
  if (used_.countSet() < excluded_count_) return "fewer blocks taken than excluded";
  for (const std::uint64_t h : held_) {
    if (h >= blockCount() || isExcluded(h)) return fmt::format("held block {} is invalid", h);
  }
  for (const std::uint64_t r : reserved_allocated_) {
    if (r >= blockCount() || !isExcluded(r)) {
      return fmt::format("reserved allocation {} is not excluded", r);
    }
  }
  for (const auto& [lo, hi] : azure_excluded_) {
    if (!inRanges(excluded_, lo) || !inRanges(excluded_, hi)) {
      return fmt::format("Azure-reserved blocks {}-{} are not excluded", lo, hi);
    }
  }
  return std::nullopt;
}

}  // namespace vnetipam::ipam
