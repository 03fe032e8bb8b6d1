// Which IPBlocks the controller trusts: the pure decision.
//
// Anyone with RBAC on ipblocks can create one, and a block decides which addresses a node's pods
// get and which prefix goes on the node's NIC. So the controller takes no block on faith, its own
// included (after a restart it cannot tell them apart): each block is judged against its PodSubnet
// and the blocks the pool already holds, and only an accepted block is occupied in the pool,
// counted as the node's capacity, programmed onto a NIC or set Ready.
//
// Rules, in the order they are checked (each has a test in unit/controller/block_trust_test.cpp);
// the first that fails is the verdict, the condition's reason:
//  - SubnetLabelMismatch: the label vnetipam.io/subnet, when present, names another PodSubnet than
//    spec.podSubnet (spec.podSubnet is what counts; a label that disagrees misleads every
//    selector).
//  - UnknownPodSubnet: no PodSubnet named spec.podSubnet exists (confirmed by a GET, not only the
//    cache, so a block seen just before its PodSubnet is not refused for a watch's lag).
//  - OutsidePodSubnet: spec.cidr is not inside the PodSubnet's prefix (spec.cidr, or the Azure
//    subnet's prefix the pool was carved from).
//  - ReservedRange: spec.cidr overlaps one of the PodSubnet's reservedCIDRs (as they are now) or,
//    for an Azure subnet, an address Azure keeps (the first four and the last).
//  - Overlap: spec.cidr overlaps a block the pool already holds for another IPBlock.
//  - WrongPrefixLength: spec.cidr is not a /blockPrefixLength of the PodSubnet.
// Otherwise the block is accepted. While its PodSubnet is known but not carved yet (Azure not
// read, refused for overlapping another PodSubnet) a block is undecided: it is not counted, not
// programmed and not released, and its prefix, if already on the NIC, stays.
//
// reservedCIDRs are put on a pool only once it holds every block that exists (at the carve: the
// pool is carved without them, its blocks judged, then the ranges put on; later: at each edit of
// the spec). So a block the pool already held when its range became reserved, including every
// block that exists when the pool is carved, is not refused but kept and released by its node
// (reason ReservedRange: it takes no new pods, keeps its pods' addresses until agent-drain, and its
// CIDR is not carved again): a controller that starts after an edit does what a running one does.
// Only a block that appears in a range already reserved is refused by that rule.
//
// Which of two overlapping blocks is the legitimate one: the one the pool already holds. When a
// pool is carved (start-up, or a new PodSubnet), its blocks are judged in order of
// creationTimestamp, then name, so the earliest block wins, the same way on every restart. Because
// a block's name is derived from spec.podSubnet and spec.cidr (the CRD enforces it), two blocks of
// one PodSubnet with the right length can only overlap by having the same CIDR, which the API
// server refuses; the order still decides if that check is ever missing.
//
// A verdict is final for the life of the object: an Invalid block is never accepted later (when
// the block it overlapped goes, it does not take that CIDR: leak rather than reuse), and the
// Invalid condition in its status keeps it refused across restarts. The controller never deletes
// it: the admin does (the controller then removes its own finalizer, vnetipam.io/nic-release).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "controller/node_blocks.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

enum class TrustRule : std::uint8_t {
  kSubnetLabelMismatch,
  kUnknownPodSubnet,
  kOutsidePodSubnet,
  kReservedRange,
  kOverlap,
  kWrongPrefixLength,
};
// The condition reason and event reason: "SubnetLabelMismatch", "UnknownPodSubnet", ...
std::string_view toString(TrustRule rule);

enum class Trust : std::uint8_t {
  kUndecided,  // not judged yet: its PodSubnet is not known or not carved
  kAccepted,   // the pool holds its CIDR for it
  kInvalid,    // refused: never counted, programmed or set Ready; the admin deletes it
};

// What the rules need of the block's PodSubnet, as its pool was carved.
struct TrustPool {
  std::vector<ipam::Prefix> ranges;  // the carved prefixes (BlockPool::ranges)
  int blockPrefixLength = 28;
  std::vector<ipam::Prefix> reserved;  // reservedCIDRs put on the pool (none while carving)
  bool azure = false;                  // carved from an Azure subnet: Azure's addresses are kept
};

enum class SubnetView : std::uint8_t {
  kNotSeen,    // not in the cache: maybe not there, maybe not seen yet
  kAbsent,     // a GET said 404: it does not exist
  kNotCarved,  // exists, its pool is not carved yet
  kCarved,     // exists and `pool` is its pool
};

struct TrustCandidate {
  std::string name;
  std::string podSubnet;                   // spec.podSubnet
  std::optional<std::string> subnetLabel;  // metadata.labels["vnetipam.io/subnet"]
  ipam::Prefix cidr;
  Time created{};
};

struct TrustVerdict {
  Trust trust = Trust::kUndecided;
  TrustRule rule = TrustRule::kUnknownPodSubnet;  // when kInvalid
  std::string message;                            // when kInvalid: names the field and the conflict

  bool operator==(const TrustVerdict&) const = default;
};

// `held`: the CIDRs the pool holds, each for the IPBlock named (every key a /blockPrefixLength of
// the pool's range). `pool` is read only when `subnet` is kCarved.
TrustVerdict judgeBlock(const TrustCandidate& block, SubnetView subnet, const TrustPool* pool,
                        const std::map<ipam::Prefix, std::string>& held);

// The order in which a freshly carved pool judges its blocks: creationTimestamp, then name.
void sortForAdmission(std::vector<TrustCandidate>& blocks);

}  // namespace vnetipam::controller
