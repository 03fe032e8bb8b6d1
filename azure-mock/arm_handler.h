// The mock's whole HTTP surface as a pure function: a plain request in, a plain response out.
// Routing, api-version checks, authentication, CloudError bodies, rate limits and fault-injection
// decisions all live here, so every behaviour is tested without a socket (http_server.cpp only
// adapts cpprestsdk to these structs).
//
// Endpoints:
//   POST /{tenant}/oauth2/v2.0/token, POST /{tenant}/oauth2/token, GET
//   /metadata/identity/oauth2/token GET
//   .../providers/Microsoft.Network/virtualNetworks/{vnet}[/subnets[/{subnet}]] GET
//   .../providers/Microsoft.Compute/virtualMachines/{vm} GET
//   .../providers/Microsoft.Network/networkInterfaces            (nextLink paging) GET|PUT|DELETE
//   .../providers/Microsoft.Network/networkInterfaces/{nic} GET
//   .../networkInterfaces/{nic}/ipConfigurations[/{name}] GET
//   /subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operations/{id} GET
//   /subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operationResults/{id} GET
//   /mock/state, GET|PUT /mock/faults   (inspection and admin: loopback or the admin token)
//   GET /mock/healthz                   (no auth: probes)
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "azure-mock/authorization.h"
#include "azure-mock/random.h"
#include "azure-mock/rate_limits.h"
#include "azure-mock/state.h"
#include "lib/base/clock.h"

namespace vnetipam::azuremock {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ArmRequest {
  std::string method;
  std::string path;   // percent-encoded, without the query: "/subscriptions/s/..."
  std::string query;  // percent-encoded, without '?': "api-version=2024-05-01"
  HeaderList headers;
  std::string body;
  // The TCP peer's address as text ("127.0.0.1", "::1"); "" when unknown. Decides, with the admin
  // token, who may use /mock/*.
  std::string peerAddress;
};

struct ArmResponse {
  int status = 200;
  HeaderList headers;
  std::string body;
  // Injected latency: the server waits this long before answering.
  std::chrono::milliseconds delay{0};

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

struct FaultOptions {
  double throttleRate = 0;  // share of ARM requests answered 429 with Retry-After
  int retryAfterSeconds = 1;
  double errorRate = 0;  // share of ARM requests answered 500 or 503
  std::chrono::milliseconds latency{0};
  double asyncFailRate = 0;  // share of NIC PUT operations that end Failed

  nlohmann::json toJson() const;
  // Accepts any subset of the fields toJson() writes; rates in [0, 1].
  static std::expected<FaultOptions, std::string> fromJson(const nlohmann::json& j,
                                                           FaultOptions base);
};

// A service principal the token endpoints accept. With none configured, any well-formed
// request gets a token.
struct ClientCredential {
  std::string tenantId;
  std::string clientId;
  std::string clientSecret;  // empty: only a client assertion is accepted
};

struct HandlerOptions {
  // Used to build Azure-AsyncOperation and nextLink URLs: scheme + "://" + the Host header, or
  // this when the request has no Host header.
  std::string scheme = "http";
  std::string fallbackHost = "127.0.0.1";
  std::size_t maxBodyBytes = 4 * 1024 * 1024;  // ARM's request size limit is 4 MB [R]
  std::size_t listPageSize = 100;
  // ARM's subscription limits and the Network resource provider's (azure-mock/rate_limits.h).
  bool subscriptionLimits = true;
  // The Network resource provider's limits per 5 minutes; 0 turns a limit off.
  int readsPer5Min = 10000;
  int writesPer5Min = 1000;
  // Time runs this many times faster for the request limits (rate_limits.h).
  double timeScale = 1;
  bool requireAuth = true;
  // Signs the access tokens the mock issues and verifies those ARM calls bring. Required
  // (non-empty); main() draws a random one per process.
  std::string tokenKey;
  // Opens /mock/* (but healthz) to peers off loopback that send "Authorization: Bearer <it>";
  // "" leaves those endpoints to loopback peers only.
  std::string adminToken;
  std::vector<ClientCredential> clients;
  FaultOptions faults;
  // Every ARM call must be allowed by this role (azure-mock/authorization.h); nullopt: no
  // authorization, any authenticated caller may do anything.
  std::optional<RoleDefinition> role;
};

class ArmHandler {
 public:
  // `unixNow` gives wall-clock seconds for token expiry (tokens outlive process restarts).
  ArmHandler(MockState& state, HandlerOptions options, base::Clock& clock, RandomSource& random,
             std::function<std::int64_t()> unixNow);

  // Never throws; every failure is an HTTP response with a JSON body. Thread-safe.
  ArmResponse handle(const ArmRequest& request);

  // Completes due async operations; the server calls it on a timer. Thread-safe.
  void tick();
  // The routes the SDN should hold now, and the state revision. Thread-safe.
  std::pair<Routes, std::uint64_t> snapshotRoutes();
  // The whole state document and its revision. Thread-safe.
  std::pair<nlohmann::json, std::uint64_t> stateDocument();

 private:
  ArmResponse route(const ArmRequest& request);
  ArmResponse handleArm(const ArmRequest& request, const std::vector<std::string>& segments,
                        const std::map<std::string, std::string>& query);
  ArmResponse handleToken(const ArmRequest& request, const std::vector<std::string>& segments,
                          const std::map<std::string, std::string>& query);
  ArmResponse handleAdmin(const ArmRequest& request, const std::vector<std::string>& segments);
  using OperationUrl = std::function<std::string(std::string_view subscription,
                                                 std::string_view location, std::string_view id)>;

  // One ARM request on its way through handleArm's steps (defined in arm_handler.cpp).
  struct ArmCall;
  // handleArm's steps, in their order. A check answers the response refusing the request, or
  // nullopt when the request goes on; finish() completes every response.
  void beginCall(ArmCall& call);
  std::optional<ArmResponse> authenticate(const ArmCall& call) const;
  std::optional<ArmResponse> throttle(ArmCall& call);
  std::expected<std::string, ArmResponse> apiVersionOf(const ArmCall& call) const;
  ArmResponse serveResource(ArmCall& call);
  ArmResponse finish(const ArmCall& call, ArmResponse r);
  // The handlers serveResource dispatches to, one per resource family.
  ArmResponse getOperation(const ArmCall& call) const;
  ArmResponse getOperationResult(const ArmCall& call) const;
  ArmResponse serveVirtualNetwork(const ArmCall& call);
  ArmResponse listVnetUsages(const ArmCall& call, const VirtualNetwork& vnet) const;
  ArmResponse serveSubnet(const ArmCall& call, const VirtualNetwork& vnet);
  ArmResponse getVirtualMachine(const ArmCall& call) const;
  ArmResponse serveScaleSetVm(const ArmCall& call) const;
  ArmResponse listNics(const ArmCall& call) const;
  ArmResponse serveNic(const ArmCall& call);
  ArmResponse deleteNic(const ArmCall& call, const NetworkInterface* nic,
                        const OperationUrl& operationUrl);
  ArmResponse putNic(const ArmRequest& request, const std::string& nicId,
                     const NetworkInterface* existing, const std::string& apiVersion,
                     const OperationUrl& operationUrl, const std::string& requestId);
  // 409 AnotherOperationInProgress for a write to a NIC whose last operation still runs.
  ArmResponse anotherOperationInProgress(const NetworkInterface& nic,
                                         const OperationUrl& operationUrl) const;
  // Retry-After on a write that started an operation: its delay, rounded up to whole seconds.
  std::string retryAfterForOperation() const;
  // The location a NoRegisteredProviderFound names for a request to this subscription.
  std::string locationFor(std::string_view subscription) const;

  // Retry-After accounting: a 429, 409 or 503 with Retry-After opens a window for that client
  // (the bearer token's appid, "" without one) and that resource (the request path,
  // lower-cased) during which the client should send it no write. Writes that arrive inside a
  // window are counted and listed in GET /mock/state ("retryAfterViolations", "retryAfter").
  void recordRetryAfter(const std::string& clientId, const ArmRequest& request,
                        const ArmResponse& response);
  void checkRetryAfter(const std::string& clientId, const ArmRequest& request);
  nlohmann::json countersJson() const;

  MockState& state_;
  HandlerOptions options_;
  base::Clock& clock_;
  RandomSource& random_;
  std::function<std::int64_t()> unixNow_;
  std::mutex mutex_;
  RateLimits limits_;
  // (client id, lower-cased path) -> end of the latest Retry-After window announced for it.
  std::map<std::pair<std::string, std::string>, base::Clock::TimePoint> retryAfterUntil_;
  std::uint64_t retryAfterWindows_ = 0;
  std::uint64_t retryAfterViolations_ = 0;
  nlohmann::json retryAfterOffenders_ = nlohmann::json::array();  // the first 100
  // Responses on ARM paths, by kind.
  std::uint64_t armRequests_ = 0;
  std::uint64_t armWrites_ = 0;
  std::uint64_t throttled_ = 0;     // 429
  std::uint64_t serverErrors_ = 0;  // 5xx
  std::uint64_t conflicts_ = 0;     // 409
};

}  // namespace vnetipam::azuremock
