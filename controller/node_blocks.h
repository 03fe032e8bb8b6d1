// How many blocks one node should hold: the controller's pure per-node decision.
//
// Given a PodSubnet's spec, one node's blocks of that subnet and the time, decideNodeBlocks() says
// how many blocks to add and which (at most one, or all) to release. No I/O and no clock: the
// caller reads the informer caches, passes `now`, then creates or releases IPBlocks.
//
// Rules (each has a test in unit/controller/node_blocks_test.cpp):
//  - free IPs = sum of max(capacity - used, 0) over the node's blocks that are not leaving
//    (leaving = phase Releasing or deletionTimestamp set). Pending and Programmed blocks count, so
//    a block still being programmed is not added a second time.
//  - Add ceil((minFree - free) / blockCapacity) blocks, never letting the node hold more than
//    maxBlocksPerNode blocks. Leaving blocks count against that limit: each still takes an
//    ipConfiguration on the NIC until its prefix is removed.
//  - The pool is shared: at most poolFreeBlocks are added; a node that wanted more is reported
//    short (for the PodSubnet's Exhausted condition and an event).
//  - A node that is gone, or no longer matches the nodeSelector, releases every block.
//  - Only blocks the pool accepted (block_trust.h) are the node's: the caller leaves refused and
//    undecided blocks out, so they are neither capacity nor released.
//  - Releasing a block is deleting its IPBlock (deletionTimestamp set); from then on it is leaving
//    and never counts as free. What happens next (the wiring, controller/*_reconciler.cpp):
//    every IPBlock the controller creates carries vnetipam.io/agent-drain (in the create). The
//    node's agent removes it once the block is being deleted and its journal holds no address in
//    it; only then does the NIC pass take the block's prefix off the NIC (then removes
//    vnetipam.io/nic-release), and only when the object is really gone does its CIDR go back to
//    the pool. So no release rests on status.used (written by the agent) alone, and a block
//    whose agent is slow is leaked, not handed out again. When the block's Node no longer exists
//    (a GET says so) the controller removes agent-drain itself: no agent is left to. A Node object
//    deleted while its kubelet and agent still run is the one case this cannot protect: the
//    agent's pods may keep addresses of a block that is then released. A block without
//    agent-drain (made by an earlier version) is released as before: its prefix comes off at once.
//  - Otherwise, when nothing is added, one "extra" block is released: a block that is not leaving,
//    is empty (used == 0) and has been for at least releaseDelaySeconds, whose removal keeps free
//    >= minFree, and that is not the node's last block. Among several, the most recently created
//    (then the highest CIDR) goes first, so long-lived low blocks stay put. One per decision keeps
//    churn slow: the next decision sees the result of the previous one.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

// Wall-clock time at the resolution of Kubernetes timestamps. Always passed in, never read here.
using Time = std::chrono::sys_seconds;

// The per-node knobs of a PodSubnet spec.
struct NodeBlockPolicy {
  std::int64_t minFreeIPsPerNode = api::kDefaultMinFreeIPsPerNode;
  std::int64_t maxBlocksPerNode = api::kDefaultMaxBlocksPerNode;
  std::chrono::seconds releaseDelay{api::kDefaultReleaseDelaySeconds};
  std::int64_t blockCapacity = 16;  // addresses in one block: 2^(bits - blockPrefixLength)

  // Precondition: spec passed api validation (blockPrefixLength within its family's range).
  // An IPv6 block bigger than 2^62 addresses saturates blockCapacity at 2^62.
  static NodeBlockPolicy fromSpec(const api::PodSubnetSpec& spec, ipam::Family family);
};

// What the decision needs of one IPBlock of the node.
struct NodeBlock {
  std::string name;
  ipam::Prefix cidr;
  api::BlockPhase phase = api::BlockPhase::kPending;
  bool deleting = false;      // metadata.deletionTimestamp is set
  std::int64_t used = 0;      // status.used (the agent's count)
  std::int64_t capacity = 0;  // status.capacity, or the prefix size when status is not yet set
  Time created{};             // metadata.creationTimestamp
  // When used was last seen to become 0; nullopt while used > 0. Keep it with trackEmptySince().
  std::optional<Time> emptySince;

  bool leaving() const { return deleting || phase == api::BlockPhase::kReleasing; }
};

// The caller keeps emptySince per block name across decisions: feed it the previous value, the
// current used and now. A block first seen empty (including after a controller restart) starts
// its delay now, so a restart can only lengthen a release delay, never shorten it.
std::optional<Time> trackEmptySince(std::optional<Time> previous, std::int64_t used, Time now);

enum class NodeState : std::uint8_t {
  kSelected,     // exists and matches the PodSubnet's nodeSelector
  kNotSelected,  // exists but no longer matches the nodeSelector
  kGone,         // deleted
};

enum class ReleaseReason : std::uint8_t {
  kNodeGone,
  kNodeNotSelected,
  kEmptyExtraBlock,
};
std::string_view toString(ReleaseReason reason);

struct BlockRelease {
  std::string name;
  ipam::Prefix cidr;
  ReleaseReason reason;

  bool operator==(const BlockRelease&) const = default;
};

struct NodeBlockDecision {
  std::int64_t freeIPs = 0;      // over the blocks that are not leaving, before this decision
  std::int64_t blocksToAdd = 0;  // create this many new blocks (allocateNext each)
  std::vector<BlockRelease> releases;
  // The node wanted more blocks than the pool had (poolFreeBlocks): the caller sets the
  // PodSubnet's Exhausted condition and emits an event on the node.
  bool shortOfPool = false;
  // The node is below minFree but already holds maxBlocksPerNode blocks: not a pool problem, but
  // worth an event (the PodSubnet's limits are too small for the node's pods).
  bool atMaxBlocks = false;
  // When an empty extra block will become old enough to release: requeue the node then.
  std::optional<Time> recheckAt;
};

struct NodeBlockInput {
  NodeState node = NodeState::kSelected;
  std::span<const NodeBlock> blocks;  // this node's blocks of this PodSubnet, any order
  std::uint64_t poolFreeBlocks = 0;   // BlockPool::freeUnheldCount() now; 0 = pool exhausted
  Time now{};
};

NodeBlockDecision decideNodeBlocks(const NodeBlockPolicy& policy, const NodeBlockInput& input);

// What else one pass of the Node reconciler does with each block of the node, of every PodSubnet,
// besides the counts above. The trust verdict (block_trust.h) comes in as flags.
struct NodeBlockFacts {
  std::string name;
  bool accepted = false;           // the pool holds its CIDR for it
  bool undecided = false;          // not judged yet
  bool refusedUnreported = false;  // refused, and its status has no Invalid condition yet
  bool subnetKnown = true;         // its PodSubnet is in the cache
  bool deleting = false;           // metadata.deletionTimestamp is set
  bool agentDrain = false;         // still carries vnetipam.io/agent-drain
};

struct NodeBlockChores {
  // Write the Invalid condition and its Warning Event.
  std::vector<std::string> reportInvalid;
  // Its PodSubnet is not in the cache and the block was never judged: GET the PodSubnet; a 404
  // refuses the block (UnknownPodSubnet), since it may name a PodSubnet that never existed.
  std::vector<std::string> checkSubnet;
  // An accepted block goes with its PodSubnet: delete it (reason PodSubnetGone).
  std::vector<std::string> releaseSubnetGone;
  // No agent is left to give up a block of a deleted Node: remove agent-drain, once a GET confirms
  // the Node is gone (not only the cache).
  std::vector<std::string> dropAgentDrain;

  bool operator==(const NodeBlockChores&) const = default;
};

NodeBlockChores decideNodeBlockChores(std::span<const NodeBlockFacts> blocks, bool nodeExists);

}  // namespace vnetipam::controller
