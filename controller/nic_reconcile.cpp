// The NIC decision table. One row per case; planNic() handles them in this order and each branch
// is marked with its row. "Desired" is the prefix set of the one PUT this call plans.
//
// clang-format off
// | row | block state         | NIC: its prefix     | PUT    | status / memory         | event
// |-----|---------------------|---------------------|--------|-------------------------|--------
// | N1  | Pending             | absent              | add    | stays Pending           | -
// | N2  | Pending             | present             | keep   | -> Ready                | -
// | N3  | Programmed          | present             | keep   | -> Ready (older writers)| -
// | N4  | Ready               | present             | keep   | -                       | -
// | N5  | Programmed          | absent (vanished)   | add    | -> Pending              | Vanished
// | N6  | Ready               | absent (vanished)   | add    | -> Pending              | Vanished
// | N7  | leaving, drained    | present             | remove | -> Releasing if not yet | -
// | N7d | leaving, draining   | present             | keep   | -> Releasing if not yet | -
// | N8  | leaving             | absent              | -      | remove finalizer        | -
// | N9  | none, managed range | present, new        | keep   | first seen = now        | Found
// | N10 | none, managed range | present, < grace    | keep   | requeue at end of grace | -
// | N11 | none, managed range | present, >= grace   | remove | forget                  | Removed
// | N12 | none, outside       | present             | keep   | - (not ours)            | -
// | N13 | none                | absent, remembered  | -      | forget                  | -
// | N14 | refused (Invalid)   | any                 | never added; owns nothing (N9-N12)| -
// |     |   ... being deleted | any                 | -      | remove finalizer        | -
// | N15 | undecided           | present / absent    | keep / never added | -            | -
// clang-format on
//
// leaving = phase Releasing or deletionTimestamp set. draining = leaving and the block still
// carries vnetipam.io/agent-drain (its agent may still serve pods from it); drained = leaving
// without it (the agent gave it up, or the block predates the finalizer). "managed range" =
// inside some PodSubnet's CIDR (NicInput::managedRanges). refused / undecided: block_trust.h.
// Events: PrefixVanished, UnownedPrefixFound and UnownedPrefixRemoved (NicEventReason).
//
// Why these choices:
//  - A Pending block whose prefix a GET shows on the NIC goes straight to Ready (N2). Programmed
//    is kept in the API for the step between "on the NIC" and "routed" once there is a check of
//    the routes to put there (the N3 row); until then writing it would cost one API write per
//    block and say nothing more than Ready (with 1,000 nodes joining at once the controller is
//    bound by API writes: 3 per block instead of 2 made it 1.5x slower).
//  - A vanished prefix (N5, N6) sends the block back to Pending rather than straight to a re-PUT
//    with the phase kept: the agent then knows the block may not route, and N2/N3 bring it back.
//  - An unowned prefix (N9-N11) is only removed after a grace period: the informer cache can lag a
//    block another replica (or this one) has just created, and removing a live block's prefix cuts
//    off running pods. A prefix outside every PodSubnet (N12) is never ours to remove.
//  - A leaving block that shares its prefix with a block that is not leaving cannot happen (the
//    pool frees a CIDR only when its object is gone); if it did, the prefix is kept (N1-N6 win).
//  - A draining block keeps its prefix (N7d): release must not rest on status.used alone, which
//    the agent writes and may lag; the agent removes vnetipam.io/agent-drain only once it has
//    durably stopped serving the block. A prefix absent already is not added back (N8): a leaving
//    block is never programmed anew, and its nic-release finalizer only promises the prefix off.
//  - A refused block (N14) is never programmed and owns no prefix: if its CIDR is on the NIC and
//    no accepted block has it, it is an unowned prefix like any other. An undecided block (N15:
//    its PodSubnet is not carved yet, as at start-up before Azure answers) keeps a prefix already
//    there, so a restart never takes a live block's prefix off, but gets nothing added.
#include "controller/nic_reconcile.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace vnetipam::controller {

std::string_view toString(NicEventReason reason) {
  switch (reason) {
    case NicEventReason::kPrefixVanished: return "PrefixVanished";
    case NicEventReason::kUnownedPrefixFound: return "UnownedPrefixFound";
    case NicEventReason::kUnownedPrefixRemoved: return "UnownedPrefixRemoved";
  }
  return "Unknown";
}

namespace {

bool inManagedRange(const ipam::Prefix& prefix, std::span<const ipam::Prefix> ranges) {
  return std::ranges::any_of(ranges, [&](const ipam::Prefix& r) { return r.contains(prefix); });
}

}  // namespace

NicPlan planNic(const NicInput& input) {
  using api::BlockPhase;
  NicPlan plan;
  const std::set<ipam::Prefix> on_nic(input.nicPrefixes.begin(), input.nicPrefixes.end());
  std::set<ipam::Prefix> desired = on_nic;
  std::set<ipam::Prefix> owned;  // by any block, leaving or not
  std::set<ipam::Prefix> kept;   // by a block that is not leaving

  for (const NicBlock& block : input.blocks) {
    if (block.trust == Trust::kInvalid) continue;  // N14: owns nothing
    owned.insert(block.cidr);
    // Kept: not leaving, draining (N7d) or undecided (N15).
    if (!block.leaving() || block.agentDrain || block.trust == Trust::kUndecided) {
      kept.insert(block.cidr);
    }
  }

  for (const NicBlock& block : input.blocks) {
    const bool present = on_nic.contains(block.cidr);
    if (block.trust == Trust::kInvalid) {
      // N14
      if (block.deleting) plan.finishedReleasing.push_back(block.name);
      continue;
    }
    if (block.trust == Trust::kUndecided) continue;  // N15
    if (block.leaving()) {
      if (present) {
        // N7, N7d (a draining block is in `kept`)
        if (!kept.contains(block.cidr)) desired.erase(block.cidr);
        if (block.phase != BlockPhase::kReleasing) {
          plan.phaseChanges.push_back({block.name, block.phase, BlockPhase::kReleasing});
        }
      } else {
        // N8
        plan.finishedReleasing.push_back(block.name);
      }
      continue;
    }
    switch (block.phase) {
      case BlockPhase::kPending:
        if (present) {
          // N2
          plan.phaseChanges.push_back({block.name, block.phase, BlockPhase::kReady});
        } else {
          // N1
          desired.insert(block.cidr);
        }
        break;
      case BlockPhase::kProgrammed:
      case BlockPhase::kReady:
        if (present) {
          // N3, N4
          if (block.phase == BlockPhase::kProgrammed) {
            plan.phaseChanges.push_back({block.name, block.phase, BlockPhase::kReady});
          }
        } else {
          // N5, N6
          desired.insert(block.cidr);
          plan.phaseChanges.push_back({block.name, block.phase, BlockPhase::kPending});
          plan.events.push_back({.reason = NicEventReason::kPrefixVanished,
                                 .prefix = block.cidr,
                                 .block = block.name,
                                 .message = fmt::format(
                                     "prefix {} of IPBlock {} ({}) is no longer on the node's "
                                     "NIC; programming it again",
                                     block.cidr.toString(), block.name, api::toString(block.phase)),
                                 .warning = true});
        }
        break;
      case BlockPhase::kReleasing: break;  // leaving, handled above
    }
  }

  for (const ipam::Prefix& prefix : on_nic) {
    if (owned.contains(prefix)) continue;
    // N12
    if (!inManagedRange(prefix, input.managedRanges)) continue;
    const auto seen = input.unownedFirstSeen.find(prefix);
    if (seen == input.unownedFirstSeen.end()) {
      if (input.unownedGrace.count() > 0) {
        // N9
        plan.unownedFirstSeen.emplace(prefix, input.now);
        const Time due = input.now + input.unownedGrace;
        if (!plan.recheckAt || due < *plan.recheckAt) plan.recheckAt = due;
        plan.events.push_back(
            {.reason = NicEventReason::kUnownedPrefixFound,
             .prefix = prefix,
             .block = {},
             .message = fmt::format("prefix {} is on the node's NIC but no IPBlock owns it; "
                                    "removing it in {}s unless a block for it appears",
                                    prefix.toString(), input.unownedGrace.count()),
             .warning = true});
        continue;
      }
      // A zero grace falls through to N11 at once.
    } else if (const Time due = seen->second + input.unownedGrace; due > input.now) {
      // N10
      plan.unownedFirstSeen.emplace(prefix, seen->second);
      if (!plan.recheckAt || due < *plan.recheckAt) plan.recheckAt = due;
      continue;
    }
    // N11
    desired.erase(prefix);
    plan.events.push_back(
        {.reason = NicEventReason::kUnownedPrefixRemoved,
         .prefix = prefix,
         .block = {},
         .message = fmt::format("removing prefix {} from the node's NIC: no IPBlock has owned it "
                                "for {}s",
                                prefix.toString(), input.unownedGrace.count()),
         .warning = true});
  }
  // N13: remembered prefixes no longer on the NIC (or owned again) are simply not carried over.

  plan.desiredPrefixes.assign(desired.begin(), desired.end());
  plan.needsPut = desired != on_nic;
  return plan;
}

NoCloudPlan planWithoutCloud(std::span<const NicBlock> blocks,
                             std::span<const std::string> withFinalizer) {
  NoCloudPlan out;
  for (const NicBlock& b : blocks) {
    if (b.trust != Trust::kAccepted) {
      if (b.deleting) out.finished.push_back(b.name);
    } else if (b.leaving()) {
      out.finished.push_back(b.name);
    } else if (b.phase != api::BlockPhase::kReady) {
      out.toReady.push_back(b.name);
    }
  }
  // A finished block loses the finalizer with its release.
  for (const std::string& name : withFinalizer) {
    if (std::ranges::find(out.finished, name) == out.finished.end()) {
      out.dropFinalizer.push_back(name);
    }
  }
  return out;
}

}  // namespace vnetipam::controller
