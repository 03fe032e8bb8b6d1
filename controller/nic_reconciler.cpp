// The NIC reconciler: makes each node's NIC carry exactly its blocks' prefixes (the decision
// table is nic_reconcile.h), moves block phases from what a GET of the NIC showed, and removes
// the finalizer of a released block once its prefix is off the NIC. State and wiring:
// controller.h.
#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "controller/controller.h"
#include "controller/controller_internal.h"
#include "controller/nic_reconcile.h"
#include "controller/pool_status.h"

namespace vnetipam::controller {

using nlohmann::json;

std::optional<std::string> Controller::writePhases(
    const std::string& node, const std::vector<std::pair<std::string, api::BlockPhase>>& changes,
    const std::string& nicId) {
  std::optional<std::string> firstError;
  for (const auto& [name, phase] : changes) {
    if (!canWrite()) return std::string("not the leader");
    ipam::Prefix cidr;
    {
      std::lock_guard lock(mutex_);
      const auto found = blocks_.find(name);
      // Only an accepted block gets a phase (and this apply, without conditions, would drop the
      // Invalid condition of a refused one).
      if (found == blocks_.end() || found->second.trust != Trust::kAccepted) continue;
      cidr = found->second.cidr;
    }
    json status = {{"phase", api::toString(phase)},
                   {"capacity", prefixSize(cidr)},
                   {"lastTransitionTime", formatTime(now())}};
    if (!nicId.empty() &&
        (phase == api::BlockPhase::kProgrammed || phase == api::BlockPhase::kReady)) {
      status["nic"] = {{"id", nicId}, {"ipConfiguration", azure::ipConfigName(cidr)}};
    }
    const json body = {{"apiVersion", api::kApiVersion},
                       {"kind", api::kIPBlockKind},
                       {"metadata", {{"name", name}}},
                       {"status", std::move(status)}};
    auto written = client_.applyStatus(
        blockPath(name), body,
        {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
    if (!written) {
      if (written.error().code == kube::ErrorCode::kNotFound) continue;
      firstError =
          firstError.value_or(fmt::format("node {}: IPBlock {}: writing phase {}: {}", node, name,
                                          api::toString(phase), written.error().message));
      continue;
    }
    if (auto info = decodeBlock(*written)) {
      std::lock_guard lock(mutex_);
      upsertBlockLocked(name, std::move(*info), false);
    }
  }
  return firstError;
}

std::optional<std::string> Controller::finishReleasing(const std::vector<std::string>& names) {
  std::optional<std::string> firstError;
  for (const std::string& name : names) {
    if (!canWrite()) return std::string("not the leader");
    const std::optional<BlockInfo> info = block(name);
    if (!info) continue;
    if (!info->deleting) {
      auto removed = client_.remove(blockPath(name), {.uid = info->uid});
      if (!removed && removed.error().code != kube::ErrorCode::kNotFound) {
        firstError = firstError.value_or(
            fmt::format("deleting IPBlock {}: {}", name, removed.error().message));
        continue;
      }
    }
    if (!info->hasFinalizer) continue;
    if (auto e = removeNicFinalizer(name, *info, false)) firstError = firstError.value_or(*e);
  }
  return firstError;
}

std::optional<std::string> Controller::removeNicFinalizer(const std::string& name,
                                                          const BlockInfo& info, bool remember) {
  // The other finalizers stay, and the resourceVersion makes the patch fail rather than drop one
  // that was added since.
  const json patch = {
      {"metadata",
       {{"finalizers", info.otherFinalizers}, {"resourceVersion", info.resourceVersion}}}};
  auto patched = client_.mergePatch(blockPath(name), patch);
  if (!patched) {
    if (patched.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    // kConflict: the watch brings the newer object and the NIC pass runs again.
    return fmt::format("IPBlock {}: removing finalizer {}: {}", name, api::kNicReleaseFinalizer,
                       patched.error().message);
  }
  if (remember) {
    if (auto updated = decodeBlock(*patched)) {
      std::lock_guard lock(mutex_);
      upsertBlockLocked(name, std::move(*updated), false);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Controller::removeAgentDrain(const std::string& name,
                                                        const BlockInfo& info) {
  json finalizers = json::array();
  for (const std::string& f : info.otherFinalizers) {
    if (f != api::kAgentDrainFinalizer) finalizers.push_back(f);
  }
  if (info.hasFinalizer) finalizers.push_back(api::kNicReleaseFinalizer);
  const json patch = {
      {"metadata", {{"finalizers", finalizers}, {"resourceVersion", info.resourceVersion}}}};
  auto patched = client_.mergePatch(blockPath(name), patch);
  if (!patched) {
    if (patched.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    return fmt::format("IPBlock {}: removing finalizer {}: {}", name, api::kAgentDrainFinalizer,
                       patched.error().message);
  }
  if (auto updated = decodeBlock(*patched)) {
    std::lock_guard lock(mutex_);
    upsertBlockLocked(name, std::move(*updated), false);
  }
  return std::nullopt;
}

std::optional<std::string> Controller::reportInvalid(const std::string& name) {
  if (!canWrite()) return std::string("not the leader");
  const std::optional<BlockInfo> info = block(name);
  if (!info || info->trust != Trust::kInvalid || info->invalidInStatus) return std::nullopt;
  const api::Condition condition{.type = std::string(api::kConditionInvalid),
                                 .status = "True",
                                 .reason = std::string(toString(info->invalidRule)),
                                 .message = info->invalidMessage,
                                 .lastTransitionTime = formatTime(now()),
                                 .observedGeneration = 0,
                                 .extra = json::object()};
  const json body = {{"apiVersion", api::kApiVersion},
                     {"kind", api::kIPBlockKind},
                     {"metadata", {{"name", name}}},
                     {"status", {{"conditions", json::array({api::toJson(condition)})}}}};
  auto written = client_.applyStatus(
      blockPath(name), body,
      {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
  if (!written) {
    if (written.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
    return fmt::format("IPBlock {}: writing condition {}: {}", name, api::kConditionInvalid,
                       written.error().message);
  }
  if (auto updated = decodeBlock(*written)) {
    std::lock_guard lock(mutex_);
    upsertBlockLocked(name, std::move(*updated), false);
  }
  event({.apiVersion = std::string(api::kApiVersion),
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

std::optional<std::string> Controller::dropNicFinalizers(const std::vector<std::string>& names) {
  std::optional<std::string> firstError;
  for (const std::string& name : names) {
    if (!canWrite()) return std::string("not the leader");
    const std::optional<BlockInfo> info = block(name);
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

std::optional<std::string> Controller::reconcileNic(const std::string& node) {
  // A pass that PUT the NIC is followed at once by another, with a fresh GET:
  // Pending -> (PUT) -> Ready in one reconcile instead of two trips through a queue that may hold
  // thousands of nodes.
  for (int pass = 0; pass < 3; ++pass) {
    bool again = false;
    if (auto error = nicPass(node, again)) return error;
    if (!again) return std::nullopt;
  }
  enqueue("c/" + node);
  return std::nullopt;
}

std::optional<std::string> Controller::nicPass(const std::string& node, bool& again) {
  std::vector<NicBlock> blocks;
  std::string blockNicId;                  // status.nic.id of some block of the node
  std::string blockProviderID;             // the providerID some block was created for
  std::vector<std::string> withFinalizer;  // blocks that carry kNicReleaseFinalizer
  std::vector<ipam::Prefix> managed;
  std::map<ipam::Prefix, Time> unowned;
  std::optional<std::string> nicId;
  std::string providerID;
  bool nodeExists = false;
  kube::ObjectReference ref;
  {
    std::lock_guard lock(mutex_);
    ref = nodeRef(node);
    if (auto index = nodeBlocks_.find(node); index != nodeBlocks_.end()) {
      for (const std::string& name : index->second) {
        const BlockInfo& info = blocks_.at(name);
        blocks.push_back({.name = name,
                          .cidr = info.cidr,
                          .phase = info.phase,
                          .deleting = info.deleting,
                          .trust = info.trust,
                          .agentDrain = info.agentDrain});
        if (!info.nicId.empty()) blockNicId = info.nicId;
        if (!info.providerID.empty()) blockProviderID = info.providerID;
        if (info.hasFinalizer) withFinalizer.push_back(name);
      }
    }
    for (const auto& [name, state] : subnetStates_) {
      if (state.cidr) managed.push_back(*state.cidr);
    }
    if (auto u = unowned_.find(node); u != unowned_.end()) unowned = u->second;
    if (auto n = nicIds_.find(node); n != nicIds_.end()) nicId = n->second;
    if (!nicId && !blockNicId.empty() && nodes_.find(node) == nodes_.end()) nicId = blockNicId;
    if (auto n = nodes_.find(node); n != nodes_.end()) {
      nodeExists = true;
      providerID = n->second.providerID;
    }
  }

  if (!cloud_) {
    // --cloud=none: no NIC to program; blocks go Pending -> Ready, leaving blocks go at once.
    //
    // The finalizer rule without a cloud: kNicReleaseFinalizer promises a NIC step (the block's
    // prefix taken off its node's NIC) before the object may go, and this controller takes none:
    // a leaving block is released at once, below. So no block keeps the finalizer, neither a new
    // one (reconcileNode does not add it) nor one found carrying it (made by an earlier version,
    // or while the controller ran with a cloud), which would otherwise outlive every controller
    // and hang the deletion of the CRDs once the chart is gone. Removing it is safe because
    // releasing a block here never waits for a NIC anyway; a prefix such a block left on a NIC is
    // removed as unowned (after nicOrphanGrace) when a controller runs with the cloud again.
    //
    // Only accepted blocks move: a refused or undecided block is never set Ready, and is never
    // deleted here (only its own deletion, by someone else, lets it lose the finalizer).
    std::vector<std::pair<std::string, api::BlockPhase>> changes;
    std::vector<std::string> finished;
    for (const NicBlock& b : blocks) {
      if (b.trust != Trust::kAccepted) {
        if (b.deleting) finished.push_back(b.name);
      } else if (b.leaving()) {
        finished.push_back(b.name);
      } else if (b.phase != api::BlockPhase::kReady) {
        changes.emplace_back(b.name, api::BlockPhase::kReady);
      }
    }
    // A leaving block loses the finalizer in finishReleasing, with its release.
    std::erase_if(withFinalizer, [&](const std::string& name) {
      return std::ranges::find(finished, name) != finished.end();
    });
    auto error = writePhases(node, changes, "");
    auto released = finishReleasing(finished);
    auto dropped = dropNicFinalizers(withFinalizer);
    return error ? error : released ? released : dropped;
  }

  // Refused blocks are not ours to program: they neither keep a NIC pass going nor stop one.
  const bool allLeaving = std::ranges::all_of(
      blocks, [](const NicBlock& b) { return b.trust == Trust::kInvalid || b.leaving(); });
  if (blocks.empty() && !nodeExists) {
    std::lock_guard lock(mutex_);
    unowned_.erase(node);
    nicIds_.erase(node);
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
  if (!nicId) {
    // The node is gone: find its NIC through what its blocks remember of it.
    if (!nodeExists && providerID.empty()) providerID = blockProviderID;
    if (providerID.empty()) {
      if (!nodeExists && allLeaving) return leaveWithoutNic("the node is gone");
      if (blocks.empty()) return std::nullopt;
      return fmt::format("node {} has no spec.providerID: cannot find its NIC", node);
    }
    auto found = cloud_->primaryNicOfNode(providerID);
    if (!found) {
      if (found.error().code == azure::ErrorCode::kNotFound && allLeaving) {
        return leaveWithoutNic("its VM is gone");
      }
      return fmt::format("node {}: finding the NIC of {}: {}", node, providerID,
                         found.error().message);
    }
    nicId = *found;
    std::lock_guard lock(mutex_);
    nicIds_[node] = *nicId;
  }
  auto nic = cloud_->readNic(*nicId);
  if (!nic) {
    if (nic.error().code == azure::ErrorCode::kNotFound) {
      std::lock_guard lock(mutex_);
      nicIds_.erase(node);  // the NIC may have been replaced: look it up again
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

  const NicPlan plan = planNic(NicInput{.blocks = blocks,
                                        .nicPrefixes = nic->prefixes,
                                        .managedRanges = managed,
                                        .unownedFirstSeen = std::move(unowned),
                                        .unownedGrace = config_.nicOrphanGrace,
                                        .now = now()});
  std::optional<std::string> error;
  bool putOk = true;
  if (plan.needsPut) {
    if (!canWrite()) return std::string("not the leader");
    auto put = cloud_->setNicPrefixes(*nicId, plan.desiredPrefixes);
    if (!put) {
      putOk = false;
      error = fmt::format("node {}: programming NIC {}: {}", node, *nicId, put.error().message);
    }
  }
  std::vector<std::pair<std::string, api::BlockPhase>> changes;
  for (const PhaseChange& change : plan.phaseChanges)
    changes.emplace_back(change.name, change.to);
  if (auto e = writePhases(node, changes, *nicId); e && !error) error = e;
  // After a PUT whose outcome is unknown keep every finalizer: the next GET tells.
  if (putOk) {
    if (auto e = finishReleasing(plan.finishedReleasing); e && !error) error = e;
  }
  for (const NicEvent& e : plan.events) {
    kube::ObjectReference regarding = ref;
    if (!e.block.empty()) {
      std::lock_guard lock(mutex_);
      const auto found = blocks_.find(e.block);
      regarding = {.apiVersion = std::string(api::kApiVersion),
                   .kind = std::string(api::kIPBlockKind),
                   .name = e.block,
                   .ns = "",
                   .uid = found == blocks_.end() ? std::string() : found->second.uid};
    }
    event(regarding, e.warning, toString(e.reason), "ProgramNIC", e.message);
  }
  {
    std::lock_guard lock(mutex_);
    if (plan.unownedFirstSeen.empty()) {
      unowned_.erase(node);
    } else {
      unowned_[node] = plan.unownedFirstSeen;
    }
  }
  if (plan.recheckAt) enqueueAfter("c/" + node, *plan.recheckAt - now());
  // After a PUT, read the NIC back before any phase moves. A move to Ready ends the block's
  // way through the table; any other move is followed by the next row.
  const bool moreRows = std::ranges::any_of(
      changes, [](const auto& change) { return change.second != api::BlockPhase::kReady; });
  again = !error && ((plan.needsPut && putOk) || moreRows);
  return error;
}

}  // namespace vnetipam::controller
