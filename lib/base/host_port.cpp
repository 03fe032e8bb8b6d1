#include "lib/base/host_port.h"

#include <charconv>

#include <fmt/format.h>

namespace vnetipam::base {

std::expected<HostPort, std::string> splitHostPort(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return std::unexpected(fmt::format("\"{}\" has no port: use HOST:PORT", text));
  }
  HostPort out;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  out.host = std::string(host);
  const std::string_view portText = text.substr(colon + 1);
  const auto [ptr, ec] =
      std::from_chars(portText.data(), portText.data() + portText.size(), out.port);
  if (ec != std::errc() || ptr != portText.data() + portText.size() || out.port < 0 ||
      out.port > 65535) {
    return std::unexpected(
        fmt::format("\"{}\" has an invalid port \"{}\": want 0-65535", text, portText));
  }
  return out;
}

}  // namespace vnetipam::base
