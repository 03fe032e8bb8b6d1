#include "lib/net/route.h"

#include <cstring>
#include <functional>
#include <span>
#include <string>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

namespace vnetipam::net {
namespace {

// An IPv4 address attribute (network byte order), or nullopt if it is not 4 bytes.
std::optional<ipam::IPAddress> v4Attr(const RtAttr& a) {
  std::uint32_t raw = 0;
  if (a.data.size() != sizeof raw) return std::nullopt;
  std::memcpy(&raw, a.data.data(), sizeof raw);
  return ipam::IPAddress::v4(ntohl(raw));
}

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

// An RTM_NEWADDR entry; nullopt without an IPv4 address.
std::optional<DumpedAddress> parseAddress(const ifaddrmsg& ifa,
                                          std::span<const std::uint8_t> attrs) {
  if (ifa.ifa_family != AF_INET || ifa.ifa_prefixlen > 32) return std::nullopt;
  std::optional<ipam::IPAddress> local;
  std::optional<ipam::IPAddress> address;
  for (const auto& a : parseAttrs(attrs)) {
    if (a.type == IFA_LOCAL) local = v4Attr(a);
    if (a.type == IFA_ADDRESS) address = v4Attr(a);
  }
  // IFA_ADDRESS is the peer's on a point-to-point link; IFA_LOCAL, when sent, is always ours.
  if (!local) local = address;
  if (!local) return std::nullopt;
  return DumpedAddress{.ifindex = static_cast<int>(ifa.ifa_index),
                       .address = *local,
                       .prefixLength = ifa.ifa_prefixlen};
}

// An RTM_NEWROUTE entry; nullopt unless IPv4.
std::optional<DumpedRoute> parseRoute(const rtmsg& rt, std::span<const std::uint8_t> attrs) {
  if (rt.rtm_family != AF_INET || rt.rtm_dst_len > 32) return std::nullopt;
  DumpedRoute route{.table = rt.rtm_table,
                    .protocol = rt.rtm_protocol,
                    .scope = rt.rtm_scope,
                    .type = rt.rtm_type};
  ipam::IPAddress dst = ipam::IPAddress::v4(0);  // the default route has no RTA_DST
  for (const auto& a : parseAttrs(attrs)) {
    switch (a.type) {
      case RTA_TABLE: route.table = a.u32(); break;
      case RTA_OIF: route.oif = static_cast<int>(a.u32()); break;
      case RTA_GATEWAY: route.gateway = v4Attr(a); break;
      case RTA_DST:
        if (auto d = v4Attr(a)) dst = *d;
        break;
      default: break;
    }
  }
  route.dst = ipam::Prefix::masked(dst, rt.rtm_dst_len);
  return route;
}

// An RTM_NEWNEIGH entry; nullopt without an IPv4 NDA_DST.
std::optional<DumpedNeighbour> parseNeighbour(const ndmsg& nd,
                                              std::span<const std::uint8_t> attrs) {
  if (nd.ndm_family != AF_INET) return std::nullopt;
  DumpedNeighbour n{.ifindex = nd.ndm_ifindex, .state = nd.ndm_state};
  bool hasDst = false;
  for (const auto& a : parseAttrs(attrs)) {
    if (a.type == NDA_DST) {
      if (auto dst = v4Attr(a)) {
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

void addRouteRequest(RtnlBatch& b, int ifindex, const std::string& dev, const Route& route,
                     const std::string& netns) {
  std::string text = route.dst.toString();
  if (route.gateway) text += " via " + route.gateway->toString();
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = static_cast<std::uint8_t>(route.dst.length());
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = route.protocol;
  rt.rtm_scope = route.scope == RouteScope::kLink ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  b.add(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, rt,
        fmt::format("add route {} dev {} table {} in namespace {}", text, dev, route.table, netns));
  b.attrU32(RTA_TABLE, route.table);
  if (route.dst.length() > 0) {
    const auto dst = v4Bytes(route.dst.address());
    b.attr(RTA_DST, dst.data(), dst.size());
  }
  if (route.gateway) {
    const auto gw = v4Bytes(*route.gateway);
    b.attr(RTA_GATEWAY, gw.data(), gw.size());
  }
  b.attrU32(RTA_OIF, static_cast<std::uint32_t>(ifindex));
}

Result<std::vector<DumpedAddress>> dumpAddresses(RtnlSocket& sock, int ifindex,
                                                 InterruptedDump interrupted) {
  ifaddrmsg header{};
  header.ifa_family = AF_INET;
  return dumpEntries<DumpedAddress>(
      sock, RTM_GETADDR, RTM_NEWADDR, header, "list IPv4 addresses " + whose(ifindex, sock),
      ifindex, interrupted, &parseAddress, +[](const DumpedAddress& a) { return a.ifindex; });
}

Result<std::vector<DumpedRoute>> dumpRoutes(RtnlSocket& sock, int ifindex,
                                            InterruptedDump interrupted) {
  rtmsg header{};
  header.rtm_family = AF_INET;
  return dumpEntries<DumpedRoute>(
      sock, RTM_GETROUTE, RTM_NEWROUTE, header, "list IPv4 routes " + whose(ifindex, sock), ifindex,
      interrupted, &parseRoute, +[](const DumpedRoute& r) { return r.oif; });
}

Result<std::vector<DumpedNeighbour>> dumpNeighbours(RtnlSocket& sock, int ifindex,
                                                    InterruptedDump interrupted) {
  ndmsg header{};
  header.ndm_family = AF_INET;
  return dumpEntries<DumpedNeighbour>(
      sock, RTM_GETNEIGH, RTM_NEWNEIGH, header, "list IPv4 neighbours " + whose(ifindex, sock),
      ifindex, interrupted, &parseNeighbour, +[](const DumpedNeighbour& n) { return n.ifindex; });
}

}  // namespace vnetipam::net
