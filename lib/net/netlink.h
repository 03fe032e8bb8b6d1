// libnl ownership and a route netlink socket bound to one network namespace.
//
// Every libnl object is reference counted or heap allocated with its own free function; the
// pointers below release them on scope exit so no error path leaks. RouteSocket is the only way the
// operations in link.h and route.h reach the kernel.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <netlink/addr.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>

#include "lib/ipam/ip.h"
#include "lib/net/netns.h"

namespace vnetipam::net {

struct NlSockFree {
  void operator()(nl_sock* p) const { nl_socket_free(p); }
};
struct NlAddrPut {
  void operator()(nl_addr* p) const { nl_addr_put(p); }
};
struct LinkPut {
  void operator()(rtnl_link* p) const { rtnl_link_put(p); }
};
struct AddrPut {
  void operator()(rtnl_addr* p) const { rtnl_addr_put(p); }
};
struct RoutePut {
  void operator()(rtnl_route* p) const { rtnl_route_put(p); }
};
struct NexthopFree {
  void operator()(rtnl_nexthop* p) const { rtnl_route_nh_free(p); }
};
struct NeighPut {
  void operator()(rtnl_neigh* p) const { rtnl_neigh_put(p); }
};

using NlSockPtr = std::unique_ptr<nl_sock, NlSockFree>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrPut>;
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
using AddrPtr = std::unique_ptr<rtnl_addr, AddrPut>;
using RoutePtr = std::unique_ptr<rtnl_route, RoutePut>;
using NexthopPtr = std::unique_ptr<rtnl_nexthop, NexthopFree>;
using NeighPtr = std::unique_ptr<rtnl_neigh, NeighPut>;

// A 48-bit Ethernet address.
struct MacAddress {
  std::array<std::uint8_t, 6> bytes{};

  // "aa:bb:cc:dd:ee:ff", case-insensitive; anything else is kInvalidArgument.
  static Result<MacAddress> parse(std::string_view text);
  // Lower-case colon-separated.
  std::string toString() const;
  auto operator<=>(const MacAddress&) const = default;
};

// A connected NETLINK_ROUTE socket whose requests act on one network namespace, whichever thread
// later uses it. Not safe for concurrent use from two threads; move-only.
class RouteSocket {
 public:
  // Connects on a short-lived thread inside ns (see runInNetns), so the caller's thread stays put.
  static Result<RouteSocket> open(const Netns& ns);

  nl_sock* get() const { return sock_.get(); }
  // The namespace label, for error messages.
  const std::string& netns() const { return netns_; }

 private:
  RouteSocket(NlSockPtr sock, std::string netns)
      : sock_(std::move(sock)), netns_(std::move(netns)) {}
  NlSockPtr sock_;
  std::string netns_;
};

// Builds an nl_addr holding addr with the given prefix length (AF_INET or AF_INET6).
Result<NlAddrPtr> toNlAddr(ipam::IPAddress addr, int prefixLength);
// Builds an AF_LLC nl_addr for a MAC address.
Result<NlAddrPtr> toNlAddr(const MacAddress& mac);

// Converts a libnl error (a negative NLE_* value) to an Error whose message is
// "<doing>: <libnl's text>". NLE_EXIST maps to kConflict, NLE_OBJ_NOTFOUND/NLE_NODEV to kNotFound,
// NLE_INVAL/NLE_RANGE to kInvalidArgument, everything else to kIo.
Error nlError(int nlerr, std::string doing);

}  // namespace vnetipam::net
