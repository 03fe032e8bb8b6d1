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
// | N16 | held by others      | absent              | never added | quarantined     | -
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
//  - A block whose CIDR another Azure resource holds an address in (N16: accepted, not leaving,
//    its prefix absent, the CIDR in NicInput::heldByOthers) would make Azure refuse the whole PUT,
//    and with it every other block of the node. It is left out of the PUT and quarantined: never
//    Ready, released by the caller, replaced by another block. A prefix of it the NIC shows is ours
//    after all (the hold is stale): N2-N6 apply as ever.
#include "controller/nic_reconcile.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "lib/base/text.h"

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
    if (!present && std::ranges::find(input.heldByOthers, block.cidr) != input.heldByOthers.end()) {
      // N16: whatever its phase, the NIC does not show it and Azure would refuse it.
      plan.quarantined.push_back(block.name);
      if (block.phase != BlockPhase::kPending) {
        plan.phaseChanges.push_back({block.name, block.phase, BlockPhase::kPending});
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

bool addressHeldByOthers(std::string_view azureCode) {
  return azureCode == "PrivateIPAddressInUse" || azureCode == "PrivateIPAddressIsAllocated";
}

namespace {

// `name` appears in `text` as a whole name (not the start of a longer one: "vnetipam-10-0-0-0-2"
// is not named by "vnetipam-10-0-0-0-24").
bool namesWhole(std::string_view text, std::string_view name) {
  const auto partOfName = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
  };
  for (std::size_t at = text.find(name); at != std::string_view::npos;
       at = text.find(name, at + 1)) {
    const std::size_t end = at + name.size();
    if ((at == 0 || !partOfName(text[at - 1])) && (end == text.size() || !partOfName(text[end]))) {
      return true;
    }
  }
  return false;
}

// The IPv4 addresses and prefixes `text` names ("10.0.0.5", "10.0.0.16/28"), as prefixes.
std::vector<ipam::Prefix> namedV4(std::string_view text) {
  std::vector<ipam::Prefix> out;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto isPart = [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '/';
    };
    if (!isPart(text[i])) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < text.size() && isPart(text[end]))
      ++end;
    std::string_view token = text.substr(i, end - i);
    while (!token.empty() && (token.back() == '.' || token.back() == '/'))
      token.remove_suffix(1);
    i = end;
    if (token.find('/') != std::string_view::npos) {
      if (auto p = ipam::Prefix::parse(token); p && p->family() == ipam::Family::kV4) {
        out.push_back(*p);
      }
    } else if (auto a = ipam::IPAddress::parse(token); a && a->family() == ipam::Family::kV4) {
      out.push_back(ipam::Prefix::masked(*a, 32));
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> conflictingBlock(
    std::span<const NicBlock> blocks, std::span<const ipam::Prefix> nicPrefixes,
    std::span<const ipam::Prefix> desired, std::string_view message,
    const std::function<std::string(const ipam::Prefix&)>& ipConfigName) {
  std::vector<const NicBlock*> added;
  for (const NicBlock& b : blocks) {
    if (b.trust != Trust::kAccepted || b.leaving()) continue;
    if (std::ranges::find(nicPrefixes, b.cidr) != nicPrefixes.end()) continue;
    if (std::ranges::find(desired, b.cidr) == desired.end()) continue;
    added.push_back(&b);
  }
  const auto only = [](const std::vector<const NicBlock*>& found) -> std::optional<std::string> {
    if (found.size() == 1) return found.front()->name;
    return std::nullopt;
  };
  const std::string lowered = text::asciiLower(message);
  std::vector<const NicBlock*> named;
  for (const NicBlock* b : added) {
    if (namesWhole(lowered, text::asciiLower(ipConfigName(b->cidr)))) named.push_back(b);
  }
  if (!named.empty()) return only(named);
  const std::vector<ipam::Prefix> addresses = namedV4(message);
  if (!addresses.empty()) {
    std::vector<const NicBlock*> holding;
    for (const NicBlock* b : added) {
      if (std::ranges::all_of(addresses,
                              [&](const ipam::Prefix& a) { return b->cidr.overlaps(a); })) {
        holding.push_back(b);
      }
    }
    // Addresses named, and none or several of the added blocks hold them: the refusal is about
    // something else (an address outside every added block), or names no single one.
    return only(holding);
  }
  return only(added);
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
