#include "controller/controller.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/naming.h"
#include "api/validation.h"
#include "controller/nic_reconcile.h"
#include "controller/pool_status.h"

namespace vnetipam::controller {

using nlohmann::json;

namespace {

std::optional<Time> parseTime(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s) != 6) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{y},
                                         std::chrono::month{static_cast<unsigned>(mo)},
                                         std::chrono::day{static_cast<unsigned>(d)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date} + std::chrono::hours{h} + std::chrono::minutes{mi} +
         std::chrono::seconds{s};
}

std::optional<std::uint64_t> parseVersion(const std::string& rv) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(rv.data(), rv.data() + rv.size(), value);
  if (ec != std::errc() || end != rv.data() + rv.size()) return std::nullopt;
  return value;
}

// True when `candidate` is not older than `current` (resourceVersions are etcd revisions; the API
// says to treat them as opaque, so anything unparsable counts as newer).
bool notOlder(const std::string& candidate, const std::string& current) {
  const auto a = parseVersion(candidate);
  const auto b = parseVersion(current);
  return !a || !b || *a >= *b;
}

std::int64_t prefixSize(const ipam::Prefix& prefix) {
  const ipam::U128 size = prefix.size();
  constexpr ipam::U128 kMax = ipam::U128{1} << 62;
  return static_cast<std::int64_t>(size > kMax ? kMax : size);
}

bool isUnknownOutcome(const kube::Error& error) {
  return error.code == kube::ErrorCode::kTransport || error.code == kube::ErrorCode::kServerError;
}

std::string blockPath(std::string_view name) { return fmt::format("{}/{}", kIPBlocksPath, name); }

}  // namespace

Controller::Controller(kube::Client& client, Cloud* cloud, WorkQueue& queue, EventSink* events,
                       ControllerMetrics* metrics, ControllerConfig config, WallClock wallClock,
                       WorkQueue* nicQueue)
    : client_(client),
      cloud_(cloud),
      queue_(queue),
      nicQueue_(nicQueue ? *nicQueue : queue),
      events_(events),
      metrics_(metrics),
      config_(config),
      wallClock_(wallClock ? std::move(wallClock)
                           : WallClock([] { return std::chrono::system_clock::now(); })) {}

WorkQueue& Controller::queueFor(const std::string& key) {
  return key.starts_with("c/") ? nicQueue_ : queue_;
}

void Controller::enqueue(const std::string& key) { queueFor(key).add(key); }

void Controller::enqueueAfter(const std::string& key, WorkQueue::Clock::duration delay) {
  queueFor(key).addAfter(key, delay);
}

Time Controller::now() const { return std::chrono::floor<std::chrono::seconds>(wallClock_()); }

// ---- decoding -------------------------------------------------------------------------------

std::optional<BlockInfo> Controller::decodeBlock(const json& object) {
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
      info.otherFinalizers.push_back(std::move(f));
    }
  }
  info.used = block->status.used;
  if (block->status.nic) info.nicId = std::move(block->status.nic->id);
  if (auto a = block->metadata.annotations.find(std::string(kProviderIDAnnotation));
      a != block->metadata.annotations.end()) {
    info.providerID = a->second;
  }
  info.capacity = block->status.capacity > 0 ? block->status.capacity : prefixSize(*cidr);
  if (block->metadata.creationTimestamp) {
    info.created = parseTime(*block->metadata.creationTimestamp).value_or(Time{});
  }
  return info;
}

std::optional<NodeInfo> Controller::decodeNode(const json& object) {
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
  return info;
}

// ---- state ----------------------------------------------------------------------------------

void Controller::enqueueSubnetStatus(const std::string& name) {
  enqueueAfter("s/" + name, config_.statusInterval);
}

void Controller::updateNodeMetricLocked(const std::string& node) {
  if (!metrics_) return;
  const auto found = nodeBlocks_.find(node);
  metrics_->setNodeBlocks(
      node, found == nodeBlocks_.end() ? 0 : static_cast<std::int64_t>(found->second.size()));
}

void Controller::upsertBlockLocked(const std::string& name, BlockInfo info, bool fromWatch) {
  const auto found = blocks_.find(name);
  if (found != blocks_.end() && !fromWatch &&
      !notOlder(info.resourceVersion, found->second.resourceVersion)) {
    return;  // the watch already brought something newer
  }
  const bool isNew = found == blocks_.end();
  bool nodeChanged = isNew, nicChanged = isNew;
  if (!isNew) {
    const BlockInfo& old = found->second;
    nicChanged = old.phase != info.phase || old.deleting != info.deleting || old.node != info.node;
    nodeChanged = nicChanged || old.used != info.used;
    if (old.node != info.node) {
      nodeBlocks_[old.node].erase(name);  // cannot happen (spec is immutable); keep the index true
    }
  }
  const auto state = subnetStates_.find(info.podSubnet);
  if (state != subnetStates_.end()) {
    state->second.leaks.erase(info.cidr);
    if (isNew && state->second.blocks) {
      if (auto occupied = state->second.blocks->occupy(info.cidr); !occupied) {
        spdlog::warn("IPBlock {}: cannot occupy {} in PodSubnet {}: {}", name, info.cidr.toString(),
                     info.podSubnet, occupied.error().message);
      }
    }
  }
  const std::string node = info.node;
  const std::string subnet = info.podSubnet;
  nodeBlocks_[node].insert(name);
  blocks_.insert_or_assign(name, std::move(info));
  if (isNew) updateNodeMetricLocked(node);
  if (nodeChanged) enqueue("n/" + node);
  if (nicChanged) enqueue("c/" + node);
  if (nodeChanged) enqueueSubnetStatus(subnet);
}

void Controller::eraseBlockLocked(const std::string& name) {
  const auto found = blocks_.find(name);
  if (found == blocks_.end()) return;
  const BlockInfo& info = found->second;
  const auto state = subnetStates_.find(info.podSubnet);
  if (state != subnetStates_.end() && state->second.blocks &&
      state->second.blocks->isAllocated(info.cidr)) {
    // The object is gone: only now may its CIDR be handed out again.
    if (state->second.blocks->release(info.cidr)) {
      if (metrics_) metrics_->blockReleased(info.podSubnet);
      // A node that was short of blocks may take this one.
      for (const std::string& shortNode : state->second.shortNodes)
        enqueue("n/" + shortNode);
    }
  }
  const std::string node = info.node;
  const std::string subnet = info.podSubnet;
  if (auto index = nodeBlocks_.find(node); index != nodeBlocks_.end()) {
    index->second.erase(name);
    if (index->second.empty()) nodeBlocks_.erase(index);
  }
  emptySince_.erase(name);
  blocks_.erase(found);
  updateNodeMetricLocked(node);
  enqueue("n/" + node);
  enqueue("c/" + node);
  enqueueSubnetStatus(subnet);
}

void Controller::beginList(Collection collection) {
  std::lock_guard lock(mutex_);
  listSeen_[static_cast<int>(collection)].clear();
}

void Controller::applyListPage(Collection collection, json& items) {
  std::lock_guard lock(mutex_);
  auto& seen = listSeen_[static_cast<int>(collection)];
  for (json& item : items) {
    std::string name = item["metadata"].value("name", "");
    switch (collection) {
      case Collection::kBlocks:
        if (auto info = decodeBlock(item)) {
          const auto found = blocks_.find(name);
          if (found != blocks_.end() && found->second.uid != info->uid) eraseBlockLocked(name);
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

void Controller::endList(Collection collection) {
  std::lock_guard lock(mutex_);
  auto& seen = listSeen_[static_cast<int>(collection)];
  std::vector<std::string> gone;
  switch (collection) {
    case Collection::kBlocks:
      for (const auto& [name, info] : blocks_)
        if (!seen.contains(name)) gone.push_back(name);
      for (const std::string& name : gone)
        eraseBlockLocked(name);
      break;
    case Collection::kNodes:
      for (const auto& [name, info] : nodes_)
        if (!seen.contains(name)) gone.push_back(name);
      for (const std::string& name : gone) {
        nodes_.erase(name);
        enqueue("n/" + name);
        enqueue("c/" + name);
      }
      break;
    case Collection::kSubnets:
      for (const auto& [name, subnet] : subnets_)
        if (!seen.contains(name)) gone.push_back(name);
      for (const std::string& name : gone)
        eraseSubnetLocked(name);
      break;
  }
  seen.clear();
}

void Controller::applyBlockList(json& items) {
  beginList(Collection::kBlocks);
  applyListPage(Collection::kBlocks, items);
  endList(Collection::kBlocks);
}

void Controller::applyBlockEvent(kube::WatchEventType type, const json& object) {
  const std::string name = object["metadata"].value("name", "");
  std::lock_guard lock(mutex_);
  if (type == kube::WatchEventType::kDeleted) {
    eraseBlockLocked(name);
    return;
  }
  auto info = decodeBlock(object);
  if (!info) return;
  const auto found = blocks_.find(name);
  if (found != blocks_.end() && found->second.uid != info->uid) eraseBlockLocked(name);
  upsertBlockLocked(name, std::move(*info), true);
}

void Controller::upsertNodeLocked(const std::string& name, NodeInfo info) {
  const auto old = nodes_.find(name);
  if (old != nodes_.end() && old->second == info) return;  // heartbeats and status: nothing for us
  if (old == nodes_.end() || old->second.providerID != info.providerID) {
    nicIds_.erase(name);
    enqueue("c/" + name);
  }
  nodes_.insert_or_assign(name, std::move(info));
  enqueue("n/" + name);
}

void Controller::applyNodeEvent(kube::WatchEventType type, const json& object) {
  const std::string name = object["metadata"].value("name", "");
  std::lock_guard lock(mutex_);
  if (type == kube::WatchEventType::kDeleted) {
    nodes_.erase(name);
    enqueue("n/" + name);
    enqueue("c/" + name);
    return;
  }
  if (auto info = decodeNode(object)) upsertNodeLocked(name, std::move(*info));
}

void Controller::eraseSubnetLocked(const std::string& name) {
  subnets_.erase(name);
  // Another PodSubnet refused for overlapping this one may carve now.
  for (const auto& [other, subnet] : subnets_)
    enqueue("s/" + other);
  enqueue("s/" + name);
}

void Controller::upsertSubnetLocked(api::PodSubnet subnet) {
  const std::string name = subnet.metadata.name;
  const auto old = subnets_.find(name);
  const bool specChanged = old == subnets_.end() || old->second.spec != subnet.spec;
  subnets_.insert_or_assign(name, std::move(subnet));
  if (specChanged) {
    enqueue("s/" + name);
    for (const auto& [node, info] : nodes_)
      enqueue("n/" + node);
  }
}

void Controller::applySubnetEvent(kube::WatchEventType type, const json& object) {
  const std::string name = object["metadata"].value("name", "");
  std::lock_guard lock(mutex_);
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

void Controller::enqueueAll() {
  std::lock_guard lock(mutex_);
  for (const auto& [name, subnet] : subnets_)
    enqueue("s/" + name);
  for (const auto& [name, node] : nodes_) {
    enqueue("n/" + name);
    enqueue("c/" + name);
  }
  for (const auto& [node, names] : nodeBlocks_) {
    enqueue("n/" + node);
    enqueue("c/" + node);
  }
}

std::optional<BlockInfo> Controller::block(const std::string& name) const {
  std::lock_guard lock(mutex_);
  const auto found = blocks_.find(name);
  if (found == blocks_.end()) return std::nullopt;
  return found->second;
}

std::size_t Controller::blockCount() const {
  std::lock_guard lock(mutex_);
  return blocks_.size();
}

std::optional<std::uint64_t> Controller::poolFree(const std::string& podSubnet) const {
  std::lock_guard lock(mutex_);
  const auto found = subnetStates_.find(podSubnet);
  if (found == subnetStates_.end() || !found->second.blocks) return std::nullopt;
  return found->second.blocks->freeCount();
}

bool Controller::nodeSelected(const NodeInfo& node, const api::PodSubnetSpec& spec) const {
  return std::ranges::all_of(spec.nodeSelector, [&](const auto& kv) {
    const auto found = node.labels.find(kv.first);
    return found != node.labels.end() && found->second == kv.second;
  });
}

kube::ObjectReference Controller::nodeRef(const std::string& node) const {
  const auto found = nodes_.find(node);
  return {.apiVersion = "v1",
          .kind = "Node",
          .name = node,
          .ns = "",
          .uid = found == nodes_.end() ? std::string() : found->second.uid};
}

void Controller::event(const kube::ObjectReference& ref, bool warning, std::string_view reason,
                       std::string_view action, std::string_view note) {
  if (warning) {
    spdlog::warn("{} {}: {}: {}", ref.kind, ref.name, reason, note);
  } else {
    spdlog::info("{} {}: {}: {}", ref.kind, ref.name, reason, note);
  }
  if (events_ && canWrite()) {
    events_->record(ref, warning ? kube::EventType::kWarning : kube::EventType::kNormal, reason,
                    action, note);
  }
}

// ---- dispatch -------------------------------------------------------------------------------

void Controller::process(const std::string& key) {
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::string> error;
  std::string_view reconciler;
  const std::string name = key.size() > 2 ? key.substr(2) : std::string();
  switch (key.empty() ? ' ' : key[0]) {
    case 's':
      reconciler = kPodSubnetReconciler;
      error = reconcileSubnet(name);
      break;
    case 'n':
      reconciler = kNodeReconciler;
      error = reconcileNode(name);
      break;
    case 'c':
      reconciler = kNicReconciler;
      error = reconcileNic(name);
      break;
    default: spdlog::error("work queue: unknown key \"{}\"", key); return;
  }
  if (metrics_) {
    metrics_->reconciled(reconciler, std::chrono::steady_clock::now() - start, error.has_value());
  }
  if (error) {
    spdlog::warn("{} reconcile of {} failed (retry {}): {}", reconciler, name,
                 queueFor(key).failures(key) + 1, *error);
    queueFor(key).addRateLimited(key);
  } else {
    queueFor(key).forget(key);
  }
}

void Controller::runWorker(WorkQueue& queue) {
  while (auto key = queue.get()) {
    process(*key);
    queue.done(*key);
    if (metrics_) {
      const std::size_t depth =
          queue_.depth() + (&nicQueue_ != &queue_ ? nicQueue_.depth() : std::size_t{0});
      metrics_->setQueueDepth(depth);
    }
  }
}

// ---- PodSubnet ------------------------------------------------------------------------------

std::optional<std::string> Controller::carve(const std::string& name,
                                             std::unique_lock<std::mutex>& lock) {
  const api::PodSubnet subnet = subnets_.at(name);
  const auto fieldErrors = api::validate(subnet);
  if (!fieldErrors.empty()) {
    subnetStates_[name].notCarvedMessage = api::describe("PodSubnet", name, fieldErrors);
    return std::nullopt;  // wait for the spec to change
  }
  ipam::Prefix cidr;
  const bool fromAzure = !subnet.spec.cidr.has_value();
  if (!fromAzure) {
    cidr = *ipam::Prefix::parse(*subnet.spec.cidr);  // validated above
  } else if (!cloud_) {
    subnetStates_[name].notCarvedMessage =
        "spec.azureSubnetID needs the controller to run with --cloud=azure; with --cloud=none "
        "set spec.cidr instead";
    return std::nullopt;
  } else {
    const std::string id = subnet.spec.azureSubnetID.value_or("");
    lock.unlock();
    auto prefixes = cloud_->subnetPrefixes(id);
    lock.lock();
    if (!subnets_.contains(name)) return std::nullopt;
    if (!prefixes || prefixes->empty()) {
      std::string why = prefixes ? "it has no address prefix" : prefixes.error().message;
      subnetStates_[name].notCarvedMessage =
          fmt::format("spec.azureSubnetID: cannot read the Azure subnet {}: {}", id, why);
      return subnetStates_[name].notCarvedMessage;  // retry: Azure may answer later
    }
    cidr = prefixes->front();
  }
  SubnetState& state = subnetStates_[name];
  if (state.blocks) return std::nullopt;  // carved meanwhile
  state.cidr = cidr;

  const int length = subnet.spec.blockPrefixLength;
  const bool v4 = cidr.family() == ipam::Family::kV4;
  const int minLength =
      std::max(cidr.length(), v4 ? api::kMinBlockPrefixLengthV4 : api::kMinBlockPrefixLengthV6);
  const int maxLength = v4 ? api::kMaxBlockPrefixLengthV4 : api::kMaxBlockPrefixLengthV6;
  if (length < minLength || length > maxLength) {
    state.notCarvedMessage =
        fmt::format("spec.blockPrefixLength: {} does not fit the {} subnet {}{}: use {}..{}",
                    length, ipam::toString(cidr.family()), cidr.toString(),
                    fromAzure ? " read from Azure" : "", minLength, maxLength);
    return std::nullopt;
  }
  // Two PodSubnets over the same addresses would hand one block out twice: the older one wins
  // (then the name), the other is refused until it or the overlap goes.
  const auto created = subnet.metadata.creationTimestamp.value_or("");
  for (const auto& [otherName, other] : subnets_) {
    if (otherName == name) continue;
    const auto otherState = subnetStates_.find(otherName);
    if (otherState == subnetStates_.end() || !otherState->second.cidr) continue;
    if (!otherState->second.cidr->overlaps(cidr)) continue;
    const auto otherCreated = other.metadata.creationTimestamp.value_or("");
    const bool otherFirst = otherState->second.blocks.has_value() ||
                            std::tie(otherCreated, otherName) < std::tie(created, name);
    if (!otherFirst) continue;
    state.notCarvedMessage =
        fmt::format("{} {} overlaps PodSubnet \"{}\" ({}): no blocks are carved while both exist",
                    fromAzure ? "the Azure subnet" : "spec.cidr", cidr.toString(), otherName,
                    otherState->second.cidr->toString());
    return std::nullopt;
  }

  ipam::CarveOptions options{.excludeAzureReserved = fromAzure, .reserved = {}};
  for (const std::string& text : subnet.spec.reservedCIDRs) {
    if (auto reserved = ipam::Prefix::parse(text)) options.reserved.push_back(*reserved);
  }
  auto carved = ipam::SubnetBlockSet::carve(cidr, length, options);
  if (!carved) {
    state.notCarvedMessage = fmt::format("cannot carve {} into /{} blocks: {}", cidr.toString(),
                                         length, carved.error().message);
    return std::nullopt;
  }
  // Occupy every block that exists before handing out any new one.
  for (const auto& [blockName, info] : blocks_) {
    if (info.podSubnet != name) continue;
    if (auto occupied = carved->occupy(info.cidr); !occupied) {
      spdlog::warn("IPBlock {}: {}", blockName, occupied.error().message);
    }
  }
  carved->finishOccupying();
  spdlog::info("PodSubnet {}: carved {} into {} usable /{} blocks, {} in use", name,
               cidr.toString(), carved->usableCount(), length, carved->allocatedCount());
  state.blocks = std::move(*carved);
  state.notCarvedMessage.clear();
  for (const auto& [node, info] : nodes_)
    enqueue("n/" + node);
  return std::nullopt;
}

std::optional<std::string> Controller::reconcileSubnet(const std::string& name) {
  std::unique_lock lock(mutex_);
  if (!subnets_.contains(name)) {
    subnetStates_.erase(name);
    if (metrics_) metrics_->removePool(name);
    for (const auto& [blockName, info] : blocks_) {
      if (info.podSubnet == name) enqueue("n/" + info.node);
    }
    return std::nullopt;
  }
  std::optional<std::string> carveError;
  if (!subnetStates_[name].blocks) carveError = carve(name, lock);
  if (!subnets_.contains(name)) return std::nullopt;
  const api::PodSubnet& subnet = subnets_.at(name);
  SubnetState& state = subnetStates_[name];

  const Time t = now();
  if (state.blocks) {
    for (auto it = state.leaks.begin(); it != state.leaks.end();) {
      if (t - it->second < config_.leakGrace) {
        ++it;
        continue;
      }
      const ipam::Prefix leaked = it->first;
      const bool held = std::ranges::any_of(blocks_, [&](const auto& entry) {
        return entry.second.podSubnet == name && entry.second.cidr == leaked;
      });
      if (!held && state.blocks->isAllocated(leaked)) {
        spdlog::info(
            "PodSubnet {}: {} was leaked by a create of unknown outcome; no IPBlock "
            "holds it, so it is free again",
            name, leaked.toString());
        (void)state.blocks->release(leaked);
      }
      it = state.leaks.erase(it);
    }
    if (!state.leaks.empty()) enqueueAfter("s/" + name, config_.leakGrace);
  }

  std::vector<api::IPBlock> ipBlocks;
  for (const auto& [blockName, info] : blocks_) {
    if (info.podSubnet != name) continue;
    api::IPBlock b;
    b.status.used = info.used;
    ipBlocks.push_back(std::move(b));
  }
  const std::vector<std::string> shortNodes(state.shortNodes.begin(), state.shortNodes.end());
  PoolStatusInput input{.blocks = state.blocks ? &*state.blocks : nullptr,
                        .notCarvedMessage = state.notCarvedMessage,
                        .ipBlocks = ipBlocks,
                        .shortNodes = shortNodes,
                        .generation = subnet.metadata.generation,
                        .now = t};
  api::PodSubnetStatus status = computePoolStatus(subnet.status, input);
  const auto exhausted =
      std::ranges::find(status.conditions, api::kConditionExhausted, &api::Condition::type);
  const bool isExhausted = exhausted != status.conditions.end() && exhausted->status == "True";
  if (metrics_) {
    metrics_->setPool(
        name, PoolNumbers{
                  .totalBlocks = status.totalBlocks,
                  .allocatedBlocks = status.allocatedBlocks,
                  .totalIPs =
                      state.blocks ? status.totalBlocks * prefixSize(state.blocks->blockAt(0)) : 0,
                  .allocatedIPs = status.allocatedIPs,
                  .exhausted = isExhausted});
  }
  const bool changed = status != subnet.status;
  const kube::ObjectReference ref{.apiVersion = std::string(api::kApiVersion),
                                  .kind = std::string(api::kPodSubnetKind),
                                  .name = name,
                                  .ns = "",
                                  .uid = subnet.metadata.uid};
  const bool reportExhausted = isExhausted && !state.exhaustedReported;
  state.exhaustedReported = isExhausted;
  const std::string exhaustedMessage = isExhausted ? exhausted->message : std::string();
  lock.unlock();

  if (reportExhausted) event(ref, true, "Exhausted", "Allocate", exhaustedMessage);
  if (changed) {
    if (!canWrite()) return std::string("not the leader: status not written");
    json body = {{"apiVersion", api::kApiVersion},
                 {"kind", api::kPodSubnetKind},
                 {"metadata", {{"name", name}}},
                 {"status", api::toJson(status)}};
    auto written = client_.applyStatus(
        fmt::format("{}/{}", kPodSubnetsPath, name), body,
        {.fieldManager = std::string(api::kControllerFieldManager), .force = true});
    if (!written) {
      if (written.error().code == kube::ErrorCode::kNotFound) return std::nullopt;
      return fmt::format("PodSubnet {}: writing status: {}", name, written.error().message);
    }
    // Keep what we wrote, so the next pass compares with it even before the watch brings it.
    if (auto fresh = api::podSubnetFromJson(*written)) {
      std::lock_guard relock(mutex_);
      const auto found = subnets_.find(name);
      if (found != subnets_.end() && found->second.metadata.uid == fresh->metadata.uid &&
          notOlder(fresh->metadata.resourceVersion, found->second.metadata.resourceVersion)) {
        found->second = std::move(*fresh);
      }
    }
  }
  return carveError;
}

// ---- Node -----------------------------------------------------------------------------------

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
  std::vector<std::pair<bool, std::string>> notes;  // (shortOfPool?, message) for node events
  std::string providerID;
  kube::ObjectReference ref;
  {
    std::lock_guard lock(mutex_);
    ref = nodeRef(name);
    const auto node = nodes_.find(name);
    if (node != nodes_.end()) providerID = node->second.providerID;
    static const std::set<std::string> kNone;
    const auto index = nodeBlocks_.find(name);
    const std::set<std::string>& names = index == nodeBlocks_.end() ? kNone : index->second;
    const Time t = now();

    for (auto& [subnetName, subnet] : subnets_) {
      const NodeState nodeState = node == nodes_.end() ? NodeState::kGone
                                  : nodeSelected(node->second, subnet.spec)
                                      ? NodeState::kSelected
                                      : NodeState::kNotSelected;
      std::vector<NodeBlock> mine;
      for (const std::string& blockName : names) {
        const BlockInfo& info = blocks_.at(blockName);
        if (info.podSubnet != subnetName) continue;
        std::optional<Time> since;
        if (auto e = emptySince_.find(blockName); e != emptySince_.end()) since = e->second;
        since = trackEmptySince(since, info.used, t);
        if (since) {
          emptySince_[blockName] = *since;
        } else {
          emptySince_.erase(blockName);
        }
        mine.push_back(NodeBlock{.name = blockName,
                                 .cidr = info.cidr,
                                 .phase = info.phase,
                                 .deleting = info.deleting,
                                 .used = info.used,
                                 .capacity = info.capacity,
                                 .created = info.created,
                                 .emptySince = since});
      }
      auto stateIt = subnetStates_.find(subnetName);
      ipam::SubnetBlockSet* pool = stateIt != subnetStates_.end() && stateIt->second.blocks
                                       ? &*stateIt->second.blocks
                                       : nullptr;
      if (mine.empty() && (nodeState != NodeState::kSelected || !pool)) continue;
      const ipam::Family family = pool ? pool->subnet().family()
                                       : (mine.empty() ? ipam::Family::kV4 : mine[0].cidr.family());
      const NodeBlockPolicy policy = NodeBlockPolicy::fromSpec(subnet.spec, family);
      const NodeBlockDecision decision =
          decideNodeBlocks(policy, NodeBlockInput{.node = nodeState,
                                                  .blocks = mine,
                                                  .poolFreeBlocks = pool ? pool->freeCount() : 0,
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
      if (stateIt != subnetStates_.end()) {
        auto& shortNodes = stateIt->second.shortNodes;
        if (decision.shortOfPool) {
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
        deletes.push_back(
            {release.name, blocks_.at(release.name).uid, std::string(toString(release.reason))});
      }
      if (decision.recheckAt) enqueueAfter("n/" + name, *decision.recheckAt - t);
    }
    for (const std::string& blockName : names) {
      const BlockInfo& info = blocks_.at(blockName);
      if (!subnets_.contains(info.podSubnet) && !info.deleting) {
        deletes.push_back({blockName, info.uid, "PodSubnetGone"});
      }
    }
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
  for (const Create& c : creates) {
    json labels = {{api::kSubnetLabel, c.subnet}};
    if (api::isLabelValue(name)) labels[std::string(api::kNodeLabel)] = name;
    json annotations = json::object();
    if (!providerID.empty()) annotations[std::string(kProviderIDAnnotation)] = providerID;
    const json body = {
        {"apiVersion", api::kApiVersion},
        {"kind", api::kIPBlockKind},
        {"metadata",
         {{"name", c.blockName},
          {"labels", std::move(labels)},
          {"annotations", std::move(annotations)},
          {"finalizers", {api::kNicReleaseFinalizer}}}},
        {"spec", {{"podSubnet", c.subnet}, {"cidr", c.cidr.toString()}, {"nodeName", name}}}};
    auto created = client_.create(kIPBlocksPath, body);
    std::lock_guard lock(mutex_);
    auto state = subnetStates_.find(c.subnet);
    ipam::SubnetBlockSet* pool =
        state != subnetStates_.end() && state->second.blocks ? &*state->second.blocks : nullptr;
    if (created) {
      changed = true;
      if (metrics_) metrics_->blockAllocated(c.subnet);
      spdlog::debug("node {}: created IPBlock {} ({})", name, c.blockName, c.cidr.toString());
      if (auto info = decodeBlock(*created))
        upsertBlockLocked(c.blockName, std::move(*info), false);
      continue;
    }
    const kube::Error& error = created.error();
    if (error.code == kube::ErrorCode::kAlreadyExists) {
      // Someone holds this CIDR (another writer, or our own create the watch has not shown yet):
      // it stays taken in the pool, and the node tries the next one.
      spdlog::info("node {}: IPBlock {} already exists; trying another block", name, c.blockName);
      again = true;
    } else if (isUnknownOutcome(error)) {
      // The block may exist. Leak the CIDR rather than risk handing it out twice; the PodSubnet
      // reconciler frees it if no IPBlock with it shows up within leakGrace.
      if (state != subnetStates_.end()) state->second.leaks[c.cidr] = now();
      enqueueAfter("s/" + c.subnet, config_.leakGrace + std::chrono::seconds(1));
      firstError = firstError.value_or(
          fmt::format("creating IPBlock {}: {} (outcome unknown)", c.blockName, error.message));
    } else {
      // Refused: the object certainly was not created.
      if (pool) (void)pool->release(c.cidr);
      firstError =
          firstError.value_or(fmt::format("creating IPBlock {}: {}", c.blockName, error.message));
    }
  }
  for (const Delete& d : deletes) {
    auto removed = client_.remove(blockPath(d.name), {.uid = d.uid});
    if (!removed && removed.error().code != kube::ErrorCode::kNotFound &&
        removed.error().code != kube::ErrorCode::kConflict) {
      firstError = firstError.value_or(
          fmt::format("deleting IPBlock {}: {}", d.name, removed.error().message));
      continue;
    }
    changed = true;
    spdlog::info("node {}: releasing IPBlock {} ({})", name, d.name, d.why);
  }
  if (changed) enqueue("c/" + name);
  if (again) enqueue("n/" + name);
  return firstError;
}

// ---- NIC ------------------------------------------------------------------------------------

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
      if (found == blocks_.end()) continue;
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
    BlockInfo info;
    {
      std::lock_guard lock(mutex_);
      const auto found = blocks_.find(name);
      if (found == blocks_.end()) continue;
      info = found->second;
    }
    if (!info.deleting) {
      auto removed = client_.remove(blockPath(name), {.uid = info.uid});
      if (!removed && removed.error().code != kube::ErrorCode::kNotFound) {
        firstError = firstError.value_or(
            fmt::format("deleting IPBlock {}: {}", name, removed.error().message));
        continue;
      }
    }
    if (!info.hasFinalizer) continue;
    const json patch = {
        {"metadata",
         {{"finalizers", info.otherFinalizers}, {"resourceVersion", info.resourceVersion}}}};
    auto patched = client_.mergePatch(blockPath(name), patch);
    if (!patched && patched.error().code != kube::ErrorCode::kNotFound) {
      // kConflict: the watch brings the newer object and the NIC pass runs again.
      firstError =
          firstError.value_or(fmt::format("IPBlock {}: removing finalizer {}: {}", name,
                                          api::kNicReleaseFinalizer, patched.error().message));
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
  std::string blockNicId;       // status.nic.id of some block of the node
  std::string blockProviderID;  // the providerID some block was created for
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
        blocks.push_back(
            {.name = name, .cidr = info.cidr, .phase = info.phase, .deleting = info.deleting});
        if (!info.nicId.empty()) blockNicId = info.nicId;
        if (!info.providerID.empty()) blockProviderID = info.providerID;
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
    std::vector<std::pair<std::string, api::BlockPhase>> changes;
    std::vector<std::string> finished;
    for (const NicBlock& b : blocks) {
      if (b.leaving()) {
        finished.push_back(b.name);
      } else if (b.phase != api::BlockPhase::kReady) {
        changes.emplace_back(b.name, api::BlockPhase::kReady);
      }
    }
    auto error = writePhases(node, changes, "");
    auto released = finishReleasing(finished);
    return error ? error : released;
  }

  const bool allLeaving = std::ranges::all_of(blocks, &NicBlock::leaving);
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
    for (const NicBlock& b : blocks)
      finished.push_back(b.name);
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
