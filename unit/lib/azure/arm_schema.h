// The wire facts of the published Azure REST API specification (Azure/azure-rest-api-specs) that
// the ARM client's request bodies and the Azure mock's responses are checked against: for each
// definition the spec file it is in, and for each property its JSON type, enum, bounds and
// whether the spec marks it required. A "closed" definition lists every property the spec
// defines, so a name it does not know (a typo, a field of another api-version) is reported.
//
// These are facts read from the spec, written down as data, not a copy of it: only the
// definitions the project sends or reads, and for open ones only the properties it uses. The
// api-versions are the ones the project pins (lib/azure/network.h): Microsoft.Network 2024-05-01,
// Microsoft.Compute 2023-09-01, and the scale-set NIC reads, which the spec publishes only at
// 2017-03-30 (vmssNetworkInterface.json).
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vnetipam::azure::testing {

// Spec files, as paths within Azure/azure-rest-api-specs.
inline constexpr std::string_view kNetworkSpec =
    "specification/network/resource-manager/Microsoft.Network/stable/2024-05-01/";
inline constexpr std::string_view kComputeSpec =
    "specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2023-09-01/";
inline constexpr std::string_view kVmssNicSpec =
    "specification/network/resource-manager/Microsoft.Network/stable/2018-10-01/"
    "vmssNetworkInterface.json";

enum class JsonType { kString, kInteger, kNumber, kBoolean, kArray, kObject };

struct Property {
  std::string name;
  JsonType type = JsonType::kString;
  // For kObject: the definition the value must follow; for kArray: its items' ("" = any).
  std::string ref;
  // For an array of strings (AddressSpace.addressPrefixes): the items' type.
  std::optional<JsonType> itemType;
  std::vector<std::string> enumValues;  // "enum" (case-sensitive, as the spec lists them)
  bool required = false;                // in the definition's "required"
  std::optional<long long> minimum;     // "minimum" / "maximum" of an integer
  std::optional<long long> maximum;
};

struct Definition {
  std::string name;  // "NetworkInterfaceIPConfigurationPropertiesFormat"
  std::string file;  // the spec file that defines it (with the definitions it inherits)
  bool closed = false;
  std::vector<Property> properties;
};

inline Property str(std::string name, std::vector<std::string> enumValues = {}) {
  return {.name = std::move(name), .type = JsonType::kString, .enumValues = std::move(enumValues)};
}
inline Property boolean(std::string name) {
  return {.name = std::move(name), .type = JsonType::kBoolean};
}
inline Property obj(std::string name, std::string ref = "") {
  return {.name = std::move(name), .type = JsonType::kObject, .ref = std::move(ref)};
}
inline Property arr(std::string name, std::string itemRef = "") {
  return {.name = std::move(name), .type = JsonType::kArray, .ref = std::move(itemRef)};
}
inline Property strings(std::string name) {
  return {.name = std::move(name), .type = JsonType::kArray, .itemType = JsonType::kString};
}
inline Property required(Property p) {
  p.required = true;
  return p;
}

// ProvisioningState (network.json): "enum": ["Succeeded", "Updating", "Deleting", "Failed"].
inline const std::vector<std::string> kProvisioningStates = {"Succeeded", "Updating", "Deleting",
                                                             "Failed"};

// Every definition the tests check, by name.
inline const std::map<std::string, Definition>& armSchema() {
  static const std::map<std::string, Definition> schema = [] {
    const std::string net(kNetworkSpec);
    const std::string compute(kComputeSpec);
    std::vector<Definition> defs = {
        // network.json: Resource {id, name (readOnly), type (readOnly), location, tags {string:
        // string}}, SubResource {id}; NetworkInterface adds extendedLocation, properties and etag
        // (readOnly string). None of them is "required".
        {"NetworkInterface",
         net + "networkInterface.json",
         true,
         {str("id"), str("name"), str("type"), str("location"), obj("tags", "Tags"),
          obj("extendedLocation"), str("etag"),
          obj("properties", "NetworkInterfacePropertiesFormat")}},
        {"Tags", net + "network.json", false, {}},
        {"NetworkInterfacePropertiesFormat",
         net + "networkInterface.json",
         true,
         {obj("virtualMachine", "SubResource"),
          obj("networkSecurityGroup"),
          obj("privateEndpoint"),
          arr("ipConfigurations", "NetworkInterfaceIPConfiguration"),
          arr("tapConfigurations"),
          obj("dnsSettings", "NetworkInterfaceDnsSettings"),
          str("macAddress"),
          boolean("primary"),
          boolean("vnetEncryptionSupported"),
          boolean("defaultOutboundConnectivityEnabled"),
          boolean("enableAcceleratedNetworking"),
          boolean("disableTcpStateTracking"),
          boolean("enableIPForwarding"),
          strings("hostedWorkloads"),
          obj("dscpConfiguration", "SubResource"),
          str("resourceGuid"),
          str("provisioningState", kProvisioningStates),
          str("workloadType"),
          str("nicType", {"Standard", "Elastic"}),
          obj("privateLinkService"),
          str("migrationPhase", {"None", "Prepare", "Commit", "Abort", "Committed"}),
          str("auxiliaryMode", {"None", "MaxConnections", "Floating", "AcceleratedConnections"}),
          str("auxiliarySku", {"None", "A1", "A2", "A4", "A8"})}},
        {"NetworkInterfaceDnsSettings",
         net + "networkInterface.json",
         true,
         {strings("dnsServers"), strings("appliedDnsServers"), str("internalDnsNameLabel"),
          str("internalFqdn"), str("internalDomainNameSuffix")}},
        // NetworkInterfaceIPConfiguration: SubResource {id} + properties, name, etag, type.
        {"NetworkInterfaceIPConfiguration",
         net + "networkInterface.json",
         true,
         {str("id"), str("name"), str("etag"), str("type"),
          obj("properties", "NetworkInterfaceIPConfigurationPropertiesFormat")}},
        {"NetworkInterfaceIPConfigurationPropertiesFormat",
         net + "networkInterface.json",
         true,
         {obj("gatewayLoadBalancer", "SubResource"),
          arr("virtualNetworkTaps"),
          arr("applicationGatewayBackendAddressPools"),
          arr("loadBalancerBackendAddressPools"),
          arr("loadBalancerInboundNatRules"),
          // "It can be a single IP address or a CIDR block in the format
          // <address>/<prefix-length>."
          str("privateIPAddress"),
          // "type": "integer", "format": "int32", "minimum": 1, "maximum": 128.
          {.name = "privateIPAddressPrefixLength",
           .type = JsonType::kInteger,
           .minimum = 1,
           .maximum = 128},
          // IPAllocationMethod (network.json): ["Static", "Dynamic"].
          str("privateIPAllocationMethod", {"Static", "Dynamic"}),
          // IPVersion (network.json): ["IPv4", "IPv6"].
          str("privateIPAddressVersion", {"IPv4", "IPv6"}),
          obj("subnet", "SubnetReference"),
          boolean("primary"),
          obj("publicIPAddress"),
          arr("applicationSecurityGroups"),
          str("provisioningState", kProvisioningStates),
          obj("privateLinkConnectionProperties")}},
        // An ipConfiguration's subnet is a Subnet (virtualNetwork.json); on a NIC only its id.
        {"SubnetReference", net + "virtualNetwork.json", false, {str("id")}},
        {"SubResource", net + "network.json", true, {str("id")}},
        // The Network RP's ListResults: {value, nextLink (string)}.
        {"NetworkInterfaceListResult",
         net + "networkInterface.json",
         true,
         {arr("value", "NetworkInterface"), str("nextLink")}},
        {"NetworkInterfaceIPConfigurationListResult",
         net + "networkInterface.json",
         true,
         {arr("value", "NetworkInterfaceIPConfiguration"), str("nextLink")}},
        {"VirtualNetwork",
         net + "virtualNetwork.json",
         true,
         {str("id"), str("name"), str("type"), str("location"), obj("tags", "Tags"),
          obj("extendedLocation"), str("etag"),
          obj("properties", "VirtualNetworkPropertiesFormat")}},
        {"VirtualNetworkPropertiesFormat",
         net + "virtualNetwork.json",
         true,
         {obj("addressSpace", "AddressSpace"),
          obj("dhcpOptions"),
          {.name = "flowTimeoutInMinutes", .type = JsonType::kInteger},
          arr("subnets", "Subnet"),
          arr("virtualNetworkPeerings"),
          str("resourceGuid"),
          str("provisioningState", kProvisioningStates),
          boolean("enableDdosProtection"),
          boolean("enableVmProtection"),
          obj("ddosProtectionPlan", "SubResource"),
          obj("bgpCommunities"),
          obj("encryption"),
          arr("ipAllocations", "SubResource"),
          arr("flowLogs"),
          str("privateEndpointVNetPolicies", {"Disabled", "Basic"})}},
        {"AddressSpace",
         net + "virtualNetwork.json",
         true,
         {strings("addressPrefixes"), arr("ipamPoolPrefixAllocations")}},
        {"Subnet",
         net + "virtualNetwork.json",
         true,
         {str("id"), str("name"), str("etag"), str("type"),
          obj("properties", "SubnetPropertiesFormat")}},
        {"SubnetPropertiesFormat",
         net + "virtualNetwork.json",
         true,
         {str("addressPrefix"), strings("addressPrefixes"), obj("networkSecurityGroup"),
          obj("routeTable"), obj("natGateway", "SubResource"), arr("serviceEndpoints"),
          arr("serviceEndpointPolicies"), arr("privateEndpoints"),
          // IPConfiguration (networkInterface.json): SubResource + properties, name, etag.
          arr("ipConfigurations", "SubResource"), arr("ipConfigurationProfiles"),
          arr("ipAllocations", "SubResource"), arr("resourceNavigationLinks"),
          arr("serviceAssociationLinks"), arr("delegations"), str("purpose"),
          str("provisioningState", kProvisioningStates),
          str("privateEndpointNetworkPolicies",
              {"Enabled", "Disabled", "NetworkSecurityGroupEnabled", "RouteTableEnabled"}),
          str("privateLinkServiceNetworkPolicies", {"Enabled", "Disabled"}),
          arr("applicationGatewayIPConfigurations"),
          str("sharingScope", {"Tenant", "DelegatedServices"}), boolean("defaultOutboundAccess"),
          arr("ipamPoolPrefixAllocations")}},
        {"SubnetListResult",
         net + "virtualNetwork.json",
         true,
         {arr("value", "Subnet"), str("nextLink")}},
        // VirtualNetworkListUsageResult {value, nextLink}; VirtualNetworkUsage: currentValue and
        // limit are "type": "number", "format": "double"; id and unit strings; name a
        // VirtualNetworkUsageName {localizedValue, value}.
        {"VirtualNetworkListUsageResult",
         net + "virtualNetwork.json",
         true,
         {arr("value", "VirtualNetworkUsage"), str("nextLink")}},
        {"VirtualNetworkUsage",
         net + "virtualNetwork.json",
         true,
         {{.name = "currentValue", .type = JsonType::kNumber},
          str("id"),
          {.name = "limit", .type = JsonType::kNumber},
          obj("name", "VirtualNetworkUsageName"),
          str("unit")}},
        {"VirtualNetworkUsageName",
         net + "virtualNetwork.json",
         true,
         {str("localizedValue"), str("value")}},
        // CloudError {error: CloudErrorBody {code, message, target, details: [CloudErrorBody]}}.
        {"CloudError", net + "network.json", true, {obj("error", "CloudErrorBody")}},
        {"CloudErrorBody",
         net + "network.json",
         true,
         {str("code"), str("message"), str("target"), arr("details", "CloudErrorBody")}},
        // AzureAsyncOperationResult: status ["InProgress", "Succeeded", "Failed"] and error, an
        // Error {code, message, target, details, innerError}. Nothing else.
        {"AzureAsyncOperationResult",
         net + "network.json",
         true,
         {str("status", {"InProgress", "Succeeded", "Failed"}), obj("error", "Error")}},
        {"Error",
         net + "network.json",
         true,
         {str("code"), str("message"), str("target"), arr("details"), str("innerError")}},

        // Microsoft.Compute. common-types Resource: id, name, type (readOnly), location
        // ("required"), tags.
        {"VirtualMachine",
         compute + "virtualMachine.json",
         false,
         {str("id"), str("name"), str("type"), required(str("location")), obj("tags", "Tags"),
          obj("properties", "VirtualMachineProperties")}},
        // VirtualMachineProperties (open: it has far more): vmId and provisioningState strings,
        // networkProfile, and virtualMachineScaleSet, the scale set a flexible VM is in.
        {"VirtualMachineProperties",
         compute + "virtualMachine.json",
         false,
         {str("vmId"), str("provisioningState"), obj("networkProfile", "NetworkProfile"),
          obj("virtualMachineScaleSet", "SubResource")}},
        // computeRPCommon.json: NetworkProfile {networkInterfaces, networkApiVersion
        // ["2020-11-01"], networkInterfaceConfigurations}; NetworkInterfaceReference = SubResource
        // + properties {primary, deleteOption ["Delete", "Detach"]}.
        {"NetworkProfile",
         compute + "computeRPCommon.json",
         true,
         {arr("networkInterfaces", "NetworkInterfaceReference"),
          str("networkApiVersion", {"2020-11-01"}), arr("networkInterfaceConfigurations")}},
        {"NetworkInterfaceReference",
         compute + "computeRPCommon.json",
         true,
         {str("id"), obj("properties", "NetworkInterfaceReferenceProperties")}},
        {"NetworkInterfaceReferenceProperties",
         compute + "computeRPCommon.json",
         true,
         {boolean("primary"), str("deleteOption", {"Delete", "Detach"})}},
        // virtualMachineScaleSet.json: VirtualMachineScaleSetVM = Resource + instanceId, sku,
        // properties, plan, resources, zones, identity.
        {"VirtualMachineScaleSetVM",
         compute + "virtualMachineScaleSet.json",
         true,
         {str("id"), str("name"), str("type"), required(str("location")), obj("tags", "Tags"),
          str("instanceId"), obj("sku"), obj("properties", "VirtualMachineScaleSetVMProperties"),
          obj("plan"), arr("resources"), strings("zones"), obj("identity")}},
        {"VirtualMachineScaleSetVMProperties",
         compute + "virtualMachineScaleSet.json",
         false,
         {boolean("latestModelApplied"), str("vmId"), str("provisioningState"),
          obj("networkProfile", "NetworkProfile"),
          obj("networkProfileConfiguration",
              "VirtualMachineScaleSetVMNetworkProfileConfiguration")}},
        {"VirtualMachineScaleSetVMNetworkProfileConfiguration",
         compute + "virtualMachineScaleSet.json",
         true,
         {arr("networkInterfaceConfigurations", "VirtualMachineScaleSetNetworkConfiguration")}},
        {"VirtualMachineScaleSetNetworkConfiguration",
         compute + "virtualMachineScaleSet.json",
         true,
         {required(str("name")),
          obj("properties", "VirtualMachineScaleSetNetworkConfigurationProperties")}},
        {"VirtualMachineScaleSetNetworkConfigurationProperties",
         compute + "virtualMachineScaleSet.json",
         true,
         {boolean("primary"), boolean("enableAcceleratedNetworking"),
          boolean("disableTcpStateTracking"), boolean("enableFpga"),
          obj("networkSecurityGroup", "SubResource"), obj("dnsSettings"),
          required(arr("ipConfigurations", "VirtualMachineScaleSetIPConfiguration")),
          boolean("enableIPForwarding"), str("deleteOption", {"Delete", "Detach"}),
          str("auxiliaryMode", {"None", "AcceleratedConnections", "Floating"}),
          str("auxiliarySku", {"None", "A1", "A2", "A4", "A8"})}},
        {"VirtualMachineScaleSetIPConfiguration",
         compute + "virtualMachineScaleSet.json",
         true,
         {required(str("name")),
          obj("properties", "VirtualMachineScaleSetIPConfigurationProperties")}},
        // Every property of a scale-set VM's ipConfiguration: no privateIPAddress, no
        // privateIPAllocationMethod and no privateIPAddressPrefixLength.
        {"VirtualMachineScaleSetIPConfigurationProperties",
         compute + "virtualMachineScaleSet.json",
         true,
         {obj("subnet", "SubResource"), boolean("primary"), obj("publicIPAddressConfiguration"),
          str("privateIPAddressVersion", {"IPv4", "IPv6"}),
          arr("applicationGatewayBackendAddressPools", "SubResource"),
          arr("applicationSecurityGroups", "SubResource"),
          arr("loadBalancerBackendAddressPools", "SubResource"),
          arr("loadBalancerInboundNatPools", "SubResource")}},
        // VirtualMachineScaleSetVMListResult: "required": ["value"].
        {"VirtualMachineScaleSetVMListResult",
         compute + "virtualMachineScaleSet.json",
         true,
         {required(arr("value", "VirtualMachineScaleSetVM")), str("nextLink")}},
    };
    std::map<std::string, Definition> out;
    for (auto& d : defs)
      out.emplace(d.name, std::move(d));
    return out;
  }();
  return schema;
}

inline bool defines(std::string_view definition, std::string_view property) {
  const auto& d = armSchema().at(std::string(definition));
  for (const auto& p : d.properties) {
    if (p.name == property) return true;
  }
  return false;
}

namespace detail {

inline bool hasType(const nlohmann::json& v, JsonType t) {
  switch (t) {
    case JsonType::kString: return v.is_string();
    case JsonType::kInteger: return v.is_number_integer();
    case JsonType::kNumber: return v.is_number();
    case JsonType::kBoolean: return v.is_boolean();
    case JsonType::kArray: return v.is_array();
    case JsonType::kObject: return v.is_object();
  }
  return false;
}

inline std::string_view typeName(JsonType t) {
  switch (t) {
    case JsonType::kString: return "string";
    case JsonType::kInteger: return "integer";
    case JsonType::kNumber: return "number";
    case JsonType::kBoolean: return "boolean";
    case JsonType::kArray: return "array";
    case JsonType::kObject: return "object";
  }
  return "?";
}

inline void check(const nlohmann::json& doc, const std::string& definition, const std::string& at,
                  std::vector<std::string>& problems) {
  const auto it = armSchema().find(definition);
  if (it == armSchema().end()) {
    problems.push_back(fmt::format("{}: no schema facts for {}", at, definition));
    return;
  }
  const Definition& def = it->second;
  const auto where = [&](std::string_view name) {
    return fmt::format("{}.{} ({} in {})", at, name, def.name, def.file);
  };
  if (!doc.is_object()) {
    problems.push_back(fmt::format("{}: not an object ({} in {})", at, def.name, def.file));
    return;
  }
  for (const auto& p : def.properties) {
    if (!doc.contains(p.name)) {
      if (p.required) problems.push_back(where(p.name) + ": required but missing");
      continue;
    }
    const auto& v = doc[p.name];
    // x-nullable properties (privateIPAddressPrefixLength) may be null on the wire.
    if (v.is_null() && p.name == "privateIPAddressPrefixLength") continue;
    if (!hasType(v, p.type)) {
      problems.push_back(
          fmt::format("{}: {} where the spec says {}", where(p.name), v.dump(), typeName(p.type)));
      continue;
    }
    if (!p.enumValues.empty() && std::find(p.enumValues.begin(), p.enumValues.end(),
                                           v.get<std::string>()) == p.enumValues.end())
      problems.push_back(
          fmt::format("{}: {} is not one of the spec's enum values", where(p.name), v.dump()));
    if (p.type == JsonType::kInteger) {
      const long long n = v.get<long long>();
      if ((p.minimum && n < *p.minimum) || (p.maximum && n > *p.maximum))
        problems.push_back(fmt::format("{}: {} is outside the spec's bounds", where(p.name), n));
    }
    if (p.type == JsonType::kObject && !p.ref.empty()) check(v, p.ref, at + "." + p.name, problems);
    if (p.type == JsonType::kArray) {
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string item = fmt::format("{}.{}[{}]", at, p.name, i);
        if (p.itemType && !hasType(v[i], *p.itemType))
          problems.push_back(fmt::format("{}: {} where the spec says {}", item, v[i].dump(),
                                         typeName(*p.itemType)));
        if (!p.ref.empty()) check(v[i], p.ref, item, problems);
      }
    }
  }
  if (def.closed) {
    for (const auto& [key, _] : doc.items()) {
      if (!defines(def.name, key))
        problems.push_back(fmt::format("{}.{}: the spec's {} has no such property ({})", at, key,
                                       def.name, def.file));
    }
  }
}

}  // namespace detail

// Everything in `doc` that disagrees with the spec's `definition`: names the spec does not
// define (closed definitions), wrong JSON types, values outside an enum or bounds, and missing
// required properties. Empty when it conforms.
inline std::vector<std::string> schemaProblems(const nlohmann::json& doc,
                                               const std::string& definition) {
  std::vector<std::string> problems;
  detail::check(doc, definition, "$", problems);
  return problems;
}

}  // namespace vnetipam::azure::testing
