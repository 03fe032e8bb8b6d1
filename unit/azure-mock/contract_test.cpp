// Contract tests: the mock against the example request and response bodies of the published
// Microsoft.Network REST API specification (NetworkInterfaceCreate.json / NetworkInterfaceGet.json,
// api-version 2024-05-01), ARM's CloudError examples and Entra ID token responses.
#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;
using testing::MockFixture;
using testing::parsed;

constexpr std::string_view kApi = "?api-version=2024-05-01";

TEST(Contract, NetworkInterfaceCreateExampleGetsTheExampleResponse) {
  MockFixture m(StateOptions{.asyncDelay = std::chrono::seconds(1)});
  // The example's PUT: ipconfig2 carries only privateIPAddressPrefixLength.
  const json body = json::parse(R"({"location":"eastus","properties":{"ipConfigurations":[
      {"name":"ipconfig1","properties":{"subnet":{"id":"/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/default"}}},
      {"name":"ipconfig2","properties":{"privateIPAddressPrefixLength":28}}]}})");
  auto r = m.putNic(body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.header("Azure-AsyncOperation").empty());
  const json nic = parsed(r);
  const json expected = json::parse(R"({"name":"ipconfig2",
    "id":"/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/test-nic/ipConfigurations/ipconfig2",
    "properties":{"privateIPAddress":"172.20.2.16/28",
      "privateIPAddressPrefixLength":28,"privateIPAllocationMethod":"Dynamic",
      "subnet":{"id":"/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/default"},
      "primary":false,"privateIPAddressVersion":"IPv4"}})");
  json got = nic["properties"]["ipConfigurations"][1];
  EXPECT_EQ(got["properties"]["provisioningState"], "Updating");
  m.clock.advance(std::chrono::seconds(1));
  got = parsed(m.getNic())["properties"]["ipConfigurations"][1];
  EXPECT_EQ(got["properties"]["provisioningState"], "Succeeded");
  for (const auto& [key, value] : expected.items()) {
    if (key == "properties") {
      for (const auto& [pk, pv] : value.items())
        EXPECT_EQ(got["properties"][pk], pv) << pk;
    } else {
      EXPECT_EQ(got[key], value) << key;
    }
  }
  const json primary = parsed(m.getNic())["properties"]["ipConfigurations"][0];
  EXPECT_EQ(primary["properties"]["privateIPAddress"], "172.20.2.4");
  EXPECT_EQ(primary["properties"]["primary"], true);
  EXPECT_FALSE(primary["properties"].contains("privateIPAddressPrefixLength"));
}

TEST(Contract, NicResourceShape) {
  MockFixture m;
  const json nic = parsed(m.getNic());
  for (const char* key : {"id", "name", "type", "location", "etag", "properties"})
    EXPECT_TRUE(nic.contains(key)) << key;
  EXPECT_EQ(nic["type"], "Microsoft.Network/networkInterfaces");
  EXPECT_TRUE(nic["etag"].get<std::string>().starts_with("W/\""));
  const auto& p = nic["properties"];
  for (const char* key : {"ipConfigurations", "virtualMachine", "macAddress", "primary",
                          "provisioningState", "resourceGuid", "enableIPForwarding"})
    EXPECT_TRUE(p.contains(key)) << key;
  EXPECT_TRUE(p["macAddress"].get<std::string>().starts_with("00-0D-3A-"));
  const auto& c = p["ipConfigurations"][0];
  for (const char* key : {"id", "name", "etag", "type", "properties"})
    EXPECT_TRUE(c.contains(key)) << key;
  EXPECT_EQ(c["etag"], nic["etag"]);
}

TEST(Contract, PutResponseHeaders) {
  MockFixture m;
  auto r =
      m.putNic(testing::nicBody({testing::prefixConfig("p")}),
               {{"x-ms-correlation-request-id", "corr-1"}, {"x-ms-client-request-id", "cli-1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string requestId = r.header("x-ms-request-id");
  EXPECT_EQ(r.header("Azure-AsyncOperation"),
            "http://mock.test/subscriptions/subid/providers/Microsoft.Network/locations/eastus/"
            "operations/" +
                requestId + "?api-version=2024-05-01")
      << "the operation id is the request id";
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(r.header("x-ms-correlation-request-id"), "corr-1");
  EXPECT_EQ(r.header("x-ms-client-request-id"), "cli-1");
  EXPECT_FALSE(r.header("x-ms-ratelimit-remaining-subscription-writes").empty());
  // Poll: always 200, InProgress then Succeeded.
  const std::string op =
      "/subscriptions/subid/providers/Microsoft.Network/locations/eastus/"
      "operations/" +
      requestId + std::string(kApi);
  auto poll = m.call("GET", op);
  ASSERT_EQ(poll.status, 200) << poll.body;
  EXPECT_EQ(parsed(poll)["status"], "InProgress");
  m.clock.advance(std::chrono::seconds(1));
  poll = m.call("GET", op);
  EXPECT_EQ(parsed(poll)["status"], "Succeeded");
  // AzureAsyncOperationResult (network.json) has a status and an error, nothing else.
  EXPECT_EQ(parsed(poll).size(), 1u) << poll.body;
}

TEST(Contract, CreateIs201) {
  MockFixture m;
  json taken = testing::nicBody({});
  taken["properties"]["ipConfigurations"][0]["properties"]["privateIPAllocationMethod"] = "Static";
  auto r = m.putNic(taken, {}, "brand-new-nic");
  // The body's primary asks for 172.20.2.4, which test-nic holds.
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(parsed(r)["error"]["code"], "PrivateIPAddressInUse");
  EXPECT_EQ(parsed(r)["error"]["message"],
            "IP configuration /subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/"
            "networkInterfaces/brand-new-nic/ipConfigurations/ipconfig1 is using the same private "
            "IP address 172.20.2.4 as IP configuration /subscriptions/subid/resourceGroups/rg1/"
            "providers/Microsoft.Network/networkInterfaces/test-nic/ipConfigurations/ipconfig1.");
  json body = testing::nicBody({});
  body["properties"]["ipConfigurations"][0]["properties"].erase("privateIPAddress");
  r = m.putNic(body, {}, "brand-new-nic");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(parsed(r)["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
            "172.20.2.6");
}

TEST(Contract, CloudErrorShapes) {
  MockFixture m;
  auto r = m.getNic("TTLB");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(
      parsed(r),
      json::parse(
          R"({"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.Network/networkInterfaces/TTLB' under resource group 'rg1' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix","details":[]}})"));

  const std::string etag = parsed(m.getNic())["etag"];
  r = m.putNic(testing::nicBody({}), {{"If-Match", "W/\"00000000-0000-0000-0000-000000000000\""}});
  EXPECT_EQ(r.status, 412);
  const json e = parsed(r)["error"];
  EXPECT_EQ(e["code"], "PreconditionFailed");
  EXPECT_EQ(e["message"], "Precondition failed.");
  EXPECT_EQ(e["details"][0]["code"], "PreconditionFailedEtagMismatch");
  // The text cloud-provider-azure matches: "Etag provided in if-match header (\S+) does not match
  // etag (\S+) of resource".
  EXPECT_TRUE(e["details"][0]["message"].get<std::string>().starts_with(
      "Etag provided in if-match header W/\"00000000-0000-0000-0000-000000000000\" does not match "
      "etag " +
      etag + " of resource "));

  ASSERT_EQ(m.putNic(testing::nicBody({testing::prefixConfig("p")})).status, 200);
  r = m.putNic(testing::nicBody({}));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(parsed(r)["error"]["code"], "AnotherOperationInProgress");
  EXPECT_TRUE(parsed(r)["error"]["message"].get<std::string>().starts_with(
      "Another operation on this or dependent resource is in progress. To retrieve status of the "
      "operation use uri: http://mock.test/subscriptions/subid/providers/Microsoft.Network/"
      "locations/eastus/operations/"));
}

TEST(Contract, SubnetAndVnetShapes) {
  MockFixture m;
  auto r = m.call("GET", std::string(testing::kSubnetId) + std::string(kApi));
  ASSERT_EQ(r.status, 200) << r.body;
  const json s = parsed(r);
  EXPECT_EQ(s["name"], "default");
  EXPECT_EQ(s["properties"]["addressPrefix"], "172.20.2.0/24");
  EXPECT_EQ(s["properties"]["provisioningState"], "Succeeded");
  EXPECT_EQ(s["properties"]["ipConfigurations"].size(), 2u);
  EXPECT_EQ(s["properties"]["purpose"], "");
  r = m.call("GET", std::string(testing::kRg) +
                        "/providers/Microsoft.Network/virtualNetworks/rg1-vnet" +
                        std::string(kApi));
  ASSERT_EQ(r.status, 200) << r.body;
  const json v = parsed(r);
  EXPECT_EQ(v["properties"]["addressSpace"]["addressPrefixes"], json::array({"172.20.0.0/16"}));
  EXPECT_EQ(v["properties"]["subnets"].size(), 3u);
  EXPECT_EQ(v["properties"]["subnets"][0]["properties"]["ipConfigurations"][1]["id"],
            std::string(testing::kNicId) + "/ipConfigurations/ipconfig1")
      << "in NIC id order";
}

// A subnet of several prefixes reads with addressPrefixes (SubnetPropertiesFormat), one of one
// prefix with addressPrefix; a PUT of the subnet sets them and answers the subnet.
TEST(Contract, ASubnetPutSetsItsAddressPrefixes) {
  MockFixture m;
  const std::string tiny = std::string(testing::kRg) +
                           "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/tiny";
  auto r = m.call("PUT", tiny + std::string(kApi),
                  R"({"properties": {"addressPrefixes": ["172.20.4.0/29", "172.20.8.0/26"]}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parsed(r)["properties"]["addressPrefixes"],
            json::array({"172.20.4.0/29", "172.20.8.0/26"}));
  EXPECT_FALSE(parsed(r)["properties"].contains("addressPrefix"));
  r = m.call("GET", tiny + std::string(kApi));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parsed(r)["properties"]["addressPrefixes"].size(), 2u);
  r = m.call("PUT", tiny + std::string(kApi),
             R"({"properties": {"addressPrefix": "172.20.4.0/29"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parsed(r)["properties"]["addressPrefix"], "172.20.4.0/29");
  r = m.call("PUT", tiny + std::string(kApi),
             R"({"properties": {"addressPrefix": "10.0.0.0/24"}})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(parsed(r)["error"]["code"], "NetcfgSubnetRangeOutsideVnet");
  r = m.call("DELETE", tiny + std::string(kApi));
  EXPECT_EQ(r.status, 405) << r.body;
}

TEST(Contract, VirtualMachineListsItsNics) {
  MockFixture m;
  auto r =
      m.call("GET", std::string(testing::kRg) +
                        "/providers/Microsoft.Compute/virtualMachines/vm1?api-version=2024-07-01");
  ASSERT_EQ(r.status, 200) << r.body;
  const json nics = parsed(r)["properties"]["networkProfile"]["networkInterfaces"];
  ASSERT_EQ(nics.size(), 1u);
  EXPECT_EQ(nics[0]["id"], testing::kNicId);
  EXPECT_EQ(nics[0]["properties"]["primary"], true);
  // Compute api-versions are not Network's.
  r = m.call("GET", std::string(testing::kRg) +
                        "/providers/Microsoft.Compute/virtualMachines/vm1?api-version=2025-07-01");
  EXPECT_EQ(r.status, 400);
}

}  // namespace
}  // namespace vnetipam::azuremock
