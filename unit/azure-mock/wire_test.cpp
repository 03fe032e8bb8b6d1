// Wire fidelity of what the mock returns: every response body is checked against the field
// names, types, enums, bounds and required fields of the published specs (the facts, with their
// spec files, are in unit/lib/azure/arm_schema.h). The last test puts the project's real ARM
// client in front of the mock and checks both directions of a whole NIC programming exchange.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lib/azure/network.h"
#include "unit/azure-mock/conformance.h"
#include "unit/lib/azure/arm_fixture.h"

namespace vnetipam::azuremock {
namespace {

using azure::testing::schemaProblems;
using nlohmann::json;
using testing::expectConforms;
using testing::expectError;
using testing::kRg;
using testing::MockFixture;
using testing::parsed;

constexpr std::string_view kNet = "2024-05-01";

std::string net(std::string_view rest) {
  return fmt::format("{}/providers/Microsoft.Network/{}?api-version={}", kRg, rest, kNet);
}

TEST(WireSpec, NetworkResourcesFollowTheSpec) {
  MockFixture m;
  // One of the project's prefixes on test-nic, committed.
  ASSERT_EQ(m.putNic(testing::nicBody({testing::prefixConfig("p", "172.20.2.16/28")})).status, 200);
  m.clock.advance(std::chrono::seconds(5));

  expectConforms(m.getNic(), "NetworkInterface");
  const json nic = parsed(m.getNic());
  EXPECT_EQ(nic["properties"]["ipConfigurations"][1]["properties"]["privateIPAddressPrefixLength"],
            28);
  expectConforms(m.call("GET", net("networkInterfaces")), "NetworkInterfaceListResult");
  expectConforms(m.call("GET", net("networkInterfaces/test-nic/ipConfigurations")),
                 "NetworkInterfaceIPConfigurationListResult");
  expectConforms(m.call("GET", net("networkInterfaces/test-nic/ipConfigurations/p")),
                 "NetworkInterfaceIPConfiguration");
  expectConforms(m.call("GET", net("virtualNetworks/rg1-vnet")), "VirtualNetwork");
  expectConforms(m.call("GET", net("virtualNetworks/rg1-vnet/subnets")), "SubnetListResult");
  expectConforms(m.call("GET", net("virtualNetworks/rg1-vnet/subnets/default")), "Subnet");
  expectConforms(m.call("GET", net("virtualNetworks/rg1-vnet/usages")),
                 "VirtualNetworkListUsageResult");
  // A subnet of several prefixes (addressPrefixes), as a subnet PUT answers it and reads after.
  const auto put =
      m.call("PUT", net("virtualNetworks/rg1-vnet/subnets/tiny"),
             R"({"properties": {"addressPrefixes": ["172.20.4.0/29", "172.20.8.0/26"]}})");
  expectConforms(put, "Subnet");
  expectConforms(m.call("GET", net("virtualNetworks/rg1-vnet/subnets/tiny")), "Subnet");
  expectConforms(m.call("GET", net("virtualNetworks/rg1-vnet")), "VirtualNetwork");
}

TEST(WireSpec, TheVirtualMachineFollowsTheComputeSpec) {
  MockFixture m;
  expectConforms(m.call("GET", fmt::format("{}/providers/Microsoft.Compute/virtualMachines/vm1"
                                           "?api-version=2023-09-01",
                                           kRg)),
                 "VirtualMachine");
}

TEST(WireSpec, OperationsFollowTheSpec) {
  MockFixture m;
  auto put = m.putNic(testing::nicBody({testing::prefixConfig("p")}));
  expectConforms(put, "NetworkInterface");
  const std::string async = put.header("Azure-AsyncOperation");
  const std::string op = async.substr(async.find("/subscriptions/"));
  // AzureAsyncOperationResult (network.json) has status and error, nothing more.
  expectConforms(m.call("GET", op), "AzureAsyncOperationResult");
  m.clock.advance(std::chrono::seconds(5));
  expectConforms(m.call("GET", op), "AzureAsyncOperationResult");

  auto del = m.call("DELETE", net("networkInterfaces/nic-b"));
  ASSERT_EQ(del.status, 202) << del.body;
  const std::string location = del.header("Location");
  const std::string result = location.substr(location.find("/subscriptions/"));
  m.clock.advance(std::chrono::seconds(5));
  EXPECT_EQ(m.call("GET", result).status, 204);
  const std::string delAsync = del.header("Azure-AsyncOperation");
  expectConforms(m.call("GET", delAsync.substr(delAsync.find("/subscriptions/"))),
                 "AzureAsyncOperationResult");
}

TEST(WireSpec, ErrorsAreCloudErrors) {
  MockFixture m;
  expectConforms(m.call("GET", net("networkInterfaces/nope")), "CloudError", 404);
  expectConforms(m.call("GET", fmt::format("{}/providers/Microsoft.Network/networkInterfaces/"
                                           "test-nic",
                                           kRg)),
                 "CloudError", 400);
  expectConforms(m.call("GET", net("networkInterfaces/test-nic"), "",
                        {{"Authorization", "Bearer not-a-token"}}),
                 "CloudError", 401);
  expectConforms(m.call("DELETE", net("networkInterfaces/test-nic")), "CloudError", 400);
  auto stale = testing::nicBody({});
  expectConforms(m.putNic(stale, {{"If-Match", "W/\"stale\""}}), "CloudError", 412);
}

// A Microsoft.Compute route answers its errors as Compute's spec has them: common.json's
// CloudError (ComputeCloudError here), not network.json's.
TEST(WireSpec, ComputeErrorsAreComputesCloudErrors) {
  MockFixture m;
  const std::string vm = fmt::format("{}/providers/Microsoft.Compute/virtualMachines/", kRg);
  expectError(m.call("GET", vm + "nope?api-version=2023-09-01"), "ComputeCloudError", 404,
              "ResourceNotFound");
  expectError(m.call("GET",
                     "/subscriptions/subid/resourceGroups/nope/providers/Microsoft.Compute/"
                     "virtualMachines/vm1?api-version=2023-09-01"),
              "ComputeCloudError", 404, "ResourceGroupNotFound");
  testing::expectComputeRefusals(m, vm + "vm1", "latest");
}

// The two error definitions differ: Compute's ApiError has innererror (an InnerError object)
// and its details (ApiErrorBase) have no details of their own; network.json's CloudErrorBody has
// no innererror and nests details.
TEST(WireSpec, ComputeAndNetworkErrorDefinitionsDiffer) {
  const json compute = json::parse(R"({"error": {"code": "c", "message": "m", "target": "t",
      "details": [{"code": "d", "message": "n", "target": "u"}],
      "innererror": {"exceptiontype": "e", "errordetail": "x"}}})");
  EXPECT_TRUE(schemaProblems(compute, "ComputeCloudError").empty())
      << ::testing::PrintToString(schemaProblems(compute, "ComputeCloudError"));
  EXPECT_EQ(schemaProblems(compute, "CloudError").size(), 1u)
      << ::testing::PrintToString(schemaProblems(compute, "CloudError"));

  const json network = json::parse(R"({"error": {"code": "c", "message": "m",
      "details": [{"code": "d", "message": "n", "details": []}]}})");
  EXPECT_TRUE(schemaProblems(network, "CloudError").empty())
      << ::testing::PrintToString(schemaProblems(network, "CloudError"));
  const auto problems = schemaProblems(network, "ComputeCloudError");
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("$.error.details[0].details"), std::string::npos) << problems[0];
}

// The failures a client meets on its way: a NIC PUT while another operation runs (409), the
// operation that failed (its status body carries an Error), a throttled call (429), a body that
// is not JSON (400), the wrong media type (415).
TEST(WireSpec, FailuresOnTheWayFollowTheSpec) {
  HandlerOptions options;
  options.faults.asyncFailRate = 1;
  MockFixture m({}, options);
  auto put = m.putNic(testing::nicBody({testing::prefixConfig("p")}));
  ASSERT_EQ(put.status, 200) << put.body;
  expectConforms(m.putNic(testing::nicBody({testing::prefixConfig("p")})), "CloudError", 409);
  m.clock.advance(std::chrono::seconds(5));
  const std::string async = put.header("Azure-AsyncOperation");
  const auto failed = m.call("GET", async.substr(async.find("/subscriptions/")));
  expectConforms(failed, "AzureAsyncOperationResult");
  EXPECT_EQ(parsed(failed)["status"], "Failed");
  expectConforms(m.call("PUT", net("networkInterfaces/test-nic"), "{not json"), "CloudError", 400);
  expectConforms(
      m.call("PUT", net("networkInterfaces/test-nic"), "{}", {{"Content-Type", "text/plain"}}),
      "CloudError", 415);

  HandlerOptions limited;
  limited.writesPer5Min = 1;
  MockFixture t(StateOptions{.asyncDelay = std::chrono::milliseconds(0)}, limited);
  ASSERT_EQ(t.putNic(testing::nicBody({})).status, 200);
  t.clock.advance(std::chrono::seconds(1));
  expectConforms(t.putNic(testing::nicBody({})), "CloudError", 429);
}

// The project's ARM client talking to the mock in process: every request it sends and every
// response it gets are recorded.
class MockTransport final : public http::testing::SendOnlyTransport {
 public:
  explicit MockTransport(MockFixture& m) : m_(m) {}
  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    HeaderList headers;
    for (const auto& [k, v] : request.headers) {
      // The fixture signs its own token; the client's fake one would be refused.
      if (!MockFixture::hasHeader({{k, v}}, "Authorization")) headers.emplace_back(k, v);
    }
    auto r = m_.call(request.method, request.target, request.body, headers);
    exchanges.push_back({request, r});
    http::HttpResponse out{.status = r.status, .headers = {}, .body = r.body};
    for (const auto& [k, v] : r.headers)
      out.headers[k] = v;
    return out;
  }
  struct Exchange {
    http::HttpRequest request;
    ArmResponse response;
  };
  std::vector<Exchange> exchanges;

 private:
  MockFixture& m_;
};

TEST(WireSpec, TheClientAndTheMockAgreeOnEveryMessage) {
  MockFixture m;
  MockTransport transport(m);
  azure::testing::FakeCredential credential;  // its token is dropped: the fixture signs its own
  azure::ArmClient arm(transport, "http://mock.test", credential, m.clock,
                       azure::testing::unpacedArmOptions());
  azure::NetworkClient network(arm);
  const std::string nicId = std::string(testing::kNicId);
  const std::vector<ipam::Prefix> two = {ipam::Prefix::parse("172.20.2.16/28").value(),
                                         ipam::Prefix::parse("172.20.2.32/28").value()};
  ASSERT_TRUE(network.setNicPrefixes(nicId, two).has_value());
  ASSERT_TRUE(network.setNicPrefixes(nicId, std::span(two).first(1)).has_value());
  auto vm = network.getVirtualMachine(
      fmt::format("{}/providers/Microsoft.Compute/virtualMachines/vm1", kRg));
  ASSERT_TRUE(vm.has_value()) << vm.error().message;
  ASSERT_TRUE(network
                  .listVirtualNetworkUsage(
                      fmt::format("{}/providers/Microsoft.Network/virtualNetworks/rg1-vnet", kRg))
                  .has_value());

  int puts = 0;
  for (const auto& [request, response] : transport.exchanges) {
    const std::string path = request.target.substr(0, request.target.find('?'));
    SCOPED_TRACE(request.method + " " + request.target);
    if (request.method == "PUT") {
      ++puts;
      const auto problems = schemaProblems(json::parse(request.body), "NetworkInterface");
      EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
    }
    std::string definition;
    if (path.find("/operations/") != std::string::npos)
      definition = "AzureAsyncOperationResult";
    else if (path.ends_with("/usages"))
      definition = "VirtualNetworkListUsageResult";
    else if (path.find("/networkInterfaces/") != std::string::npos)
      definition = "NetworkInterface";
    else if (path.find("/virtualMachines/") != std::string::npos)
      definition = "VirtualMachine";
    ASSERT_FALSE(definition.empty()) << "an exchange the test does not classify";
    expectConforms(response, definition, response.status);
    EXPECT_LT(response.status, 300);
  }
  EXPECT_EQ(puts, 2);
}

}  // namespace
}  // namespace vnetipam::azuremock
