// The mock's Entra ID: the v1 and v2 client-credentials token endpoints and the IMDS managed
// identity endpoint (reference section 1), and the check ARM calls make on the bearer token.
//
// Tokens are unsigned JWTs ("alg":"none") with the ARM audience, the tenant and client they were
// issued to, and an expiry. They carry no secret and prove nothing: the mock only checks that a
// client sends back a token it could have issued, unexpired, for the right audience.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vnetipam::azuremock {

inline constexpr std::int64_t kTokenLifetimeSeconds = 3599;

std::string issueAccessToken(std::string_view tenantId, std::string_view clientId,
                             std::string_view audience, std::int64_t now);
// "" when the token is one the mock issued for ARM and has not expired; otherwise why not (the
// message never repeats the token).
std::string checkAccessToken(std::string_view token, std::int64_t now);
// The client id ("appid") a token the mock issued names; "" when it is not such a token.
std::string accessTokenClientId(std::string_view token);

std::string base64UrlEncode(std::string_view bytes);
// nullopt-like: returns false on a character outside the base64url alphabet.
bool base64UrlDecode(std::string_view text, std::string& out);

}  // namespace vnetipam::azuremock
