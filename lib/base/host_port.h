// "HOST:PORT" as every listener and the Azure mock's --listen URL spell an address.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace vnetipam::base {

struct HostPort {
  std::string host;  // without the brackets of "[v6]"; empty for ":PORT" (the caller decides)
  int port = 0;      // 0-65535
};

// Splits at the last ':' "HOST:PORT", "[v6]:PORT" or ":PORT". The error says what is wrong with
// the quoted input: no port, or a port that is not a number in 0-65535.
std::expected<HostPort, std::string> splitHostPort(std::string_view text);

}  // namespace vnetipam::base
