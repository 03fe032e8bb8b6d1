// A read of the host's dataplane for the node agent's drift check: every link (name, index, up)
// and every IPv4 and IPv6 unicast route of the main table (destination, output device), from one
// link dump and one route dump per family on a raw rtnetlink socket (rtnl.h). Reads only; changes
// nothing.
#pragma once

#include <string>
#include <vector>

#include "lib/ipam/ip.h"
#include "lib/net/error.h"
#include "lib/net/netns.h"
#include "lib/net/route.h"

namespace vnetipam::net {

struct DumpedLinkState {
  std::string name;
  int ifindex = 0;
  bool up = false;  // IFF_UP
};

struct HostDataplane {
  std::vector<DumpedLinkState> links;
  std::vector<DumpedRoute> routes;  // IPv4 then IPv6, main table, unicast (route.h)
};

// Links first, then routes: a route read after its link was deleted shows a device that is gone,
// which the drift check reports like any other missing device. A dump the kernel marks
// interrupted is taken as it is (the next check looks again).
Result<HostDataplane> readHostDataplane(const Netns& ns);

}  // namespace vnetipam::net
