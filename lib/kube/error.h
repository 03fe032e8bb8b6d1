// Errors of the Kubernetes client. Every failure the network, the API server or a kubeconfig can
// produce is a value of this type, never an exception. A message names what was being done (the
// method and path, or the file and key) and what the server said.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "lib/http/error.h"

namespace vnetipam::kube {

enum class ErrorCode {
  kConfig,           // a kubeconfig or in-cluster file is missing, unreadable or malformed
  kInvalidArgument,  // the caller asked for something impossible (e.g. apply without a manager)
  kConnectFailed,    // no connection was made: the request was certainly not sent
  kTransport,        // the connection broke or timed out: the outcome of the request is unknown
  kCancelled,        // the caller cancelled the call
  kBadResponse,      // the server answered with something that is not what the API promises
  kBadRequest,       // 400
  kUnauthorized,     // 401
  kForbidden,        // 403
  kNotFound,         // 404
  kAlreadyExists,    // 409 with reason AlreadyExists: a create of a name that exists
  kConflict,         // 409 otherwise: a resourceVersion or uid precondition failed
  kGone,             // 410: the resourceVersion is too old, relist
  kInvalid,          // 422: the object was refused by validation
  kTooManyRequests,  // 429 after every retry
  kServerError,      // 5xx after every retry
  kHttp,             // any other non-2xx status
};

std::string_view toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
  int httpStatus = 0;  // 0 when no response was received
  std::string reason;  // the Status reason from the API server (e.g. "Conflict"), if any
};

template <typename T>
using Result = std::expected<T, Error>;

// A failure of the transport (lib/http) as the client reports it: the same code and message.
Error fromTransport(http::Error error);

inline std::unexpected<Error> fail(ErrorCode code, std::string message, int httpStatus = 0,
                                   std::string reason = {}) {
  return std::unexpected<Error>(Error{code, std::move(message), httpStatus, std::move(reason)});
}

}  // namespace vnetipam::kube
