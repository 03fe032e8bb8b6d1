// libFuzzer target for the mock's request parsing (built only with clang; see CMakeLists.txt).
// Input layout: method '\n' path '\n' query '\n' header lines "Name: value" '\n' '\n' body.
// Every input must produce a response with a JSON object body and never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "azure-mock/arm_handler.h"
#include "azure-mock/identity.h"
#include "azure-mock/random.h"
#include "azure-mock/state.h"

namespace {

using namespace vnetipam::azuremock;

class FixedClock final : public vnetipam::base::Clock {
 public:
  TimePoint now() override { return now_ += std::chrono::milliseconds(10); }
  WallTimePoint wallNow() override { return {}; }
  void sleepFor(Duration d) override { now_ += d; }

 private:
  TimePoint now_{};
};

constexpr std::string_view kTopology = R"({"subscriptionId":"subid","resourceGroup":"rg1",
  "location":"eastus","virtualNetworks":[{"name":"v","addressPrefixes":["10.0.0.0/16"],
  "subnets":[{"name":"s","addressPrefix":"10.0.0.0/24"}]}],
  "networkInterfaces":[{"name":"n","subnet":"v/s","primaryIP":"10.0.0.4"}]})";

std::string_view nextLine(std::string_view& in) {
  const auto nl = in.find('\n');
  const auto line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FixedClock clock;
  static Mt19937RandomImpl random{1};
  static MockState state({.asyncDelay = std::chrono::milliseconds(20)}, clock, random);
  static const bool loaded = state.load(nlohmann::json::parse(kTopology)).has_value();
  static ArmHandler handler(state, {.tokenKey = "fuzz-token-key"}, clock, random,
                            [] { return std::int64_t{1700000000}; });
  if (!loaded) std::abort();

  std::string_view in(reinterpret_cast<const char*>(data), size);
  ArmRequest request;
  request.method = nextLine(in);
  request.path = nextLine(in);
  request.query = nextLine(in);
  request.headers.emplace_back(
      "Authorization", "Bearer " + issueAccessToken("fuzz-token-key", "t", "c",
                                                    "https://management.azure.com/", 1700000000));
  for (auto line = nextLine(in); !line.empty(); line = nextLine(in)) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    request.headers.emplace_back(std::string(line.substr(0, colon)),
                                 std::string(line.substr(colon + 1)));
  }
  request.body = in;
  const ArmResponse response = handler.handle(request);
  if (response.status < 200 || response.status > 599) std::abort();
  if (!nlohmann::json::parse(response.body, nullptr, false).is_object()) std::abort();
  // The address and operation indexes stay in step with the resources whatever came in.
  if (!state.checkIndexes()) std::abort();
  return 0;
}
