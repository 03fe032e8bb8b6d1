// The addresses other Azure resources hold in a PodSubnet's Azure subnet: other NICs, private
// endpoints, load balancers' frontends. The blocks the controller carves never see them, yet they
// take room a block would need (Azure refuses a prefix that overlaps one), so capacity reporting
// and the exhaustion forecast count them.
//
// Azure tells how many addresses a subnet uses in the VNET's usage list (VirtualNetworks_ListUsage,
// one "SubnetSpace" line per subnet with currentValue). That count includes our own blocks, so the
// foreign addresses are currentValue less the addresses of the PodSubnet's blocks on NICs, floored
// at zero. How a prefix ipConfiguration counts is not documented: the model here (the whole
// prefix) and why it is the safe one is in docs/design.md.
//
// The list is read by SubnetUsagePoller on its own thread, once per VNET every period (default
// five minutes): a number that moves as slowly as other teams' deployments needs no more, and
// it never delays a node's block, whose path (node, NIC reconcilers) does not wait on it. What it
// read goes into a SubnetUsageStore; the PodSubnet reconciler turns it into
// status.foreignAddresses and the vnetipam_podsubnet_foreign_addresses gauge.
//
// The poller also reads each subnet (one GET) for its address prefixes: an address prefix added
// to an Azure subnet is carved into its PodSubnet's pool within a period (growPoolLocked).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controller/cloud.h"

namespace vnetipam::controller {

// The VNET of an Azure subnet id (".../virtualNetworks/v/subnets/s" -> ".../virtualNetworks/v");
// nullopt when the id has no "/subnets/<name>" after a VNET.
std::optional<std::string> vnetOfSubnet(std::string_view subnetId);

// Addresses held by others: `used` (the subnet's usage) less `ours` (the addresses of our blocks
// on NICs), never below zero: the usage and our blocks are not read at the same instant, and a
// block programmed in between must not make the count negative. nullopt when `used` is unknown.
std::optional<std::int64_t> foreignAddresses(std::optional<std::int64_t> used, std::int64_t ours);

// What the poller last read per subnet. Subnet ids compare ignoring case, as ARM ids do.
// Thread-safe.
class SubnetUsageStore {
 public:
  // Returns true when the value changed (a subnet seen for the first time counts as a change).
  bool set(std::string_view subnetId, std::optional<std::int64_t> used);
  std::optional<std::int64_t> used(std::string_view subnetId) const;
  // A ticket for a read of a subnet's prefixes about to start: tickets grow, so of two reads the
  // one with the greater ticket started later and shows the subnet as it was then or since.
  std::uint64_t beginRead() const;
  // The subnet's address prefixes as read under `ticket`; a read older than the one kept is
  // dropped. Returns true when the prefixes changed (or are new).
  bool setPrefixes(std::string_view subnetId, std::vector<ipam::Prefix> prefixes,
                   std::uint64_t ticket);
  struct PrefixesRead {
    std::vector<ipam::Prefix> prefixes;
    std::uint64_t ticket = 0;
  };
  std::optional<PrefixesRead> prefixes(std::string_view subnetId) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::optional<std::int64_t>, std::less<>> used_;  // lower-cased id
  std::map<std::string, PrefixesRead, std::less<>> prefixes_;             // lower-cased id
  mutable std::uint64_t tickets_ = 0;
};

class SubnetUsagePoller {
 public:
  struct Hooks {
    // spec.azureSubnetID of every PodSubnet (duplicates and any case allowed).
    std::function<std::vector<std::string>()> subnetIds;
    // The usage or the prefixes of this subnet changed in the store: reconcile the PodSubnets on
    // it.
    std::function<void(const std::string& subnetId)> changed;
  };

  // `cloud` and `store` must outlive the poller.
  SubnetUsagePoller(Cloud& cloud, SubnetUsageStore& store, Hooks hooks,
                    std::chrono::seconds period);
  ~SubnetUsagePoller();  // stops the thread
  SubnetUsagePoller(const SubnetUsagePoller&) = delete;
  SubnetUsagePoller& operator=(const SubnetUsagePoller&) = delete;

  // One pass: one usage list per VNET some PodSubnet's subnet is in, and one GET per subnet. A
  // subnet the list does not name, or names with -1 (Azure's "not counted"), becomes unknown; a
  // VNET or subnet whose read fails keeps what was read before (a stale count beats none for a
  // forecast) and is named in the returned errors, one line each.
  std::vector<std::string> pollOnce();

  // Polls at once and then every period on a thread of its own, until stop().
  void start();
  void stop();

 private:
  void run();

  Cloud& cloud_;
  SubnetUsageStore& store_;
  Hooks hooks_;
  std::chrono::seconds period_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vnetipam::controller
