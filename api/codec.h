// JSON mapping of PodSubnet and IPBlock (nlohmann::json <-> the types in api/types.h).
//
// Decoding checks shape only: JSON types, integer ranges, the phase enum. What the values mean
// (CIDR syntax, alignment, ranges, required fields) is validate()'s job (api/validation.h), so a
// caller can decode anything the API server holds and then report every problem at once.
//
// What a caller may rely on:
// - An absent or null field decodes as its default (the same defaults as the CRD, api/constants.h).
// - Unknown members are kept in the `extra` of their level and encoded again (see api/types.h), so
//   toJson(fromJson(j)) == j for any j whose known fields are present and of the right type, apart
//   from these normalisations: a status equal to the default one (absent, {}, or only zeros and
//   Pending) is left out, a null spec or status field is dropped (null means absent), and so is an
//   empty matchLabels, matchExpressions or values of a label selector, an empty
//   status.allocations of an IPBlock, and an empty podUID of one of its allocations.
// - apiVersion and kind, when present, must be vnetipam.io/v1alpha1 and the kind asked for;
//   toJson always writes them.
// - Every error is an base::Error with code kInvalidArgument whose message names the object and the
//   JSON path: `IPBlock "x": spec.cidr: expected a string, got number`.
#pragma once

#include <nlohmann/json.hpp>

#include "api/types.h"
#include "lib/base/error.h"

namespace vnetipam::api {

template <typename T>
using Result = base::Result<T>;

Result<PodSubnet> podSubnetFromJson(const nlohmann::json& j);
nlohmann::json toJson(const PodSubnet& subnet);

Result<IPBlock> ipBlockFromJson(const nlohmann::json& j);
nlohmann::json toJson(const IPBlock& block);

// The value of api::kReleaseAnnotation: a JSON list of release requests. Decoding refuses
// anything but a list of at most kMaxReleaseRequests objects whose address, containerID and
// ifName are non-empty strings within the lengths of status.allocations (unknown members are
// kept in `extra`); the error names the entry. Encoding writes the list compactly.
Result<std::vector<ReleaseRequest>> releaseRequestsFromAnnotation(std::string_view value);
std::string toAnnotation(const std::vector<ReleaseRequest>& requests);
// "10.240.0.9 (container c1 interface eth0)": how the agent's Events and the tool name a request.
std::string describe(const ReleaseRequest& request);

// The pieces, for callers that build patches or read lists.
Result<ObjectMeta> objectMetaFromJson(const nlohmann::json& j);
nlohmann::json toJson(const ObjectMeta& meta);
nlohmann::json toJson(const Condition& condition);
nlohmann::json toJson(const IPAllocation& allocation);
nlohmann::json toJson(const LabelSelector& selector);
nlohmann::json toJson(const PodSubnetSpec& spec);
nlohmann::json toJson(const PodSubnetStatus& status);
nlohmann::json toJson(const IPBlockSpec& spec);
nlohmann::json toJson(const IPBlockStatus& status);

// Server-side apply bodies. An apply carries only the fields its field manager owns: a field the
// manager applied before and leaves out now is removed, and one it sends it takes over.

// The IPBlock status fields the controller owns (kControllerFieldManager), each sent only when
// set. Never status.used or status.allocations: those are the agent's.
struct IPBlockControllerStatus {
  std::optional<BlockPhase> phase;
  std::optional<std::string> lastTransitionTime;  // of the phase
  std::optional<std::int64_t> capacity;
  std::optional<NicRef> nic;
  std::vector<Condition> conditions;  // the controller's own: Programmed, Invalid

  bool operator==(const IPBlockControllerStatus&) const = default;
};
nlohmann::json ipBlockStatusApply(std::string_view name, const IPBlockControllerStatus& status);
// The whole PodSubnet status (the controller owns all of it).
nlohmann::json podSubnetStatusApply(std::string_view name, const PodSubnetStatus& status);

// A merge patch setting metadata.finalizers to exactly `finalizers`, sent with `resourceVersion` so
// that it fails (409) rather than drop a finalizer added since the object was read.
nlohmann::json finalizersPatch(const std::vector<std::string>& finalizers,
                               std::string_view resourceVersion);

}  // namespace vnetipam::api
