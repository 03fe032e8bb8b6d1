#include "lib/net/route.h"

#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <sys/socket.h>

namespace vnetipam::net {
namespace {

int addressFamily(ipam::Family f) { return f == ipam::Family::kV4 ? AF_INET : AF_INET6; }

std::string describe(const Route& route, const LinkInfo& dev, const RouteSocket& sock) {
  std::string text = route.dst.toString();
  if (route.gateway) text += " via " + route.gateway->toString();
  return fmt::format("{} dev {} table {} in namespace {}", text, dev.name, route.table,
                     sock.netns());
}

// Builds the route object shared by add and delete.
Result<RoutePtr> buildRoute(const LinkInfo& dev, const Route& route, const std::string& what) {
  if (route.gateway && route.gateway->family() != route.dst.family()) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: gateway and destination differ in family", what));
  }
  RoutePtr r(rtnl_route_alloc());
  NexthopPtr nh(rtnl_route_nh_alloc());
  if (!r || !nh) return fail(ErrorCode::kIo, what + ": out of memory");
  auto dst = toNlAddr(route.dst.address(), route.dst.length());
  if (!dst) return std::unexpected(dst.error());
  rtnl_route_set_family(r.get(), static_cast<std::uint8_t>(addressFamily(route.dst.family())));
  if (const int err = rtnl_route_set_dst(r.get(), dst->get()); err < 0) {
    return std::unexpected(nlError(err, what));
  }
  rtnl_route_set_table(r.get(), route.table);
  rtnl_route_set_protocol(r.get(), route.protocol);
  rtnl_route_set_scope(r.get(),
                       route.scope == RouteScope::kLink ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  rtnl_route_nh_set_ifindex(nh.get(), dev.ifindex);
  if (route.gateway) {
    auto gw = toNlAddr(*route.gateway, ipam::bitLength(route.gateway->family()));
    if (!gw) return std::unexpected(gw.error());
    rtnl_route_nh_set_gateway(nh.get(), gw->get());  // takes its own reference
  }
  if (route.onlink) rtnl_route_nh_set_flags(nh.get(), RTNH_F_ONLINK);
  rtnl_route_add_nexthop(r.get(), nh.release());  // the route owns the next hop from here
  return r;
}

}  // namespace

Result<void> addHostAddress(RouteSocket& sock, const LinkInfo& link, ipam::IPAddress addr) {
  const int length = ipam::bitLength(addr.family());
  const std::string what = fmt::format("add address {}/{} to {} in namespace {}", addr.toString(),
                                       length, link.name, sock.netns());
  AddrPtr a(rtnl_addr_alloc());
  if (!a) return fail(ErrorCode::kIo, what + ": out of memory");
  auto local = toNlAddr(addr, length);
  if (!local) return std::unexpected(local.error());
  rtnl_addr_set_ifindex(a.get(), link.ifindex);
  rtnl_addr_set_family(a.get(), addressFamily(addr.family()));
  if (const int err = rtnl_addr_set_local(a.get(), local->get()); err < 0) {
    return std::unexpected(nlError(err, what));
  }
  rtnl_addr_set_prefixlen(a.get(), length);
  if (addr.family() == ipam::Family::kV6) rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
  if (const int err = rtnl_addr_add(sock.get(), a.get(), NLM_F_EXCL); err < 0) {
    return std::unexpected(nlError(err, what));
  }
  return {};
}

Result<void> addRoute(RouteSocket& sock, const LinkInfo& dev, const Route& route, RouteWrite mode) {
  const std::string what = "add route " + describe(route, dev, sock);
  auto r = buildRoute(dev, route, what);
  if (!r) return std::unexpected(r.error());
  const int flags = NLM_F_CREATE | (mode == RouteWrite::kReplace ? NLM_F_REPLACE : NLM_F_EXCL);
  if (const int err = rtnl_route_add(sock.get(), r->get(), flags); err < 0) {
    return std::unexpected(nlError(err, what));
  }
  return {};
}

Result<void> deleteRoute(RouteSocket& sock, const LinkInfo& dev, const Route& route) {
  const std::string what = "delete route " + describe(route, dev, sock);
  auto r = buildRoute(dev, route, what);
  if (!r) return std::unexpected(r.error());
  const int err = rtnl_route_delete(sock.get(), r->get(), 0);
  // The kernel answers ESRCH (libnl: NLE_OBJ_NOTFOUND) for a route that is not there, and ENODEV
  // when the device is gone, which takes its routes with it.
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return {};
  if (err < 0) return std::unexpected(nlError(err, what));
  return {};
}

Result<void> addPermanentNeighbour(RouteSocket& sock, const LinkInfo& dev, ipam::IPAddress dst,
                                   const MacAddress& lladdr) {
  const std::string what = fmt::format("add permanent neighbour {} lladdr {} on {} in namespace {}",
                                       dst.toString(), lladdr.toString(), dev.name, sock.netns());
  NeighPtr n(rtnl_neigh_alloc());
  if (!n) return fail(ErrorCode::kIo, what + ": out of memory");
  auto nlDst = toNlAddr(dst, ipam::bitLength(dst.family()));
  if (!nlDst) return std::unexpected(nlDst.error());
  auto nlMac = toNlAddr(lladdr);
  if (!nlMac) return std::unexpected(nlMac.error());
  rtnl_neigh_set_ifindex(n.get(), dev.ifindex);
  rtnl_neigh_set_family(n.get(), addressFamily(dst.family()));
  if (const int err = rtnl_neigh_set_dst(n.get(), nlDst->get()); err < 0) {
    return std::unexpected(nlError(err, what));
  }
  rtnl_neigh_set_lladdr(n.get(), nlMac->get());
  rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  if (const int err = rtnl_neigh_add(sock.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0) {
    return std::unexpected(nlError(err, what));
  }
  return {};
}

}  // namespace vnetipam::net
