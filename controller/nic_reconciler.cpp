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
    state_.rememberBlock(write.name, *written);
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
  if (remember) state_.rememberBlock(name, *patched);
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
  Pass pass = snapshot(node);
  if (!state_.cloud) return passWithoutCloud(pass);
  NicState nic;
  if (std::optional<PassEnd> end = readNodeNic(pass, nic)) return *end;
  if (pass.nodeExists && state_.canWrite()) {
    std::lock_guard lock(state_.mutex);
    adoptOwnPrefixesLocked(node, nic.ours, pass.joins, pass.blocks);
  }
  Programming programming = program(pass, nic);
  if (programming.notLeader) return std::string("not the leader");
  const SettledJoins settled = settleJoins(pass, nic, programming);
  return writeOutcome(pass, nic, programming, settled, again);
}

NicReconciler::Pass NicReconciler::snapshot(const std::string& node) {
  Pass pass;
  pass.node = node;
  std::lock_guard lock(state_.mutex);
  pass.ref = state_.nodeRef(node);
  if (auto j = state_.joins.find(node); j != state_.joins.end()) {
    if (state_.nodes.contains(node)) {
      pass.joins = j->second;
    } else {
      // The node is gone: its joins end. A CIDR whose prefix a PUT may have put on the NIC
      // stays taken until that prefix would have been removed as unowned.
      for (const auto& [name, join] : j->second) {
        if (join.putSent) {
          state_.leakCidrLocked(join.subnet, join.cidr, state_.onNicLeakGrace());
        } else if (ipam::BlockPool* pool = state_.poolLocked(join.subnet)) {
          (void)pool->release(join.cidr);
        }
      }
      state_.joins.erase(j);
    }
  }
  for (const auto& [name, join] : pass.joins)
    pass.blocks.push_back(joinAsNicBlock(name, join.cidr));
  if (auto index = state_.nodeBlocks.find(node); index != state_.nodeBlocks.end()) {
    for (const std::string& name : index->second) {
      const BlockInfo& info = state_.blocks.at(name);
      pass.programmedOf[name] = info.programmed;
      pass.blocks.push_back({.name = name,
                             .cidr = info.cidr,
                             .phase = info.phase,
                             .deleting = info.deleting,
                             .trust = info.trust,
                             .agentDrain = info.agentDrain});
      if (!info.nicId.empty()) {
        pass.blockNicId = info.nicId;
        pass.blockNicProviderID = info.providerID;
      }
      if (!info.providerID.empty()) pass.blockProviderID = info.providerID;
      if (info.hasFinalizer) pass.withFinalizer.push_back(name);
    }
  }
  for (const auto& [name, state] : state_.subnetStates) {
    pass.managed.insert(pass.managed.end(), state.ranges.begin(), state.ranges.end());
  }
  pass.holds = foreignHoldsLocked(state_.now());
  if (auto u = unowned_.find(node); u != unowned_.end()) pass.unowned = u->second;
  if (auto n = state_.nicIds.find(node); n != state_.nicIds.end()) pass.nicId = n->second;
  if (auto n = state_.nodes.find(node); n != state_.nodes.end()) {
    pass.nodeExists = true;
    pass.providerID = n->second.providerID;
    pass.nodeCondition = n->second.nicCondition;
  }
  // The NIC a block of the node was programmed on, when the node is gone or is still on the VM
  // that block was created for: a controller that starts (or takes the lease) needs no GET of
  // the VM for a node that has blocks. A NIC found gone is looked up through the VM again.
  if (!pass.nicId && !pass.blockNicId.empty() && !goneNics_.contains(armIdKey(pass.blockNicId)) &&
      (!pass.nodeExists ||
       (!pass.providerID.empty() && pass.blockNicProviderID == pass.providerID))) {
    pass.nicId = pass.blockNicId;
  }
  return pass;
}

NicReconciler::PassEnd NicReconciler::passWithoutCloud(const Pass& pass) {
  // --cloud=none: no NIC to program (the rules are planWithoutCloud's, nic_reconcile.h).
  const NoCloudPlan noCloud = planWithoutCloud(pass.blocks, pass.withFinalizer);
  std::vector<BlockStatusChange> changes;
  for (const std::string& name : noCloud.toReady) {
    // Programmed goes with Ready, in the same apply: no write of its own.
    const auto programmed = pass.programmedOf.find(name);
    changes.push_back(
        {.name = name,
         .phase = api::BlockPhase::kReady,
         .programmed = nextCondition(
             programmed == pass.programmedOf.end() ? std::nullopt : programmed->second,
             api::kConditionProgrammed, true, std::string(kReasonNoCloud),
             "the controller runs with --cloud=none: there is no NIC "
             "to program, the network routes the block by itself",
             state_.now())});
  }
  auto error = writeBlockStatus(pass.node, changes, "");
  auto released = finishReleasing(noCloud.finished);
  auto dropped = dropNicFinalizers(noCloud.dropFinalizer);
  return error ? error : released ? released : dropped;
}

NicReconciler::PassEnd NicReconciler::leaveWithoutNic(const Pass& pass, std::string_view why) {
  // The node (and with it, its VM) is gone and nothing tells us its NIC: there is no prefix
  // left to remove that we could find.
  std::vector<std::string> finished;
  for (const NicBlock& b : pass.blocks) {
    if (b.deleting || (b.trust != Trust::kInvalid && b.leaving())) finished.push_back(b.name);
  }
  spdlog::info("node {}: releasing {} blocks without a NIC: {}", pass.node, finished.size(), why);
  return finishReleasing(finished);
}

std::optional<NicReconciler::PassEnd> NicReconciler::readNodeNic(Pass& pass, NicState& nic) {
  const std::string& node = pass.node;
  // Refused blocks are not ours to program: they neither keep a NIC pass going nor stop one.
  const bool allLeaving = std::ranges::all_of(
      pass.blocks, [](const NicBlock& b) { return b.trust == Trust::kInvalid || b.leaving(); });
  if (pass.blocks.empty() && !pass.nodeExists) {
    std::lock_guard lock(state_.mutex);
    unowned_.erase(node);
    state_.nicIds.erase(node);
    return PassEnd();
  }
  const bool nicRemembered = pass.nicId.has_value();  // cached, or from a block: not looked up
  bool listedNic = false;                             // looked up in a list of the VM's group
  if (!pass.nicId) {
    if (std::optional<PassEnd> end = lookUpNic(pass, allLeaving, listedNic)) return end;
  }
  auto read = state_.cloud->readNic(*pass.nicId);
  const bool nicGone = !read && read.error().code == azure::ErrorCode::kNotFound;
  // A NIC a list named that is gone or on another VM now: the list was older than the change.
  const bool listOutdated =
      listedNic && (nicGone || (read && !onVmOf(read->vmId, pass.providerID)));
  if ((nicGone && nicRemembered && pass.nodeExists && !pass.providerID.empty() &&
       !state_.cloud->refuseNode(pass.providerID)) ||
      listOutdated) {
    // The NIC remembered is gone (the VM got another): the VM says which it has now, in this pass.
    // Should it not, the NotFound below forgets the NIC as it does for any other.
    auto found = state_.cloud->primaryNicOfNode(pass.providerID);
    if (found && armIdKey(*found) != armIdKey(*pass.nicId)) {
      {
        std::lock_guard lock(state_.mutex);
        if (nicGone) goneNics_.insert(armIdKey(*pass.nicId));
        state_.nicIds[node] = *found;
      }
      pass.nicId = *found;
      read = state_.cloud->readNic(*pass.nicId);
    }
  }
  if (read) {
    nic = std::move(*read);
    return std::nullopt;
  }
  if (read.error().code != azure::ErrorCode::kNotFound) {
    return fmt::format("node {}: reading NIC {}: {}", node, *pass.nicId, read.error().message);
  }
  {
    std::lock_guard lock(state_.mutex);
    state_.nicIds.erase(node);  // the NIC may have been replaced: look it up again
    goneNics_.insert(armIdKey(*pass.nicId));
  }
  if (!allLeaving) return fmt::format("node {}: NIC {} not found", node, *pass.nicId);
  return leaveWithoutNic(pass, "its NIC is gone");
}

std::optional<NicReconciler::PassEnd> NicReconciler::lookUpNic(Pass& pass, bool allLeaving,
                                                               bool& listed) {
  const std::string& node = pass.node;
  // The node is gone: find its NIC through what its blocks remember of it.
  if (!pass.nodeExists && pass.providerID.empty()) pass.providerID = pass.blockProviderID;
  if (pass.providerID.empty()) {
    if (!pass.nodeExists && allLeaving) return leaveWithoutNic(pass, "the node is gone");
    if (pass.blocks.empty()) return PassEnd();
    return fmt::format("node {} has no spec.providerID: cannot find its NIC", node);
  }
  if (auto refused = state_.cloud->refuseNode(pass.providerID)) {
    // No NIC of this node can take a prefix, so none is looked up: the Node reconciler carves
    // it nothing, releases what it has and says why on the Node. Its leaving blocks finish
    // without a NIC; one not leaving yet comes back here with its deletion.
    if (pass.blocks.empty() || !allLeaving) return PassEnd();
    return leaveWithoutNic(pass, refused->reason);
  }
  auto found = findNicOfNode(pass.providerID);
  if (!found) {
    if (found.error().code == azure::ErrorCode::kNotFound && allLeaving) {
      return leaveWithoutNic(pass, "its VM is gone");
    }
    return fmt::format("node {}: finding the NIC of {}: {}", node, pass.providerID,
                       found.error().message);
  }
  pass.nicId = found->id;
  listed = found->listed;
  std::lock_guard lock(state_.mutex);
  state_.nicIds[node] = *pass.nicId;
  return std::nullopt;
}

NicReconciler::Programming NicReconciler::program(Pass& pass, const NicState& nic) {
  // Plan and PUT. A PUT Azure refuses because another resource holds an address inside one of
  // the blocks it adds (N16) names that block: its CIDR is held for others, and the plan made
  // again without it is PUT at once, so one foreign address costs the node one block, not all
  // of its new ones. Each round holds one more block the PUT was to add, so the rounds end.
  Programming out;
  for (std::size_t round = 0; round <= pass.blocks.size(); ++round) {
    std::vector<ipam::Prefix> held;
    for (const auto& [cidr, hold] : pass.holds)
      held.push_back(cidr);
    out.plan = planNic(NicInput{.blocks = pass.blocks,
                                .nicPrefixes = nic.prefixes,
                                .managedRanges = pass.managed,
                                .unownedFirstSeen = pass.unowned,
                                .unownedGrace = state_.config.nicOrphanGrace,
                                .now = state_.now(),
                                .heldByOthers = held});
    out.putError.reset();
    if (!out.plan.needsPut) break;
    if (!state_.canWrite()) {
      out.notLeader = true;
      return out;
    }
    markPutSent(pass, out.plan.desiredPrefixes);
    auto put = state_.cloud->setNicPrefixes(nic, out.plan.desiredPrefixes);
    if (put) break;
    out.putError = std::move(put.error());
    const azure::Error& putError = *out.putError;
    out.refusals.push_back(fmt::format("programming NIC {} failed: {} ({})", *pass.nicId,
                                       putError.message,
                                       nicFailureReason(putError.code, putError.azureCode)));
    if (!addressHeldByOthers(putError.azureCode)) break;
    const std::optional<std::string> conflict = conflictingBlock(
        pass.blocks, nic.prefixes, out.plan.desiredPrefixes, putError.message, azure::ipConfigName);
    if (!conflict) break;
    holdForOthers(pass, *std::ranges::find(pass.blocks, *conflict, &NicBlock::name), putError);
  }
  return out;
}

void NicReconciler::markPutSent(Pass& pass, const std::vector<ipam::Prefix>& desired) {
  {
    std::lock_guard lock(state_.mutex);
    if (auto j = state_.joins.find(pass.node); j != state_.joins.end()) {
      for (auto& [name, join] : j->second) {
        if (std::ranges::binary_search(desired, join.cidr)) join.putSent = true;
      }
    }
  }
  for (auto& [name, join] : pass.joins) {
    if (std::ranges::binary_search(desired, join.cidr)) join.putSent = true;
  }
}

void NicReconciler::holdForOthers(Pass& pass, const NicBlock& b, const azure::Error& putError) {
  SubnetState::ForeignHold hold{
      .until = state_.now() + state_.config.foreignHold,
      .reason = nicFailureReason(putError.code, putError.azureCode),
      .message = boundedMessage(fmt::format(
          "another resource holds an address in {}, so Azure refuses it on NIC {}: {}; the "
          "block is not served, it is released and another block takes its place, and {} is "
          "not carved again for {}s",
          b.cidr.toString(), *pass.nicId, putError.message, b.cidr.toString(),
          state_.config.foreignHold.count()))};
  spdlog::warn("node {}: IPBlock {}: {}", pass.node, b.name, hold.message);
  {
    std::lock_guard lock(state_.mutex);
    std::string subnet;
    if (auto info = state_.blocks.find(b.name); info != state_.blocks.end()) {
      subnet = info->second.podSubnet;
    }
    if (auto j = pass.joins.find(b.name); j != pass.joins.end()) subnet = j->second.subnet;
    if (auto state = state_.subnetStates.find(subnet); state != state_.subnetStates.end()) {
      state->second.heldByOthers[b.cidr] = hold;
      if (state->second.blocks) (void)state->second.blocks->holdForOthers(b.cidr);
    }
  }
  pass.holds[b.cidr] = std::move(hold);
  // When the hold ends, a NIC pass lifts it and requeues the nodes short of blocks; nothing else
  // may run one then (the holds may be what leaves the pool without a free block).
  state_.enqueueAfter(nicKey(pass.node), state_.config.foreignHold + std::chrono::seconds(1));
}

NicReconciler::SettledJoins NicReconciler::settleJoins(Pass& pass, const NicState& nic,
                                                       Programming& programming) {
  NicPlan& plan = programming.plan;
  const bool putOk = !programming.putError;
  // Joins: created once the NIC carries their prefix, as the GET showed (a phase change to Ready)
  // or as the PUT's operation reported; a quarantined one goes back to the pool, where the hold
  // keeps it from being carved again (its prefix is on no NIC: Azure refused it). The others wait
  // for the next pass. None of them has an object for the writes and events below.
  SettledJoins out;
  for (const auto& [name, join] : pass.joins) {
    const bool shown = std::ranges::any_of(plan.phaseChanges,
                                           [&](const PhaseChange& c) { return c.name == name; });
    const bool put =
        plan.needsPut && putOk && std::ranges::binary_search(plan.desiredPrefixes, join.cidr);
    if (shown || put) out.confirmed.push_back(name);
  }
  if (!plan.quarantined.empty()) {
    std::lock_guard lock(state_.mutex);
    for (const std::string& name : plan.quarantined) {
      const auto j = pass.joins.find(name);
      if (j == pass.joins.end()) continue;
      out.quarantinedMessages.push_back(pass.holds.at(j->second.cidr).message);
      if (ipam::BlockPool* pool = state_.poolLocked(j->second.subnet)) {
        (void)pool->release(j->second.cidr);
      }
      if (auto all = state_.joins.find(pass.node); all != state_.joins.end()) {
        all->second.erase(name);
      }
      state_.enqueue(nodeKey(pass.node));
    }
  }
  std::erase_if(plan.phaseChanges,
                [&](const PhaseChange& c) { return pass.joins.contains(c.name); });
  std::erase_if(pass.blocks, [&](const NicBlock& b) { return pass.joins.contains(b.name); });
  // A PUT that only added joins' prefixes needs no GET after it: the operation said they are on.
  out.putOnlyAddedJoins = plan.needsPut && putOk;
  if (out.putOnlyAddedJoins) {
    std::vector<ipam::Prefix> changed;
    std::vector<ipam::Prefix> current = nic.prefixes;
    std::ranges::sort(current);
    std::ranges::set_symmetric_difference(plan.desiredPrefixes, current,
                                          std::back_inserter(changed));
    out.putOnlyAddedJoins = std::ranges::all_of(changed, [&](const ipam::Prefix& p) {
      return std::ranges::any_of(pass.joins, [&](const auto& j) { return j.second.cidr == p; });
    });
  }
  return out;
}

NicReconciler::StatusDecision NicReconciler::decideStatus(const Pass& pass, const NicState& nic,
                                                          const Programming& programming) {
  StatusDecision out;
  for (const std::string& name : programming.plan.quarantined) {
    if (pass.joins.contains(name)) continue;
    const NicBlock& b = *std::ranges::find(pass.blocks, name, &NicBlock::name);
    const SubnetState::ForeignHold& hold = pass.holds.at(b.cidr);
    out.quarantined.push_back(
        {.name = name, .why = {.reason = hold.reason, .message = hold.message}});
  }
  if (programming.putError) {
    const azure::Error& putError = *programming.putError;
    out.failure = NicPutFailure{
        .reason = nicFailureReason(putError.code, putError.azureCode),
        .message = fmt::format("programming NIC {} failed: {}", *pass.nicId, putError.message)};
  }
  std::vector<NicStatusBlock> statusBlocks;
  for (const NicBlock& b : pass.blocks) {
    const auto programmed = pass.programmedOf.find(b.name);
    statusBlocks.push_back(
        {.block = b,
         .programmed = programmed == pass.programmedOf.end() ? std::nullopt : programmed->second,
         .ipConfiguration = azure::ipConfigName(b.cidr)});
  }
  out.status = planNicStatus({.blocks = statusBlocks,
                              .phaseChanges = programming.plan.phaseChanges,
                              .nicPrefixes = nic.prefixes,
                              .nicId = *pass.nicId,
                              .putFailure = out.failure,
                              .quarantined = out.quarantined,
                              .nodeExists = pass.nodeExists,
                              .nodeCondition = pass.nodeCondition,
                              .now = state_.now()});
  return out;
}

NicReconciler::PassEnd NicReconciler::writeOutcome(const Pass& pass, const NicState& nic,
                                                   const Programming& programming,
                                                   const SettledJoins& settled, bool& again) {
  const std::string& node = pass.node;
  const NicPlan& plan = programming.plan;
  const bool putOk = !programming.putError;
  std::optional<std::string> error;
  if (programming.putError) {
    error = fmt::format("node {}: programming NIC {}: {}", node, *pass.nicId,
                        programming.putError->message);
  }
  const StatusDecision decided = decideStatus(pass, nic, programming);
  if (auto e = writeBlockStatus(node, decided.status.writes, *pass.nicId); e && !error) error = e;
  // After a PUT whose outcome is unknown keep every finalizer: the next GET tells.
  if (putOk) {
    if (auto e = finishReleasing(plan.finishedReleasing); e && !error) error = e;
  }
  bool releasedQuarantined = false;
  if (!releaseQuarantined(pass, plan, error, releasedQuarantined)) {
    return std::string("not the leader");
  }
  if (releasedQuarantined) state_.enqueue(nodeKey(node));
  bool createAgain = false;
  for (const std::string& name : settled.confirmed) {
    if (auto e =
            state_.createBlock(node, name, pass.joins.at(name),
                               pass.providerID.empty() ? pass.blockProviderID : pass.providerID,
                               *pass.nicId, createAgain);
        e && !error) {
      error = e;
    }
  }
  if (createAgain) state_.enqueue(nodeKey(node));
  report(pass, programming, settled, decided);
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
  again = !error && ((plan.needsPut && putOk && !settled.putOnlyAddedJoins) || moreRows ||
                     releasedQuarantined);
  return error;
}

bool NicReconciler::releaseQuarantined(const Pass& pass, const NicPlan& plan,
                                       std::optional<std::string>& error, bool& released) {
  // A quarantined block is released the ordinary way (5.3): deleted now (its prefix is not on the
  // NIC and no PUT adds it), its agent gives it up, N8 removes nic-release, and only once the
  // object is gone does its CIDR go back to the pool, where the hold keeps it from being carved
  // again. The Node reconciler counts it as leaving, so the node gets another block at once.
  for (const std::string& name : plan.quarantined) {
    if (pass.joins.contains(name)) continue;
    if (!state_.canWrite()) return false;
    const std::optional<BlockInfo> info = state_.block(name);
    if (!info || info->deleting) continue;
    // Known at once, not when the watch brings it: the next pass plans it as leaving (N8).
    if (auto deleted = state_.deleteBlock(name, info->uid); !deleted) {
      if (!error) {
        error = fmt::format("node {}: releasing quarantined IPBlock {}: {}", pass.node, name,
                            deleted.error().message);
      }
      continue;
    }
    released = true;
    spdlog::info("node {}: releasing IPBlock {}: another resource holds an address in {}",
                 pass.node, name, info->cidr.toString());
  }
  return true;
}

void NicReconciler::report(const Pass& pass, const Programming& programming,
                           const SettledJoins& settled, const StatusDecision& decided) {
  const std::string& node = pass.node;
  for (const NicEvent& e : programming.plan.events) {
    kube::ObjectReference regarding = pass.ref;
    if (!e.block.empty()) regarding = state_.blockRef(e.block);
    state_.event(regarding, e.warning, toString(e.reason), "ProgramNIC", e.message);
  }
  // Every failed PUT is an Event on the Node (the recorder folds repeats into a series, so its
  // count says how many tries failed); a block's Event comes with its condition, once.
  for (const std::string& refusal : programming.refusals) {
    state_.event(pass.ref, true, kEventNicProgrammingFailed, "ProgramNIC", refusal);
  }
  // A quarantined join has no IPBlock to carry its condition: the Node says what became of it.
  for (const std::string& message : settled.quarantinedMessages) {
    state_.event(pass.ref, true, kEventNicProgrammingFailed, "ProgramNIC", message);
  }
  for (const std::string& name : decided.status.newlyFailing) {
    const auto b = std::ranges::find(pass.blocks, name, &NicBlock::name);
    const auto q = std::ranges::find(decided.quarantined, name, &QuarantinedBlock::name);
    const NicPutFailure* why = q != decided.quarantined.end() ? &q->why
                               : decided.failure              ? &*decided.failure
                                                              : nullptr;
    if (why == nullptr) continue;
    state_.event(state_.blockRef(name), true, kEventNicProgrammingFailed, "ProgramNIC",
                 fmt::format("prefix {} is not on node {}'s NIC: {} ({})", b->cidr.toString(), node,
                             why->message, why->reason));
  }
  // A failed Node condition write is only logged: the condition must not hold up programming (a
  // chart without the nodes/status grant, say), and the next pass writes it again.
  const NicStatusPlan& status = decided.status;
  if (status.nodeCondition) {
    if (auto e = state_.writeNodeNicCondition(node, *status.nodeCondition)) {
      spdlog::warn("{}", *e);
    } else if (status.nodeRecovered) {
      state_.event(pass.ref, false, kEventNicProgrammingRecovered, "ProgramNIC",
                   fmt::format("{} (it failed before: {})", status.nodeCondition->message,
                               pass.nodeCondition->reason));
    }
  }
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
