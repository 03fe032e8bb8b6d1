#include "controller/subnet_usage.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "controller/controller.h"
#include "controller/controller_internal.h"
#include "controller/podsubnet_reconciler.h"

namespace vnetipam::controller {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

}  // namespace

std::optional<std::string> vnetOfSubnet(std::string_view subnetId) {
  const std::string folded = lower(subnetId);
  const auto vnets = folded.find("/virtualnetworks/");
  const auto subnets = folded.rfind("/subnets/");
  if (vnets == std::string::npos || subnets == std::string::npos || subnets <= vnets) {
    return std::nullopt;
  }
  // Exactly ".../virtualNetworks/<vnet>/subnets/<subnet>": one name each, neither empty.
  const std::string_view vnet = subnetId.substr(vnets + 17, subnets - vnets - 17);
  const std::string_view subnet = subnetId.substr(subnets + 9);
  if (vnet.empty() || subnet.empty() || vnet.find('/') != std::string_view::npos ||
      subnet.find('/') != std::string_view::npos) {
    return std::nullopt;
  }
  return std::string(subnetId.substr(0, subnets));
}

std::optional<std::int64_t> foreignAddresses(std::optional<std::int64_t> used, std::int64_t ours) {
  if (!used) return std::nullopt;
  return std::max<std::int64_t>(0, *used - ours);
}

bool SubnetUsageStore::set(std::string_view subnetId, std::optional<std::int64_t> used) {
  std::lock_guard lock(mutex_);
  auto [at, inserted] = used_.try_emplace(lower(subnetId), used);
  if (inserted) return true;
  if (at->second == used) return false;
  at->second = used;
  return true;
}

std::uint64_t SubnetUsageStore::beginRead() const {
  std::lock_guard lock(mutex_);
  return ++tickets_;
}

bool SubnetUsageStore::setPrefixes(std::string_view subnetId, std::vector<ipam::Prefix> prefixes,
                                   std::uint64_t ticket) {
  std::lock_guard lock(mutex_);
  auto [at, inserted] =
      prefixes_.try_emplace(lower(subnetId), PrefixesRead{.prefixes = prefixes, .ticket = ticket});
  if (inserted) return true;
  if (ticket < at->second.ticket) return false;
  at->second.ticket = ticket;
  if (at->second.prefixes == prefixes) return false;
  at->second.prefixes = std::move(prefixes);
  return true;
}

std::optional<SubnetUsageStore::PrefixesRead> SubnetUsageStore::prefixes(
    std::string_view subnetId) const {
  std::lock_guard lock(mutex_);
  const auto found = prefixes_.find(lower(subnetId));
  if (found == prefixes_.end()) return std::nullopt;
  return found->second;
}

std::optional<std::int64_t> SubnetUsageStore::used(std::string_view subnetId) const {
  std::lock_guard lock(mutex_);
  const auto found = used_.find(lower(subnetId));
  return found != used_.end() ? found->second : std::nullopt;
}

SubnetUsagePoller::SubnetUsagePoller(Cloud& cloud, SubnetUsageStore& store, Hooks hooks,
                                     std::chrono::seconds period)
    : cloud_(cloud), store_(store), hooks_(std::move(hooks)), period_(period) {}

SubnetUsagePoller::~SubnetUsagePoller() { stop(); }

std::vector<std::string> SubnetUsagePoller::pollOnce() {
  // The PodSubnets' subnets, grouped by VNET: one list answers every subnet of a VNET.
  std::map<std::string, std::vector<std::string>> byVnet;  // lower-cased VNET id -> subnet ids
  std::map<std::string, std::string> vnetIds;              // lower-cased -> as written
  std::vector<std::string> errors;
  for (const std::string& id : hooks_.subnetIds()) {
    const auto vnet = vnetOfSubnet(id);
    if (!vnet) continue;  // validation refuses such a PodSubnet; nothing to read for it
    vnetIds.try_emplace(lower(*vnet), *vnet);
    auto& ids = byVnet[lower(*vnet)];
    if (std::ranges::none_of(ids, [&](const auto& seen) { return lower(seen) == lower(id); })) {
      ids.push_back(id);
    }
  }
  for (const auto& [key, subnets] : byVnet) {
    const std::string& vnet = vnetIds.at(key);
    auto usages = cloud_.subnetUsages(vnet);
    if (!usages) {
      errors.push_back(
          fmt::format("reading the address usage of VNET {}: {}", vnet, usages.error().message));
    }
    for (const std::string& subnet : subnets) {
      bool changed = false;
      if (usages) {
        const auto line = std::ranges::find_if(*usages, [&](const azure::SubnetUsage& u) {
          return lower(u.subnetId) == lower(subnet);
        });
        changed =
            store_.set(subnet, line != usages->end() ? line->used : std::optional<std::int64_t>());
      }
      const std::uint64_t ticket = store_.beginRead();
      auto read = cloud_.readSubnet(subnet);
      if (read) {
        changed = store_.setPrefixes(subnet, std::move(read->prefixes), ticket) || changed;
      } else {
        errors.push_back(fmt::format("reading the address prefixes of subnet {}: {}", subnet,
                                     read.error().message));
      }
      if (changed && hooks_.changed) hooks_.changed(subnet);
    }
  }
  return errors;
}

void SubnetUsagePoller::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void SubnetUsagePoller::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SubnetUsagePoller::run() {
  for (;;) {
    for (const std::string& error : pollOnce())
      spdlog::warn("subnet usage: {}", error);
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, period_, [this] { return stopping_; })) return;
  }
}

// The controller's side (declared in controller.h and podsubnet_reconciler.h).

void PodSubnetReconciler::setSubnetUsageStore(const SubnetUsageStore* store) {
  std::lock_guard lock(state_.mutex);
  usage_ = store;
}

std::vector<std::string> Controller::azureSubnetIds() const {
  std::lock_guard lock(state_.mutex);
  std::vector<std::string> ids;
  for (const auto& [name, subnet] : state_.subnets) {
    if (subnet.spec.azureSubnetID) ids.push_back(*subnet.spec.azureSubnetID);
  }
  return ids;
}

void Controller::subnetUsageChanged(const std::string& subnetId) {
  std::lock_guard lock(state_.mutex);
  for (const auto& [name, subnet] : state_.subnets) {
    if (subnet.spec.azureSubnetID && lower(*subnet.spec.azureSubnetID) == lower(subnetId)) {
      state_.enqueueSubnetStatus(name);
    }
  }
}

std::optional<std::int64_t> PodSubnetReconciler::foreignAddressesLocked(
    const std::string& name) const {
  const auto subnet = state_.subnets.find(name);
  if (usage_ == nullptr || subnet == state_.subnets.end() || !subnet->second.spec.azureSubnetID) {
    return std::nullopt;
  }
  const auto used = usage_->used(*subnet->second.spec.azureSubnetID);
  if (!used) return std::nullopt;
  // Our addresses in the usage: every accepted block whose prefix is on a NIC, or may still be
  // (a Releasing block keeps the NIC finalizer until its prefix is off the NIC). A Pending block
  // is not on a NIC yet.
  std::int64_t ours = 0;
  for (const auto& [blockName, info] : state_.blocks) {
    if (info.podSubnet != name || info.trust != Trust::kAccepted) continue;
    const bool onNic =
        info.phase == api::BlockPhase::kProgrammed || info.phase == api::BlockPhase::kReady ||
        (info.phase == api::BlockPhase::kReleasing && info.hasFinalizer && !info.nicId.empty());
    if (onNic) ours += prefixSize(info.cidr);
  }
  return foreignAddresses(used, ours);
}

}  // namespace vnetipam::controller
