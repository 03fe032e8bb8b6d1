#include "node-agent/allocation_store.h"

#include <algorithm>
#include <functional>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "lib/ipam/pod_gateway.h"

namespace vnetipam::agent {
namespace {

// The journal record of a release: the owner no longer holds `address` of block `blockName`.
JournalEntry releaseEntry(const std::string& blockName, const ipam::Prefix& blockCidr,
                          ipam::IPAddress address, const ipam::Owner& owner, ipam::TimePoint now) {
  return JournalEntry{.kind = JournalEntry::Kind::kRelease,
                      .blockName = blockName,
                      .blockCidr = blockCidr,
                      .allocation = {.address = address, .owner = owner},
                      .releasedAt = now};
}

// Whether an allocation recorded for network `held` is what a request for network `requested`
// means (protocol.h): the same network, or either one unnamed (a plugin of an earlier release).
bool sameNetwork(std::string_view held, std::string_view requested) {
  return held.empty() || requested.empty() || held == requested;
}

}  // namespace

PodVerdict podVerdict(std::string_view recordedUID, const LivePod& live) {
  if (!live) return PodVerdict::kGone;
  // Without a UID on either side there is nothing to compare: namespace/name decides, as it did
  // before UIDs were recorded.
  if (recordedUID.empty() || live->empty() || *live == recordedUID) return PodVerdict::kKeep;
  return PodVerdict::kRecreated;
}

AllocationStore::AllocationStore(ipam::Journal& journal, StoreOptions options, base::Clock& clock,
                                 AgentMetrics* metrics)
    : journal_(journal), options_(std::move(options)), clock_(clock), metrics_(metrics) {}

std::vector<AllocationStore::OwnerKey> AllocationStore::heldKeysLocked(
    const ipam::Owner& owner, std::string_view network) const {
  std::vector<OwnerKey> keys;
  for (ipam::Family f : {ipam::Family::kV4, ipam::Family::kV6}) {
    OwnerKey key{owner, f};
    auto it = held_.find(key);
    if (it != held_.end() && sameNetwork(it->second.network, network)) {
      keys.push_back(std::move(key));
    }
  }
  return keys;
}

bool AllocationStore::servesLocked(ipam::Family family) const {
  return std::ranges::any_of(blocks_, [&](const auto& entry) {
    const BlockState& b = entry.second;
    return b.inApi && !b.deleting && !b.invalid && b.cidr.family() == family;
  });
}

std::size_t AllocationStore::OwnerKeyHash::operator()(const OwnerKey& key) const noexcept {
  // Only spreads keys over buckets: equality compares the two fields apart.
  const std::size_t id = std::hash<std::string_view>{}(key.owner.containerID);
  return id ^
         (std::hash<std::string_view>{}(key.owner.ifName) + 0x9e3779b97f4a7c15ULL + (id << 6) +
          (id >> 2)) ^
         static_cast<std::size_t>(key.family);
}

base::Result<std::unique_ptr<AllocationStore>> AllocationStore::recover(
    ipam::Journal& journal, const ipam::Recovered& recovered, StoreOptions options,
    base::Clock& clock, AgentMetrics* metrics) {
  auto state = replay(recovered);
  if (!state) return std::unexpected(state.error());
  std::unique_ptr<AllocationStore> store(
      new AllocationStore(journal, std::move(options), clock, metrics));
  const ipam::TimePoint now = store->clock_.wallNow();
  std::size_t restored = 0;
  for (auto& [name, recorded] : *state) {
    BlockState& block = store->blockFor(name, recorded.cidr);
    // Cooling first: occupy() takes over a cooling address, so an allocation recorded after a
    // release wins whatever the order.
    for (const auto& [address, releasedAt] : recorded.released) {
      if (releasedAt + store->options_.cooldown <= now) continue;
      if (auto r = block.allocator->occupyCooling(address, releasedAt); !r) {
        spdlog::warn("journal: block {}: cannot restore cooling address {}: {}", name,
                     address.toString(), r.error().message);
      }
    }
    for (const auto& [address, a] : recorded.allocations) {
      ipam::Owner owner = a.owner;
      // The owner may hold one address per family, in any block: a second one of the same family
      // (in another block) is a conflict as a second one in the same block is.
      base::Result<void> r =
          store->held_.contains(OwnerKey{a.owner, address.family()})
              ? base::Result<void>(base::fail(base::ErrorCode::kConflict,
                                              "the owner already holds an address of that family"))
              : block.allocator->occupy(address, owner);
      if (!r) {
        // The owner holds two addresses (or the address is outside the block): keep the address
        // held under a name of its own so it is never handed out twice; CNI GC returns it.
        spdlog::error("journal: block {}: allocation {} of {}: {}; holding it as unowned", name,
                      address.toString(), ipam::toString(owner), r.error().message);
        owner = ipam::Owner{fmt::format("unowned-{}", address.toString()), "recovered"};
        if (auto again = block.allocator->occupy(address, owner); !again) {
          spdlog::error("journal: block {}: dropping allocation {}: {}", name, address.toString(),
                        again.error().message);
          continue;
        }
      }
      store->held_.emplace(OwnerKey{owner, address.family()}, Held{.block = name,
                                                                   .address = address,
                                                                   .network = a.network,
                                                                   .podNamespace = a.podNamespace,
                                                                   .podName = a.podName,
                                                                   .podUID = a.podUID,
                                                                   .allocatedSeq = a.seq});
      ++restored;
    }
  }
  spdlog::info("journal {}: restored {} allocations in {} blocks (last seq {})",
               journal.path().string(), restored, store->blocks_.size(), journal.lastSeq());
  return store;
}

AllocationStore::BlockState& AllocationStore::blockFor(const std::string& name, ipam::Prefix cidr) {
  auto it = blocks_.find(name);
  if (it != blocks_.end()) return it->second;
  BlockState state;
  state.cidr = cidr;
  auto allocator = ipam::BlockAllocator::create(cidr, options_.cooldown);
  if (!allocator) {
    // A block too large for the allocator: keep it unusable and say why.
    spdlog::error("block {} ({}): {}", name, cidr.toString(), allocator.error().message);
    state.cidrConflict = true;
    allocator = ipam::BlockAllocator::create(
        ipam::Prefix::masked(cidr.address(), ipam::bitLength(cidr.family())), options_.cooldown);
  }
  state.allocator = std::make_unique<ipam::BlockAllocator>(std::move(*allocator));
  return blocks_.emplace(name, std::move(state)).first->second;
}

void AllocationStore::upsertBlock(const ApiBlock& api) {
  std::lock_guard lock(mu_);
  BlockState& block = blockFor(api.name, api.cidr);
  if (block.cidr != api.cidr && !block.cidrConflict) {
    spdlog::error(
        "IPBlock {}: the API says {} but this node's journal holds allocations in {} "
        "under that name; no new allocations from it",
        api.name, api.cidr.toString(), block.cidr.toString());
    block.cidrConflict = true;
  }
  const bool wasUsable = block.usable();
  block.inApi = true;
  block.ready = api.ready;
  block.deleting = api.deleting;
  block.invalid = api.invalid;
  block.provisional = false;
  if (wasUsable != block.usable()) {
    spdlog::info("IPBlock {} ({}): {} for new allocations", api.name, api.cidr.toString(),
                 block.usable() ? "usable" : "no longer usable");
  }
  refreshBlockMetricsLocked();
}

void AllocationStore::removeBlock(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = blocks_.find(name);
  if (it == blocks_.end()) return;
  if (it->second.allocator->allocatedCount() == 0) {
    blocks_.erase(it);
    if (metrics_) metrics_->removeBlock(name);
  } else {
    it->second.inApi = false;
    spdlog::warn(
        "IPBlock {} ({}) was deleted while {} addresses are allocated from it: keeping "
        "them (orphaned), no new allocations",
        name, it->second.cidr.toString(), it->second.allocator->allocatedCount());
  }
  refreshBlockMetricsLocked();
}

std::vector<std::string> AllocationStore::apiSynced() {
  std::lock_guard lock(mu_);
  std::vector<std::string> orphaned;
  for (auto& [name, block] : blocks_) {
    if (!block.provisional) continue;
    spdlog::warn("IPBlock {} ({}) was served from the persisted set but the API does not show it",
                 name, block.cidr.toString());
    block.provisional = false;
    block.inApi = false;
  }
  for (auto it = blocks_.begin(); it != blocks_.end();) {
    if (it->second.inApi) {
      ++it;
      continue;
    }
    if (it->second.allocator->allocatedCount() == 0) {
      if (metrics_) metrics_->removeBlock(it->first);
      it = blocks_.erase(it);
      continue;
    }
    spdlog::warn(
        "block {} ({}) holds {} allocations in the journal but is not in the API: "
        "keeping them (orphaned), no new allocations from it",
        it->first, it->second.cidr.toString(), it->second.allocator->allocatedCount());
    orphaned.push_back(it->first);
    ++it;
  }
  refreshBlockMetricsLocked();
  return orphaned;
}

void AllocationStore::servePersisted(const std::vector<ServedBlock>& blocks) {
  std::lock_guard lock(mu_);
  for (const ServedBlock& served : blocks) {
    BlockState& block = blockFor(served.name, served.cidr);
    if (block.inApi) continue;  // the API got there first: it decides
    if (block.cidr != served.cidr && !block.cidrConflict) {
      spdlog::error(
          "IPBlock {}: the persisted set says {} but this node's journal holds allocations in {} "
          "under that name; no new allocations from it",
          served.name, served.cidr.toString(), block.cidr.toString());
      block.cidrConflict = true;
    }
    block.inApi = true;
    block.ready = true;
    block.deleting = false;
    block.invalid = false;
    block.provisional = true;
    spdlog::info("IPBlock {} ({}): served from the persisted set until the API server answers",
                 served.name, served.cidr.toString());
  }
  refreshBlockMetricsLocked();
}

std::vector<ServedBlock> AllocationStore::servedBlocks() const {
  std::lock_guard lock(mu_);
  std::vector<ServedBlock> out;
  for (const auto& [name, block] : blocks_) {
    if (block.usable()) out.push_back(ServedBlock{.name = name, .cidr = block.cidr});
  }
  return out;
}

bool AllocationStore::drainable(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = blocks_.find(name);
  if (it == blocks_.end()) return true;
  return !it->second.usable() && it->second.allocator->allocatedCount() == 0;
}

void AllocationStore::setOnBlockEmptied(std::function<void(const std::string&)> hook) {
  std::lock_guard lock(mu_);
  onBlockEmptied_ = std::move(hook);
}

void AllocationStore::setReady(bool ready) {
  std::lock_guard lock(mu_);
  ready_ = ready;
  if (metrics_) metrics_->setReady(ready);
}

bool AllocationStore::ready() const {
  std::lock_guard lock(mu_);
  return ready_;
}

Response AllocationStore::handle(const Request& request) {
  if (request.version != kProtocolVersion) {
    return Response::failure(ErrorCode::kIncompatibleVersion,
                             fmt::format("protocol version {} is not supported", request.version),
                             fmt::format("this agent speaks version {}", kProtocolVersion));
  }
  switch (request.op) {
    case Op::kAllocate: return allocate(request);
    case Op::kRelease: return release(request, kReasonCniDel);
    case Op::kCheck: return check(request);
    case Op::kList: return list();
    case Op::kGc: return gc(request);
    case Op::kStatus: return status();
  }
  return Response::failure(ErrorCode::kAgentInternal, "unknown operation");
}

Allocation AllocationStore::toAllocation(const OwnerKey& key, const Held& held) const {
  const auto& block = blocks_.at(held.block);
  return Allocation{.owner = key.owner,
                    .network = held.network,
                    .podNamespace = held.podNamespace,
                    .podName = held.podName,
                    .podUID = held.podUID,
                    .address = held.address,
                    .block = block.cidr,
                    .blockName = held.block};
}

std::optional<Response> AllocationStore::syncOrFail(ipam::Seq seq, std::string_view what) {
  const auto start = clock_.now();
  auto synced = journal_.sync(seq);
  if (metrics_) metrics_->journalSynced(clock_.now() - start);
  if (synced) return std::nullopt;
  spdlog::error("journal {}: {}: {}", journal_.path().string(), what, synced.error().message);
  return Response::failure(ErrorCode::kIoFailure,
                           fmt::format("{}: the agent's journal failed", what),
                           synced.error().message);
}

Response AllocationStore::allocate(const Request& request) {
  const auto start = clock_.now();
  auto failed = [&](Response response) {
    if (metrics_) metrics_->allocationFailed(static_cast<int>(response.code), clock_.now() - start);
    return response;
  };
  const std::string who = ipam::toString(request.owner);
  // A client that names no families is a plugin of the previous release: IPv4 is all it can take.
  const std::vector<ipam::Family> asked =
      request.families.empty() ? std::vector{ipam::Family::kV4} : request.families;
  const auto isAsked = [&](ipam::Family f) { return std::ranges::find(asked, f) != asked.end(); };
  std::unique_lock lock(mu_);
  // The attachment holding an address for another network: one network namespace has one
  // interface of a name, so this is a misconfiguration (or a runtime confused about which network
  // it attached). Answering with the other network's address would let either network's DEL free
  // it under the other; so nothing is taken, and the other network keeps what it holds.
  for (const OwnerKey& key : heldKeysLocked(request.owner, {})) {
    const Held& other = held_.at(key);
    if (sameNetwork(other.network, request.network)) continue;
    return failed(Response::failure(
        ErrorCode::kInterfaceExists,
        fmt::format("allocate for {} in network {}: the attachment holds {} for network {}", who,
                    request.network, other.address.toString(), other.network),
        "one network namespace has one interface of a name, so two networks cannot both attach "
        "it: DEL it in the other network first, or give this network another interface name"));
  }
  // What the owner holds already: everything, after a retried ADD; one family, after a crash
  // between the two appends of a dual-stack allocate (or an ADD while the node served one).
  Response response;
  std::vector<ipam::Family> missing;
  for (ipam::Family f : {ipam::Family::kV4, ipam::Family::kV6}) {
    if (!isAsked(f)) continue;
    const OwnerKey key{request.owner, f};
    if (auto it = held_.find(key); it != held_.end()) {
      it->second.notAttachedSince.reset();
      response.allocations.push_back(toAllocation(key, it->second));
      response.allocations.back().gateway = ipam::podGateway(f);
    } else if (servesLocked(f)) {
      missing.push_back(f);
    }
  }
  if (missing.empty() && !response.allocations.empty()) {
    // A retried ADD: the same addresses, once what we already said is durable.
    const ipam::Seq seq = journal_.lastSeq();
    lock.unlock();
    if (auto f = syncOrFail(seq, fmt::format("allocate for {}", who))) return failed(*f);
    return response;
  }
  if (!ready_) {
    return failed(Response::failure(
        ErrorCode::kTryAgainLater, fmt::format("allocate for {}: the vnet-ipam agent on node {} is "
                                               "not ready yet",
                                               who, options_.nodeName)));
  }
  const ipam::TimePoint now = clock_.wallNow();
  auto taken = takeLocked(request, missing, response.allocations.size(), now);
  if (!taken) return failed(std::move(taken.error()));
  auto last = recordLocked(request, *taken, now);
  if (!last) return failed(std::move(last.error()));
  publishLocked(request, *taken, now, response);
  lock.unlock();
  // The fsync failing leaves the allocations in memory though they may not be on disk: a leak
  // (the runtime sees ADD fail and never uses them; GC returns them) rather than a release that
  // might hand out an address a crash could not account for.
  if (auto f = syncOrFail(*last, fmt::format("allocate for {}", who))) return failed(*f);
  if (metrics_) {
    std::vector<ipam::Family> families;
    for (const Taken& t : *taken)
      families.push_back(t.family);
    metrics_->allocated(clock_.now() - start, families);
  }
  for (const Allocation& a : response.allocations) {
    spdlog::debug("allocated {} to {} (pod {}/{}) from block {}", a.address.toString(), who,
                  request.podNamespace, request.podName, a.blockName);
  }
  return response;
}

std::expected<std::vector<AllocationStore::Taken>, Response> AllocationStore::takeLocked(
    const Request& request, const std::vector<ipam::Family>& missing, std::size_t held,
    ipam::TimePoint now) {
  const ipam::Owner& owner = request.owner;
  const std::string who = ipam::toString(owner);
  // Every missing family is taken in memory before anything is journalled: a family that cannot
  // be had undoes the others here, and the journal never sees them.
  std::vector<Taken> taken;
  const auto undo = [&] {
    // Never answered, so free at once rather than cooling (BlockAllocator::unallocate).
    for (const Taken& t : taken)
      (void)t.block->allocator->unallocate(t.address, owner);
  };
  const auto noFreeAddress = [&](std::string_view family, std::size_t usable,
                                 std::uint64_t cooling) {
    return std::unexpected(Response::failure(
        ErrorCode::kTryAgainLater,
        fmt::format("allocate for {}: no free {}address on node {}", who, family,
                    options_.nodeName),
        fmt::format("{} usable blocks, {} addresses still cooling down after release; the "
                    "controller adds blocks when the node runs low",
                    usable, cooling)));
  };
  if (missing.empty()) return noFreeAddress("", 0, 0);  // no block of a family asked for
  for (ipam::Family family : missing) {
    // Fill the fullest usable block first, so the controller can return empty extra blocks.
    std::vector<std::pair<const std::string*, BlockState*>> candidates;
    for (auto& [name, block] : blocks_) {
      if (block.usable() && block.cidr.family() == family) candidates.emplace_back(&name, &block);
    }
    std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
      return a.second->allocator->allocatedCount() > b.second->allocator->allocatedCount();
    });
    bool got = false;
    for (auto& [name, block] : candidates) {
      auto address = block->allocator->allocate(owner, now);
      if (!address) {
        if (address.error().code == base::ErrorCode::kExhausted) continue;
        undo();
        return std::unexpected(Response::failure(
            ErrorCode::kAgentInternal,
            fmt::format("allocate for {} in block {}: {}", who, *name, address.error().message)));
      }
      taken.push_back(Taken{.family = family, .name = name, .block = block, .address = *address});
      got = true;
      break;
    }
    if (!got) {
      undo();
      std::uint64_t cooling = 0;
      for (auto& [name, block] : candidates)
        cooling += block->allocator->coolingCount(now);
      // A single-family node answers as it always has; a dual-stack one names the family.
      const bool dual =
          missing.size() + held > 1 ||
          servesLocked(family == ipam::Family::kV4 ? ipam::Family::kV6 : ipam::Family::kV4);
      return noFreeAddress(dual ? fmt::format("{} ", ipam::toString(family)) : std::string(),
                           candidates.size(), cooling);
    }
  }
  return taken;
}

std::expected<ipam::Seq, Response> AllocationStore::recordLocked(const Request& request,
                                                                 std::vector<Taken>& taken,
                                                                 ipam::TimePoint now) {
  const ipam::Owner& owner = request.owner;
  const std::string who = ipam::toString(owner);
  ipam::Seq last = 0;
  for (std::size_t i = 0; i < taken.size(); ++i) {
    Taken& t = taken[i];
    JournalEntry entry{.kind = JournalEntry::Kind::kAllocate,
                       .blockName = *t.name,
                       .blockCidr = t.block->cidr,
                       .allocation = {.address = t.address,
                                      .owner = owner,
                                      .podNamespace = request.podNamespace,
                                      .podName = request.podName,
                                      .podUID = request.podUID,
                                      .network = request.network}};
    auto seq = journal_.append(encodeEntry(entry));
    if (!seq) {
      spdlog::error("journal {}: allocate for {}: {}", journal_.path().string(), who,
                    seq.error().message);
      // Not recorded: undo in memory, and journal the release of what this allocate already
      // recorded, so that the journal too shows nothing held. If that append fails as well, a
      // restart finds the address held by this owner: a leak GC returns, never handed out twice.
      for (std::size_t j = 0; j < i; ++j) {
        const JournalEntry release =
            releaseEntry(*taken[j].name, taken[j].block->cidr, taken[j].address, owner, now);
        if (auto r = journal_.append(encodeEntry(release)); !r) {
          spdlog::error("journal {}: undoing allocate for {}: {}", journal_.path().string(), who,
                        r.error().message);
        }
      }
      // In memory they cool, as the journal has them (and as a single-family allocate's
      // unrecorded address always has).
      for (const Taken& u : taken)
        (void)u.block->allocator->release(u.address, owner, now);
      return std::unexpected(Response::failure(
          ErrorCode::kIoFailure, fmt::format("allocate for {}: the agent's journal failed", who),
          seq.error().message));
    }
    t.seq = last = *seq;
  }
  return last;
}

void AllocationStore::publishLocked(const Request& request, const std::vector<Taken>& taken,
                                    ipam::TimePoint now, Response& response) {
  for (const Taken& t : taken) {
    const OwnerKey key{request.owner, t.family};
    auto [it, inserted] = held_.emplace(key, Held{.block = *t.name,
                                                  .address = t.address,
                                                  .network = request.network,
                                                  .podNamespace = request.podNamespace,
                                                  .podName = request.podName,
                                                  .podUID = request.podUID,
                                                  .allocatedSeq = t.seq});
    response.allocations.push_back(toAllocation(key, it->second));
    response.allocations.back().gateway = ipam::podGateway(t.family);
    if (metrics_) metrics_->setBlockFreeIPs(*t.name, t.family, t.block->allocator->freeCount(now));
  }
  std::ranges::sort(response.allocations, std::less<>(), &Allocation::address);
}

base::Result<ipam::Seq> AllocationStore::releaseLocked(const OwnerKey& key, std::string_view reason,
                                                       ipam::TimePoint now, Allocation& released) {
  auto it = held_.find(key);
  released = toAllocation(key, it->second);
  BlockState& block = blocks_.at(it->second.block);
  const ipam::Owner& owner = released.owner;
  if (auto r = block.allocator->release(released.address, owner, now); !r) {
    return std::unexpected(r.error());
  }
  const JournalEntry entry =
      releaseEntry(released.blockName, block.cidr, released.address, owner, now);
  // If the append fails the journal still shows the address allocated: after a restart it is a
  // leak GC will find, never a double allocation. Memory moves on (the address cools).
  auto seq = journal_.append(encodeEntry(entry));
  held_.erase(it);
  if (metrics_) {
    metrics_->released(reason);
    metrics_->setBlockFreeIPs(released.blockName, block.cidr.family(),
                              block.usable() ? block.allocator->freeCount(now) : 0);
  }
  if (!block.usable() && block.allocator->allocatedCount() == 0 && onBlockEmptied_) {
    onBlockEmptied_(released.blockName);
  }
  if (!block.inApi && block.allocator->allocatedCount() == 0) {
    spdlog::info("orphaned block {} ({}) holds no allocations any more: dropping it",
                 released.blockName, block.cidr.toString());
    if (metrics_) metrics_->removeBlock(released.blockName);
    blocks_.erase(released.blockName);
    refreshBlockMetricsLocked();
  }
  return seq;
}

Response AllocationStore::release(const Request& request, std::string_view reason) {
  std::unique_lock lock(mu_);
  const std::vector<OwnerKey> keys = heldKeysLocked(request.owner, request.network);
  if (keys.empty()) {
    // DEL is idempotent. The release that freed it may still be waiting for its fsync on
    // another thread: answer "released" only once it is durable too. What the attachment holds
    // for another network stays: this DEL may follow an ADD refused for holding it.
    const ipam::Seq seq = journal_.lastSeq();
    lock.unlock();
    if (auto f = syncOrFail(seq, "release")) return *f;
    return Response{};
  }
  // Every family the attachment holds, in one go: their records share the fsync below.
  Response response;
  std::optional<Response> failure;
  ipam::Seq last = 0;
  const ipam::TimePoint now = clock_.wallNow();
  for (const OwnerKey& key : keys) {
    Allocation released;
    auto seq = releaseLocked(key, reason, now, released);
    if (!seq) {
      if (!failure) {
        failure =
            Response::failure(ErrorCode::kIoFailure,
                              fmt::format("release of {} held by {}", released.address.toString(),
                                          ipam::toString(request.owner)),
                              seq.error().message);
      }
      continue;
    }
    last = std::max(last, *seq);
    response.allocations.push_back(std::move(released));
  }
  lock.unlock();
  // Durable before the answer, like an allocation: a runtime that was told DEL succeeded never
  // retries it, so the release must survive a power failure too. Group commit shares the fsync
  // with concurrent allocations and releases. If it fails the address is already free in memory
  // but may come back after a restart as a leak, which GC returns; never a double allocation.
  if (last != 0) {
    if (auto f = syncOrFail(last, "release")) return *f;
  }
  if (failure) return *failure;
  for (const Allocation& a : response.allocations) {
    spdlog::debug("released {} of {} ({})", a.address.toString(), ipam::toString(request.owner),
                  reason);
  }
  return response;
}

Response AllocationStore::check(const Request& request) {
  std::unique_lock lock(mu_);
  const std::vector<OwnerKey> keys = heldKeysLocked(request.owner, request.network);
  if (keys.empty()) {
    return Response::failure(
        ErrorCode::kUnknownContainer,
        fmt::format("{} holds no address{} on node {}", ipam::toString(request.owner),
                    request.network.empty() ? "" : fmt::format(" for network {}", request.network),
                    options_.nodeName));
  }
  Response response;
  for (const OwnerKey& key : keys) {
    response.allocations.push_back(toAllocation(key, held_.at(key)));
    response.allocations.back().gateway = ipam::podGateway(key.family);
  }
  const ipam::Seq seq = journal_.lastSeq();
  lock.unlock();
  if (auto f = syncOrFail(seq, "check")) return *f;
  return response;
}

Response AllocationStore::list() {
  std::unique_lock lock(mu_);
  Response response;
  response.allocations.reserve(held_.size());
  for (const auto& [key, held] : held_)
    response.allocations.push_back(toAllocation(key, held));
  const ipam::Seq seq = journal_.lastSeq();
  lock.unlock();
  std::sort(response.allocations.begin(), response.allocations.end(),
            [](const Allocation& a, const Allocation& b) { return a.address < b.address; });
  if (auto f = syncOrFail(seq, "list")) return *f;
  return response;
}

Response AllocationStore::gc(const Request& request) {
  std::unordered_set<OwnerKey, OwnerKeyHash> valid;
  std::unordered_set<std::string_view> liveSandboxes;
  for (const ipam::Owner& a : request.validAttachments) {
    for (ipam::Family f : {ipam::Family::kV4, ipam::Family::kV6})
      valid.insert(OwnerKey{a, f});
    liveSandboxes.insert(a.containerID);
  }
  // The runtime lists the valid attachments of one network: only that network's allocations are
  // judged. Those recorded without a network were made by a plugin that sent none, which only
  // the agent's own network ran (protocol.h): its gc, or one that names no network, judges them.
  const bool judgesUnnamed = request.network.empty() || request.network == kAgentNetworkName;
  std::lock_guard lock(mu_);
  const ipam::TimePoint now = clock_.wallNow();
  Response response;
  for (auto& [key, held] : held_) {
    if (held.network.empty() ? !judgesUnnamed : held.network != request.network) continue;
    // An unnamed allocation on a sandbox the list shows alive under another interface may be
    // another network's attachment of that sandbox: kept until the sandbox is gone from the list.
    if (valid.contains(key) ||
        (held.network.empty() && liveSandboxes.contains(key.owner.containerID))) {
      held.notAttachedSince.reset();
      continue;
    }
    if (!held.notAttachedSince) held.notAttachedSince = now;
    response.allocations.push_back(toAllocation(key, held));
  }
  if (!response.allocations.empty()) {
    spdlog::info(
        "CNI GC of network {}: {} allocations are not among the {} valid attachments; releasing "
        "them after {} s unless they reappear",
        request.network.empty() ? "(not named)" : request.network, response.allocations.size(),
        request.validAttachments.size(), options_.gcGrace.count());
  }
  return response;
}

Response AllocationStore::status() {
  Response response;
  response.ready = ready();
  response.freeIPs = freeIPs();
  return response;
}

std::vector<GcRelease> AllocationStore::collectGarbage(const std::optional<PodLookup>& lookup) {
  std::vector<GcRelease> released;
  std::unique_lock lock(mu_);
  const ipam::TimePoint now = clock_.wallNow();
  std::vector<std::tuple<OwnerKey, std::string_view, std::string>> due;
  for (auto& [key, held] : held_) {
    if (lookup && !held.podName.empty()) {
      const LivePod live = (*lookup)(held.podNamespace, held.podName);
      switch (podVerdict(held.podUID, live)) {
        case PodVerdict::kKeep:
          held.podGoneSince.reset();
          held.podGoneWhy.clear();
          break;
        case PodVerdict::kGone:
          if (!held.podGoneSince) held.podGoneSince = now;
          held.podGoneWhy = fmt::format("pod {}/{} no longer exists on this node",
                                        held.podNamespace, held.podName);
          break;
        case PodVerdict::kRecreated:
          if (!held.podGoneSince) held.podGoneSince = now;
          held.podGoneWhy = fmt::format("pod {}/{} was recreated (uid {}, allocation's {})",
                                        held.podNamespace, held.podName, *live, held.podUID);
          break;
      }
    }
    if (held.podGoneSince && now - *held.podGoneSince >= options_.gcGrace) {
      due.emplace_back(key, kReasonPodGone, held.podGoneWhy);
    } else if (held.notAttachedSince && now - *held.notAttachedSince >= options_.gcGrace) {
      due.emplace_back(key, kReasonCniGc,
                       "the runtime's CNI GC did not list it as a valid attachment");
    }
  }
  ipam::Seq last = 0;
  for (auto& [key, reason, why] : due) {
    GcRelease r{.reason = reason, .why = std::move(why)};
    auto seq = releaseLocked(key, reason, now, r.allocation);
    if (!seq) {
      spdlog::error("GC: release of {} ({}, pod {}/{}): {}", r.allocation.address.toString(),
                    ipam::toString(r.allocation.owner), r.allocation.podNamespace,
                    r.allocation.podName, seq.error().message);
      continue;
    }
    last = *seq;
    spdlog::info("GC: released {} of {} (pod {}/{}): {} for more than {} s",
                 r.allocation.address.toString(), ipam::toString(r.allocation.owner),
                 r.allocation.podNamespace, r.allocation.podName, r.why, options_.gcGrace.count());
    released.push_back(std::move(r));
  }
  // Cooling addresses become free with time alone: the sweep is the gauges' periodic refresh.
  refreshBlockMetricsLocked();
  lock.unlock();
  if (last != 0) (void)syncOrFail(last, "GC");
  return released;
}

ReleaseDecision AllocationStore::releaseOnRequest(const std::string& blockName,
                                                  const api::ReleaseRequest& request,
                                                  const PodStateLookup& pods) {
  const auto address = ipam::IPAddress::parse(request.address);
  if (!address) {
    return {.reason = kRefuseBadRequest,
            .why = fmt::format("\"{}\" is not an IP address", request.address)};
  }
  std::unique_lock lock(mu_);
  ReleaseFacts facts;
  const OwnerKey* heldKey = nullptr;
  const Held* holder = nullptr;
  for (const auto& [key, held] : held_) {
    if (held.block == blockName && held.address == *address) {
      heldKey = &key;
      holder = &held;
      break;
    }
  }
  if (holder != nullptr) {
    facts.held = HeldAllocation{.owner = heldKey->owner,
                                .podNamespace = holder->podNamespace,
                                .podName = holder->podName,
                                .podUID = holder->podUID,
                                .allocatedSeq = holder->allocatedSeq};
    if (!holder->podName.empty()) facts.pod = pods(holder->podNamespace, holder->podName);
    if (facts.pod) {
      // The pod's other allocations whose address its status shows: its current sandbox.
      for (const auto& [key, other] : held_) {
        if (&other == holder || other.podNamespace != holder->podNamespace ||
            other.podName != holder->podName ||
            (!other.podUID.empty() && !holder->podUID.empty() && other.podUID != holder->podUID) ||
            std::ranges::find(facts.pod->ips, other.address.toString()) == facts.pod->ips.end()) {
          continue;
        }
        facts.currentAllocationSeq =
            std::max(facts.currentAllocationSeq.value_or(0), other.allocatedSeq);
      }
    }
  }
  ReleaseDecision decision = decideRelease(request, facts);
  if (!decision.release) return decision;
  const OwnerKey key = *heldKey;
  Allocation released;
  auto seq = releaseLocked(key, kReasonAdminRelease, clock_.wallNow(), released);
  lock.unlock();
  if (!seq) {
    spdlog::error("release request: release of {} ({}): {}", request.address,
                  ipam::toString(key.owner), seq.error().message);
    return {.reason = kRefuseJournalFailed, .why = seq.error().message};
  }
  if (auto f = syncOrFail(*seq, "release request")) {
    return {.reason = kRefuseJournalFailed, .why = f->message};
  }
  spdlog::info("release request: released {} of {} (pod {}/{}): {} ({})",
               released.address.toString(), ipam::toString(released.owner), released.podNamespace,
               released.podName, decision.why, decision.reason);
  return decision;
}

std::vector<BlockUsage> AllocationStore::usage() const {
  std::lock_guard lock(mu_);
  std::vector<BlockUsage> out;
  std::map<std::string_view, std::size_t> index;
  for (const auto& [name, block] : blocks_) {
    index.emplace(name, out.size());
    out.push_back(BlockUsage{.name = name,
                             .used = static_cast<std::int64_t>(block.allocator->allocatedCount()),
                             .inApi = block.inApi && !block.provisional,
                             .cidr = block.cidr});
  }
  for (const auto& [key, held] : held_) {
    out[index.at(held.block)].allocations.push_back(toAllocation(key, held));
  }
  for (BlockUsage& b : out) {
    std::ranges::sort(b.allocations, std::less<>(), &Allocation::address);
  }
  return out;
}

std::uint64_t AllocationStore::freeIPs() const {
  std::lock_guard lock(mu_);
  const ipam::TimePoint now = clock_.wallNow();
  // An ADD takes one address of each family the node serves: the scarcest family decides.
  std::optional<std::uint64_t> least;
  for (ipam::Family f : {ipam::Family::kV4, ipam::Family::kV6}) {
    if (!servesLocked(f)) continue;
    std::uint64_t free = 0;
    for (const auto& [name, block] : blocks_) {
      if (block.usable() && block.cidr.family() == f) free += block.allocator->freeCount(now);
    }
    least = std::min(least.value_or(free), free);
  }
  return least.value_or(0);
}

void AllocationStore::refreshBlockMetricsLocked() {
  if (!metrics_) return;
  const ipam::TimePoint now = clock_.wallNow();
  struct Counts {
    std::size_t usable = 0, notReady = 0, orphaned = 0;
  };
  Counts v4, v6;  // by family: a dual-stack node needs a usable block of each
  std::size_t orphanedAllocations = 0;
  for (const auto& [name, block] : blocks_) {
    Counts& counts = block.cidr.family() == ipam::Family::kV4 ? v4 : v6;
    if (!block.inApi) {
      ++counts.orphaned;
      orphanedAllocations += block.allocator->allocatedCount();
    } else if (block.usable()) {
      ++counts.usable;
    } else {
      ++counts.notReady;
    }
    metrics_->setBlockFreeIPs(name, block.cidr.family(),
                              block.usable() ? block.allocator->freeCount(now) : 0);
  }
  for (const auto& [family, counts] :
       {std::pair{ipam::Family::kV4, v4}, std::pair{ipam::Family::kV6, v6}}) {
    metrics_->setBlocks(BlockUse::kUsable, family, counts.usable);
    metrics_->setBlocks(BlockUse::kNotReady, family, counts.notReady);
    metrics_->setBlocks(BlockUse::kOrphaned, family, counts.orphaned);
  }
  metrics_->setOrphanedAllocations(orphanedAllocations);
}

RecordedState AllocationStore::snapshotLocked(ipam::TimePoint now) const {
  RecordedState state;
  for (const auto& [name, block] : blocks_) {
    RecordedBlock recorded{.cidr = block.cidr};
    for (const auto& cooling : block.allocator->cooling(now)) {
      recorded.released[cooling.address] = cooling.until - options_.cooldown;
    }
    if (recorded.released.empty() && block.allocator->allocatedCount() == 0) continue;
    state.emplace(name, std::move(recorded));
  }
  for (const auto& [key, held] : held_) {
    state[held.block].cidr = blocks_.at(held.block).cidr;
    state[held.block].allocations[held.address] = AllocationRecord{
        .address = held.address,
        .owner = key.owner,
        .podNamespace = held.podNamespace,
        .podName = held.podName,
        .podUID = held.podUID,
        .network = held.network,
        .seq = held.allocatedSeq,
    };
  }
  return state;
}

base::Result<bool> AllocationStore::compactIfNeeded(bool force) {
  std::lock_guard lock(mu_);
  const auto stats = journal_.stats();
  if (!force && stats.entriesSinceSnapshot < options_.compactAfterEntries) return false;
  const std::string snapshot = encodeSnapshot(snapshotLocked(clock_.wallNow()));
  auto seq = journal_.compact(snapshot, journal_.lastSeq());
  if (!seq) return std::unexpected(seq.error());
  spdlog::info("journal {}: compacted {} entries into a snapshot of {} allocations ({} bytes)",
               journal_.path().string(), stats.entriesSinceSnapshot, held_.size(), snapshot.size());
  return true;
}

std::optional<std::string> AllocationStore::invariantViolation() const {
  std::lock_guard lock(mu_);
  std::size_t allocated = 0;
  for (const auto& [name, block] : blocks_) {
    if (auto v = block.allocator->invariantViolation())
      return fmt::format("block {}: {}", name, *v);
    allocated += block.allocator->allocatedCount();
    for (const auto& a : block.allocator->allocations()) {
      auto it = held_.find(OwnerKey{a.owner, a.address.family()});
      if (it == held_.end()) {
        return fmt::format("block {}: {} is allocated to {} but the owner index does not know it",
                           name, a.address.toString(), ipam::toString(a.owner));
      }
      if (it->second.block != name || it->second.address != a.address) {
        return fmt::format("block {}: {} of {} is indexed as {} in {}", name, a.address.toString(),
                           ipam::toString(a.owner), it->second.address.toString(),
                           it->second.block);
      }
    }
  }
  if (allocated != held_.size()) {
    return fmt::format("{} addresses allocated in blocks but {} owners indexed", allocated,
                       held_.size());
  }
  return std::nullopt;
}

}  // namespace vnetipam::agent
