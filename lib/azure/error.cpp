#include "lib/azure/error.h"

#include <regex>

#include <fmt/format.h>

namespace vnetipam::azure {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kConfig: return "Config";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kAuth: return "Auth";
    case ErrorCode::kConnectFailed: return "ConnectFailed";
    case ErrorCode::kTransport: return "Transport";
    case ErrorCode::kBadResponse: return "BadResponse";
    case ErrorCode::kBadRequest: return "BadRequest";
    case ErrorCode::kUnauthorized: return "Unauthorized";
    case ErrorCode::kForbidden: return "Forbidden";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kConflict: return "Conflict";
    case ErrorCode::kPreconditionFailed: return "PreconditionFailed";
    case ErrorCode::kThrottled: return "Throttled";
    case ErrorCode::kServerError: return "ServerError";
    case ErrorCode::kOperationFailed: return "OperationFailed";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kHttp: return "Http";
  }
  return "Unknown";
}

std::string redactSecrets(std::string_view text) {
  // Built once; std::regex is slow but this only runs on error paths.
  static const std::regex kPatterns[] = {
      std::regex(R"re((Bearer\s+)[^\s"',]+)re", std::regex::icase),
      std::regex(R"re(("(?:access_token|refresh_token|id_token|client_secret|client_assertion|)re"
                 R"re(aadClientSecret)"\s*:\s*")[^"]*)re",
                 std::regex::icase),
      std::regex(R"re(((?:access_token|refresh_token|client_secret|client_assertion)=)[^&\s]*)re",
                 std::regex::icase),
      // A JWT: three base64url segments, the first starting with the encoding of `{"`.
      std::regex(R"re(()eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)re"),
  };
  // libstdc++'s regex matcher recurses once per character a repetition takes in, so a long run
  // after "Bearer " (a 50 KB CloudError message was enough) overflows the stack. No message needs
  // more than this; the cut happens before redaction, so what is kept is still redacted.
  constexpr std::size_t kMaxBytes = 4096;
  std::string out(text.substr(0, kMaxBytes));
  if (text.size() > kMaxBytes) out += fmt::format("... ({} bytes cut)", text.size() - kMaxBytes);
  for (const auto& pattern : kPatterns)
    out = std::regex_replace(out, pattern, "$1<redacted>");
  return out;
}

}  // namespace vnetipam::azure
