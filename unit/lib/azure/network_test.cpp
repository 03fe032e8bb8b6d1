#include "lib/azure/network.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lib/azure/connect.h"
#include "unit/lib/azure/arm_fixture.h"

namespace vnetipam::azure {
namespace {

using base::testing::FakeClock;
using nlohmann::json;

constexpr std::string_view kRg = "/subscriptions/sub/resourceGroups/rg";
const std::string kNicId =
    std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces/node-1-nic";
const std::string kSubnetId =
    std::string(kRg) + "/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes";
const std::string kNicTarget = kNicId + "?api-version=2024-05-01";

ipam::Prefix prefix(std::string_view text) { return ipam::Prefix::parse(text).value(); }

json ipConfig(std::string_view name, std::string_view address, bool primary,
              std::optional<int> length = std::nullopt) {
  json props = {{"privateIPAddress", address},
                {"privateIPAllocationMethod", "Dynamic"},
                {"primary", primary},
                {"provisioningState", "Succeeded"},
                {"subnet", {{"id", kSubnetId}}}};
  if (length) props["privateIPAddressPrefixLength"] = *length;
  return {{"name", name},
          {"id", kNicId + "/ipConfigurations/" + std::string(name)},
          {"etag", "W/\"e\""},
          {"properties", props}};
}

json nicJson(std::string_view etag, std::vector<json> configs) {
  return {{"id", kNicId},
          {"name", "node-1-nic"},
          {"location", "eastus"},
          {"etag", etag},
          {"properties",
           {{"provisioningState", "Succeeded"},
            {"enableIPForwarding", true},
            {"virtualMachine",
             {{"id", std::string(kRg) + "/providers/Microsoft.Compute/virtualMachines/node-1"}}},
            {"ipConfigurations", configs}}}};
}

TEST(IpConfigNameTest, IsDeterministicFromThePrefix) {
  EXPECT_EQ(ipConfigName(prefix("10.240.0.16/28")), "vnetipam-10-240-0-16-28");
  EXPECT_EQ(ipConfigName(prefix("fd00:10:240::/80")), "vnetipam-fd00-10-240---80");
  EXPECT_EQ(prefixOfIpConfigName("vnetipam-10-240-0-16-28"), prefix("10.240.0.16/28"));
  EXPECT_EQ(prefixOfIpConfigName("vnetipam-fd00-10-240---80"), prefix("fd00:10:240::/80"));
  // Only names ipConfigName makes: another owner's, a non-canonical or a host-bit one is none.
  EXPECT_EQ(prefixOfIpConfigName("ipconfig1"), std::nullopt);
  EXPECT_EQ(prefixOfIpConfigName("vnetipam-10-240-0-17-28"), std::nullopt);
  EXPECT_EQ(prefixOfIpConfigName("vnetipam-010-240-0-16-28"), std::nullopt);
  EXPECT_EQ(prefixOfIpConfigName("vnetipam-10-240-0-16"), std::nullopt);
  EXPECT_EQ(prefixOfIpConfigName("vnetipam--28"), std::nullopt);
  EXPECT_EQ(prefixOfIpConfigName("vnetipam-10-240-0-16-28-x"), std::nullopt);
}

TEST(ParseTest, ReadsTheNicAndMasksReturnedPrefixes) {
  auto nic =
      parseNetworkInterface(nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                                                ipConfig("ipconfig2", "172.20.2.16/28", false, 28),
                                                ipConfig("odd", "10.0.0.21/28", false, 28),
                                                ipConfig("lengthOnly", "10.0.0.48", false, 28)}));
  ASSERT_TRUE(nic.has_value()) << nic.error().message;
  EXPECT_EQ(nic->etag, "W/\"1\"");
  EXPECT_EQ(nic->provisioningState, "Succeeded");
  EXPECT_TRUE(nic->virtualMachineId.ends_with("/virtualMachines/node-1"));
  ASSERT_EQ(nic->ipConfigs.size(), 4u);
  EXPECT_TRUE(nic->ipConfigs[0].primary);
  EXPECT_EQ(nic->ipConfigs[0].subnetId, kSubnetId);
  EXPECT_FALSE(nic->ipConfigs[0].prefix().has_value());
  EXPECT_EQ(nic->ipConfigs[1].prefix(), prefix("172.20.2.16/28"));
  EXPECT_EQ(nic->ipConfigs[2].prefix(), prefix("10.0.0.16/28"));  // host bits masked
  EXPECT_EQ(nic->ipConfigs[3].prefix(), prefix("10.0.0.48/28"));
  EXPECT_EQ(parseNetworkInterface(json{{"name", "x"}}).error().code, ErrorCode::kBadResponse);
}

TEST(DiffTest, AddsRemovesAndPreservesEverythingElse) {
  auto nic = parseNetworkInterface(
                 nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                                     ipConfig("secondary", "10.0.0.5", false),
                                     ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28),
                                     ipConfig("vnetipam-10-0-1-16-28", "10.0.1.16/28", false, 28),
                                     ipConfig("someone-else", "10.0.2.0/28", false, 28)}))
                 .value();
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.16/28"), prefix("10.0.1.32/28"),
                                             prefix("10.0.2.0/28")};
  auto diff = diffNicPrefixes(nic, desired);
  ASSERT_TRUE(diff.has_value()) << diff.error().message;
  EXPECT_EQ(diff->added, std::vector<ipam::Prefix>{prefix("10.0.1.32/28")});
  EXPECT_EQ(diff->removed, std::vector<ipam::Prefix>{prefix("10.0.1.0/28")});
  ASSERT_EQ(diff->ipConfigurations.size(), 5u);
  const auto& configs = diff->ipConfigurations;
  EXPECT_EQ(configs[0], nic.raw["properties"]["ipConfigurations"][0]);  // primary, untouched
  EXPECT_EQ(configs[1]["name"], "secondary");
  EXPECT_EQ(configs[2]["name"], "vnetipam-10-0-1-16-28");
  EXPECT_EQ(configs[3]["name"], "someone-else");  // carries a desired prefix: kept, not doubled
  EXPECT_EQ(configs[4], json::parse(R"({"name":"vnetipam-10-0-1-32-28","properties":{
      "privateIPAddress":"10.0.1.32/28","privateIPAddressPrefixLength":28,
      "privateIPAllocationMethod":"Static","privateIPAddressVersion":"IPv4","primary":false,
      "subnet":{"id":")" + kSubnetId +
                                    R"("}}})"));
}

TEST(DiffTest, NothingToDoIsNoChange) {
  auto nic = parseNetworkInterface(
                 nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                                     ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28)}))
                 .value();
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28")};
  EXPECT_FALSE(diffNicPrefixes(nic, desired).value().changed());
  // An empty desired set removes every block of ours.
  auto none = diffNicPrefixes(nic, {});
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->removed, std::vector<ipam::Prefix>{prefix("10.0.1.0/28")});
  EXPECT_EQ(none->ipConfigurations.size(), 1u);
}

TEST(DiffTest, NoPrimarySubnetIsAnError) {
  auto nic = parseNetworkInterface(nicJson("W/\"1\"", {})).value();
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28")};
  auto diff = diffNicPrefixes(nic, desired);
  ASSERT_FALSE(diff.has_value());
  EXPECT_EQ(diff.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(diff.error().message.find("10.0.1.0/28"), std::string::npos);
}

using NetworkClientTest = testing::NetworkClientFixture<>;

TEST_F(NetworkClientTest, SetNicPrefixesWritesEveryBlockInOnePutWithIfMatch) {
  transport_.respond(200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true)}).dump());
  const std::string op =
      "https://management.azure.com/subscriptions/sub/providers/"
      "Microsoft.Network/locations/eastus/operations/op1?api-version=2024-05-01";
  transport_.respond(200, "{}", {{"Azure-AsyncOperation", op}, {"Retry-After", "1"}});
  transport_.respond(200, R"({"status":"Succeeded"})");
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28"), prefix("10.0.1.16/28")};
  auto change = network_.setNicPrefixes(kNicId, desired);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_TRUE(change->written);
  EXPECT_EQ(change->added, desired);
  EXPECT_TRUE(change->removed.empty());
  EXPECT_EQ(change->nic.etag, "W/\"1\"") << "as written: the NIC is not read again";
  EXPECT_EQ(change->nic.ipConfigs.size(), 3u);

  // GET, PUT, the operation's status: no read after Succeeded.
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, kNicTarget);
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].target, kNicTarget);
  EXPECT_EQ(requests[1].headers.at("If-Match"), "W/\"1\"");
  const json body = json::parse(requests[1].body);
  EXPECT_EQ(body["properties"]["enableIPForwarding"], true);  // unmodelled fields survive
  ASSERT_EQ(body["properties"]["ipConfigurations"].size(), 3u);
  EXPECT_EQ(body["properties"]["ipConfigurations"][1]["name"], "vnetipam-10-0-1-0-28");
  EXPECT_EQ(body["properties"]["ipConfigurations"][2]["properties"]["privateIPAddress"],
            "10.0.1.16/28");
  EXPECT_EQ(requests[2].method, "GET");
  EXPECT_NE(requests[2].target.find("/operations/op1"), std::string::npos) << requests[2].target;
}

TEST_F(NetworkClientTest, SetNicPrefixesBuildsOnTheCallersReadWithoutAnotherGet) {
  auto read = parseNetworkInterface(nicJson("W/\"7\"", {ipConfig("ipconfig1", "10.0.0.4", true)}));
  ASSERT_TRUE(read);
  transport_.respond(
      200, nicJson("W/\"8\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                               ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28)})
               .dump());
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28")};
  auto change = network_.setNicPrefixes(*read, desired);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_TRUE(change->written);
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 1u) << "the PUT alone: it answered Succeeded with the NIC";
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].headers.at("If-Match"), "W/\"7\"");
}

TEST_F(NetworkClientTest, SetNicPrefixesRereadsAndReappliesOnEtagConflict) {
  transport_.respond(200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true)}).dump());
  transport_.respond(
      412, R"({"error":{"code":"PreconditionFailed","message":"Precondition failed.","details":[
        {"code":"PreconditionFailedEtagMismatch","message":"Etag mismatch"}]}})");
  // Someone added their own ipConfiguration meanwhile: it must survive our re-applied write.
  transport_.respond(200, nicJson("W/\"5\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                                              ipConfig("theirs", "10.0.0.9", false)})
                              .dump());
  transport_.respond(
      200, nicJson("W/\"6\"",
                   {ipConfig("ipconfig1", "10.0.0.4", true), ipConfig("theirs", "10.0.0.9", false),
                    ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28)})
               .dump());
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28")};
  auto change = network_.setNicPrefixes(kNicId, desired);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_EQ(change->conflicts, 1);
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[3].headers.at("If-Match"), "W/\"5\"");
  const json body = json::parse(requests[3].body);
  ASSERT_EQ(body["properties"]["ipConfigurations"].size(), 3u);
  EXPECT_EQ(body["properties"]["ipConfigurations"][1]["name"], "theirs");
  EXPECT_EQ(body["properties"]["ipConfigurations"][2]["name"], "vnetipam-10-0-1-0-28");
}

TEST_F(NetworkClientTest, SetNicPrefixesGivesUpAfterMaxConflicts) {
  NetworkClient network(arm_, /*maxConflicts=*/1);
  for (int i = 0; i < 2; ++i) {
    transport_.respond(200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true)}).dump());
    transport_.respond(412, R"({"error":{"code":"PreconditionFailed","message":"x"}})");
  }
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28")};
  auto change = network.setNicPrefixes(kNicId, desired);
  ASSERT_FALSE(change.has_value());
  EXPECT_EQ(change.error().code, ErrorCode::kPreconditionFailed);
  EXPECT_EQ(transport_.requests().size(), 4u);
}

TEST_F(NetworkClientTest, SetNicPrefixesWritesNothingWhenTheNicAlreadyMatches) {
  transport_.respond(
      200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                               ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28)})
               .dump());
  const std::vector<ipam::Prefix> desired = {prefix("10.0.1.0/28")};
  auto change = network_.setNicPrefixes(kNicId, desired);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_FALSE(change->written);
  EXPECT_EQ(transport_.requests().size(), 1u);
}

TEST(DropTest, DropsOnlyOurConfigsCarryingThosePrefixes) {
  auto nic = parseNetworkInterface(
                 nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                                     ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28),
                                     ipConfig("vnetipam-10-0-1-16-28", "10.0.1.16/28", false, 28),
                                     ipConfig("someone-else", "10.0.2.0/28", false, 28)}))
                 .value();
  // 10.0.2.0/28 is on someone else's ipConfiguration, 10.0.3.0/28 on none: both stay as they are.
  const std::vector<ipam::Prefix> drop = {prefix("10.0.1.0/28"), prefix("10.0.2.0/28"),
                                          prefix("10.0.3.0/28")};
  const IpConfigDiff diff = dropNicPrefixes(nic, drop);
  EXPECT_EQ(diff.removed, std::vector<ipam::Prefix>{prefix("10.0.1.0/28")});
  EXPECT_TRUE(diff.added.empty());
  ASSERT_EQ(diff.ipConfigurations.size(), 3u);
  EXPECT_EQ(diff.ipConfigurations[0], nic.raw["properties"]["ipConfigurations"][0]);
  EXPECT_EQ(diff.ipConfigurations[1], nic.raw["properties"]["ipConfigurations"][2]);
  EXPECT_EQ(diff.ipConfigurations[2], nic.raw["properties"]["ipConfigurations"][3]);
  EXPECT_FALSE(dropNicPrefixes(nic, std::vector<ipam::Prefix>{prefix("10.0.3.0/28")}).changed());
}

TEST(ParseTest, SplitsANicsIpConfigurationId) {
  auto ref = parseNicIpConfigurationId(kNicId + "/ipConfigurations/vnetipam-10-0-1-0-28");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->nicId, kNicId);
  EXPECT_EQ(ref->name, "vnetipam-10-0-1-0-28");
  // ARM ids ignore case; the parts keep the case they were written in.
  ref = parseNicIpConfigurationId(
      "/SUBSCRIPTIONS/sub/resourcegroups/RG/providers/microsoft.network/NetworkInterfaces/N/"
      "IPCONFIGURATIONS/c");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->nicId,
            "/SUBSCRIPTIONS/sub/resourcegroups/RG/providers/microsoft.network/NetworkInterfaces/N");
  EXPECT_EQ(ref->name, "c");
  const std::vector<std::string> others = {
      std::string(kRg) +
          "/providers/Microsoft.Compute/virtualMachineScaleSets/ss/"
          "virtualMachines/0/networkInterfaces/n/ipConfigurations/c",
      std::string(kRg) +
          "/providers/Microsoft.Network/loadBalancers/lb/"
          "frontendIPConfigurations/c",
      kNicId + "/ipConfigurations/",
      kNicId + "/ipConfigurations/c/x",
      kNicId,
      "",
      "subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n/"
      "ipConfigurations/c"};
  for (const std::string& id : others) {
    EXPECT_FALSE(parseNicIpConfigurationId(id).has_value()) << id;
  }
}

TEST_F(NetworkClientTest, RemoveNicPrefixesPutsTheNicLessOnlyThoseWithIfMatch) {
  transport_.respond(
      200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                               ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28),
                               ipConfig("vnetipam-10-0-1-16-28", "10.0.1.16/28", false, 28)})
               .dump());
  const std::string after =
      nicJson("W/\"2\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                          ipConfig("vnetipam-10-0-1-16-28", "10.0.1.16/28", false, 28)})
          .dump();
  transport_.respond(200, after);
  const std::vector<ipam::Prefix> drop = {prefix("10.0.1.0/28")};
  auto change = network_.removeNicPrefixes(kNicId, drop);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_TRUE(change->written);
  EXPECT_EQ(change->removed, drop);
  EXPECT_TRUE(change->added.empty());
  EXPECT_EQ(change->nic.etag, "W/\"1\"") << "as written: not read again";
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].headers.at("If-Match"), "W/\"1\"");
  const json body = json::parse(requests[1].body);
  EXPECT_EQ(body["properties"]["enableIPForwarding"], true);
  ASSERT_EQ(body["properties"]["ipConfigurations"].size(), 2u);
  EXPECT_EQ(body["properties"]["ipConfigurations"][1]["name"], "vnetipam-10-0-1-16-28");
}

TEST_F(NetworkClientTest, RemoveNicPrefixesKeepsWhatAConcurrentWriterAddedOnEtagConflict) {
  transport_.respond(
      200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                               ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28)})
               .dump());
  transport_.respond(
      412, R"({"error":{"code":"PreconditionFailed","message":"Precondition failed.","details":[
        {"code":"PreconditionFailedEtagMismatch","message":"Etag mismatch"}]}})");
  // The NIC pass added a block meanwhile: our write, made again, keeps it.
  transport_.respond(
      200, nicJson("W/\"7\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                               ipConfig("vnetipam-10-0-1-0-28", "10.0.1.0/28", false, 28),
                               ipConfig("vnetipam-10-0-1-32-28", "10.0.1.32/28", false, 28)})
               .dump());
  transport_.respond(
      200, nicJson("W/\"8\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                               ipConfig("vnetipam-10-0-1-32-28", "10.0.1.32/28", false, 28)})
               .dump());
  const std::vector<ipam::Prefix> drop = {prefix("10.0.1.0/28")};
  auto change = network_.removeNicPrefixes(kNicId, drop);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_EQ(change->conflicts, 1);
  EXPECT_EQ(change->removed, drop);
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[3].headers.at("If-Match"), "W/\"7\"");
  const json body = json::parse(requests[3].body);
  ASSERT_EQ(body["properties"]["ipConfigurations"].size(), 2u);
  EXPECT_EQ(body["properties"]["ipConfigurations"][1]["name"], "vnetipam-10-0-1-32-28");
}

TEST_F(NetworkClientTest, RemoveNicPrefixesWritesNothingWhenNoneIsThere) {
  transport_.respond(200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true),
                                              ipConfig("theirs", "10.0.1.0/28", false, 28)})
                              .dump());
  const std::vector<ipam::Prefix> drop = {prefix("10.0.1.0/28")};
  auto change = network_.removeNicPrefixes(kNicId, drop);
  ASSERT_TRUE(change.has_value()) << change.error().message;
  EXPECT_FALSE(change->written);
  EXPECT_TRUE(change->removed.empty());
  EXPECT_EQ(transport_.requests().size(), 1u);
}

TEST_F(NetworkClientTest, FindsANodesVmAndItsNicsPrimaryFirst) {
  const std::string vmId = std::string(kRg) + "/providers/Microsoft.Compute/virtualMachines/node-1";
  const std::string second = std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces/b";
  transport_.respond(200, json{{"id", vmId},
                               {"name", "node-1"},
                               {"properties",
                                {{"networkProfile",
                                  {{"networkInterfaces",
                                    {{{"id", second}, {"properties", {{"primary", false}}}},
                                     {{"id", kNicId}, {"properties", {{"primary", true}}}}}}}}}}}
                              .dump());
  auto vm = network_.getVirtualMachine(vmId);
  ASSERT_TRUE(vm.has_value()) << vm.error().message;
  ASSERT_EQ(vm->nics.size(), 2u);
  EXPECT_EQ(vm->nics[0].id, kNicId);
  EXPECT_TRUE(vm->nics[0].primary);
  EXPECT_EQ(transport_.requests()[0].target, vmId + "?api-version=2023-09-01");

  transport_.respond(200, nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true)}).dump());
  auto otherNic = nicJson("W/\"1\"", {});
  otherNic["id"] = second;
  transport_.respond(200, otherNic.dump());
  auto nics = network_.getVirtualMachineNics(*vm);
  ASSERT_TRUE(nics.has_value()) << nics.error().message;
  ASSERT_EQ(nics->size(), 2u);
  EXPECT_EQ((*nics)[0].id, kNicId);
  EXPECT_EQ((*nics)[1].id, second);
}

TEST_F(NetworkClientTest, ListsTheNicsOfAResourceGroupOnVmsAcrossPages) {
  const std::string collection =
      std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces?api-version=2024-05-01";
  const auto onVm = [](std::string name, std::string_view vm, std::optional<bool> primary) {
    json nic = nicJson("W/\"1\"", {});
    nic["id"] = std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces/" + name;
    nic["properties"].erase("virtualMachine");
    if (!vm.empty()) {
      nic["properties"]["virtualMachine"] = {
          {"id",
           std::string(kRg) + "/providers/Microsoft.Compute/virtualMachines/" + std::string(vm)}};
    }
    if (primary) nic["properties"]["primary"] = *primary;
    return nic;
  };
  transport_.respond(
      200, json{{"value", {onVm("a", "vm-a", true), onVm("loose", "", std::nullopt)}},
                {"nextLink", "https://management.azure.com" + collection + "&%24skipToken=abc"}}
               .dump());
  transport_.respond(200, json{{"value", {onVm("b2", "vm-b", false)}}}.dump());
  std::vector<std::vector<azure::NicAttachment>> pages;
  std::vector<std::size_t> requestsBefore;  // the GETs made when each page was handed over
  auto listed = network_.listNicAttachments(kRg, [&](std::vector<azure::NicAttachment>& page) {
    pages.push_back(page);
    requestsBefore.push_back(transport_.requests().size());
  });
  ASSERT_TRUE(listed.has_value()) << listed.error().message;
  EXPECT_EQ(*listed, 2);
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(requestsBefore, (std::vector<std::size_t>{1, 2})) << "each page as it arrives";
  ASSERT_EQ(pages[0].size(), 1u) << "a NIC on no VM is left out";
  EXPECT_TRUE(pages[0][0].nicId.ends_with("/a"));
  EXPECT_TRUE(pages[0][0].virtualMachineId.ends_with("/virtualMachines/vm-a"));
  EXPECT_TRUE(pages[0][0].primary);
  ASSERT_EQ(pages[1].size(), 1u);
  EXPECT_TRUE(pages[1][0].nicId.ends_with("/b2"));
  EXPECT_FALSE(pages[1][0].primary);
  ASSERT_EQ(transport_.requests().size(), 2u);
  EXPECT_EQ(transport_.requests()[0].target, collection);

  transport_.respond(200, json{{"value", {json{{"name", "no-id"}}}}}.dump());
  auto broken = network_.listNicAttachments(kRg, [](std::vector<azure::NicAttachment>&) {});
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().code, ErrorCode::kBadResponse);
}

TEST_F(NetworkClientTest, ListsVnetUsageAcrossPages) {
  const std::string vnet =
      "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet";
  const auto usage = [&](std::string_view subnet, json current, json limit) {
    return json{{"id", vnet + "/subnets/" + std::string(subnet)},
                {"currentValue", std::move(current)},
                {"limit", std::move(limit)},
                {"name", {{"value", "SubnetSpace"}, {"localizedValue", "Subnet size and usage"}}},
                {"unit", "Count"}};
  };
  // The spec example's shape: -1 for a subnet Azure does not count (GatewaySubnet), doubles.
  transport_.respond(
      200, json{{"value", {usage("GatewaySubnet", -1.0, -1.0), usage("pods", 38.0, 251.0)}},
                {"nextLink", "https://management.azure.com" + vnet +
                                 "/usages?api-version=2024-05-01&$skipToken=2"}}
               .dump());
  json other = usage("x", 1.0, 1.0);
  other["name"]["value"] = "SomethingElse";  // not SubnetSpace: skipped
  transport_.respond(200, json{{"value", {usage("nodes", 3, 65531), other}}}.dump());
  auto usages = network_.listVirtualNetworkUsage(vnet);
  ASSERT_TRUE(usages.has_value()) << usages.error().message;
  ASSERT_EQ(usages->size(), 3u);
  EXPECT_EQ((*usages)[0].subnetId, vnet + "/subnets/GatewaySubnet");
  EXPECT_EQ((*usages)[0].used, std::nullopt);
  EXPECT_EQ((*usages)[0].limit, std::nullopt);
  EXPECT_EQ((*usages)[1].used, 38);
  EXPECT_EQ((*usages)[1].limit, 251);
  EXPECT_EQ((*usages)[2].subnetId, vnet + "/subnets/nodes");
  EXPECT_EQ((*usages)[2].used, 3);
  EXPECT_EQ(transport_.requests()[0].target, vnet + "/usages?api-version=2024-05-01");
  EXPECT_EQ(transport_.requests()[1].target, vnet + "/usages?api-version=2024-05-01&$skipToken=2");

  // A count that is not a number is a bad answer, naming the subnet; no id is one too.
  transport_.respond(200, json{{"value", {usage("pods", "38", 251)}}}.dump());
  auto bad = network_.listVirtualNetworkUsage(vnet);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kBadResponse);
  EXPECT_NE(bad.error().message.find("/subnets/pods: \"currentValue\" is a string"),
            std::string::npos)
      << bad.error().message;
  // Fractions and counts past 2^53 are not counts of addresses: unknown.
  auto odd = parseVirtualNetworkUsage(usage("p", 1.5, 1e300));
  ASSERT_TRUE(odd.has_value() && odd->has_value());
  EXPECT_EQ((*odd)->used, std::nullopt);
  EXPECT_EQ((*odd)->limit, std::nullopt);
  EXPECT_FALSE(parseVirtualNetworkUsage(json{{"currentValue", 1}}).has_value());
  EXPECT_EQ(network_.listVirtualNetworkUsage("vnet").error().code, ErrorCode::kInvalidArgument);
}

TEST_F(NetworkClientTest, ReadsVnetsAndSubnets) {
  transport_.respond(
      200,
      R"({"id":"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet",
    "name":"vnet","location":"eastus","properties":{"addressSpace":{"addressPrefixes":["10.0.0.0/8"]},
    "subnets":[{"id":"/s/nodes","name":"nodes","properties":{"addressPrefix":"10.240.0.0/16",
      "provisioningState":"Succeeded","ipConfigurations":[{"id":"/x"}]}}]}})");
  auto vnet = network_.getVirtualNetwork(
      "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet");
  ASSERT_TRUE(vnet.has_value()) << vnet.error().message;
  EXPECT_EQ(vnet->addressPrefixes, std::vector<std::string>{"10.0.0.0/8"});
  ASSERT_EQ(vnet->subnets.size(), 1u);
  EXPECT_EQ(vnet->subnets[0].addressPrefixes, std::vector<std::string>{"10.240.0.0/16"});

  transport_.respond(200, R"({"id":"/s/pods","name":"pods","properties":{
    "addressPrefixes":["10.241.0.0/16","fd00::/64"],"provisioningState":"Updating"}})");
  auto subnet = network_.getSubnet(kSubnetId);
  ASSERT_TRUE(subnet.has_value()) << subnet.error().message;
  EXPECT_EQ(subnet->addressPrefixes.size(), 2u);
  EXPECT_EQ(subnet->provisioningState, "Updating");
  EXPECT_TRUE(subnet->ipConfigurationIds.empty());
  EXPECT_EQ(vnet->subnets[0].ipConfigurationIds, std::vector<std::string>{"/x"});
  EXPECT_EQ(transport_.requests()[1].target, kSubnetId + "?api-version=2024-05-01");
}

TEST_F(NetworkClientTest, RefusesIdsThatAreNotArmIds) {
  auto nic = network_.getNic("networkInterfaces/x");
  ASSERT_FALSE(nic.has_value());
  EXPECT_EQ(nic.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(network_.getNic(kNicId + "?api-version=1").has_value());
  EXPECT_TRUE(transport_.requests().empty());
}

TEST(ConnectTest, BuildsEveryPieceWithoutTouchingTheNetwork) {
  AzureConfig config;
  config.credential = CredentialKind::kManagedIdentity;
  config.endpoints = {.resourceManager = "http://127.0.0.1:1/arm",
                      .authorityHost = "http://127.0.0.1:1/aad",
                      .imds = "http://127.0.0.1:1",
                      .tokenAudience = "https://management.azure.com/"};
  FakeClock clock;
  auto clients = connectAzure(config, clock);
  ASSERT_TRUE(clients.has_value()) << clients.error().message;
  EXPECT_NE((*clients)->network, nullptr);
  EXPECT_NE((*clients)->credential, nullptr);
}

// ---- decoder bounds: values used later are range-checked when the NIC is read ----

TEST(ParseTest, APrefixLengthOutsideZeroTo128IsABadResponse) {
  // get<int>() wrapped 2^32 + 28 to 28, a length Azure never sent.
  for (const json& length : {json(4294967324LL), json(-1), json(129), json(28.5), json("28")}) {
    json doc = nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true)});
    doc["properties"]["ipConfigurations"][0]["properties"]["privateIPAddressPrefixLength"] = length;
    auto nic = parseNetworkInterface(doc);
    ASSERT_FALSE(nic.has_value()) << length.dump();
    EXPECT_EQ(nic.error().code, ErrorCode::kBadResponse);
    EXPECT_NE(nic.error().message.find("ipConfiguration ipconfig1 has "
                                       "privateIPAddressPrefixLength"),
              std::string::npos)
        << nic.error().message;
  }
  json ok = nicJson("W/\"1\"", {ipConfig("ipconfig1", "10.0.0.4", true, 128)});
  EXPECT_TRUE(parseNetworkInterface(ok).has_value());
}

TEST(ParseTest, AnEtagThatCannotBeSentInIfMatchIsABadResponse) {
  for (const std::string& etag : {std::string("W/\"1\"\r\nX-Evil: 1"), std::string(2000, 'e')}) {
    auto nic = parseNetworkInterface(nicJson(etag, {ipConfig("ipconfig1", "10.0.0.4", true)}));
    ASSERT_FALSE(nic.has_value());
    EXPECT_EQ(nic.error().code, ErrorCode::kBadResponse);
    EXPECT_NE(nic.error().message.find("the etag is not a usable header value"), std::string::npos)
        << nic.error().message;
  }
}

}  // namespace
}  // namespace vnetipam::azure
