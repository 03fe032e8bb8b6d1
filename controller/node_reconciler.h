// The Node reconciler: keeps each node's free IPs at or above minFreeIPsPerNode of every PodSubnet
// that selects it (node_blocks.h decides), carving joins (with a cloud: the NIC reconciler
// programs them and creates their IPBlocks) or creating IPBlocks (without one), and releasing the
// blocks the node no longer needs. It also writes the Invalid condition of a refused block, drops
// the agent-drain finalizer of a gone node's blocks, and says on the Node when the cloud can never
// program it. The state it works on is state.h.
//
// A node the cloud can never program (Cloud::refuseNode: a VM of a Uniform scale set) is treated
// as selected by no PodSubnet: it is carved no block, and any block it has (made before the
// refusal existed) is released, so none waits Pending for a NIC that cannot take it. When some
// PodSubnet selects it, its VnetIpamNICProgrammed condition turns False with the refusal's reason
// and message, once, with one Warning Event of that reason; no cloud call is made for it.
#pragma once

#include <optional>
#include <string>

#include "controller/state.h"

namespace vnetipam::controller {

class NodeReconciler {
 public:
  explicit NodeReconciler(ControllerState& state) : state_(state) {}

  // An error string means "retry with backoff".
  std::optional<std::string> reconcile(const std::string& name);

 private:
  // One merge patch leaving every finalizer but kAgentDrainFinalizer (its node is gone).
  std::optional<std::string> removeAgentDrain(const std::string& name, const BlockInfo& info);
  // Writes the Invalid condition of a refused block and emits its Warning event.
  std::optional<std::string> reportInvalid(const std::string& name);

  ControllerState& state_;
};

}  // namespace vnetipam::controller
