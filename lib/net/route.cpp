#include "lib/net/route.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

namespace vnetipam::net {
namespace {

// An address attribute (network byte order) of `family`, or nullopt if it is not 4 (IPv4) or 16
// (IPv6) bytes long.
std::optional<ipam::IPAddress> addrAttr(const RtAttr& a, std::uint8_t family) {
  if (family == AF_INET) {
    std::uint32_t raw = 0;
    if (a.data.size() != sizeof raw) return std::nullopt;
    std::memcpy(&raw, a.data.data(), sizeof raw);
    return ipam::IPAddress::v4(ntohl(raw));
  }
  if (family != AF_INET6 || a.data.size() != 16) return std::nullopt;
  ipam::U128 bits = 0;
  for (const std::uint8_t byte : a.data)
    bits = (bits << 8) | byte;
  return ipam::IPAddress::fromBits(ipam::Family::kV6, bits);
}

// The longest prefix of an AF_INET or AF_INET6 entry; 0 for any other family.
int maxLength(std::uint8_t family) { return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0; }

std::string_view familyName(ipam::Family f) { return f == ipam::Family::kV4 ? "IPv4" : "IPv6"; }

std::string whose(int ifindex, const RtnlSocket& sock) {
  if (ifindex == 0) return fmt::format("in namespace {}", sock.netns());
  return fmt::format("of ifindex {} in namespace {}", ifindex, sock.netns());
}

// Sends the one request in `request` (made with NLM_F_DUMP) and passes every answer of `type`,
// a whole netlink message at least as long as its fixed header `Header`, to `each`.
template <typename Header>
Result<void> dump(RtnlSocket& sock, RtnlBatch& request, const std::string& what, std::uint16_t type,
                  InterruptedDump interrupted,
                  const std::function<void(const Header&, std::span<const std::uint8_t>)>& each) {
  if (auto ok = request.send(sock); !ok) return ok;
  auto ok = request.receiveDump(sock, [&](std::span<const std::uint8_t> msg) {
    if (messageType(msg) != type || msg.size() < kNetlinkHeaderLen + sizeof(Header)) return;
    Header header{};
    std::memcpy(&header, msg.data() + kNetlinkHeaderLen, sizeof header);
    each(header, msg.subspan(kNetlinkHeaderLen + netlinkAlign(sizeof header)));
  });
  if (!ok) return ok;
  if (request.interrupted() && interrupted == InterruptedDump::kFail) {
    return fail(ErrorCode::kIo, what +
                                    ": the table changed while it was read (an interrupted "
                                    "dump); ask again");
  }
  return {};
}

// An RTM_NEWADDR entry; nullopt without an address of its family.
std::optional<DumpedAddress> parseAddress(const ifaddrmsg& ifa,
                                          std::span<const std::uint8_t> attrs) {
  if (ifa.ifa_prefixlen > maxLength(ifa.ifa_family)) return std::nullopt;
  std::optional<ipam::IPAddress> local;
  std::optional<ipam::IPAddress> address;
  std::uint32_t flags = ifa.ifa_flags;
  for (const auto& a : parseAttrs(attrs)) {
    if (a.type == IFA_LOCAL) local = addrAttr(a, ifa.ifa_family);
    if (a.type == IFA_ADDRESS) address = addrAttr(a, ifa.ifa_family);
    if (a.type == IFA_FLAGS) flags = a.u32();
  }
  // IFA_ADDRESS is the peer's on a point-to-point link; IFA_LOCAL, when sent, is always ours.
  if (!local) local = address;
  if (!local) return std::nullopt;
  return DumpedAddress{.ifindex = static_cast<int>(ifa.ifa_index),
                       .address = *local,
                       .prefixLength = ifa.ifa_prefixlen,
                       .flags = flags};
}

// An RTM_NEWROUTE entry; nullopt unless IPv4 or IPv6.
std::optional<DumpedRoute> parseRoute(const rtmsg& rt, std::span<const std::uint8_t> attrs) {
  if (rt.rtm_dst_len > maxLength(rt.rtm_family)) return std::nullopt;
  DumpedRoute route{.table = rt.rtm_table,
                    .protocol = rt.rtm_protocol,
                    .scope = rt.rtm_scope,
                    .type = rt.rtm_type};
  // The default route has no RTA_DST.
  ipam::IPAddress dst = rt.rtm_family == AF_INET ? ipam::IPAddress::v4(0)
                                                 : ipam::IPAddress::fromBits(ipam::Family::kV6, 0);
  for (const auto& a : parseAttrs(attrs)) {
    switch (a.type) {
      case RTA_TABLE: route.table = a.u32(); break;
      case RTA_OIF: route.oif = static_cast<int>(a.u32()); break;
      case RTA_GATEWAY: route.gateway = addrAttr(a, rt.rtm_family); break;
      case RTA_DST:
        if (auto d = addrAttr(a, rt.rtm_family)) dst = *d;
        break;
      default: break;
    }
  }
  route.dst = ipam::Prefix::masked(dst, rt.rtm_dst_len);
  return route;
}

// An RTM_NEWNEIGH entry; nullopt without an IPv4 or IPv6 NDA_DST.
std::optional<DumpedNeighbour> parseNeighbour(const ndmsg& nd,
                                              std::span<const std::uint8_t> attrs) {
  if (maxLength(nd.ndm_family) == 0) return std::nullopt;
  DumpedNeighbour n{.ifindex = nd.ndm_ifindex, .state = nd.ndm_state};
  bool hasDst = false;
  for (const auto& a : parseAttrs(attrs)) {
    if (a.type == NDA_DST) {
      if (auto dst = addrAttr(a, nd.ndm_family)) {
        n.dst = *dst;
        hasDst = true;
      }
    } else if (a.type == NDA_LLADDR && a.data.size() == MacAddress{}.bytes.size()) {
      MacAddress mac;
      std::copy(a.data.begin(), a.data.end(), mac.bytes.begin());
      n.lladdr = mac;
    }
  }
  if (!hasDst) return std::nullopt;
  return n;
}

// One dump of `Entry`s: the request for `Header` with the family set, each answer parsed by
// `parse` and kept if it is on `ifindex` (or ifindex is 0).
template <typename Entry, typename Header>
Result<std::vector<Entry>> dumpEntries(
    RtnlSocket& sock, std::uint16_t requestType, std::uint16_t answerType, const Header& header,
    const std::string& what, int ifindex, InterruptedDump interrupted,
    std::optional<Entry> (*parse)(const Header&, std::span<const std::uint8_t>),
    int (*indexOf)(const Entry&)) {
  RtnlBatch request;
  request.add(requestType, NLM_F_DUMP, header, what);
  std::vector<Entry> out;
  auto ok = dump<Header>(sock, request, what, answerType, interrupted,
                         [&](const Header& h, std::span<const std::uint8_t> attrs) {
                           auto entry = parse(h, attrs);
                           if (entry && (ifindex == 0 || indexOf(*entry) == ifindex)) {
                             out.push_back(std::move(*entry));
                           }
                         });
  if (!ok) return std::unexpected(ok.error());
  return out;
}

}  // namespace

std::array<std::uint8_t, 4> v4Bytes(ipam::IPAddress a) {
  const auto bits = static_cast<std::uint32_t>(a.bits());
  return {static_cast<std::uint8_t>(bits >> 24), static_cast<std::uint8_t>(bits >> 16),
          static_cast<std::uint8_t>(bits >> 8), static_cast<std::uint8_t>(bits)};
}

AddressBytes addressBytes(ipam::IPAddress a) {
  AddressBytes out;
  if (a.family() == ipam::Family::kV4) {
    const auto v4 = v4Bytes(a);
    std::copy(v4.begin(), v4.end(), out.bytes.begin());
    out.size = v4.size();
    return out;
  }
  ipam::U128 bits = a.bits();
  for (std::size_t i = out.bytes.size(); i-- > 0; bits >>= 8)
    out.bytes[i] = static_cast<std::uint8_t>(bits);
  out.size = out.bytes.size();
  return out;
}

std::uint8_t addressFamily(ipam::Family f) { return f == ipam::Family::kV4 ? AF_INET : AF_INET6; }

void addRouteRequest(RtnlBatch& b, int ifindex, const std::string& dev, const Route& route,
                     const std::string& netns) {
  std::string text = route.dst.toString();
  if (route.gateway) text += " via " + route.gateway->toString();
  rtmsg rt{};
  rt.rtm_family = addressFamily(route.dst.family());
  rt.rtm_dst_len = static_cast<std::uint8_t>(route.dst.length());
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = route.protocol;
  rt.rtm_scope = route.scope == RouteScope::kLink ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  b.add(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, rt,
        fmt::format("add route {} dev {} table {} in namespace {}", text, dev, route.table, netns));
  b.attrU32(RTA_TABLE, route.table);
  if (route.dst.length() > 0) {
    const auto dst = addressBytes(route.dst.address());
    b.attr(RTA_DST, dst.data(), dst.size);
  }
  if (route.gateway) {
    const auto gw = addressBytes(*route.gateway);
    b.attr(RTA_GATEWAY, gw.data(), gw.size);
  }
  b.attrU32(RTA_OIF, static_cast<std::uint32_t>(ifindex));
}

Result<std::vector<DumpedAddress>> dumpAddresses(RtnlSocket& sock, int ifindex,
                                                 InterruptedDump interrupted, ipam::Family family) {
  ifaddrmsg header{};
  header.ifa_family = addressFamily(family);
  return dumpEntries<DumpedAddress>(
      sock, RTM_GETADDR, RTM_NEWADDR, header,
      fmt::format("list {} addresses {}", familyName(family), whose(ifindex, sock)), ifindex,
      interrupted, &parseAddress, +[](const DumpedAddress& a) { return a.ifindex; });
}

Result<std::vector<DumpedRoute>> dumpRoutes(RtnlSocket& sock, int ifindex,
                                            InterruptedDump interrupted, ipam::Family family) {
  rtmsg header{};
  header.rtm_family = addressFamily(family);
  return dumpEntries<DumpedRoute>(
      sock, RTM_GETROUTE, RTM_NEWROUTE, header,
      fmt::format("list {} routes {}", familyName(family), whose(ifindex, sock)), ifindex,
      interrupted, &parseRoute, +[](const DumpedRoute& r) { return r.oif; });
}

Result<std::vector<DumpedNeighbour>> dumpNeighbours(RtnlSocket& sock, int ifindex,
                                                    InterruptedDump interrupted,
                                                    ipam::Family family) {
  ndmsg header{};
  header.ndm_family = addressFamily(family);
  return dumpEntries<DumpedNeighbour>(
      sock, RTM_GETNEIGH, RTM_NEWNEIGH, header,
      fmt::format("list {} neighbours {}", familyName(family), whose(ifindex, sock)), ifindex,
      interrupted, &parseNeighbour, +[](const DumpedNeighbour& n) { return n.ifindex; });
}

}  // namespace vnetipam::net
