#include "controller/orphan_sweeper.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/constants.h"
#include "controller/controller.h"
#include "controller/metrics.h"
#include "lib/azure/network.h"
#include "lib/azure/provider_id.h"

namespace vnetipam::controller {

namespace {

std::string vmText(const std::string& vmId) {
  return vmId.empty() ? std::string("attached to no VM") : fmt::format("of VM {}", vmId);
}

}  // namespace

std::vector<std::string> nicsToSweep(const OrphanSweepView& view,
                                     std::span<const OwnIpConfiguration> ours) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const OwnIpConfiguration& config : ours) {
    const std::string key = armIdKey(config.nicId);
    if (view.nicPassNics.contains(key)) continue;  // O1
    if (seen.insert(key).second) out.push_back(config.nicId);
  }
  return out;
}

OrphanSweeper::OrphanSweeper(Cloud& cloud, Hooks hooks, EventSink* events,
                             ControllerMetrics* metrics, Options options, base::Clock& clock)
    : cloud_(cloud),
      hooks_(std::move(hooks)),
      events_(events),
      metrics_(metrics),
      options_(options),
      clock_(clock) {}

OrphanSweeper::~OrphanSweeper() { stop(); }

Time OrphanSweeper::now() const {
  return std::chrono::floor<std::chrono::seconds>(clock_.wallNow());
}

OrphanSweeper::Result OrphanSweeper::sweepOnce() {
  Result result;
  if (!hooks_.canWrite()) return result;
  // The subnets to read: the Azure subnets of the carved PodSubnets, each once.
  const OrphanSweepView scope = hooks_.view({});
  std::vector<std::string> subnetIds;
  std::set<std::string> seenSubnets;
  for (const SweptPodSubnet& s : scope.podSubnets) {
    if (s.ranges.empty() || !s.azureSubnetId) continue;
    if (seenSubnets.insert(armIdKey(*s.azureSubnetId)).second)
      subnetIds.push_back(*s.azureSubnetId);
  }
  std::vector<OwnIpConfiguration> ours;
  for (const std::string& subnet : subnetIds) {
    auto read = cloud_.readSubnet(subnet);
    if (!read) {
      result.errors.push_back(fmt::format("reading the ipConfigurations of subnet {}: {}", subnet,
                                          read.error().message));
      continue;
    }
    ours.insert(ours.end(), read->ours.begin(), read->ours.end());
  }
  std::vector<SweptNic> nics;
  std::vector<ipam::Prefix> candidates;
  for (const std::string& nicId : nicsToSweep(scope, ours)) {
    auto nic = cloud_.readNic(nicId);
    if (!nic) {
      if (nic.error().code == azure::ErrorCode::kNotFound) continue;  // gone since the list
      result.errors.push_back(fmt::format("reading NIC {}: {}", nicId, nic.error().message));
      continue;
    }
    candidates.insert(candidates.end(), nic->ours.begin(), nic->ours.end());
    nics.push_back({.id = nicId, .vmId = nic->vmId, .ours = std::move(nic->ours)});
  }
  // The view again, now asked about the prefixes found: it is taken after the NICs were read, so
  // a block created meanwhile counts.
  const OrphanSweepView view = hooks_.view(candidates);
  OrphanSweepPlan plan = planOrphanSweep(
      {.view = view, .nics = nics, .firstSeen = firstSeen_, .grace = options_.grace, .now = now()});
  firstSeen_ = std::move(plan.firstSeen);
  result.recheckAt = plan.recheckAt;
  for (const OrphanRemoval& found : plan.found) {
    for (const OrphanPrefix& p : found.prefixes) {
      spdlog::info(
          "orphan sweep: prefix {} of PodSubnet {} is on NIC {} ({}), which belongs to no Node, "
          "and no IPBlock owns it: removing it in {}s unless a block for it appears",
          p.prefix.toString(), p.podSubnet, found.nicId, vmText(found.vmId),
          options_.grace.count());
    }
  }
  for (const OrphanRemoval& removal : plan.removals) {
    if (!hooks_.canWrite()) break;
    std::vector<ipam::Prefix> prefixes;
    for (const OrphanPrefix& p : removal.prefixes)
      prefixes.push_back(p.prefix);
    auto removed = cloud_.removeNicPrefixes(removal.nicId, prefixes);
    if (!removed) {
      // Tried again at the next sweep, without a new grace.
      for (const OrphanPrefix& p : removal.prefixes)
        firstSeen_.emplace(OrphanKey{armIdKey(removal.nicId), p.prefix}, p.firstSeen);
      result.errors.push_back(fmt::format("removing {} orphan prefixes from NIC {}: {}",
                                          prefixes.size(), removal.nicId, removed.error().message));
      continue;
    }
    OrphanRemoval done{.nicId = removal.nicId, .vmId = removal.vmId, .prefixes = {}};
    for (const OrphanPrefix& p : removal.prefixes) {
      if (std::ranges::find(*removed, p.prefix) == removed->end()) continue;  // gone already
      done.prefixes.push_back(p);
      if (metrics_) metrics_->orphanPrefixRemoved(p.podSubnet);
      const std::string note = fmt::format(
          "removed prefix {} from NIC {} ({}), which belongs to no Node: no IPBlock owned it for "
          "{}s",
          p.prefix.toString(), removal.nicId, vmText(removal.vmId),
          std::chrono::duration_cast<std::chrono::seconds>(now() - p.firstSeen).count());
      spdlog::warn("PodSubnet {}: {}: {}", p.podSubnet, kEventOrphanPrefixRemoved, note);
      if (events_ && hooks_.canWrite()) {
        events_->record({.apiVersion = std::string(api::kApiVersion),
                         .kind = std::string(api::kPodSubnetKind),
                         .name = p.podSubnet,
                         .ns = "",
                         .uid = p.podSubnetUid},
                        kube::EventType::kWarning, kEventOrphanPrefixRemoved, "SweepNIC", note);
      }
    }
    if (!done.prefixes.empty()) result.removed.push_back(std::move(done));
  }
  return result;
}

void OrphanSweeper::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void OrphanSweeper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OrphanSweeper::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

void OrphanSweeper::run() {
  for (;;) {
    const Result result = sweepOnce();
    for (const std::string& error : result.errors)
      spdlog::warn("orphan sweep: {}", error);
    // The next sweep: after the period, or just after the earliest grace ends if that is sooner.
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(options_.period);
    if (result.recheckAt) {
      wait = std::min(wait, std::max(std::chrono::seconds(0), *result.recheckAt - now()) +
                                std::chrono::seconds(1));
    }
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, wait, [this] { return stopping_ || woken_; });
    if (stopping_) return;
    woken_ = false;
  }
}

// The controller's side (declared in controller.h).

OrphanSweepView Controller::orphanSweepView(std::span<const ipam::Prefix> prefixes) const {
  OrphanSweepView view;
  std::lock_guard lock(state_.mutex);
  for (const auto& [name, subnet] : state_.subnets) {
    SweptPodSubnet swept{.name = name,
                         .uid = subnet.metadata.uid,
                         .azureSubnetId = subnet.spec.azureSubnetID,
                         .ranges = {}};
    if (const auto state = state_.subnetStates.find(name);
        state != state_.subnetStates.end() && state->second.blocks) {
      const auto ranges = state->second.blocks->ranges();
      swept.ranges.assign(ranges.begin(), ranges.end());
    }
    view.podSubnets.push_back(std::move(swept));
  }
  for (const auto& [node, nicId] : state_.nicIds)
    view.nicPassNics.insert(armIdKey(nicId));
  for (const auto& [name, info] : state_.blocks) {
    if (!info.nicId.empty()) view.nicPassNics.insert(armIdKey(info.nicId));
  }
  for (const auto& [name, node] : state_.nodes) {
    if (auto vm = azure::parseProviderId(node.providerID)) {
      view.nodeVms.insert(armIdKey(vm->resourceId()));
    }
  }
  // O3: an IPBlock's CIDR (any state, any verdict), a leaked create, a CIDR the pool holds for a
  // block, or a block the pool has allocated (a create in flight).
  const auto owned = [&](const ipam::Prefix& p) {
    for (const auto& [name, info] : state_.blocks) {
      if (info.cidr.overlaps(p)) return true;
    }
    for (const auto& [name, state] : state_.subnetStates) {
      for (const auto& [cidr, leak] : state.leaks) {
        // Not a prefix the carve found on a NIC with no IPBlock: that is what the sweep is for.
        if (cidr.overlaps(p) && !leak.foundOnNic) return true;
      }
      for (const auto& [cidr, holder] : state.holders) {
        if (cidr.overlaps(p)) return true;
      }
      if (!state.blocks) continue;
      const ipam::BlockPool& pool = *state.blocks;
      if (p.length() >= pool.blockLength()) {
        const ipam::Prefix block = ipam::Prefix::masked(p.address(), pool.blockLength());
        const auto leak = state.leaks.find(block);
        const bool foundOnNic = leak != state.leaks.end() && leak->second.foundOnNic;
        if (pool.isAllocated(block) && !foundOnNic) return true;
        continue;
      }
      // A prefix wider than a block: owned when a block inside it is allocated.
      if (pool.anyAllocatedIn(p)) return true;
    }
    return false;
  };
  for (const ipam::Prefix& p : prefixes) {
    if (owned(p)) view.owned.push_back(p);
  }
  return view;
}

}  // namespace vnetipam::controller
