// REST calls on any Kubernetes resource path, with client-side rate limiting and safe retries.
//
// Paths are the API server's own: a collection ("/apis/vnetipam.io/v1alpha1/ipblocks") or an
// object ("/api/v1/namespaces/kube-system/configmaps/x"). Objects are nlohmann::json; typed mapping
// is the caller's (api/codec.h).
//
// What a caller may rely on:
// - A non-2xx answer is an Error carrying the HTTP status and the Status reason and message the
//   server sent. 409 is kConflict for a failed precondition (resourceVersion, uid) and
//   kAlreadyExists for a create of an existing name; 410 is kGone; 404 is kNotFound.
// - Every request first takes a token from the QPS/burst bucket.
// - Retries (jittered exponential backoff, at most maxRetries): a 429 is retried for any request,
//   after the server's Retry-After when given (seconds or an HTTP date), because the server refused
//   it before acting on it; a 5xx, a timeout or a broken connection only for requests that are safe
//   to repeat — GET, apply (declarative), and PUT/PATCH/DELETE that carry a resourceVersion or uid
//   precondition (a repeat of one that did succeed fails its precondition instead of acting twice).
//   A create whose outcome is unknown is never repeated: the caller must read to find out.
// - A connection that was refused (the request never left) is retried for every request.
// Thread-safe: concurrent calls share the bucket.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"
#include "lib/http/rate_limiter.h"
#include "lib/http/transport.h"
#include "lib/kube/config.h"
#include "lib/kube/error.h"

namespace vnetipam::kube {

struct ClientOptions {
  TokenProvider token;  // bearer token per request; empty: no Authorization header
  double qps = 20;      // <= 0: no client-side limit
  int burst = 40;
  int maxRetries = 5;
  std::chrono::milliseconds initialBackoff{200};
  std::chrono::milliseconds maxBackoff{10'000};
  std::chrono::seconds maxRetryAfter{60};  // a larger Retry-After is cut to this
  std::function<double()> random01;        // jitter source in [0, 1); default: a seeded PRNG
  std::string userAgent = "vnet-ipam";
};

struct ListOptions {
  std::string labelSelector;
  std::string fieldSelector;
  std::int64_t limit = 500;  // page size; 0: the server's default (no pagination asked)
};

struct ApplyOptions {
  std::string fieldManager;  // required
  bool force = false;        // take ownership of fields other managers hold
};

struct DeleteOptions {
  std::optional<std::string> uid;                // precondition: only this incarnation
  std::optional<std::string> resourceVersion;    // precondition: only this version
  std::optional<std::string> propagationPolicy;  // "Foreground", "Background", "Orphan"
};

class Client {
 public:
  // `transport` and `clock` must outlive the client. The clock's calendar time only turns a
  // Retry-After HTTP date into a wait.
  Client(http::HttpTransport& transport, base::Clock& clock, ClientOptions options = {});

  Result<nlohmann::json> get(std::string_view objectPath);

  // Every page (limit/continue) of a collection, merged: the last page's metadata, with the items
  // of all pages. A continue token that expires mid-list (410) is returned as kGone.
  Result<nlohmann::json> list(std::string_view collectionPath, const ListOptions& options = {});

  Result<nlohmann::json> create(std::string_view collectionPath, const nlohmann::json& object);

  // PUT. With metadata.resourceVersion set, a stale object fails with kConflict.
  Result<nlohmann::json> update(std::string_view objectPath, const nlohmann::json& object);
  Result<nlohmann::json> updateStatus(std::string_view objectPath, const nlohmann::json& object);

  // JSON merge patch (RFC 7386). Put metadata.resourceVersion in the patch for a precondition.
  Result<nlohmann::json> mergePatch(std::string_view objectPath, const nlohmann::json& patch);
  Result<nlohmann::json> mergePatchStatus(std::string_view objectPath, const nlohmann::json& patch);

  // Server-side apply of a partial object (sent as JSON, which is YAML).
  Result<nlohmann::json> apply(std::string_view objectPath, const nlohmann::json& object,
                               const ApplyOptions& options);
  Result<nlohmann::json> applyStatus(std::string_view objectPath, const nlohmann::json& object,
                                     const ApplyOptions& options);

  // Returns what the server answered (the object while finalizers hold it, or a Status).
  Result<nlohmann::json> remove(std::string_view objectPath, const DeleteOptions& options = {});

  // One request with the rate limit and retry rules above; for calls the helpers do not cover.
  // `idempotent`: safe to repeat after an unknown outcome.
  Result<http::HttpResponse> call(http::HttpRequest request, bool idempotent);

  // What the client was built on, for calls that need the transport itself (watches).
  http::HttpTransport& transport() { return transport_; }
  base::Clock& clock() { return clock_; }
  const TokenProvider& token() const { return options_.token; }

 private:
  Result<nlohmann::json> callJson(http::HttpRequest request, bool idempotent);
  base::Clock::Duration backoff(int attempt);

  http::HttpTransport& transport_;
  base::Clock& clock_;
  ClientOptions options_;
  http::TokenBucket bucket_;
};

// How long a Retry-After header value asks to wait: delay-seconds ("120") or an HTTP date in any
// of the three forms RFC 9110 requires recipients to accept (IMF-fixdate "Sun, 06 Nov 1994
// 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"),
// measured from `now` and rounded up; a date in the past is zero. nullopt when it parses as
// neither.
std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now);

// The Error for a non-2xx response: code from the status (and reason for 409), reason and
// message from the body when it is a Kubernetes Status.
Error errorFromResponse(const http::HttpRequest& request, const http::HttpResponse& response);

}  // namespace vnetipam::kube
