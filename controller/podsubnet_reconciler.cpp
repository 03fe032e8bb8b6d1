#include "controller/podsubnet_reconciler.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/validation.h"
#include "controller/controller_internal.h"
#include "controller/pool_status.h"
#include "controller/subnet_usage.h"
#include "lib/azure/network.h"

namespace vnetipam::controller {

using nlohmann::json;

std::optional<std::string> PodSubnetReconciler::carve(const std::string& name,
                                                      std::unique_lock<std::mutex>& lock) {
  const api::PodSubnet subnet = state_.subnets.at(name);
  const auto fieldErrors = api::validate(subnet);
  if (!fieldErrors.empty()) {
    state_.subnetStates[name].notCarvedMessage = api::describe("PodSubnet", name, fieldErrors);
    return std::nullopt;  // wait for the spec to change
  }
  auto read = readCarvePrefixes(name, subnet, lock);
  if (!read) return read.error();
  SubnetState& state = state_.subnetStates[name];
  if (state.blocks) return std::nullopt;  // carved meanwhile

  // The pool's family is its first prefix's; the addresses it claims are its prefixes of that
  // family, and it carves those that hold a block (growPoolLocked notes the others).
  const ipam::Prefix& first = read->prefixes.front();
  state.ranges.clear();
  for (const ipam::Prefix& prefix : read->prefixes) {
    if (prefix.family() == first.family()) state.ranges.push_back(prefix);
  }
  const int length = subnet.spec.blockPrefixLength;
  if (auto refusal = carveRefusalLocked(name, subnet, state.ranges, read->fromAzure)) {
    state.notCarvedMessage = std::move(*refusal);
    return std::nullopt;
  }
  if (auto failure = makePoolLocked(name, length, *read)) {
    state.notCarvedMessage = std::move(*failure);
    return std::nullopt;
  }
  admitBlocksLocked(name);
  takeOnNicPrefixesLocked(name, read->onNics);
  spdlog::info("PodSubnet {}: carved {} into {} usable /{} blocks, {} in use", name,
               ipam::toString(state.blocks->ranges()), state.blocks->usableCount(), length,
               state.blocks->allocatedCount());
  state.notCarvedMessage.clear();
  for (const auto& [node, info] : state_.nodes)
    state_.enqueue(nodeKey(node));
  return std::nullopt;
}

std::expected<PodSubnetReconciler::CarveRead, std::optional<std::string>>
PodSubnetReconciler::readCarvePrefixes(const std::string& name, const api::PodSubnet& subnet,
                                       std::unique_lock<std::mutex>& lock) {
  CarveRead read;
  read.fromAzure = !subnet.spec.cidr.has_value();
  if (!read.fromAzure) {
    read.prefixes.push_back(*ipam::Prefix::parse(*subnet.spec.cidr));  // validated by carve
    return read;
  }
  if (!state_.cloud) {
    state_.subnetStates[name].notCarvedMessage =
        "spec.azureSubnetID needs the controller to run with --cloud=azure; with --cloud=none "
        "set spec.cidr instead";
    return std::unexpected(std::nullopt);
  }
  const std::string id = subnet.spec.azureSubnetID.value_or("");
  read.ticket = usage_ ? usage_->beginRead() : 0;
  lock.unlock();
  auto subnetRead = state_.cloud->readSubnet(id);
  lock.lock();
  if (!state_.subnets.contains(name)) return std::unexpected(std::nullopt);
  if (!subnetRead || subnetRead->prefixes.empty()) {
    std::string why = !subnetRead ? subnetRead.error().message : "it has no address prefix";
    state_.subnetStates[name].notCarvedMessage =
        fmt::format("spec.azureSubnetID: cannot read the Azure subnet {}: {}", id, why);
    // Retry: Azure may answer later.
    return std::unexpected(state_.subnetStates[name].notCarvedMessage);
  }
  read.prefixes = std::move(subnetRead->prefixes);
  for (const OwnIpConfiguration& config : subnetRead->ours) {
    if (config.prefix) read.onNics.push_back(*config.prefix);
  }
  return read;
}

std::optional<std::string> PodSubnetReconciler::carveRefusalLocked(
    const std::string& name, const api::PodSubnet& subnet, std::span<const ipam::Prefix> ranges,
    bool fromAzure) const {
  const ipam::Prefix& first = ranges.front();
  const int length = subnet.spec.blockPrefixLength;
  const bool v4 = first.family() == ipam::Family::kV4;
  const ipam::Prefix widest = *std::ranges::min_element(ranges, {}, &ipam::Prefix::length);
  const int minLength =
      std::max(widest.length(), v4 ? api::kMinBlockPrefixLengthV4 : api::kMinBlockPrefixLengthV6);
  const int maxLength = v4 ? api::kMaxBlockPrefixLengthV4 : api::kMaxBlockPrefixLengthV6;
  if (length < minLength || length > maxLength) {
    return fmt::format("spec.blockPrefixLength: {} does not fit the {} subnet {}{}: use {}..{}",
                       length, ipam::toString(first.family()), widest.toString(),
                       fromAzure ? " read from Azure" : "", minLength, maxLength);
  }
  // With a cloud every block goes on a NIC, which Azure allows for IPv4 only (pool_status.h).
  if (state_.cloud) {
    if (auto refusal = cloudCarveRefusal(first, fromAzure)) return refusal;
  }
  // Two PodSubnets over the same addresses would hand one block out twice: the older one wins
  // (then the name), the other is refused until it or the overlap goes.
  const auto created = subnet.metadata.creationTimestamp.value_or("");
  for (const auto& [otherName, other] : state_.subnets) {
    if (otherName == name) continue;
    const auto otherState = state_.subnetStates.find(otherName);
    if (otherState == state_.subnetStates.end()) continue;
    const auto otherCreated = other.metadata.creationTimestamp.value_or("");
    const bool otherFirst = otherState->second.blocks.has_value() ||
                            std::tie(otherCreated, otherName) < std::tie(created, name);
    if (!otherFirst) continue;
    for (const ipam::Prefix& mine : ranges) {
      const auto theirs = std::ranges::find_if(
          otherState->second.ranges, [&](const ipam::Prefix& r) { return r.overlaps(mine); });
      if (theirs == otherState->second.ranges.end()) continue;
      return fmt::format(
          "{} {} overlaps PodSubnet \"{}\" ({}): no blocks are carved while both exist",
          fromAzure ? "the Azure subnet" : "spec.cidr", mine.toString(), otherName,
          theirs->toString());
    }
  }
  return std::nullopt;
}

std::optional<std::string> PodSubnetReconciler::makePoolLocked(const std::string& name, int length,
                                                               const CarveRead& read) {
  SubnetState& state = state_.subnetStates.at(name);
  // Carved without spec.reservedCIDRs, which applyReservedLocked puts on once every existing block
  // is occupied, just as it does at each edit of them: a block that exists in a reserved range is
  // the pool's and is released (ReservedRange), whether the range was reserved while this
  // controller ran or before it started. The first prefix that holds a block starts the pool;
  // growPoolLocked adds the others, as it does for a prefix added to the Azure subnet later.
  const ipam::Prefix start = *std::ranges::find_if(
      state.ranges, [&](const ipam::Prefix& r) { return r.length() <= length; });
  const ipam::CarveOptions options{.excludeAzureReserved = read.fromAzure, .reserved = {}};
  auto carved = ipam::BlockPool::carve(start, length, options);
  if (!carved) {
    return fmt::format("cannot carve {} into /{} blocks: {}", start.toString(), length,
                       carved.error().message);
  }
  state.blocks = std::move(*carved);
  state.trust = TrustPool{
      .ranges = {start}, .blockPrefixLength = length, .reserved = {}, .azure = read.fromAzure};
  state.ranges = {start};
  state.prefixesTicket = read.ticket;
  (void)growPoolLocked(name, read.prefixes);
  state.holders.clear();
  return std::nullopt;
}

void PodSubnetReconciler::admitBlocksLocked(const std::string& name) {
  // Judge and occupy every block that exists before handing out any new one, earliest
  // creationTimestamp (then name) first: of two overlapping blocks the earlier one is held, the
  // same way on every start (block_trust.h). Refused blocks stay refused.
  std::vector<TrustCandidate> order;
  for (const auto& [blockName, info] : state_.blocks) {
    if (info.podSubnet != name || info.trust == Trust::kInvalid) continue;
    order.push_back({.name = blockName,
                     .podSubnet = info.podSubnet,
                     .subnetLabel = info.subnetLabel,
                     .cidr = info.cidr,
                     .created = info.created});
  }
  sortForAdmission(order);
  for (const TrustCandidate& candidate : order) {
    BlockInfo& info = state_.blocks.at(candidate.name);
    info.trust = Trust::kUndecided;
    state_.judgeBlockLocked(candidate.name, info);
    state_.enqueue(nodeKey(info.node));
    state_.enqueue(nicKey(info.node));
  }
}

void PodSubnetReconciler::takeOnNicPrefixesLocked(const std::string& name,
                                                  std::span<const ipam::Prefix> onNics) {
  ipam::BlockPool& pool = *state_.poolLocked(name);
  // Our prefixes on some NIC that no IPBlock holds: a join whose IPBlock the controller before
  // this one did not live to create (its node's NIC pass makes the IPBlock:
  // adoptOwnPrefixesLocked), or a leftover that the NIC pass or the orphan sweep takes off. Taken
  // as leaks until then, so that no other node is carved one of them: Azure would refuse it on a
  // second NIC.
  std::size_t onNicsTaken = 0;
  for (const ipam::Prefix& prefix : onNics) {
    if (prefix.length() != pool.blockLength() || !pool.contains(prefix) ||
        pool.isAllocated(prefix) || !pool.occupy(prefix)) {
      continue;
    }
    state_.leakCidrLocked(name, prefix, state_.onNicLeakGrace(), true);
    ++onNicsTaken;
  }
  pool.finishOccupying();
  if (onNicsTaken > 0) {
    spdlog::info(
        "PodSubnet {}: {} prefix(es) of ours are on NICs with no IPBlock: not carved until their "
        "node's NIC pass adopts them or they are removed",
        name, onNicsTaken);
    if (orphanSweepTrigger_) orphanSweepTrigger_();
  }
}

namespace {

// Retires the ranges of `pool` that are not among the Azure subnet's `prefixes`, noting each in
// `uncarved`. Returns whether the retired ranges changed.
bool retireGone(ipam::BlockPool& pool, std::span<const ipam::Prefix> prefixes,
                std::vector<UncarvedPrefix>& uncarved) {
  // A range no longer among the Azure subnet's prefixes (an operator removed it: Azure allows that
  // only while no ipConfiguration is in it) is retired: no block is carved there, a block the
  // pool holds there is released as one in a reserved range is. Back on the subnet, it is active.
  std::vector<ipam::Prefix> gone;
  for (const ipam::Prefix& range : pool.ranges()) {
    if (std::ranges::find(prefixes, range) != prefixes.end()) continue;
    gone.push_back(range);
    uncarved.push_back({.prefix = range,
                        .why = "it is no longer one of the Azure subnet's prefixes: no block is "
                               "carved there, and a block there is released"});
  }
  return pool.setRetired(gone);
}

}  // namespace

std::vector<ipam::Prefix> PodSubnetReconciler::growPoolLocked(
    const std::string& name, std::span<const ipam::Prefix> prefixes) {
  SubnetState& state = state_.subnetStates.at(name);
  std::vector<ipam::Prefix> added;
  if (!state.blocks || !state.trust) return added;
  ipam::BlockPool& pool = *state.blocks;
  std::vector<UncarvedPrefix> uncarved;
  for (const ipam::Prefix& prefix : prefixes) {
    if (std::ranges::find(pool.ranges(), prefix) != pool.ranges().end()) continue;
    if (std::optional<std::string> why = addPrefixLocked(name, pool, prefix)) {
      uncarved.push_back({.prefix = prefix, .why = std::move(*why)});
    } else {
      added.push_back(prefix);
    }
  }
  const bool retiredChanged = retireGone(pool, prefixes, uncarved);
  if (!added.empty() || retiredChanged) {
    state.ranges.assign(pool.ranges().begin(), pool.ranges().end());
    state.trust->ranges = pool.activeRanges();
    // Blocks in a range added or active again may go to a node that was short.
    for (const std::string& shortNode : state.shortNodes)
      state_.enqueue(nodeKey(shortNode));
  }
  if (retiredChanged) {
    for (const auto& [blockName, info] : state_.blocks) {
      if (info.podSubnet == name && info.trust == Trust::kAccepted &&
          pool.isReservedAllocated(info.cidr)) {
        state_.enqueue(nodeKey(info.node));
      }
    }
  }
  if (uncarved != state.uncarvedPrefixes && !uncarved.empty()) {
    spdlog::warn("PodSubnet {}: {}", name, uncarvedPrefixesNote(uncarved));
  }
  state.uncarvedPrefixes = std::move(uncarved);
  return added;
}

std::optional<std::string> PodSubnetReconciler::addPrefixLocked(const std::string& name,
                                                                ipam::BlockPool& pool,
                                                                const ipam::Prefix& prefix) {
  std::optional<std::string> why = uncarvableReason(prefix, pool.family(), pool.blockLength());
  for (const auto& [otherName, other] : state_.subnetStates) {
    if (why || otherName == name) continue;
    const auto theirs = std::ranges::find_if(
        other.ranges, [&](const ipam::Prefix& r) { return r.overlaps(prefix); });
    if (theirs != other.ranges.end()) {
      why = fmt::format("it overlaps PodSubnet \"{}\" ({}), which holds those addresses", otherName,
                        theirs->toString());
    }
  }
  if (!why) {
    if (auto joined = pool.addRange(prefix); !joined) why = joined.error().message;
  }
  return why;
}

std::optional<std::string> PodSubnetReconciler::reconcile(const std::string& name) {
  std::unique_lock lock(state_.mutex);
  if (!state_.subnets.contains(name)) {
    forgetSubnetLocked(name);
    return std::nullopt;
  }
  std::optional<std::string> carveError;
  if (!state_.subnetStates[name].blocks) carveError = carve(name, lock);
  if (!state_.subnets.contains(name)) return std::nullopt;
  const api::PodSubnet& subnet = state_.subnets.at(name);
  SubnetState& state = state_.subnetStates[name];
  growFromUsageLocked(name, subnet, state);
  applyReservedLocked(name, subnet, state);
  const Time t = state_.now();
  freeLeaksLocked(name, state, t);
  const StatusDecision decision = decideStatusLocked(name, subnet, state, t);
  lock.unlock();

  return writeStatus(name, decision, std::move(carveError));
}

void PodSubnetReconciler::forgetSubnetLocked(const std::string& name) {
  state_.subnetStates.erase(name);
  if (state_.metrics) state_.metrics->removePool(name);
  for (const auto& [blockName, info] : state_.blocks) {
    if (info.podSubnet == name) state_.enqueue(nodeKey(info.node));
  }
}

void PodSubnetReconciler::growFromUsageLocked(const std::string& name, const api::PodSubnet& subnet,
                                              SubnetState& state) {
  // A prefix added to the Azure subnet since the carve (its prefixes as the usage poller last read
  // them, subnet_usage.h) is carved now: a new range, free at once, used once the others are full;
  // one gone is retired. Only a read that started after the carve's own: an older one may show
  // the subnet as it was before.
  if (!state.blocks || !usage_ || !subnet.spec.azureSubnetID) return;
  const auto read = usage_->prefixes(*subnet.spec.azureSubnetID);
  if (!read || read->ticket <= state.prefixesTicket) return;
  const std::vector<ipam::Prefix> added = growPoolLocked(name, read->prefixes);
  if (added.empty()) return;
  spdlog::info(
      "PodSubnet {}: the Azure subnet's new prefix(es) {} carved: {} usable /{} "
      "blocks in {}",
      name, ipam::toString(added), state.blocks->usableCount(), state.blocks->blockLength(),
      ipam::toString(state.blocks->ranges()));
}

void PodSubnetReconciler::applyReservedLocked(const std::string& name, const api::PodSubnet& subnet,
                                              SubnetState& state) {
  if (!state.blocks || !state.trust) return;
  // spec.reservedCIDRs as they are now, live: a range newly reserved is not carved again and a
  // block the pool holds there is a reserved allocation, which its node releases
  // (node_reconciler.cpp); a range no longer reserved is free again. From now on a block made in
  // a reserved range is refused (ReservedRange).
  std::vector<ipam::Prefix> reserved;
  for (const std::string& text : subnet.spec.reservedCIDRs) {
    if (auto prefix = ipam::Prefix::parse(text)) reserved.push_back(*prefix);
  }
  const std::uint64_t usableBefore = state.blocks->usableCount();
  state.blocks->setReserved(reserved);
  if (state.trust->reserved == state.blocks->reserved()) return;
  state.trust->reserved = state.blocks->reserved();
  std::size_t releasing = 0;
  for (const auto& [blockName, info] : state_.blocks) {
    if (info.podSubnet != name || info.trust != Trust::kAccepted ||
        !state.blocks->isReservedAllocated(info.cidr)) {
      continue;
    }
    ++releasing;
    state_.enqueue(nodeKey(info.node));
  }
  spdlog::info(
      "PodSubnet {}: spec.reservedCIDRs applied: {} usable blocks ({} before); {} block(s) in "
      "a reserved range are released",
      name, state.blocks->usableCount(), usableBefore, releasing);
  // Blocks freed by a range no longer reserved may go to a node that was short.
  for (const std::string& shortNode : state.shortNodes)
    state_.enqueue(nodeKey(shortNode));
}

void PodSubnetReconciler::freeLeaksLocked(const std::string& name, SubnetState& state, Time now) {
  if (!state.blocks) return;
  for (auto it = state.leaks.begin(); it != state.leaks.end();) {
    if (now - it->second.since < state_.config.leakGrace) {
      ++it;
      continue;
    }
    const ipam::Prefix leaked = it->first;
    const bool held = std::ranges::any_of(state_.blocks, [&](const auto& entry) {
      return entry.second.podSubnet == name && entry.second.cidr == leaked;
    });
    if (!held && state.blocks->isAllocated(leaked)) {
      spdlog::info("PodSubnet {}: {} was {}; no IPBlock holds it, so it is free again", name,
                   leaked.toString(),
                   it->second.foundOnNic ? "on a NIC with no IPBlock when the pool was carved"
                                         : "leaked by a create of unknown outcome");
      (void)state.blocks->release(leaked);
    }
    it = state.leaks.erase(it);
  }
  if (!state.leaks.empty()) state_.enqueueAfter(subnetKey(name), state_.config.leakGrace);
}

PodSubnetReconciler::StatusDecision PodSubnetReconciler::decideStatusLocked(
    const std::string& name, const api::PodSubnet& subnet, SubnetState& state, Time now) {
  const StatusSnapshot snapshot = snapshotStatusLocked(name, subnet, state);
  const PoolStatusInput input{.blocks = state_.poolLocked(name),
                              .notCarvedMessage = state.notCarvedMessage,
                              .blockUsed = snapshot.blockUsed,
                              .shortNodes = snapshot.shortNodes,
                              .foreignAddresses = foreignAddressesLocked(name),
                              .uncarvedPrefixes = state.uncarvedPrefixes,
                              .reservedBlocks = snapshot.reservedBlocks,
                              .reservedOutside = snapshot.reservedOutside,
                              .generation = subnet.metadata.generation,
                              .now = now};
  StatusDecision decision;
  decision.status = computePoolStatus(subnet.status, input);
  const auto exhausted = std::ranges::find(decision.status.conditions, api::kConditionExhausted,
                                           &api::Condition::type);
  const bool isExhausted =
      exhausted != decision.status.conditions.end() && exhausted->status == "True";
  setPoolMetricsLocked(name, state, decision.status, isExhausted);
  decision.changed = decision.status != subnet.status;
  decision.ref = {.apiVersion = std::string(api::kApiVersion),
                  .kind = std::string(api::kPodSubnetKind),
                  .name = name,
                  .ns = "",
                  .uid = subnet.metadata.uid};
  decision.reportExhausted = isExhausted && !state.exhaustedReported;
  state.exhaustedReported = isExhausted;
  decision.exhaustedMessage = isExhausted ? exhausted->message : std::string();
  return decision;
}

PodSubnetReconciler::StatusSnapshot PodSubnetReconciler::snapshotStatusLocked(
    const std::string& name, const api::PodSubnet& subnet, const SubnetState& state) const {
  StatusSnapshot snapshot;
  for (const auto& [blockName, info] : state_.blocks) {
    // A refused block's status.used is not the pool's (it holds no CIDR of it).
    if (info.podSubnet != name || info.trust != Trust::kAccepted) continue;
    snapshot.blockUsed.push_back(info.used);
    if (state.blocks && state.blocks->isReservedAllocated(info.cidr)) {
      snapshot.reservedBlocks.push_back(blockName);
    }
  }
  std::ranges::sort(snapshot.reservedBlocks);
  if (state.blocks) {
    for (const std::string& text : subnet.spec.reservedCIDRs) {
      const auto prefix = ipam::Prefix::parse(text);
      if (prefix &&
          std::ranges::find(state.blocks->reserved(), *prefix) == state.blocks->reserved().end()) {
        snapshot.reservedOutside.push_back(*prefix);
      }
    }
  }
  snapshot.shortNodes.assign(state.shortNodes.begin(), state.shortNodes.end());
  return snapshot;
}

void PodSubnetReconciler::setPoolMetricsLocked(const std::string& name, const SubnetState& state,
                                               const api::PodSubnetStatus& status, bool exhausted) {
  if (!state_.metrics) return;
  state_.metrics->setPool(
      name,
      PoolNumbers{.totalBlocks = status.totalBlocks,
                  .allocatedBlocks = status.allocatedBlocks,
                  .totalIPs = state.blocks ? poolAddresses(status.totalBlocks,
                                                           prefixSize(ipam::Prefix::masked(
                                                               state.blocks->ranges()[0].address(),
                                                               state.blocks->blockLength())))
                                           : 0,
                  .allocatedIPs = status.allocatedIPs,
                  .exhausted = exhausted,
                  .foreignAddresses = status.foreignAddresses});
}

std::optional<std::string> PodSubnetReconciler::writeStatus(const std::string& name,
                                                            const StatusDecision& decision,
                                                            std::optional<std::string> carveError) {
  if (decision.reportExhausted) {
    state_.event(decision.ref, true, "Exhausted", "Allocate", decision.exhaustedMessage);
  }
  if (!decision.changed) return carveError;
  if (!state_.canWrite()) return std::string("not the leader: status not written");
  auto written = state_.client.applyStatus(
      fmt::format("{}/{}", kPodSubnetsPath, name), api::podSubnetStatusApply(name, decision.status),
      {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
  if (!written) {
    if (written.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    return fmt::format("PodSubnet {}: writing status: {}", name, written.error().message);
  }
  // Keep what we wrote, so the next pass compares with it even before the watch brings it.
  if (auto fresh = api::podSubnetFromJson(*written)) {
    std::lock_guard relock(state_.mutex);
    const auto found = state_.subnets.find(name);
    if (found != state_.subnets.end() && found->second.metadata.uid == fresh->metadata.uid &&
        notOlder(fresh->metadata.resourceVersion, found->second.metadata.resourceVersion)) {
      found->second = std::move(*fresh);
    }
  }
  return carveError;
}

}  // namespace vnetipam::controller
