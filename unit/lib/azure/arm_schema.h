// The wire facts of the published Azure REST API specification (Azure/azure-rest-api-specs) that
// the ARM client's request bodies and the Azure mock's responses are checked against: for each
// definition the spec file it is in, and for each property its JSON type, enum, bounds and
// whether the spec marks it required. A "closed" definition lists every property the spec
// defines, so a name it does not know (a typo, a field of another api-version) is reported.
//
// These are facts read from the spec, written down as data, not a copy of it: only the
// definitions the project sends or reads, and for open ones only the properties it uses. The
// api-versions are the ones the project pins (lib/azure/network.h): Microsoft.Network 2024-05-01
// and Microsoft.Compute 2023-09-01; and the scale-set NIC reads, which the spec publishes only
// in the 2018-10-01 folder (vmssNetworkInterface.json, whose operations declare the api-version
// enum ["2017-03-30"]) and whose answers are that folder's networkInterface.json definitions,
// recorded here under their own names with the suffix "@2018-10-01".
//
// readOnly (the spec's "readOnly": true) is recorded for the NIC definitions of both
// api-versions and for what they take from network.json (Resource's name and type); the other
// definitions do not record it yet, so a readOnly of false there says nothing.
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

// Spec files, as paths within Azure/azure-rest-api-specs, and the commit of each file the facts
// were read at, where the copy read named one.
//
// 2024-05-01: networkInterface.json at df74858bfda6128d16c98265db2a6f42e89b20ff (a copy at
// 11ae4404233fee8e1f08d3939c1462b644b29936 has the same NIC definitions); network.json at
// ea83a2a3e90ca3f0420e9d0ef55a811523541aba; virtualNetwork.json: commit not known.
inline constexpr std::string_view kNetworkSpec =
    "specification/network/resource-manager/Microsoft.Network/stable/2024-05-01/";
// The definitions recorded from this folder: commit not known. The "default" responses of the
// two operations the mock serves were read in virtualMachine.json (VirtualMachines_Get) at
// 02d62cc0b934606e8d02651822aedbeacb71a77e (the same at df74858bfda6128d16c98265db2a6f42e89b20ff)
// and in virtualMachineScaleSet.json (VirtualMachineScaleSetVMs_Get) at
// 06859dc6c6dcb4d0f0c42e7ed5534d867b70f8dd: both are "$ref":
// "../../../common-types/v1/common.json#/definitions/CloudError" (kComputeCommonSpec), and both
// take their api-version parameter from that file too ("ApiVersionParameter": a required query
// string, no enum).
inline constexpr std::string_view kComputeSpec =
    "specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2023-09-01/";
// Microsoft.Compute's common types, outside the versioned folders (its info.version is "1.0"),
// read at 08272fcc1e9cf3e007cb7a333d777b99ceab7bf1; a copy at
// 23ae785c0b7571422dda749b594fce33656f6471 has the same CloudError, ApiError, ApiErrorBase and
// InnerError (it lacks SubResourceIdNotRequired only).
inline constexpr std::string_view kComputeCommonSpec =
    "specification/compute/resource-manager/Microsoft.Compute/common-types/v1/common.json";
// The 2018-10-01 folder: vmssNetworkInterface.json at c1d515234d187174a30c3f0b394b5a4af2332fd7,
// networkInterface.json at 9ced37cba72f5b0e33dc1387387f63f60d5e5a23 (a copy at
// e6a720e2c3c6680c5b2392f091707f1864fe6490, older by the description typos it still has, does
// not mark NetworkInterfacePropertiesFormat.virtualMachine readOnly; the definitions recorded
// here are otherwise the same in both), network.json at
// cd3fbc92ce5e30e1376cc58c1013054228edd53e, virtualNetwork.json at
// 11bfbb3573025b2ab88b2c9e876b99ee7af49c47.
inline constexpr std::string_view kNetworkSpec2018 =
    "specification/network/resource-manager/Microsoft.Network/stable/2018-10-01/";
// NetworkInterfaces_ListVirtualMachineScaleSetVMNetworkInterfaces (.../virtualMachineScaleSets/
// {ss}/virtualMachines/{i}/networkInterfaces: NetworkInterfaceListResult) and
// NetworkInterfaces_GetVirtualMachineScaleSetNetworkInterface (.../networkInterfaces/{nic}:
// NetworkInterface), both GET only, both "$ref": "./networkInterface.json#/definitions/..." of the
// same folder; their api-version parameter is "enum": ["2017-03-30"] and the file's
// info.version is "2017-03-30".
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
  bool readOnly = false;                // "readOnly": true (see the file comment for where)
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
inline Property readOnly(Property p) {
  p.readOnly = true;
  return p;
}

// ProvisioningState (network.json): "enum": ["Succeeded", "Updating", "Deleting", "Failed"].
inline const std::vector<std::string> kProvisioningStates = {"Succeeded", "Updating", "Deleting",
                                                             "Failed"};

// Every definition the tests check, by name.
inline const std::map<std::string, Definition>& armSchema() {
  static const std::map<std::string, Definition> schema = [] {
    const std::string net(kNetworkSpec);
    const std::string net2018(kNetworkSpec2018);
    const std::string compute(kComputeSpec);
    const std::string computeCommon(kComputeCommonSpec);
    std::vector<Definition> defs = {
        // network.json: Resource {id, name (readOnly), type (readOnly), location, tags {string:
        // string}}, SubResource {id}; NetworkInterface adds extendedLocation, properties and etag
        // (readOnly string). None of them is "required".
        {"NetworkInterface",
         net + "networkInterface.json",
         true,
         {str("id"), readOnly(str("name")), readOnly(str("type")), str("location"),
          obj("tags", "Tags"), obj("extendedLocation"), readOnly(str("etag")),
          obj("properties", "NetworkInterfacePropertiesFormat")}},
        {"Tags", net + "network.json", false, {}},
        // readOnly: virtualMachine, privateEndpoint, tapConfigurations, macAddress, primary,
        // vnetEncryptionSupported, defaultOutboundConnectivityEnabled, hostedWorkloads,
        // dscpConfiguration, resourceGuid and provisioningState (network.json's ProvisioningState
        // is itself "readOnly": true). The rest can be written.
        {"NetworkInterfacePropertiesFormat",
         net + "networkInterface.json",
         true,
         {readOnly(obj("virtualMachine", "SubResource")),
          obj("networkSecurityGroup"),
          readOnly(obj("privateEndpoint")),
          arr("ipConfigurations", "NetworkInterfaceIPConfiguration"),
          readOnly(arr("tapConfigurations")),
          obj("dnsSettings", "NetworkInterfaceDnsSettings"),
          readOnly(str("macAddress")),
          readOnly(boolean("primary")),
          readOnly(boolean("vnetEncryptionSupported")),
          readOnly(boolean("defaultOutboundConnectivityEnabled")),
          boolean("enableAcceleratedNetworking"),
          boolean("disableTcpStateTracking"),
          boolean("enableIPForwarding"),
          readOnly(strings("hostedWorkloads")),
          readOnly(obj("dscpConfiguration", "SubResource")),
          readOnly(str("resourceGuid")),
          readOnly(str("provisioningState", kProvisioningStates)),
          str("workloadType"),
          str("nicType", {"Standard", "Elastic"}),
          obj("privateLinkService"),
          str("migrationPhase", {"None", "Prepare", "Commit", "Abort", "Committed"}),
          str("auxiliaryMode", {"None", "MaxConnections", "Floating", "AcceleratedConnections"}),
          str("auxiliarySku", {"None", "A1", "A2", "A4", "A8"})}},
        // readOnly: appliedDnsServers, internalFqdn, internalDomainNameSuffix.
        {"NetworkInterfaceDnsSettings",
         net + "networkInterface.json",
         true,
         {strings("dnsServers"), readOnly(strings("appliedDnsServers")),
          str("internalDnsNameLabel"), readOnly(str("internalFqdn")),
          readOnly(str("internalDomainNameSuffix"))}},
        // NetworkInterfaceIPConfiguration: SubResource {id} + properties, name, etag (readOnly)
        // and type ("Resource type.", not marked readOnly here).
        {"NetworkInterfaceIPConfiguration",
         net + "networkInterface.json",
         true,
         {str("id"), str("name"), readOnly(str("etag")), str("type"),
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
          // readOnly: provisioningState and privateLinkConnectionProperties only.
          readOnly(str("provisioningState", kProvisioningStates)),
          readOnly(obj("privateLinkConnectionProperties"))}},
        // An ipConfiguration's subnet is a Subnet (virtualNetwork.json); on a NIC only its id.
        {"SubnetReference", net + "virtualNetwork.json", false, {str("id")}},
        {"SubResource", net + "network.json", true, {str("id")}},
        // The Network RP's ListResults: {value, nextLink (string; readOnly in these two)}.
        {"NetworkInterfaceListResult",
         net + "networkInterface.json",
         true,
         {arr("value", "NetworkInterface"), readOnly(str("nextLink"))}},
        {"NetworkInterfaceIPConfigurationListResult",
         net + "networkInterface.json",
         true,
         {arr("value", "NetworkInterfaceIPConfiguration"), readOnly(str("nextLink"))}},

        // The scale-set NIC reads' answers (kVmssNicSpec): the 2018-10-01 networkInterface.json
        // definitions. Older and smaller than 2024-05-01's: no nicType, auxiliaryMode,
        // vnetEncryptionSupported, disableTcpStateTracking, ... on the NIC, no type and no
        // privateIPAddressPrefixLength on an ipConfiguration, no enum on any provisioningState.
        //
        // network.json (2018-10-01): Resource {id, name (readOnly), type (readOnly), location,
        // tags {string: string}}, no extendedLocation; NetworkInterface adds properties and etag
        // (a string, not marked readOnly in this version). None of them is "required".
        {"NetworkInterface@2018-10-01",
         net2018 + "networkInterface.json",
         true,
         {str("id"), readOnly(str("name")), readOnly(str("type")), str("location"), obj("tags"),
          str("etag"), obj("properties", "NetworkInterfacePropertiesFormat@2018-10-01")}},
        // NetworkInterfacePropertiesFormat (2018-10-01), every property: virtualMachine
        // (SubResource, readOnly), networkSecurityGroup, interfaceEndpoint (readOnly),
        // ipConfigurations, tapConfigurations, dnsSettings, macAddress, primary,
        // enableAcceleratedNetworking, enableIPForwarding, hostedWorkloads (strings, readOnly),
        // resourceGuid and provisioningState (a string: "Possible values are: 'Updating',
        // 'Deleting', and 'Failed'", no enum).
        {"NetworkInterfacePropertiesFormat@2018-10-01",
         net2018 + "networkInterface.json",
         true,
         {readOnly(obj("virtualMachine", "SubResource@2018-10-01")), obj("networkSecurityGroup"),
          readOnly(obj("interfaceEndpoint")),
          arr("ipConfigurations", "NetworkInterfaceIPConfiguration@2018-10-01"),
          arr("tapConfigurations"), obj("dnsSettings", "NetworkInterfaceDnsSettings@2018-10-01"),
          str("macAddress"), boolean("primary"), boolean("enableAcceleratedNetworking"),
          boolean("enableIPForwarding"), readOnly(strings("hostedWorkloads")), str("resourceGuid"),
          str("provisioningState")}},
        // The same five as 2024-05-01's, none marked readOnly in this version.
        {"NetworkInterfaceDnsSettings@2018-10-01",
         net2018 + "networkInterface.json",
         true,
         {strings("dnsServers"), strings("appliedDnsServers"), str("internalDnsNameLabel"),
          str("internalFqdn"), str("internalDomainNameSuffix")}},
        // NetworkInterfaceIPConfiguration (2018-10-01): SubResource {id} + properties, name and
        // etag. No type.
        {"NetworkInterfaceIPConfiguration@2018-10-01",
         net2018 + "networkInterface.json",
         true,
         {str("id"), str("name"), str("etag"),
          obj("properties", "NetworkInterfaceIPConfigurationPropertiesFormat@2018-10-01")}},
        // NetworkInterfaceIPConfigurationPropertiesFormat (2018-10-01), every property: the
        // virtualNetworkTaps, applicationGatewayBackendAddressPools,
        // loadBalancerBackendAddressPools and loadBalancerInboundNatRules arrays, privateIPAddress
        // ("Private IP address of the IP configuration."), privateIPAllocationMethod ["Static",
        // "Dynamic"], privateIPAddressVersion ["IPv4", "IPv6"], subnet (a Subnet), primary,
        // publicIPAddress, applicationSecurityGroups and provisioningState (a string, no enum).
        // No privateIPAddressPrefixLength and no gatewayLoadBalancer; none marked readOnly.
        {"NetworkInterfaceIPConfigurationPropertiesFormat@2018-10-01",
         net2018 + "networkInterface.json",
         true,
         {arr("virtualNetworkTaps"), arr("applicationGatewayBackendAddressPools"),
          arr("loadBalancerBackendAddressPools"), arr("loadBalancerInboundNatRules"),
          str("privateIPAddress"), str("privateIPAllocationMethod", {"Static", "Dynamic"}),
          str("privateIPAddressVersion", {"IPv4", "IPv6"}),
          obj("subnet", "SubnetReference@2018-10-01"), boolean("primary"), obj("publicIPAddress"),
          arr("applicationSecurityGroups"), str("provisioningState")}},
        // virtualNetwork.json (2018-10-01): Subnet = SubResource {id} + properties, name, etag;
        // on a NIC only its id.
        {"SubnetReference@2018-10-01", net2018 + "virtualNetwork.json", false, {str("id")}},
        {"SubResource@2018-10-01", net2018 + "network.json", true, {str("id")}},
        // NetworkInterfaceListResult (2018-10-01): value and nextLink (readOnly string).
        {"NetworkInterfaceListResult@2018-10-01",
         net2018 + "networkInterface.json",
         true,
         {arr("value", "NetworkInterface@2018-10-01"), readOnly(str("nextLink"))}},

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

        // Microsoft.Compute's error answer, the "default" response of VirtualMachines_Get and
        // VirtualMachineScaleSetVMs_Get at 2023-09-01 (kComputeSpec): common.json's "CloudError"
        // ("An error response from the Compute service.", "x-ms-external": true), recorded as
        // ComputeCloudError because network.json has a CloudError of its own (above). Its one
        // property is error, an ApiError. Nothing in these four definitions is "required" or
        // "readOnly".
        {"ComputeCloudError", computeCommon, true, {obj("error", "ApiError")}},
        // ApiError ("Api error."), every property: details (an array of ApiErrorBase),
        // innererror (an InnerError; all lower case, where network.json's Error has innerError),
        // code ("The error code."), target ("The target of the particular error.") and message
        // ("The error message."), strings.
        {"ApiError",
         computeCommon,
         true,
         {arr("details", "ApiErrorBase"), obj("innererror", "InnerError"), str("code"),
          str("target"), str("message")}},
        // ApiErrorBase ("Api error base."): code, target and message, strings. No details: unlike
        // network.json's CloudErrorBody, a detail has none of its own.
        {"ApiErrorBase", computeCommon, true, {str("code"), str("target"), str("message")}},
        // InnerError ("Inner error details."): exceptiontype ("The exception type.") and
        // errordetail ("The internal error message or exception dump."), strings.
        {"InnerError", computeCommon, true, {str("exceptiontype"), str("errordetail")}},
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

namespace detail {

inline void findReadOnly(const nlohmann::json& doc, const std::string& definition,
                         const std::string& at, std::vector<std::string>& found) {
  const auto it = armSchema().find(definition);
  if (it == armSchema().end() || !doc.is_object()) return;
  const Definition& def = it->second;
  for (const auto& p : def.properties) {
    if (!doc.contains(p.name)) continue;
    const auto& v = doc[p.name];
    if (p.readOnly) {
      found.push_back(
          fmt::format("{}.{}: readOnly in the spec ({} in {})", at, p.name, def.name, def.file));
      continue;
    }
    if (p.ref.empty()) continue;
    if (p.type == JsonType::kObject) findReadOnly(v, p.ref, at + "." + p.name, found);
    if (p.type == JsonType::kArray && v.is_array()) {
      for (std::size_t i = 0; i < v.size(); ++i)
        findReadOnly(v[i], p.ref, fmt::format("{}.{}[{}]", at, p.name, i), found);
    }
  }
}

}  // namespace detail

// Every property in `doc` that the spec's `definition` (or a definition it refers to) marks
// "readOnly": true, which a client has no business writing; the outermost only (a read-only
// object's own properties are not listed again). Names the definition does not know are left
// to schemaProblems. Empty when the body sets nothing read-only.
inline std::vector<std::string> readOnlyProblems(const nlohmann::json& doc,
                                                 const std::string& definition) {
  std::vector<std::string> found;
  detail::findReadOnly(doc, definition, "$", found);
  return found;
}

}  // namespace vnetipam::azure::testing
