// AzureCloud on lib/azure's client over a scripted transport: a node's NIC comes from its
// providerID through parseProviderId; a VM of a Flexible scale set is read like any VM; a VM of a
// Uniform scale set is refused before any request.
#include "controller/cloud.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lib/azure/arm_client.h"
#include "lib/azure/network.h"
#include "unit/lib/azure/fake_credential.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::controller {
namespace {

using nlohmann::json;

constexpr std::string_view kRg = "/subscriptions/sub/resourceGroups/rg";
const std::string kFlexVm =
    std::string(kRg) + "/providers/Microsoft.Compute/virtualMachines/flex_1";
const std::string kUniform =
    "azure://" + std::string(kRg) +
    "/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/7";
const std::string kNic =
    std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces/flex-nic";
const std::string kOtherNic =
    std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces/flex-nic-2";

class AzureCloudTest : public ::testing::Test {
 protected:
  AzureCloudTest()
      : arm_(transport_, "https://management.azure.com", credential_, clock_,
             {.readQps = 0, .writeQps = 0, .random01 = [] { return 0.0; }}),
        network_(arm_),
        cloud_(network_) {}

  http::testing::FakeTransport transport_;
  base::testing::FakeClock clock_;
  azure::testing::FakeCredential credential_;
  azure::ArmClient arm_;
  azure::NetworkClient network_;
  AzureCloud cloud_;
};

TEST_F(AzureCloudTest, AFlexibleScaleSetVmsPrimaryNicComesFromAGetOfTheVm) {
  // As Azure answers for a VM of a Flexible scale set: an ordinary VM naming its scale set.
  transport_.respond(
      200, json{{"id", kFlexVm},
                {"name", "flex_1"},
                {"properties",
                 {{"virtualMachineScaleSet",
                   {{"id", std::string(kRg) +
                               "/providers/Microsoft.Compute/virtualMachineScaleSets/flex"}}},
                  {"networkProfile",
                   {{"networkInterfaces",
                     {{{"id", kOtherNic}, {"properties", {{"primary", false}}}},
                      {{"id", kNic}, {"properties", {{"primary", true}}}}}}}}}}}
               .dump());
  auto nic = cloud_.primaryNicOfNode("azure://" + kFlexVm);
  ASSERT_TRUE(nic.has_value()) << nic.error().message;
  EXPECT_EQ(*nic, kNic);
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, kFlexVm + "?api-version=2023-09-01");
  EXPECT_FALSE(cloud_.refuseNode("azure://" + kFlexVm));
}

TEST_F(AzureCloudTest, TheProviderIdIsReadWithItsKeywordsInAnyCase) {
  transport_.respond(
      200, json{{"id", kFlexVm},
                {"properties", {{"networkProfile", {{"networkInterfaces", {{{"id", kNic}}}}}}}}}
               .dump());
  auto nic = cloud_.primaryNicOfNode(
      "azure:///subscriptions/sub/resourcegroups/rg/providers/microsoft.compute/"
      "virtualmachines/flex_1");
  ASSERT_TRUE(nic.has_value()) << nic.error().message;
  EXPECT_EQ(*nic, kNic) << "a VM's only NIC is its primary";
  ASSERT_EQ(transport_.requests().size(), 1u);
  EXPECT_EQ(transport_.requests()[0].target, kFlexVm + "?api-version=2023-09-01");
}

TEST_F(AzureCloudTest, AUniformScaleSetVmIsRefusedBeforeAnyRequest) {
  const auto refusal = cloud_.refuseNode(kUniform);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->reason, kReasonUniformScaleSetUnsupported);
  EXPECT_NE(refusal->message.find("instance 7 of the Uniform scale set pool"), std::string::npos)
      << refusal->message;
  EXPECT_NE(refusal->message.find("Flexible orchestration"), std::string::npos);

  auto nic = cloud_.primaryNicOfNode(kUniform);
  ASSERT_FALSE(nic.has_value());
  EXPECT_EQ(nic.error().code, azure::ErrorCode::kInvalidArgument);
  EXPECT_EQ(nic.error().message, refusal->message);
  EXPECT_TRUE(transport_.requests().empty()) << "no GET, no PUT";
}

TEST_F(AzureCloudTest, AProviderIdThatNamesNoVmIsAnErrorNotARefusal) {
  for (const std::string bad : {"", "aws:///us-east-1a/i-123", "kind://node-1",
                                "azure:///subscriptions/sub/resourceGroups/rg/providers/"
                                "Microsoft.Compute/virtualMachines/a/../b"}) {
    EXPECT_FALSE(cloud_.refuseNode(bad)) << bad;
    auto nic = cloud_.primaryNicOfNode(bad);
    ASSERT_FALSE(nic.has_value()) << bad;
    EXPECT_EQ(nic.error().code, azure::ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(nic.error().message.find("does not name an Azure VM"), std::string::npos)
        << nic.error().message;
  }
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(AzureCloudTest, ASubnetReadFindsOurIpConfigurationsAndTheSweepsRemoveOnlyWrites) {
  const std::string subnet =
      std::string(kRg) + "/providers/Microsoft.Network/virtualNetworks/v/subnets/pods";
  // Of the subnet's ipConfigurations, only those this project named on a standalone NIC are
  // ours: not the NIC's primary, not another's, not a scale-set VM's NIC's, not a load balancer's.
  const std::string scaleSetNic =
      std::string(kRg) +
      "/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0/"
      "networkInterfaces/n";
  const std::string balancer = std::string(kRg) + "/providers/Microsoft.Network/loadBalancers/lb";
  transport_.respond(
      200, json{{"id", subnet},
                {"properties",
                 {{"addressPrefix", "10.0.0.0/24"},
                  {"ipConfigurations",
                   {{{"id", kNic + "/ipConfigurations/ipconfig1"}},
                    {{"id", kNic + "/ipConfigurations/vnetipam-10-0-0-16-28"}},
                    {{"id", kNic + "/ipConfigurations/theirs"}},
                    {{"id", kNic + "/ipConfigurations/vnetipam-not-a-prefix"}},
                    {{"id", scaleSetNic + "/ipConfigurations/vnetipam-10-0-0-96-28"}},
                    {{"id", balancer + "/frontendIPConfigurations/vnetipam-10-0-0-112-28"}},
                    {{"id", "not-an-id"}}}}}}}
               .dump());
  auto read = cloud_.readSubnet(subnet);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  EXPECT_EQ(read->prefixes, std::vector<ipam::Prefix>{*ipam::Prefix::parse("10.0.0.0/24")});
  EXPECT_EQ(read->ours, (std::vector<OwnIpConfiguration>{
                            {.nicId = kNic, .prefix = *ipam::Prefix::parse("10.0.0.16/28")},
                            {.nicId = kNic, .prefix = std::nullopt}}));

  // A NIC as read: every prefix, the ones this project named, and its VM.
  const auto config = [&](std::string name, std::string address, bool primary) {
    json props = {
        {"privateIPAddress", address}, {"primary", primary}, {"subnet", {{"id", subnet}}}};
    if (address.find('/') != std::string::npos) props["privateIPAddressPrefixLength"] = 28;
    return json{{"name", name}, {"properties", props}};
  };
  const json nic = {{"id", kNic},
                    {"etag", "W/\"1\""},
                    {"properties",
                     {{"virtualMachine", {{"id", kFlexVm}}},
                      {"ipConfigurations",
                       {config("ipconfig1", "10.0.0.4", true),
                        config("vnetipam-10-0-0-16-28", "10.0.0.16/28", false),
                        config("theirs", "10.0.0.32/28", false)}}}}};
  transport_.respond(200, nic.dump());
  auto state = cloud_.readNic(kNic);
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_EQ(state->prefixes.size(), 2u);
  EXPECT_EQ(state->ours, std::vector<ipam::Prefix>{*ipam::Prefix::parse("10.0.0.16/28")});
  EXPECT_EQ(state->vmId, kFlexVm);

  // Asked to take off both: only ours goes, in one PUT with If-Match.
  transport_.respond(200, nic.dump());
  json after = nic;
  after["properties"]["ipConfigurations"].erase(1);
  transport_.respond(200, after.dump());
  const std::vector<ipam::Prefix> both = {*ipam::Prefix::parse("10.0.0.16/28"),
                                          *ipam::Prefix::parse("10.0.0.32/28")};
  auto removed = cloud_.removeNicPrefixes(kNic, both);
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  EXPECT_EQ(*removed, std::vector<ipam::Prefix>{both[0]});
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[3].method, "PUT");
  EXPECT_EQ(requests[3].headers.at("If-Match"), "W/\"1\"");
  const json body = json::parse(requests[3].body);
  ASSERT_EQ(body["properties"]["ipConfigurations"].size(), 2u);
  EXPECT_EQ(body["properties"]["ipConfigurations"][1]["name"], "theirs");
}

}  // namespace
}  // namespace vnetipam::controller
