// Fuzz target: what Azure answers, through lib/azure's decoders. The input is one response body:
// the token endpoint's (parseTokenResponse), an ARM resource's (the four typed parsers, each
// ipConfiguration's prefix, and the prefix diff a NIC PUT is built from) and a CloudError
// (armError). Then the same body comes back from an in-memory transport to ArmClient's GET, list
// and PUT, so the paging and long-running-operation paths read it too.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_target.h"
#include "lib/azure/arm_client.h"
#include "lib/azure/bounded_json.h"
#include "lib/azure/credentials.h"
#include "lib/azure/network.h"
#include "unit/lib/base/fake_clock.h"

namespace vnetipam::fuzz {

const char* const kTargetName = "azure_decoders";

namespace {

using namespace vnetipam::azure;

constexpr std::string_view kEndpoint = "https://management.azure.com";
constexpr std::string_view kNic =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n"
    "?api-version=2024-05-01";

class FixedCredential final : public TokenCredential {
 public:
  Result<std::string> token() override { return std::string("fuzz-token"); }
  void invalidate() override {}
};

// Answers the first `answers` requests with the input (a 200, then the statuses in turn, each
// with headers that send the client on to the next request), then 404, so no path loops.
class InputTransport final : public http::HttpTransport {
 public:
  explicit InputTransport(std::string_view body) : body_(body) {}
  http::Result<http::HttpResponse> send(const http::HttpRequest&) override {
    static constexpr int kStatuses[] = {200, 201, 202, 200, 409, 200};
    if (sent_ >= std::size(kStatuses)) return http::HttpResponse{.status = 404, .body = "{}"};
    http::HttpResponse response{.status = kStatuses[sent_++], .body = body_};
    if (response.status == 201) {
      response.headers["Azure-AsyncOperation"] =
          std::string(kEndpoint) +
          "/subscriptions/s/providers/Microsoft.Network/locations/l/operations/o";
    }
    if (response.status == 202) response.headers["Location"] = std::string(kEndpoint) + "/op";
    return response;
  }
  http::Result<http::HttpResponse> stream(const http::HttpRequest& request,
                                          const std::function<bool(std::string_view)>&,
                                          http::CancelSignal&) override {
    return send(request);
  }

 private:
  std::string body_;
  std::size_t sent_ = 0;
};

void decodeResource(const nlohmann::json& doc) {
  (void)parseSubnet(doc);
  (void)parseVirtualNetwork(doc);
  (void)parseVirtualMachine(doc);
  const auto nic = parseNetworkInterface(doc);
  if (!nic) return;
  std::vector<ipam::Prefix> desired;
  for (const auto& config : nic->ipConfigs) {
    if (const auto prefix = config.prefix()) desired.push_back(*prefix);
  }
  (void)diffNicPrefixes(*nic, desired);
  desired.push_back(ipam::Prefix::parse("10.1.0.0/28").value());
  if (const auto diff = diffNicPrefixes(*nic, desired)) (void)diff->ipConfigurations.dump();
}

}  // namespace

void fuzzOne(std::string_view input) {
  (void)parseTokenResponse(input, "fuzz");
  if (const auto doc = parseBoundedJson(input, kMaxArmBodyBytes, "fuzz")) decodeResource(*doc);
  for (const int status : {400, 409, 412, 429, 500}) {
    const Error error =
        armError("Op", kNic, http::HttpResponse{.status = status, .body = std::string(input)});
    fuzzCheck(error.httpStatus == status, "armError lost the status");
  }

  const ArmClientOptions options{
      .maxRetries = 1, .maxThrottleRetries = 1, .readQps = 0, .writeQps = 0, .random01 = [] {
        return 0.5;
      }};
  // Time that only moves when someone sleeps: no wait is real.
  base::testing::FakeClock clock(base::Clock::WallTimePoint{});
  FixedCredential credential;
  {
    InputTransport transport(input);
    ArmClient arm(transport, std::string(kEndpoint), credential, clock, options);
    (void)arm.get("GetNetworkInterface", kNic);
  }
  {
    InputTransport transport(input);
    ArmClient arm(transport, std::string(kEndpoint), credential, clock, options);
    (void)arm.list("ListNetworkInterfaces", kNic);
  }
  {
    InputTransport transport(input);
    ArmClient arm(transport, std::string(kEndpoint), credential, clock, options);
    NetworkClient network(arm, 1);
    const std::vector<ipam::Prefix> desired = {ipam::Prefix::parse("10.1.0.16/28").value()};
    (void)network.setNicPrefixes(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n",
        desired);
  }
}

}  // namespace vnetipam::fuzz
