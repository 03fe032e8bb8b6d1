#include "azure-mock/arm_handler.h"

#include <map>

#include <gtest/gtest.h>

#include "azure-mock/wire.h"
#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;
using testing::kRg;
using testing::MockFixture;
using testing::parsed;

std::string nicPath(std::string_view name = "test-nic", std::string_view api = "2024-05-01") {
  return fmt::format("{}/providers/Microsoft.Network/networkInterfaces/{}?api-version={}", kRg,
                     name, api);
}

// Every error the mock gives on an ARM path has the CloudError shape.
void expectCloudError(const ArmResponse& r, int status, std::string_view code) {
  EXPECT_EQ(r.status, status) << r.body;
  const json body = parsed(r);
  ASSERT_TRUE(body.is_object()) << r.body;
  ASSERT_TRUE(body.contains("error")) << r.body;
  EXPECT_EQ(body["error"]["code"], code) << r.body;
  EXPECT_TRUE(body["error"]["message"].is_string());
  EXPECT_EQ(r.header("Content-Type"), "application/json; charset=utf-8");
}

TEST(ArmHandler, MalformedJson) {
  MockFixture m;
  auto r = m.call("PUT", nicPath(), "{\"location\": ");
  expectCloudError(r, 400, "InvalidRequestFormat");
  EXPECT_EQ(parsed(r)["error"]["message"], "Cannot parse the request.");
  EXPECT_EQ(parsed(r)["error"]["details"][0]["code"], "InvalidJson");
  expectCloudError(m.call("PUT", nicPath(), "[1,2]"), 400, "InvalidRequestFormat");
  expectCloudError(m.call("PUT", nicPath(), R"({"properties":{"ipConfigurations":7}})"), 400,
                   "InvalidRequestFormat");
  expectCloudError(m.call("PUT", nicPath(), "{}", {{"Content-Type", "text/plain"}}), 415,
                   "UnsupportedMediaType");
}

TEST(ArmHandler, DeeplyNestedJsonIsRefusedBeforeParsing) {
  MockFixture m;
  // Deep enough that copying or printing it recursively would overflow the stack.
  constexpr int kDeep = 200000;
  std::string tags = std::string(kDeep, '[') + std::string(kDeep, ']');
  json body = testing::nicBody({});
  std::string text = body.dump();
  text.insert(1, R"("tags":{"a":)" + tags + "},");
  auto r = m.call("PUT", nicPath(), text);
  expectCloudError(r, 400, "InvalidRequestContent");
  expectCloudError(m.call("PUT", nicPath(), std::string(kDeep, '{')), 400, "InvalidRequestContent");
  expectCloudError(m.call("PUT", "/mock/faults", std::string(kDeep, '[')), 400,
                   "InvalidRequestContent");
  // Up to the limit is fine; brackets inside strings do not count.
  std::string nested = "1";
  for (int i = 2; i < kMaxJsonDepth; ++i)  // the body and tags objects are two levels
    nested = "[" + nested + "]";
  text = body.dump();
  text.insert(
      1,
      R"("tags":{"a":)" + nested +
          R"(,"b":"[[[[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["},)");
  r = m.call("PUT", nicPath(), text);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(m.getNic().status, 200);
}

TEST(Wire, ParseJsonBodyRefusesDeepNestingBeforeParsing) {
  EXPECT_FALSE(parseJsonBody("[[1]]", 1));
  EXPECT_EQ(parseJsonBody("[[1]]", 1).error().code, "InvalidRequestContent");
  EXPECT_EQ(parseJsonBody("[[1]", 5).error().code, "InvalidRequestFormat");
  EXPECT_EQ(*parseJsonBody("[[1]]", 2), json::parse("[[1]]"));
}

TEST(ArmHandler, ApiVersion) {
  MockFixture m;
  expectCloudError(m.call("GET", nicPath().substr(0, nicPath().find('?'))), 400,
                   "MissingApiVersionParameter");
  // 2024-01-01 predates privateIPAddressPrefixLength.
  expectCloudError(m.call("GET", nicPath("test-nic", "2024-01-01")), 400,
                   "NoRegisteredProviderFound");
  expectCloudError(m.call("GET", nicPath("test-nic", "yesterday")), 400,
                   "InvalidApiVersionParameter");
  expectCloudError(m.call("GET", nicPath() + "&api-version=2024-05-01"), 400,
                   "InvalidRequestFormat");
  EXPECT_EQ(m.call("GET", nicPath("test-nic", "2025-07-01")).status, 200);
}

TEST(ArmHandler, UnknownPathsAndResources) {
  MockFixture m;
  expectCloudError(m.call("GET", "/nope?api-version=2024-05-01"), 404, "NotFound");
  expectCloudError(m.call("GET", "/"), 404, "NotFound");
  expectCloudError(
      m.call("GET", std::string(kRg) +
                        "/providers/Microsoft.Network/loadBalancers/lb?api-version=2024-05-01"),
      404, "InvalidResourceType");
  expectCloudError(m.call("GET",
                          "/subscriptions/other/resourceGroups/rg1/providers/"
                          "Microsoft.Network/networkInterfaces/x?api-version=2024-05-01"),
                   404, "SubscriptionNotFound");
  expectCloudError(m.call("GET",
                          "/subscriptions/subid/resourceGroups/rg2/providers/"
                          "Microsoft.Network/networkInterfaces/x?api-version=2024-05-01"),
                   404, "ResourceGroupNotFound");
  auto patch = m.call("PATCH", nicPath());
  expectCloudError(patch, 405, "MethodNotAllowed");
  EXPECT_EQ(patch.header("Allow"), "GET, PUT, DELETE");
  auto deleteVnet = m.call("DELETE", std::string(kRg) +
                                         "/providers/Microsoft.Network/virtualNetworks/rg1-vnet"
                                         "?api-version=2024-05-01");
  expectCloudError(deleteVnet, 405, "MethodNotAllowed");
  EXPECT_EQ(deleteVnet.header("Allow"), "GET");
  expectCloudError(m.call("GET", "/subscriptions/subid/%zz"), 400, "InvalidRequestFormat");
  expectCloudError(m.call("GET", "/subscriptions//x"), 404, "NotFound");
  // ARM names are case-insensitive.
  EXPECT_EQ(m.call("GET",
                   "/SUBSCRIPTIONS/subid/resourcegroups/RG1/providers/microsoft.network/"
                   "networkinterfaces/TEST-NIC?api-version=2024-05-01")
                .status,
            200);
}

TEST(ArmHandler, OversizedBody) {
  HandlerOptions options;
  options.maxBodyBytes = 1024;
  MockFixture m({}, options);
  expectCloudError(m.call("PUT", nicPath(), std::string(2000, ' ')), 413, "RequestEntityTooLarge");
}

// The bearer challenge every 401 on an ARM path carries: authority, tenant, error, and a
// description that parses as a quoted-string.
void expectChallenge(const ArmResponse& r, std::string_view tenant) {
  const std::string h = r.header("WWW-Authenticate");
  const std::string head =
      fmt::format(R"(Bearer authorization_uri="http://mock.test/{}", error="invalid_token", )"
                  R"(error_description=")",
                  tenant);
  ASSERT_TRUE(h.starts_with(head)) << h;
  ASSERT_TRUE(h.ends_with("\"")) << h;
  const std::string description = h.substr(head.size(), h.size() - head.size() - 1);
  EXPECT_FALSE(description.empty()) << h;
  EXPECT_EQ(description.find('"'), std::string::npos) << h;
}

TEST(ArmHandler, Authentication) {
  MockFixture m;
  auto r = m.call("GET", nicPath(), "", {{"Authorization", ""}});
  expectCloudError(r, 401, "AuthenticationFailed");
  EXPECT_EQ(r.header("WWW-Authenticate"),
            R"(Bearer authorization_uri="http://mock.test/common", error="invalid_token", )"
            R"(error_description="The authentication failed because of missing 'Authorization' )"
            R"(header.")");
  r = m.call("GET", nicPath(), "", {{"Authorization", "Basic abc"}});
  expectCloudError(r, 401, "AuthenticationFailedInvalidHeader");
  expectChallenge(r, "common");
  r = m.call("GET", nicPath(), "", {{"Authorization", "Bearer x.y.z"}});
  expectCloudError(r, 401, "InvalidAuthenticationToken");
  expectChallenge(r, "common");
  const std::string expired = issueAccessToken(
      testing::kTokenKey, "t", "c", "https://management.azure.com/", testing::kNow - 4000);
  r = m.call("GET", nicPath(), "", {{"Authorization", "Bearer " + expired}});
  expectCloudError(r, 401, "InvalidAuthenticationToken");
  expectChallenge(r, "common");
  const std::string graph =
      issueAccessToken(testing::kTokenKey, "t", "c", "https://graph.microsoft.com/", testing::kNow);
  r = m.call("DELETE", nicPath(), "", {{"Authorization", "Bearer " + graph}});
  expectCloudError(r, 401, "InvalidAuthenticationToken");
  expectChallenge(r, "common");
  EXPECT_EQ(m.getNic().header("WWW-Authenticate"), "") << "only a 401 challenges";
}

TEST(ArmHandler, ChallengeNamesTheConfiguredTenant) {
  HandlerOptions options;
  options.clients = {{.tenantId = "tenant-a", .clientId = "c", .clientSecret = "s"},
                     {.tenantId = "tenant-b", .clientId = "d", .clientSecret = "s"}};
  MockFixture m({}, options);
  auto r = m.call("PUT", nicPath(), testing::nicBody({}).dump(), {{"Authorization", ""}});
  expectCloudError(r, 401, "AuthenticationFailed");
  expectChallenge(r, "tenant-a");
}

TEST(ArmHandler, InjectedThrottlingAndErrors) {
  HandlerOptions options;
  options.faults.throttleRate = 1;
  options.faults.retryAfterSeconds = 7;
  options.faults.latency = std::chrono::milliseconds(25);
  MockFixture m({}, options);
  auto r = m.getNic();
  expectCloudError(r, 429, "SubscriptionRequestsThrottled");
  EXPECT_EQ(r.header("Retry-After"), "7");
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-reads"), "0");
  EXPECT_EQ(r.delay, std::chrono::milliseconds(25));
  // Through the admin endpoint: throttling off, errors on.
  auto a = m.call("PUT", "/mock/faults", R"({"throttleRate":0,"errorRate":1})");
  ASSERT_EQ(a.status, 200) << a.body;
  for (int i = 0; i < 10; ++i) {
    r = m.getNic();
    EXPECT_TRUE(r.status == 500 || r.status == 503) << r.status;
  }
  expectCloudError(m.call("PUT", "/mock/faults", R"({"errorRate":2})"), 400, "InvalidFaults");
  expectCloudError(m.call("PUT", "/mock/faults", R"({"bogus":1})"), 400, "InvalidFaults");
  ASSERT_EQ(m.call("PUT", "/mock/faults", R"({"errorRate":0})").status, 200);
  EXPECT_EQ(m.getNic().status, 200);
}

TEST(ArmHandler, InjectedAsyncFailure) {
  HandlerOptions options;
  options.faults.asyncFailRate = 1;
  MockFixture m({}, options);
  auto r = m.putNic(testing::nicBody({testing::prefixConfig("p")}));
  ASSERT_EQ(r.status, 200) << r.body;
  m.clock.advance(std::chrono::seconds(1));
  const std::string url = r.header("Azure-AsyncOperation");
  auto poll = m.call("GET", url.substr(url.find("/subscriptions")));
  ASSERT_EQ(poll.status, 200);
  EXPECT_EQ(parsed(poll)["status"], "Failed");
  EXPECT_EQ(parsed(poll)["error"]["code"], "NetworkingInternalOperationError");
  EXPECT_EQ(parsed(m.getNic())["properties"]["provisioningState"], "Failed");
}

TEST(ArmHandler, NrpWriteLimit) {
  HandlerOptions options;
  options.writesPer5Min = 2;
  MockFixture m(StateOptions{.asyncDelay = std::chrono::milliseconds(0)}, options);
  EXPECT_EQ(m.putNic(testing::nicBody({})).status, 200);
  auto r = m.putNic(testing::nicBody({}));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-ms-ratelimit-remaining-subscription-resource-requests"), "0");
  r = m.putNic(testing::nicBody({}));
  expectCloudError(r, 429, "SubscriptionRequestsThrottled");
  EXPECT_EQ(r.header("Retry-After"), "300");
  EXPECT_EQ(m.getNic().status, 200) << "reads have their own budget";
  m.clock.advance(std::chrono::minutes(5));
  EXPECT_EQ(m.putNic(testing::nicBody({})).status, 200);
}

TEST(ArmHandler, ListNicsPagesWithNextLink) {
  HandlerOptions options;
  options.listPageSize = 1;
  MockFixture m({}, options);
  std::string next =
      std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces?api-version=2024-05-01";
  std::vector<std::string> names;
  for (int page = 0; page < 5 && !next.empty(); ++page) {
    auto r = m.call("GET", next);
    ASSERT_EQ(r.status, 200) << r.body;
    const json body = parsed(r);
    for (const auto& nic : body["value"])
      names.push_back(nic["name"]);
    next.clear();
    if (body.contains("nextLink")) {
      const std::string link = body["nextLink"];
      ASSERT_TRUE(link.starts_with("http://mock.test/subscriptions/")) << link;
      next = link.substr(std::string("http://mock.test").size());
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"nic-b", "test-nic"}));
  expectCloudError(m.call("GET", std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces"
                                                    "?api-version=2024-05-01&$skipToken=abc"),
                   400, "InvalidSkipToken");
}

// A NIC says whether it is its VM's primary one (the VM's first): what the controller's list of
// a resource group's NICs finds a VM's NIC by.
TEST(ArmHandler, ANicOfAVmSaysWhetherItIsThePrimaryOne) {
  MockFixture m;
  json doc = testing::exampleTopology();
  doc["networkInterfaces"].push_back(json::parse(
      R"({"name": "two-a", "subnet": "rg1-vnet/default", "primaryIP": "172.20.2.40"})"));
  doc["networkInterfaces"].push_back(json::parse(
      R"({"name": "two-b", "subnet": "rg1-vnet/default", "primaryIP": "172.20.2.41"})"));
  doc["virtualMachines"].push_back(
      json::parse(R"({"name": "two", "networkInterfaces": ["two-a", "two-b"]})"));
  auto loaded = m.state.load(doc);
  ASSERT_TRUE(loaded) << loaded.error();
  auto r =
      m.call("GET", std::string(kRg) +
                        "/providers/Microsoft.Network/networkInterfaces?api-version=2024-05-01");
  ASSERT_EQ(r.status, 200) << r.body;
  std::map<std::string, json> primary;
  const json body = parsed(r);
  for (const auto& nic : body["value"])
    primary[nic["name"].get<std::string>()] = nic["properties"].value("primary", json());
  ASSERT_EQ(primary.size(), 4u);
  EXPECT_EQ(primary["two-a"], true);
  EXPECT_EQ(primary["two-b"], false);
  EXPECT_EQ(primary["test-nic"], true) << "a VM's only NIC";
  EXPECT_EQ(primary["nic-b"], json()) << "on no VM";
}

// The usages of the example VNET, as {subnet name: [currentValue, limit]}, over every page.
std::map<std::string, std::pair<double, double>> vnetUsages(MockFixture& m) {
  std::map<std::string, std::pair<double, double>> out;
  std::string next = std::string(kRg) +
                     "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/usages"
                     "?api-version=2024-05-01";
  for (int page = 0; page < 10 && !next.empty(); ++page) {
    auto r = m.call("GET", next);
    EXPECT_EQ(r.status, 200) << r.body;
    const json body = parsed(r);
    for (const auto& u : body["value"]) {
      EXPECT_EQ(u["name"]["value"], "SubnetSpace");
      EXPECT_EQ(u["name"]["localizedValue"], "Subnet size and usage");
      EXPECT_EQ(u["unit"], "Count");
      const std::string id = u["id"];
      EXPECT_TRUE(id.starts_with(std::string(kRg) +
                                 "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/"))
          << id;
      out[id.substr(id.rfind('/') + 1)] = {u["currentValue"].get<double>(),
                                           u["limit"].get<double>()};
    }
    next.clear();
    if (body.contains("nextLink")) {
      const std::string link = body["nextLink"];
      EXPECT_TRUE(link.starts_with("http://mock.test/subscriptions/")) << link;
      next = link.substr(std::string("http://mock.test").size());
    }
  }
  return out;
}

TEST(ArmHandler, VnetUsagesCountEveryAddressHeldInEachSubnet) {
  HandlerOptions options;
  options.listPageSize = 2;  // three subnets: two pages, joined by nextLink
  MockFixture m(StateOptions{.asyncDelay = std::chrono::milliseconds(0)}, options);
  using Usage = std::pair<double, double>;
  // test-nic and nic-b hold one address each in "default"; the limit leaves out the 5 addresses
  // Azure keeps in every subnet.
  auto usages = vnetUsages(m);
  EXPECT_EQ(usages, (std::map<std::string, Usage>{
                        {"default", {2, 251}}, {"other", {0, 251}}, {"tiny", {0, 3}}}));
  // A /28 prefix on a NIC counts all its 16 addresses; a second single address counts one.
  ASSERT_EQ(m.putNic(testing::nicBody({testing::prefixConfig("p"),
                                       {{"name", "single"},
                                        {"properties",
                                         {{"privateIPAddress", "172.20.2.200"},
                                          {"privateIPAllocationMethod", "Static"},
                                          {"subnet", {{"id", testing::kSubnetId}}}}}}}))
                .status,
            200);
  EXPECT_EQ(vnetUsages(m)["default"], Usage(2 + 16 + 1, 251));
  // Taking them off gives them back.
  ASSERT_EQ(m.putNic(testing::nicBody({})).status, 200);
  EXPECT_EQ(vnetUsages(m)["default"], Usage(2, 251));

  expectCloudError(
      m.call("GET", std::string(kRg) + "/providers/Microsoft.Network/virtualNetworks/none/usages"
                                       "?api-version=2024-05-01"),
      404, "ResourceNotFound");
  expectCloudError(m.call("GET", std::string(kRg) +
                                     "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/usages"
                                     "?api-version=2024-05-01&$skipToken=x"),
                   400, "InvalidSkipToken");
  auto put = m.call("PUT",
                    std::string(kRg) +
                        "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/usages"
                        "?api-version=2024-05-01",
                    "{}");
  EXPECT_EQ(put.status, 405) << put.body;
}

TEST(ArmHandler, InspectionEndpoint) {
  MockFixture m(StateOptions{.asyncDelay = std::chrono::milliseconds(0)});
  ASSERT_EQ(m.putNic(testing::nicBody({testing::prefixConfig("p")})).status, 200);
  auto r = m.call("GET", "/mock/state");
  ASSERT_EQ(r.status, 200);
  const json doc = parsed(r);
  EXPECT_EQ(doc["routes"], json::parse(R"([{"prefix":"172.20.2.16/28","nextHop":"172.20.2.4"}])"));
  EXPECT_EQ(doc["networkInterfaces"].size(), 2u);
  EXPECT_TRUE(doc.contains("faults"));
  EXPECT_EQ(parsed(m.call("GET", "/mock/healthz"))["status"], "ok");
  expectCloudError(m.call("POST", "/mock/state"), 405, "MethodNotAllowed");
}

TEST(ArmHandler, CountsWritesInsideRetryAfterWindows) {
  HandlerOptions options;
  options.faults.throttleRate = 1;
  options.faults.retryAfterSeconds = 5;
  MockFixture m(StateOptions{.asyncDelay = std::chrono::milliseconds(0)}, options);
  const auto body = testing::nicBody({});
  EXPECT_EQ(m.putNic(body).status, 429);
  ASSERT_EQ(m.call("PUT", "/mock/faults", R"({"throttleRate":0})").status, 200);
  EXPECT_EQ(m.getNic().status, 200) << "a read inside the window is no violation";
  EXPECT_EQ(m.putNic(body, {}, "nic-b").status, 200) << "another resource has no window";
  m.clock.advance(std::chrono::seconds(2));
  EXPECT_EQ(m.putNic(body).status, 200) << "3 s early";
  json doc = parsed(m.call("GET", "/mock/state"));
  EXPECT_EQ(doc["retryAfterViolations"], 1);
  ASSERT_EQ(doc["retryAfter"]["violations"].size(), 1u);
  EXPECT_EQ(doc["retryAfter"]["violations"][0]["clientId"], "c");
  EXPECT_EQ(doc["retryAfter"]["violations"][0]["method"], "PUT");
  EXPECT_EQ(doc["retryAfter"]["violations"][0]["earlyByMs"], 3000);
  EXPECT_EQ(doc["retryAfter"]["windows"], 1);
  EXPECT_EQ(doc["counters"]["throttled"], 1);
  EXPECT_EQ(doc["counters"]["armWrites"], 3);
  // Another client has its own windows; once the window has passed, writes are fine.
  m.clock.advance(std::chrono::seconds(3));
  ASSERT_EQ(m.call("PUT", "/mock/faults", R"({"errorRate":1})").status, 200);
  auto r = m.putNic(body);
  while (r.status != 503)  // a 500 carries no Retry-After
    r = m.putNic(body);
  ASSERT_EQ(m.call("PUT", "/mock/faults", R"({"errorRate":0})").status, 200);
  const std::string other = issueAccessToken(testing::kTokenKey, "t", "other",
                                             "https://management.azure.com/", testing::kNow);
  EXPECT_EQ(m.putNic(body, {{"Authorization", "Bearer " + other}}).status, 200);
  m.clock.advance(std::chrono::seconds(5));
  EXPECT_EQ(m.putNic(body).status, 200);
  doc = parsed(m.call("GET", "/mock/state"));
  EXPECT_EQ(doc["retryAfterViolations"], 1);
  EXPECT_GE(doc["counters"]["serverErrors"], 1);
}

TEST(ArmHandler, IpConfigurationSubresources) {
  MockFixture m;
  auto r = m.call(
      "GET", std::string(testing::kNicId) + "/ipConfigurations/ipconfig1?api-version=2024-05-01");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parsed(r)["properties"]["privateIPAddress"], "172.20.2.4");
  r = m.call("GET", std::string(testing::kNicId) + "/ipConfigurations?api-version=2024-05-01");
  EXPECT_EQ(parsed(r)["value"].size(), 1u);
  expectCloudError(
      m.call("GET", std::string(testing::kNicId) + "/ipConfigurations/none?api-version=2024-05-01"),
      404, "NotFound");
}

TEST(ArmHandler, RouteSyncFollowsTheState) {
  MockFixture m(StateOptions{.asyncDelay = std::chrono::seconds(1)});
  testing::FakeRouteProgrammer fake;
  RouteSync sync(fake);
  ASSERT_EQ(m.putNic(testing::nicBody({testing::prefixConfig("p")})).status, 200);
  EXPECT_TRUE(sync.sync(m.handler.snapshotRoutes().first).empty());
  EXPECT_TRUE(fake.routes.empty()) << "in progress: not yet programmed";
  m.clock.advance(std::chrono::seconds(1));
  m.handler.tick();
  EXPECT_TRUE(sync.sync(m.handler.snapshotRoutes().first).empty());
  ASSERT_EQ(fake.routes.size(), 1u);
  EXPECT_EQ(fake.calls.back(), "replace 172.20.2.16/28 via 172.20.2.4");
  ASSERT_EQ(m.putNic(testing::nicBody({})).status, 200);
  m.clock.advance(std::chrono::seconds(1));
  m.handler.tick();
  EXPECT_TRUE(sync.sync(m.handler.snapshotRoutes().first).empty());
  EXPECT_TRUE(fake.routes.empty());
  EXPECT_EQ(fake.calls.back(), "del 172.20.2.16/28");
}

// nic-b's PUT body: its primary at 172.20.2.5 (Static) plus `extra`.
json nicBBody(std::vector<json> extra) {
  json body = testing::nicBody(std::move(extra));
  auto& primary = body["properties"]["ipConfigurations"][0]["properties"];
  primary["privateIPAddress"] = "172.20.2.5";
  primary["privateIPAllocationMethod"] = "Static";
  return body;
}

std::string localPart(const std::string& url) { return url.substr(url.find("/subscriptions")); }

TEST(ArmHandler, DeletingANicAVmHoldsIsRefusedAndChangesNothing) {
  MockFixture m;
  const json before = m.state.toJson();
  const auto revision = m.state.revision();
  auto r = m.call("DELETE", nicPath());
  expectCloudError(r, 400, "NicInUse");
  EXPECT_EQ(parsed(r)["error"]["message"],
            fmt::format("Network Interface {} is used by existing resource {}/providers/"
                        "Microsoft.Compute/virtualMachines/vm1. In order to delete the network "
                        "interface, it must be dissociated from the resource. To learn more, see "
                        "aka.ms/deletenic.",
                        testing::kNicId, kRg));
  EXPECT_EQ(r.header("Azure-AsyncOperation"), "");
  EXPECT_EQ(m.state.toJson(), before);
  EXPECT_EQ(m.state.revision(), revision);
  EXPECT_EQ(parsed(m.getNic())["properties"]["provisioningState"], "Succeeded");
}

TEST(ArmHandler, DeletingANicRunsAsAnOperationThenTheNicAndItsAddressesAreGone) {
  MockFixture m(StateOptions{.asyncDelay = std::chrono::seconds(1)});
  ASSERT_EQ(m.putNic(nicBBody({testing::prefixConfig("p")}), {}, "nic-b").status, 200);
  m.clock.advance(std::chrono::seconds(1));
  m.handler.tick();
  ASSERT_EQ(m.handler.snapshotRoutes().first.size(), 1u);

  auto r = m.call("DELETE", nicPath("nic-b"));
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.header("Retry-After"), "1");
  const std::string async = r.header("Azure-AsyncOperation");
  const std::string location = r.header("Location");
  const std::string id = r.header("x-ms-request-id");
  EXPECT_EQ(async, fmt::format("http://mock.test/subscriptions/subid/providers/Microsoft.Network/"
                               "locations/eastus/operations/{}?api-version=2024-05-01",
                               id));
  EXPECT_EQ(location,
            fmt::format("http://mock.test/subscriptions/subid/providers/Microsoft.Network/"
                        "locations/eastus/operationResults/{}?api-version=2024-05-01",
                        id));

  // While it runs: the NIC reads Deleting, keeps its addresses and routes, and takes no write.
  auto get = m.getNic("nic-b");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(parsed(get)["properties"]["provisioningState"], "Deleting");
  EXPECT_EQ(m.handler.snapshotRoutes().first.size(), 1u);
  expectCloudError(m.putNic(nicBBody({}), {}, "nic-b"), 409, "AnotherOperationInProgress");
  auto again = m.call("DELETE", nicPath("nic-b"));
  expectCloudError(again, 409, "AnotherOperationInProgress");
  EXPECT_NE(parsed(again)["error"]["message"].get<std::string>().find(async), std::string::npos);
  EXPECT_EQ(parsed(m.call("GET", localPart(async)))["status"], "InProgress");
  auto pending = m.call("GET", localPart(location));
  EXPECT_EQ(pending.status, 202);
  EXPECT_EQ(pending.header("Location"), location);
  // nic-b's primary is still taken.
  expectCloudError(m.putNic(nicBBody({}), {}, "nic-c"), 400, "PrivateIPAddressInUse");
  EXPECT_TRUE(m.state.checkIndexes()) << m.state.checkIndexes().error();

  m.clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(parsed(m.call("GET", localPart(async)))["status"], "Succeeded");
  EXPECT_EQ(m.call("GET", localPart(location)).status, 204);
  expectCloudError(m.getNic("nic-b"), 404, "ResourceNotFound");
  EXPECT_EQ(m.call("DELETE", nicPath("nic-b")).status, 204) << "already gone";
  EXPECT_TRUE(m.handler.snapshotRoutes().first.empty());
  EXPECT_TRUE(m.state.checkIndexes()) << m.state.checkIndexes().error();
  for (const auto& id2 : m.state.ipConfigurationIdsInSubnet(testing::kSubnetId))
    EXPECT_EQ(id2.find("nic-b"), std::string::npos) << id2;
  // Its addresses are free again.
  EXPECT_EQ(m.putNic(nicBBody({testing::prefixConfig("p", "172.20.2.16/28")}), {}, "nic-c").status,
            201);
}

TEST(ArmHandler, ANicDeletedAcrossARestartIsGone) {
  MockFixture m(StateOptions{.asyncDelay = std::chrono::seconds(5)});
  ASSERT_EQ(m.putNic(nicBBody({testing::prefixConfig("p")}), {}, "nic-b").status, 200);
  m.clock.advance(std::chrono::seconds(5));
  m.handler.tick();
  auto r = m.call("DELETE", nicPath("nic-b"));
  ASSERT_EQ(r.status, 202) << r.body;
  const json saved = m.state.toJson();

  // A new process loads what the old one saved mid-operation.
  MockFixture restarted(StateOptions{.asyncDelay = std::chrono::seconds(5)});
  ASSERT_TRUE(restarted.state.load(saved));
  EXPECT_TRUE(restarted.state.checkIndexes()) << restarted.state.checkIndexes().error();
  expectCloudError(restarted.getNic("nic-b"), 404, "ResourceNotFound");
  EXPECT_EQ(parsed(restarted.call("GET", localPart(r.header("Azure-AsyncOperation"))))["status"],
            "Succeeded");
  EXPECT_EQ(restarted.call("GET", localPart(r.header("Location"))).status, 204);
  EXPECT_TRUE(restarted.handler.snapshotRoutes().first.empty());
  EXPECT_EQ(restarted.getNic().status, 200) << "the other NICs are all there";
  EXPECT_EQ(restarted.putNic(nicBBody({}), {}, "nic-c").status, 201) << "its address is free";
  // And it saves and loads the same again.
  ASSERT_TRUE(restarted.state.load(restarted.state.toJson()));
  EXPECT_TRUE(restarted.state.checkIndexes()) << restarted.state.checkIndexes().error();
}

TEST(ArmHandler, ZeroDelayDeleteCompletesAtOnce) {
  MockFixture m(StateOptions{.asyncDelay = std::chrono::milliseconds(0)});
  auto r = m.call("DELETE", nicPath("nic-b"));
  ASSERT_EQ(r.status, 202) << r.body;
  expectCloudError(m.getNic("nic-b"), 404, "ResourceNotFound");
  EXPECT_EQ(m.call("GET", localPart(r.header("Location"))).status, 204);
  EXPECT_TRUE(m.state.checkIndexes()) << m.state.checkIndexes().error();
}

}  // namespace
}  // namespace vnetipam::azuremock
