#include "lib/ipam/block_allocator.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <fmt/format.h>

namespace vnetipam::ipam {
namespace {

// A fast non-cryptographic hash, 8 bytes per step. On x86-64 with SSE4.2 (every cloud VM) the
// step is the CRC32 instruction, about 30 instructions for a 64-character container id; elsewhere
// a multiply-rotate mix, about three times that. Container ids come from the container runtime,
// not from untrusted users, so hash flooding is not a concern. The hash never leaves the process.
std::uint64_t mixWord(std::uint64_t h, std::uint64_t word) {
  return std::rotl(h ^ (word * 0x9e3779b97f4a7c15ULL), 29) * 0xbf58476d1ce4e5b9ULL;
}

std::uint64_t tailWord(std::string_view s, std::size_t from) {
  std::uint64_t tail = 0;
  for (std::size_t i = from; i < s.size(); ++i)
    tail = (tail << 8) | static_cast<unsigned char>(s[i]);
  return tail;
}

std::uint64_t hashPortable(std::string_view s, std::uint64_t h) {
  h = mixWord(h, s.size());
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    h = mixWord(h, word);
  }
  return mixWord(h, tailWord(s, i));
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint64_t hashCrc(std::string_view s, std::uint64_t h) {
  h = __builtin_ia32_crc32di(h, s.size());
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    h = __builtin_ia32_crc32di(h, word);
  }
  return __builtin_ia32_crc32di(h, tailWord(s, i));
}
const bool kHasCrc32 = __builtin_cpu_supports("sse4.2");
#endif

std::size_t ownerHash(const Owner& owner) {
  constexpr std::uint64_t kSeed = 0x2545f4914f6cdd1dULL;
#if defined(__x86_64__)
  std::uint64_t h;
  if (kHasCrc32) {
    // CRC32 yields 32 bits: the container id's go high, the combined ones low.
    const std::uint64_t id = hashCrc(owner.containerID, kSeed);
    h = (id << 32) ^ hashCrc(owner.ifName, id);
  } else {
    h = hashPortable(owner.ifName, hashPortable(owner.containerID, kSeed));
  }
#else
  std::uint64_t h = hashPortable(owner.ifName, hashPortable(owner.containerID, kSeed));
#endif
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<std::size_t>(h);
}

std::size_t tableSizeFor(std::size_t capacity) { return std::bit_ceil(capacity * 2); }

}  // namespace

BlockAllocator::BlockAllocator(Prefix block, std::chrono::seconds cooldown)
    : block_(block),
      cooldown_(cooldown),
      busy_(std::uint64_t{1} << block.hostBits()),
      slots_(std::size_t{1} << block.hostBits()),
      owner_table_(tableSizeFor(slots_.size()), kEmpty) {}

std::optional<std::uint32_t> BlockAllocator::findOwner(const Owner& owner, std::size_t hash) const {
  const std::size_t mask = owner_table_.size() - 1;
  for (std::size_t i = hash & mask; owner_table_[i] != kEmpty; i = (i + 1) & mask) {
    const Slot& slot = slots_[owner_table_[i]];
    if (slot.hash == hash && slot.owner == owner) return owner_table_[i];
  }
  return std::nullopt;
}

void BlockAllocator::insertOwner(std::uint32_t index) {
  const std::size_t mask = owner_table_.size() - 1;
  std::size_t i = slots_[index].hash & mask;
  while (owner_table_[i] != kEmpty)
    i = (i + 1) & mask;
  owner_table_[i] = index;
}

void BlockAllocator::eraseOwner(std::uint32_t index) {
  const std::size_t mask = owner_table_.size() - 1;
  std::size_t hole = slots_[index].hash & mask;
  while (owner_table_[hole] != index)
    hole = (hole + 1) & mask;
  // Backward-shift deletion: move later entries of the probe run into the hole when their home
  // position does not lie cyclically in (hole, j], so every entry stays reachable.
  for (std::size_t j = (hole + 1) & mask; owner_table_[j] != kEmpty; j = (j + 1) & mask) {
    const std::size_t home = slots_[owner_table_[j]].hash & mask;
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    owner_table_[hole] = owner_table_[j];
    hole = j;
  }
  owner_table_[hole] = kEmpty;
}

void BlockAllocator::take(std::uint32_t index, const Owner& owner, std::size_t hash) {
  Slot& slot = slots_[index];
  busy_.set(index);
  slot.state = State::kAllocated;
  slot.hash = hash;
  slot.owner.containerID.assign(owner.containerID);
  slot.owner.ifName.assign(owner.ifName);
  insertOwner(index);
  ++allocated_;
}

Result<BlockAllocator> BlockAllocator::create(Prefix block, std::chrono::seconds cooldown) {
  if (block.hostBits() > kMaxHostBits) {
    return fail(ErrorCode::kOutOfRange,
                fmt::format("block {} has 2^{} addresses, more than the 2^{} a node block may "
                            "have: expected a prefix length of at least /{}",
                            block.toString(), block.hostBits(), kMaxHostBits,
                            bitLength(block.family()) - kMaxHostBits));
  }
  if (cooldown.count() < 0) {
    return fail(
        ErrorCode::kOutOfRange,
        fmt::format("cooldown {}s is negative: expected 0 or more seconds", cooldown.count()));
  }
  return BlockAllocator(block, cooldown);
}

Result<std::uint32_t> BlockAllocator::indexOf(IPAddress address) const {
  // Unsigned wrap-around makes an address below the block a huge offset, so one compare checks
  // both ends.
  const U128 offset = address.bits() - block_.address().bits();
  if (address.family() != block_.family() || offset >= slots_.size()) {
    return fail(ErrorCode::kOutOfRange,
                fmt::format("{} is not in block {}", address.toString(), block_.toString()));
  }
  return static_cast<std::uint32_t>(offset);
}

IPAddress BlockAllocator::addressAt(std::uint32_t index) const {
  return IPAddress::fromBits(block_.family(), block_.address().bits() + index);
}

std::uint64_t BlockAllocator::coolingCount(TimePoint now) const {
  // cooling_ is sorted by time: count the entries whose time is still ahead.
  const auto first_pending = std::upper_bound(
      coolingBegin(), cooling_.end(), now,
      [](TimePoint t, const std::pair<TimePoint, std::uint32_t>& e) { return t < e.first; });
  return static_cast<std::uint64_t>(cooling_.end() - first_pending);
}

void BlockAllocator::expireCooling(TimePoint now) {
  while (cooling_head_ < cooling_.size() && cooling_[cooling_head_].first <= now) {
    const std::uint32_t index = cooling_[cooling_head_].second;
    ++cooling_head_;
    slots_[index].state = State::kFree;
    busy_.clear(index);
  }
  // Reclaim the expired prefix once it is most of the vector (keeps its capacity).
  if (cooling_head_ == cooling_.size()) {
    cooling_.clear();
    cooling_head_ = 0;
  } else if (cooling_head_ > cooling_.size() / 2) {
    cooling_.erase(cooling_.begin(), coolingBegin());
    cooling_head_ = 0;
  }
}

void BlockAllocator::stopCooling(std::uint32_t index) {
  const auto it = std::find_if(coolingBegin(), cooling_.end(),
                               [&](const auto& e) { return e.second == index; });
  if (it != cooling_.end()) cooling_.erase(it);
}

// Precondition: the index's busy bit is set (it was allocated, or occupyCooling set it).
void BlockAllocator::startCooling(std::uint32_t index, TimePoint until) {
  slots_[index].state = State::kCooling;
  // Releases arrive in time order, so this is almost always an append.
  if (cooling_head_ == cooling_.size() || cooling_.back().first <= until) {
    cooling_.emplace_back(until, index);
    return;
  }
  auto pos = std::upper_bound(
      coolingBegin(), cooling_.end(), until,
      [](TimePoint t, const std::pair<TimePoint, std::uint32_t>& e) { return t < e.first; });
  cooling_.insert(pos, {until, index});
}

Result<IPAddress> BlockAllocator::allocate(const Owner& owner, TimePoint now) {
  const std::size_t hash = ownerHash(owner);
  if (auto held = findOwner(owner, hash)) return addressAt(*held);
  expireCooling(now);
  const auto found = busy_.findClearFrom(next_);
  if (!found) {
    return fail(ErrorCode::kExhausted,
                fmt::format("block {} has no free address: {} allocated, {} cooling down",
                            block_.toString(), allocatedCount(), coolingSize()));
  }
  const auto index = static_cast<std::uint32_t>(*found);
  take(index, owner, hash);
  next_ = index + 1;
  return addressAt(index);
}

Result<void> BlockAllocator::occupy(IPAddress address, const Owner& owner) {
  const auto index = indexOf(address);
  if (!index) return std::unexpected(index.error());
  const std::size_t hash = ownerHash(owner);
  const Slot& slot = slots_[*index];
  if (slot.state == State::kAllocated) {
    if (slot.owner == owner) return {};
    return fail(ErrorCode::kConflict,
                fmt::format("cannot give {} to {}: it is held by {}", address.toString(),
                            toString(owner), toString(slot.owner)));
  }
  if (auto held = findOwner(owner, hash)) {
    return fail(ErrorCode::kConflict,
                fmt::format("cannot give {} to {}: it already holds {}", address.toString(),
                            toString(owner), addressAt(*held).toString()));
  }
  if (slot.state == State::kCooling) {
    stopCooling(*index);
  }
  take(*index, owner, hash);
  return {};
}

Result<void> BlockAllocator::occupyCooling(IPAddress address, TimePoint releasedAt) {
  const auto index = indexOf(address);
  if (!index) return std::unexpected(index.error());
  Slot& slot = slots_[*index];
  if (slot.state == State::kAllocated) {
    return fail(ErrorCode::kConflict, fmt::format("cannot cool {} down: it is held by {}",
                                                  address.toString(), toString(slot.owner)));
  }
  if (slot.state == State::kCooling) {
    stopCooling(*index);
  }
  busy_.set(*index);
  startCooling(*index, releasedAt + cooldown_);
  return {};
}

void BlockAllocator::releaseIndex(std::uint32_t index, TimePoint now) {
  eraseOwner(index);
  --allocated_;
  startCooling(index, now + cooldown_);
}

Result<void> BlockAllocator::release(IPAddress address, const Owner& owner, TimePoint now) {
  const auto index = indexOf(address);
  if (!index) return std::unexpected(index.error());
  const Slot& slot = slots_[*index];
  if (slot.state != State::kAllocated) {
    return fail(ErrorCode::kNotFound, fmt::format("cannot release {} for {}: it is not allocated",
                                                  address.toString(), toString(owner)));
  }
  if (slot.owner != owner) {
    return fail(ErrorCode::kWrongOwner,
                fmt::format("cannot release {} for {}: it is held by {}", address.toString(),
                            toString(owner), toString(slot.owner)));
  }
  releaseIndex(*index, now);
  return {};
}

Result<void> BlockAllocator::unallocate(IPAddress address, const Owner& owner) {
  const auto index = indexOf(address);
  if (!index) return std::unexpected(index.error());
  const Slot& slot = slots_[*index];
  if (slot.state != State::kAllocated || slot.owner != owner) {
    return fail(slot.state != State::kAllocated ? ErrorCode::kNotFound : ErrorCode::kWrongOwner,
                fmt::format("cannot take back {} from {}: it is not allocated to it",
                            address.toString(), toString(owner)));
  }
  eraseOwner(*index);
  --allocated_;
  slots_[*index].state = State::kFree;
  busy_.clear(*index);
  // Back to where the allocate that took it started looking, so the scan order is as if it had
  // never happened.
  next_ = *index;
  return {};
}

Result<IPAddress> BlockAllocator::releaseOwner(const Owner& owner, TimePoint now) {
  const auto index = findOwner(owner, ownerHash(owner));
  if (!index) {
    return fail(ErrorCode::kNotFound,
                fmt::format("{} holds no address in block {}", toString(owner), block_.toString()));
  }
  releaseIndex(*index, now);
  return addressAt(*index);
}

std::optional<IPAddress> BlockAllocator::addressOf(const Owner& owner) const {
  const auto index = findOwner(owner, ownerHash(owner));
  if (!index) return std::nullopt;
  return addressAt(*index);
}

std::optional<Owner> BlockAllocator::ownerOf(IPAddress address) const {
  const auto index = indexOf(address);
  if (!index || slots_[*index].state != State::kAllocated) return std::nullopt;
  return slots_[*index].owner;
}

std::vector<BlockAllocator::Allocation> BlockAllocator::allocations() const {
  std::vector<Allocation> out;
  out.reserve(allocated_);
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == State::kAllocated) {
      out.push_back({addressAt(i), slots_[i].owner});
    }
  }
  return out;
}

std::vector<BlockAllocator::Cooling> BlockAllocator::cooling(TimePoint now) const {
  std::vector<Cooling> out;
  for (auto it = coolingBegin(); it != cooling_.end(); ++it) {
    if (it->first > now) out.push_back({addressAt(it->second), it->first});
  }
  return out;
}

std::optional<std::string> BlockAllocator::invariantViolation() const {
  if (auto v = busy_.invariantViolation()) return "bitmap: " + *v;
  std::uint64_t allocated = 0;
  std::uint64_t cooling = 0;
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    if (busy_.test(i) != (slot.state != State::kFree)) {
      return fmt::format("{}: busy bit disagrees with its state", addressAt(i).toString());
    }
    if (slot.state == State::kAllocated) {
      ++allocated;
      if (slot.hash != ownerHash(slot.owner) || findOwner(slot.owner, slot.hash) != i) {
        return fmt::format("{}: its owner does not map back to it", addressAt(i).toString());
      }
    }
    if (slot.state == State::kCooling) ++cooling;
  }
  const auto in_table = static_cast<std::uint64_t>(
      std::count_if(owner_table_.begin(), owner_table_.end(), [](auto e) { return e != kEmpty; }));
  if (allocated != allocated_ || in_table != allocated_) {
    return fmt::format("{} slots allocated, count says {}, owner table holds {}", allocated,
                       allocated_, in_table);
  }
  if (cooling != coolingSize()) {
    return fmt::format("{} slots cooling but {} in the cooling queue", cooling, coolingSize());
  }
  for (std::size_t i = cooling_head_; i < cooling_.size(); ++i) {
    if (slots_[cooling_[i].second].state != State::kCooling) {
      return fmt::format("{} is queued to cool but is not cooling",
                         addressAt(cooling_[i].second).toString());
    }
    if (i > cooling_head_ && cooling_[i].first < cooling_[i - 1].first) {
      return "cooling queue out of order";
    }
  }
  return std::nullopt;
}

}  // namespace vnetipam::ipam
