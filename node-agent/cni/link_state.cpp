#include "node-agent/cni/link_state.h"

#include <fmt/format.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "lib/net/route.h"

namespace vnetipam::cni {

net::Result<LinkState> readLinkState(net::RtnlSocket& sock, const net::LinkInfo& link) {
  const auto failed = [&](net::Error e) {
    e.message = fmt::format("read the state of {}: {}", link.name, e.message);
    return std::unexpected(std::move(e));
  };
  LinkState state;

  for (const auto family : {ipam::Family::kV4, ipam::Family::kV6}) {
    auto addresses = net::dumpAddresses(sock, link.ifindex, net::InterruptedDump::kFail, family);
    if (!addresses) return failed(addresses.error());
    for (const auto& a : *addresses) {
      state.addresses.push_back({.address = a.address, .prefixLength = a.prefixLength});
    }

    auto routes = net::dumpRoutes(sock, link.ifindex, net::InterruptedDump::kFail, family);
    if (!routes) return failed(routes.error());
    for (const auto& r : *routes) {
      if (r.table != net::kMainTable) continue;
      state.routes.push_back(
          {.dst = r.dst, .gateway = r.gateway, .linkScope = r.scope == RT_SCOPE_LINK});
    }

    auto neighbours = net::dumpNeighbours(sock, link.ifindex, net::InterruptedDump::kFail, family);
    if (!neighbours) return failed(neighbours.error());
    for (const auto& n : *neighbours) {
      state.neighbours.push_back({.dst = n.dst,
                                  .mac = n.lladdr ? n.lladdr->toString() : std::string(),
                                  .permanent = (n.state & NUD_PERMANENT) != 0});
    }
  }
  return state;
}

}  // namespace vnetipam::cni
