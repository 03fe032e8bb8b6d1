// The project's error type. Expected failures (bad input, a full pool, a wrong owner, a refused
// file operation) are values of this type, never exceptions or crashes; every message names the
// offending value and, where one exists, what would be valid. The IPAM core, the plumbing of the
// CNI plugins, the node agent and the API codec all report in it, so a caller handles one type.
// The clients of remote APIs (lib/kube, lib/azure, lib/http) have their own, which carry what the
// server said.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace vnetipam::base {

enum class ErrorCode {
  kInvalidArgument,  // malformed text or a value outside its domain
  kNotAligned,       // a prefix whose address has host bits set
  kOutOfRange,       // a value outside the subnet, block or limit it must lie in
  kExhausted,        // nothing left to allocate
  kConflict,         // already held by someone else
  kNotFound,         // not allocated, or not known
  kWrongOwner,       // a release or lookup by an owner that does not hold the address
  kNotReady,         // an operation called before the state allows it (allocate before occupy)
  kCorruption,       // stored data failed its checksum in a place a crash cannot explain
  kIo,               // the file system refused (the message carries errno's text)
};

std::string_view toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace vnetipam::base
