// Credentials that get bearer tokens for ARM from Microsoft Entra ID or the instance metadata
// service, cache them, and fetch a new one before the old expires.
//
// - Client secret: POST {authority}/{tenant}/oauth2/v2.0/token, grant client_credentials,
//   scope {audience}.default.
// - Managed identity: GET {imds}/metadata/identity/oauth2/token with `Metadata: true`, optionally
//   naming a user-assigned identity (client_id, or mi_res_id for an ARM id).
// - Workload identity: as the client secret, with the projected service account token as a
//   client assertion; the file is re-read on every fetch because kubelet rotates it.
//
// What a caller may rely on:
// - token() returns a cached token until less than the refresh margin of its lifetime remains
//   (5 minutes, or half the lifetime for short-lived tokens), then fetches a new one; concurrent
//   callers wait for one fetch. If a refresh fails while the cached token is still valid, the
//   cached token is returned (and the next call tries again). A failure is kAuth when the endpoint
//   refused (with its error code), kConnectFailed / kTransport when it could not be reached.
// - `expires_in` is accepted as a number (v2) or a string (v1, IMDS).
// - Token fetches retry 408, 429, 5xx and broken connections (IMDS also 404 and 410, as adal
//   does while the identity is being assigned) with jittered backoff or Retry-After.
// - No secret, assertion or token appears in an Error message.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "lib/azure/config.h"
#include "lib/azure/error.h"
#include "lib/azure/metrics.h"
#include "lib/azure/retry.h"
#include "lib/http/transport.h"

namespace vnetipam::azure {

class TokenCredential {
 public:
  virtual ~TokenCredential() = default;
  // A bearer token for ARM. kAuth when none can be had. Thread-safe.
  virtual Result<std::string> token() = 0;
  // Forgets the cached token (ARM answered 401), so the next token() fetches. Thread-safe.
  virtual void invalidate() = 0;
};

struct CredentialOptions {
  int maxRetries = 4;  // 5 attempts, as adal's IMDS client
  std::chrono::milliseconds initialBackoff{1000};
  std::chrono::milliseconds maxBackoff{60'000};
  std::chrono::seconds maxRetryAfter{60};
  std::chrono::seconds refreshMargin{300};
  std::function<double()> random01;  // default: defaultRandom01()
  ArmObserver* observer = nullptr;   // reports "AcquireToken" requests; null: none
};

// What a token endpoint returned.
struct AccessToken {
  std::string token;
  std::chrono::seconds expiresIn{0};
};

// Parses a token endpoint's success body: access_token, and expires_in as number or string.
// kBadResponse (never echoing the body) when either is missing or malformed.
Result<AccessToken> parseTokenResponse(std::string_view body, std::string_view what);

// Caches the token one fetch() produced. Implementations say how to fetch.
class CachingCredential : public TokenCredential {
 public:
  Result<std::string> token() final;
  void invalidate() final;

 protected:
  CachingCredential(Clock& clock, CredentialOptions options);
  // One token request with the retry rules above. `what` names the endpoint in messages.
  Result<AccessToken> sendTokenRequest(http::HttpTransport& transport,
                                       const http::HttpRequest& request, std::string_view what,
                                       bool imds);
  virtual Result<AccessToken> fetch() = 0;

  Clock& clock_;
  CredentialOptions options_;

 private:
  std::mutex mutex_;  // held across a fetch, so concurrent callers share it
  std::string cached_;
  Clock::TimePoint refreshAt_{};
  Clock::TimePoint expiresAt_{};
};

class ClientSecretCredentialImpl final : public CachingCredential {
 public:
  // `authority` is a transport to config.endpoints.authorityHost; it must outlive this.
  ClientSecretCredentialImpl(http::HttpTransport& authority, Clock& clock, std::string tenantId,
                             std::string clientId, std::string clientSecret, std::string audience,
                             CredentialOptions options = {});

 private:
  Result<AccessToken> fetch() override;
  http::HttpTransport& authority_;
  std::string tenantId_, clientId_, clientSecret_, audience_;
};

class WorkloadIdentityCredentialImpl final : public CachingCredential {
 public:
  WorkloadIdentityCredentialImpl(http::HttpTransport& authority, Clock& clock, std::string tenantId,
                                 std::string clientId, std::string tokenFile, std::string audience,
                                 CredentialOptions options = {});

 private:
  Result<AccessToken> fetch() override;
  http::HttpTransport& authority_;
  std::string tenantId_, clientId_, tokenFile_, audience_;
};

class ManagedIdentityCredentialImpl final : public CachingCredential {
 public:
  // `imds` is a transport to config.endpoints.imds. `userAssignedIdentity`: empty for the
  // system-assigned identity, a client id, or an ARM resource id.
  ManagedIdentityCredentialImpl(http::HttpTransport& imds, Clock& clock,
                                std::string userAssignedIdentity, std::string audience,
                                CredentialOptions options = {});

 private:
  Result<AccessToken> fetch() override;
  http::HttpTransport& imds_;
  std::string userAssignedIdentity_, audience_;
};

// The credential config.credential names. The transports must outlive it; only the one the
// credential uses is touched.
std::unique_ptr<TokenCredential> makeCredential(const AzureConfig& config,
                                                http::HttpTransport& authority,
                                                http::HttpTransport& imds, Clock& clock,
                                                CredentialOptions options = {});

// The v2 token endpoint path for a tenant: "/{tenant}/oauth2/v2.0/token".
std::string tokenPath(std::string_view tenantId);

}  // namespace vnetipam::azure
