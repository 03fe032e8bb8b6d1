// Hands out the addresses of one block to pods: the node agent's pure allocator.
//
// Every allocation is tagged with its owner (container id + interface name):
//  - allocating again for the same owner returns the same address (a retried CNI ADD);
//  - only the owner can release an address (a stale DEL cannot free someone else's address);
//  - a released address cools down for `cooldown` before reuse, so stale conntrack entries
//    cannot deliver an old pod's traffic to a new one.
// Time is passed in by the caller: the allocator reads no clock. Times should not go backwards;
// if they do, a cooling address is held longer, never released early.
//
// Not thread-safe; callers serialise access.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/ipam/bitmap.h"
#include "lib/ipam/error.h"
#include "lib/ipam/ip.h"
#include "lib/ipam/owner.h"

namespace vnetipam::ipam {

using TimePoint = std::chrono::system_clock::time_point;

class BlockAllocator {
 public:
  static constexpr std::chrono::seconds kDefaultCooldown{30};
  // Blocks of more than 2^16 addresses (an IPv6 /112) are refused: a node never needs more.
  static constexpr int kMaxHostBits = 16;

  static Result<BlockAllocator> create(Prefix block,
                                       std::chrono::seconds cooldown = kDefaultCooldown);

  Prefix block() const { return block_; }
  std::chrono::seconds cooldown() const { return cooldown_; }

  std::uint64_t capacity() const { return busy_.size(); }
  std::uint64_t allocatedCount() const { return allocated_; }
  // Released addresses still cooling at `now` (expired ones count as free).
  std::uint64_t coolingCount(TimePoint now) const;
  std::uint64_t freeCount(TimePoint now) const {
    return capacity() - allocatedCount() - coolingCount(now);
  }

  // The owner's address if it already has one here, else the next free address after the last
  // one handed out. kExhausted when every address is allocated or cooling.
  Result<IPAddress> allocate(const Owner& owner, TimePoint now);

  // Restores an allocation recorded before a restart. Idempotent for the same owner; kConflict if
  // another owner holds the address or the owner holds another address; an address still
  // cooling is taken over (the journal is the authority).
  Result<void> occupy(IPAddress address, const Owner& owner);

  // Restores a release recorded before a restart: the address cools until releasedAt + cooldown.
  // kConflict if it is allocated.
  Result<void> occupyCooling(IPAddress address, TimePoint releasedAt);

  // kNotFound if the address is not allocated, kWrongOwner if someone else holds it.
  Result<void> release(IPAddress address, const Owner& owner, TimePoint now);
  // Takes back an allocation that was never handed out (its record was never written, its
  // address never answered): free at once, not cooling, and the next allocate may pick it again.
  // For an allocate that must give back one family because another could not be had: cooling it
  // would protect no one, and a retried ADD would cool one more address each time. kNotFound if
  // the address is not allocated, kWrongOwner if someone else holds it.
  Result<void> unallocate(IPAddress address, const Owner& owner);
  // Releases whatever the owner holds (CNI DEL knows the owner, not always the address).
  // kNotFound if it holds nothing.
  Result<IPAddress> releaseOwner(const Owner& owner, TimePoint now);

  std::optional<IPAddress> addressOf(const Owner& owner) const;
  std::optional<Owner> ownerOf(IPAddress address) const;

  struct Allocation {
    IPAddress address;
    Owner owner;
  };
  // Every allocation, in address order.
  std::vector<Allocation> allocations() const;

  struct Cooling {
    IPAddress address;
    TimePoint until;
  };
  // Every address still cooling at `now`, soonest-free first.
  std::vector<Cooling> cooling(TimePoint now) const;

  // The first broken invariant, or nullopt. For tests, after every step.
  std::optional<std::string> invariantViolation() const;

 private:
  enum class State : std::uint8_t { kFree, kAllocated, kCooling };
  struct Slot {
    State state = State::kFree;
    std::size_t hash = 0;  // of the owner, while allocated
    // The owner while allocated. Kept (not freed) after release, so the next owner's strings
    // reuse the buffers: steady-state allocation does not touch the heap.
    Owner owner;
  };
  static constexpr std::uint32_t kEmpty = ~std::uint32_t{0};

  BlockAllocator(Prefix block, std::chrono::seconds cooldown);
  Result<std::uint32_t> indexOf(IPAddress address) const;
  IPAddress addressAt(std::uint32_t index) const;
  // Frees every cooling address whose time is up.
  void expireCooling(TimePoint now);
  void releaseIndex(std::uint32_t index, TimePoint now);
  void startCooling(std::uint32_t index, TimePoint until);
  void take(std::uint32_t index, const Owner& owner, std::size_t hash);

  // Owner -> slot index: an open-addressing table (linear probing, backward-shift deletion) of
  // slot indexes, sized to twice the capacity, so lookups never allocate.
  std::optional<std::uint32_t> findOwner(const Owner& owner, std::size_t hash) const;
  void insertOwner(std::uint32_t index);
  void eraseOwner(std::uint32_t index);

  Prefix block_;
  std::chrono::seconds cooldown_;
  Bitmap busy_;  // allocated or cooling
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> owner_table_;
  std::uint64_t allocated_ = 0;
  // Released addresses waiting out the cooldown, sorted by time; entries before cooling_head_ are
  // already expired. A vector with a moving head rather than a deque: a deque that empties
  // allocates a node on its next insert, once per release in the steady state.
  std::vector<std::pair<TimePoint, std::uint32_t>> cooling_;
  std::size_t cooling_head_ = 0;
  auto coolingBegin() const {
    return cooling_.begin() + static_cast<std::ptrdiff_t>(cooling_head_);
  }
  auto coolingBegin() { return cooling_.begin() + static_cast<std::ptrdiff_t>(cooling_head_); }
  std::size_t coolingSize() const { return cooling_.size() - cooling_head_; }
  void stopCooling(std::uint32_t index);
  std::uint32_t next_ = 0;
};

}  // namespace vnetipam::ipam
