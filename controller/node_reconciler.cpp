#include "controller/node_reconciler.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/naming.h"
#include "controller/controller_internal.h"
#include "controller/nic_conditions.h"
#include "controller/node_blocks.h"

namespace vnetipam::controller {

using nlohmann::json;

std::optional<std::string> NodeReconciler::removeAgentDrain(const std::string& name,
                                                            const BlockInfo& info) {
  std::vector<std::string> finalizers;
  for (const std::string& f : info.otherFinalizers) {
    if (f != api::kAgentDrainFinalizer) finalizers.push_back(f);
  }
  if (info.hasFinalizer) finalizers.emplace_back(api::kNicReleaseFinalizer);
  auto patched = state_.client.mergePatch(blockPath(name),
                                          api::finalizersPatch(finalizers, info.resourceVersion));
  if (!patched) {
    if (patched.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    return fmt::format("IPBlock {}: removing finalizer {}: {}", name, api::kAgentDrainFinalizer,
                       patched.error().message);
  }
  if (auto updated = state_.decodeBlock(*patched)) {
    std::lock_guard lock(state_.mutex);
    state_.upsertBlockLocked(name, std::move(*updated), false);
  }
  return std::nullopt;
}

std::optional<std::string> NodeReconciler::reportInvalid(const std::string& name) {
  if (!state_.canWrite()) return std::string("not the leader");
  const std::optional<BlockInfo> info = state_.block(name);
  if (!info || info->trust != Trust::kInvalid || info->invalidInStatus) return std::nullopt;
  // The first Invalid condition the block gets (invalidInStatus: none yet), so none to keep the
  // time of.
  const api::Condition condition =
      nextCondition(std::nullopt, api::kConditionInvalid, true,
                    std::string(toString(info->invalidRule)), info->invalidMessage, state_.now());
  api::IPBlockControllerStatus status{
      .phase = {}, .lastTransitionTime = {}, .capacity = {}, .nic = {}, .conditions = {condition}};
  // A block programmed before it was refused (by an earlier controller, judging against another
  // pool) keeps a Programmed entry, now False: left out of this apply it would vanish, and True
  // would be a lie, since a refused block's prefix is removed from the NIC as unowned.
  if (info->programmed) {
    status.conditions.push_back(nextCondition(
        info->programmed, api::kConditionProgrammed, false, std::string(kReasonRefused),
        "the controller refuses this block (condition Invalid): it is not programmed",
        state_.now()));
  }
  const json body = api::ipBlockStatusApply(name, status);
  auto written = state_.client.applyStatus(
      blockPath(name), body,
      {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
  if (!written) {
    if (written.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    return fmt::format("IPBlock {}: writing condition {}: {}", name, api::kConditionInvalid,
                       written.error().message);
  }
  if (auto updated = state_.decodeBlock(*written)) {
    std::lock_guard lock(state_.mutex);
    state_.upsertBlockLocked(name, std::move(*updated), false);
  }
  state_.event({.apiVersion = std::string(api::kApiVersion),
                .kind = std::string(api::kIPBlockKind),
                .name = name,
                .ns = "",
                .uid = info->uid},
               true, toString(info->invalidRule), "Validate",
               fmt::format("IPBlock refused: {}; it is not used, programmed or deleted by the "
                           "controller: delete it",
                           info->invalidMessage));
  return std::nullopt;
}

std::optional<std::string> NodeReconciler::reconcile(const std::string& name) {
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
    std::lock_guard lock(state_.mutex);
    ref = state_.nodeRef(name);
    const auto node = state_.nodes.find(name);
    if (node != state_.nodes.end()) {
      providerID = node->second.providerID;
      nicCondition = node->second.nicCondition;
      if (state_.cloud)
        refusal = state_.cloud->refuseNode(providerID);  // pure: no call to the cloud
    }
    static const std::set<std::string> kNone;
    const auto index = state_.nodeBlocks.find(name);
    const std::set<std::string>& names = index == state_.nodeBlocks.end() ? kNone : index->second;
    const Time t = state_.now();

    for (auto& [subnetName, subnet] : state_.subnets) {
      NodeState nodeState = node == state_.nodes.end() ? NodeState::kGone
                            : state_.nodeSelected(node->second, subnet.spec)
                                ? NodeState::kSelected
                                : NodeState::kNotSelected;
      const bool refusedHere = refusal && nodeState == NodeState::kSelected;
      if (refusedHere) {
        nodeState = NodeState::kNotSelected;
        refusedSelected = true;
      }
      std::vector<NodeBlock> mine;
      for (const std::string& blockName : names) {
        const BlockInfo& info = state_.blocks.at(blockName);
        // Only what the pool accepted is the node's: a refused block is no capacity and is
        // never released (the admin deletes it); an undecided one waits for its pool.
        if (info.podSubnet != subnetName || info.trust != Trust::kAccepted) continue;
        std::optional<Time> since;
        if (auto e = state_.emptySince.find(blockName); e != state_.emptySince.end())
          since = e->second;
        since = trackEmptySince(since, info.used, t);
        if (since) {
          state_.emptySince[blockName] = *since;
        } else {
          state_.emptySince.erase(blockName);
        }
        // A block in a range spec.reservedCIDRs reserved after the pool held it takes no new pods:
        // released now, the ordinary way (agent-drain keeps it while its pods hold addresses), and
        // leaving from this decision on, so that the node gets a block outside the range instead.
        const auto held = state_.subnetStates.find(subnetName);
        const bool reserved = !info.deleting && held != state_.subnetStates.end() &&
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
      // Joins (state.h): carved, not yet on the NIC nor created. Pending blocks to the
      // decision, which is never asked to release one.
      std::set<std::string> joining;
      if (auto j = state_.joins.find(name); j != state_.joins.end()) {
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
      auto stateIt = state_.subnetStates.find(subnetName);
      ipam::BlockPool* pool = stateIt != state_.subnetStates.end() && stateIt->second.blocks
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
      if (stateIt != state_.subnetStates.end()) {
        auto& shortNodes = stateIt->second.shortNodes;
        if (shortOfPool) {
          if (shortNodes.insert(name).second) {
            state_.enqueueSubnetStatus(subnetName);
            notes.emplace_back(true,
                               fmt::format("PodSubnet {} has no free block left for this "
                                           "node ({} free IPs, {} wanted)",
                                           subnetName, decision.freeIPs, policy.minFreeIPsPerNode));
          }
        } else if (shortNodes.erase(name) > 0) {
          state_.enqueueSubnetStatus(subnetName);
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
        deletes.push_back({release.name, state_.blocks.at(release.name).uid,
                           refusedHere && release.reason == ReleaseReason::kNodeNotSelected
                               ? refusal->reason
                               : std::string(toString(release.reason))});
      }
      if (decision.recheckAt) state_.enqueueAfter(nodeKey(name), *decision.recheckAt - t);
    }
    std::vector<NodeBlockFacts> facts;
    for (const std::string& blockName : names) {
      const BlockInfo& info = state_.blocks.at(blockName);
      facts.push_back({.name = blockName,
                       .accepted = info.trust == Trust::kAccepted,
                       .undecided = info.trust == Trust::kUndecided,
                       .refusedUnreported = info.trust == Trust::kInvalid && !info.invalidInStatus,
                       .subnetKnown = state_.subnets.contains(info.podSubnet),
                       .deleting = info.deleting,
                       .agentDrain = info.agentDrain});
    }
    // The NIC pass ends the joins of a node that is gone.
    if (node == state_.nodes.end() && state_.joins.contains(name)) state_.enqueue(nicKey(name));
    NodeBlockChores chores = decideNodeBlockChores(facts, node != state_.nodes.end());
    for (const std::string& blockName : chores.releaseSubnetGone)
      deletes.push_back({blockName, state_.blocks.at(blockName).uid, "PodSubnetGone"});
    reports = std::move(chores.reportInvalid);
    subnetChecks = std::move(chores.checkSubnet);
    drains = std::move(chores.dropAgentDrain);
  }

  if (!state_.canWrite()) {
    std::lock_guard lock(state_.mutex);
    for (const Create& c : creates) {
      if (auto s = state_.subnetStates.find(c.subnet);
          s != state_.subnetStates.end() && s->second.blocks) {
        (void)s->second.blocks->release(c.cidr);
      }
    }
    return std::string("not the leader");
  }
  for (const auto& [shortOfPool, note] : notes)
    state_.event(ref, true, shortOfPool ? "PodSubnetExhausted" : "MaxBlocksPerNode", "Allocate",
                 note);

  std::optional<std::string> firstError;
  bool again = false;
  bool changed = false;
  if (state_.cloud) {
    // The NIC pass programs them, then creates their IPBlocks (state.h, Join).
    if (!creates.empty()) {
      std::lock_guard lock(state_.mutex);
      auto& joins = state_.joins[name];
      for (const Create& c : creates) {
        joins.emplace(c.blockName, Join{.subnet = c.subnet, .cidr = c.cidr, .since = state_.now()});
        spdlog::debug("node {}: carved {} ({}); programming its NIC", name, c.blockName,
                      c.cidr.toString());
      }
      changed = true;
    }
  } else {
    for (const Create& c : creates) {
      const Join block{.subnet = c.subnet, .cidr = c.cidr, .since = state_.now()};
      if (auto e = state_.createBlock(name, c.blockName, block, providerID,
                                      std::string(api::kProgrammedOnNoCloud), again)) {
        firstError = firstError.value_or(*e);
      } else {
        changed = true;
      }
    }
  }
  for (const Delete& d : deletes) {
    if (auto deleted = state_.deleteBlock(d.name, d.uid); !deleted) {
      firstError = firstError.value_or(
          fmt::format("deleting IPBlock {}: {}", d.name, deleted.error().message));
      continue;
    }
    changed = true;
    spdlog::info("node {}: releasing IPBlock {} ({})", name, d.name, d.why);
  }
  for (const std::string& blockName : subnetChecks) {
    const std::optional<BlockInfo> info = state_.block(blockName);
    if (!info) continue;
    auto got = state_.client.get(fmt::format("{}/{}", kPodSubnetsPath, info->podSubnet));
    if (got) continue;  // it exists: the watch brings it, then the pool judges the block
    if (got.error().code != kube::ErrorCode::kNotFound) {
      firstError = firstError.value_or(fmt::format(
          "IPBlock {}: reading PodSubnet {}: {}", blockName, info->podSubnet, got.error().message));
      continue;
    }
    std::lock_guard lock(state_.mutex);
    const auto found = state_.blocks.find(blockName);
    if (found == state_.blocks.end() || found->second.trust != Trust::kUndecided ||
        state_.subnets.contains(found->second.podSubnet)) {
      continue;
    }
    state_.judgeBlockLocked(blockName, found->second, true);
    if (found->second.trust == Trust::kInvalid && !found->second.invalidInStatus) {
      reports.push_back(blockName);
    }
  }
  for (const std::string& blockName : reports) {
    if (auto e = reportInvalid(blockName)) firstError = firstError.value_or(*e);
  }
  if (!drains.empty()) {
    auto got = state_.client.get(fmt::format("{}/{}", kNodesPath, name));
    if (!got && got.error().code == kube::ErrorCode::kNotFound) {
      for (const std::string& blockName : drains) {
        const std::optional<BlockInfo> info = state_.block(blockName);
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
    const api::Condition condition =
        nextCondition(nicCondition, api::kNodeConditionNicProgrammed, false, refusal->reason,
                      refusal->message, state_.now());
    if (auto e = state_.writeNodeNicCondition(name, condition)) {
      firstError = firstError.value_or(*e);
    } else {
      state_.event(ref, true, refusal->reason, "ProgramNIC", boundedMessage(refusal->message));
    }
  }
  // A new node's first NIC pass, once a carved pool selects it: before that it has nothing to
  // program and nothing on its NIC could be told ours (no range is known).
  bool firstNicPass = false;
  {
    std::lock_guard lock(state_.mutex);
    if (!state_.nodes.contains(name)) {
      state_.nicPassAfterCarve.erase(name);
    } else if (carvedPoolSelects) {
      firstNicPass = state_.nicPassAfterCarve.erase(name) > 0;
    }
  }
  if (changed || firstNicPass) state_.enqueue(nicKey(name));
  if (again) state_.enqueue(nodeKey(name));
  return firstError;
}

}  // namespace vnetipam::controller
