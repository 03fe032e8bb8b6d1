#include "controller/node_blocks.h"

#include <algorithm>
#include <tuple>

namespace vnetipam::controller {

NodeBlockPolicy NodeBlockPolicy::fromSpec(const api::PodSubnetSpec& spec, ipam::Family family) {
  const int host_bits = std::clamp(ipam::bitLength(family) - spec.blockPrefixLength, 0, 62);
  return NodeBlockPolicy{
      .minFreeIPsPerNode = spec.minFreeIPsPerNode,
      .maxBlocksPerNode = spec.maxBlocksPerNode,
      .releaseDelay = std::chrono::seconds{spec.releaseDelaySeconds},
      .blockCapacity = std::int64_t{1} << host_bits,
  };
}

std::optional<Time> trackEmptySince(std::optional<Time> previous, std::int64_t used, Time now) {
  if (used > 0) return std::nullopt;
  return previous.value_or(now);
}

std::string_view toString(ReleaseReason reason) {
  switch (reason) {
    case ReleaseReason::kNodeGone: return "NodeGone";
    case ReleaseReason::kNodeNotSelected: return "NodeNotSelected";
    case ReleaseReason::kEmptyExtraBlock: return "EmptyExtraBlock";
  }
  return "Unknown";
}

namespace {

std::int64_t freeOf(const NodeBlock& block) {
  return std::max<std::int64_t>(block.capacity - block.used, 0);
}

}  // namespace

NodeBlockDecision decideNodeBlocks(const NodeBlockPolicy& policy, const NodeBlockInput& input) {
  NodeBlockDecision decision;
  std::int64_t active = 0;
  for (const NodeBlock& block : input.blocks) {
    if (block.leaving()) continue;
    ++active;
    decision.freeIPs += freeOf(block);
  }

  // A node that is gone or no longer selected gives everything back, in use or not: its pods are
  // gone or about to be, and its NIC is no longer ours to program.
  if (input.node != NodeState::kSelected) {
    const ReleaseReason reason =
        input.node == NodeState::kGone ? ReleaseReason::kNodeGone : ReleaseReason::kNodeNotSelected;
    for (const NodeBlock& block : input.blocks) {
      if (!block.leaving()) decision.releases.push_back({block.name, block.cidr, reason});
    }
    return decision;
  }

  // Add: enough blocks to reach minFree, within maxBlocksPerNode (leaving blocks included) and
  // within what the pool has.
  if (decision.freeIPs < policy.minFreeIPsPerNode) {
    const std::int64_t capacity = std::max<std::int64_t>(policy.blockCapacity, 1);
    const std::int64_t wanted =
        (policy.minFreeIPsPerNode - decision.freeIPs + capacity - 1) / capacity;
    const auto held = static_cast<std::int64_t>(input.blocks.size());
    const std::int64_t room = std::max<std::int64_t>(policy.maxBlocksPerNode - held, 0);
    const std::int64_t allowed = std::min(wanted, room);
    const std::int64_t pool = static_cast<std::int64_t>(
        std::min<std::uint64_t>(input.poolFreeBlocks, static_cast<std::uint64_t>(allowed)));
    decision.blocksToAdd = pool;
    decision.atMaxBlocks = wanted > room;
    decision.shortOfPool = allowed > pool;
    return decision;
  }

  // Release: at most one empty extra block, the most recently created first.
  if (active <= 1) return decision;
  const NodeBlock* candidate = nullptr;
  for (const NodeBlock& block : input.blocks) {
    if (block.leaving() || block.used != 0 || !block.emptySince) continue;
    if (decision.freeIPs - freeOf(block) < policy.minFreeIPsPerNode) continue;
    const Time due = *block.emptySince + policy.releaseDelay;
    if (due > input.now) {
      if (!decision.recheckAt || due < *decision.recheckAt) decision.recheckAt = due;
      continue;
    }
    if (candidate == nullptr ||
        std::tie(block.created, block.cidr) > std::tie(candidate->created, candidate->cidr)) {
      candidate = &block;
    }
  }
  if (candidate != nullptr) {
    decision.releases.push_back(
        {candidate->name, candidate->cidr, ReleaseReason::kEmptyExtraBlock});
  }
  return decision;
}

NodeBlockChores decideNodeBlockChores(std::span<const NodeBlockFacts> blocks, bool nodeExists) {
  NodeBlockChores out;
  for (const NodeBlockFacts& b : blocks) {
    if (b.refusedUnreported) out.reportInvalid.push_back(b.name);
    if (!b.subnetKnown) {
      if (b.accepted && !b.deleting) {
        out.releaseSubnetGone.push_back(b.name);
      } else if (b.undecided) {
        out.checkSubnet.push_back(b.name);
      }
    }
    if (!nodeExists && b.deleting && b.agentDrain) out.dropAgentDrain.push_back(b.name);
  }
  return out;
}

}  // namespace vnetipam::controller
