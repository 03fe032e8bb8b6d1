// Routes, addresses and neighbour entries: the shape of the routes this project installs, and the
// reads of a namespace's addresses, routes and neighbour entries, one dump each (rtnl.h).
//
// Every request and read is for one address family, IPv4 unless told otherwise: a caller that
// wants both asks twice, so the IPv4 path reads no IPv6 entries. Each read takes `ifindex`: 0 reads
// every link's entries, otherwise only that link's. The filtering is done here, on every answer: a
// kernel that does not check dump requests strictly ignores the filters a request could carry.
#pragma once

#include <array>
#include <cstddef>
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
  std::uint32_t flags = 0;  // IFA_F_*: IFA_FLAGS if sent, else ifa_flags (IFA_F_NODAD, ...)
};

// An IPv4 address in network byte order, as netlink attributes carry it.
std::array<std::uint8_t, 4> v4Bytes(ipam::IPAddress a);
// An address of either family in network byte order: 4 or 16 bytes.
struct AddressBytes {
  std::array<std::uint8_t, 16> bytes{};
  std::size_t size = 0;
  const std::uint8_t* data() const { return bytes.data(); }
};
AddressBytes addressBytes(ipam::IPAddress a);
// AF_INET or AF_INET6.
std::uint8_t addressFamily(ipam::Family f);

// Appends to b the request that adds `route` (main table unless route.table says otherwise,
// route.protocol) out of the link ifindex, named dev in netns for the error message; the kernel
// refuses a route that already exists. The family is route.dst's.
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

// Every address of `family` in the namespace (one RTM_GETADDR dump), or of link `ifindex`.
Result<std::vector<DumpedAddress>> dumpAddresses(
    RtnlSocket& sock, int ifindex = 0, InterruptedDump interrupted = InterruptedDump::kFail,
    ipam::Family family = ipam::Family::kV4);
// Every route of `family` in every table (one RTM_GETROUTE dump), or those whose RTA_OIF is
// `ifindex`. IPv6 dumps carry the kernel's own routes too (fe80::/64, the local and multicast
// ones): callers filter by table and type.
Result<std::vector<DumpedRoute>> dumpRoutes(RtnlSocket& sock, int ifindex = 0,
                                            InterruptedDump interrupted = InterruptedDump::kFail,
                                            ipam::Family family = ipam::Family::kV4);
// Every neighbour entry of `family` (one RTM_GETNEIGH dump), or those on link `ifindex`.
Result<std::vector<DumpedNeighbour>> dumpNeighbours(
    RtnlSocket& sock, int ifindex = 0, InterruptedDump interrupted = InterruptedDump::kFail,
    ipam::Family family = ipam::Family::kV4);

}  // namespace vnetipam::net
