#include "lib/ipam/block_pool.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace vnetipam::ipam {

namespace {

// A count of SubnetBlockSet summed over the pool's ranges.
std::uint64_t sumOf(std::span<const SubnetBlockSet> sets,
                    std::uint64_t (SubnetBlockSet::*count)() const) {
  std::uint64_t sum = 0;
  for (const SubnetBlockSet& set : sets)
    sum += (set.*count)();
  return sum;
}

}  // namespace

BlockPool::BlockPool(SubnetBlockSet first, CarveOptions options)
    : block_length_(first.blockLength()), options_(std::move(options)) {
  ranges_.push_back(first.subnet());
  sets_.push_back(std::move(first));
  applyReserved();
}

Result<BlockPool> BlockPool::carve(Prefix range, int blockLength, const CarveOptions& options) {
  auto set = SubnetBlockSet::carve(range, blockLength, options);
  if (!set) return std::unexpected(set.error());
  return BlockPool(std::move(*set), options);
}

Result<void> BlockPool::addRange(Prefix range) {
  if (range.family() != family()) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{} is {}, but the pool ({}) is {}", range.toString(),
                            toString(range.family()), toString(ranges_), toString(family())));
  }
  if (const auto other =
          std::ranges::find_if(ranges_, [&](const Prefix& r) { return r.overlaps(range); });
      other != ranges_.end()) {
    return fail(ErrorCode::kConflict, fmt::format("{} overlaps {}, already in the pool",
                                                  range.toString(), other->toString()));
  }
  CarveOptions options{.excludeAzureReserved = options_.excludeAzureReserved, .reserved = {}};
  auto set = SubnetBlockSet::carve(range, block_length_, options);
  if (!set) return std::unexpected(set.error());
  if (!occupying_) set->finishOccupying();
  ranges_.push_back(range);
  sets_.push_back(std::move(*set));
  applyReserved();
  return {};
}

bool BlockPool::contains(const Prefix& prefix) const {
  return std::ranges::any_of(ranges_, [&](const Prefix& r) { return r.contains(prefix); });
}

bool BlockPool::overlaps(const Prefix& prefix) const {
  return std::ranges::any_of(ranges_, [&](const Prefix& r) { return r.overlaps(prefix); });
}

std::uint64_t BlockPool::blockCount() const { return sumOf(sets_, &SubnetBlockSet::blockCount); }
std::uint64_t BlockPool::excludedCount() const {
  return sumOf(sets_, &SubnetBlockSet::excludedCount);
}
std::uint64_t BlockPool::usableCount() const { return sumOf(sets_, &SubnetBlockSet::usableCount); }
std::uint64_t BlockPool::allocatedCount() const {
  return sumOf(sets_, &SubnetBlockSet::allocatedCount);
}
std::uint64_t BlockPool::freeCount() const { return sumOf(sets_, &SubnetBlockSet::freeCount); }
std::uint64_t BlockPool::reservedAllocatedCount() const {
  return sumOf(sets_, &SubnetBlockSet::reservedAllocatedCount);
}
std::uint64_t BlockPool::heldForOthersCount() const {
  return sumOf(sets_, &SubnetBlockSet::heldForOthersCount);
}
std::uint64_t BlockPool::freeUnheldCount() const {
  return sumOf(sets_, &SubnetBlockSet::freeUnheldCount);
}

const SubnetBlockSet* BlockPool::setOf(const Prefix& block) const {
  const auto found = std::ranges::find_if(
      sets_, [&](const SubnetBlockSet& s) { return s.subnet().contains(block); });
  return found != sets_.end() ? &*found : nullptr;
}

SubnetBlockSet* BlockPool::setOf(const Prefix& block) {
  return const_cast<SubnetBlockSet*>(std::as_const(*this).setOf(block));
}

Result<SubnetBlockSet*> BlockPool::checkedSetOf(const Prefix& block) {
  if (SubnetBlockSet* set = setOf(block)) return set;
  return fail(ErrorCode::kOutOfRange,
              fmt::format("{} is not a block of the pool: expected a /{} inside {}",
                          block.toString(), block_length_, toString(ranges_)));
}

bool BlockPool::isAllocated(const Prefix& block) const {
  const SubnetBlockSet* set = setOf(block);
  return set != nullptr && set->isAllocated(block);
}

bool BlockPool::isReservedAllocated(const Prefix& block) const {
  const SubnetBlockSet* set = setOf(block);
  return set != nullptr && set->isReservedAllocated(block);
}

bool BlockPool::anyAllocatedIn(const Prefix& range) const {
  return std::ranges::any_of(sets_,
                             [&](const SubnetBlockSet& s) { return s.anyAllocatedIn(range); });
}

bool BlockPool::isHeldForOthers(const Prefix& block) const {
  const SubnetBlockSet* set = setOf(block);
  return set != nullptr && set->isHeldForOthers(block);
}

Result<void> BlockPool::occupy(const Prefix& block) {
  auto set = checkedSetOf(block);
  if (!set) return std::unexpected(set.error());
  return (*set)->occupy(block);
}

Result<void> BlockPool::release(const Prefix& block) {
  auto set = checkedSetOf(block);
  if (!set) return std::unexpected(set.error());
  return (*set)->release(block);
}

Result<void> BlockPool::holdForOthers(const Prefix& block) {
  auto set = checkedSetOf(block);
  if (!set) return std::unexpected(set.error());
  return (*set)->holdForOthers(block);
}

bool BlockPool::releaseHoldForOthers(const Prefix& block) {
  SubnetBlockSet* set = setOf(block);
  return set != nullptr && set->releaseHoldForOthers(block);
}

void BlockPool::finishOccupying() {
  occupying_ = false;
  for (SubnetBlockSet& set : sets_)
    set.finishOccupying();
}

Result<Prefix> BlockPool::allocateNext() {
  if (occupying_) {
    return fail(ErrorCode::kNotReady,
                fmt::format("pool {}: occupy every existing block and call finishOccupying() "
                            "before allocating",
                            toString(ranges_)));
  }
  std::optional<Error> last;
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    const std::size_t at = (current_ + i) % sets_.size();
    auto block = sets_[at].allocateNext();
    if (block) {
      current_ = at;
      return block;
    }
    if (block.error().code != ErrorCode::kExhausted) return block;
    last = block.error();
  }
  if (sets_.size() == 1) return std::unexpected(*last);
  return fail(ErrorCode::kExhausted,
              fmt::format("the pool ({}) is exhausted: no free /{} block in any of its {} "
                          "ranges ({} usable, {} held by others)",
                          toString(ranges_), block_length_, sets_.size(), usableCount(),
                          heldForOthersCount()));
}

void BlockPool::setReserved(std::span<const Prefix> reserved) {
  options_.reserved.assign(reserved.begin(), reserved.end());
  applyReserved();
}

std::vector<Prefix> BlockPool::activeRanges() const {
  std::vector<Prefix> active;
  for (const Prefix& range : ranges_) {
    if (std::ranges::find(retired_, range) == retired_.end()) active.push_back(range);
  }
  return active;
}

bool BlockPool::setRetired(std::span<const Prefix> retired) {
  std::vector<Prefix> now;
  for (const Prefix& range : ranges_) {
    if (std::ranges::find(retired, range) != retired.end()) now.push_back(range);
  }
  if (now == retired_) return false;
  retired_ = std::move(now);
  applyReserved();
  return true;
}

void BlockPool::applyReserved() {
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    if (std::ranges::find(retired_, ranges_[i]) == retired_.end()) {
      sets_[i].setReserved(options_.reserved);
      continue;
    }
    std::vector<Prefix> whole = options_.reserved;
    whole.push_back(ranges_[i]);
    sets_[i].setReserved(whole);
  }
  reserved_in_force_.clear();
  for (const SubnetBlockSet& set : sets_) {
    for (const Prefix& range : set.reserved()) {
      if (std::ranges::find(options_.reserved, range) != options_.reserved.end() &&
          std::ranges::find(reserved_in_force_, range) == reserved_in_force_.end()) {
        reserved_in_force_.push_back(range);
      }
    }
  }
  // In the order given to setReserved (each set keeps that order; merging sets may not).
  std::ranges::stable_sort(reserved_in_force_, {}, [&](const Prefix& range) {
    return std::ranges::find(options_.reserved, range) - options_.reserved.begin();
  });
}

std::optional<std::string> BlockPool::invariantViolation() const {
  for (const SubnetBlockSet& set : sets_) {
    if (auto v = set.invariantViolation()) return set.subnet().toString() + ": " + *v;
  }
  if (ranges_.size() != sets_.size()) return "ranges and sets differ in number";
  for (std::size_t i = 0; i < ranges_.size(); ++i) {
    if (ranges_[i] != sets_[i].subnet()) return "range " + ranges_[i].toString() + " out of step";
    for (std::size_t j = i + 1; j < ranges_.size(); ++j) {
      if (ranges_[i].overlaps(ranges_[j])) {
        return ranges_[i].toString() + " overlaps " + ranges_[j].toString();
      }
    }
  }
  return std::nullopt;
}

}  // namespace vnetipam::ipam
