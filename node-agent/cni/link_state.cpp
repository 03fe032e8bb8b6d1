#include "node-agent/cni/link_state.h"

#include <fmt/format.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <sys/socket.h>

namespace vnetipam::cni {
namespace {

struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using CachePtr = std::unique_ptr<nl_cache, CacheFree>;

std::optional<ipam::IPAddress> toAddress(nl_addr* a) {
  if (a == nullptr || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) {
    return std::nullopt;
  }
  const auto* b = static_cast<const std::uint8_t*>(nl_addr_get_binary_addr(a));
  return ipam::IPAddress::v4((std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                             (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]});
}

template <typename Alloc>
net::Result<CachePtr> makeCache(Alloc alloc, const std::string& what) {
  nl_cache* raw = nullptr;
  if (const int err = alloc(&raw); err < 0) return std::unexpected(net::nlError(err, what));
  return CachePtr(raw);
}

}  // namespace

net::Result<LinkState> readLinkState(net::RouteSocket& sock, const net::LinkInfo& link) {
  const std::string where = fmt::format("{} in namespace {}", link.name, sock.netns());
  LinkState state;

  auto addrs = makeCache([&](nl_cache** c) { return rtnl_addr_alloc_cache(sock.get(), c); },
                         "list addresses of " + where);
  if (!addrs) return std::unexpected(addrs.error());
  for (nl_object* o = nl_cache_get_first(addrs->get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != link.ifindex) continue;
    if (auto ip = toAddress(rtnl_addr_get_local(a))) {
      state.addresses.push_back({*ip, static_cast<int>(rtnl_addr_get_prefixlen(a))});
    }
  }

  auto routes =
      makeCache([&](nl_cache** c) { return rtnl_route_alloc_cache(sock.get(), AF_INET, 0, c); },
                "list routes of " + where);
  if (!routes) return std::unexpected(routes.error());
  for (nl_object* o = nl_cache_get_first(routes->get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_nnexthops(r) != 1) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    if (rtnl_route_nh_get_ifindex(nh) != link.ifindex) continue;
    nl_addr* dst = rtnl_route_get_dst(r);
    std::optional<ipam::IPAddress> dstAddr = toAddress(dst);
    const int length = dst != nullptr ? static_cast<int>(nl_addr_get_prefixlen(dst)) : 0;
    if (!dstAddr) {
      if (length != 0) continue;
      dstAddr = ipam::IPAddress::v4(0);  // the default route has an empty destination
    }
    state.routes.push_back({.dst = ipam::Prefix::masked(*dstAddr, length),
                            .gateway = toAddress(rtnl_route_nh_get_gateway(nh)),
                            .linkScope = rtnl_route_get_scope(r) == RT_SCOPE_LINK});
  }

  auto neighs = makeCache([&](nl_cache** c) { return rtnl_neigh_alloc_cache(sock.get(), c); },
                          "list neighbours of " + where);
  if (!neighs) return std::unexpected(neighs.error());
  for (nl_object* o = nl_cache_get_first(neighs->get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* n = reinterpret_cast<rtnl_neigh*>(o);
    if (rtnl_neigh_get_ifindex(n) != link.ifindex) continue;
    auto dst = toAddress(rtnl_neigh_get_dst(n));
    if (!dst) continue;
    LinkState::Neighbour neighbour{.dst = *dst,
                                   .permanent = (rtnl_neigh_get_state(n) & NUD_PERMANENT) != 0};
    if (nl_addr* ll = rtnl_neigh_get_lladdr(n); ll != nullptr && nl_addr_get_len(ll) == 6) {
      net::MacAddress mac;
      const auto* b = static_cast<const std::uint8_t*>(nl_addr_get_binary_addr(ll));
      std::copy(b, b + 6, mac.bytes.begin());
      neighbour.mac = mac.toString();
    }
    state.neighbours.push_back(std::move(neighbour));
  }
  return state;
}

}  // namespace vnetipam::cni
