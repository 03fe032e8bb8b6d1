// Links: interface names, MAC addresses, and the one reading of a link message.
//
// Everything reaches the kernel through rtnl.h's raw socket and acts on the namespace that socket
// is bound to; errors name the interface and that namespace. Names are validated (1..15 bytes, no
// '/', ':' or whitespace) before anything reaches the kernel.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "lib/net/error.h"
#include "lib/net/rtnl.h"

namespace vnetipam::net {

// IFNAMSIZ - 1: the longest interface name the kernel accepts.
inline constexpr std::size_t kMaxInterfaceName = 15;

// kInvalidArgument unless name is a usable interface name.
Result<void> validateInterfaceName(std::string_view name);

// A 48-bit Ethernet address.
struct MacAddress {
  std::array<std::uint8_t, 6> bytes{};

  // "aa:bb:cc:dd:ee:ff", case-insensitive; anything else is kInvalidArgument.
  static Result<MacAddress> parse(std::string_view text);
  // Lower-case colon-separated.
  std::string toString() const;
  auto operator<=>(const MacAddress&) const = default;
};

struct LinkInfo {
  std::string name;
  int ifindex = 0;
  MacAddress mac;
  std::uint32_t mtu = 0;
  bool up = false;  // IFF_UP (administrative state)
};

// A link as one RTM_NEWLINK or RTM_DELLINK message describes it: the answer to a GET, an entry of
// a dump, a notification. The one parser of link messages, so every reader sees the same fields.
struct LinkMessage {
  LinkInfo info;
  int peerIndex = 0;           // IFLA_LINK: for a veth, the other end's ifindex in its namespace
  bool peerElsewhere = false;  // IFLA_LINK_NETNSID: that other end is in another namespace
  std::string kind;            // IFLA_INFO_KIND ("veth"), empty if none
};
// nullopt if msg (a whole netlink message) is too short for its ifinfomsg.
std::optional<LinkMessage> parseLinkMessage(std::span<const std::uint8_t> msg);

// Looks a link up by name with one RTM_GETLINK. kNotFound if there is none.
Result<LinkInfo> getLink(RtnlSocket& sock, std::string_view name);

}  // namespace vnetipam::net
