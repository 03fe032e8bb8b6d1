// The Node reconciler: keeps each node's free IPs at or above minFreeIPsPerNode of every PodSubnet
// that selects it (node_blocks.h decides), creating and deleting IPBlocks. State and wiring:
// controller.h.
//
// A node the cloud can never program (Cloud::refuseNode: a VM of a Uniform scale set) is treated
// as selected by no PodSubnet: it is carved no block, and any block it has (made before the
// refusal existed) is released, so none waits Pending for a NIC that cannot take it. When some
// PodSubnet selects it, its VnetIpamNICProgrammed condition turns False with the refusal's reason
// and message, once, with one Warning Event of that reason; no cloud call is made for it.
#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/naming.h"
#include "controller/controller.h"
#include "controller/controller_internal.h"
#include "controller/nic_conditions.h"
#include "controller/node_blocks.h"

namespace vnetipam::controller {

using nlohmann::json;

namespace {

bool isUnknownOutcome(const kube::Error& error) {
  return error.code == kube::ErrorCode::kTransport || error.code == kube::ErrorCode::kServerError;
}

}  // namespace

void Controller::leakCidrLocked(const std::string& subnet, const ipam::Prefix& cidr,
                                std::chrono::seconds grace, bool foundOnNic) {
  auto state = subnetStates_.find(subnet);
  if (state == subnetStates_.end()) return;
  // The PodSubnet reconciler frees a leak leakGrace after the time recorded.
  state->second.leaks[cidr] = {.since = now() + grace - config_.leakGrace,
                               .foundOnNic = foundOnNic};
  enqueueAfter(subnetKey(subnet), grace + std::chrono::seconds(1));
}

kube::Result<std::optional<BlockInfo>> Controller::deleteBlock(const std::string& name,
                                                               const std::string& uid) {
  auto removed = client_.remove(blockPath(name), {.uid = uid});
  if (!removed) {
    if (removed.error().code == kube::ErrorCode::kNotFound ||
        removed.error().code == kube::ErrorCode::kConflict) {
      return std::optional<BlockInfo>();
    }
    return std::unexpected(std::move(removed.error()));
  }
  std::optional<BlockInfo> updated = decodeBlock(*removed);
  std::lock_guard lock(mutex_);
  if (updated && updated->uid == uid) {
    upsertBlockLocked(name, *updated, false);
    return updated;
  }
  // An answer that does not decode: the state still learns that the block is going.
  const auto found = blocks_.find(name);
  if (found == blocks_.end() || found->second.uid != uid) return std::optional<BlockInfo>();
  found->second.deleting = true;
  return std::optional<BlockInfo>(found->second);
}

std::optional<std::string> Controller::createBlock(const std::string& node, const std::string& name,
                                                   const Join& join, const std::string& providerID,
                                                   const std::string& programmedOn, bool& again) {
  if (!canWrite()) return std::string("not the leader");
  api::IPBlock block;
  block.metadata.name = name;
  block.metadata.labels.emplace(api::kSubnetLabel, join.subnet);
  if (api::isLabelValue(node)) block.metadata.labels.emplace(api::kNodeLabel, node);
  if (!providerID.empty()) block.metadata.annotations.emplace(kProviderIDAnnotation, providerID);
  block.metadata.annotations.emplace(api::kProgrammedOnAnnotation, programmedOn);
  // Only with a cloud is there a NIC to take the prefix off before the block may go; without
  // one the finalizer would only keep the block after the controller is gone (nicPass).
  // kAgentDrainFinalizer always, in the create itself (no second write): the block and its CIDR
  // stay until the node's agent has stopped serving it (node_blocks.h, "Releasing").
  block.metadata.finalizers.emplace_back(api::kAgentDrainFinalizer);
  if (cloud_) block.metadata.finalizers.emplace_back(api::kNicReleaseFinalizer);
  block.spec = api::IPBlockSpec{.podSubnet = join.subnet,
                                .cidr = join.cidr.toString(),
                                .nodeName = node,
                                .extra = json::object()};
  auto created = client_.create(kIPBlocksPath, api::toJson(block));
  std::lock_guard lock(mutex_);
  // Taken while the join still stands, so that the state knows the block as the NIC pass's own.
  if (created) {
    if (auto info = decodeBlock(*created)) upsertBlockLocked(name, std::move(*info), false);
  }
  // Whatever the answer, the join has ended: the block exists, or its CIDR is freed or leaked.
  if (auto j = joins_.find(node); j != joins_.end()) {
    j->second.erase(name);
    if (j->second.empty()) joins_.erase(j);
  }
  auto state = subnetStates_.find(join.subnet);
  ipam::BlockPool* pool =
      state != subnetStates_.end() && state->second.blocks ? &*state->second.blocks : nullptr;
  if (created) {
    if (metrics_) metrics_->blockAllocated(join.subnet);
    spdlog::debug("node {}: created IPBlock {} ({}, on {})", node, name, join.cidr.toString(),
                  programmedOn);
    return std::nullopt;
  }
  const kube::Error& error = created.error();
  // After a PUT the prefix may be on the NIC: until the NIC pass has removed it as unowned
  // (nicOrphanGrace), the CIDR is not handed out again.
  const std::chrono::seconds grace = join.putSent ? onNicLeakGrace() : config_.leakGrace;
  if (error.code == kube::ErrorCode::kAlreadyExists) {
    // Someone holds this CIDR (another writer, or our own create the watch has not shown yet):
    // it stays taken in the pool, and the node tries the next one.
    spdlog::info("node {}: IPBlock {} already exists; trying another block", node, name);
    again = true;
    // The block that exists is not the one the NIC pass planned (its prefix is on the NIC for
    // the join): the pass looks at the node again.
    if (cloud_) enqueue(nicKey(node));
    return std::nullopt;
  }
  if (isUnknownOutcome(error)) {
    // The block may exist. Leak the CIDR rather than risk handing it out twice; the PodSubnet
    // reconciler frees it if no IPBlock with it shows up within the grace.
    leakCidrLocked(join.subnet, join.cidr, grace);
    return fmt::format("creating IPBlock {}: {} (outcome unknown)", name, error.message);
  }
  // Refused: the object certainly was not created. Its prefix may be on the NIC, though.
  if (join.putSent) {
    leakCidrLocked(join.subnet, join.cidr, grace);
  } else if (pool) {
    (void)pool->release(join.cidr);
  }
  return fmt::format("creating IPBlock {}: {}", name, error.message);
}

std::optional<std::string> Controller::reconcileNode(const std::string& name) {
  struct Create {
    std::string subnet;
    ipam::Prefix cidr;
    std::string blockName;
  };
  struct Delete {
    std::string name;
    std::string uid;
    std::string why;
  };
  std::vector<Create> creates;
  std::vector<Delete> deletes;
  std::vector<std::string> reports;       // refused blocks whose condition is not written yet
  std::vector<std::string> subnetChecks;  // undecided blocks naming a PodSubnet not in the cache
  std::vector<std::string> drains;        // leaving blocks of a gone node that keep agent-drain
  std::vector<std::pair<bool, std::string>> notes;  // (shortOfPool?, message) for node events
  std::string providerID;
  std::optional<NodeRefusal> refusal;          // the cloud can never program this node
  bool carvedPoolSelects = false;              // a carved PodSubnet selects it (not refused)
  bool refusedSelected = false;                // ... and some PodSubnet selects it
  std::optional<api::Condition> nicCondition;  // its VnetIpamNICProgrammed
  kube::ObjectReference ref;
  {
    std::lock_guard lock(mutex_);
    ref = nodeRef(name);
    const auto node = nodes_.find(name);
    if (node != nodes_.end()) {
      providerID = node->second.providerID;
      nicCondition = node->second.nicCondition;
      if (cloud_) refusal = cloud_->refuseNode(providerID);  // pure: no call to the cloud
    }
    static const std::set<std::string> kNone;
    const auto index = nodeBlocks_.find(name);
    const std::set<std::string>& names = index == nodeBlocks_.end() ? kNone : index->second;
    const Time t = now();

    for (auto& [subnetName, subnet] : subnets_) {
      NodeState nodeState = node == nodes_.end()                      ? NodeState::kGone
                            : nodeSelected(node->second, subnet.spec) ? NodeState::kSelected
                                                                      : NodeState::kNotSelected;
      const bool refusedHere = refusal && nodeState == NodeState::kSelected;
      if (refusedHere) {
        nodeState = NodeState::kNotSelected;
        refusedSelected = true;
      }
      std::vector<NodeBlock> mine;
      for (const std::string& blockName : names) {
        const BlockInfo& info = blocks_.at(blockName);
        // Only what the pool accepted is the node's: a refused block is no capacity and is
        // never released (the admin deletes it); an undecided one waits for its pool.
        if (info.podSubnet != subnetName || info.trust != Trust::kAccepted) continue;
        std::optional<Time> since;
        if (auto e = emptySince_.find(blockName); e != emptySince_.end()) since = e->second;
        since = trackEmptySince(since, info.used, t);
        if (since) {
          emptySince_[blockName] = *since;
        } else {
          emptySince_.erase(blockName);
        }
        // A block in a range spec.reservedCIDRs reserved after the pool held it takes no new pods:
        // released now, the ordinary way (agent-drain keeps it while its pods hold addresses), and
        // leaving from this decision on, so that the node gets a block outside the range instead.
        const auto held = subnetStates_.find(subnetName);
        const bool reserved = !info.deleting && held != subnetStates_.end() &&
                              held->second.blocks &&
                              held->second.blocks->isReservedAllocated(info.cidr);
        if (reserved) deletes.push_back({blockName, info.uid, "ReservedRange"});
        mine.push_back(NodeBlock{.name = blockName,
                                 .cidr = info.cidr,
                                 .phase = info.phase,
                                 .deleting = info.deleting || reserved,
                                 .used = info.used,
                                 .capacity = info.capacity,
                                 .created = info.created,
                                 .emptySince = since});
      }
      // Joins (controller.h): carved, not yet on the NIC nor created. Pending blocks to the
      // decision, which is never asked to release one.
      std::set<std::string> joining;
      if (auto j = joins_.find(name); j != joins_.end()) {
        for (const auto& [blockName, join] : j->second) {
          if (join.subnet != subnetName) continue;
          joining.insert(blockName);
          mine.push_back(NodeBlock{.name = blockName,
                                   .cidr = join.cidr,
                                   .phase = api::BlockPhase::kPending,
                                   .deleting = false,
                                   .used = 0,
                                   .capacity = prefixSize(join.cidr),
                                   .created = join.since,
                                   .emptySince = std::nullopt});
        }
      }
      auto stateIt = subnetStates_.find(subnetName);
      ipam::BlockPool* pool = stateIt != subnetStates_.end() && stateIt->second.blocks
                                  ? &*stateIt->second.blocks
                                  : nullptr;
      if (nodeState == NodeState::kSelected && pool) carvedPoolSelects = true;
      if (mine.empty() && (nodeState != NodeState::kSelected || !pool)) continue;
      const ipam::Family family =
          pool ? pool->family() : (mine.empty() ? ipam::Family::kV4 : mine[0].cidr.family());
      const NodeBlockPolicy policy = NodeBlockPolicy::fromSpec(subnet.spec, family);
      const NodeBlockDecision decision = decideNodeBlocks(
          policy, NodeBlockInput{.node = nodeState,
                                 .blocks = mine,
                                 .poolFreeBlocks = pool ? pool->freeUnheldCount() : 0,
                                 .now = t});
      for (std::int64_t i = 0; pool && i < decision.blocksToAdd; ++i) {
        auto cidr = pool->allocateNext();
        if (!cidr) break;
        auto blockName = api::blockName(subnetName, *cidr);
        if (!blockName) {
          (void)pool->release(*cidr);
          spdlog::error("PodSubnet {}: no block name for {}: {}", subnetName, cidr->toString(),
                        blockName.error().message);
          break;
        }
        creates.push_back({subnetName, *cidr, std::move(*blockName)});
      }
      // Short of the pool only when there is a carved pool to be short of: before the carve (at
      // start-up, while Azure has not answered; or a PodSubnet deleted and made again while its
      // old blocks are still there) poolFreeBlocks is a 0 that says nothing.
      const bool shortOfPool = decision.shortOfPool && pool != nullptr;
      if (stateIt != subnetStates_.end()) {
        auto& shortNodes = stateIt->second.shortNodes;
        if (shortOfPool) {
          if (shortNodes.insert(name).second) {
            enqueueSubnetStatus(subnetName);
            notes.emplace_back(true,
                               fmt::format("PodSubnet {} has no free block left for this "
                                           "node ({} free IPs, {} wanted)",
                                           subnetName, decision.freeIPs, policy.minFreeIPsPerNode));
          }
        } else if (shortNodes.erase(name) > 0) {
          enqueueSubnetStatus(subnetName);
        }
      }
      if (decision.atMaxBlocks) {
        notes.emplace_back(false, fmt::format("the node holds maxBlocksPerNode={} blocks of "
                                              "PodSubnet {} and has only {} free IPs (wants {})",
                                              policy.maxBlocksPerNode, subnetName, decision.freeIPs,
                                              policy.minFreeIPsPerNode));
      }
      for (const BlockRelease& release : decision.releases) {
        if (joining.contains(release.name)) continue;
        deletes.push_back({release.name, blocks_.at(release.name).uid,
                           refusedHere && release.reason == ReleaseReason::kNodeNotSelected
                               ? refusal->reason
                               : std::string(toString(release.reason))});
      }
      if (decision.recheckAt) enqueueAfter(nodeKey(name), *decision.recheckAt - t);
    }
    std::vector<NodeBlockFacts> facts;
    for (const std::string& blockName : names) {
      const BlockInfo& info = blocks_.at(blockName);
      facts.push_back({.name = blockName,
                       .accepted = info.trust == Trust::kAccepted,
                       .undecided = info.trust == Trust::kUndecided,
                       .refusedUnreported = info.trust == Trust::kInvalid && !info.invalidInStatus,
                       .subnetKnown = subnets_.contains(info.podSubnet),
                       .deleting = info.deleting,
                       .agentDrain = info.agentDrain});
    }
    // The NIC pass ends the joins of a node that is gone.
    if (node == nodes_.end() && joins_.contains(name)) enqueue(nicKey(name));
    NodeBlockChores chores = decideNodeBlockChores(facts, node != nodes_.end());
    for (const std::string& blockName : chores.releaseSubnetGone)
      deletes.push_back({blockName, blocks_.at(blockName).uid, "PodSubnetGone"});
    reports = std::move(chores.reportInvalid);
    subnetChecks = std::move(chores.checkSubnet);
    drains = std::move(chores.dropAgentDrain);
  }

  if (!canWrite()) {
    std::lock_guard lock(mutex_);
    for (const Create& c : creates) {
      if (auto s = subnetStates_.find(c.subnet); s != subnetStates_.end() && s->second.blocks) {
        (void)s->second.blocks->release(c.cidr);
      }
    }
    return std::string("not the leader");
  }
  for (const auto& [shortOfPool, note] : notes)
    event(ref, true, shortOfPool ? "PodSubnetExhausted" : "MaxBlocksPerNode", "Allocate", note);

  std::optional<std::string> firstError;
  bool again = false;
  bool changed = false;
  if (cloud_) {
    // The NIC pass programs them, then creates their IPBlocks (controller.h, Join).
    if (!creates.empty()) {
      std::lock_guard lock(mutex_);
      auto& joins = joins_[name];
      for (const Create& c : creates) {
        joins.emplace(c.blockName, Join{.subnet = c.subnet, .cidr = c.cidr, .since = now()});
        spdlog::debug("node {}: carved {} ({}); programming its NIC", name, c.blockName,
                      c.cidr.toString());
      }
      changed = true;
    }
  } else {
    for (const Create& c : creates) {
      const Join block{.subnet = c.subnet, .cidr = c.cidr, .since = now()};
      if (auto e = createBlock(name, c.blockName, block, providerID,
                               std::string(api::kProgrammedOnNoCloud), again)) {
        firstError = firstError.value_or(*e);
      } else {
        changed = true;
      }
    }
  }
  for (const Delete& d : deletes) {
    if (auto deleted = deleteBlock(d.name, d.uid); !deleted) {
      firstError = firstError.value_or(
          fmt::format("deleting IPBlock {}: {}", d.name, deleted.error().message));
      continue;
    }
    changed = true;
    spdlog::info("node {}: releasing IPBlock {} ({})", name, d.name, d.why);
  }
  for (const std::string& blockName : subnetChecks) {
    const std::optional<BlockInfo> info = block(blockName);
    if (!info) continue;
    auto got = client_.get(fmt::format("{}/{}", kPodSubnetsPath, info->podSubnet));
    if (got) continue;  // it exists: the watch brings it, then the pool judges the block
    if (got.error().code != kube::ErrorCode::kNotFound) {
      firstError = firstError.value_or(fmt::format(
          "IPBlock {}: reading PodSubnet {}: {}", blockName, info->podSubnet, got.error().message));
      continue;
    }
    std::lock_guard lock(mutex_);
    const auto found = blocks_.find(blockName);
    if (found == blocks_.end() || found->second.trust != Trust::kUndecided ||
        subnets_.contains(found->second.podSubnet)) {
      continue;
    }
    judgeBlockLocked(blockName, found->second, true);
    if (found->second.trust == Trust::kInvalid && !found->second.invalidInStatus) {
      reports.push_back(blockName);
    }
  }
  for (const std::string& blockName : reports) {
    if (auto e = reportInvalid(blockName)) firstError = firstError.value_or(*e);
  }
  if (!drains.empty()) {
    auto got = client_.get(fmt::format("{}/{}", kNodesPath, name));
    if (!got && got.error().code == kube::ErrorCode::kNotFound) {
      for (const std::string& blockName : drains) {
        const std::optional<BlockInfo> info = block(blockName);
        if (!info || !info->agentDrain) continue;
        if (auto e = removeAgentDrain(blockName, *info)) {
          firstError = firstError.value_or(*e);
        } else {
          spdlog::info("node {} is gone: removed {} from IPBlock {}", name,
                       api::kAgentDrainFinalizer, blockName);
        }
      }
    } else if (!got) {
      firstError = firstError.value_or(
          fmt::format("node {}: reading the Node: {}", name, got.error().message));
    }
    // A Node the cache lacks but the API server has: its watch event is on the way.
  }
  // The refusal on the Node, once: the condition write brings the node back through the watch, and
  // then it already says so.
  if (refusedSelected && !alreadyFailing(nicCondition, refusal->reason)) {
    const api::Condition condition = nextCondition(nicCondition, api::kNodeConditionNicProgrammed,
                                                   false, refusal->reason, refusal->message, now());
    if (auto e = writeNodeNicCondition(name, condition)) {
      firstError = firstError.value_or(*e);
    } else {
      event(ref, true, refusal->reason, "ProgramNIC", boundedMessage(refusal->message));
    }
  }
  // A new node's first NIC pass, once a carved pool selects it: before that it has nothing to
  // program and nothing on its NIC could be told ours (no range is known).
  bool firstNicPass = false;
  {
    std::lock_guard lock(mutex_);
    if (!nodes_.contains(name)) {
      nicPassAfterCarve_.erase(name);
    } else if (carvedPoolSelects) {
      firstNicPass = nicPassAfterCarve_.erase(name) > 0;
    }
  }
  if (changed || firstNicPass) enqueue(nicKey(name));
  if (again) enqueue(nodeKey(name));
  return firstError;
}

}  // namespace vnetipam::controller
