#include "lib/azure/credentials.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lib/azure/bounded_json.h"
#include "lib/base/text.h"

namespace vnetipam::azure {

namespace {

constexpr std::string_view kOperation = "AcquireToken";
constexpr std::size_t kMaxQuoted = 400;  // of an error description, in a message
// An Entra access token is a JWT of a few KiB (more with many group claims); IMDS's are alike.
constexpr std::size_t kMaxAccessTokenBytes = 64 * 1024;
// Entra and IMDS tokens live an hour or so, 24 hours at most. A week is generous, and keeps the
// lifetime in nanoseconds (the steady clock's unit) far from overflowing.
constexpr std::int64_t kMaxExpiresInSeconds = 7 * 24 * 3600;

ErrorCode transportCode(http::ErrorCode code) {
  return code == http::ErrorCode::kConnectFailed ? ErrorCode::kConnectFailed
                                                 : ErrorCode::kTransport;
}

}  // namespace

std::string tokenPath(std::string_view tenantId) {
  return fmt::format("/{}/oauth2/v2.0/token", text::percentEncode(tenantId));
}

Result<AccessToken> parseTokenResponse(std::string_view body, std::string_view what) {
  const auto parsed =
      parseBoundedJson(body, kMaxTokenBodyBytes, fmt::format("{}: token response", what));
  if (!parsed) return std::unexpected(parsed.error());
  const nlohmann::json& doc = *parsed;
  if (!doc.is_object()) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: token response is not a JSON object", what));
  }
  const auto token = doc.find("access_token");
  if (token == doc.end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: token response has no access_token", what));
  }
  // The token goes into an Authorization header: visible ASCII only (RFC 6750's b64token is a
  // subset), so a CR or LF cannot end the header early, and no endless one.
  const auto& value = token->get_ref<const std::string&>();
  if (value.size() > kMaxAccessTokenBytes) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: token response has an access_token of {} bytes, more than the "
                            "limit of {}",
                            what, value.size(), kMaxAccessTokenBytes));
  }
  if (!std::ranges::all_of(value, [](char c) { return c > 0x20 && c < 0x7F; })) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: token response has an access_token with characters outside "
                            "visible ASCII",
                            what));
  }
  // v2 sends a number; v1 and IMDS send a string ("3599").
  std::int64_t seconds = 0;
  const auto expires = doc.find("expires_in");
  bool ok = false;
  if (expires != doc.end() && expires->is_number_integer()) {
    seconds = expires->get<std::int64_t>();
    ok = true;
  } else if (expires != doc.end() && expires->is_string()) {
    const auto& text = expires->get_ref<const std::string&>();
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    ok = ec == std::errc() && end == text.data() + text.size();
  }
  if (!ok || seconds <= 0) {
    return fail(
        ErrorCode::kBadResponse,
        fmt::format("{}: token response has no positive expires_in (number or string)", what));
  }
  if (seconds > kMaxExpiresInSeconds) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: token response has expires_in {} s, more than the limit of {} s",
                            what, seconds, kMaxExpiresInSeconds));
  }
  return AccessToken{token->get<std::string>(), std::chrono::seconds{seconds}};
}

CachingCredential::CachingCredential(Clock& clock, CredentialOptions options)
    : clock_(clock), options_(std::move(options)) {
  if (!options_.random01) options_.random01 = defaultRandom01();
}

Result<std::string> CachingCredential::token() {
  std::lock_guard lock(mutex_);
  const Clock::TimePoint now = clock_.now();
  if (!cached_.empty() && now < refreshAt_) return cached_;
  auto fetched = fetch();
  if (!fetched) {
    // A refresh that fails early is not fatal: the old token still works for a while.
    if (!cached_.empty() && now < expiresAt_) return cached_;
    return std::unexpected(std::move(fetched.error()));
  }
  const Clock::Duration lifetime = fetched->expiresIn;
  const Clock::Duration margin = std::min<Clock::Duration>(options_.refreshMargin, lifetime / 2);
  cached_ = std::move(fetched->token);
  // Measured from before the request, so network time only makes us refresh earlier.
  refreshAt_ = now + lifetime - margin;
  expiresAt_ = now + lifetime - std::min<Clock::Duration>(std::chrono::seconds{30}, lifetime / 10);
  return cached_;
}

void CachingCredential::invalidate() {
  std::lock_guard lock(mutex_);
  cached_.clear();
  refreshAt_ = {};
  expiresAt_ = {};
}

Result<AccessToken> CachingCredential::sendTokenRequest(http::HttpTransport& transport,
                                                        const http::HttpRequest& request,
                                                        std::string_view what, bool imds) {
  for (int attempt = 0;; ++attempt) {
    const bool last = attempt >= options_.maxRetries;
    const Clock::TimePoint start = clock_.now();
    auto response = transport.send(request);
    if (options_.observer) {
      options_.observer->onRequest(kOperation, response ? response->status : 0,
                                   clock_.now() - start);
    }
    Clock::Duration wait{};
    if (!response) {
      if (last) {
        return fail(transportCode(response.error().code),
                    redactSecrets(fmt::format("{}: {}", what, response.error().message)));
      }
      wait = jitteredBackoff(attempt, options_.initialBackoff, options_.maxBackoff,
                             options_.random01());
    } else {
      const int status = response->status;
      if (status == 200) return parseTokenResponse(response->body, what);
      const bool retriable = status == 408 || status == 429 || status >= 500 ||
                             (imds && (status == 404 || status == 410));
      if (!retriable || last) {
        // {"error":"invalid_client","error_description":"AADSTS7000215: ..."}; IMDS uses the
        // same two fields. Only those are quoted: never the whole body.
        const auto doc = parseBoundedJson(response->body, kMaxTokenBodyBytes, what);
        std::string code;
        std::string description;
        if (doc) {
          code = clipText(stringField(*doc, "error"), 256);
          description = stringField(*doc, "error_description");
        }
        return fail(ErrorCode::kAuth,
                    redactSecrets(fmt::format(
                        "{}: HTTP {}{}{}", what, status, code.empty() ? "" : ": " + code,
                        description.empty() ? "" : ": " + clipText(description, kMaxQuoted))),
                    status, code);
      }
      const auto after = retryAfter(response->headers, clock_.wallNow());
      wait = after ? std::min<Clock::Duration>(*after, options_.maxRetryAfter)
                   : jitteredBackoff(attempt, options_.initialBackoff, options_.maxBackoff,
                                     options_.random01());
    }
    if (options_.observer) {
      options_.observer->onWait(
          kOperation,
          response && response->status == 429 ? WaitReason::kThrottled : WaitReason::kRetryBackoff,
          wait);
    }
    clock_.sleepFor(wait);
  }
}

ClientSecretCredentialImpl::ClientSecretCredentialImpl(http::HttpTransport& authority, Clock& clock,
                                                       std::string tenantId, std::string clientId,
                                                       std::string clientSecret,
                                                       std::string audience,
                                                       CredentialOptions options)
    : CachingCredential(clock, std::move(options)),
      authority_(authority),
      tenantId_(std::move(tenantId)),
      clientId_(std::move(clientId)),
      clientSecret_(std::move(clientSecret)),
      audience_(std::move(audience)) {}

Result<AccessToken> ClientSecretCredentialImpl::fetch() {
  http::HttpRequest request{.method = "POST", .target = tokenPath(tenantId_)};
  request.headers["Content-Type"] = "application/x-www-form-urlencoded";
  request.headers["Accept"] = "application/json";
  request.body =
      fmt::format("grant_type=client_credentials&client_id={}&scope={}&client_secret={}",
                  text::percentEncode(clientId_), text::percentEncode(audience_ + ".default"),
                  text::percentEncode(clientSecret_));
  return sendTokenRequest(
      authority_, request,
      fmt::format("client secret token for client {} in tenant {}", clientId_, tenantId_),
      /*imds=*/false);
}

WorkloadIdentityCredentialImpl::WorkloadIdentityCredentialImpl(
    http::HttpTransport& authority, Clock& clock, std::string tenantId, std::string clientId,
    std::string tokenFile, std::string audience, CredentialOptions options)
    : CachingCredential(clock, std::move(options)),
      authority_(authority),
      tenantId_(std::move(tenantId)),
      clientId_(std::move(clientId)),
      tokenFile_(std::move(tokenFile)),
      audience_(std::move(audience)) {}

Result<AccessToken> WorkloadIdentityCredentialImpl::fetch() {
  // Read on every fetch: kubelet rotates the projected token.
  std::ifstream in(tokenFile_, std::ios::binary);
  if (!in) {
    return fail(ErrorCode::kAuth,
                fmt::format("workload identity token file \"{}\" cannot be read", tokenFile_));
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string assertion = text.str();
  while (!assertion.empty() && std::isspace(static_cast<unsigned char>(assertion.back())))
    assertion.pop_back();
  if (assertion.empty()) {
    return fail(ErrorCode::kAuth,
                fmt::format("workload identity token file \"{}\" is empty", tokenFile_));
  }
  http::HttpRequest request{.method = "POST", .target = tokenPath(tenantId_)};
  request.headers["Content-Type"] = "application/x-www-form-urlencoded";
  request.headers["Accept"] = "application/json";
  request.body = fmt::format(
      "grant_type=client_credentials&client_id={}&scope={}"
      "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
      "&client_assertion={}",
      text::percentEncode(clientId_), text::percentEncode(audience_ + ".default"),
      text::percentEncode(assertion));
  return sendTokenRequest(
      authority_, request,
      fmt::format("workload identity token for client {} in tenant {}", clientId_, tenantId_),
      /*imds=*/false);
}

ManagedIdentityCredentialImpl::ManagedIdentityCredentialImpl(http::HttpTransport& imds,
                                                             Clock& clock,
                                                             std::string userAssignedIdentity,
                                                             std::string audience,
                                                             CredentialOptions options)
    : CachingCredential(clock, std::move(options)),
      imds_(imds),
      userAssignedIdentity_(std::move(userAssignedIdentity)),
      audience_(std::move(audience)) {}

Result<AccessToken> ManagedIdentityCredentialImpl::fetch() {
  std::string target = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" +
                       text::percentEncode(audience_);
  if (!userAssignedIdentity_.empty()) {
    // cloud-provider-azure's convention: an ARM id names the identity by resource, else it is a
    // client id.
    const bool armId = userAssignedIdentity_.find("/subscriptions/") != std::string::npos;
    target += (armId ? "&mi_res_id=" : "&client_id=") + text::percentEncode(userAssignedIdentity_);
  }
  http::HttpRequest request{.method = "GET", .target = std::move(target)};
  request.headers["Metadata"] = "true";
  request.headers["Accept"] = "application/json";
  return sendTokenRequest(imds_, request,
                          userAssignedIdentity_.empty()
                              ? std::string("managed identity token (system-assigned)")
                              : fmt::format("managed identity token for {}", userAssignedIdentity_),
                          /*imds=*/true);
}

std::unique_ptr<TokenCredential> makeCredential(const AzureConfig& config,
                                                http::HttpTransport& authority,
                                                http::HttpTransport& imds, Clock& clock,
                                                CredentialOptions options) {
  switch (config.credential) {
    case CredentialKind::kWorkloadIdentity:
      return std::make_unique<WorkloadIdentityCredentialImpl>(
          authority, clock, config.tenantId, config.aadClientId, config.federatedTokenFile,
          config.endpoints.tokenAudience, std::move(options));
    case CredentialKind::kManagedIdentity:
      return std::make_unique<ManagedIdentityCredentialImpl>(
          imds, clock, config.userAssignedIdentityID, config.endpoints.tokenAudience,
          std::move(options));
    case CredentialKind::kClientSecret: break;
  }
  return std::make_unique<ClientSecretCredentialImpl>(
      authority, clock, config.tenantId, config.aadClientId, config.aadClientSecret,
      config.endpoints.tokenAudience, std::move(options));
}

}  // namespace vnetipam::azure
