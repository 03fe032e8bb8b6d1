// Every name and number of the vnetipam.io API in one place. The CRD manifests in crds/ repeat
// some of them (defaults, ranges, lengths); unit/api/crd_test.cpp fails if the two disagree.
#pragma once

#include <cstdint>
#include <string_view>

namespace vnetipam::api {

inline constexpr std::string_view kGroup = "vnetipam.io";
inline constexpr std::string_view kVersion = "v1alpha1";
inline constexpr std::string_view kApiVersion = "vnetipam.io/v1alpha1";

inline constexpr std::string_view kPodSubnetKind = "PodSubnet";
inline constexpr std::string_view kPodSubnetPlural = "podsubnets";
inline constexpr std::string_view kPodSubnetShortName = "psn";
inline constexpr std::string_view kIPBlockKind = "IPBlock";
inline constexpr std::string_view kIPBlockPlural = "ipblocks";
inline constexpr std::string_view kIPBlockShortName = "ipb";
// `kubectl get vnetipam` lists both kinds.
inline constexpr std::string_view kCategory = "vnetipam";
// The collections' paths on the API server; an object is "<path>/<name>".
inline constexpr std::string_view kPodSubnetsPath = "/apis/vnetipam.io/v1alpha1/podsubnets";
inline constexpr std::string_view kIPBlocksPath = "/apis/vnetipam.io/v1alpha1/ipblocks";

// Labels on every IPBlock, for label selectors and `kubectl get ipb -l`. A label value is at most
// 63 characters, so a node with a longer name cannot carry kNodeLabel: watch a node's blocks with
// the field selector spec.nodeName=<node> (a selectable field), never with this label.
inline constexpr std::string_view kNodeLabel = "vnetipam.io/node";
inline constexpr std::string_view kSubnetLabel = "vnetipam.io/subnet";
// Keeps an IPBlock until the controller has removed its prefix from the node's NIC. Only with a
// cloud: with --cloud=none there is no NIC, and the controller neither adds it nor keeps it.
inline constexpr std::string_view kNicReleaseFinalizer = "vnetipam.io/nic-release";
// Keeps an IPBlock until the node's agent has given it up: the agent removes it once the block is
// being deleted and its journal holds no address in it (it has durably stopped serving the block
// first). The controller returns a block's CIDR to the pool, and removes its prefix from the NIC,
// only after this finalizer is gone, so no release rests on the agent-written status.used alone.
// The controller removes it itself only when the block's Node no longer exists.
inline constexpr std::string_view kAgentDrainFinalizer = "vnetipam.io/agent-drain";

// Server-side apply field managers. The controller owns spec, status.phase, status.nic,
// status.capacity and status.conditions; the agent owns status.used, status.allocations and the
// DataplaneSynced condition.
inline constexpr std::string_view kControllerFieldManager = "vnet-ipam-controller";
inline constexpr std::string_view kAgentFieldManager = "vnet-ipam-agent";

// PodSubnet spec defaults, applied by the API server (CRD `default:`) and by the decoder here.
// /28 because Azure accepts only /28 prefixes on a NIC ipConfiguration; an IPv6 PodSubnet must set
// blockPrefixLength itself (Azure takes no IPv6 prefix on a NIC, so IPv6 is carved only from cidr).
inline constexpr int kDefaultBlockPrefixLength = 28;
inline constexpr int kDefaultMinFreeIPsPerNode = 8;
inline constexpr int kDefaultMaxBlocksPerNode = 16;
inline constexpr std::int64_t kDefaultReleaseDelaySeconds = 300;

// blockPrefixLength ranges per family. The lower bounds keep a block within what one node's agent
// can serve: its allocator takes at most 16 host bits (lib/ipam/block_allocator.h), an IPv4 /16 or
// an IPv6 /112, 65,536 pods either way. A larger block would be carved and never serve a pod.
// /32 and /128 blocks are allowed: in transparent mode a pod has no network or broadcast address to
// lose, so a block of one address works (tests use it). The length must also be >= the subnet's.
inline constexpr int kMinBlockPrefixLengthV4 = 16;
inline constexpr int kMaxBlockPrefixLengthV4 = 32;
inline constexpr int kMinBlockPrefixLengthV6 = 112;
inline constexpr int kMaxBlockPrefixLengthV6 = 128;
// Azure allows 256 ipConfigurations on a NIC; a block takes one.
inline constexpr int kMaxMaxBlocksPerNode = 256;

// String length limits, in the CRD as maxLength (they also bound the CEL cost estimates).
// 49 = the longest IPv6 text (45, "0000:...:255.255.255.255") plus "/128".
inline constexpr int kMaxCidrLength = 49;
inline constexpr int kMaxReservedCIDRs = 64;
inline constexpr int kMaxAzureSubnetIDLength = 512;
inline constexpr int kMaxDns1123SubdomainLength = 253;
// A PodSubnet name is at most this long so that every block name (name + "-" + at most 43
// characters of mangled IPv6 prefix) stays a valid object name of at most 253 characters.
inline constexpr int kMaxPodSubnetNameLength = 200;
// PodSubnet spec.nodeSelector: matchLabels entries, matchExpressions requirements, values of one
// requirement. A label key is a 253-character DNS prefix, "/" and a 63-character name.
inline constexpr int kMaxNodeSelectorLabels = 32;
inline constexpr int kMaxNodeSelectorExpressions = 32;
inline constexpr int kMaxNodeSelectorValues = 64;
inline constexpr int kMaxLabelKeyLength = 317;
inline constexpr int kMaxLabelValueLength = 63;
inline constexpr int kMaxConditions = 16;
// IPBlock status.allocations: at most one per address of the largest block the agent serves (an
// IPv4 /16: lib/ipam's BlockAllocator takes at most 16 host bits), and its strings as long as the
// agent's socket protocol accepts them (node-agent/protocol.h). 45 is the longest IPv6 text.
inline constexpr int kMaxBlockAllocations = 65536;
inline constexpr int kMaxAddressLength = 45;
inline constexpr int kMaxContainerIDLength = 256;
inline constexpr int kMaxIfNameLength = 15;
inline constexpr int kMaxPodNamespaceLength = 63;
inline constexpr int kMaxPodNameLength = 253;
inline constexpr int kMaxPodUIDLength = 128;
inline constexpr int kMaxNetworkNameLength = 253;

// An annotation the controller sets when it creates an IPBlock whose prefix is already where the
// network routes it: the ARM id of the NIC a PUT has just put the prefix on (--cloud=azure), or
// kProgrammedOnNoCloud when there is no NIC to program (--cloud=none). Such a block is created in
// its final state with one write (a create cannot carry status: status is a subresource), so it has
// no status.phase until its phase first changes; the codec reads it as Ready, with its capacity and
// NIC (ipBlockFromJson). Only the controller writes it: the admission policy allows the agent no
// change of a block's annotations.
inline constexpr std::string_view kProgrammedOnAnnotation = "vnetipam.io/programmed-on";
inline constexpr std::string_view kProgrammedOnNoCloud = "none";

// An annotation on an IPBlock that an admin's `kubectl ipam release` writes (merge patch) to ask
// the block's agent to release leaked addresses: a JSON list of {"address", "containerID",
// "ifName"}. The agent honours an entry only if that owner still holds the address and is
// provably dead (node-agent/release_request.h); it never writes the annotation (the admission
// policy allows it no change of the block but the drain finalizer), so the tool removes its
// entries once the agent has answered. A stale or repeated entry is harmless: its owner check
// fails.
inline constexpr std::string_view kReleaseAnnotation = "vnetipam.io/release";
// At most this many entries in one annotation (the tool asks in batches of this size).
inline constexpr int kMaxReleaseRequests = 256;

}  // namespace vnetipam::api
