#include "lib/net/host_dataplane.h"

#include <cstddef>
#include <cstring>
#include <span>

#include <fmt/format.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "lib/net/route.h"
#include "lib/net/rtnl.h"

namespace vnetipam::net {
namespace {

std::uint16_t messageType(std::span<const std::uint8_t> msg) {
  std::uint16_t type = 0;
  std::memcpy(&type, msg.data() + offsetof(nlmsghdr, nlmsg_type), sizeof type);
  return type;
}

Result<void> dumpLinks(RtnlSocket& sock, std::vector<DumpedLinkState>& out) {
  RtnlBatch dump;
  dump.add(RTM_GETLINK, NLM_F_DUMP, ifinfomsg{},
           fmt::format("list links in namespace {}", sock.netns()));
  dump.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  if (auto ok = dump.send(sock); !ok) return ok;
  return dump.receiveDump(sock, [&](std::span<const std::uint8_t> msg) {
    if (messageType(msg) != RTM_NEWLINK) return;
    if (msg.size() < kNetlinkHeaderLen + sizeof(ifinfomsg)) return;
    ifinfomsg ifi{};
    std::memcpy(&ifi, msg.data() + kNetlinkHeaderLen, sizeof ifi);
    DumpedLinkState link{.ifindex = ifi.ifi_index, .up = (ifi.ifi_flags & IFF_UP) != 0};
    for (const auto& a : parseAttrs(msg.subspan(kNetlinkHeaderLen + netlinkAlign(sizeof ifi)))) {
      if (a.type == IFLA_IFNAME) link.name = std::string(a.str());
    }
    out.push_back(std::move(link));
  });
}

Result<void> dumpRoutes(RtnlSocket& sock, std::vector<DumpedRoute>& out) {
  rtmsg request{};
  request.rtm_family = AF_INET;
  RtnlBatch dump;
  dump.add(RTM_GETROUTE, NLM_F_DUMP, request,
           fmt::format("list IPv4 routes in namespace {}", sock.netns()));
  if (auto ok = dump.send(sock); !ok) return ok;
  return dump.receiveDump(sock, [&](std::span<const std::uint8_t> msg) {
    if (messageType(msg) != RTM_NEWROUTE) return;
    if (msg.size() < kNetlinkHeaderLen + sizeof(rtmsg)) return;
    rtmsg rt{};
    std::memcpy(&rt, msg.data() + kNetlinkHeaderLen, sizeof rt);
    if (rt.rtm_family != AF_INET || rt.rtm_type != RTN_UNICAST || rt.rtm_dst_len > 32) return;
    std::uint32_t table = rt.rtm_table;
    std::uint32_t dst = 0;  // network byte order; absent for the default route
    int oif = 0;
    for (const auto& a : parseAttrs(msg.subspan(kNetlinkHeaderLen + netlinkAlign(sizeof rt)))) {
      switch (a.type) {
        case RTA_TABLE: table = a.u32(); break;
        case RTA_OIF: oif = static_cast<int>(a.u32()); break;
        case RTA_DST:
          if (a.data.size() == sizeof dst) std::memcpy(&dst, a.data.data(), sizeof dst);
          break;
        default: break;
      }
    }
    if (table != kMainTable) return;
    out.push_back(
        {.dst = ipam::Prefix::masked(ipam::IPAddress::v4(ntohl(dst)), rt.rtm_dst_len), .oif = oif});
  });
}

}  // namespace

Result<HostDataplane> readHostDataplane(const Netns& ns) {
  auto sock = RtnlSocket::open(ns);
  if (!sock) return std::unexpected(sock.error());
  HostDataplane out;
  if (auto ok = dumpLinks(*sock, out.links); !ok) return std::unexpected(ok.error());
  if (auto ok = dumpRoutes(*sock, out.routes); !ok) return std::unexpected(ok.error());
  return out;
}

}  // namespace vnetipam::net
