// The orphan sweep: prefixes this project put on a NIC that belongs to no current Node, inside a
// PodSubnet's range, that no IPBlock owns, are taken off after a grace period. The pure decisions;
// the sweeper that reads Azure and writes is orphan_sweeper.h.
//
// The NIC pass (nic_reconcile.h, N9-N11) removes unowned prefixes from the NICs of the nodes it
// knows. Nothing of it reaches a NIC whose node is gone and whose blocks are gone too: a node
// deleted while the controller was down, a VM taken out of the cluster, a prefix left by an
// earlier controller that crashed between its PUT and its IPBlock. Such a prefix keeps its
// addresses from the pool's next block (Azure refuses the block's prefix, N16) for ever.
//
// Scope, read cheaply from what Azure publishes: the Azure subnet of each carved PodSubnet with
// spec.azureSubnetID. One GET of a subnet lists the id of every ipConfiguration in it, of any NIC
// (SubnetPropertiesFormat.ipConfigurations); a prefix ipConfiguration sits in its NIC's primary
// subnet, which holds the PodSubnet's range, so one GET per subnet per sweep finds every
// `vnetipam-*` ipConfiguration on any NIC. Only the NICs that carry one, and that the NIC pass
// does not write, are read (one GET each). A PodSubnet with spec.cidr names no Azure subnet: its
// prefixes are swept only where they sit in the Azure subnet of another PodSubnet (docs/design.md).
//
// The rules, in order, for each prefix on an ipConfiguration named `vnetipam-*` of such a NIC:
//  O1  the NIC is one the NIC pass writes (a Node's NIC it found, or one an IPBlock names in
//      status.nic.id), or its VM is a current Node's: skipped, the NIC pass owns it (one writer
//      per NIC);
//  O2  outside every carved PodSubnet's range (or inside one not carved yet): never touched;
//  O3  owned: an IPBlock's CIDR overlaps it (whatever the block's state or verdict: any object
//      naming it stops the sweep), or the controller holds it in its pool (a create in flight, or
//      one whose outcome is unknown, 5.2): forgotten, as if never seen;
//  O4  first seen: remembered with the time; nothing else;
//  O5  seen less than the grace ago: kept;
//  O6  unowned for the grace: removed (only this prefix: Cloud::removeNicPrefixes), a
//      Warning Event OrphanPrefixRemoved on the PodSubnet and
//      vnetipam_orphan_prefixes_removed_total.
// An ipConfiguration not named `vnetipam-*` is never looked at. What a sweep does not see again
// (the prefix gone, its NIC unread) is forgotten: its grace starts afresh, which can only delay a
// removal.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "controller/node_blocks.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

// One PodSubnet as the sweep sees it.
struct SweptPodSubnet {
  std::string name;
  std::string uid;
  std::optional<std::string> azureSubnetId;  // spec.azureSubnetID
  std::vector<ipam::Prefix> ranges;          // the carved ranges; none while not carved
};

// What the sweep needs of the controller (Controller::orphanSweepView).
struct OrphanSweepView {
  std::vector<SweptPodSubnet> podSubnets;
  // NICs the NIC pass writes: the Nodes' NICs it has found and the NICs IPBlocks name in
  // status.nic.id. Lower-cased ARM ids (ARM ids compare ignoring case).
  std::set<std::string> nicPassNics;
  // The VMs of the current Nodes (from spec.providerID), lower-cased.
  std::set<std::string> nodeVms;
  // Of the prefixes the view was asked about, those the controller owns (O3).
  std::vector<ipam::Prefix> owned;
};

// ASCII lower case, as ARM ids compare.
std::string armIdKey(std::string_view id);

// A NIC as a sweep read it.
struct SweptNic {
  std::string id;
  std::string vmId;                // empty: attached to no VM
  std::vector<ipam::Prefix> ours;  // prefixes on its ipConfigurations named `vnetipam-*`
};

// A prefix on a NIC: what the grace is kept for.
using OrphanKey = std::pair<std::string, ipam::Prefix>;  // lower-cased NIC id, prefix

struct OrphanSweepInput {
  const OrphanSweepView& view;  // asked about every prefix of `nics`
  std::span<const SweptNic> nics;
  std::map<OrphanKey, Time> firstSeen;  // the previous sweep's output
  std::chrono::seconds grace{120};
  Time now{};
};

struct OrphanPrefix {
  ipam::Prefix prefix;
  std::string podSubnet;  // the PodSubnet whose range holds it
  std::string podSubnetUid;
  Time firstSeen{};

  bool operator==(const OrphanPrefix&) const = default;
};

struct OrphanRemoval {
  std::string nicId;  // as read
  std::string vmId;
  std::vector<OrphanPrefix> prefixes;

  bool operator==(const OrphanRemoval&) const = default;
};

struct OrphanSweepPlan {
  std::vector<OrphanRemoval> removals;  // O6, one per NIC
  std::vector<OrphanRemoval> found;     // O4: first seen by this sweep
  std::map<OrphanKey, Time> firstSeen;  // keep for the next sweep (O4, O5)
  std::optional<Time> recheckAt;        // when the earliest grace ends
};

OrphanSweepPlan planOrphanSweep(const OrphanSweepInput& input);

}  // namespace vnetipam::controller
