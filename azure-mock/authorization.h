// Azure RBAC, as far as one custom role goes: which action an ARM request needs, and whether a
// role definition grants it.
//
// ARM authorizes a request after authenticating it and before the resource provider sees it: the
// caller needs the action for the method on the resource type (GET is ".../read", PUT
// ".../write", DELETE ".../delete"), and a write that links another resource needs that resource's
// linked action too (a NIC whose ipConfiguration names a subnet needs ".../subnets/join/action" on
// it). A refusal is 403 AuthorizationFailed, or LinkedAuthorizationFailed for the linked action,
// and names the action and the scope.
//
// The role is read from a file in the form `az role definition create --role-definition` takes
// ({"Name": ..., "Actions": [...], "NotActions": [...], ...}; keys in any case), so the mock can
// run a controller under exactly the role the install guide tells users to create. Wildcards
// follow Azure's: "*" matches any run of characters, comparisons ignore case. Scopes
// (AssignableScopes) are not modelled: the role holds at every scope.
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace vnetipam::azuremock {

struct RoleDefinition {
  std::string name;
  std::vector<std::string> actions;
  std::vector<std::string> notActions;
};

// The error names the key at fault: `"Actions"[2]: not a string`.
std::expected<RoleDefinition, std::string> parseRoleDefinition(const nlohmann::json& doc);

// Whether the role grants `action`: some Actions pattern matches it and no NotActions pattern
// does.
bool permits(const RoleDefinition& role, std::string_view action);

// The resource types the mock serves, as the handler classifies a request path.
enum class ArmResourceKind {
  kVirtualNetwork,
  kVirtualNetworkUsage,  // the VNET's per-subnet usage list (.../virtualNetworks/{name}/usages)
  kSubnet,               // one subnet or the list of a VNET's subnets
  kNetworkInterface,     // one NIC or the list of a resource group's NICs
  kNicIpConfiguration,   // one ipConfiguration of a NIC or the list of them
  kVirtualMachine,
  kScaleSetVirtualMachine,    // a uniform scale set's VM
                              // (.../virtualMachineScaleSets/{s}/virtualMachines/{i})
  kScaleSetNetworkInterface,  // one NIC of such a VM or the list of them
  kNetworkOperation,          // Microsoft.Network/locations/{location}/operations/{id}
  kNetworkOperationResult,    // Microsoft.Network/locations/{location}/operationResults/{id}
};

// The action a request needs; nullopt for a method the type has no action for (the handler
// answers those 405 anyway).
std::optional<std::string> requiredAction(ArmResourceKind kind, std::string_view method);

// The linked action a NIC PUT needs on each subnet its ipConfigurations name.
inline constexpr std::string_view kSubnetJoinAction =
    "Microsoft.Network/virtualNetworks/subnets/join/action";

// The subnet ids a NIC PUT body links (properties.ipConfigurations[].properties.subnet.id),
// deduplicated, in order of first appearance; empty for a body that is not such a document.
std::vector<std::string> linkedSubnets(const nlohmann::json& nicBody);

}  // namespace vnetipam::azuremock
