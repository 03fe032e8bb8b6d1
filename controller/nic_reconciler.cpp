#include "controller/nic_reconciler.h"

#include <algorithm>
#include <iterator>
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
#include "controller/nic_reconcile.h"
#include "controller/orphan_sweep.h"
#include "controller/pool_status.h"
#include "lib/azure/provider_id.h"
#include "lib/base/time.h"

namespace vnetipam::controller {

using nlohmann::json;

namespace {

// Whether a NIC's virtualMachine.id is the VM a node's providerID names.
bool onVmOf(std::string_view nicVmId, std::string_view providerID) {
  auto vm = azure::parseProviderId(providerID);
  return vm && armIdKey(nicVmId) == armIdKey(vm->resourceId());
}

// A join as the NIC table sees it: a Pending block of the node, accepted (its CIDR is the pool's).
NicBlock joinAsNicBlock(const std::string& name, const ipam::Prefix& cidr) {
  return {.name = name,
          .cidr = cidr,
          .phase = api::BlockPhase::kPending,
          .deleting = false,
          .trust = Trust::kAccepted,
          .agentDrain = false};
}

}  // namespace

NicReconciler::NicReconciler(ControllerState& state) : state_(state) {
  if (state_.cloud) nicDirectory_ = std::make_unique<NicDirectory>(*state_.cloud);
}

std::optional<std::string> NicReconciler::writeBlockStatus(
    const std::string& node, const std::vector<BlockStatusChange>& writes,
    const std::string& nicId) {
  std::optional<std::string> firstError;
  for (const BlockStatusChange& write : writes) {
    if (!state_.canWrite()) return std::string("not the leader");
    BlockInfo info;
    {
      std::lock_guard lock(state_.mutex);
      const auto found = state_.blocks.find(write.name);
      // Only an accepted block gets a phase (and this apply, without the Invalid condition, would
      // drop that of a refused one).
      if (found == state_.blocks.end() || found->second.trust != Trust::kAccepted) continue;
      info = found->second;
    }
    const api::BlockPhase phase = write.phase.value_or(info.phase);
    api::IPBlockControllerStatus status{.phase = phase,
                                        .lastTransitionTime = info.phaseTime,
                                        .capacity = prefixSize(info.cidr),
                                        .nic = std::nullopt,
                                        .conditions = {}};
    if (write.phase) status.lastTransitionTime = base::formatRfc3339(state_.now());
    std::string nic = info.nicId;
    if (write.phase && !nicId.empty() &&
        (phase == api::BlockPhase::kProgrammed || phase == api::BlockPhase::kReady)) {
      nic = nicId;
    }
    if (!nic.empty()) {
      status.nic = api::NicRef{
          .id = nic, .ipConfiguration = azure::ipConfigName(info.cidr), .extra = json::object()};
    }
    const std::optional<api::Condition>& programmed =
        write.programmed ? write.programmed : info.programmed;
    if (programmed) status.conditions.push_back(*programmed);
    const json body = api::ipBlockStatusApply(write.name, status);
    auto written = state_.client.applyStatus(
        blockPath(write.name), body,
        {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
    if (!written) {
      if (written.error().code == kube::ErrorCode::kNotFound) continue;
      firstError = firstError.value_or(
          fmt::format("node {}: IPBlock {}: writing status (phase {}): {}", node, write.name,
                      api::toString(phase), written.error().message));
      continue;
    }
    if (auto updated = state_.decodeBlock(*written)) {
      std::lock_guard lock(state_.mutex);
      state_.upsertBlockLocked(write.name, std::move(*updated), false);
    }
  }
  return firstError;
}

std::optional<std::string> NicReconciler::finishReleasing(const std::vector<std::string>& names) {
  std::optional<std::string> firstError;
  for (const std::string& name : names) {
    if (!state_.canWrite()) return std::string("not the leader");
    std::optional<BlockInfo> info = state_.block(name);
    if (!info) continue;
    if (!info->deleting) {
      auto deleted = state_.deleteBlock(name, info->uid);
      if (!deleted) {
        firstError = firstError.value_or(
            fmt::format("deleting IPBlock {}: {}", name, deleted.error().message));
        continue;
      }
      // The finalizer patch below carries the resourceVersion the delete left.
      info = std::move(*deleted);
      if (!info) continue;
    }
    if (!info->hasFinalizer) continue;
    if (auto e = removeNicFinalizer(name, *info, false)) firstError = firstError.value_or(*e);
  }
  return firstError;
}

std::optional<std::string> NicReconciler::removeNicFinalizer(const std::string& name,
                                                             const BlockInfo& info, bool remember) {
  // The other finalizers stay, and the resourceVersion makes the patch fail rather than drop one
  // that was added since.
  auto patched = state_.client.mergePatch(
      blockPath(name), api::finalizersPatch(info.otherFinalizers, info.resourceVersion));
  if (!patched) {
    if (patched.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    // kConflict: the watch brings the newer object and the NIC pass runs again.
    return fmt::format("IPBlock {}: removing finalizer {}: {}", name, api::kNicReleaseFinalizer,
                       patched.error().message);
  }
  if (remember) {
    if (auto updated = state_.decodeBlock(*patched)) {
      std::lock_guard lock(state_.mutex);
      state_.upsertBlockLocked(name, std::move(*updated), false);
    }
  }
  return std::nullopt;
}

std::optional<std::string> NicReconciler::dropNicFinalizers(const std::vector<std::string>& names) {
  std::optional<std::string> firstError;
  for (const std::string& name : names) {
    if (!state_.canWrite()) return std::string("not the leader");
    const std::optional<BlockInfo> info = state_.block(name);
    if (!info || !info->hasFinalizer) continue;
    if (auto e = removeNicFinalizer(name, *info, true)) {
      firstError = firstError.value_or(*e);
    } else {
      spdlog::info("IPBlock {}: removed finalizer {}: without a cloud no NIC holds it", name,
                   api::kNicReleaseFinalizer);
    }
  }
  return firstError;
}

azure::Result<NicReconciler::FoundNic> NicReconciler::findNicOfNode(std::string_view providerID) {
  auto vm = azure::parseProviderId(providerID);
  if (vm && !vm->uniformScaleSet()) {
    const std::string group = vm->resourceGroupId();
    const std::string groupKey = armIdKey(group);
    // Whether at least `n` nodes of the group wait for their NIC (none known, no block yet):
    // counted up to n only, so a group of many nodes costs no more than n providerID parses.
    const auto waiting = [&](std::size_t n) {
      std::lock_guard lock(state_.mutex);
      std::size_t found = 0;
      for (const auto& [name, info] : state_.nodes) {
        if (found >= n) break;
        if (state_.nicIds.contains(name) || state_.nodeBlocks.contains(name)) continue;
        auto ref = azure::parseProviderId(info.providerID);
        if (ref && !ref->uniformScaleSet() && armIdKey(ref->resourceGroupId()) == groupKey) ++found;
      }
      return found >= n;
    };
    if (auto nicId = nicDirectory_->take(group, vm->resourceId(), waiting))
      return FoundNic{.id = std::move(*nicId), .listed = true};
  }
  auto nicId = state_.cloud->primaryNicOfNode(providerID);
  if (!nicId) return std::unexpected(std::move(nicId.error()));
  return FoundNic{.id = std::move(*nicId), .listed = false};
}

std::optional<std::string> NicReconciler::reconcile(const std::string& node) {
  // A pass that PUT the NIC is followed at once by another, with a fresh GET:
  // Pending -> (PUT) -> Ready in one reconcile instead of two trips through a queue that may hold
  // thousands of nodes.
  for (int pass = 0; pass < 3; ++pass) {
    bool again = false;
    if (auto error = nicPass(node, again)) return error;
    if (!again) return std::nullopt;
  }
  state_.enqueue(nicKey(node));
  return std::nullopt;
}

std::optional<std::string> NicReconciler::nicPass(const std::string& node, bool& again) {
  std::vector<NicBlock> blocks;
  std::string blockNicId;                  // status.nic.id of some block of the node
  std::string blockNicProviderID;          // ... and the providerID that block was created for
  std::string blockProviderID;             // the providerID some block was created for
  std::vector<std::string> withFinalizer;  // blocks that carry kNicReleaseFinalizer
  std::vector<ipam::Prefix> managed;
  std::map<ipam::Prefix, Time> unowned;
  std::optional<std::string> nicId;
  std::string providerID;
  bool nodeExists = false;
  std::optional<api::Condition> nodeCondition;  // the node's VnetIpamNICProgrammed
  std::map<std::string, std::optional<api::Condition>> programmedOf;  // block -> Programmed
  std::map<ipam::Prefix, SubnetState::ForeignHold> holds;  // CIDRs others hold an address in
  std::map<std::string, Join> joins;  // blocks carved for the node, not created yet
  kube::ObjectReference ref;
  {
    std::lock_guard lock(state_.mutex);
    ref = state_.nodeRef(node);
    if (auto j = state_.joins.find(node); j != state_.joins.end()) {
      if (state_.nodes.contains(node)) {
        joins = j->second;
      } else {
        // The node is gone: its joins end. A CIDR whose prefix a PUT may have put on the NIC
        // stays taken until that prefix would have been removed as unowned.
        for (const auto& [name, join] : j->second) {
          if (join.putSent) {
            state_.leakCidrLocked(join.subnet, join.cidr, state_.onNicLeakGrace());
          } else if (auto state = state_.subnetStates.find(join.subnet);
                     state != state_.subnetStates.end() && state->second.blocks) {
            (void)state->second.blocks->release(join.cidr);
          }
        }
        state_.joins.erase(j);
      }
    }
    for (const auto& [name, join] : joins)
      blocks.push_back(joinAsNicBlock(name, join.cidr));
    if (auto index = state_.nodeBlocks.find(node); index != state_.nodeBlocks.end()) {
      for (const std::string& name : index->second) {
        const BlockInfo& info = state_.blocks.at(name);
        programmedOf[name] = info.programmed;
        blocks.push_back({.name = name,
                          .cidr = info.cidr,
                          .phase = info.phase,
                          .deleting = info.deleting,
                          .trust = info.trust,
                          .agentDrain = info.agentDrain});
        if (!info.nicId.empty()) {
          blockNicId = info.nicId;
          blockNicProviderID = info.providerID;
        }
        if (!info.providerID.empty()) blockProviderID = info.providerID;
        if (info.hasFinalizer) withFinalizer.push_back(name);
      }
    }
    for (const auto& [name, state] : state_.subnetStates) {
      managed.insert(managed.end(), state.ranges.begin(), state.ranges.end());
    }
    holds = foreignHoldsLocked(state_.now());
    if (auto u = unowned_.find(node); u != unowned_.end()) unowned = u->second;
    if (auto n = state_.nicIds.find(node); n != state_.nicIds.end()) nicId = n->second;
    if (auto n = state_.nodes.find(node); n != state_.nodes.end()) {
      nodeExists = true;
      providerID = n->second.providerID;
      nodeCondition = n->second.nicCondition;
    }
    // The NIC a block of the node was programmed on, when the node is gone or is still on the VM
    // that block was created for: a controller that starts (or takes the lease) needs no GET of
    // the VM for a node that has blocks. A NIC found gone is looked up through the VM again.
    if (!nicId && !blockNicId.empty() && !goneNics_.contains(armIdKey(blockNicId)) &&
        (!nodeExists || (!providerID.empty() && blockNicProviderID == providerID))) {
      nicId = blockNicId;
    }
  }

  if (!state_.cloud) {
    // --cloud=none: no NIC to program (the rules are planWithoutCloud's, nic_reconcile.h).
    const NoCloudPlan noCloud = planWithoutCloud(blocks, withFinalizer);
    std::vector<BlockStatusChange> changes;
    for (const std::string& name : noCloud.toReady) {
      // Programmed goes with Ready, in the same apply: no write of its own.
      changes.push_back(
          {.name = name,
           .phase = api::BlockPhase::kReady,
           .programmed = nextCondition(programmedOf[name], api::kConditionProgrammed, true,
                                       std::string(kReasonNoCloud),
                                       "the controller runs with --cloud=none: there is no NIC "
                                       "to program, the network routes the block by itself",
                                       state_.now())});
    }
    auto error = writeBlockStatus(node, changes, "");
    auto released = finishReleasing(noCloud.finished);
    auto dropped = dropNicFinalizers(noCloud.dropFinalizer);
    return error ? error : released ? released : dropped;
  }

  // Refused blocks are not ours to program: they neither keep a NIC pass going nor stop one.
  const bool allLeaving = std::ranges::all_of(
      blocks, [](const NicBlock& b) { return b.trust == Trust::kInvalid || b.leaving(); });
  if (blocks.empty() && !nodeExists) {
    std::lock_guard lock(state_.mutex);
    unowned_.erase(node);
    state_.nicIds.erase(node);
    return std::nullopt;
  }
  auto leaveWithoutNic = [&](std::string_view why) -> std::optional<std::string> {
    // The node (and with it, its VM) is gone and nothing tells us its NIC: there is no prefix
    // left to remove that we could find.
    std::vector<std::string> finished;
    for (const NicBlock& b : blocks) {
      if (b.deleting || (b.trust != Trust::kInvalid && b.leaving())) finished.push_back(b.name);
    }
    spdlog::info("node {}: releasing {} blocks without a NIC: {}", node, finished.size(), why);
    return finishReleasing(finished);
  };
  const bool nicRemembered = nicId.has_value();  // cached, or from a block: not just looked up
  bool listedNic = false;                        // looked up in a list of the VM's group
  if (!nicId) {
    // The node is gone: find its NIC through what its blocks remember of it.
    if (!nodeExists && providerID.empty()) providerID = blockProviderID;
    if (providerID.empty()) {
      if (!nodeExists && allLeaving) return leaveWithoutNic("the node is gone");
      if (blocks.empty()) return std::nullopt;
      return fmt::format("node {} has no spec.providerID: cannot find its NIC", node);
    }
    if (auto refused = state_.cloud->refuseNode(providerID)) {
      // No NIC of this node can take a prefix, so none is looked up: the Node reconciler carves
      // it nothing, releases what it has and says why on the Node. Its leaving blocks finish
      // without a NIC; one not leaving yet comes back here with its deletion.
      if (blocks.empty() || !allLeaving) return std::nullopt;
      return leaveWithoutNic(refused->reason);
    }
    auto found = findNicOfNode(providerID);
    if (!found) {
      if (found.error().code == azure::ErrorCode::kNotFound && allLeaving) {
        return leaveWithoutNic("its VM is gone");
      }
      return fmt::format("node {}: finding the NIC of {}: {}", node, providerID,
                         found.error().message);
    }
    nicId = found->id;
    listedNic = found->listed;
    std::lock_guard lock(state_.mutex);
    state_.nicIds[node] = *nicId;
  }
  auto nic = state_.cloud->readNic(*nicId);
  const bool nicGone = !nic && nic.error().code == azure::ErrorCode::kNotFound;
  // A NIC a list named that is gone or on another VM now: the list was older than the change.
  const bool listOutdated = listedNic && (nicGone || (nic && !onVmOf(nic->vmId, providerID)));
  if ((nicGone && nicRemembered && nodeExists && !providerID.empty() &&
       !state_.cloud->refuseNode(providerID)) ||
      listOutdated) {
    // The NIC remembered is gone (the VM got another): the VM says which it has now, in this pass.
    // Should it not, the NotFound below forgets the NIC as it does for any other.
    auto found = state_.cloud->primaryNicOfNode(providerID);
    if (found && armIdKey(*found) != armIdKey(*nicId)) {
      {
        std::lock_guard lock(state_.mutex);
        if (nicGone) goneNics_.insert(armIdKey(*nicId));
        state_.nicIds[node] = *found;
      }
      nicId = *found;
      nic = state_.cloud->readNic(*nicId);
    }
  }
  if (!nic) {
    if (nic.error().code == azure::ErrorCode::kNotFound) {
      std::lock_guard lock(state_.mutex);
      state_.nicIds.erase(node);  // the NIC may have been replaced: look it up again
      goneNics_.insert(armIdKey(*nicId));
      if (allLeaving) {
        // fallthrough below, after the lock
      } else {
        return fmt::format("node {}: NIC {} not found", node, *nicId);
      }
    } else {
      return fmt::format("node {}: reading NIC {}: {}", node, *nicId, nic.error().message);
    }
    return leaveWithoutNic("its NIC is gone");
  }

  if (nodeExists && state_.canWrite()) {
    std::lock_guard lock(state_.mutex);
    adoptOwnPrefixesLocked(node, nic->ours, joins, blocks);
  }

  // Plan and PUT. A PUT Azure refuses because another resource holds an address inside one of
  // the blocks it adds (N16) names that block: its CIDR is held for others, and the plan made
  // again without it is PUT at once, so one foreign address costs the node one block, not all
  // of its new ones. Each round holds one more block the PUT was to add, so the rounds end.
  NicPlan plan;
  std::optional<std::string> error;
  std::optional<azure::Error> putError;
  std::vector<std::string> refusals;  // every failed PUT of this pass: a Node Event each
  for (std::size_t round = 0; round <= blocks.size(); ++round) {
    std::vector<ipam::Prefix> held;
    for (const auto& [cidr, hold] : holds)
      held.push_back(cidr);
    plan = planNic(NicInput{.blocks = blocks,
                            .nicPrefixes = nic->prefixes,
                            .managedRanges = managed,
                            .unownedFirstSeen = unowned,
                            .unownedGrace = state_.config.nicOrphanGrace,
                            .now = state_.now(),
                            .heldByOthers = held});
    putError.reset();
    if (!plan.needsPut) break;
    if (!state_.canWrite()) return std::string("not the leader");
    {
      std::lock_guard lock(state_.mutex);
      if (auto j = state_.joins.find(node); j != state_.joins.end()) {
        for (auto& [name, join] : j->second) {
          if (std::ranges::binary_search(plan.desiredPrefixes, join.cidr)) join.putSent = true;
        }
      }
    }
    for (auto& [name, join] : joins) {
      if (std::ranges::binary_search(plan.desiredPrefixes, join.cidr)) join.putSent = true;
    }
    auto put = state_.cloud->setNicPrefixes(*nic, plan.desiredPrefixes);
    if (put) break;
    putError = std::move(put.error());
    refusals.push_back(fmt::format("programming NIC {} failed: {} ({})", *nicId, putError->message,
                                   nicFailureReason(putError->code, putError->azureCode)));
    if (!addressHeldByOthers(putError->azureCode)) break;
    const std::optional<std::string> conflict = conflictingBlock(
        blocks, nic->prefixes, plan.desiredPrefixes, putError->message, azure::ipConfigName);
    if (!conflict) break;
    const NicBlock& b = *std::ranges::find(blocks, *conflict, &NicBlock::name);
    SubnetState::ForeignHold hold{
        .until = state_.now() + state_.config.foreignHold,
        .reason = nicFailureReason(putError->code, putError->azureCode),
        .message = boundedMessage(fmt::format(
            "another resource holds an address in {}, so Azure refuses it on NIC {}: {}; the "
            "block is not served, it is released and another block takes its place, and {} is "
            "not carved again for {}s",
            b.cidr.toString(), *nicId, putError->message, b.cidr.toString(),
            state_.config.foreignHold.count()))};
    spdlog::warn("node {}: IPBlock {}: {}", node, b.name, hold.message);
    {
      std::lock_guard lock(state_.mutex);
      std::string subnet;
      if (auto info = state_.blocks.find(b.name); info != state_.blocks.end())
        subnet = info->second.podSubnet;
      if (auto j = joins.find(b.name); j != joins.end()) subnet = j->second.subnet;
      if (auto state = state_.subnetStates.find(subnet); state != state_.subnetStates.end()) {
        state->second.heldByOthers[b.cidr] = hold;
        if (state->second.blocks) (void)state->second.blocks->holdForOthers(b.cidr);
      }
    }
    holds[b.cidr] = std::move(hold);
    // When the hold ends, a NIC pass lifts it and requeues the nodes short of blocks; nothing else
    // may run one then (the holds may be what leaves the pool without a free block).
    state_.enqueueAfter(nicKey(node), state_.config.foreignHold + std::chrono::seconds(1));
  }
  if (putError) {
    error = fmt::format("node {}: programming NIC {}: {}", node, *nicId, putError->message);
  }
  const bool putOk = !putError;
  // Joins: created once the NIC carries their prefix, as the GET showed (a phase change to Ready)
  // or as the PUT's operation reported; a quarantined one goes back to the pool, where the hold
  // keeps it from being carved again (its prefix is on no NIC: Azure refused it). The others wait
  // for the next pass. None of them has an object for the writes and events below.
  std::vector<std::string> confirmed;
  for (const auto& [name, join] : joins) {
    const bool shown = std::ranges::any_of(plan.phaseChanges,
                                           [&](const PhaseChange& c) { return c.name == name; });
    const bool put =
        plan.needsPut && putOk && std::ranges::binary_search(plan.desiredPrefixes, join.cidr);
    if (shown || put) confirmed.push_back(name);
  }
  std::vector<std::string> quarantinedJoins;  // their hold's message, for a Node Event each
  if (!plan.quarantined.empty()) {
    std::lock_guard lock(state_.mutex);
    for (const std::string& name : plan.quarantined) {
      const auto j = joins.find(name);
      if (j == joins.end()) continue;
      quarantinedJoins.push_back(holds.at(j->second.cidr).message);
      if (auto state = state_.subnetStates.find(j->second.subnet);
          state != state_.subnetStates.end() && state->second.blocks) {
        (void)state->second.blocks->release(j->second.cidr);
      }
      if (auto all = state_.joins.find(node); all != state_.joins.end()) all->second.erase(name);
      state_.enqueue(nodeKey(node));
    }
  }
  std::erase_if(plan.phaseChanges, [&](const PhaseChange& c) { return joins.contains(c.name); });
  std::erase_if(blocks, [&](const NicBlock& b) { return joins.contains(b.name); });
  // A PUT that only added joins' prefixes needs no GET after it: the operation said they are on.
  bool putOnlyAddedJoins = plan.needsPut && putOk;
  if (putOnlyAddedJoins) {
    std::vector<ipam::Prefix> changed;
    std::vector<ipam::Prefix> current = nic->prefixes;
    std::ranges::sort(current);
    std::ranges::set_symmetric_difference(plan.desiredPrefixes, current,
                                          std::back_inserter(changed));
    putOnlyAddedJoins = std::ranges::all_of(changed, [&](const ipam::Prefix& p) {
      return std::ranges::any_of(joins, [&](const auto& j) { return j.second.cidr == p; });
    });
  }
  std::vector<QuarantinedBlock> quarantined;
  for (const std::string& name : plan.quarantined) {
    if (joins.contains(name)) continue;
    const NicBlock& b = *std::ranges::find(blocks, name, &NicBlock::name);
    const SubnetState::ForeignHold& hold = holds.at(b.cidr);
    quarantined.push_back({.name = name, .why = {.reason = hold.reason, .message = hold.message}});
  }
  std::optional<NicPutFailure> failure;
  if (putError) {
    failure = NicPutFailure{
        .reason = nicFailureReason(putError->code, putError->azureCode),
        .message = fmt::format("programming NIC {} failed: {}", *nicId, putError->message)};
  }
  std::vector<NicStatusBlock> statusBlocks;
  for (const NicBlock& b : blocks) {
    statusBlocks.push_back({.block = b,
                            .programmed = programmedOf[b.name],
                            .ipConfiguration = azure::ipConfigName(b.cidr)});
  }
  const NicStatusPlan status = planNicStatus({.blocks = statusBlocks,
                                              .phaseChanges = plan.phaseChanges,
                                              .nicPrefixes = nic->prefixes,
                                              .nicId = *nicId,
                                              .putFailure = failure,
                                              .quarantined = quarantined,
                                              .nodeExists = nodeExists,
                                              .nodeCondition = nodeCondition,
                                              .now = state_.now()});
  if (auto e = writeBlockStatus(node, status.writes, *nicId); e && !error) error = e;
  // After a PUT whose outcome is unknown keep every finalizer: the next GET tells.
  if (putOk) {
    if (auto e = finishReleasing(plan.finishedReleasing); e && !error) error = e;
  }
  // A quarantined block is released the ordinary way (5.3): deleted now (its prefix is not on the
  // NIC and no PUT adds it), its agent gives it up, N8 removes nic-release, and only once the
  // object is gone does its CIDR go back to the pool, where the hold keeps it from being carved
  // again. The Node reconciler counts it as leaving, so the node gets another block at once.
  bool releasedQuarantined = false;
  for (const std::string& name : plan.quarantined) {
    if (joins.contains(name)) continue;
    if (!state_.canWrite()) return std::string("not the leader");
    const std::optional<BlockInfo> info = state_.block(name);
    if (!info || info->deleting) continue;
    // Known at once, not when the watch brings it: the next pass plans it as leaving (N8).
    if (auto deleted = state_.deleteBlock(name, info->uid); !deleted) {
      if (!error) {
        error = fmt::format("node {}: releasing quarantined IPBlock {}: {}", node, name,
                            deleted.error().message);
      }
      continue;
    }
    releasedQuarantined = true;
    spdlog::info("node {}: releasing IPBlock {}: another resource holds an address in {}", node,
                 name, info->cidr.toString());
  }
  if (releasedQuarantined) state_.enqueue(nodeKey(node));
  bool createAgain = false;
  for (const std::string& name : confirmed) {
    if (auto e = state_.createBlock(node, name, joins.at(name),
                                    providerID.empty() ? blockProviderID : providerID, *nicId,
                                    createAgain);
        e && !error) {
      error = e;
    }
  }
  if (createAgain) state_.enqueue(nodeKey(node));
  for (const NicEvent& e : plan.events) {
    kube::ObjectReference regarding = ref;
    if (!e.block.empty()) regarding = state_.blockRef(e.block);
    state_.event(regarding, e.warning, toString(e.reason), "ProgramNIC", e.message);
  }
  // Every failed PUT is an Event on the Node (the recorder folds repeats into a series, so its
  // count says how many tries failed); a block's Event comes with its condition, once.
  for (const std::string& refusal : refusals) {
    state_.event(ref, true, kEventNicProgrammingFailed, "ProgramNIC", refusal);
  }
  // A quarantined join has no IPBlock to carry its condition: the Node says what became of it.
  for (const std::string& message : quarantinedJoins) {
    state_.event(ref, true, kEventNicProgrammingFailed, "ProgramNIC", message);
  }
  for (const std::string& name : status.newlyFailing) {
    const auto b = std::ranges::find(blocks, name, &NicBlock::name);
    const auto q = std::ranges::find(quarantined, name, &QuarantinedBlock::name);
    const NicPutFailure* why = q != quarantined.end() ? &q->why : failure ? &*failure : nullptr;
    if (why == nullptr) continue;
    state_.event(state_.blockRef(name), true, kEventNicProgrammingFailed, "ProgramNIC",
                 fmt::format("prefix {} is not on node {}'s NIC: {} ({})", b->cidr.toString(), node,
                             why->message, why->reason));
  }
  // A failed Node condition write is only logged: the condition must not hold up programming (a
  // chart without the nodes/status grant, say), and the next pass writes it again.
  if (status.nodeCondition) {
    if (auto e = state_.writeNodeNicCondition(node, *status.nodeCondition)) {
      spdlog::warn("{}", *e);
    } else if (status.nodeRecovered) {
      state_.event(ref, false, kEventNicProgrammingRecovered, "ProgramNIC",
                   fmt::format("{} (it failed before: {})", status.nodeCondition->message,
                               nodeCondition->reason));
    }
  }
  {
    std::lock_guard lock(state_.mutex);
    if (plan.unownedFirstSeen.empty()) {
      unowned_.erase(node);
    } else {
      unowned_[node] = plan.unownedFirstSeen;
    }
  }
  if (plan.recheckAt) state_.enqueueAfter(nicKey(node), *plan.recheckAt - state_.now());
  // After a PUT, read the NIC back before any phase moves. A move to Ready ends the block's
  // way through the table; any other move is followed by the next row.
  const bool moreRows = std::ranges::any_of(plan.phaseChanges, [](const PhaseChange& change) {
    return change.to != api::BlockPhase::kReady;
  });
  again =
      !error && ((plan.needsPut && putOk && !putOnlyAddedJoins) || moreRows || releasedQuarantined);
  return error;
}

void NicReconciler::adoptOwnPrefixesLocked(const std::string& node,
                                           std::span<const ipam::Prefix> ours,
                                           std::map<std::string, Join>& joins,
                                           std::vector<NicBlock>& blocks) {
  const auto info = state_.nodes.find(node);
  if (info == state_.nodes.end()) return;
  for (const ipam::Prefix& prefix : ours) {
    if (std::ranges::any_of(blocks, [&](const NicBlock& b) { return b.cidr == prefix; })) continue;
    // The PodSubnet whose range it is decides; no other one can hold it.
    const auto owner = std::ranges::find_if(state_.subnetStates, [&](const auto& entry) {
      return entry.second.blocks && entry.second.blocks->contains(prefix);
    });
    if (owner == state_.subnetStates.end()) continue;
    const std::string& subnetName = owner->first;
    SubnetState& state = owner->second;
    const auto subnet = state_.subnets.find(subnetName);
    if (subnet == state_.subnets.end() || !state_.nodeSelected(info->second, subnet->second.spec) ||
        prefix.length() != subnet->second.spec.blockPrefixLength ||
        state.holders.contains(prefix)) {
      continue;  // not the node's to have: unowned, removed after the grace
    }
    // In a range spec.reservedCIDRs reserved since: never a block again (it would be refused).
    if (state.blocks->isReservedAllocated(prefix)) continue;
    if (state.blocks->isAllocated(prefix)) {
      // Taken: by a leak (a join's create that did not happen, or the carve's scan of the
      // subnet) it may end as this node's; by anything else (another node's join) it may not.
      if (state.leaks.erase(prefix) == 0) continue;
    } else if (!state.blocks->occupy(prefix)) {
      continue;  // reserved, or not a block of this pool
    }
    auto name = api::blockName(subnetName, prefix);
    if (!name) {
      (void)state.blocks->release(prefix);
      continue;
    }
    // It takes the place of a join of the same PodSubnet that no PUT has carried yet, if the
    // node has one: the Node reconciler carved that for the block the node lacked, and this is
    // it. (Kept as well, it would be a block the node does not need.)
    auto& nodeJoins = state_.joins[node];
    const auto unsent = std::ranges::find_if(nodeJoins, [&](const auto& j) {
      return j.second.subnet == subnetName && !j.second.putSent;
    });
    if (unsent != nodeJoins.end()) {
      const std::string replaced = unsent->first;
      (void)state.blocks->release(unsent->second.cidr);
      nodeJoins.erase(unsent);
      joins.erase(replaced);
      std::erase_if(blocks, [&](const NicBlock& b) { return b.name == replaced; });
    }
    const Join join{.subnet = subnetName, .cidr = prefix, .since = state_.now(), .putSent = true};
    nodeJoins[*name] = join;
    joins[*name] = join;
    blocks.push_back(joinAsNicBlock(*name, prefix));
    spdlog::info(
        "node {}: its NIC carries {} of PodSubnet {}, which no IPBlock holds (a join whose "
        "IPBlock was not created): creating IPBlock {} for it",
        node, prefix.toString(), subnetName, *name);
  }
}

std::map<ipam::Prefix, SubnetState::ForeignHold> NicReconciler::foreignHoldsLocked(Time t) {
  std::map<ipam::Prefix, SubnetState::ForeignHold> out;
  for (auto& [name, state] : state_.subnetStates) {
    for (auto it = state.heldByOthers.begin(); it != state.heldByOthers.end();) {
      const ipam::Prefix cidr = it->first;
      if (it->second.until > t) {
        if (state.blocks) (void)state.blocks->holdForOthers(cidr);
        out.emplace(cidr, it->second);
        ++it;
        continue;
      }
      it = state.heldByOthers.erase(it);
      if (state.blocks && state.blocks->releaseHoldForOthers(cidr)) {
        spdlog::info(
            "PodSubnet {}: {} may be carved again: its hold for another resource's "
            "address ended",
            name, cidr.toString());
        for (const std::string& shortNode : state.shortNodes)
          state_.enqueue(nodeKey(shortNode));
      }
    }
  }
  return out;
}

}  // namespace vnetipam::controller
