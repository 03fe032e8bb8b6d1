// The NIC reconciler: makes each node's NIC carry exactly its blocks' and joins' prefixes (the
// decision table is nic_reconcile.h), creates a join's IPBlock once its prefix is on the NIC,
// moves block phases from what a GET of the NIC showed, holds a CIDR Azure refuses for another
// resource's address, and removes the finalizer of a released block once its prefix is off the
// NIC. The state it works on is state.h.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/nic_conditions.h"
#include "controller/nic_directory.h"
#include "controller/nic_reconcile.h"
#include "controller/state.h"
#include "lib/kube/events.h"

namespace vnetipam::controller {

class NicReconciler {
 public:
  explicit NicReconciler(ControllerState& state);

  // Runs passes over the node's NIC until one needs no other at once. An error string means
  // "retry with backoff".
  std::optional<std::string> reconcile(const std::string& node);

 private:
  // What a pass ends with: nullopt (done) or an error to retry on. A step that may end the pass
  // returns std::optional<PassEnd>: nullopt to go on.
  using PassEnd = std::optional<std::string>;

  // What a pass knows of its node: the state's view (snapshot), and the NIC found on the way.
  struct Pass {
    std::string node;
    kube::ObjectReference ref;
    std::vector<NicBlock> blocks;            // the node's blocks, and its joins as Pending blocks
    std::string blockNicId;                  // status.nic.id of some block of the node
    std::string blockNicProviderID;          // ... and the providerID that block was created for
    std::string blockProviderID;             // the providerID some block was created for
    std::vector<std::string> withFinalizer;  // blocks that carry kNicReleaseFinalizer
    std::vector<ipam::Prefix> managed;       // the ranges of every PodSubnet
    std::map<ipam::Prefix, Time> unowned;    // prefixes of ours on the NIC no block owns
    std::optional<std::string> nicId;
    std::string providerID;
    bool nodeExists = false;
    std::optional<api::Condition> nodeCondition;  // the node's VnetIpamNICProgrammed
    std::map<std::string, std::optional<api::Condition>> programmedOf;  // block -> Programmed
    std::map<ipam::Prefix, SubnetState::ForeignHold> holds;  // CIDRs others hold an address in
    std::map<std::string, Join> joins;  // blocks carved for the node, not created yet
  };
  // What programming the NIC came to: the last plan, the last PUT's error if it failed, and
  // every failed PUT's message (a Node Event each).
  struct Programming {
    NicPlan plan;
    std::optional<azure::Error> putError;
    std::vector<std::string> refusals;
    bool notLeader = false;  // the replica stopped leading before a PUT: nothing was written
  };
  // The joins that programming settled: created now (confirmed), or quarantined (their hold's
  // message, for a Node Event each).
  struct SettledJoins {
    std::vector<std::string> confirmed;
    std::vector<std::string> quarantinedMessages;
    bool putOnlyAddedJoins = false;  // the PUT added joins' prefixes only: no GET after it
  };
  // The status writes and conditions of the pass's blocks and node (nic_conditions.h).
  struct StatusDecision {
    std::vector<QuarantinedBlock> quarantined;
    std::optional<NicPutFailure> failure;
    NicStatusPlan status;
  };

  // One pass: snapshot, find and read the NIC, plan and PUT (program), settle the joins, write
  // what the plan asks for. `again`: run another pass now (after a PUT, read the NIC back).
  std::optional<std::string> nicPass(const std::string& node, bool& again);
  // Under the state's mutex (takes it): what the state knows of the node. Ends the joins of a
  // node that is gone.
  Pass snapshot(const std::string& node);
  // --cloud=none: no NIC; blocks go Ready and released ones finish (planWithoutCloud).
  PassEnd passWithoutCloud(const Pass& pass);
  // Finishes the leaving blocks of a node whose NIC cannot be found any more.
  PassEnd leaveWithoutNic(const Pass& pass, std::string_view why);
  // Finds the node's NIC (remembered, or lookUpNic) and GETs it into `nic`.
  std::optional<PassEnd> readNodeNic(Pass& pass, NicState& nic);
  // Finds the NIC of a node the state knows no NIC of, through its providerID (or a block's).
  // `listed`: it came from a list of the VM's resource group.
  std::optional<PassEnd> lookUpNic(Pass& pass, bool allLeaving, bool& listed);
  // Plans (planNic) and PUTs until a PUT succeeds, fails for good, or is not needed.
  Programming program(Pass& pass, const NicState& nic);
  // Marks the node's joins whose prefix `desired` carries as sent (in the state and the pass).
  void markPutSent(Pass& pass, const std::vector<ipam::Prefix>& desired);
  // Holds block `b`'s CIDR for the other resource whose address in it made Azure refuse the PUT.
  void holdForOthers(Pass& pass, const NicBlock& b, const azure::Error& putError);
  // Which joins are on the NIC now, which go back to the pool; drops the joins from the pass's
  // blocks and phase changes (they have no object to write).
  SettledJoins settleJoins(Pass& pass, const NicState& nic, Programming& programming);
  // The pure status decision of the pass (planNicStatus) and what it is made from.
  StatusDecision decideStatus(const Pass& pass, const NicState& nic,
                              const Programming& programming);
  // The writes: block statuses, finished releases, quarantined blocks, joins' IPBlocks, events.
  PassEnd writeOutcome(const Pass& pass, const NicState& nic, const Programming& programming,
                       const SettledJoins& settled, bool& again);
  // Deletes the blocks the plan quarantined; false when this replica stopped leading.
  bool releaseQuarantined(const Pass& pass, const NicPlan& plan, std::optional<std::string>& error,
                          bool& released);
  // The events of the pass and the node's VnetIpamNICProgrammed condition.
  void report(const Pass& pass, const Programming& programming, const SettledJoins& settled,
              const StatusDecision& decided);
  // One status apply per change (nic_conditions.h). Each apply sends every status field the
  // controller owns (server-side apply removes a field its manager applied before and leaves out
  // now): the phase, its lastTransitionTime, capacity, nic (`nicId` with Programmed/Ready, else the
  // one the block has) and Programmed.
  std::optional<std::string> writeBlockStatus(const std::string& node,
                                              const std::vector<BlockStatusChange>& writes,
                                              const std::string& nicId);
  std::optional<std::string> finishReleasing(const std::vector<std::string>& names);
  // --cloud=none: removes kNicReleaseFinalizer from these blocks (the rule is planWithoutCloud's).
  std::optional<std::string> dropNicFinalizers(const std::vector<std::string>& names);
  // One merge patch leaving info.otherFinalizers; `remember`: fold the answer into the state.
  std::optional<std::string> removeNicFinalizer(const std::string& name, const BlockInfo& info,
                                                bool remember);
  // Under the state's mutex: makes joins of the node's own prefixes on its NIC (`ours`, as a GET
  // showed them) that no block or join of the node owns, when the pool of a PodSubnet selecting the
  // node has the CIDR free or leaked and no IPBlock holds it: the IPBlock a join's PUT was for but
  // that its controller did not live to create. Appends them to `joins` and `blocks`.
  void adoptOwnPrefixesLocked(const std::string& node, std::span<const ipam::Prefix> ours,
                              std::map<std::string, Join>& joins, std::vector<NicBlock>& blocks);
  // Under the state's mutex: ends the holds of heldByOthers that are due (the pool may carve those
  // CIDRs again) and puts the others on the pool (again, should it have been carved anew); returns
  // the CIDRs still held, of every PodSubnet.
  std::map<ipam::Prefix, SubnetState::ForeignHold> foreignHoldsLocked(Time t);

  // The ARM id of the primary NIC of the node's VM (providerID, not refused), and whether it came
  // from a list of the VM's resource group (NicDirectory: the caller checks the NIC is on the VM)
  // rather than from the VM itself. Takes the state's mutex (only to count the nodes that wait).
  struct FoundNic {
    std::string id;
    bool listed = false;
  };
  azure::Result<FoundNic> findNicOfNode(std::string_view providerID);

  ControllerState& state_;
  std::unique_ptr<NicDirectory> nicDirectory_;  // with a cloud
  // Guarded by the state's mutex:
  std::unordered_map<std::string, std::map<ipam::Prefix, Time>> unowned_;  // node -> first seen
  std::set<std::string> goneNics_;  // NICs a GET found gone (armIdKey): not taken from blocks
};

}  // namespace vnetipam::controller
