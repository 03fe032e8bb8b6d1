#include "azure-mock/identity.h"

#include <array>
#include <expected>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "azure-mock/arm_handler.h"
#include "azure-mock/wire.h"
#include "lib/ipam/ip.h"

namespace vnetipam::azuremock {

using nlohmann::json;

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kIssuerMark = "azure-vnet-mock";

// ARM answers to both names; a v2 scope is the resource plus "/.default".
bool isArmResource(std::string_view r) {
  return r == "https://management.azure.com/" || r == "https://management.azure.com" ||
         r == "https://management.core.windows.net/" || r == "https://management.core.windows.net";
}

// Entra ID's OAuth error body (error, error_description, error_codes), not ARM's CloudError.
ArmResponse aadError(int status, std::string_view code, int aadsts, std::string_view description,
                     std::int64_t now) {
  return jsonResponse(status,
                      {{"error", code},
                       {"error_description", fmt::format("AADSTS{}: {}", aadsts, description)},
                       {"error_codes", json::array({aadsts})},
                       {"timestamp", fmt::format("{}", now)},
                       {"trace_id", "00000000-0000-0000-0000-000000000000"},
                       {"correlation_id", "00000000-0000-0000-0000-000000000000"}});
}

bool looksLikeJwt(std::string_view s) {
  int dots = 0;
  for (char c : s) {
    if (c == '.') {
      ++dots;
    } else if (kAlphabet.find(c) == std::string_view::npos && c != '=') {
      return false;
    }
  }
  return dots == 2 && s.size() > 10;
}

}  // namespace

std::string base64UrlEncode(std::string_view bytes) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(ch);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

bool base64UrlDecode(std::string_view text, std::string& out) {
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const auto v = kAlphabet.find(c);
    if (v == std::string_view::npos) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

namespace {

std::string hmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
           &length) == nullptr)
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac.data()), length);
}

std::string dumpClaims(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The claims of a token whose header names kTokenAlgorithm and whose signature `key` made; an
// error message otherwise. Nothing of the token is parsed before the signature checks out but its
// header, and that only with a bounded depth.
std::expected<json, std::string> verifiedClaims(std::string_view key, std::string_view token) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return std::unexpected("The access token is invalid: it is not a JWT.");
  std::string headerText, payloadText, signature;
  if (!base64UrlDecode(token.substr(0, dot1), headerText) ||
      !base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1), payloadText) ||
      !base64UrlDecode(token.substr(dot2 + 1), signature))
    return std::unexpected("The access token is invalid: it is not a JWT.");
  auto header = parseJsonBody(headerText);
  // Only the algorithm the mock signs with: "none" or any other would let the token choose how
  // (or whether) it is checked.
  if (!header || !header->is_object() || !(*header)["alg"].is_string() ||
      (*header)["alg"].get<std::string>() != kTokenAlgorithm)
    return std::unexpected(fmt::format(
        "The access token is invalid: its signature algorithm is not {}.", kTokenAlgorithm));
  const std::string expected = hmacSha256(key, token.substr(0, dot2));
  if (signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
    return std::unexpected("The access token is invalid: its signature does not match.");
  auto payload = parseJsonBody(payloadText);
  if (!payload || !payload->is_object() || payload->value("idp", "") != kIssuerMark)
    return std::unexpected(
        "The access token is invalid: it was not issued by this azure-vnet-mock.");
  return std::move(*payload);
}

}  // namespace

bool isLoopbackAddress(std::string_view address) {
  if (address.starts_with("::ffff:")) address.remove_prefix(7);  // IPv4-mapped
  const auto ip = ipam::IPAddress::parse(address);
  if (!ip) return false;
  if (ip->family() == ipam::Family::kV6) return ip->toString() == "::1";
  return ipam::Prefix::parse("127.0.0.0/8")->contains(*ip);
}

AdminAccess adminAccess(std::string_view peerAddress, std::string_view authorization,
                        std::string_view adminToken) {
  if (isLoopbackAddress(peerAddress)) return AdminAccess::kAllowed;
  if (authorization.empty()) return AdminAccess::kUnauthenticated;
  constexpr std::string_view kBearer = "Bearer ";
  if (adminToken.empty() || authorization.size() != kBearer.size() + adminToken.size() ||
      !iequals(authorization.substr(0, kBearer.size()), kBearer))
    return AdminAccess::kForbidden;
  const auto presented = authorization.substr(kBearer.size());
  return CRYPTO_memcmp(presented.data(), adminToken.data(), adminToken.size()) == 0
             ? AdminAccess::kAllowed
             : AdminAccess::kForbidden;
}

std::string randomTokenKey() {
  std::array<unsigned char, 32> key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1)
    throw std::runtime_error("RAND_bytes failed: no randomness for the token signing key");
  return std::string(reinterpret_cast<const char*>(key.data()), key.size());
}

std::string issueAccessToken(std::string_view key, std::string_view tenantId,
                             std::string_view clientId, std::string_view audience,
                             std::int64_t now) {
  const json header = {{"alg", kTokenAlgorithm}, {"typ", "JWT"}};
  const json payload = {{"aud", audience},
                        {"iss", fmt::format("https://sts.windows.net/{}/", tenantId)},
                        {"tid", tenantId},
                        {"appid", clientId},
                        {"iat", now},
                        {"nbf", now},
                        {"exp", now + kTokenLifetimeSeconds},
                        {"idp", kIssuerMark}};
  const std::string signedPart = fmt::format("{}.{}", base64UrlEncode(dumpClaims(header)),
                                             base64UrlEncode(dumpClaims(payload)));
  return fmt::format("{}.{}", signedPart, base64UrlEncode(hmacSha256(key, signedPart)));
}

std::string checkAccessToken(std::string_view key, std::string_view token, std::int64_t now) {
  auto payload = verifiedClaims(key, token);
  if (!payload) return payload.error();
  if (!payload->contains("exp") || !(*payload)["exp"].is_number_integer() ||
      (*payload)["exp"].get<std::int64_t>() <= now)
    return "The access token expiry UTC time is earlier than current UTC time.";
  if (!payload->contains("aud") || !(*payload)["aud"].is_string() ||
      !isArmResource((*payload)["aud"].get<std::string>()))
    return "The access token has an invalid audience: it is not for "
           "https://management.azure.com/.";
  return "";
}

std::string accessTokenClientId(std::string_view key, std::string_view token) {
  auto payload = verifiedClaims(key, token);
  if (!payload || !payload->contains("appid") || !(*payload)["appid"].is_string()) return "";
  return (*payload)["appid"].get<std::string>();
}

ArmResponse ArmHandler::handleToken(const ArmRequest& request, const std::vector<std::string>& seg,
                                    const std::map<std::string, std::string>& query) {
  const std::int64_t now = unixNow_();
  // IMDS: GET with Metadata: true, api-version and resource in the query.
  if (iequals(seg[0], "metadata")) {
    if (seg.size() != 4 || !iequals(seg[1], "identity") || !iequals(seg[2], "oauth2") ||
        !iequals(seg[3], "token"))
      return jsonResponse(404, {{"error", "not_found"}, {"error_description", "Not found"}});
    if (request.method != "GET")
      return jsonResponse(
          405, {{"error", "invalid_request"}, {"error_description", "Only GET is supported"}});
    if (findHeader(request.headers, "Metadata") != "true")
      return jsonResponse(400, {{"error", "invalid_request"},
                                {"error_description", "Required metadata header not specified"}});
    // IMDS refuses requests that went through a proxy.
    if (!findHeader(request.headers, "X-Forwarded-For").empty())
      return jsonResponse(
          400, {{"error", "invalid_request"}, {"error_description", "Request is proxied"}});
    if (!query.contains("api-version"))
      return jsonResponse(400, {{"error", "invalid_request"},
                                {"error_description",
                                 "Required query variable 'api-version' is "
                                 "missing"}});
    auto resource = query.find("resource");
    if (resource == query.end())
      return jsonResponse(400, {{"error", "invalid_request"},
                                {"error_description",
                                 "Required query variable 'resource' is "
                                 "missing"}});
    if (!isArmResource(resource->second))
      return jsonResponse(400, {{"error", "invalid_resource"},
                                {"error_description",
                                 fmt::format("AADSTS500011: The resource principal named {} was "
                                             "not found in the tenant.",
                                             resource->second)}});
    int selectors = 0;
    std::string clientId = "system-assigned";
    for (const char* key : {"client_id", "object_id", "mi_res_id"}) {
      if (auto it = query.find(key); it != query.end()) {
        ++selectors;
        clientId = it->second;
      }
    }
    if (selectors > 1)
      return jsonResponse(400, {{"error", "invalid_request"},
                                {"error_description",
                                 "Only one of client_id, object_id or "
                                 "mi_res_id may be given"}});
    const std::string token =
        issueAccessToken(options_.tokenKey, "imds", clientId, resource->second, now);
    // IMDS writes every number as a string.
    return jsonResponse(200, {{"access_token", token},
                              {"refresh_token", ""},
                              {"expires_in", std::to_string(kTokenLifetimeSeconds)},
                              {"expires_on", std::to_string(now + kTokenLifetimeSeconds)},
                              {"not_before", std::to_string(now)},
                              {"resource", resource->second},
                              {"token_type", "Bearer"}});
  }

  // AAD v1 /{tenant}/oauth2/token and v2 /{tenant}/oauth2/v2.0/token.
  const bool v2 = seg.size() == 4 && iequals(seg[2], "v2.0") && iequals(seg[3], "token");
  const bool v1 = seg.size() == 3 && iequals(seg[2], "token");
  if (!v1 && !v2)
    return aadError(404, "invalid_request", 900561, "The endpoint only accepts POST requests.",
                    now);
  if (request.method != "POST")
    return aadError(405, "invalid_request", 900561, "The endpoint only accepts POST requests.",
                    now);
  const std::string& tenant = seg[0];
  if (!toLower(findHeader(request.headers, "Content-Type"))
           .starts_with("application/x-www-form-urlencoded"))
    return aadError(400, "invalid_request", 900144,
                    "The request body must be application/x-www-form-urlencoded.", now);
  auto form = parseForm(request.body);
  if (!form)
    return aadError(400, "invalid_request", 900144,
                    "The request body is not a valid form or repeats a parameter.", now);
  const auto field = [&](const char* key) -> std::string {
    auto it = form->find(key);
    return it == form->end() ? "" : it->second;
  };
  const auto missing = [&](std::string_view key) {
    return aadError(
        400, "invalid_request", 900144,
        fmt::format("The request body must contain the following parameter: '{}'.", key), now);
  };
  if (field("grant_type").empty()) return missing("grant_type");
  if (field("grant_type") != "client_credentials")
    return aadError(
        400, "unsupported_grant_type", 70003,
        fmt::format("The app requested an unsupported grant type '{}'.", field("grant_type")), now);
  if (field("client_id").empty()) return missing("client_id");
  std::string audience;
  if (v2) {
    const std::string scope = field("scope");
    if (scope.empty()) return missing("scope");
    constexpr std::string_view kDefault = "/.default";
    const bool ok =
        scope.size() > kDefault.size() && scope.ends_with(kDefault) &&
        isArmResource(std::string_view(scope).substr(0, scope.size() - kDefault.size()));
    if (!ok)
      return aadError(400, "invalid_scope", 70011,
                      fmt::format("The provided value for the input parameter 'scope' is not "
                                  "valid. The scope {} is not valid; expected "
                                  "https://management.azure.com/.default.",
                                  scope),
                      now);
    audience = "https://management.azure.com/";
  } else {
    audience = field("resource");
    if (audience.empty()) return missing("resource");
    if (!isArmResource(audience))
      return aadError(400, "invalid_resource", 500011,
                      fmt::format("The resource principal named {} was not found in the tenant "
                                  "named {}.",
                                  audience, tenant),
                      now);
  }
  const std::string secret = field("client_secret");
  const std::string assertion = field("client_assertion");
  if (secret.empty() && assertion.empty())
    return aadError(401, "invalid_client", 7000216,
                    "'client_assertion', 'client_secret' or 'request' is required for the "
                    "'client_credentials' grant type.",
                    now);
  if (!assertion.empty()) {
    if (field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
      return aadError(400, "invalid_request", 90014,
                      "The client_assertion_type must be "
                      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                      now);
    if (!looksLikeJwt(assertion))
      return aadError(401, "invalid_client", 50027, "JWT token is invalid or malformed.", now);
  }
  if (!options_.clients.empty()) {
    const ClientCredential* known = nullptr;
    for (const auto& c : options_.clients) {
      if (iequals(c.clientId, field("client_id")) && iequals(c.tenantId, tenant)) known = &c;
    }
    if (known == nullptr)
      return aadError(400, "unauthorized_client", 700016,
                      fmt::format("Application with identifier '{}' was not found in the "
                                  "directory '{}'.",
                                  field("client_id"), tenant),
                      now);
    if (!secret.empty() && secret != known->clientSecret)
      return aadError(401, "invalid_client", 7000215, "Invalid client secret provided.", now);
  }
  const std::string token =
      issueAccessToken(options_.tokenKey, tenant, field("client_id"), audience, now);
  if (v2)
    return jsonResponse(200, {{"token_type", "Bearer"},
                              {"expires_in", kTokenLifetimeSeconds},
                              {"ext_expires_in", kTokenLifetimeSeconds},
                              {"access_token", token}});
  // The v1 endpoint writes numbers as strings.
  return jsonResponse(200, {{"token_type", "Bearer"},
                            {"expires_in", std::to_string(kTokenLifetimeSeconds)},
                            {"ext_expires_in", std::to_string(kTokenLifetimeSeconds)},
                            {"expires_on", std::to_string(now + kTokenLifetimeSeconds)},
                            {"not_before", std::to_string(now)},
                            {"resource", audience},
                            {"access_token", token}});
}

}  // namespace vnetipam::azuremock
