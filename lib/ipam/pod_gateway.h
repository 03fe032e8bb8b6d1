// The pod's default gateway per family, in one place: the vnet-ipam plugin writes it into the CNI
// result, the transparent dataplane (lib/net/transparent.h) programs it in the pod, and CHECK
// compares against it. Both are link-local, never on the wire: the host answers for them (proxy
// ARP for IPv4, a permanent neighbour entry in the pod for both), so every pod on every node can
// use the same ones. Here in lib/ipam, which holds the address type, so the plugin need not link
// the netlink library to know them.
#pragma once

#include "lib/ipam/ip.h"

namespace vnetipam::ipam {

inline constexpr IPAddress kPodGatewayV4 = IPAddress::v4(0xa9fe0101);  // 169.254.1.1
inline constexpr IPAddress kPodGatewayV6 =
    IPAddress::fromBits(Family::kV6, U128{0xfe80} << 112 | 1);  // fe80::1

constexpr IPAddress podGateway(Family family) {
  return family == Family::kV4 ? kPodGatewayV4 : kPodGatewayV6;
}

}  // namespace vnetipam::ipam
