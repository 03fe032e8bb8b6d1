// The PodSubnet reconciler: carves the subnet into blocks (once its CIDR is known and no older
// PodSubnet overlaps it), grows the pool by the Azure subnet's new prefixes, applies
// spec.reservedCIDRs, frees CIDRs leaked by creates of unknown outcome after leakGrace, and writes
// the subnet's status (pool_status.h). The state it works on is state.h.
#pragma once

#include <cstdint>
#include <expected>
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
  // What a carve is made from.
  struct CarveRead {
    std::vector<ipam::Prefix> prefixes;  // spec.cidr, or the Azure subnet's prefixes (IPv4 first)
    std::vector<ipam::Prefix> onNics;    // our prefixes on the Azure subnet's NICs
    std::uint64_t ticket = 0;            // of the read, when there is a usage store
    bool fromAzure = false;              // no spec.cidr: the prefixes are the Azure subnet's
  };
  // What a pass decided for the status, under the state's mutex, for the writes made without it.
  struct StatusDecision {
    api::PodSubnetStatus status;
    bool changed = false;          // differs from the object's status: written
    bool reportExhausted = false;  // Exhausted now and not at the last pass: an event says so
    std::string exhaustedMessage;
    kube::ObjectReference ref;  // the PodSubnet, for the event
  };
  // What the status is computed from that is not in the state as it stands (PoolStatusInput's
  // spans point into it).
  struct StatusSnapshot {
    std::vector<std::int64_t> blockUsed;
    std::vector<std::string> reservedBlocks;
    std::vector<ipam::Prefix> reservedOutside;
    std::vector<std::string> shortNodes;
  };

  // ---- the steps of reconcile, under the state's mutex but for writeStatus ----
  // A PodSubnet that is gone: drops its state and pool metrics, and wakes the nodes of its blocks.
  void forgetSubnetLocked(const std::string& name);
  // Grows or retires the pool's ranges from the usage poller's latest read of the Azure subnet.
  void growFromUsageLocked(const std::string& name, const api::PodSubnet& subnet,
                           SubnetState& state);
  // Puts spec.reservedCIDRs on the pool as they are now.
  void applyReservedLocked(const std::string& name, const api::PodSubnet& subnet,
                           SubnetState& state);
  // Frees the leaked CIDRs whose leakGrace has passed at `now` and that no IPBlock holds.
  void freeLeaksLocked(const std::string& name, SubnetState& state, Time now);
  // Computes the status (pool_status.h), sets the pool's metrics, and says what to write.
  StatusDecision decideStatusLocked(const std::string& name, const api::PodSubnet& subnet,
                                    SubnetState& state, Time now);
  // Reads from the state what decideStatusLocked computes the status from.
  StatusSnapshot snapshotStatusLocked(const std::string& name, const api::PodSubnet& subnet,
                                      const SubnetState& state) const;
  // The pool's metrics, from the status just computed.
  void setPoolMetricsLocked(const std::string& name, const SubnetState& state,
                            const api::PodSubnetStatus& status, bool exhausted);
  // Under no lock: the Exhausted event, the status write, and the written object kept in the
  // state. Returns what reconcile returns: the write's error, nullopt when the PodSubnet is gone,
  // else `carveError`.
  std::optional<std::string> writeStatus(const std::string& name, const StatusDecision& decision,
                                         std::optional<std::string> carveError);

  // ---- the carve ----
  // Under the state's mutex (`lock` holds it; released while the Azure subnet is read).
  std::optional<std::string> carve(const std::string& name, std::unique_lock<std::mutex>& lock);
  // What `subnet` is carved from: spec.cidr, or its Azure subnet, read with the mutex released.
  // When there is nothing to carve now, the error is what carve returns (the read's failure, to
  // retry; nullopt: wait for a change) and notCarvedMessage says why.
  std::expected<CarveRead, std::optional<std::string>> readCarvePrefixes(
      const std::string& name, const api::PodSubnet& subnet, std::unique_lock<std::mutex>& lock);
  // Why `subnet` over `ranges` (its prefixes of the carved family) is not carved, or nullopt.
  std::optional<std::string> carveRefusalLocked(const std::string& name,
                                                const api::PodSubnet& subnet,
                                                std::span<const ipam::Prefix> ranges,
                                                bool fromAzure) const;
  // Makes the pool of `name` from `read` (its ranges already set), or says why it cannot be made.
  std::optional<std::string> makePoolLocked(const std::string& name, int length,
                                            const CarveRead& read);
  // Judges and occupies every existing block of the new pool of `name`, in admission order.
  void admitBlocksLocked(const std::string& name);
  // Takes `onNics` that hold no block yet as leaks, then ends the pool's occupying.
  void takeOnNicPrefixesLocked(const std::string& name, std::span<const ipam::Prefix> onNics);
  // Under the state's mutex, for a carved PodSubnet: makes every prefix of its Azure subnet
  // `prefixes` (as read) that can be a range of the pool one (the carve's first range aside, each
  // one added later), retires the ranges no longer among them, and records the others with why in
  // uncarvedPrefixes. Returns the ranges added.
  std::vector<ipam::Prefix> growPoolLocked(const std::string& name,
                                           std::span<const ipam::Prefix> prefixes);
  // Adds `prefix` of the Azure subnet as a range of `pool`, the pool of `name`, or says why it
  // cannot be one.
  std::optional<std::string> addPrefixLocked(const std::string& name, ipam::BlockPool& pool,
                                             const ipam::Prefix& prefix);
  // status.foreignAddresses of a PodSubnet; under the state's mutex (subnet_usage.cpp).
  std::optional<std::int64_t> foreignAddressesLocked(const std::string& name) const;

  ControllerState& state_;
  const SubnetUsageStore* usage_ = nullptr;  // guarded by the state's mutex
  std::function<void()> orphanSweepTrigger_;
};

}  // namespace vnetipam::controller
