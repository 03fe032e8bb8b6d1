// The mock's Entra ID: the v1 and v2 client-credentials token endpoints and the IMDS managed
// identity endpoint (IMDS), and the check ARM calls make on the bearer token.
//
// Tokens are JWTs signed with HMAC-SHA256 ("alg":"HS256") under a key only this process holds,
// with the ARM audience, the tenant and client they were issued to, and an expiry. A caller
// cannot forge one that names another client, so the per-client accounting (Retry-After windows)
// and the known-clients check at the token endpoint mean something. Tokens do not survive a
// restart with a new key; clients fetch a new one after the 401, as they do with Azure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vnetipam::azuremock {

inline constexpr std::int64_t kTokenLifetimeSeconds = 3599;

// The only algorithm the mock signs with and accepts.
inline constexpr std::string_view kTokenAlgorithm = "HS256";

// `key`: the signing key (any bytes, non-empty).
std::string issueAccessToken(std::string_view key, std::string_view tenantId,
                             std::string_view clientId, std::string_view audience,
                             std::int64_t now);
// "" when the token was signed with `key` under kTokenAlgorithm, is for ARM and has not expired;
// otherwise why not (the message never repeats the token). Checks the signature before reading
// any claim.
std::string checkAccessToken(std::string_view key, std::string_view token, std::int64_t now);
// The client id ("appid") a token signed with `key` names, expired or not; "" for any other
// token, so a forged token cannot charge its requests to someone else.
std::string accessTokenClientId(std::string_view key, std::string_view token);
// 32 random bytes from OpenSSL's generator, for a per-process key.
std::string randomTokenKey();

// Who may use the admin endpoints (/mock/* but /mock/healthz, which probes need open): a peer on
// loopback, or anyone presenting "Authorization: Bearer <admin token>" when an admin token is
// configured. Without a header the answer is 401, with a wrong one 403.
enum class AdminAccess { kAllowed, kUnauthenticated, kForbidden };
// `peerAddress`: the TCP peer as text ("127.0.0.1", "::1", "::ffff:127.0.0.1"; "" when unknown,
// which is not loopback). `adminToken`: "" when none is configured.
AdminAccess adminAccess(std::string_view peerAddress, std::string_view authorization,
                        std::string_view adminToken);
bool isLoopbackAddress(std::string_view address);

std::string base64UrlEncode(std::string_view bytes);
// nullopt-like: returns false on a character outside the base64url alphabet.
bool base64UrlDecode(std::string_view text, std::string& out);

}  // namespace vnetipam::azuremock
