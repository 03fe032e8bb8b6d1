// Validation of PodSubnet and IPBlock, shared by the controller and the agent. The rules are the
// ones the CRD enforces with OpenAPI and CEL (crds/*.yaml); a spec that passes here passes there
// and the other way round, except that the CRD alone checks the date-time syntax of timestamps.
// The messages say what would be valid, e.g.
//   spec.cidr: "10.0.0.5/28" is not aligned: did you mean 10.0.0.0/28?
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.h"

namespace vnetipam::api {

struct FieldError {
  std::string path;  // JSON path of the field, like "spec.cidr" or "spec.reservedCIDRs[2]"
  std::string message;

  bool operator==(const FieldError&) const = default;
};

// "spec.cidr: <message>".
std::string toString(const FieldError& error);
// One line for a user: `PodSubnet "pods": spec.cidr: ...; spec.maxBlocksPerNode: ...`.
std::string describe(std::string_view kind, std::string_view name,
                     std::span<const FieldError> errors);

// Each returns every problem found (empty: valid), in field order.
std::vector<FieldError> validate(const PodSubnetSpec& spec);
std::vector<FieldError> validate(const IPBlockSpec& spec);
std::vector<FieldError> validate(const IPBlockStatus& status);
std::vector<FieldError> validate(const PodSubnetStatus& status);
// The spec and status, plus the name: a PodSubnet name is at most kMaxPodSubnetNameLength
// characters; an IPBlock's name is blockName(spec.podSubnet, spec.cidr).
std::vector<FieldError> validate(const PodSubnet& subnet);
std::vector<FieldError> validate(const IPBlock& block);

// validate(updated) plus immutability: a PodSubnet's azureSubnetID, cidr and blockPrefixLength
// (changing them would orphan the blocks carved so far), and all of an IPBlock's spec.
std::vector<FieldError> validateUpdate(const PodSubnetSpec& old, const PodSubnetSpec& updated);
std::vector<FieldError> validateUpdate(const IPBlockSpec& old, const IPBlockSpec& updated);

// Whether text is an ARM subnet id:
// /subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.Network/virtualNetworks/<v>/subnets/<n>
// with the fixed segments compared case-insensitively (ARM ids are case-insensitive) and each
// <...> a non-empty segment without '/'.
bool isAzureSubnetID(std::string_view text);

}  // namespace vnetipam::api
