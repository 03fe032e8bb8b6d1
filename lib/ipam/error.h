// Errors of the pure IPAM core. Expected failures (bad input, a full pool, a wrong owner) are
// values of this type, never exceptions or crashes; every message names the offending value and,
// where one exists, what would be valid.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace vnetipam::ipam {

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

}  // namespace vnetipam::ipam
