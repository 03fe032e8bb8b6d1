// GCC has no libFuzzer, so this stands in for azure-mock/fuzz_arm_handler.cpp (built with clang):
// a few thousand random and mutated requests from a seeded RNG go through ArmHandler::handle,
// and every response must be well formed: a known status and a JSON object body (CloudError on
// ARM paths). The mock must never crash or throw.
#include <random>

#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;

std::vector<ArmRequest> seeds() {
  const std::string token =
      "Bearer " + issueAccessToken(testing::kTokenKey, "t", "c", "https://management.azure.com/",
                                   testing::kNow);
  const HeaderList arm = {{"Authorization", token}, {"Content-Type", "application/json"}};
  const std::string nic = std::string(testing::kNicId);
  return {
      {"GET", nic, "api-version=2024-05-01", arm, ""},
      {"PUT", nic, "api-version=2024-05-01", arm,
       testing::nicBody({testing::prefixConfig("p"), testing::prefixConfig("q", "172.20.2.48/28")})
           .dump()},
      {"GET", std::string(testing::kRg) + "/providers/Microsoft.Network/networkInterfaces",
       "api-version=2024-05-01&$skipToken=1", arm, ""},
      {"GET", std::string(testing::kSubnetId), "api-version=2024-05-01", arm, ""},
      {"GET", "/subscriptions/subid/providers/Microsoft.Network/locations/eastus/operations/x",
       "api-version=2024-05-01", arm, ""},
      {"POST",
       "/t/oauth2/v2.0/token",
       "",
       {{"Content-Type", "application/x-www-form-urlencoded"}},
       "grant_type=client_credentials&client_id=a&client_secret=b&scope=https%3A%2F%2Fmanagement."
       "azure.com%2F.default"},
      {"GET",
       "/metadata/identity/oauth2/token",
       "api-version=2018-02-01&resource=https://management.azure.com/",
       {{"Metadata", "true"}},
       ""},
      {"PUT", "/mock/faults", "", {}, R"({"latencyMs":0})", "127.0.0.1"},
      {"GET", "/mock/state", "", {}, "", "127.0.0.1"},
  };
}

std::string mutate(std::string s, std::mt19937_64& rng) {
  static constexpr std::string_view kInteresting = "/%?&={}[]\":,.\\\x00\xff+-0123456789aZ";
  const int edits = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < edits; ++i) {
    const std::size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 5) {
      case 0:
        if (!s.empty() && pos < s.size()) s.erase(pos, 1 + rng() % 4);
        break;
      case 1: s.insert(pos, 1, kInteresting[rng() % kInteresting.size()]); break;
      case 2:
        if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256);
        break;
      case 3: s.insert(pos, s.substr(rng() % (s.size() + 1), rng() % 16)); break;
      default: s = s.substr(0, pos); break;
    }
  }
  return s;
}

TEST(FuzzArmHandler, RandomAndMutatedRequestsGetWellFormedResponses) {
  std::mt19937_64 rng(20240501);
  testing::MockFixture m(StateOptions{.asyncDelay = std::chrono::milliseconds(0)});
  const auto base = seeds();
  constexpr std::array kMethods = {"GET", "PUT", "POST", "DELETE", "PATCH", "", "get"};
  for (int i = 0; i < 4000; ++i) {
    ArmRequest r = base[rng() % base.size()];
    switch (rng() % 4) {
      case 0: r.path = mutate(r.path, rng); break;
      case 1: r.query = mutate(r.query, rng); break;
      case 2: r.body = mutate(r.body, rng); break;
      default: r.method = kMethods[rng() % kMethods.size()]; break;
    }
    if (rng() % 10 == 0) r.headers.emplace_back(mutate("If-Match", rng), mutate("W/\"x\"", rng));
    const ArmResponse out = m.handler.handle(r);
    ASSERT_GE(out.status, 200) << r.method << " " << r.path;
    ASSERT_LT(out.status, 600);
    const json body = json::parse(out.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << out.body;
    if (out.status >= 400 && r.path.starts_with("/subscriptions")) {
      ASSERT_TRUE(body.contains("error") && body["error"].contains("code") &&
                  body["error"]["code"].is_string())
          << out.body;
    }
    m.clock.advance(std::chrono::milliseconds(10));
    const auto indexes = m.state.checkIndexes();
    ASSERT_TRUE(indexes) << indexes.error();
  }
  // And the state still holds together.
  EXPECT_TRUE(m.state.load(m.state.toJson())) << m.state.toJson().dump();
}

}  // namespace
}  // namespace vnetipam::azuremock
