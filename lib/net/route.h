// Addresses, routes and neighbour entries on a link.
//
// Like link.h, each call acts on its RouteSocket's namespace and names the interface, namespace
// and address in its errors.
#pragma once

#include <cstdint>
#include <optional>

#include "lib/ipam/ip.h"
#include "lib/net/link.h"
#include "lib/net/netlink.h"

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
  bool onlink = false;  // RTNH_F_ONLINK: trust the gateway is on the device without a route to it
  std::uint32_t table = kMainTable;
  std::uint8_t protocol = kRouteProtocol;
};

enum class RouteWrite : std::uint8_t {
  kExclusive,  // kConflict if a route to dst already exists in the table
  kReplace,    // replace it (NLM_F_REPLACE)
};

// Adds addr as a host address (/32 or /128) on link. IPv6 addresses are added with IFA_F_NODAD so
// they are usable at once. kConflict if link already has it.
Result<void> addHostAddress(RouteSocket& sock, const LinkInfo& link, ipam::IPAddress addr);

// Adds route out of dev.
Result<void> addRoute(RouteSocket& sock, const LinkInfo& dev, const Route& route,
                      RouteWrite mode = RouteWrite::kExclusive);

// Deletes route.dst out of dev in route.table, only if it carries route.protocol (so another
// agent's route to the same prefix is never touched). A route that does not exist is success.
Result<void> deleteRoute(RouteSocket& sock, const LinkInfo& dev, const Route& route);

// Adds or replaces a NUD_PERMANENT neighbour entry dst -> lladdr on dev.
Result<void> addPermanentNeighbour(RouteSocket& sock, const LinkInfo& dev, ipam::IPAddress dst,
                                   const MacAddress& lladdr);

}  // namespace vnetipam::net
