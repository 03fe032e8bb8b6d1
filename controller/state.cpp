#include "controller/state.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/selector.h"
#include "controller/controller_internal.h"
#include "lib/base/time.h"

namespace vnetipam::controller {

using nlohmann::json;

ControllerState::ControllerState(kube::Client& apiClient, Cloud* cloudOrNone, WorkQueue& mainQueue,
                                 EventSink* eventSink, ControllerMetrics* controllerMetrics,
                                 ControllerConfig controllerConfig, base::Clock& wallClock,
                                 WorkQueue* nicQueueOrNone)
    : client(apiClient),
      cloud(cloudOrNone),
      queue(mainQueue),
      nicQueue(nicQueueOrNone ? *nicQueueOrNone : mainQueue),
      events(eventSink),
      metrics(controllerMetrics),
      config(controllerConfig),
      clock(wallClock) {}

WorkQueue& ControllerState::queueFor(const WorkKey& key) {
  return key.kind == WorkKind::kNic ? nicQueue : queue;
}

void ControllerState::enqueue(const WorkKey& key) { queueFor(key).add(key); }

void ControllerState::enqueueAfter(const WorkKey& key, WorkQueue::Clock::duration delay) {
  queueFor(key).addAfter(key, delay);
}

Time ControllerState::now() const {
  return std::chrono::floor<std::chrono::seconds>(clock.wallNow());
}

ipam::BlockPool* ControllerState::poolLocked(const std::string& subnet) {
  const auto state = subnetStates.find(subnet);
  return state != subnetStates.end() && state->second.blocks ? &*state->second.blocks : nullptr;
}

// ---- decoding -------------------------------------------------------------------------------

std::optional<BlockInfo> ControllerState::decodeBlock(const json& object) {
  auto block = api::ipBlockFromJson(object);
  if (!block) {
    spdlog::warn("ignoring IPBlock: {}", block.error().message);
    return std::nullopt;
  }
  auto cidr = ipam::Prefix::parse(block->spec.cidr);
  if (!cidr) {
    spdlog::warn("ignoring IPBlock {}: spec.cidr: {}", block->metadata.name, cidr.error().message);
    return std::nullopt;
  }
  BlockInfo info;
  info.uid = std::move(block->metadata.uid);
  info.resourceVersion = std::move(block->metadata.resourceVersion);
  info.podSubnet = std::move(block->spec.podSubnet);
  info.node = std::move(block->spec.nodeName);
  info.cidr = *cidr;
  info.phase = block->status.phase;
  info.deleting = block->metadata.deletionTimestamp.has_value();
  for (std::string& f : block->metadata.finalizers) {
    if (f == api::kNicReleaseFinalizer) {
      info.hasFinalizer = true;
    } else {
      if (f == api::kAgentDrainFinalizer) info.agentDrain = true;
      info.otherFinalizers.push_back(std::move(f));
    }
  }
  if (auto l = block->metadata.labels.find(std::string(api::kSubnetLabel));
      l != block->metadata.labels.end()) {
    info.subnetLabel = l->second;
  }
  for (api::Condition& c : block->status.conditions) {
    if (c.type == api::kConditionInvalid && c.status == "True") {
      info.invalidInStatus = true;
      info.invalidMessage = c.message;
    } else if (c.type == api::kConditionProgrammed) {
      info.programmed = std::move(c);
    }
  }
  info.phaseTime = std::move(block->status.lastTransitionTime);
  info.used = block->status.used;
  if (block->status.nic) info.nicId = std::move(block->status.nic->id);
  if (auto a = block->metadata.annotations.find(std::string(kProviderIDAnnotation));
      a != block->metadata.annotations.end()) {
    info.providerID = a->second;
  }
  info.capacity = block->status.capacity > 0 ? block->status.capacity : prefixSize(*cidr);
  if (block->metadata.creationTimestamp) {
    info.created = base::parseRfc3339(*block->metadata.creationTimestamp).value_or(Time{});
  }
  return info;
}

std::optional<NodeInfo> ControllerState::decodeNode(const json& object) {
  const auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return std::nullopt;
  NodeInfo info;
  info.uid = meta->value("uid", "");
  if (const auto labels = meta->find("labels"); labels != meta->end() && labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      if (v.is_string()) info.labels.emplace(k, v.get<std::string>());
    }
  }
  if (const auto spec = object.find("spec"); spec != object.end() && spec->is_object()) {
    info.providerID = spec->value("providerID", "");
  }
  // Only the controller's own condition: the kubelet's heartbeats must not make a node differ.
  const json* conditions = nullptr;
  if (const auto status = object.find("status"); status != object.end() && status->is_object()) {
    if (const auto found = status->find("conditions"); found != status->end()) {
      conditions = &*found;
    }
  }
  if (conditions != nullptr && conditions->is_array()) {
    for (const json& c : *conditions) {
      if (!c.is_object() || c.value("type", "") != api::kNodeConditionNicProgrammed) continue;
      info.nicCondition = api::Condition{.type = std::string(api::kNodeConditionNicProgrammed),
                                         .status = c.value("status", ""),
                                         .reason = c.value("reason", ""),
                                         .message = c.value("message", ""),
                                         .lastTransitionTime = c.value("lastTransitionTime", ""),
                                         .observedGeneration = 0,
                                         .extra = json::object()};
    }
  }
  return info;
}

// ---- state ----------------------------------------------------------------------------------

void ControllerState::enqueueSubnetStatus(const std::string& name) {
  enqueueAfter(subnetKey(name), config.statusInterval);
}

void ControllerState::updateNodeMetricLocked(const std::string& node) {
  if (!metrics) return;
  std::int64_t v4 = 0, v6 = 0;  // per family: a dual-stack node holds blocks of both
  if (const auto found = nodeBlocks.find(node); found != nodeBlocks.end()) {
    for (const std::string& name : found->second) {
      const auto block = blocks.find(name);
      if (block != blocks.end()) ++(block->second.cidr.family() == ipam::Family::kV4 ? v4 : v6);
    }
  }
  metrics->setNodeBlocks(node, ipam::Family::kV4, v4);
  metrics->setNodeBlocks(node, ipam::Family::kV6, v6);
}

void ControllerState::upsertBlockLocked(const std::string& name, BlockInfo info, bool fromWatch) {
  const auto found = blocks.find(name);
  if (found != blocks.end() && !fromWatch &&
      !notOlder(info.resourceVersion, found->second.resourceVersion)) {
    return;  // the watch already brought something newer
  }
  const bool isNew = found == blocks.end();
  // A join's block (the create's answer, or the watch bringing it first): the node's NIC pass
  // created it once it saw the join's prefix on the NIC, and it is still on its way. A Ready one
  // that pass already planned with needs no NIC pass of its own (one NIC GET less per join).
  const auto nodeJoins = joins.find(info.node);
  const bool nicPassWrote = nodeJoins != joins.end() && nodeJoins->second.contains(name);
  bool nodeChanged = isNew;
  bool nicChanged = isNew && !(nicPassWrote && info.phase == api::BlockPhase::kReady);
  if (!isNew) {
    const BlockInfo& old = found->second;
    // The verdict is the controller's, not the object's: it survives every update.
    info.trust = old.trust;
    info.invalidRule = old.invalidRule;
    if (old.trust == Trust::kInvalid) info.invalidMessage = old.invalidMessage;
    nicChanged = old.phase != info.phase || old.deleting != info.deleting ||
                 old.node != info.node || old.agentDrain != info.agentDrain;
    nodeChanged =
        nicChanged || old.used != info.used || old.invalidInStatus != info.invalidInStatus;
    if (old.node != info.node) {
      nodeBlocks[old.node].erase(name);  // cannot happen (spec is immutable); keep the index true
    }
  }
  const auto state = subnetStates.find(info.podSubnet);
  if (state != subnetStates.end()) {
    state->second.leaks.erase(info.cidr);
  }
  if (isNew && info.invalidInStatus) {
    // Refused before (by this controller or an earlier one): refused for good.
    info.trust = Trust::kInvalid;
  }
  if (info.trust == Trust::kUndecided) judgeBlockLocked(name, info);
  // The block of a join exists: the join has ended, whether its create's answer is in yet or not
  // (the watch may bring the object first). A join and its block at once would hide the block
  // from the Node reconciler, which never releases a join.
  if (nodeJoins != joins.end()) {
    nodeJoins->second.erase(name);
    if (nodeJoins->second.empty()) joins.erase(nodeJoins);
  }
  const std::string node = info.node;
  const std::string subnet = info.podSubnet;
  nodeBlocks[node].insert(name);
  blocks.insert_or_assign(name, std::move(info));
  if (isNew) updateNodeMetricLocked(node);
  if (nodeChanged) enqueue(nodeKey(node));
  if (nicChanged) enqueue(nicKey(node));
  if (nodeChanged) enqueueSubnetStatus(subnet);
}

void ControllerState::rememberBlock(const std::string& name, const json& answer) {
  if (auto updated = decodeBlock(answer)) {
    std::lock_guard lock(mutex);
    upsertBlockLocked(name, std::move(*updated), false);
  }
}

void ControllerState::judgeBlockLocked(const std::string& name, BlockInfo& info,
                                       bool subnetAbsent) {
  const auto state = subnetStates.find(info.podSubnet);
  const bool carved =
      state != subnetStates.end() && state->second.blocks && state->second.trust.has_value();
  const SubnetView view = subnets.contains(info.podSubnet)
                              ? (carved ? SubnetView::kCarved : SubnetView::kNotCarved)
                          : subnetAbsent ? SubnetView::kAbsent
                                         : SubnetView::kNotSeen;
  static const std::map<ipam::Prefix, std::string> kNoneHeld;
  const TrustVerdict verdict = judgeBlock(TrustCandidate{.name = name,
                                                         .podSubnet = info.podSubnet,
                                                         .subnetLabel = info.subnetLabel,
                                                         .cidr = info.cidr,
                                                         .created = info.created},
                                          view, carved ? &*state->second.trust : nullptr,
                                          carved ? state->second.holders : kNoneHeld);
  switch (verdict.trust) {
    case Trust::kUndecided: return;
    case Trust::kInvalid:
      info.trust = Trust::kInvalid;
      info.invalidRule = verdict.rule;
      info.invalidMessage = verdict.message;
      spdlog::warn("IPBlock {}: refused ({}): {}", name, toString(verdict.rule), verdict.message);
      enqueue(nodeKey(info.node));  // writes the condition and the event
      return;
    case Trust::kAccepted: break;
  }
  SubnetState& pool = state->second;
  if (auto occupied = pool.blocks->occupy(info.cidr); !occupied) {
    // The rules above mirror the pool's; should they ever disagree, the pool's refusal stands.
    info.trust = Trust::kInvalid;
    info.invalidRule = TrustRule::kReservedRange;
    info.invalidMessage =
        fmt::format("spec.cidr {}: {}", info.cidr.toString(), occupied.error().message);
    spdlog::warn("IPBlock {}: refused: {}", name, info.invalidMessage);
    enqueue(nodeKey(info.node));
    return;
  }
  pool.holders[info.cidr] = name;
  info.trust = Trust::kAccepted;
}

void ControllerState::eraseBlockLocked(const std::string& name) {
  const auto found = blocks.find(name);
  if (found == blocks.end()) return;
  const BlockInfo& info = found->second;
  const auto state = subnetStates.find(info.podSubnet);
  bool held = false;
  if (state != subnetStates.end()) {
    const auto holder = state->second.holders.find(info.cidr);
    if (holder != state->second.holders.end() && holder->second == name) {
      state->second.holders.erase(holder);
      held = true;
    }
  }
  // A block the pool never held for this object (refused, undecided) frees nothing.
  if (held && state->second.blocks && state->second.blocks->isAllocated(info.cidr)) {
    // The object is gone: only now may its CIDR be handed out again.
    if (state->second.blocks->release(info.cidr)) {
      if (metrics) metrics->blockReleased(info.podSubnet);
      // A node that was short of blocks may take this one.
      for (const std::string& shortNode : state->second.shortNodes)
        enqueue(nodeKey(shortNode));
    }
  }
  const std::string node = info.node;
  const std::string subnet = info.podSubnet;
  if (auto index = nodeBlocks.find(node); index != nodeBlocks.end()) {
    index->second.erase(name);
    if (index->second.empty()) nodeBlocks.erase(index);
  }
  emptySince.erase(name);
  blocks.erase(found);
  updateNodeMetricLocked(node);
  enqueue(nodeKey(node));
  enqueue(nicKey(node));
  enqueueSubnetStatus(subnet);
}

void ControllerState::leakCidrLocked(const std::string& subnet, const ipam::Prefix& cidr,
                                     std::chrono::seconds grace, bool foundOnNic) {
  auto state = subnetStates.find(subnet);
  if (state == subnetStates.end()) return;
  // The PodSubnet reconciler frees a leak leakGrace after the time recorded.
  state->second.leaks[cidr] = {.since = now() + grace - config.leakGrace, .foundOnNic = foundOnNic};
  enqueueAfter(subnetKey(subnet), grace + std::chrono::seconds(1));
}

void ControllerState::beginList(Collection collection) {
  std::lock_guard lock(mutex);
  listSeen_[static_cast<int>(collection)].clear();
}

void ControllerState::applyListPage(Collection collection, json& items) {
  std::lock_guard lock(mutex);
  auto& seen = listSeen_[static_cast<int>(collection)];
  for (json& item : items) {
    std::string name = item["metadata"].value("name", "");
    switch (collection) {
      case Collection::kBlocks:
        if (auto info = decodeBlock(item)) {
          const auto found = blocks.find(name);
          if (found != blocks.end() && found->second.uid != info->uid) eraseBlockLocked(name);
          upsertBlockLocked(name, std::move(*info), true);
        }
        break;
      case Collection::kNodes:
        if (auto info = decodeNode(item)) upsertNodeLocked(name, std::move(*info));
        break;
      case Collection::kSubnets:
        if (auto subnet = api::podSubnetFromJson(item)) {
          upsertSubnetLocked(std::move(*subnet));
        } else {
          spdlog::warn("ignoring PodSubnet {}: {}", name, subnet.error().message);
        }
        break;
    }
    item = json();  // free each object as soon as it is folded in
    seen.insert(std::move(name));
  }
}

void ControllerState::endList(Collection collection) {
  std::lock_guard lock(mutex);
  auto& seen = listSeen_[static_cast<int>(collection)];
  std::vector<std::string> gone;
  switch (collection) {
    case Collection::kBlocks:
      for (const auto& [name, info] : blocks)
        if (!seen.contains(name)) gone.push_back(name);
      for (const std::string& name : gone)
        eraseBlockLocked(name);
      break;
    case Collection::kNodes:
      for (const auto& [name, info] : nodes)
        if (!seen.contains(name)) gone.push_back(name);
      for (const std::string& name : gone) {
        nodes.erase(name);
        enqueue(nodeKey(name));
        enqueue(nicKey(name));
      }
      break;
    case Collection::kSubnets:
      for (const auto& [name, subnet] : subnets)
        if (!seen.contains(name)) gone.push_back(name);
      for (const std::string& name : gone)
        eraseSubnetLocked(name);
      break;
  }
  seen.clear();
}

void ControllerState::applyBlockList(json& items) {
  beginList(Collection::kBlocks);
  applyListPage(Collection::kBlocks, items);
  endList(Collection::kBlocks);
}

void ControllerState::applyBlockEvent(kube::WatchEventType type, const json& object) {
  const std::string name = object["metadata"].value("name", "");
  std::lock_guard lock(mutex);
  if (type == kube::WatchEventType::kDeleted) {
    eraseBlockLocked(name);
    return;
  }
  auto info = decodeBlock(object);
  if (!info) return;
  const auto found = blocks.find(name);
  if (found != blocks.end() && found->second.uid != info->uid) eraseBlockLocked(name);
  upsertBlockLocked(name, std::move(*info), true);
}

void ControllerState::upsertNodeLocked(const std::string& name, NodeInfo info) {
  const auto old = nodes.find(name);
  if (old != nodes.end() && old->second == info) return;  // heartbeats and status: nothing for us
  if (old == nodes.end()) {
    // Its first NIC pass follows the Node reconciler's carve, which may give it joins to program:
    // one NIC read for both.
    nicPassAfterCarve.insert(name);
  } else if (old->second.providerID != info.providerID) {
    nicIds.erase(name);
    enqueue(nicKey(name));
  }
  nodes.insert_or_assign(name, std::move(info));
  enqueue(nodeKey(name));
}

void ControllerState::applyNodeEvent(kube::WatchEventType type, const json& object) {
  const std::string name = object["metadata"].value("name", "");
  std::lock_guard lock(mutex);
  if (type == kube::WatchEventType::kDeleted) {
    nodes.erase(name);
    enqueue(nodeKey(name));
    enqueue(nicKey(name));
    return;
  }
  if (auto info = decodeNode(object)) upsertNodeLocked(name, std::move(*info));
}

void ControllerState::eraseSubnetLocked(const std::string& name) {
  subnets.erase(name);
  // Another PodSubnet refused for overlapping this one may carve now.
  for (const auto& [other, subnet] : subnets)
    enqueue(subnetKey(other));
  enqueue(subnetKey(name));
}

void ControllerState::upsertSubnetLocked(api::PodSubnet subnet) {
  const std::string name = subnet.metadata.name;
  const auto old = subnets.find(name);
  const bool specChanged = old == subnets.end() || old->second.spec != subnet.spec;
  subnets.insert_or_assign(name, std::move(subnet));
  if (specChanged) {
    enqueue(subnetKey(name));
    for (const auto& [node, info] : nodes)
      enqueue(nodeKey(node));
  }
}

void ControllerState::applySubnetEvent(kube::WatchEventType type, const json& object) {
  const std::string name = object["metadata"].value("name", "");
  std::lock_guard lock(mutex);
  if (type == kube::WatchEventType::kDeleted) {
    eraseSubnetLocked(name);
    return;
  }
  auto subnet = api::podSubnetFromJson(object);
  if (!subnet) {
    spdlog::warn("ignoring PodSubnet {}: {}", name, subnet.error().message);
    return;
  }
  upsertSubnetLocked(std::move(*subnet));
}

void ControllerState::enqueueAll() {
  std::lock_guard lock(mutex);
  for (const auto& [name, subnet] : subnets)
    enqueue(subnetKey(name));
  for (const auto& [name, node] : nodes) {
    enqueue(nodeKey(name));
    // Not the NIC of a node that has had no NIC pass yet and has no block (the loop below queues
    // a node with blocks): the Node reconciler queues its first pass once a carved PodSubnet
    // selects it, with the joins it carves, so one NIC read serves both. Queued here as well, the
    // pass could read the NIC before the joins exist, and read it again for them. Until then no
    // NIC pass knows its NIC, so the orphan sweep looks after any prefix of ours on it.
    if (!nicPassAfterCarve.contains(name)) enqueue(nicKey(name));
  }
  for (const auto& [node, names] : nodeBlocks) {
    enqueue(nodeKey(node));
    enqueue(nicKey(node));
  }
}

std::optional<BlockInfo> ControllerState::block(const std::string& name) const {
  std::lock_guard lock(mutex);
  const auto found = blocks.find(name);
  if (found == blocks.end()) return std::nullopt;
  return found->second;
}

std::size_t ControllerState::blockCount() const {
  std::lock_guard lock(mutex);
  return blocks.size();
}

std::optional<std::uint64_t> ControllerState::poolFree(const std::string& podSubnet) const {
  std::lock_guard lock(mutex);
  const auto found = subnetStates.find(podSubnet);
  if (found == subnetStates.end() || !found->second.blocks) return std::nullopt;
  return found->second.blocks->freeCount();
}

bool ControllerState::nodeSelected(const NodeInfo& node, const api::PodSubnetSpec& spec) const {
  return api::matches(spec.nodeSelector, node.labels);
}

kube::ObjectReference ControllerState::nodeRef(const std::string& node) const {
  const auto found = nodes.find(node);
  return {.apiVersion = "v1",
          .kind = "Node",
          .name = node,
          .ns = "",
          .uid = found == nodes.end() ? std::string() : found->second.uid};
}

kube::ObjectReference ControllerState::blockRef(const std::string& name) const {
  std::lock_guard lock(mutex);
  const auto found = blocks.find(name);
  return {.apiVersion = std::string(api::kApiVersion),
          .kind = std::string(api::kIPBlockKind),
          .name = name,
          .ns = "",
          .uid = found == blocks.end() ? std::string() : found->second.uid};
}

void ControllerState::event(const kube::ObjectReference& ref, bool warning, std::string_view reason,
                            std::string_view action, std::string_view note) {
  if (warning) {
    spdlog::warn("{} {}: {}: {}", ref.kind, ref.name, reason, note);
  } else {
    spdlog::info("{} {}: {}: {}", ref.kind, ref.name, reason, note);
  }
  if (events && canWrite()) {
    events->record(ref, warning ? kube::EventType::kWarning : kube::EventType::kNormal, reason,
                   action, note);
  }
}

}  // namespace vnetipam::controller
