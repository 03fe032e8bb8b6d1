// Requests to Azure Resource Manager with the rules every ARM call needs: a bearer token,
// client-side read and write budgets, waits on throttling, retries of transient failures, and
// long-running operations followed to their end.
//
// What a caller may rely on:
// - Targets are ARM paths with query ("/subscriptions/.../networkInterfaces/x?api-version=...").
//   Absolute URLs Azure hands back (nextLink, Azure-AsyncOperation, Location) are followed only
//   when they lie under the configured ARM endpoint: the token is never sent anywhere else.
// - Every attempt first takes a token from a budget: GETs from the read budget, anything else
//   from the write budget. The defaults keep one client under ARM's documented per-subscription
//   limits (12000 reads and 1200 writes per hour; NRP: 10000 reads, 1000 writes per 5 min):
//   reads 3/s with a burst of 300 (≤ 11100/h), writes 0.3/s with a burst of 100 (≤ 1180/h).
//   With options.pacer, the process-wide ArmPacer (arm_pacer.h) takes their place.
// - 429 (Retry-After as seconds or HTTP-date) and 409 AnotherOperationInProgress are waited out,
//   up to maxThrottleRetries waits; the server refused them before acting. A 429 pauses every
//   request of its class (reads or writes) from this client until its Retry-After has passed:
//   ARM throttles the subscription, so the other requests would only be refused too.
// - 408, 5xx and broken or refused connections are retried with jittered backoff, up to
//   maxRetries. This is safe for everything this client sends: GETs, polls, and PUTs of whole
//   resources (a PUT is idempotent in ARM; with If-Match, a repeat of a PUT that did land fails
//   with 412 instead of acting twice).
// - 401 drops the cached token and retries once with a fresh one.
// - A non-2xx answer is an Error with the HTTP status and the CloudError code and message (and
//   the first detail, e.g. PreconditionFailedEtagMismatch).
// - Metrics: every attempt and every wait is reported to the ArmObserver.
// Thread-safe: concurrent calls share the budgets and the credential.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/azure/arm_pacer.h"
#include "lib/azure/credentials.h"
#include "lib/azure/error.h"
#include "lib/azure/metrics.h"
#include "lib/azure/retry.h"
#include "lib/http/rate_limiter.h"
#include "lib/http/transport.h"

namespace vnetipam::azure {

struct ArmClientOptions {
  int maxRetries = 6;           // 408 / 5xx / connection failures, per request
  int maxThrottleRetries = 20;  // 429 / 409 AnotherOperationInProgress waits, per request
  std::chrono::milliseconds initialBackoff{500};
  std::chrono::milliseconds maxBackoff{30'000};
  std::chrono::milliseconds inProgressBackoff{2'000};  // 409 in progress without Retry-After
  std::chrono::seconds maxRetryAfter{300};             // a larger Retry-After is cut to this
  std::chrono::seconds defaultPollInterval{5};         // operation poll without Retry-After
  std::chrono::seconds maxPollInterval{60};
  std::chrono::seconds operationTimeout{1800};  // a long-running operation longer than this fails
  double readQps = 3.0;                         // <= 0: no read budget
  int readBurst = 300;
  double writeQps = 0.3;  // <= 0: no write budget
  int writeBurst = 100;
  std::function<double()> random01;  // jitter source; default defaultRandom01()
  ArmObserver* observer = nullptr;   // null: none
  std::string userAgent = "vnet-ipam";
  // The process's ARM pacer (arm_pacer.h), shared with its other clients; it outlives the
  // client. When set it replaces the budgets above (readQps, writeQps) and the client's own 429
  // pauses: every request waits on it and tells it what each response says is left.
  ArmPacer* pacer = nullptr;
};

class ArmClient {
 public:
  // `transport` talks to `endpoint` (Endpoints::resourceManager). All references must outlive
  // the client.
  ArmClient(http::HttpTransport& transport, std::string endpoint, TokenCredential& credential,
            Clock& clock, ArmClientOptions options = {});

  // GET a resource. `operation` names the call for metrics and messages ("GetNetworkInterface").
  // `keepKeys` (parseBoundedJson): only members with these keys are kept of the answer.
  Result<nlohmann::json> get(std::string_view operation, std::string_view target,
                             std::span<const std::string_view> keepKeys = {});

  // GET a collection and every further page (nextLink); the items of all pages, in order.
  Result<std::vector<nlohmann::json>> list(std::string_view operation, std::string_view target);
  // The same walk, handing each page's "value" array (its items) to `visit` as the page arrives,
  // so that a long collection is never held whole and a caller can act on a page before the next
  // is read. An error of `visit` ends the walk with it. Returns the pages read. `itemKeys`, when
  // not empty: only members with these keys are kept of the items (at any depth; the page's own
  // "value" and "nextLink" always).
  Result<int> forEachPage(std::string_view operation, std::string_view target,
                          const std::function<Result<void>(nlohmann::json& items)>& visit,
                          std::span<const std::string_view> itemKeys = {});

  // Whether put() reads the resource once its operation has Succeeded. kNo for a caller that only
  // needs to know the write took: a status that says Succeeded is the cloud's word that it did,
  // and the read is one more request against the subscription's read budget.
  enum class ReadBack : std::uint8_t { kYes, kNo };

  // PUT a whole resource, follow the long-running operation (Azure-AsyncOperation, else
  // Location) to Succeeded, and return the resource as read afterwards (with ReadBack::kNo: as
  // the answer carried it, or an empty object when it carried none). With `ifMatch`, a stale
  // etag fails with kPreconditionFailed. An operation that ends Failed or Canceled is
  // kOperationFailed with Azure's error code.
  Result<nlohmann::json> put(std::string_view operation, std::string_view target,
                             const nlohmann::json& body,
                             const std::optional<std::string>& ifMatch = std::nullopt,
                             ReadBack readBack = ReadBack::kYes);

  // One request with the budget, wait and retry rules above; any status is returned as a value.
  // `target` is a path with query, or an absolute URL under the endpoint.
  Result<http::HttpResponse> send(std::string_view operation, std::string_view method,
                                  std::string_view target, std::string body = {},
                                  http::Headers headers = {});

  // The path with query of `url` when it lies under the endpoint; kBadResponse otherwise.
  Result<std::string> targetOf(std::string_view url) const;

 private:
  Result<nlohmann::json> followOperation(std::string_view operation, std::string_view target,
                                         ReadBack readBack, const http::HttpResponse& initial);
  void wait(std::string_view operation, WaitReason reason, Clock::Duration duration);
  void pauseForThrottling(bool read, Clock::Duration pause);
  Clock::Duration throttlePauseLeft(bool read);

  http::HttpTransport& transport_;
  std::string endpoint_;
  TokenCredential& credential_;
  Clock& clock_;
  ArmClientOptions options_;
  http::TokenBucket reads_;
  http::TokenBucket writes_;
  std::mutex throttleMutex_;
  Clock::TimePoint readsPausedUntil_{};
  Clock::TimePoint writesPausedUntil_{};
};

// The Error for a non-2xx ARM response, from its CloudError body.
Error armError(std::string_view operation, std::string_view target,
               const http::HttpResponse& response);

}  // namespace vnetipam::azure
