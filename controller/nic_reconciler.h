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

namespace vnetipam::controller {

class NicReconciler {
 public:
  explicit NicReconciler(ControllerState& state);

  // Runs passes over the node's NIC until one needs no other at once. An error string means
  // "retry with backoff".
  std::optional<std::string> reconcile(const std::string& node);

 private:
  std::optional<std::string> nicPass(const std::string& node, bool& again);
  // One status apply per change (nic_conditions.h). Each apply sends every status field the
  // controller owns (server-side apply removes a field its manager applied before and leaves out
  // now): the phase, its lastTransitionTime, capacity, nic (`nicId` with Programmed/Ready, else the
  // one the block has) and Programmed.
  std::optional<std::string> writeBlockStatus(const std::string& node,
                                              const std::vector<BlockStatusChange>& writes,
                                              const std::string& nicId);
  std::optional<std::string> finishReleasing(const std::vector<std::string>& names);
  // --cloud=none: removes kNicReleaseFinalizer from these blocks (the rule is in nicPass).
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
