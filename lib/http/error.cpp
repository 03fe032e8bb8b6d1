#include "lib/http/error.h"

namespace vnetipam::http {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kConfig: return "Config";
    case ErrorCode::kConnectFailed: return "ConnectFailed";
    case ErrorCode::kTransport: return "Transport";
    case ErrorCode::kCancelled: return "Cancelled";
  }
  return "Unknown";
}

}  // namespace vnetipam::http
