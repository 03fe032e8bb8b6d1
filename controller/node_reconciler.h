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

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "controller/node_blocks.h"
#include "controller/state.h"

namespace vnetipam::controller {

class NodeReconciler {
 public:
  explicit NodeReconciler(ControllerState& state) : state_(state) {}

  // An error string means "retry with backoff".
  std::optional<std::string> reconcile(const std::string& name);

 private:
  // A block the pass adds: a CIDR it allocated from the PodSubnet's pool, and the block's name.
  struct Create {
    std::string subnet;
    ipam::Prefix cidr;
    std::string blockName;
  };
  // A block the pass releases, while it is still the object `uid`; `why` is for the log.
  struct Delete {
    std::string name;
    std::string uid;
    std::string why;
  };
  // What a pass decides under the state's mutex, for the writes that follow without it.
  struct Plan {
    std::vector<Create> creates;
    std::vector<Delete> deletes;
    std::vector<std::string> reports;       // refused blocks whose condition is not written yet
    std::vector<std::string> subnetChecks;  // undecided blocks naming a PodSubnet not in the cache
    std::vector<std::string> drains;        // leaving blocks of a gone node that keep agent-drain
    std::vector<std::pair<bool, std::string>> notes;  // (shortOfPool?, message) for node events
    std::string providerID;
    std::optional<NodeRefusal> refusal;          // the cloud can never program this node
    bool carvedPoolSelects = false;              // a carved PodSubnet selects it (not refused)
    bool refusedSelected = false;                // ... and some PodSubnet selects it
    std::optional<api::Condition> nicCondition;  // its VnetIpamNICProgrammed
    kube::ObjectReference ref;
  };
  // The node as a pass sees it under the state's mutex, for the parts of planLocked.
  struct NodeView {
    const std::string& name;
    const NodeInfo* info;                     // null: the node is gone
    const std::set<std::string>& blockNames;  // its IPBlocks, of every PodSubnet
    Time now;
  };
  // What the writes of a pass came to.
  struct Outcome {
    std::optional<std::string> firstError;  // the first write that failed (the one returned)
    bool changed = false;  // a block was carved, created or released: the NIC pass has work
    bool again = false;    // a block name was taken: reconcile the node again
    void fail(std::string error) {
      if (!firstError) firstError = std::move(error);
    }
  };

  // ---- the plan, under the state's mutex ----
  // Decides the pass for node `name`: its blocks of every PodSubnet, with the CIDRs of the blocks
  // it adds already taken from the pools, and the chores of its blocks.
  Plan planLocked(const std::string& name);
  // The node's blocks of one PodSubnet: decides them (decideNodeBlocks), allocates the blocks to
  // add from the pool, records the releases, whether the node is short, and when to look again.
  void planSubnetLocked(const NodeView& node, const std::string& subnetName,
                        const api::PodSubnetSpec& spec, Plan& plan);
  // The node's accepted blocks of one PodSubnet as the decision sees them, keeping their
  // emptySince; a block in a reserved range is released (plan.deletes) and leaving.
  std::vector<NodeBlock> acceptedBlocksLocked(const NodeView& node, const std::string& subnetName,
                                              const ipam::BlockPool* pool, Plan& plan);
  // Adds the node's joins of one PodSubnet to `mine`; returns their names.
  std::set<std::string> addJoinsLocked(const std::string& name, const std::string& subnetName,
                                       std::vector<NodeBlock>& mine);
  // Takes up to `count` CIDRs from the pool for new blocks (plan.creates).
  void allocateLocked(const std::string& subnetName, ipam::BlockPool& pool, std::int64_t count,
                      Plan& plan);
  // Keeps the PodSubnet's shortNodes and the node's events up to date with the decision.
  void noteShortfallLocked(const std::string& name, const std::string& subnetName,
                           const NodeBlockPolicy& policy, const NodeBlockDecision& decision,
                           bool carved, Plan& plan);
  // Records the decision's releases (plan.deletes), joins aside (never released); the blocks of
  // a node the cloud refuses (`refusedHere`) give the refusal's reason rather than
  // NodeNotSelected.
  void releaseDecidedLocked(const std::vector<BlockRelease>& releases,
                            const std::set<std::string>& joining, bool refusedHere, Plan& plan);
  // What else the pass does with each block of the node (decideNodeBlockChores).
  void planChoresLocked(const NodeView& node, Plan& plan);

  // ---- the writes, with the mutex not held (taken only to fold what they did into the state) ----
  // Gives the CIDRs the plan allocated back to their pools (not the leader: nothing is written).
  void returnCreates(const std::vector<Create>& creates);
  // With a cloud, starts a join per new block (the NIC pass programs it); without, creates its
  // IPBlock.
  void startJoinsOrCreate(const std::string& name, const Plan& plan, Outcome& outcome);
  // Deletes the IPBlocks the plan releases.
  void releaseBlocks(const std::string& name, const std::vector<Delete>& deletes, Outcome& outcome);
  // GETs the PodSubnet each undecided block names; a 404 refuses the block, to be reported too.
  void checkSubnets(const std::vector<std::string>& blockNames, std::vector<std::string>& reports,
                    Outcome& outcome);
  // Once a GET confirms the Node is gone, removes agent-drain from its leaving blocks.
  void dropAgentDrains(const std::string& name, const std::vector<std::string>& drains,
                       Outcome& outcome);
  // Says on the Node that the cloud can never program it, when some PodSubnet selects it.
  void reportRefusal(const std::string& name, const Plan& plan, Outcome& outcome);
  // Whether the node's first NIC pass is due now; forgets it for a node that is gone.
  bool takeFirstNicPass(const std::string& name, bool carvedPoolSelects);

  // One merge patch leaving every finalizer but kAgentDrainFinalizer (its node is gone).
  std::optional<std::string> removeAgentDrain(const std::string& name, const BlockInfo& info);
  // Writes the Invalid condition of a refused block and emits its Warning event.
  std::optional<std::string> reportInvalid(const std::string& name);

  ControllerState& state_;
};

}  // namespace vnetipam::controller
