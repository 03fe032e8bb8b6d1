// Reconciling one node's NIC with that node's IPBlocks: the controller's pure decision table.
//
// The table, (block state × NIC state) → action, is at the top of nic_reconcile.cpp and the code
// there follows it row by row. In short: every block that is not leaving wants its prefix on the
// NIC; a leaving block wants it off; a prefix no block owns is removed once it has been unowned for
// a grace period; phases follow what the NIC shows.
//
// One call plans one PUT of the NIC with the full desired prefix set (several blocks per PUT), plus
// the status writes and events that go with what the NIC showed. The caller:
//   1. reads the NIC (GET) and the node's IPBlocks of every PodSubnet (informer cache);
//   2. calls planNic();
//   3. if needsPut, PUTs desiredPrefixes (with the NIC's etag) and waits for the async operation;
//   4. writes phaseChanges and removes the finalizer of finishedReleasing (merge patch);
//   5. emits events; stores unownedFirstSeen for the next call; requeues at recheckAt.
// Phase changes are computed from the NIC as read in step 1, never from the PUT in step 3: a block
// is Ready only once a GET has shown its prefix. After a PUT whose outcome is unknown, do not
// remove finalizers; the next GET tells.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.h"
#include "controller/block_trust.h"
#include "controller/node_blocks.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

// What the table needs of one IPBlock on the node.
struct NicBlock {
  std::string name;
  ipam::Prefix cidr;
  api::BlockPhase phase = api::BlockPhase::kPending;
  bool deleting = false;  // metadata.deletionTimestamp is set
  // The controller's verdict (block_trust.h): only an accepted block is programmed.
  Trust trust = Trust::kAccepted;
  // vnetipam.io/agent-drain is still on the block: its agent may still serve pods from it.
  bool agentDrain = false;

  bool leaving() const { return deleting || phase == api::BlockPhase::kReleasing; }
};

struct NicInput {
  // Every IPBlock whose spec.nodeName is this node, of every PodSubnet (a NIC is shared by all).
  std::span<const NicBlock> blocks;
  // The IP prefixes currently on the NIC's ipConfigurations, as the last GET returned them.
  std::span<const ipam::Prefix> nicPrefixes;
  // Prefixes the controller may remove when no block owns them: the CIDRs of the PodSubnets. A
  // prefix outside all of them was put there by someone else and is always kept.
  std::span<const ipam::Prefix> managedRanges;
  // When each unowned managed prefix was first seen on this NIC (the previous call's output).
  std::map<ipam::Prefix, Time> unownedFirstSeen;
  // How long an unowned prefix stays before it is removed. Covers a block created by another
  // replica (or just now) that the informer cache does not show yet.
  std::chrono::seconds unownedGrace{60};
  Time now{};
  // CIDRs in which another Azure resource holds an address: the cloud refused a PUT that carried
  // one of them (addressHeldByOthers, conflictingBlock). A block of such a CIDR whose prefix is not
  // on the NIC is quarantined (N16): left out of the PUT, so the node's other blocks are
  // programmed.
  std::span<const ipam::Prefix> heldByOthers;
};

struct PhaseChange {
  std::string name;
  api::BlockPhase from;
  api::BlockPhase to;

  bool operator==(const PhaseChange&) const = default;
};

enum class NicEventReason : std::uint8_t {
  kPrefixVanished,        // a programmed block's prefix is gone from the NIC: re-programming
  kUnownedPrefixFound,    // a managed prefix on the NIC that no block owns: removed after grace
  kUnownedPrefixRemoved,  // the grace period passed: this PUT removes it
};
std::string_view toString(NicEventReason reason);

struct NicEvent {
  NicEventReason reason;
  ipam::Prefix prefix;
  std::string block;    // the block's name; empty for unowned prefixes
  std::string message;  // human-readable, names the prefix and the block or the grace period
  bool warning = true;  // Kubernetes event type Warning (else Normal)

  bool operator==(const NicEvent&) const = default;
};

struct NicPlan {
  // The NIC's full prefix set after the PUT, sorted. Equals the current set when !needsPut.
  std::vector<ipam::Prefix> desiredPrefixes;
  bool needsPut = false;
  std::vector<PhaseChange> phaseChanges;
  // Leaving blocks whose prefix is off the NIC: remove the vnetipam.io/nic-release finalizer (and
  // delete the object first if it has no deletionTimestamp yet). A refused block is here only
  // once it is being deleted (by someone else: the controller never deletes one).
  std::vector<std::string> finishedReleasing;
  std::vector<NicEvent> events;
  // Keep for the next call (only prefixes still on the NIC and still unowned are kept).
  std::map<ipam::Prefix, Time> unownedFirstSeen;
  // When the earliest unowned prefix's grace ends: requeue the node then.
  std::optional<Time> recheckAt;
  // N16: accepted blocks, not leaving, whose prefix is not on the NIC and whose CIDR another
  // resource holds an address in. Not in desiredPrefixes, never set Ready: the caller writes their
  // Programmed=False condition and releases them (deletes the IPBlock, the ordinary release path),
  // and the node gets another block in their place.
  std::vector<std::string> quarantined;
};

NicPlan planNic(const NicInput& input);

// The cloud refused a NIC PUT because another resource holds an address the PUT asked for:
// Azure's PrivateIPAddressInUse ("IP configuration <ours> is using the same private IP address
// <address> as IP configuration <theirs>") or PrivateIPAddressIsAllocated ("IP configuration
// <ours> is using the private IP address <address> which is already allocated to resource
// <theirs>").
bool addressHeldByOthers(std::string_view azureCode);

// Which block a PUT refused with addressHeldByOthers() was refused for: one of `blocks` the PUT was
// to add (accepted, not leaving, its prefix in `desired` and not in `nicPrefixes`). In order:
//  1. the one whose ipConfiguration name (`ipConfigName`: azure::ipConfigName, which this pure
//     core does not link) the cloud's message names;
//  2. when the message names addresses or prefixes: the one holding every one of them (none, if
//     an address lies outside every block the PUT adds: the refusal is about something else);
//  3. when it names neither: the only one the PUT was to add.
// nullopt when none of these picks exactly one block: the caller then treats the failure as any
// other (every block the PUT was to add stays Pending), never guessing a block that is not it.
std::optional<std::string> conflictingBlock(
    std::span<const NicBlock> blocks, std::span<const ipam::Prefix> nicPrefixes,
    std::span<const ipam::Prefix> desired, std::string_view message,
    const std::function<std::string(const ipam::Prefix&)>& ipConfigName);

// --cloud=none: no NIC to program; accepted blocks go Pending -> Ready, leaving blocks go at once.
//
// The finalizer rule without a cloud: kNicReleaseFinalizer promises a NIC step (the block's prefix
// taken off its node's NIC) before the object may go, and this controller takes none: a leaving
// block is released at once. So no block keeps the finalizer, neither a new one (the Node
// reconciler does not add it) nor one found carrying it (made by an earlier version, or while the
// controller ran with a cloud), which would otherwise outlive every controller and hang the
// deletion of the CRDs once the chart is gone. Removing it is safe because releasing a block here
// never waits for a NIC anyway; a prefix such a block left on a NIC is removed as unowned (after
// the grace) when a controller runs with the cloud again.
//
// Only accepted blocks move: a refused or undecided block is never set Ready, and is never deleted
// here (only its own deletion, by someone else, lets it lose the finalizer).
struct NoCloudPlan {
  std::vector<std::string> toReady;  // set Ready, with Programmed=True (reason NoCloud)
  // Release now: delete the object if it is not being deleted yet, and drop the finalizer.
  std::vector<std::string> finished;
  // Blocks not finished that still carry kNicReleaseFinalizer: drop it.
  std::vector<std::string> dropFinalizer;

  bool operator==(const NoCloudPlan&) const = default;
};

// `withFinalizer`: the blocks that carry vnetipam.io/nic-release.
NoCloudPlan planWithoutCloud(std::span<const NicBlock> blocks,
                             std::span<const std::string> withFinalizer);

}  // namespace vnetipam::controller
