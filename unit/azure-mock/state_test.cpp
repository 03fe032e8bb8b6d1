#include "azure-mock/state.h"

#include <random>

#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using base::testing::FakeClock;
using nlohmann::json;
using testing::exampleTopology;
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
  // Lets every running operation finish.
  void settle() {
    clock.advance(std::chrono::seconds(3));
    state.advance();
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
  // Optional fields of the wrong type: refused with a message, not thrown.
  const auto wrongType =
      bad([](json& t) { t["networkInterfaces"][0]["enableIPForwarding"] = "yes"; });
  ASSERT_FALSE(wrongType);
  EXPECT_NE(wrongType.error().find("wrong type"), std::string::npos) << wrongType.error();
  EXPECT_FALSE(bad([](json& t) {
    t["networkInterfaces"][0]["ipConfigurations"] = json::array({{{"primary", "x"}}});
  }));
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

// Azure documents a NIC prefix as a /28, so IPv4 only (docs/design.md 3.3): every way of asking
// for an IPv6 prefix is a 400 CloudError, and the NIC keeps what it had.
TEST_F(StateTest, AnIPv6PrefixIsRefused) {
  const auto refused = [&](const json& config) {
    auto r = put(nicBody({config}));
    EXPECT_FALSE(r.has_value()) << config.dump();
    if (r) return std::string("ok");
    EXPECT_EQ(r.error().status, 400);
    EXPECT_FALSE(r.error().message.empty());
    const json body = r.error().toJson();
    EXPECT_EQ(body["error"]["code"], r.error().code) << body.dump();
    return r.error().code;
  };
  json v6 = prefixConfig("p6", "fd00:1::/80");
  v6["properties"]["privateIPAddressPrefixLength"] = 80;
  v6["properties"]["privateIPAddressVersion"] = "IPv6";
  EXPECT_EQ(refused(v6), "PrivateIPAddressVersionNotSupported");
  v6["properties"].erase("privateIPAddressVersion");
  EXPECT_EQ(refused(v6), "InvalidPrivateIPAddressPrefixLength") << "only /28";
  EXPECT_EQ(refused(prefixConfig("p6", "fd00:1::/28")), "InvalidPrivateIPAddress");
  json dynamic6 = prefixConfig("p6");
  dynamic6["properties"]["privateIPAddressVersion"] = "IPv6";
  EXPECT_EQ(refused(dynamic6), "PrivateIPAddressVersionNotSupported");
  const NetworkInterface* nic = state.findNic(kNicId);
  ASSERT_NE(nic, nullptr);
  for (const auto& c : nic->ipConfigurations)
    EXPECT_FALSE(c.prefix) << c.name;
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

// Subnets_CreateOrUpdate of an existing subnet's address prefixes: added ones take NICs' prefixes
// at once; one an ipConfiguration is in cannot go; overlaps and prefixes outside the VNET are
// refused as Azure refuses them.
TEST_F(StateTest, ASubnetsPrefixesGrowAndShrinkAsAzureAllows) {
  const std::string tiny = std::string(testing::kRg) +
                           "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/tiny";
  const auto prefixes = [](json list) { return json{{"properties", {{"addressPrefixes", list}}}}; };
  const auto codeOfSubnet = [&](json list) {
    auto r = state.setSubnetPrefixes(tiny, prefixes(std::move(list)));
    return r ? "ok" : r.error().code;
  };
  EXPECT_EQ(codeOfSubnet({"172.20.4.0/29", "172.20.2.128/26"}), "NetcfgSubnetRangesOverlap")
      << "the default subnet holds 172.20.2.0/24";
  EXPECT_EQ(codeOfSubnet({"172.20.4.0/29", "10.9.0.0/26"}), "NetcfgSubnetRangeOutsideVnet");
  EXPECT_EQ(codeOfSubnet({"172.20.4.0/29", "172.20.4.0/30"}), "InvalidAddressPrefixFormat");
  EXPECT_EQ(codeOfSubnet(json::array()), "InvalidRequestFormat");
  EXPECT_EQ(state.setSubnetPrefixes(tiny + "x", prefixes({"172.20.9.0/26"})).error().status, 404);

  ASSERT_EQ(codeOfSubnet({"172.20.4.0/29", "172.20.8.0/26"}), "ok");
  EXPECT_EQ(state.findSubnet(tiny)->prefixes.size(), 2u);
  // "tiny" had no room for a /28: the added prefix has, past Azure's first four addresses.
  json body = nicBody({});
  body["properties"]["ipConfigurations"][0]["properties"] = {
      {"primary", true},
      {"privateIPAllocationMethod", "Static"},
      {"privateIPAddress", "172.20.4.4"},
      {"subnet", {{"id", tiny}}}};
  body["properties"]["ipConfigurations"].push_back(prefixConfig("p"));
  const std::string nicId =
      std::string(testing::kRg) + "/providers/Microsoft.Network/networkInterfaces/grown-nic";
  ASSERT_TRUE(state.putNic(nicId, body, {}, "op1", false));
  settle();
  const auto* nic = state.findNic(nicId);
  ASSERT_NE(nic, nullptr);
  ASSERT_EQ(nic->ipConfigurations.size(), 2u);
  EXPECT_EQ(nic->ipConfigurations[1].prefix->toString(), "172.20.8.16/28");
  EXPECT_TRUE(state.checkIndexes()) << state.checkIndexes().error();

  // The added prefix holds a NIC's prefix now and the first the NIC's primary address: neither can
  // go. A third one, added and dropped again while empty, can.
  EXPECT_EQ(codeOfSubnet({"172.20.4.0/29"}), "InUseSubnetCannotBeUpdated");
  EXPECT_EQ(codeOfSubnet({"172.20.8.0/26"}), "InUseSubnetCannotBeUpdated");
  ASSERT_EQ(codeOfSubnet({"172.20.4.0/29", "172.20.8.0/26", "172.20.9.0/26"}), "ok");
  ASSERT_EQ(codeOfSubnet({"172.20.4.0/29", "172.20.8.0/26"}), "ok");
  EXPECT_EQ(state.findSubnet(tiny)->prefixes.size(), 2u);
  EXPECT_TRUE(state.checkIndexes()) << state.checkIndexes().error();
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

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

const std::string kNicB =
    "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/nic-b";

// nic-b's body: its primary 172.20.2.5 plus `extra`.
json nicBBody(std::vector<json> extra) {
  json body = nicBody(std::move(extra));
  body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "172.20.2.5";
  return body;
}

TEST_F(StateTest, PrefixMovedToAnotherNicIsTakenThereAndFreeHere) {
  ASSERT_TRUE(put(nicBody({prefixConfig("p", "172.20.2.80/28")})));
  settle();
  auto r = state.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.80/28")}), {}, "b1", false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "PrivateIPAddressInUse");
  EXPECT_EQ(r.error().message,
            "IP configuration " + kNicB +
                "/ipConfigurations/q is using the same private IP address 172.20.2.80/28 as IP "
                "configuration " +
                std::string(kNicId) + "/ipConfigurations/p.");
  // test-nic lets it go; nic-b takes it; now test-nic is refused, naming nic-b.
  ASSERT_TRUE(put(nicBody({})));
  settle();
  ASSERT_TRUE(state.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.80/28")}), {}, "b2", false))
      << "the prefix was released";
  settle();
  auto back = put(nicBody({prefixConfig("p", "172.20.2.80/28")}));
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, "PrivateIPAddressInUse");
  EXPECT_NE(back.error().message.find("nic-b/ipConfigurations/q."), std::string::npos)
      << back.error().message;
  // A single address inside the moved prefix is taken too; the old holder's slot is free.
  json single = {{"name", "s"},
                 {"properties",
                  {{"privateIPAllocationMethod", "Static"}, {"privateIPAddress", "172.20.2.95"}}}};
  EXPECT_EQ(codeOf(nicBody({single})), "PrivateIPAddressInUse");
  settle();
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.96/28")})), "ok");
  EXPECT_TRUE(state.checkIndexes()) << state.checkIndexes().error();
}

TEST_F(StateTest, IdsAndSubnetReferencesAreCaseInsensitive) {
  ASSERT_TRUE(put(nicBody({prefixConfig("p", "172.20.2.80/28")})));
  settle();
  // The same NIC through an upper-cased id: its own prefix is no conflict, and no NIC is added.
  json sameNic = nicBody({prefixConfig("P", "172.20.2.80/28")});
  sameNic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] =
      upper(testing::kSubnetId);
  auto r = state.putNic(upper(kNicId), sameNic, {}, "op-upper", false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->created);
  settle();
  std::size_t nics = 0;
  state.forEachNic([&](const NetworkInterface&) { ++nics; });
  EXPECT_EQ(nics, 2u);
  EXPECT_EQ(state.findNic(upper(kNicId)), state.findNic(kNicId));
  EXPECT_EQ(state.findNic(kNicId)->id, kNicId) << "keeps the id it was created with";
  EXPECT_EQ(state.findSubnet(upper(testing::kSubnetId)), state.findSubnet(testing::kSubnetId));
  // Another NIC naming the subnet in lower case still sees the prefix (the subnet is one).
  json other = nicBBody({prefixConfig("q", "172.20.2.80/28")});
  other["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] =
      toLower(testing::kSubnetId);
  auto b = state.putNic(upper(kNicB), other, {}, "b1", false);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, "PrivateIPAddressInUse");
  EXPECT_TRUE(state.checkIndexes()) << state.checkIndexes().error();
}

TEST_F(StateTest, FailedOperationsGiveBackOrRetakeTheirAddresses) {
  // A PUT that adds a prefix and then fails: held while it runs, free after.
  ASSERT_TRUE(put(nicBody({prefixConfig("p", "172.20.2.80/28")}), {}, /*fail=*/true));
  EXPECT_FALSE(
      state.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.80/28")}), {}, "b1", false))
      << "held while the operation runs";
  settle();
  EXPECT_TRUE(state.checkIndexes()) << state.checkIndexes().error();
  ASSERT_TRUE(state.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.80/28")}), {}, "b2", false))
      << "free once it failed";
  settle();
  // A PUT that removes a prefix and then fails: the prefix is back on the NIC and in the index.
  ASSERT_TRUE(state.putNic(kNicB, nicBBody({}), {}, "b3", /*fail=*/true));
  settle();
  EXPECT_EQ(state.findNic(kNicB)->ipConfigurations.size(), 2u);
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.80/28")})), "PrivateIPAddressInUse");
  // A PUT that creates a NIC and fails: the NIC is gone, and so are its addresses.
  const std::string fresh =
      std::string(testing::kRg) + "/providers/Microsoft.Network/networkInterfaces/fresh";
  json freshBody = nicBody({prefixConfig("f", "172.20.2.112/28")});
  freshBody["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "172.20.2.6";
  ASSERT_TRUE(state.putNic(fresh, freshBody, {}, "c1", /*fail=*/true));
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.112/28")})), "PrivateIPAddressInUse");
  settle();
  EXPECT_EQ(state.findNic(fresh), nullptr);
  EXPECT_EQ(codeOf(nicBody({prefixConfig("p", "172.20.2.112/28")})), "ok");
  EXPECT_TRUE(state.checkIndexes()) << state.checkIndexes().error();
}

TEST_F(StateTest, ReloadedStateDetectsTheSameConflicts) {
  ASSERT_TRUE(put(nicBody({prefixConfig("p", "172.20.2.80/28"), prefixConfig("d")})));
  settle();
  FakeClock c2;
  Mt19937RandomImpl r2{5};
  MockState reloaded(StateOptions{.asyncDelay = std::chrono::seconds(2)}, c2, r2);
  // Load something else first: a reload replaces the index, it does not add to it.
  ASSERT_TRUE(reloaded.load(exampleTopology()));
  ASSERT_TRUE(
      reloaded.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.128/28")}), {}, "x", false));
  ASSERT_TRUE(reloaded.load(state.toJson()));
  EXPECT_TRUE(reloaded.checkIndexes()) << reloaded.checkIndexes().error();
  auto taken =
      reloaded.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.80/28")}), {}, "y", false);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, "PrivateIPAddressInUse");
  auto dynamicTaken =
      reloaded.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.16/28")}), {}, "z", false);
  ASSERT_FALSE(dynamicTaken) << "the dynamic block survived the reload";
  ASSERT_TRUE(
      reloaded.putNic(kNicB, nicBBody({prefixConfig("q", "172.20.2.128/28")}), {}, "w", false))
      << "the pre-reload holder of .128 is gone";
  // A new dynamic block takes the first free one: .0/28 has the reserved addresses and the
  // primaries, .16 is d's since before the reload.
  c2.advance(std::chrono::seconds(3));
  reloaded.advance();
  ASSERT_TRUE(reloaded.putNic(
      kNicId, nicBody({prefixConfig("p", "172.20.2.80/28"), prefixConfig("d"), prefixConfig("e")}),
      {}, "v", false));
  EXPECT_EQ(reloaded.findNic(kNicId)->ipConfigurations[3].prefix->toString(), "172.20.2.32/28");
  EXPECT_TRUE(reloaded.checkIndexes()) << reloaded.checkIndexes().error();
}

// The index against a plain scan: random PUTs (static and dynamic, adds, moves, removals,
// failures) on a few NICs, each answer compared with what a scan of every NIC says.
TEST(AddressIndexTest, AgreesWithAScanOfEveryNic) {
  FakeClock clock;
  Mt19937RandomImpl random{11};
  MockState state(StateOptions{.asyncDelay = std::chrono::milliseconds(500)}, clock, random);
  ASSERT_TRUE(state.load(exampleTopology()));
  std::mt19937_64 rng(20240501);
  const std::vector<std::string> names = {"test-nic", "nic-b", "NIC-C", "nic-d"};
  const auto idOf = [&](std::size_t i) {
    return std::string(testing::kRg) + "/providers/Microsoft.Network/networkInterfaces/" + names[i];
  };
  // A scan over every NIC: who holds an address in [first, last] of the default subnet.
  const auto scan = [&](ipam::U128 first, ipam::U128 last, const std::string& except) {
    std::string owner;
    state.forEachNic([&](const NetworkInterface& nic) {
      if (!owner.empty() || toLower(nic.id) == toLower(except)) return;
      for (const auto& c : nic.ipConfigurations) {
        const auto p = c.prefix.value_or(ipam::Prefix::masked(c.address, 32));
        if (toLower(c.subnetId) == toLower(testing::kSubnetId) && p.first().bits() <= last &&
            first <= p.last().bits()) {
          owner = nic.id + "/ipConfigurations/" + c.name;
          return;
        }
      }
    });
    return owner;
  };
  const ipam::U128 base = ipam::IPAddress::parse("172.20.2.0")->bits();
  int accepted = 0;
  for (int step = 0; step < 600; ++step) {
    const std::size_t n = rng() % names.size();
    std::vector<json> extra;
    for (std::uint64_t k = rng() % 4; k > 0; --k) {
      const std::string name = fmt::format("c{}", rng() % 6);
      if (rng() % 3 == 0) {
        extra.push_back(prefixConfig(name));
      } else {
        extra.push_back(prefixConfig(
            name,
            ipam::IPAddress::fromBits(ipam::Family::kV4, base + 16 * (rng() % 16)).toString()));
      }
    }
    json body = nicBody(std::move(extra));
    body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] =
        fmt::format("172.20.2.{}", 4 + n);
    if (rng() % 2 == 0) body["properties"]["ipConfigurations"][0]["name"] = "IPCONFIG1";
    const std::string id = rng() % 2 == 0 ? idOf(n) : upper(idOf(n));
    auto r = state.putNic(id, body, {}, fmt::format("op{}", step), rng() % 5 == 0);
    if (r) ++accepted;
    ASSERT_TRUE(state.checkIndexes()) << "step " << step << ": " << state.checkIndexes().error();
    // Every /28 of the subnet: the index names the holder the scan names (nothing overlaps, so
    // there is at most one).
    for (ipam::U128 block = base + 16; block < base + 240; block += 16) {
      const auto* h = state.addressIndex().findOverlap(toLower(testing::kSubnetId), block,
                                                       block + 15, toLower(idOf(n)));
      ASSERT_EQ(h != nullptr ? h->owner : "", scan(block, block + 15, idOf(n))) << "step " << step;
    }
    clock.advance(std::chrono::milliseconds(100 * static_cast<int>(rng() % 8)));
    state.advance();
    ASSERT_TRUE(state.checkIndexes()) << "step " << step << ": " << state.checkIndexes().error();
  }
  EXPECT_GT(accepted, 100) << "the sequence should exercise accepted PUTs, not only refusals";
  FakeClock c2;
  Mt19937RandomImpl r2{1};
  MockState reloaded(StateOptions{}, c2, r2);
  ASSERT_TRUE(reloaded.load(state.toJson()));
  EXPECT_TRUE(reloaded.checkIndexes()) << reloaded.checkIndexes().error();
}

}  // namespace
}  // namespace vnetipam::azuremock
