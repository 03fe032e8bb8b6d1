#include "azure-mock/state.h"

#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;
using testing::exampleTopology;
using testing::FakeClock;
using testing::kNicId;
using testing::nicBody;
using testing::prefixConfig;

struct StateTest : ::testing::Test {
  StateTest() : state(StateOptions{.asyncDelay = std::chrono::seconds(2)}, clock, random) {
    EXPECT_TRUE(state.load(exampleTopology()).has_value());
  }
  std::expected<NicPutResult, CloudError> put(const json& body, NicPutPreconditions pre = {},
                                              bool fail = false) {
    return state.putNic(kNicId, body, pre, random.guid(), fail);
  }
  std::string codeOf(const json& body) {
    auto r = put(body);
    return r ? "ok" : r.error().code;
  }
  FakeClock clock;
  Mt19937RandomImpl random{7};
  MockState state;
};

TEST_F(StateTest, LoadsTopology) {
  const auto* nic = state.findNic(kNicId);
  ASSERT_NE(nic, nullptr);
  ASSERT_EQ(nic->ipConfigurations.size(), 1u);
  EXPECT_EQ(nic->ipConfigurations[0].address.toString(), "172.20.2.4");
  EXPECT_TRUE(nic->ipConfigurations[0].primary);
  EXPECT_TRUE(nic->etag.starts_with("W/\""));
  EXPECT_EQ(state.findNic(std::string(kNicId) + "x"), nullptr);
  EXPECT_EQ(state.findNic(toLower(kNicId)), nic) << "ids are case-insensitive";
}

TEST_F(StateTest, RefusesBadTopologies) {
  auto bad = [&](auto mutate) {
    json t = exampleTopology();
    mutate(t);
    FakeClock c;
    Mt19937RandomImpl r{1};
    MockState s({}, c, r);
    return s.load(t);
  };
  EXPECT_FALSE(bad([](json& t) { t["networkInterfaces"][0]["primaryIP"] = "172.20.2.1"; }))
      << "reserved address";
  EXPECT_FALSE(bad([](json& t) { t["networkInterfaces"][1]["primaryIP"] = "172.20.2.4"; }))
      << "duplicate address";
  EXPECT_FALSE(bad([](json& t) { t["networkInterfaces"][0]["subnet"] = "rg1-vnet/nope"; }));
  EXPECT_FALSE(bad([](json& t) {
    t["virtualNetworks"][0]["subnets"][1]["addressPrefix"] = "172.20.2.128/25";
  })) << "overlapping subnets";
  EXPECT_FALSE(bad([](json& t) {
    t["virtualNetworks"][0]["subnets"][0]["addressPrefix"] = "10.0.0.0/24";
  })) << "outside the VNET";
  EXPECT_FALSE(bad([](json& t) { t["virtualMachines"][0]["networkInterfaces"][0] = "ghost"; }));
  EXPECT_FALSE(bad([](json& t) { t.erase("subscriptionId"); }));
}

TEST_F(StateTest, DynamicPrefixTakesFirstFreeAlignedBlock) {
  ASSERT_TRUE(put(nicBody({prefixConfig("p1"), prefixConfig("p2")})));
  const auto* nic = state.findNic(kNicId);
  ASSERT_EQ(nic->ipConfigurations.size(), 3u);
  // 172.20.2.0/28 holds the reserved .0-.3 and the NICs' .4 and .5.
  EXPECT_EQ(nic->ipConfigurations[1].prefix->toString(), "172.20.2.16/28");
  EXPECT_EQ(nic->ipConfigurations[2].prefix->toString(), "172.20.2.32/28");
  EXPECT_EQ(nic->ipConfigurations[1].subnetId, testing::kSubnetId) << "inherits the subnet";
}

TEST_F(StateTest, PrefixRules) {
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.48/28")})), "ok");
  clock.advance(std::chrono::seconds(3));
  state.advance();
  // A prefix on the primary configuration.
  json primaryPrefix = nicBody({});
  primaryPrefix["properties"]["ipConfigurations"][0]["properties"]["privateIPAddressPrefixLength"] =
      28;
  EXPECT_EQ(codeOf(primaryPrefix), "PrivateIPAddressPrefixNotAllowedOnPrimaryIpConfiguration");
  json wrongLength = prefixConfig("p");
  wrongLength["properties"]["privateIPAddressPrefixLength"] = 27;
  EXPECT_EQ(codeOf(nicBody({wrongLength})), "InvalidPrivateIPAddressPrefixLength");
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.40/28")})),
            "InvalidPrivateIPAddressPrefix");
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.9.0/28")})), "PrivateIPAddressNotInSubnet");
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.240/28")})), "PrivateIPAddressIsReserved")
      << "holds the broadcast address";
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.0/28")})), "PrivateIPAddressIsReserved");
  json withPublicIp = prefixConfig("p");
  withPublicIp["properties"]["publicIPAddress"] = {{"id", "/x"}};
  EXPECT_EQ(codeOf(nicBody({withPublicIp})), "PublicIPAddressNotAllowedWithPrivateIPAddressPrefix");
  json otherSubnet = prefixConfig("p");
  otherSubnet["properties"]["subnet"] = {
      {"id",
       "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/"
       "rg1-vnet/subnets/other"}};
  EXPECT_EQ(codeOf(nicBody({otherSubnet})), "IpConfigurationsOnNicMustBeInSameSubnet");
  EXPECT_EQ(
      codeOf(nicBody({prefixConfig("a", "172.20.2.64/28"), prefixConfig("b", "172.20.2.64/28")})),
      "PrivateIPAddressInUse");
  EXPECT_EQ(codeOf(nicBody({prefixConfig("a", "172.20.2.64/28"), prefixConfig("A")})),
            "DuplicateResourceName");
  // Overlapping another NIC's address: nic-b holds 172.20.2.5, inside .0/28 (also reserved).
  json single = {{"name", "s"},
                 {"properties",
                  {{"privateIPAllocationMethod", "Static"}, {"privateIPAddress", "172.20.2.5"}}}};
  EXPECT_EQ(codeOf(nicBody({single})), "PrivateIPAddressInUse");
}

TEST_F(StateTest, OtherNicsPrefixesAreTaken) {
  json bBody = nicBody({prefixConfig("p", "172.20.2.80/28")});
  bBody["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "172.20.2.5";
  const std::string nicB =
      "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/nic-b";
  ASSERT_TRUE(state.putNic(nicB, bBody, {}, "op-b", false));
  auto r = put(nicBody({prefixConfig("p", "172.20.2.80/28")}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "PrivateIPAddressInUse");
  EXPECT_NE(r.error().message.find("nic-b/ipConfigurations/p"), std::string::npos);
  // Static single address inside another NIC's prefix.
  json single = {{"name", "s"},
                 {"properties",
                  {{"privateIPAllocationMethod", "Static"}, {"privateIPAddress", "172.20.2.81"}}}};
  EXPECT_EQ(codeOf(nicBody({single})), "PrivateIPAddressInUse");
}

TEST_F(StateTest, SubnetIsFull) {
  // "tiny" is a /29: no room for a /28 at all.
  json body = nicBody({});
  body["properties"]["ipConfigurations"][0]["properties"] = {
      {"primary", true},
      {"subnet",
       {{"id",
         "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/"
         "virtualNetworks/rg1-vnet/subnets/tiny"}}}};
  body["properties"]["ipConfigurations"].push_back(prefixConfig("p"));
  auto r = state.putNic(
      std::string(testing::kRg) + "/providers/Microsoft.Network/networkInterfaces/new-nic", body,
      {}, "op1", false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SubnetIsFull");
  EXPECT_EQ(r.error().message,
            "Subnet tiny with address prefix 172.20.4.0/29 does not have enough capacity for 16 IP "
            "addresses.");
}

TEST_F(StateTest, EtagsAndPreconditions) {
  const std::string before = state.findNic(kNicId)->etag;
  auto mismatch = put(nicBody({}), NicPutPreconditions{.ifMatch = "W/\"other\""});
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().status, 412);
  EXPECT_EQ(mismatch.error().details[0]["code"], "PreconditionFailedEtagMismatch");
  auto noneMatch = put(nicBody({}), NicPutPreconditions{.ifNoneMatch = "*"});
  ASSERT_FALSE(noneMatch);
  EXPECT_EQ(noneMatch.error().status, 412);
  ASSERT_TRUE(put(nicBody({prefixConfig("p")}), NicPutPreconditions{.ifMatch = before}));
  const auto* nic = state.findNic(kNicId);
  EXPECT_NE(nic->etag, before);
  for (const auto& c : nic->ipConfigurations)
    EXPECT_EQ(c.etag, nic->etag);
}

TEST_F(StateTest, AsyncOperationLifecycleAndConflict) {
  auto r = put(nicBody({prefixConfig("p")}));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->created);
  const auto* op = state.findOperation(r->operationId);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->status, OperationStatus::kInProgress);
  EXPECT_EQ(state.findNic(kNicId)->provisioningState, "Updating");
  EXPECT_TRUE(state.routes().empty()) << "not programmed until the operation succeeds";
  auto second = put(nicBody({}));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().status, 409);
  EXPECT_EQ(second.error().code, "AnotherOperationInProgress");
  clock.advance(std::chrono::milliseconds(1999));
  EXPECT_FALSE(state.advance());
  clock.advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(state.advance());
  EXPECT_EQ(state.findOperation(r->operationId)->status, OperationStatus::kSucceeded);
  EXPECT_EQ(state.findNic(kNicId)->provisioningState, "Succeeded");
  const auto routes = state.routes();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes.begin()->first.toString(), "172.20.2.16/28");
  EXPECT_EQ(routes.begin()->second.toString(), "172.20.2.4");
  // Releasing the prefix removes the route once that operation succeeds.
  ASSERT_TRUE(put(nicBody({})));
  EXPECT_EQ(state.routes().size(), 1u);
  clock.advance(std::chrono::seconds(2));
  state.advance();
  EXPECT_TRUE(state.routes().empty());
}

TEST_F(StateTest, FailedOperationRollsBack) {
  const auto before = state.findNic(kNicId)->etag;
  auto r = put(nicBody({prefixConfig("p")}), {}, /*fail=*/true);
  ASSERT_TRUE(r);
  clock.advance(std::chrono::seconds(2));
  state.advance();
  const auto* op = state.findOperation(r->operationId);
  EXPECT_EQ(op->status, OperationStatus::kFailed);
  ASSERT_TRUE(op->error.has_value());
  const auto* nic = state.findNic(kNicId);
  EXPECT_EQ(nic->ipConfigurations.size(), 1u);
  EXPECT_EQ(nic->provisioningState, "Failed");
  EXPECT_NE(nic->etag, before);
  EXPECT_TRUE(state.routes().empty());
}

TEST_F(StateTest, DynamicConfigurationsKeepTheirBlocksAcrossPuts) {
  ASSERT_TRUE(put(nicBody({prefixConfig("p1"), prefixConfig("p2")})));
  clock.advance(std::chrono::seconds(2));
  state.advance();
  // Drop p1, keep p2, add p3: p2 stays, p3 reuses p1's freed block.
  ASSERT_TRUE(put(nicBody({prefixConfig("p2"), prefixConfig("p3")})));
  const auto* nic = state.findNic(kNicId);
  EXPECT_EQ(nic->ipConfigurations[1].prefix->toString(), "172.20.2.32/28");
  EXPECT_EQ(nic->ipConfigurations[2].prefix->toString(), "172.20.2.16/28");
}

TEST_F(StateTest, StateDocumentRoundTrips) {
  ASSERT_TRUE(put(nicBody({prefixConfig("p1")})));
  clock.advance(std::chrono::seconds(2));
  state.advance();
  const json doc = state.toJson();
  FakeClock c2;
  Mt19937RandomImpl r2{99};
  MockState restored({}, c2, r2);
  ASSERT_TRUE(restored.load(doc)) << doc.dump(2);
  const auto* nic = restored.findNic(kNicId);
  ASSERT_NE(nic, nullptr);
  EXPECT_EQ(nic->etag, state.findNic(kNicId)->etag);
  ASSERT_EQ(nic->ipConfigurations.size(), 2u);
  EXPECT_EQ(nic->ipConfigurations[1].prefix->toString(), "172.20.2.16/28");
  EXPECT_TRUE(nic->ipConfigurations[1].dynamic);
  EXPECT_EQ(restored.routes(), state.routes());
  EXPECT_EQ(restored.toJson(), doc);
  EXPECT_NE(restored.findVirtualMachine(std::string(testing::kRg) +
                                        "/providers/Microsoft.Compute/virtualMachines/vm1"),
            nullptr);
}

TEST_F(StateTest, ZeroDelayCompletesAtOnce) {
  FakeClock c;
  Mt19937RandomImpl r{3};
  MockState s(StateOptions{.asyncDelay = std::chrono::milliseconds(0)}, c, r);
  ASSERT_TRUE(s.load(exampleTopology()));
  auto res = s.putNic(kNicId, nicBody({prefixConfig("p")}), {}, "op", false);
  ASSERT_TRUE(res);
  EXPECT_EQ(s.findOperation("op")->status, OperationStatus::kSucceeded);
  EXPECT_EQ(s.routes().size(), 1u);
}

}  // namespace
}  // namespace vnetipam::azuremock
