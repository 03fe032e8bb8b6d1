// The reports of `kubectl ipam`: pure functions from a Snapshot (snapshot.h) to a report, and
// from a report to a table or to JSON. No I/O, no clock (Snapshot::now), so every finding and
// every cause is a unit test (unit/kubectl-ipam/).
//
// The JSON field names are part of the interface (docs/kubectl-ipam.md lists them): add fields,
// never rename one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kubectl-ipam/snapshot.h"
#include "lib/ipam/owner.h"

namespace vnetipam::kubectl_ipam {

// ---- show ----------------------------------------------------------------------------------

struct PoolSummary {
  std::string name;
  std::string cidr;                    // status.cidr, else spec.cidr
  std::int64_t statusTotalBlocks = 0;  // status.totalBlocks (what the controller reports)
  std::int64_t statusAllocatedBlocks = 0;
  std::int64_t blocks = 0;         // IPBlocks counted with spec.podSubnet == name
  std::int64_t readyBlocks = 0;    // of them, phase Ready and not Invalid
  std::int64_t capacity = 0;       // sum of the counted blocks' status.capacity
  std::int64_t used = 0;           // sum of their status.used (what the agents report)
  std::int64_t free = 0;           // capacity - used, never below 0
  std::int64_t pods = 0;           // pod addresses counted inside the blocks
  bool exhausted = false;          // condition Exhausted is True
  std::vector<std::string> nodes;  // nodes holding blocks, sorted
  // status.foreignAddresses: addresses other Azure resources hold in the subnet, which no block
  // can have; nullopt when the controller does not know (spec.cidr, not read yet).
  std::optional<std::int64_t> foreign;
};

std::vector<PoolSummary> showPools(const Snapshot& snapshot);

struct BlockView {
  std::string name;
  std::string podSubnet;
  std::string cidr;
  std::string phase;
  std::int64_t capacity = 0;
  std::int64_t used = 0;
  std::int64_t headroom = 0;  // capacity - used, never below 0
  std::int64_t pods = 0;      // pod addresses counted inside the block
  std::string nic;            // status.nic.id
  // Conditions a human should look at: any that is not in its healthy state, as
  // "Type=Status (Reason): message".
  std::vector<std::string> notes;
};

struct Allocation {
  std::string ns;
  std::string name;
  std::vector<std::string> ips;
  std::string since;  // status.startTime
  std::string phase;
  std::string block;  // the block holding the first address; "" when none does
};

struct NodeReport {
  std::string node;
  bool nodeExists = false;
  std::vector<std::string> nodeNotes;  // the node's VnetIpamNICProgrammed when not True
  std::vector<BlockView> blocks;
  std::vector<Allocation> allocations;  // the node's pods with addresses (not hostNetwork)
};

// The pods of the snapshot on other nodes are ignored.
NodeReport showNode(const Snapshot& snapshot, const std::string& node);

// ---- check ---------------------------------------------------------------------------------

// An address the agent of `node` holds in `block` for an owner that is gone: what
// `kubectl ipam release` asks that agent to release (the owner is the CNI attachment, the pod
// fields say whom it was allocated for).
struct LeakedAllocation {
  std::string block;
  std::string node;
  std::string address;
  ipam::Owner owner;
  std::string podNamespace;
  std::string podName;
  std::string podUID;
  bool operator==(const LeakedAllocation&) const = default;
};

struct Finding {
  std::string check;   // stable id: "pod-ip-outside-blocks", "duplicate-ip", ... (see check())
  std::string object;  // "Pod ns/name", "IPBlock name", "Node name"
  std::string message;
  std::optional<LeakedAllocation> leak;  // set for the allocation-* checks
};

struct CheckReport {
  std::int64_t podsChecked = 0;
  std::int64_t podsSkipped = 0;  // on nodes vnet-ipam does not serve (see check())
  std::int64_t addressesChecked = 0;
  std::int64_t blocksChecked = 0;
  std::int64_t nodesChecked = 0;
  std::vector<Finding> findings;  // sorted by check, then object
  bool clean() const { return findings.empty(); }
};

// How long a block may stay Pending with no Programmed condition before check reports it: the
// controller programs a new block within seconds.
inline constexpr std::int64_t kPendingGraceSeconds = 120;

// Pods are checked on the nodes vnet-ipam serves: selected by a PodSubnet or holding a block.
// The checks, each finding's id:
//   pod-ip-outside-blocks  an address of a running pod lies in no block of its node
//   pod-ip-in-unusable-block  ... in a block of its node that is not Ready, or is Invalid
//   duplicate-ip           one address on two pods
//   block-not-programmed   Programmed=False; or, the condition not reported, a block that is not
//                          Ready after kPendingGraceSeconds, or Ready without status.nic while
//                          other blocks have one (the cluster talks to a cloud)
//   nic-programming-failed the Node's VnetIpamNICProgrammed is False
//   used-mismatch          status.used above the pods counted in the block (suspected leak) or
//                          below the Running ones (undercount); pods not yet Running or
//                          terminating are tolerated either way
//   dataplane-drift        the block's DataplaneSynced is False
//   block-invalid          Invalid=True
//   block-orphaned         the block's node does not exist
// From the allocations the agents publish (IPBlock status.allocations), each a leak that
// `kubectl ipam release` can mend (Finding::leak names it):
//   allocation-pod-gone       its pod does not exist on the block's node, or a pod of that name
//                             with another UID does (recreated)
//   allocation-stale-sandbox  its pod lives, has addresses, and this is not one of them: a sandbox
//                             whose CNI DEL was lost (or, for a moment, a new sandbox whose ADD
//                             the pod's status does not show yet: the agent refuses to release
//                             such a one)
// and the dangerous opposite, which nothing releases:
//   pod-ip-without-allocation an address of a Running pod in a usable block of its node that the
//                             agent does not hold: it may hand it out again. Only for blocks
//                             whose agent publishes allocations (as many as status.used, and
//                             at least one).
CheckReport check(const Snapshot& snapshot);

// ---- why -----------------------------------------------------------------------------------

struct Cause {
  std::string cause;    // stable id, see why()
  std::string summary;  // one line
  std::vector<std::string> details;
};

struct WhyReport {
  std::string pod;   // ns/name
  std::string node;  // spec.nodeName
  bool found = false;
  std::vector<Cause> causes;          // most likely first; empty: nothing found in the API
  std::vector<EventInfo> podEvents;   // Warning events of the pod, newest first
  std::vector<EventInfo> nodeEvents;  // Warning events of the node and its blocks, newest first
};

// The causes, each one's id, in the order they are reported:
//   pod-not-found, not-scheduled, host-network, has-address (each of these alone: nothing else
//   applies), node-not-found, no-podsubnet, block-invalid, nic-programming-failed,
//   podsubnet-exhausted, no-ready-block, blocks-full (every Ready block of the node has used ==
//   capacity; an Exhausted PodSubnet is named), agent-not-ready, cni-error (the pod's
//   FailedCreatePodSandBox text), dataplane-drift.
WhyReport why(const Snapshot& snapshot, const std::string& ns, const std::string& pod);

// ---- output --------------------------------------------------------------------------------

nlohmann::json toJson(const std::vector<PoolSummary>& pools);
nlohmann::json toJson(const NodeReport& report);
nlohmann::json toJson(const CheckReport& report);
// A finding's "allocation" member: what `release --from-report` reads back (release.h).
nlohmann::json leakToJson(const LeakedAllocation& leak);
nlohmann::json toJson(const WhyReport& report);

std::string renderPools(const std::vector<PoolSummary>& pools);
std::string renderNode(const NodeReport& report);
std::string renderCheck(const CheckReport& report);
std::string renderWhy(const WhyReport& report);

// Columns padded to their widest cell, two spaces apart, no trailing blanks.
std::string renderTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace vnetipam::kubectl_ipam
