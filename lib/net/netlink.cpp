#include "lib/net/netlink.h"

#include <cstdio>

#include <fmt/format.h>
#include <linux/netlink.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <sys/socket.h>

namespace vnetipam::net {

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

Result<RouteSocket> RouteSocket::open(const Netns& ns) {
  NlSockPtr sock(nl_socket_alloc());
  if (!sock) {
    return fail(ErrorCode::kIo,
                fmt::format("allocate a netlink socket for network namespace {}", ns.label()));
  }
  auto entered = runInNetns(ns, [&]() -> Result<void> {
    if (const int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
      return std::unexpected(nlError(
          err, fmt::format("connect a route netlink socket in network namespace {}", ns.label())));
    }
    return {};
  });
  if (!entered) return std::unexpected(entered.error());
  return RouteSocket(std::move(sock), ns.label());
}

Result<NlAddrPtr> toNlAddr(ipam::IPAddress addr, int prefixLength) {
  std::array<std::uint8_t, 16> bytes{};
  const bool v4 = addr.family() == ipam::Family::kV4;
  const std::size_t size = v4 ? 4 : 16;
  ipam::U128 bits = addr.bits();
  for (std::size_t i = size; i-- > 0;) {
    bytes[i] = static_cast<std::uint8_t>(bits & 0xff);
    bits >>= 8;
  }
  NlAddrPtr nl(nl_addr_build(v4 ? AF_INET : AF_INET6, bytes.data(), size));
  if (!nl) return fail(ErrorCode::kIo, fmt::format("build netlink address {}", addr.toString()));
  nl_addr_set_prefixlen(nl.get(), prefixLength);
  return nl;
}

Result<NlAddrPtr> toNlAddr(const MacAddress& mac) {
  NlAddrPtr nl(nl_addr_build(AF_LLC, mac.bytes.data(), mac.bytes.size()));
  if (!nl) return fail(ErrorCode::kIo, fmt::format("build netlink address {}", mac.toString()));
  return nl;
}

Error nlError(int nlerr, std::string doing) {
  ErrorCode code = ErrorCode::kIo;
  switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST: code = ErrorCode::kConflict; break;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: code = ErrorCode::kNotFound; break;
    case NLE_INVAL:
    case NLE_RANGE: code = ErrorCode::kInvalidArgument; break;
    default: break;
  }
  return Error{code, fmt::format("{}: {}", doing, nl_geterror(nlerr))};
}

}  // namespace vnetipam::net
