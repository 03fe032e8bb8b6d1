// Shared fakes for the azure-mock tests: a recording route programmer, and
// a small topology matching the reference file's examples (subscription "subid", group "rg1",
// VNET "rg1-vnet", subnet "default" 172.20.2.0/24, NIC "test-nic" at 172.20.2.4).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "azure-mock/arm_handler.h"
#include "azure-mock/identity.h"
#include "azure-mock/random.h"
#include "azure-mock/route_programmer.h"
#include "azure-mock/state.h"
#include "unit/lib/base/fake_clock.h"

namespace vnetipam::azuremock::testing {

class FakeRouteProgrammer final : public RouteProgrammer {
 public:
  std::expected<void, std::string> replaceRoute(const ipam::Prefix& block,
                                                const ipam::IPAddress& via) override {
    calls.push_back("replace " + block.toString() + " via " + via.toString());
    if (failNext) {
      failNext = false;
      return std::unexpected("injected failure");
    }
    routes[block] = via;
    return {};
  }
  std::expected<void, std::string> deleteRoute(const ipam::Prefix& block) override {
    calls.push_back("del " + block.toString());
    routes.erase(block);
    return {};
  }
  Routes routes;
  std::vector<std::string> calls;
  bool failNext = false;
};

inline constexpr std::string_view kSub = "subid";
inline constexpr std::string_view kRg = "/subscriptions/subid/resourceGroups/rg1";
inline constexpr std::string_view kNicId =
    "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/"
    "test-nic";
inline constexpr std::string_view kSubnetId =
    "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/rg1-vnet/"
    "subnets/default";
inline constexpr std::int64_t kNow = 1700000000;
// The fixture's token signing key (main() draws a random one).
inline constexpr std::string_view kTokenKey = "unit-test-token-signing-key";

inline nlohmann::json exampleTopology() {
  return nlohmann::json::parse(R"({
    "subscriptionId": "subid", "resourceGroup": "rg1", "location": "eastus",
    "virtualNetworks": [{"name": "rg1-vnet", "addressPrefixes": ["172.20.0.0/16"],
      "subnets": [{"name": "default", "addressPrefix": "172.20.2.0/24"},
                  {"name": "other", "addressPrefix": "172.20.3.0/24"},
                  {"name": "tiny", "addressPrefix": "172.20.4.0/29"}]}],
    "networkInterfaces": [
      {"name": "test-nic", "subnet": "rg1-vnet/default", "primaryIP": "172.20.2.4"},
      {"name": "nic-b", "subnet": "rg1-vnet/default", "primaryIP": "172.20.2.5"}],
    "virtualMachines": [{"name": "vm1", "networkInterfaces": ["test-nic"]}]
  })");
}

// A NIC PUT body: the primary config plus `extra` secondary configurations.
inline nlohmann::json nicBody(std::vector<nlohmann::json> extra) {
  nlohmann::json configs = nlohmann::json::array({{{"name", "ipconfig1"},
                                                   {"properties",
                                                    {{"primary", true},
                                                     {"privateIPAddress", "172.20.2.4"},
                                                     {"subnet", {{"id", kSubnetId}}}}}}});
  for (auto& e : extra)
    configs.push_back(std::move(e));
  return {{"location", "eastus"}, {"properties", {{"ipConfigurations", configs}}}};
}

inline nlohmann::json prefixConfig(std::string name, std::string address = "") {
  nlohmann::json props = {{"privateIPAddressPrefixLength", 28}};
  if (!address.empty()) {
    props["privateIPAddress"] = address;
    props["privateIPAllocationMethod"] = "Static";
  }
  return {{"name", std::move(name)}, {"properties", props}};
}

// State + handler wired to fakes, with the example topology loaded.
struct MockFixture {
  explicit MockFixture(StateOptions stateOptions = {}, HandlerOptions handlerOptions = {})
      : state(stateOptions, clock, random),
        handler(state, withTokenKey(std::move(handlerOptions)), clock, random,
                [] { return kNow; }) {
    auto ok = state.load(exampleTopology());
    if (!ok) throw std::runtime_error(ok.error());
  }

  ArmResponse call(std::string method, std::string pathAndQuery, std::string body = "",
                   HeaderList headers = {}) {
    ArmRequest r;
    r.method = std::move(method);
    const auto q = pathAndQuery.find('?');
    r.path = pathAndQuery.substr(0, q);
    if (q != std::string::npos) r.query = pathAndQuery.substr(q + 1);
    r.headers = std::move(headers);
    r.peerAddress = peer;
    r.headers.emplace_back("Host", "mock.test");
    if (!findAuth(r.headers))
      r.headers.emplace_back(
          "Authorization",
          "Bearer " + issueAccessToken(kTokenKey, "t", "c", "https://management.azure.com/", kNow));
    if (r.method == "PUT" && !hasHeader(r.headers, "Content-Type"))
      r.headers.emplace_back("Content-Type", "application/json");
    r.body = std::move(body);
    return handler.handle(r);
  }
  ArmResponse getNic(std::string_view name = "test-nic") {
    return call("GET", fmt::format("{}/providers/Microsoft.Network/networkInterfaces/{}"
                                   "?api-version=2024-05-01",
                                   kRg, name));
  }
  ArmResponse putNic(const nlohmann::json& body, HeaderList headers = {},
                     std::string_view name = "test-nic") {
    return call("PUT",
                fmt::format("{}/providers/Microsoft.Network/networkInterfaces/{}"
                            "?api-version=2024-05-01",
                            kRg, name),
                body.dump(), std::move(headers));
  }

  static HandlerOptions withTokenKey(HandlerOptions options) {
    if (options.tokenKey.empty()) options.tokenKey = kTokenKey;
    return options;
  }
  static bool hasHeader(const HeaderList& h, std::string_view name) {
    for (const auto& [k, v] : h) {
      if (toLower(k) == toLower(name)) return true;
    }
    return false;
  }
  static bool findAuth(const HeaderList& h) { return hasHeader(h, "Authorization"); }

  // The TCP peer every call() comes from: loopback unless a test says otherwise.
  std::string peer = "127.0.0.1";
  base::testing::FakeClock clock;
  Mt19937RandomImpl random{42};
  MockState state;
  ArmHandler handler;
};

inline nlohmann::json parsed(const ArmResponse& r) {
  return nlohmann::json::parse(r.body, nullptr, false);
}

}  // namespace vnetipam::azuremock::testing
