#include "lib/net/link.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

namespace vnetipam::net {

Result<void> validateInterfaceName(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceName) {
    return fail(
        ErrorCode::kInvalidArgument,
        fmt::format("interface name '{}' must be 1..{} characters", name, kMaxInterfaceName));
  }
  if (name == "." || name == "..") {
    return fail(ErrorCode::kInvalidArgument, fmt::format("interface name '{}' is reserved", name));
  }
  for (const char c : name) {
    if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\0') {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("interface name '{}' contains '/', ':' or whitespace", name));
    }
  }
  return {};
}

Result<MacAddress> MacAddress::parse(std::string_view text) {
  MacAddress mac;
  const auto bad = [&] {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' is not a MAC address (want aa:bb:cc:dd:ee:ff)", text));
  };
  if (text.size() != 17) return bad();
  for (std::size_t i = 0; i < mac.bytes.size(); ++i) {
    unsigned value = 0;
    for (std::size_t j = 0; j < 2; ++j) {
      const char c = text[i * 3 + j];
      unsigned digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<unsigned>(c - 'A' + 10);
      } else {
        return bad();
      }
      value = value * 16 + digit;
    }
    if (i + 1 < mac.bytes.size() && text[i * 3 + 2] != ':') return bad();
    mac.bytes[i] = static_cast<std::uint8_t>(value);
  }
  return mac;
}

std::string MacAddress::toString() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                     bytes[3], bytes[4], bytes[5]);
}

std::optional<LinkMessage> parseLinkMessage(std::span<const std::uint8_t> msg) {
  if (msg.size() < kNetlinkHeaderLen + sizeof(ifinfomsg)) return std::nullopt;
  ifinfomsg ifi{};
  std::memcpy(&ifi, msg.data() + kNetlinkHeaderLen, sizeof ifi);
  LinkMessage link;
  link.info.ifindex = ifi.ifi_index;
  link.info.up = (ifi.ifi_flags & IFF_UP) != 0;
  for (const auto& a : parseAttrs(msg.subspan(kNetlinkHeaderLen + netlinkAlign(sizeof ifi)))) {
    switch (a.type) {
      case IFLA_IFNAME: link.info.name = std::string(a.str()); break;
      case IFLA_MTU: link.info.mtu = a.u32(); break;
      case IFLA_LINK: link.peerIndex = static_cast<int>(a.u32()); break;
      case IFLA_LINK_NETNSID: link.peerElsewhere = true; break;
      case IFLA_ADDRESS:
        if (a.data.size() == link.info.mac.bytes.size()) {
          std::copy(a.data.begin(), a.data.end(), link.info.mac.bytes.begin());
        }
        break;
      case IFLA_LINKINFO:
        for (const auto& info : parseAttrs(a.data)) {
          if (info.type == IFLA_INFO_KIND) link.kind = std::string(info.str());
        }
        break;
      default: break;
    }
  }
  return link;
}

Result<LinkInfo> getLink(RtnlSocket& sock, std::string_view name) {
  if (auto ok = validateInterfaceName(name); !ok) return std::unexpected(ok.error());
  const std::string what = fmt::format("look up link {} in namespace {}", name, sock.netns());
  RtnlBatch b;
  b.add(RTM_GETLINK, 0, ifinfomsg{}, what);
  b.attrString(IFLA_IFNAME, name);
  b.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  if (auto ok = b.send(sock); !ok) return std::unexpected(ok.error());
  if (auto ok = b.receive(sock); !ok) return std::unexpected(ok.error());
  if (auto ok = b.firstError(); !ok) return std::unexpected(ok.error());
  auto link = parseLinkMessage(b.reply(0));
  if (!link) return fail(ErrorCode::kIo, what + ": no link in the answer");
  return std::move(link->info);
}

}  // namespace vnetipam::net
