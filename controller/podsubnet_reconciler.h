// The PodSubnet reconciler: carves the subnet into blocks (once its CIDR is known and no older
// PodSubnet overlaps it), grows the pool by the Azure subnet's new prefixes, applies
// spec.reservedCIDRs, frees CIDRs leaked by creates of unknown outcome after leakGrace, and writes
// the subnet's status (pool_status.h). The state it works on is state.h.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "controller/state.h"

namespace vnetipam::controller {

class SubnetUsageStore;

class PodSubnetReconciler {
 public:
  explicit PodSubnetReconciler(ControllerState& state) : state_(state) {}

  // An error string means "retry with backoff".
  std::optional<std::string> reconcile(const std::string& name);

  // The store of the Azure subnets' usage the poller fills (subnet_usage.h; null: none, and
  // status.foreignAddresses stays unset). Takes the state's mutex.
  void setSubnetUsageStore(const SubnetUsageStore* store);
  // Called (under the state's mutex: it must only signal) when a carve found prefixes of ours on
  // NICs that no IPBlock holds, so that the orphan sweep looks at them now rather than a period
  // later (OrphanSweeper::wake). Set before the workers start.
  void setOrphanSweepTrigger(std::function<void()> trigger) {
    orphanSweepTrigger_ = std::move(trigger);
  }

 private:
  // Under the state's mutex (`lock` holds it; released while the Azure subnet is read).
  std::optional<std::string> carve(const std::string& name, std::unique_lock<std::mutex>& lock);
  // Under the state's mutex, for a carved PodSubnet: makes every prefix of its Azure subnet
  // `prefixes` (as read) that can be a range of the pool one (the carve's first range aside, each
  // one added later), retires the ranges no longer among them, and records the others with why in
  // uncarvedPrefixes. Returns the ranges added.
  std::vector<ipam::Prefix> growPoolLocked(const std::string& name,
                                           std::span<const ipam::Prefix> prefixes);
  // status.foreignAddresses of a PodSubnet; under the state's mutex (subnet_usage.cpp).
  std::optional<std::int64_t> foreignAddressesLocked(const std::string& name) const;

  ControllerState& state_;
  const SubnetUsageStore* usage_ = nullptr;  // guarded by the state's mutex
  std::function<void()> orphanSweepTrigger_;
};

}  // namespace vnetipam::controller
