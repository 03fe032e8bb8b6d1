// Routes, addresses and neighbour entries: the shape of the routes this project installs, and the
// reads of a namespace's IPv4 addresses, routes and neighbour entries, one dump each (rtnl.h).
//
// The reads are IPv4 only, like the recipe (transparent.h). Each takes `ifindex`: 0 reads every
// link's entries, otherwise only that link's. The filtering is done here, on every answer: a kernel
// that does not check dump requests strictly ignores the filters a request could carry.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lib/ipam/ip.h"
#include "lib/net/error.h"
#include "lib/net/link.h"
#include "lib/net/rtnl.h"

namespace vnetipam::net {

// rtm_protocol of every route this project installs, so GC and humans (`ip route show proto 118`)
// can tell ours from the kernel's, the admin's and other agents' (Calico uses 80, BIRD 12).
// Not assigned in the kernel's rtnetlink.h or iproute2's rt_protos.
inline constexpr std::uint8_t kRouteProtocol = 118;
// RT_TABLE_MAIN.
inline constexpr std::uint32_t kMainTable = 254;

enum class RouteScope : std::uint8_t {
  kUniverse,  // RT_SCOPE_UNIVERSE: via a gateway, or a normal route
  kLink,      // RT_SCOPE_LINK: the destination is directly on the device
};

struct Route {
  ipam::Prefix dst;
  std::optional<ipam::IPAddress> gateway;  // same family as dst
  RouteScope scope = RouteScope::kUniverse;
  std::uint32_t table = kMainTable;
  std::uint8_t protocol = kRouteProtocol;
};

// What a dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed while it was read,
// so an entry may be missing or repeated) is worth to the caller.
enum class InterruptedDump : std::uint8_t {
  kFail,    // kIo, "ask again": for a caller that judges by an entry's absence
  kAccept,  // taken as it is: for a caller that looks again soon anyway
};

struct DumpedAddress {
  int ifindex = 0;
  ipam::IPAddress address;  // IFA_LOCAL (IFA_ADDRESS if the kernel sent no IFA_LOCAL)
  int prefixLength = 0;
};

// An IPv4 address in network byte order, as netlink attributes carry it.
std::array<std::uint8_t, 4> v4Bytes(ipam::IPAddress a);

// Appends to b the request that adds `route` (main table unless route.table says otherwise,
// route.protocol) out of the link ifindex, named dev in netns for the error message; the kernel
// refuses a route that already exists.
void addRouteRequest(RtnlBatch& b, int ifindex, const std::string& dev, const Route& route,
                     const std::string& netns);

struct DumpedRoute {
  ipam::Prefix dst;
  int oif = 0;  // RTA_OIF; 0 when the route has none (multipath, blackhole)
  std::optional<ipam::IPAddress> gateway;  // RTA_GATEWAY
  std::uint32_t table = kMainTable;        // RTA_TABLE, else rtm_table
  std::uint8_t protocol = 0;               // rtm_protocol
  std::uint8_t scope = 0;                  // rtm_scope: RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, ...
  std::uint8_t type = 0;                   // rtm_type: RTN_UNICAST, RTN_BLACKHOLE, ...
};

struct DumpedNeighbour {
  int ifindex = 0;
  ipam::IPAddress dst;               // NDA_DST
  std::optional<MacAddress> lladdr;  // NDA_LLADDR, when it is an Ethernet address
  std::uint16_t state = 0;           // NUD_* bits: NUD_PERMANENT, NUD_REACHABLE, ...
};

// Every IPv4 address of the namespace (one RTM_GETADDR dump), or of link `ifindex`.
Result<std::vector<DumpedAddress>> dumpAddresses(
    RtnlSocket& sock, int ifindex = 0, InterruptedDump interrupted = InterruptedDump::kFail);
// Every IPv4 route of every table (one RTM_GETROUTE dump), or those whose RTA_OIF is `ifindex`.
Result<std::vector<DumpedRoute>> dumpRoutes(RtnlSocket& sock, int ifindex = 0,
                                            InterruptedDump interrupted = InterruptedDump::kFail);
// Every IPv4 neighbour entry (one RTM_GETNEIGH dump), or those on link `ifindex`.
Result<std::vector<DumpedNeighbour>> dumpNeighbours(
    RtnlSocket& sock, int ifindex = 0, InterruptedDump interrupted = InterruptedDump::kFail);

}  // namespace vnetipam::net
