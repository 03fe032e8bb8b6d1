// Test-only writes for the lib/net tests' fixtures: veths, link state, addresses, routes and
// neighbour entries, each one request on an RtnlSocket (lib/net/rtnl.h), the stack the product
// uses. The product's own writes are the recipe's (lib/net/transparent.h); these exist so a test
// can build any layout to read back or break.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>

#include "lib/ipam/ip.h"
#include "lib/net/link.h"
#include "lib/net/netns.h"
#include "lib/net/route.h"
#include "lib/net/rtnl.h"

namespace vnetipam::net::testing {

// Sends the one request in b and returns its outcome (firstError's: "<what>: <strerror>").
inline Result<void> runRequest(RtnlSocket& sock, RtnlBatch& b) {
  if (auto ok = b.send(sock); !ok) return ok;
  if (auto ok = b.receive(sock); !ok) return ok;
  return b.firstError();
}

// A veth pair: hostName in sock's namespace, peerName born in peerNs. Both ends down.
inline Result<void> addVeth(RtnlSocket& sock, std::string_view hostName, const Netns& peerNs,
                            std::string_view peerName, std::uint32_t mtu = 0,
                            std::optional<MacAddress> hostMac = std::nullopt) {
  RtnlBatch b;
  b.add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg{},
        fmt::format("create veth {} in namespace {}", hostName, sock.netns()));
  b.attrString(IFLA_IFNAME, hostName);
  if (mtu != 0) b.attrU32(IFLA_MTU, mtu);
  if (hostMac) b.attr(IFLA_ADDRESS, hostMac->bytes.data(), hostMac->bytes.size());
  const auto linkInfo = b.nestBegin(IFLA_LINKINFO);
  b.attrString(IFLA_INFO_KIND, "veth");
  const auto infoData = b.nestBegin(IFLA_INFO_DATA);
  const auto peer = b.nestBegin(VETH_INFO_PEER);
  const ifinfomsg peerHeader{};
  b.bytes(&peerHeader, sizeof peerHeader);
  b.attrString(IFLA_IFNAME, peerName);
  if (mtu != 0) b.attrU32(IFLA_MTU, mtu);
  b.attrU32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(peerNs.fd()));
  b.nestEnd(peer);
  b.nestEnd(infoData);
  b.nestEnd(linkInfo);
  return runRequest(sock, b);
}

inline Result<void> setLinkUp(RtnlSocket& sock, const LinkInfo& link) {
  ifinfomsg up{};
  up.ifi_index = link.ifindex;
  up.ifi_flags = IFF_UP;
  up.ifi_change = IFF_UP;
  RtnlBatch b;
  b.add(RTM_NEWLINK, 0, up, fmt::format("set link {} up in namespace {}", link.name, sock.netns()));
  return runRequest(sock, b);
}

inline Result<void> deleteLink(RtnlSocket& sock, const LinkInfo& link) {
  ifinfomsg ifi{};
  ifi.ifi_index = link.ifindex;
  RtnlBatch b;
  b.add(RTM_DELLINK, 0, ifi,
        fmt::format("delete link {} in namespace {}", link.name, sock.netns()));
  return runRequest(sock, b);
}

// address/prefixLength on link (a prefix shorter than the whole address makes the kernel add its
// subnet route); either family, with IFA_F_* `flags` (IFA_F_NODAD, ...).
inline Result<void> addAddress(RtnlSocket& sock, const LinkInfo& link, ipam::IPAddress address,
                               int prefixLength, std::uint32_t flags = 0) {
  ifaddrmsg ifa{};
  ifa.ifa_family = addressFamily(address.family());
  ifa.ifa_prefixlen = static_cast<std::uint8_t>(prefixLength);
  ifa.ifa_index = static_cast<std::uint32_t>(link.ifindex);
  RtnlBatch b;
  b.add(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifa,
        fmt::format("add address {}/{} to {} in namespace {}", address.toString(), prefixLength,
                    link.name, sock.netns()));
  const auto local = addressBytes(address);
  b.attr(IFA_LOCAL, local.data(), local.size);
  b.attr(IFA_ADDRESS, local.data(), local.size);
  if (flags != 0) b.attrU32(IFA_FLAGS, flags);
  return runRequest(sock, b);
}

// A unicast route (either family) out of link, in route.table with route.protocol: the request the
// plugin sends.
inline Result<void> addRoute(RtnlSocket& sock, const LinkInfo& link, const Route& route) {
  RtnlBatch b;
  addRouteRequest(b, link.ifindex, link.name, route, std::string(sock.netns()));
  return runRequest(sock, b);
}

// A neighbour entry dst -> lladdr on link, NUD_PERMANENT unless `state` says otherwise.
inline Result<void> addNeighbour(RtnlSocket& sock, const LinkInfo& link, ipam::IPAddress dst,
                                 const MacAddress& lladdr, std::uint16_t state = NUD_PERMANENT) {
  ndmsg nd{};
  nd.ndm_family = addressFamily(dst.family());
  nd.ndm_ifindex = link.ifindex;
  nd.ndm_state = state;
  RtnlBatch b;
  b.add(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, nd,
        fmt::format("add neighbour {} lladdr {} on {} in namespace {}", dst.toString(),
                    lladdr.toString(), link.name, sock.netns()));
  const auto bytes = addressBytes(dst);
  b.attr(NDA_DST, bytes.data(), bytes.size);
  b.attr(NDA_LLADDR, lladdr.bytes.data(), lladdr.bytes.size());
  return runRequest(sock, b);
}

}  // namespace vnetipam::net::testing
