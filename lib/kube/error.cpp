#include "lib/kube/error.h"

namespace vnetipam::kube {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kConfig: return "Config";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kConnectFailed: return "ConnectFailed";
    case ErrorCode::kTransport: return "Transport";
    case ErrorCode::kCancelled: return "Cancelled";
    case ErrorCode::kBadResponse: return "BadResponse";
    case ErrorCode::kBadRequest: return "BadRequest";
    case ErrorCode::kUnauthorized: return "Unauthorized";
    case ErrorCode::kForbidden: return "Forbidden";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
    case ErrorCode::kConflict: return "Conflict";
    case ErrorCode::kGone: return "Gone";
    case ErrorCode::kInvalid: return "Invalid";
    case ErrorCode::kTooManyRequests: return "TooManyRequests";
    case ErrorCode::kServerError: return "ServerError";
    case ErrorCode::kHttp: return "Http";
  }
  return "Unknown";
}

Error fromTransport(http::Error error) {
  ErrorCode code = ErrorCode::kTransport;
  switch (error.code) {
    case http::ErrorCode::kConfig: code = ErrorCode::kConfig; break;
    case http::ErrorCode::kConnectFailed: code = ErrorCode::kConnectFailed; break;
    case http::ErrorCode::kTransport: code = ErrorCode::kTransport; break;
    case http::ErrorCode::kCancelled: code = ErrorCode::kCancelled; break;
  }
  return Error{code, std::move(error.message)};
}

}  // namespace vnetipam::kube
