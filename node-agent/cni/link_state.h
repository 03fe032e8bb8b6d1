// What the kernel has on one interface: its IPv4 and IPv6 addresses, main-table routes and
// neighbour entries. vnet-transparent's CHECK compares this with the layout ADD made.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "lib/ipam/ip.h"
#include "lib/net/link.h"
#include "lib/net/rtnl.h"

namespace vnetipam::cni {

struct LinkState {
  struct Address {
    ipam::IPAddress address;
    int prefixLength = 0;
  };
  struct Route {
    ipam::Prefix dst;
    std::optional<ipam::IPAddress> gateway;
    bool linkScope = false;
  };
  struct Neighbour {
    ipam::IPAddress dst;
    std::string mac;  // lower-case colon-separated
    bool permanent = false;
  };
  std::vector<Address> addresses;
  std::vector<Route> routes;  // main table, next hop out of this link
  std::vector<Neighbour> neighbours;
};

// Reads the IPv4 and IPv6 state of `link` through sock (the link's namespace): an address, a route
// and a neighbour dump per family (lib/net/route.h). A dump the kernel marks interrupted is an
// error, not a state with an entry missing. Errors name the link and the namespace.
net::Result<LinkState> readLinkState(net::RtnlSocket& sock, const net::LinkInfo& link);

}  // namespace vnetipam::cni
