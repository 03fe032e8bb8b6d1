#include "controller/nic_conditions.h"

#include <cctype>
#include <utility>

#include "controller/pool_status.h"

namespace vnetipam::controller {

std::string conditionReason(std::string_view text, std::string_view fallback) {
  std::string out;
  bool upper = false;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool keep = std::isalnum(u) != 0 || c == '_';
    if (!keep || u >= 0x80) {
      upper = !out.empty();
      continue;
    }
    if (out.empty() && std::isalpha(u) == 0) continue;  // must start with a letter
    out.push_back(upper || out.empty() ? static_cast<char>(std::toupper(u)) : c);
    upper = false;
    if (out.size() == kMaxReasonLength) break;
  }
  // Kept characters are all [A-Za-z0-9_], which the pattern allows at the end too.
  return out.empty() ? std::string(fallback) : out;
}

std::string nicFailureReason(azure::ErrorCode code, std::string_view azureCode) {
  std::string_view fallback;
  switch (code) {
    case azure::ErrorCode::kConnectFailed: fallback = "ConnectFailed"; break;
    case azure::ErrorCode::kTransport: fallback = "TransportError"; break;
    case azure::ErrorCode::kThrottled: fallback = "Throttled"; break;
    case azure::ErrorCode::kServerError: fallback = "ServerError"; break;
    case azure::ErrorCode::kOperationFailed: fallback = "OperationFailed"; break;
    case azure::ErrorCode::kTimeout: fallback = "OperationTimedOut"; break;
    case azure::ErrorCode::kPreconditionFailed: fallback = "PreconditionFailed"; break;
    case azure::ErrorCode::kAuth: fallback = "AuthenticationFailed"; break;
    case azure::ErrorCode::kUnauthorized: fallback = "Unauthorized"; break;
    case azure::ErrorCode::kForbidden: fallback = "Forbidden"; break;
    case azure::ErrorCode::kNotFound: fallback = "NotFound"; break;
    case azure::ErrorCode::kConflict: fallback = "Conflict"; break;
    case azure::ErrorCode::kBadRequest: fallback = "BadRequest"; break;
    default: fallback = "NICProgrammingFailed"; break;
  }
  return conditionReason(azureCode, fallback);
}

std::string boundedMessage(std::string text) {
  if (text.size() <= kMaxConditionMessage) return text;
  constexpr std::string_view kCut = "...";
  std::size_t end = kMaxConditionMessage - kCut.size();
  // Back off to the start of a UTF-8 character (continuation bytes are 10xxxxxx).
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  text.resize(end);
  text += kCut;
  return text;
}

api::Condition nextCondition(const std::optional<api::Condition>& previous, std::string_view type,
                             bool status, std::string reason, std::string message, Time now) {
  api::Condition c{.type = std::string(type),
                   .status = status ? "True" : "False",
                   .reason = std::move(reason),
                   .message = boundedMessage(std::move(message)),
                   .lastTransitionTime = formatTime(now),
                   .observedGeneration = 0,
                   .extra = nlohmann::json::object()};
  if (previous && previous->status == c.status && !previous->lastTransitionTime.empty()) {
    c.lastTransitionTime = previous->lastTransitionTime;
  }
  return c;
}

bool alreadyFailing(const std::optional<api::Condition>& current, std::string_view reason) {
  return current && current->status == "False" && current->reason == reason;
}

}  // namespace vnetipam::controller
