#include "azure-mock/authorization.h"

#include <fstream>

#include <gtest/gtest.h>

#include "azure-mock/arm_handler.h"
#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;
using testing::kRg;
using testing::MockFixture;
using testing::parsed;

RoleDefinition role(std::vector<std::string> actions, std::vector<std::string> notActions = {}) {
  return RoleDefinition{.name = "test", .actions = std::move(actions), .notActions = notActions};
}

// The role the install guide tells users to create.
RoleDefinition documentedRole() {
  std::ifstream in(std::string(VNETIPAM_SOURCE_DIR) + "/docs/azure-role.json");
  auto parsedRole = parseRoleDefinition(json::parse(in));
  if (!parsedRole) throw std::runtime_error(parsedRole.error());
  return *parsedRole;
}

TEST(RoleDefinition, ParsesTheCliFormInAnyCase) {
  auto r = parseRoleDefinition(json::parse(
      R"({"Name": "n", "actions": ["Microsoft.Network/*/read"], "NOTACTIONS": ["x/read"]})"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->name, "n");
  EXPECT_EQ(r->actions, std::vector<std::string>{"Microsoft.Network/*/read"});
  EXPECT_EQ(r->notActions, std::vector<std::string>{"x/read"});
}

TEST(RoleDefinition, RefusalsNameTheKey) {
  EXPECT_EQ(parseRoleDefinition(json::array()).error(), "a role definition must be a JSON object");
  EXPECT_EQ(parseRoleDefinition(json::parse(R"({"Actions": "a/read"})")).error(),
            "\"Actions\": not a list");
  EXPECT_EQ(parseRoleDefinition(json::parse(R"({"Actions": ["a/read", 7]})")).error(),
            "\"Actions\"[1]: not a non-empty string");
  EXPECT_EQ(
      parseRoleDefinition(json::parse(R"({"Actions": ["a/read"], "NotActions": [""]})")).error(),
      "\"NotActions\"[0]: not a non-empty string");
  EXPECT_EQ(parseRoleDefinition(json::parse(R"({"Name": "empty"})")).error(),
            "\"Actions\": the role grants nothing");
}

TEST(RoleDefinition, WildcardsAndNotActionsAsAzureMatchesThem) {
  const auto r = role({"Microsoft.Network/*/read", "microsoft.compute/virtualmachines/READ"},
                      {"Microsoft.Network/virtualNetworks/*"});
  EXPECT_TRUE(permits(r, "Microsoft.Network/networkInterfaces/read"));
  EXPECT_TRUE(permits(r, "Microsoft.Network/locations/operations/read"));
  EXPECT_TRUE(permits(r, "Microsoft.Compute/virtualMachines/read"));  // case does not matter
  EXPECT_FALSE(permits(r, "Microsoft.Network/networkInterfaces/write"));
  EXPECT_FALSE(permits(r, "Microsoft.Network/virtualNetworks/subnets/read"));  // NotActions
  EXPECT_FALSE(permits(r, "Microsoft.Network/networkInterfaces/read/x"));
  EXPECT_TRUE(permits(role({"*"}), "anything/at/all"));
  EXPECT_FALSE(permits(role({"*/read"}), "Microsoft.Network/networkInterfaces/write"));
  // Many stars against a long action: the matcher backtracks without blowing up.
  EXPECT_FALSE(permits(role({std::string(200, '*') + "x"}), std::string(5000, 'a')));
}

TEST(RoleDefinition, LinkedSubnetsComeFromTheIpConfigurations) {
  json body = testing::nicBody({testing::prefixConfig("p")});
  body["properties"]["ipConfigurations"][1]["properties"]["subnet"] = {
      {"id", std::string(testing::kSubnetId)}};
  EXPECT_EQ(linkedSubnets(body), std::vector<std::string>{std::string(testing::kSubnetId)});
  EXPECT_TRUE(linkedSubnets(json::array()).empty());
  EXPECT_TRUE(
      linkedSubnets(json::parse(R"({"properties": {"ipConfigurations": [1, {}]}})")).empty());
}

HandlerOptions withRole(RoleDefinition r) {
  HandlerOptions options;
  options.role = std::move(r);
  return options;
}

// What the controller does for a node: read its VM, its NIC and the pod subnet, write the NIC,
// follow the write's operation. Returns the first refusal (empty when all pass).
std::string controllerCalls(MockFixture& m) {
  const auto check = [](const ArmResponse& r, std::string_view what) -> std::string {
    if (r.status == 403)
      return fmt::format("{}: {}", what, parsed(r)["error"]["message"].get<std::string>());
    if (r.status >= 300) return fmt::format("{}: unexpected {} {}", what, r.status, r.body);
    return {};
  };
  if (auto e = check(m.call("GET", fmt::format("{}/providers/Microsoft.Compute/virtualMachines/"
                                               "vm1?api-version=2024-07-01",
                                               kRg)),
                     "GET VM");
      !e.empty())
    return e;
  if (auto e = check(m.getNic(), "GET NIC"); !e.empty()) return e;
  if (auto e = check(m.call("GET", std::string(testing::kSubnetId) + "?api-version=2024-05-01"),
                     "GET subnet");
      !e.empty())
    return e;
  // The slow usage read (controller/subnet_usage.h): the addresses others hold in the subnet.
  if (auto e = check(
          m.call("GET", std::string(kRg) + "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/"
                                           "usages?api-version=2024-05-01"),
          "GET VNET usages");
      !e.empty())
    return e;
  auto put = m.putNic(testing::nicBody({testing::prefixConfig("p")}));
  if (auto e = check(put, "PUT NIC"); !e.empty()) return e;
  const std::string url = put.header("Azure-AsyncOperation");
  return check(m.call("GET", url.substr(url.find("/subscriptions"))), "GET operation");
}

TEST(ArmHandlerAuthorization, TheDocumentedRoleAllowsWhatTheControllerCalls) {
  MockFixture m({}, withRole(documentedRole()));
  EXPECT_EQ(controllerCalls(m), "");
}

TEST(ArmHandlerAuthorization, EveryActionOfTheDocumentedRoleIsNeeded) {
  const RoleDefinition full = documentedRole();
  for (std::size_t i = 0; i < full.actions.size(); ++i) {
    RoleDefinition less = full;
    less.actions.erase(less.actions.begin() + static_cast<std::ptrdiff_t>(i));
    MockFixture m({}, withRole(less));
    const std::string refused = controllerCalls(m);
    EXPECT_NE(refused.find(full.actions[i]), std::string::npos)
        << "without " << full.actions[i] << ": " << refused;
  }
}

TEST(ArmHandlerAuthorization, AMissingActionIs403NamingTheActionAndScope) {
  MockFixture m({}, withRole(role({"Microsoft.Network/networkInterfaces/read"})));
  EXPECT_EQ(m.getNic().status, 200);
  auto r = m.call("GET", std::string(testing::kSubnetId) + "?api-version=2024-05-01");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(parsed(r)["error"]["code"], "AuthorizationFailed");
  EXPECT_EQ(parsed(r)["error"]["message"],
            fmt::format("The client 'c' with object id 'c' does not have authorization to perform "
                        "action 'Microsoft.Network/virtualNetworks/subnets/read' over scope '{}' "
                        "or the scope is invalid. If access was recently granted, please refresh "
                        "your credentials.",
                        testing::kSubnetId));
}

TEST(ArmHandlerAuthorization, VnetUsagesNeedTheirOwnActionNotVnetRead) {
  const std::string usages = std::string(kRg) +
                             "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/usages"
                             "?api-version=2024-05-01";
  MockFixture m({}, withRole(role({"Microsoft.Network/virtualNetworks/read"})));
  auto r = m.call("GET", usages);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("Microsoft.Network/virtualNetworks/usages/read"), std::string::npos)
      << r.body;
  MockFixture allowed({}, withRole(role({"Microsoft.Network/virtualNetworks/usages/read"})));
  EXPECT_EQ(allowed.call("GET", usages).status, 200);
}

TEST(ArmHandlerAuthorization, ANicWriteWithoutSubnetJoinIsLinkedAuthorizationFailed) {
  MockFixture m({}, withRole(role({"Microsoft.Network/networkInterfaces/*"})));
  auto r = m.putNic(testing::nicBody({testing::prefixConfig("p")}));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(parsed(r)["error"]["code"], "LinkedAuthorizationFailed");
  const std::string message = parsed(r)["error"]["message"];
  EXPECT_NE(message.find("'Microsoft.Network/virtualNetworks/subnets/join/action' on the linked "
                         "scope(s) '" +
                         std::string(testing::kSubnetId) + "'"),
            std::string::npos)
      << message;
  // Nothing was written.
  EXPECT_EQ(parsed(m.getNic())["properties"]["ipConfigurations"].size(), 1u);
}

TEST(ArmHandlerAuthorization, DeletingANicNeedsTheDeleteActionTheControllerRoleLacks) {
  EXPECT_EQ(requiredAction(ArmResourceKind::kNetworkInterface, "DELETE"),
            "Microsoft.Network/networkInterfaces/delete");
  EXPECT_FALSE(permits(documentedRole(), "Microsoft.Network/networkInterfaces/delete"));
  const std::string nicB = fmt::format(
      "{}/providers/Microsoft.Network/networkInterfaces/nic-b?api-version=2024-05-01", kRg);
  MockFixture m({}, withRole(documentedRole()));
  auto r = m.call("DELETE", nicB);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(parsed(r)["error"]["code"], "AuthorizationFailed");
  EXPECT_NE(parsed(r)["error"]["message"].get<std::string>().find(
                "'Microsoft.Network/networkInterfaces/delete'"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(m.getNic("nic-b").status, 200) << "nothing was deleted";
  MockFixture allowed({}, withRole(role({"Microsoft.Network/networkInterfaces/*"})));
  EXPECT_EQ(allowed.call("DELETE", nicB).status, 202);
}

TEST(ArmHandlerAuthorization, AuthenticationComesFirst) {
  MockFixture m({}, withRole(role({"Microsoft.Network/networkInterfaces/read"})));
  auto r = m.call("GET", std::string(testing::kSubnetId) + "?api-version=2024-05-01", "",
                  {{"Authorization", "Bearer not-a-token"}});
  EXPECT_EQ(r.status, 401);
}

}  // namespace
}  // namespace vnetipam::azuremock
