// Fuzz target: the bytes a client sends azure-vnet-mock, read as the server reads them
// (HttpRequestReader: request line, headers, Content-Length or chunked body, every size bounded)
// and answered by ArmHandler, for as many requests as the input holds on one connection, with the
// handler's timer ticking between them.
//
// ARM paths need a bearer token signed with the mock's key, which mutation cannot forge: the
// literal "Bearer @" in the input is replaced by "Bearer <a valid token>". The peer is loopback, so
// /mock/* is open too. Each input starts from the same state (a VNET, a subnet, a VM and a NIC).
//
// Besides crashes, it checks what the handler promises: every answer is an HTTP status with a
// JSON object body, and the state's indexes stay in step with its resources.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "azure-mock/arm_handler.h"
#include "azure-mock/http_reader.h"
#include "azure-mock/identity.h"
#include "azure-mock/random.h"
#include "azure-mock/state.h"
#include "fuzz/fuzz_target.h"
#include "unit/azure-mock/fakes.h"

namespace vnetipam::fuzz {

const char* const kTargetName = "mock_request";

namespace {

using namespace vnetipam::azuremock;

constexpr std::string_view kTokenKey = "fuzz-token-key";
constexpr std::int64_t kNow = 1700000000;
constexpr std::size_t kMaxRequests = 16;

constexpr std::string_view kTopology = R"({"subscriptionId":"sub","resourceGroup":"rg",
  "location":"eastus","virtualNetworks":[{"name":"vnet","addressPrefixes":["10.0.0.0/16"],
  "subnets":[{"name":"nodes","addressPrefix":"10.0.0.0/24"}]}],
  "virtualMachines":[{"name":"vm1","networkInterfaces":["nic1"]}],
  "networkInterfaces":[{"name":"nic1","subnet":"vnet/nodes","primaryIP":"10.0.0.4"}]})";

// The input in reads of at most 4 KiB, as a socket would give it.
class InputSource final : public ByteSource {
 public:
  explicit InputSource(std::string_view data) : data_(data) {}
  std::expected<std::size_t, std::string> read(char* out, std::size_t max) override {
    const std::size_t n = std::min({max, data_.size(), std::size_t{4096}});
    data_.copy(out, n);
    data_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view data_;
};

std::string withToken(std::string_view input) {
  static const std::string token =
      issueAccessToken(kTokenKey, "tenant", "client", "https://management.azure.com/", kNow);
  std::string out;
  out.reserve(input.size());
  constexpr std::string_view kMark = "Bearer @";
  for (std::size_t at = 0;;) {
    const auto found = input.find(kMark, at);
    out.append(input.substr(at, found - at));
    if (found == std::string_view::npos) break;
    out.append("Bearer ").append(token);
    at = found + kMark.size();
  }
  return out;
}

void checkResponse(const ArmResponse& response) {
  fuzzCheck(response.status >= 100 && response.status <= 599, "an answer's status is not HTTP");
  fuzzCheck(nlohmann::json::parse(response.body, nullptr, false).is_object(),
            "an answer's body is not a JSON object");
}

}  // namespace

void fuzzOne(std::string_view input) {
  base::testing::FakeClock clock;
  Mt19937RandomImpl random{1};
  MockState state({.asyncDelay = std::chrono::milliseconds(20)}, clock, random);
  fuzzCheck(state.load(nlohmann::json::parse(kTopology)).has_value(), "the topology does not load");
  ArmHandler handler(state,
                     {.readsPer5Min = 50, .writesPer5Min = 20, .tokenKey = std::string(kTokenKey)},
                     clock, random, [] { return kNow; });

  const std::string bytes = withToken(input);
  InputSource source(bytes);
  // Small limits, so mutations reach them.
  HttpRequestReader reader(source,
                           {.maxHeaderBytes = 2048, .maxHeaderCount = 16, .maxBodyBytes = 8192});
  for (std::size_t i = 0; i < kMaxRequests; ++i) {
    auto head = reader.readHead();
    if (!head) break;  // the stream ended, or the server answers an error and closes
    auto body = reader.readBody(*head);
    if (!body) break;
    ArmRequest request;
    request.method = head->method;
    const auto q = head->target.find('?');
    request.path = head->target.substr(0, q);
    if (q != std::string::npos) request.query = head->target.substr(q + 1);
    request.headers = head->headers;
    request.peerAddress = "127.0.0.1";
    request.body = std::move(*body);
    checkResponse(handler.handle(request));
    clock.advance(std::chrono::milliseconds(15));
    handler.tick();
    fuzzCheck(state.checkIndexes().has_value(), "the mock's indexes fell out of step");
    if (!head->keepAlive) break;
  }
}

}  // namespace vnetipam::fuzz
