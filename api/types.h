// C++ types of the vnetipam.io/v1alpha1 API: PodSubnet and IPBlock (the CRDs in crds/).
//
// The types mirror the wire format field for field; CIDRs stay strings here (parse them with
// ipam::Prefix::parse after validate() has passed) so that a decoded object re-encodes exactly and
// validation can report a bad CIDR as a field error instead of a decode failure.
//
// Unknown fields are preserved, never dropped: every object level (the top level, spec, status,
// nic, each condition) has an `extra` member holding the JSON members this version does not know,
// and metadata keeps the whole original JSON object in `ObjectMeta::raw`. A controller that reads
// an object written by a newer version and writes it back (update) therefore keeps the newer
// fields. For server-side apply, send only the fields your manager owns, not toJson(whole object):
// applying fields you do not own would take their ownership.
//
// Timestamps are RFC 3339 strings exactly as the API server sent them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/constants.h"
#include "lib/ipam/owner.h"

namespace vnetipam::api {

struct ObjectMeta {
  std::string name;
  std::string uid;
  std::string resourceVersion;
  std::int64_t generation = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> finalizers;
  std::optional<std::string> deletionTimestamp;
  std::optional<std::string> creationTimestamp;
  // The metadata object as decoded (managedFields, ownerReferences, namespace, ...). On encoding,
  // the typed fields above overwrite their keys in it; an unset typed field removes its key.
  nlohmann::json raw = nlohmann::json::object();

  bool operator==(const ObjectMeta&) const = default;
};

// metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True", "False" or "Unknown"
  std::string reason;
  std::string message;
  std::string lastTransitionTime;
  std::int64_t observedGeneration = 0;  // 0: not set
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const Condition&) const = default;
};

// Condition types of a PodSubnet.
inline constexpr std::string_view kConditionReady = "Ready";
inline constexpr std::string_view kConditionExhausted = "Exhausted";

// Condition type of an IPBlock: status "True" when the controller refuses the block (its subnet
// label disagrees with spec.podSubnet, it names no PodSubnet, lies outside its PodSubnet, overlaps
// a reserved range or another block, or has the wrong prefix length).
// Such a block is never put in the pool, programmed or served: the agent refuses it too. The
// reason names the rule (controller/block_trust.h).
inline constexpr std::string_view kConditionInvalid = "Invalid";

// Condition type of an IPBlock, written by the controller: "True" once the cloud shows the
// block's prefix on its node's NIC (or at once with no cloud); "False" while programming fails,
// the reason naming the failure (the cloud's error code) and the message quoting it.
inline constexpr std::string_view kConditionProgrammed = "Programmed";

// Condition type of an IPBlock, written by the node agent under its own field manager: "True"
// while every address the agent holds in the block has its pod's host veth and host route;
// "False" (reason Drift) when it finds an allocation whose dataplane is missing or wrong.
inline constexpr std::string_view kConditionDataplaneSynced = "DataplaneSynced";

// Condition type of a Node, written by the controller: "False" while the NIC PUT carrying the
// node's blocks fails (the reason and message say why), "True" once it succeeds again.
inline constexpr std::string_view kNodeConditionNicProgrammed = "VnetIpamNICProgrammed";

// metav1.LabelSelectorRequirement. The operator stays text here (validate() reports an unknown
// one as a field error, as the CRD's enum does).
struct LabelSelectorRequirement {
  std::string key;
  std::string op;  // "operator" on the wire: In, NotIn, Exists or DoesNotExist
  std::vector<std::string> values;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const LabelSelectorRequirement&) const = default;
};

// The operators of a LabelSelectorRequirement.
inline constexpr std::string_view kSelectorOpIn = "In";
inline constexpr std::string_view kSelectorOpNotIn = "NotIn";
inline constexpr std::string_view kSelectorOpExists = "Exists";
inline constexpr std::string_view kSelectorOpDoesNotExist = "DoesNotExist";

// metav1.LabelSelector: every matchLabels entry and every matchExpressions requirement must hold
// (api/selector.h matches one against a node's labels).
struct LabelSelector {
  std::map<std::string, std::string> matchLabels;
  std::vector<LabelSelectorRequirement> matchExpressions;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const LabelSelector&) const = default;
};

struct PodSubnetSpec {
  // Exactly one of the two is set: the ARM id of an Azure VNET subnet, or a plain CIDR.
  std::optional<std::string> azureSubnetID;
  std::optional<std::string> cidr;
  int blockPrefixLength = kDefaultBlockPrefixLength;
  // Only the nodes it selects get blocks; absent selects every node. When present it holds at
  // least one requirement (validate()): the API server prunes the map form of earlier versions,
  // {key: value}, to {}, which must not silently select every node.
  std::optional<LabelSelector> nodeSelector;
  int minFreeIPsPerNode = kDefaultMinFreeIPsPerNode;
  int maxBlocksPerNode = kDefaultMaxBlocksPerNode;
  std::int64_t releaseDelaySeconds = kDefaultReleaseDelaySeconds;
  // Never handed out (gateways, addresses used by VMs). Each inside cidr when cidr is set.
  std::vector<std::string> reservedCIDRs;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const PodSubnetSpec&) const = default;
};

struct PodSubnetStatus {
  std::string
      cidr;  // the subnet's prefix (read from Azure for azureSubnetID); empty: not known yet
  // Every range blocks are carved from, cidr first: an Azure subnet's address prefixes of cidr's
  // family that hold a block, including ones added while the pool is in use (one removed from the
  // Azure subnet leaves the list). Empty: not carved.
  std::vector<std::string> cidrs;
  std::int64_t totalBlocks = 0;
  std::int64_t allocatedBlocks = 0;
  std::int64_t allocatedIPs = 0;
  // Addresses of the Azure subnet other resources hold (other NICs, private endpoints, load
  // balancers), from the VNET's usage list less this PodSubnet's programmed blocks; absent while
  // not known (spec.cidr, --cloud=none, or not read yet).
  std::optional<std::int64_t> foreignAddresses;
  std::vector<Condition> conditions;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const PodSubnetStatus&) const = default;
};

struct PodSubnet {
  ObjectMeta metadata;
  PodSubnetSpec spec;
  PodSubnetStatus status;  // a default-constructed status is encoded as no status at all
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const PodSubnet&) const = default;
};

// Lifecycle of a block: Pending (created) -> Programmed (prefix on the NIC) -> Ready (the agent
// serves it); Releasing once it is being returned. Today's controller writes Ready as soon as a
// GET shows the prefix on the NIC (controller/nic_reconcile.cpp, row N2): Programmed is kept for
// a routes check between the two.
enum class BlockPhase : std::uint8_t { kPending, kProgrammed, kReady, kReleasing };

// Defined with the codec (api/codec.cpp), the only place phases meet text.
std::string_view toString(BlockPhase phase);
std::optional<BlockPhase> parseBlockPhase(std::string_view text);

// The NIC ipConfiguration that carries the block's prefix.
struct NicRef {
  std::string id;               // ARM id of the network interface
  std::string ipConfiguration;  // name of the ipConfiguration on it
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const NicRef&) const = default;
};

struct IPBlockSpec {
  std::string podSubnet;
  std::string cidr;
  std::string nodeName;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const IPBlockSpec&) const = default;
};

// One address the node's agent holds in a block, as it publishes it in status.allocations: the
// owner is the CNI attachment (container ID and interface, what a CNI DEL names) and the pod it
// was allocated for. The wire names are those of the agent's socket protocol
// (node-agent/protocol.h), so one allocation reads the same in the agent's answers, its journal
// and the API.
struct IPAllocation {
  std::string address;  // the IP, as text
  ipam::Owner owner;
  std::string podNamespace;
  std::string podName;
  std::string podUID;  // empty: not known (an allocation recorded before UIDs were)
  // The CNI network (its configuration's "name") the allocation was made for; empty: not known
  // (a plugin that did not name it).
  std::string network;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const IPAllocation&) const = default;
};

// One entry of an IPBlock's api::kReleaseAnnotation: release `address` if, and only if, the
// agent still holds it for exactly this owner (container ID and interface) and that owner is
// provably dead.
struct ReleaseRequest {
  std::string address;
  ipam::Owner owner;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const ReleaseRequest&) const = default;
};

struct IPBlockStatus {
  BlockPhase phase = BlockPhase::kPending;  // an absent phase reads as Pending
  std::int64_t used = 0;                    // written by the agent
  // Written by the agent with used, in the same apply: every address it holds in the block,
  // sorted by address. Empty from an agent of a version that did not publish them (then used
  // is non-zero while this is empty).
  std::vector<IPAllocation> allocations;
  std::int64_t capacity = 0;
  std::optional<NicRef> nic;
  std::vector<Condition> conditions;
  std::optional<std::string> lastTransitionTime;  // of the last phase change
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const IPBlockStatus&) const = default;
};

struct IPBlock {
  ObjectMeta metadata;
  IPBlockSpec spec;
  IPBlockStatus status;  // a default-constructed status is encoded as no status at all
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const IPBlock&) const = default;
};

}  // namespace vnetipam::api
