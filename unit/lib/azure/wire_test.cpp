// Wire fidelity of what the ARM client sends: every request body lib/azure/network builds is
// checked against the field names, types, enums and bounds of the published Microsoft.Network
// spec (the facts, with their spec files, are in arm_schema.h). The bodies come from the real
// code path (NetworkClient::setNicPrefixes over a scripted transport), not from a copy of it.
#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lib/azure/network.h"
#include "unit/lib/azure/arm_fixture.h"
#include "unit/lib/azure/arm_schema.h"

namespace vnetipam::azure {
namespace {

using nlohmann::json;
using testing::readOnlyProblems;
using testing::schemaProblems;

constexpr std::string_view kRg = "/subscriptions/subid/resourceGroups/rg1";
const std::string kNicId =
    std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces/test-nic";
const std::string kSubnetId =
    std::string(kRg) + "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/default";

// A NIC as Azure returns it, with the fields of the spec's example NetworkInterfaceGet.json
// (2024-05-01): among them several this project never models, which a PUT must send back as
// they were.
json azureNic(std::string_view etag, json extraConfigs = json::array()) {
  json configs = json::array(
      {{{"name", "ipconfig1"},
        {"id", kNicId + "/ipConfigurations/ipconfig1"},
        {"etag", etag},
        {"type", "Microsoft.Network/networkInterfaces/ipConfigurations"},
        {"properties",
         {{"provisioningState", "Succeeded"},
          {"privateIPAddress", "172.20.2.4"},
          {"privateIPAllocationMethod", "Dynamic"},
          {"publicIPAddress",
           {{"id", std::string(kRg) + "/providers/Microsoft.Network/publicIPAddresses/test-ip"}}},
          {"subnet", {{"id", kSubnetId}}},
          {"primary", true},
          {"privateIPAddressVersion", "IPv4"}}}}});
  for (auto& c : extraConfigs)
    configs.push_back(c);
  return {{"name", "test-nic"},
          {"id", kNicId},
          {"etag", etag},
          {"type", "Microsoft.Network/networkInterfaces"},
          {"location", "eastus"},
          {"tags", {{"team", "net"}}},
          {"properties",
           {{"provisioningState", "Succeeded"},
            {"resourceGuid", "9a1f2bd6-c5b0-4d3c-9f2a-0d2e6a4c8b11"},
            {"ipConfigurations", configs},
            {"dnsSettings",
             {{"dnsServers", json::array()},
              {"appliedDnsServers", json::array()},
              {"internalDomainNameSuffix", "test.bx.internal.cloudapp.net"}}},
            {"macAddress", "00-0D-3A-1B-C7-21"},
            {"enableAcceleratedNetworking", true},
            {"vnetEncryptionSupported", false},
            {"enableIPForwarding", false},
            {"disableTcpStateTracking", true},
            {"networkSecurityGroup",
             {{"id", std::string(kRg) + "/providers/Microsoft.Network/networkSecurityGroups/nsg"}}},
            {"primary", true},
            {"virtualMachine",
             {{"id", std::string(kRg) + "/providers/Microsoft.Compute/virtualMachines/vm1"}}},
            {"tapConfigurations", json::array()},
            {"hostedWorkloads", json::array()},
            {"nicType", "Standard"},
            {"auxiliaryMode", "None"},
            {"auxiliarySku", "None"}}}};
}

// Answers by what is asked, not in a scripted order, so the tests hold whatever reads the
// client makes around its PUT: a GET of the NIC gets `nic`, a PUT is recorded and accepted as a
// long-running operation, and the operation's poll says Succeeded.
class ArmByRequest final : public http::testing::SendOnlyTransport {
 public:
  json nic;
  std::vector<json> puts;

  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    std::lock_guard lock(mutex_);
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (path.find("/operations/") != std::string::npos)
      return http::HttpResponse{.status = 200, .headers = {}, .body = R"({"status":"Succeeded"})"};
    if (request.method == "PUT") {
      puts.push_back(json::parse(request.body));
      return http::HttpResponse{
          .status = 200,
          .headers = {{"Azure-AsyncOperation",
                       "https://management.azure.com/subscriptions/subid/providers/"
                       "Microsoft.Network/locations/eastus/operations/op1?api-version=2024-05-01"},
                      {"Retry-After", "1"}},
          .body = request.body};
    }
    return http::HttpResponse{.status = 200, .headers = {}, .body = nic.dump()};
  }

 private:
  std::mutex mutex_;
};

class RequestWireTest : public testing::NetworkClientFixture<ArmByRequest> {
 protected:
  // Runs setNicPrefixes against `current` and returns the body of the one PUT it sent.
  json putBodyFor(const json& current, const std::vector<ipam::Prefix>& desired) {
    transport_.nic = current;
    auto change = network_.setNicPrefixes(kNicId, desired);
    EXPECT_TRUE(change.has_value()) << change.error().message;
    EXPECT_EQ(transport_.puts.size(), 1u);
    return transport_.puts.empty() ? json() : transport_.puts.front();
  }
};

ipam::Prefix prefix(std::string_view text) { return ipam::Prefix::parse(text).value(); }

TEST(ArmSchemaTest, FlagsWhatTheSpecDoesNotAllow) {
  // The checks themselves: each of these bodies breaks one spec fact.
  const json good = {{"name", "c"},
                     {"properties",
                      {{"privateIPAddress", "10.0.1.0/28"},
                       {"privateIPAddressPrefixLength", 28},
                       {"privateIPAllocationMethod", "Static"},
                       {"subnet", {{"id", kSubnetId}}}}}};
  EXPECT_TRUE(schemaProblems(good, "NetworkInterfaceIPConfiguration").empty());
  const auto broken = [&](const std::string& key, const json& value) {
    json b = good;
    b["properties"][key] = value;
    return schemaProblems(b, "NetworkInterfaceIPConfiguration");
  };
  // Field names are case-sensitive: the spec defines privateIPAddressPrefixLength only.
  EXPECT_EQ(broken("privateIpAddressPrefixLength", 28).size(), 1u);
  EXPECT_EQ(broken("privateIPAddressPrefixLength", "28").size(), 1u) << "int32, not a string";
  EXPECT_EQ(broken("privateIPAddressPrefixLength", 0).size(), 1u) << "minimum 1";
  EXPECT_EQ(broken("privateIPAddressPrefixLength", 129).size(), 1u) << "maximum 128";
  EXPECT_EQ(broken("privateIPAllocationMethod", "static").size(), 1u) << "IPAllocationMethod";
  EXPECT_EQ(broken("privateIPAddressVersion", "v4").size(), 1u) << "IPVersion";
  EXPECT_EQ(broken("primary", "true").size(), 1u);
  // Required: a scale-set ipConfiguration must have a name.
  EXPECT_EQ(
      schemaProblems(json{{"properties", json::object()}}, "VirtualMachineScaleSetIPConfiguration")
          .size(),
      1u);
}

TEST(ArmSchemaTest, FindsWhatTheSpecMarksReadOnly) {
  // networkInterface.json (2024-05-01): an ipConfiguration's etag, its provisioningState and
  // privateLinkConnectionProperties are "readOnly": true; its name, type, id and the address
  // fields are not.
  const json writable = {{"name", "c"},
                         {"id", kNicId + "/ipConfigurations/c"},
                         {"type", "Microsoft.Network/networkInterfaces/ipConfigurations"},
                         {"properties",
                          {{"privateIPAddress", "10.0.1.0/28"},
                           {"privateIPAddressPrefixLength", 28},
                           {"privateIPAllocationMethod", "Static"},
                           {"privateIPAddressVersion", "IPv4"},
                           {"primary", false},
                           {"subnet", {{"id", kSubnetId}}}}}};
  EXPECT_TRUE(readOnlyProblems(writable, "NetworkInterfaceIPConfiguration").empty());
  json read = writable;
  read["etag"] = "W/\"1\"";
  read["properties"]["provisioningState"] = "Succeeded";
  read["properties"]["privateLinkConnectionProperties"] = {{"groupId", "g"}};
  const auto found = readOnlyProblems(read, "NetworkInterfaceIPConfiguration");
  ASSERT_EQ(found.size(), 3u) << ::testing::PrintToString(found);
  EXPECT_TRUE(found[0].starts_with("$.etag: readOnly")) << found[0];
  EXPECT_TRUE(found[1].starts_with("$.properties.provisioningState: readOnly")) << found[1];
  EXPECT_TRUE(found[2].starts_with("$.properties.privateLinkConnectionProperties: readOnly"))
      << found[2];
  // A whole NIC as Azure returns it carries many: the Resource's name and type, the etag, and
  // among its properties (NetworkInterfacePropertiesFormat) macAddress, resourceGuid,
  // provisioningState, virtualMachine, primary, ...; and in its dnsSettings
  // internalDomainNameSuffix and appliedDnsServers.
  const auto nic = readOnlyProblems(azureNic("W/\"1\""), "NetworkInterface");
  for (const char* path :
       {"$.name", "$.type", "$.etag", "$.properties.macAddress", "$.properties.resourceGuid",
        "$.properties.provisioningState", "$.properties.virtualMachine", "$.properties.primary",
        "$.properties.dnsSettings.internalDomainNameSuffix",
        "$.properties.dnsSettings.appliedDnsServers", "$.properties.ipConfigurations[0].etag",
        "$.properties.ipConfigurations[0].properties.provisioningState"}) {
    EXPECT_TRUE(std::ranges::any_of(
        nic, [&](const std::string& p) { return p.starts_with(std::string(path) + ": "); }))
        << path << " in " << ::testing::PrintToString(nic);
  }
  // What may be written is not reported.
  for (const char* path : {"$.id", "$.location", "$.tags", "$.properties.enableIPForwarding",
                           "$.properties.networkSecurityGroup", "$.properties.nicType",
                           "$.properties.ipConfigurations[0].name"}) {
    EXPECT_FALSE(std::ranges::any_of(nic, [&](const std::string& p) {
      return p.starts_with(std::string(path) + ": ");
    })) << path;
  }
}

TEST(ArmSchemaTest, AScaleSetVmIpConfigurationCannotCarryAPrefix) {
  // virtualMachineScaleSet.json (2023-09-01): VirtualMachineScaleSetIPConfigurationProperties
  // defines subnet, primary, publicIPAddressConfiguration, privateIPAddressVersion and the pool
  // and group references; not privateIPAddress, privateIPAllocationMethod or
  // privateIPAddressPrefixLength. A uniform scale-set VM's NIC can therefore not be given a
  // prefix through its networkProfileConfiguration.
  using testing::defines;
  EXPECT_TRUE(defines("VirtualMachineScaleSetIPConfigurationProperties", "subnet"));
  EXPECT_FALSE(
      defines("VirtualMachineScaleSetIPConfigurationProperties", "privateIPAddressPrefixLength"));
  EXPECT_FALSE(defines("VirtualMachineScaleSetIPConfigurationProperties", "privateIPAddress"));
  EXPECT_TRUE(
      defines("NetworkInterfaceIPConfigurationPropertiesFormat", "privateIPAddressPrefixLength"));
  const json withPrefix = {
      {"name", "ipconfig1"},
      {"properties", {{"subnet", {{"id", kSubnetId}}}, {"privateIPAddressPrefixLength", 28}}}};
  EXPECT_FALSE(schemaProblems(withPrefix, "VirtualMachineScaleSetIPConfiguration").empty());
}

TEST_F(RequestWireTest, TheNicPutBodyFollowsTheSpec) {
  const json body = putBodyFor(azureNic("W/\"1\""), {prefix("172.20.2.16/28")});
  const auto problems = schemaProblems(body, "NetworkInterface");
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  // The added ipConfiguration: privateIPAddress in CIDR form (the spec: "a single IP address or
  // a CIDR block in the format <address>/<prefix-length>"), privateIPAddressPrefixLength an
  // int32 in 1..128, privateIPAllocationMethod "Static" (IPAllocationMethod).
  const json& added = body["properties"]["ipConfigurations"][1];
  EXPECT_EQ(added["name"], "vnetipam-172-20-2-16-28");
  EXPECT_EQ(added["properties"]["privateIPAddress"], "172.20.2.16/28");
  EXPECT_EQ(added["properties"]["privateIPAddressPrefixLength"], 28);
  EXPECT_TRUE(added["properties"]["privateIPAddressPrefixLength"].is_number_integer());
  EXPECT_EQ(added["properties"]["privateIPAllocationMethod"], "Static");
  EXPECT_EQ(added["properties"]["privateIPAddressVersion"], "IPv4");
  EXPECT_EQ(added["properties"]["subnet"]["id"], kSubnetId);
  // A PUT replaces the whole NIC: what the project does not model goes back unchanged.
  const json before = azureNic("W/\"1\"");
  for (const char* key : {"networkSecurityGroup", "dnsSettings", "disableTcpStateTracking",
                          "enableAcceleratedNetworking", "auxiliaryMode"})
    EXPECT_EQ(body["properties"][key], before["properties"][key]) << key;
  EXPECT_EQ(body["tags"], before["tags"]);
  EXPECT_EQ(body["properties"]["ipConfigurations"][0], before["properties"]["ipConfigurations"][0]);
}

TEST_F(RequestWireTest, AnIpv6PrefixBodyFollowsTheSpec) {
  const json body = putBodyFor(azureNic("W/\"1\""), {prefix("fd00:10:240::/80")});
  const auto problems = schemaProblems(body, "NetworkInterface");
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  const json& added = body["properties"]["ipConfigurations"][1];
  EXPECT_EQ(added["properties"]["privateIPAddressVersion"], "IPv6");
  EXPECT_EQ(added["properties"]["privateIPAddressPrefixLength"], 80);
}

// The ipConfigurations the client writes itself (the vnetipam-* entries it adds, for an IPv4 and
// an IPv6 prefix) set nothing the spec marks readOnly. The rest of the body is the NIC as read,
// read-only fields included, which ARM ignores in a PUT: only what the client adds is checked.
TEST_F(RequestWireTest, TheIpConfigurationsTheClientAddsSetNoReadOnlyProperty) {
  const json before = azureNic("W/\"1\"");
  const json body = putBodyFor(before, {prefix("172.20.2.16/28"), prefix("fd00:10:240::/80")});
  const json& configs = body["properties"]["ipConfigurations"];
  std::vector<std::string> readNames;
  for (const auto& c : before["properties"]["ipConfigurations"])
    readNames.push_back(c["name"].get<std::string>());
  int added = 0;
  for (const auto& config : configs) {
    const std::string name = config.value("name", "");
    if (std::ranges::find(readNames, name) != readNames.end()) continue;
    ++added;
    EXPECT_TRUE(name.starts_with("vnetipam-")) << name;
    const auto found = readOnlyProblems(config, "NetworkInterfaceIPConfiguration");
    EXPECT_TRUE(found.empty()) << name << ": " << ::testing::PrintToString(found);
  }
  EXPECT_EQ(added, 2);
  // The ipConfiguration the client only sends back keeps what it read, read-only fields and all.
  EXPECT_EQ(configs[0], before["properties"]["ipConfigurations"][0]);
  EXPECT_FALSE(readOnlyProblems(configs[0], "NetworkInterfaceIPConfiguration").empty());
}

// One of our prefix ipConfigurations as the NIC's GET returns it, read-only fields included.
json ourPrefixConfig() {
  return {{"name", "vnetipam-172-20-2-16-28"},
          {"id", kNicId + "/ipConfigurations/vnetipam-172-20-2-16-28"},
          {"etag", "W/\"1\""},
          {"properties",
           {{"privateIPAddress", "172.20.2.16/28"},
            {"privateIPAddressPrefixLength", 28},
            {"privateIPAllocationMethod", "Static"},
            {"provisioningState", "Succeeded"},
            {"subnet", {{"id", kSubnetId}}},
            {"primary", false}}}};
}

TEST_F(RequestWireTest, ARemovalBodyFollowsTheSpec) {
  const json body = putBodyFor(azureNic("W/\"1\"", json::array({ourPrefixConfig()})), {});
  const auto problems = schemaProblems(body, "NetworkInterface");
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  EXPECT_EQ(body["properties"]["ipConfigurations"].size(), 1u);
}

// The orphan sweep's write (removeNicPrefixes: a GET, then a PUT of the NIC less exactly those
// prefixes) sends a body of the same shape.
TEST_F(RequestWireTest, TheOrphanSweepsRemovalBodyFollowsTheSpec) {
  transport_.nic = azureNic("W/\"1\"", json::array({ourPrefixConfig()}));
  const std::vector<ipam::Prefix> drop = {prefix("172.20.2.16/28")};
  auto removed = network_.removeNicPrefixes(kNicId, drop);
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  ASSERT_EQ(transport_.puts.size(), 1u);
  const json& body = transport_.puts.front();
  const auto problems = schemaProblems(body, "NetworkInterface");
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  EXPECT_EQ(body["properties"]["ipConfigurations"].size(), 1u);
  EXPECT_EQ(body["properties"]["ipConfigurations"][0]["name"], "ipconfig1");
}

}  // namespace
}  // namespace vnetipam::azure
