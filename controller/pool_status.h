// A PodSubnet's status, computed from its carved BlockPool and its IPBlocks. Pure: the caller
// passes the time used for a condition's lastTransitionTime and writes the result (server-side
// apply of status) only when it differs from what the object has.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "api/types.h"
#include "controller/node_blocks.h"
#include "lib/ipam/block_pool.h"

namespace vnetipam::controller {

// Condition reasons (CamelCase, as metav1.Condition requires).
inline constexpr std::string_view kReasonCarved = "Carved";
inline constexpr std::string_view kReasonNotCarved = "NotCarved";
inline constexpr std::string_view kReasonNoFreeBlocks = "NoFreeBlocks";
inline constexpr std::string_view kReasonBlocksAvailable = "BlocksAvailable";
inline constexpr std::string_view kReasonFullButNoNodeShort = "FullButNoNodeShort";

// A prefix of the PodSubnet's Azure subnet that its pool does not carve, and why.
struct UncarvedPrefix {
  ipam::Prefix prefix;
  std::string why;

  bool operator==(const UncarvedPrefix&) const = default;
};

struct PoolStatusInput {
  // The subnet's carved pool; nullptr while it is not carved (the Azure subnet not read yet, or
  // carving failed: then notCarvedMessage says why, naming the field).
  const ipam::BlockPool* blocks = nullptr;
  std::string notCarvedMessage;
  // status.used of each of this PodSubnet's IPBlocks (summed; leaving blocks included while they
  // exist). Only the counts: a whole IPBlock per block would cost megabytes at 5,000 nodes.
  std::span<const std::int64_t> blockUsed;
  // Nodes whose NodeBlockDecision::shortOfPool was set in the latest pass, sorted; the message
  // names the first few.
  std::span<const std::string> shortNodes;
  // status.foreignAddresses (subnet_usage.h): nullopt while not known.
  std::optional<std::int64_t> foreignAddresses;
  // The Azure subnet's address prefixes the pool does not carve (a dual-stack subnet's IPv6
  // prefix, one too small for a block): the Ready condition's message names each and why.
  std::span<const UncarvedPrefix> uncarvedPrefixes;
  // The accepted IPBlocks that lie in a range spec.reservedCIDRs reserved after the pool held them
  // (BlockPool::isReservedAllocated), sorted: they take no new pods and are released. Not in
  // allocatedBlocks (a reserved range is no part of totalBlocks); the Ready message names them.
  std::span<const std::string> reservedBlocks;
  // spec.reservedCIDRs that lie outside every carved range (an Azure subnet's prefix is read, so
  // the API server cannot check them): they reserve nothing, and the Ready message says so.
  std::span<const ipam::Prefix> reservedOutside;
  std::int64_t generation = 0;  // metadata.generation, for observedGeneration
  Time now{};
};

// `previous` is the object's current status: a condition whose status did not change keeps its
// lastTransitionTime, and unknown status fields (extra) are kept.
api::PodSubnetStatus computePoolStatus(const api::PodSubnetStatus& previous,
                                       const PoolStatusInput& input);

// Why a PodSubnet over `cidr` cannot be carved with a cloud, or nullopt when it can. Azure
// documents a NIC ipConfiguration prefix (privateIPAddressPrefixLength) as a /28 only, so an IPv4
// one: no IPv6 block could go on a NIC, and carving would hand nodes blocks that every NIC PUT
// then fails on (docs/design.md 3.3). `fromAzure`: the CIDR was read from spec.azureSubnetID.
std::optional<std::string> cloudCarveRefusal(const ipam::Prefix& cidr, bool fromAzure);

// Why a prefix of a PodSubnet's Azure subnet cannot be a range of its pool of /blockLength blocks
// of `family`, or nullopt when it can (as far as its family and its size go): a dual-stack
// subnet's IPv6 prefix (for the reason cloudCarveRefusal gives), a prefix smaller than a block.
std::optional<std::string> uncarvableReason(const ipam::Prefix& prefix, ipam::Family family,
                                            int blockLength);

// What the Ready condition says of the Azure subnet's prefixes that are not carved, each with why.
// Empty when `uncarved` is.
std::string uncarvedPrefixesNote(std::span<const UncarvedPrefix> uncarved);

// The addresses of `blocks` blocks of `blockSize` addresses each (the pool's total IPs), saturating
// at 2^62 as prefixSize() does: an IPv6 pool of /64 blocks holds more than an int64 can count.
std::int64_t poolAddresses(std::int64_t blocks, std::int64_t blockSize);

}  // namespace vnetipam::controller
