#include "lib/net/host_dataplane.h"

#include <span>

#include <fmt/format.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "lib/net/link.h"
#include "lib/net/route.h"
#include "lib/net/rtnl.h"

namespace vnetipam::net {
namespace {

Result<void> dumpLinks(RtnlSocket& sock, std::vector<DumpedLinkState>& out) {
  RtnlBatch dump;
  dump.add(RTM_GETLINK, NLM_F_DUMP, ifinfomsg{},
           fmt::format("list links in namespace {}", sock.netns()));
  dump.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  if (auto ok = dump.send(sock); !ok) return ok;
  return dump.receiveDump(sock, [&](std::span<const std::uint8_t> msg) {
    if (messageType(msg) != RTM_NEWLINK) return;
    auto link = parseLinkMessage(msg);
    if (!link) return;
    out.push_back(
        {.name = std::move(link->info.name), .ifindex = link->info.ifindex, .up = link->info.up});
  });
}

}  // namespace

Result<HostDataplane> readHostDataplane(const Netns& ns) {
  auto sock = RtnlSocket::open(ns);
  if (!sock) return std::unexpected(sock.error());
  HostDataplane out;
  if (auto ok = dumpLinks(*sock, out.links); !ok) return std::unexpected(ok.error());
  for (const auto family : {ipam::Family::kV4, ipam::Family::kV6}) {
    auto routes = dumpRoutes(*sock, 0, InterruptedDump::kAccept, family);
    if (!routes) return std::unexpected(routes.error());
    for (auto& r : *routes) {
      if (r.table == kMainTable && r.type == RTN_UNICAST) out.routes.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace vnetipam::net
