// Errors of the Azure client. Every failure a token endpoint, ARM, the network or azure.json can
// produce is a value of this type, never an exception. A message names what was being done (the
// operation and resource, or the file and key) and what Azure said (the CloudError code and
// message). No message ever carries a secret, a token or a client assertion.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace vnetipam::azure {

enum class ErrorCode {
  kConfig,              // azure.json or the environment is missing, unreadable or malformed
  kInvalidArgument,     // the caller asked for something impossible (a malformed ARM id, CIDR)
  kAuth,                // no token could be obtained (bad credentials, token endpoint refused)
  kConnectFailed,       // no connection was made after every retry: the request was not sent
  kTransport,           // the connection broke or timed out after every retry: outcome unknown
  kBadResponse,         // Azure answered with something that is not what the API promises
  kBadRequest,          // 400 (SubnetIsFull, PrivateIPAddressInUse, InvalidRequestFormat, ...)
  kUnauthorized,        // 401 even with a freshly fetched token
  kForbidden,           // 403
  kNotFound,            // 404
  kConflict,            // 409 that is not AnotherOperationInProgress, or still in progress
  kPreconditionFailed,  // 412: the etag sent in If-Match is stale
  kThrottled,           // 429 after every retry
  kServerError,         // 408 or 5xx after every retry
  kOperationFailed,     // a long-running operation ended Failed or Canceled
  kTimeout,             // a long-running operation did not finish within the client's limit
  kHttp,                // any other non-2xx status
};

std::string_view toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
  int httpStatus = 0;     // 0 when no response was received
  std::string azureCode;  // CloudError error.code ("SubnetIsFull") or the AAD "error", if any
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message, int httpStatus = 0,
                                   std::string azureCode = {}) {
  return std::unexpected<Error>(Error{code, std::move(message), httpStatus, std::move(azureCode)});
}

// Replaces anything that looks like a credential in `text` — a bearer token, an access/refresh
// token or client secret/assertion in JSON or form encoding, a JWT — with "<redacted>". Applied
// to every message built from text we did not write ourselves, as a last line of defence. Text
// past the first 4 KiB is cut off first (the result says how much), so a message stays readable
// and the redaction's cost stays bounded whatever a server sent.
std::string redactSecrets(std::string_view text);

}  // namespace vnetipam::azure
