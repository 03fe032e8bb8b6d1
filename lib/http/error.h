// Errors of the HTTP transport: what can go wrong before a response arrives. A status code is
// never one of these (a 500 is a response); the clients above (lib/kube, lib/azure) turn these
// into their own errors, next to the ones a server's answer can make.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace vnetipam::http {

enum class ErrorCode {
  kConfig,         // the server URL, a certificate or its key does not parse
  kConnectFailed,  // no connection was made: the request was certainly not sent
  kTransport,      // the connection broke or timed out: the outcome of the request is unknown
  kCancelled,      // the caller cancelled the call
};

std::string_view toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;  // what was being done ("GET /api/v1/nodes") and what failed
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace vnetipam::http
