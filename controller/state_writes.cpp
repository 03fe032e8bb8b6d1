// The writes of an IPBlock or a Node that more than one reconciler makes (state.h).
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/naming.h"
#include "controller/controller_internal.h"
#include "controller/state.h"

namespace vnetipam::controller {

using nlohmann::json;

namespace {

bool isUnknownOutcome(const kube::Error& error) {
  return error.code == kube::ErrorCode::kTransport || error.code == kube::ErrorCode::kServerError;
}

}  // namespace

kube::Result<std::optional<BlockInfo>> ControllerState::deleteBlock(const std::string& name,
                                                                    const std::string& uid) {
  auto removed = client.remove(blockPath(name), {.uid = uid});
  if (!removed) {
    if (removed.error().code == kube::ErrorCode::kNotFound ||
        removed.error().code == kube::ErrorCode::kConflict) {
      return std::optional<BlockInfo>();
    }
    return std::unexpected(std::move(removed.error()));
  }
  std::optional<BlockInfo> updated = decodeBlock(*removed);
  std::lock_guard lock(mutex);
  if (updated && updated->uid == uid) {
    upsertBlockLocked(name, *updated, false);
    return updated;
  }
  // An answer that does not decode: the state still learns that the block is going.
  const auto found = blocks.find(name);
  if (found == blocks.end() || found->second.uid != uid) return std::optional<BlockInfo>();
  found->second.deleting = true;
  return std::optional<BlockInfo>(found->second);
}

std::optional<std::string> ControllerState::createBlock(const std::string& node,
                                                        const std::string& name, const Join& join,
                                                        const std::string& providerID,
                                                        const std::string& programmedOn,
                                                        bool& again) {
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
  if (cloud) block.metadata.finalizers.emplace_back(api::kNicReleaseFinalizer);
  block.spec = api::IPBlockSpec{.podSubnet = join.subnet,
                                .cidr = join.cidr.toString(),
                                .nodeName = node,
                                .extra = json::object()};
  auto created = client.create(kIPBlocksPath, api::toJson(block));
  std::lock_guard lock(mutex);
  // Taken while the join still stands, so that the state knows the block as the NIC pass's own.
  if (created) {
    if (auto info = decodeBlock(*created)) upsertBlockLocked(name, std::move(*info), false);
  }
  // Whatever the answer, the join has ended: the block exists, or its CIDR is freed or leaked.
  if (auto j = joins.find(node); j != joins.end()) {
    j->second.erase(name);
    if (j->second.empty()) joins.erase(j);
  }
  ipam::BlockPool* pool = poolLocked(join.subnet);
  if (created) {
    if (metrics) metrics->blockAllocated(join.subnet);
    spdlog::debug("node {}: created IPBlock {} ({}, on {})", node, name, join.cidr.toString(),
                  programmedOn);
    return std::nullopt;
  }
  const kube::Error& error = created.error();
  // After a PUT the prefix may be on the NIC: until the NIC pass has removed it as unowned
  // (nicOrphanGrace), the CIDR is not handed out again.
  const std::chrono::seconds grace = join.putSent ? onNicLeakGrace() : config.leakGrace;
  if (error.code == kube::ErrorCode::kAlreadyExists) {
    // Someone holds this CIDR (another writer, or our own create the watch has not shown yet):
    // it stays taken in the pool, and the node tries the next one.
    spdlog::info("node {}: IPBlock {} already exists; trying another block", node, name);
    again = true;
    // The block that exists is not the one the NIC pass planned (its prefix is on the NIC for
    // the join): the pass looks at the node again.
    if (cloud) enqueue(nicKey(node));
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

std::optional<std::string> ControllerState::writeNodeNicCondition(const std::string& node,
                                                                  const api::Condition& condition) {
  if (!canWrite()) return std::string("not the leader");
  // Node conditions are a list map keyed by type: this manager's apply owns this entry only,
  // and the kubelet's conditions stay as they are.
  const json body = {{"apiVersion", "v1"},
                     {"kind", "Node"},
                     {"metadata", {{"name", node}}},
                     {"status", {{"conditions", json::array({api::toJson(condition)})}}}};
  auto written = client.applyStatus(
      fmt::format("{}/{}", kNodesPath, node), body,
      {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
  if (!written) {
    return fmt::format("node {}: writing condition {}={}: {}", node, condition.type,
                       condition.status, written.error().message);
  }
  if (auto info = decodeNode(*written)) {
    std::lock_guard lock(mutex);
    if (nodes.contains(node)) upsertNodeLocked(node, std::move(*info));
  }
  return std::nullopt;
}

}  // namespace vnetipam::controller
