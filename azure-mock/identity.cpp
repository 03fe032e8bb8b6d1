#include "azure-mock/identity.h"

#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "azure-mock/arm_handler.h"
#include "azure-mock/wire.h"

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

// AAD's error body (reference 1a), not ARM's CloudError.
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

std::string issueAccessToken(std::string_view tenantId, std::string_view clientId,
                             std::string_view audience, std::int64_t now) {
  const json header = {{"alg", "none"}, {"typ", "JWT"}};
  const json payload = {{"aud", audience},
                        {"iss", fmt::format("https://sts.windows.net/{}/", tenantId)},
                        {"tid", tenantId},
                        {"appid", clientId},
                        {"iat", now},
                        {"nbf", now},
                        {"exp", now + kTokenLifetimeSeconds},
                        {"idp", kIssuerMark}};
  const auto dump = [](const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  return fmt::format("{}.{}.", base64UrlEncode(dump(header)), base64UrlEncode(dump(payload)));
}

std::string checkAccessToken(std::string_view token, std::int64_t now) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  std::string payloadText;
  if (dot2 == std::string_view::npos ||
      !base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1), payloadText))
    return "The access token is invalid: it is not a JWT.";
  const json payload = json::parse(payloadText, nullptr, false);
  if (!payload.is_object() || payload.value("idp", "") != kIssuerMark)
    return "The access token is invalid: it was not issued by this azure-vnet-mock.";
  if (!payload.contains("exp") || !payload["exp"].is_number_integer() ||
      payload["exp"].get<std::int64_t>() <= now)
    return "The access token expiry UTC time is earlier than current UTC time.";
  if (!payload.contains("aud") || !payload["aud"].is_string() ||
      !isArmResource(payload["aud"].get<std::string>()))
    return "The access token has an invalid audience: it is not for "
           "https://management.azure.com/.";
  return "";
}

std::string accessTokenClientId(std::string_view token) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  std::string payloadText;
  if (dot2 == std::string_view::npos ||
      !base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1), payloadText))
    return "";
  const json payload = json::parse(payloadText, nullptr, false);
  if (!payload.is_object() || !payload.contains("appid") || !payload["appid"].is_string())
    return "";
  return payload["appid"].get<std::string>();
}

ArmResponse ArmHandler::handleToken(const ArmRequest& request, const std::vector<std::string>& seg,
                                    const std::map<std::string, std::string>& query) {
  const std::int64_t now = unixNow_();
  // IMDS (reference 1c): GET with Metadata: true, api-version and resource in the query.
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
    const std::string token = issueAccessToken("imds", clientId, resource->second, now);
    // IMDS writes every number as a string (reference 1c).
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
  const std::string token = issueAccessToken(tenant, field("client_id"), audience, now);
  if (v2)
    return jsonResponse(200, {{"token_type", "Bearer"},
                              {"expires_in", kTokenLifetimeSeconds},
                              {"ext_expires_in", kTokenLifetimeSeconds},
                              {"access_token", token}});
  // v1 writes numbers as strings (reference 1b).
  return jsonResponse(200, {{"token_type", "Bearer"},
                            {"expires_in", std::to_string(kTokenLifetimeSeconds)},
                            {"ext_expires_in", std::to_string(kTokenLifetimeSeconds)},
                            {"expires_on", std::to_string(now + kTokenLifetimeSeconds)},
                            {"not_before", std::to_string(now)},
                            {"resource", audience},
                            {"access_token", token}});
}

}  // namespace vnetipam::azuremock
