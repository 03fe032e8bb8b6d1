#include "controller/nic_conditions.h"

#include <cctype>
#include <utility>

#include "api/conditions.h"
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
  return api::boundedMessage(std::move(text), kMaxConditionMessage);
}

api::Condition nextCondition(const std::optional<api::Condition>& previous, std::string_view type,
                             bool status, std::string reason, std::string message, Time now) {
  return api::nextCondition(previous ? &*previous : nullptr,
                            api::Condition{.type = std::string(type),
                                           .status = status ? "True" : "False",
                                           .reason = std::move(reason),
                                           .message = std::move(message),
                                           .lastTransitionTime = {},
                                           .observedGeneration = 0,
                                           .extra = nlohmann::json::object()},
                            formatTime(now), kMaxConditionMessage);
}

bool alreadyFailing(const std::optional<api::Condition>& current, std::string_view reason) {
  return current && current->status == "False" && current->reason == reason;
}

}  // namespace vnetipam::controller
