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
  state_.rememberBlock(name, *patched);
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
  state_.rememberBlock(name, *written);
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

// The plan under the mutex, in one lock scope (nodes are decided one at a time against the live
// free count of each pool), then the writes, in this order, with the mutex taken only to fold
// what they did into the state.
std::optional<std::string> NodeReconciler::reconcile(const std::string& name) {
  Plan plan;
  {
    std::lock_guard lock(state_.mutex);
    plan = planLocked(name);
  }
  if (!state_.canWrite()) {
    returnCreates(plan.creates);
    return std::string("not the leader");
  }
  for (const auto& [shortOfPool, note] : plan.notes)
    state_.event(plan.ref, true, shortOfPool ? "PodSubnetExhausted" : "MaxBlocksPerNode",
                 "Allocate", note);

  Outcome outcome;
  startJoinsOrCreate(name, plan, outcome);
  releaseBlocks(name, plan.deletes, outcome);
  checkSubnets(plan.subnetChecks, plan.reports, outcome);
  for (const std::string& blockName : plan.reports) {
    if (auto e = reportInvalid(blockName)) outcome.fail(*e);
  }
  dropAgentDrains(name, plan.drains, outcome);
  reportRefusal(name, plan, outcome);
  const bool firstNicPass = takeFirstNicPass(name, plan.carvedPoolSelects);
  if (outcome.changed || firstNicPass) state_.enqueue(nicKey(name));
  if (outcome.again) state_.enqueue(nodeKey(name));
  return outcome.firstError;
}

// ---- the plan ---------------------------------------------------------------------------------

NodeReconciler::Plan NodeReconciler::planLocked(const std::string& name) {
  Plan plan;
  plan.ref = state_.nodeRef(name);
  const auto node = state_.nodes.find(name);
  const NodeInfo* info = nullptr;
  if (node != state_.nodes.end()) {
    info = &node->second;
    plan.providerID = info->providerID;
    plan.nicCondition = info->nicCondition;
    if (state_.cloud)
      plan.refusal = state_.cloud->refuseNode(plan.providerID);  // pure: no call to the cloud
  }
  static const std::set<std::string> kNone;
  const auto index = state_.nodeBlocks.find(name);
  const std::set<std::string>& names = index == state_.nodeBlocks.end() ? kNone : index->second;
  const NodeView view{.name = name, .info = info, .blockNames = names, .now = state_.now()};

  for (const auto& [subnetName, subnet] : state_.subnets)
    planSubnetLocked(view, subnetName, subnet.spec, plan);
  planChoresLocked(view, plan);
  return plan;
}

void NodeReconciler::planSubnetLocked(const NodeView& node, const std::string& subnetName,
                                      const api::PodSubnetSpec& spec, Plan& plan) {
  NodeState nodeState = !node.info                              ? NodeState::kGone
                        : state_.nodeSelected(*node.info, spec) ? NodeState::kSelected
                                                                : NodeState::kNotSelected;
  const bool refusedHere = plan.refusal && nodeState == NodeState::kSelected;
  if (refusedHere) {
    nodeState = NodeState::kNotSelected;
    plan.refusedSelected = true;
  }
  ipam::BlockPool* const pool = state_.poolLocked(subnetName);
  std::vector<NodeBlock> mine = acceptedBlocksLocked(node, subnetName, pool, plan);
  const std::set<std::string> joining = addJoinsLocked(node.name, subnetName, mine);
  if (nodeState == NodeState::kSelected && pool) plan.carvedPoolSelects = true;
  if (mine.empty() && (nodeState != NodeState::kSelected || !pool)) return;
  const ipam::Family family =
      pool ? pool->family() : (mine.empty() ? ipam::Family::kV4 : mine[0].cidr.family());
  const NodeBlockPolicy policy = NodeBlockPolicy::fromSpec(spec, family);
  const NodeBlockDecision decision =
      decideNodeBlocks(policy, NodeBlockInput{.node = nodeState,
                                              .blocks = mine,
                                              .poolFreeBlocks = pool ? pool->freeUnheldCount() : 0,
                                              .now = node.now});
  if (pool) allocateLocked(subnetName, *pool, decision.blocksToAdd, plan);
  noteShortfallLocked(node.name, subnetName, policy, decision, pool != nullptr, plan);
  releaseDecidedLocked(decision.releases, joining, refusedHere, plan);
  if (decision.recheckAt) state_.enqueueAfter(nodeKey(node.name), *decision.recheckAt - node.now);
}

std::vector<NodeBlock> NodeReconciler::acceptedBlocksLocked(const NodeView& node,
                                                            const std::string& subnetName,
                                                            const ipam::BlockPool* pool,
                                                            Plan& plan) {
  std::vector<NodeBlock> mine;
  for (const std::string& blockName : node.blockNames) {
    const BlockInfo& info = state_.blocks.at(blockName);
    // Only what the pool accepted is the node's: a refused block is no capacity and is
    // never released (the admin deletes it); an undecided one waits for its pool.
    if (info.podSubnet != subnetName || info.trust != Trust::kAccepted) continue;
    std::optional<Time> since;
    if (auto e = state_.emptySince.find(blockName); e != state_.emptySince.end()) since = e->second;
    since = trackEmptySince(since, info.used, node.now);
    if (since) {
      state_.emptySince[blockName] = *since;
    } else {
      state_.emptySince.erase(blockName);
    }
    // A block in a range spec.reservedCIDRs reserved after the pool held it takes no new pods:
    // released now, the ordinary way (agent-drain keeps it while its pods hold addresses), and
    // leaving from this decision on, so that the node gets a block outside the range instead.
    const bool reserved = !info.deleting && pool && pool->isReservedAllocated(info.cidr);
    if (reserved) plan.deletes.push_back({blockName, info.uid, "ReservedRange"});
    mine.push_back(NodeBlock{.name = blockName,
                             .cidr = info.cidr,
                             .phase = info.phase,
                             .deleting = info.deleting || reserved,
                             .used = info.used,
                             .capacity = info.capacity,
                             .created = info.created,
                             .emptySince = since});
  }
  return mine;
}

std::set<std::string> NodeReconciler::addJoinsLocked(const std::string& name,
                                                     const std::string& subnetName,
                                                     std::vector<NodeBlock>& mine) {
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
  return joining;
}

void NodeReconciler::allocateLocked(const std::string& subnetName, ipam::BlockPool& pool,
                                    std::int64_t count, Plan& plan) {
  for (std::int64_t i = 0; i < count; ++i) {
    auto cidr = pool.allocateNext();
    if (!cidr) break;
    auto blockName = api::blockName(subnetName, *cidr);
    if (!blockName) {
      (void)pool.release(*cidr);
      spdlog::error("PodSubnet {}: no block name for {}: {}", subnetName, cidr->toString(),
                    blockName.error().message);
      break;
    }
    plan.creates.push_back({subnetName, *cidr, std::move(*blockName)});
  }
}

void NodeReconciler::noteShortfallLocked(const std::string& name, const std::string& subnetName,
                                         const NodeBlockPolicy& policy,
                                         const NodeBlockDecision& decision, bool carved,
                                         Plan& plan) {
  // Short of the pool only when there is a carved pool to be short of: before the carve (at
  // start-up, while Azure has not answered; or a PodSubnet deleted and made again while its
  // old blocks are still there) poolFreeBlocks is a 0 that says nothing.
  const bool shortOfPool = decision.shortOfPool && carved;
  if (auto stateIt = state_.subnetStates.find(subnetName); stateIt != state_.subnetStates.end()) {
    auto& shortNodes = stateIt->second.shortNodes;
    if (shortOfPool) {
      if (shortNodes.insert(name).second) {
        state_.enqueueSubnetStatus(subnetName);
        plan.notes.emplace_back(
            true, fmt::format("PodSubnet {} has no free block left for this "
                              "node ({} free IPs, {} wanted)",
                              subnetName, decision.freeIPs, policy.minFreeIPsPerNode));
      }
    } else if (shortNodes.erase(name) > 0) {
      state_.enqueueSubnetStatus(subnetName);
    }
  }
  if (decision.atMaxBlocks) {
    plan.notes.emplace_back(false, fmt::format("the node holds maxBlocksPerNode={} blocks of "
                                               "PodSubnet {} and has only {} free IPs (wants {})",
                                               policy.maxBlocksPerNode, subnetName,
                                               decision.freeIPs, policy.minFreeIPsPerNode));
  }
}

void NodeReconciler::releaseDecidedLocked(const std::vector<BlockRelease>& releases,
                                          const std::set<std::string>& joining, bool refusedHere,
                                          Plan& plan) {
  for (const BlockRelease& release : releases) {
    if (joining.contains(release.name)) continue;
    plan.deletes.push_back({release.name, state_.blocks.at(release.name).uid,
                            refusedHere && release.reason == ReleaseReason::kNodeNotSelected
                                ? plan.refusal->reason
                                : std::string(toString(release.reason))});
  }
}

void NodeReconciler::planChoresLocked(const NodeView& node, Plan& plan) {
  std::vector<NodeBlockFacts> facts;
  for (const std::string& blockName : node.blockNames) {
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
  if (!node.info && state_.joins.contains(node.name)) state_.enqueue(nicKey(node.name));
  NodeBlockChores chores = decideNodeBlockChores(facts, node.info != nullptr);
  for (const std::string& blockName : chores.releaseSubnetGone)
    plan.deletes.push_back({blockName, state_.blocks.at(blockName).uid, "PodSubnetGone"});
  plan.reports = std::move(chores.reportInvalid);
  plan.subnetChecks = std::move(chores.checkSubnet);
  plan.drains = std::move(chores.dropAgentDrain);
}

// ---- the writes -------------------------------------------------------------------------------

void NodeReconciler::returnCreates(const std::vector<Create>& creates) {
  std::lock_guard lock(state_.mutex);
  for (const Create& c : creates) {
    if (ipam::BlockPool* pool = state_.poolLocked(c.subnet)) (void)pool->release(c.cidr);
  }
}

void NodeReconciler::startJoinsOrCreate(const std::string& name, const Plan& plan,
                                        Outcome& outcome) {
  if (state_.cloud) {
    // The NIC pass programs them, then creates their IPBlocks (state.h, Join).
    if (!plan.creates.empty()) {
      std::lock_guard lock(state_.mutex);
      auto& joins = state_.joins[name];
      for (const Create& c : plan.creates) {
        joins.emplace(c.blockName, Join{.subnet = c.subnet, .cidr = c.cidr, .since = state_.now()});
        spdlog::debug("node {}: carved {} ({}); programming its NIC", name, c.blockName,
                      c.cidr.toString());
      }
      outcome.changed = true;
    }
    return;
  }
  for (const Create& c : plan.creates) {
    const Join block{.subnet = c.subnet, .cidr = c.cidr, .since = state_.now()};
    if (auto e = state_.createBlock(name, c.blockName, block, plan.providerID,
                                    std::string(api::kProgrammedOnNoCloud), outcome.again)) {
      outcome.fail(*e);
    } else {
      outcome.changed = true;
    }
  }
}

void NodeReconciler::releaseBlocks(const std::string& name, const std::vector<Delete>& deletes,
                                   Outcome& outcome) {
  for (const Delete& d : deletes) {
    if (auto deleted = state_.deleteBlock(d.name, d.uid); !deleted) {
      outcome.fail(fmt::format("deleting IPBlock {}: {}", d.name, deleted.error().message));
      continue;
    }
    outcome.changed = true;
    spdlog::info("node {}: releasing IPBlock {} ({})", name, d.name, d.why);
  }
}

void NodeReconciler::checkSubnets(const std::vector<std::string>& blockNames,
                                  std::vector<std::string>& reports, Outcome& outcome) {
  for (const std::string& blockName : blockNames) {
    const std::optional<BlockInfo> info = state_.block(blockName);
    if (!info) continue;
    auto got = state_.client.get(fmt::format("{}/{}", kPodSubnetsPath, info->podSubnet));
    if (got) continue;  // it exists: the watch brings it, then the pool judges the block
    if (got.error().code != kube::ErrorCode::kNotFound) {
      outcome.fail(fmt::format("IPBlock {}: reading PodSubnet {}: {}", blockName, info->podSubnet,
                               got.error().message));
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
}

void NodeReconciler::dropAgentDrains(const std::string& name,
                                     const std::vector<std::string>& drains, Outcome& outcome) {
  if (drains.empty()) return;
  auto got = state_.client.get(fmt::format("{}/{}", kNodesPath, name));
  if (!got && got.error().code == kube::ErrorCode::kNotFound) {
    for (const std::string& blockName : drains) {
      const std::optional<BlockInfo> info = state_.block(blockName);
      if (!info || !info->agentDrain) continue;
      if (auto e = removeAgentDrain(blockName, *info)) {
        outcome.fail(*e);
      } else {
        spdlog::info("node {} is gone: removed {} from IPBlock {}", name, api::kAgentDrainFinalizer,
                     blockName);
      }
    }
  } else if (!got) {
    outcome.fail(fmt::format("node {}: reading the Node: {}", name, got.error().message));
  }
  // A Node the cache lacks but the API server has: its watch event is on the way.
}

void NodeReconciler::reportRefusal(const std::string& name, const Plan& plan, Outcome& outcome) {
  // The refusal on the Node, once: the condition write brings the node back through the watch, and
  // then it already says so.
  if (!plan.refusedSelected || alreadyFailing(plan.nicCondition, plan.refusal->reason)) return;
  const api::Condition condition =
      nextCondition(plan.nicCondition, api::kNodeConditionNicProgrammed, false,
                    plan.refusal->reason, plan.refusal->message, state_.now());
  if (auto e = state_.writeNodeNicCondition(name, condition)) {
    outcome.fail(*e);
  } else {
    state_.event(plan.ref, true, plan.refusal->reason, "ProgramNIC",
                 boundedMessage(plan.refusal->message));
  }
}

bool NodeReconciler::takeFirstNicPass(const std::string& name, bool carvedPoolSelects) {
  // A new node's first NIC pass, once a carved pool selects it: before that it has nothing to
  // program and nothing on its NIC could be told ours (no range is known).
  std::lock_guard lock(state_.mutex);
  if (!state_.nodes.contains(name)) {
    state_.nicPassAfterCarve.erase(name);
    return false;
  }
  return carvedPoolSelects && state_.nicPassAfterCarve.erase(name) > 0;
}

}  // namespace vnetipam::controller
