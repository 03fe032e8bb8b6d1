#include "lib/base/error.h"

namespace vnetipam::base {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotAligned: return "NotAligned";
    case ErrorCode::kOutOfRange: return "OutOfRange";
    case ErrorCode::kExhausted: return "Exhausted";
    case ErrorCode::kConflict: return "Conflict";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kWrongOwner: return "WrongOwner";
    case ErrorCode::kNotReady: return "NotReady";
    case ErrorCode::kCorruption: return "Corruption";
    case ErrorCode::kIo: return "Io";
  }
  return "Unknown";
}

}  // namespace vnetipam::base
