// The whole transparent-mode recipe for one pod, as the vnet-transparent CNI plugin runs it.
//
//   pod:  <ifName> up, address <podIP>/32, route 169.254.1.1/32 dev <ifName> scope link,
//         default via 169.254.1.1 dev <ifName>, permanent neighbour 169.254.1.1 -> host veth MAC
//   host: <hostveth> up, proxy_arp=1, forwarding=1, proxy_delay=0,
//         route <podIP>/32 dev <hostveth> scope link
//
// With an IPv6 address (alone, or beside the IPv4 one), the same shape:
//
//   pod:  address <podIPv6>/128 nodad noprefixroute, default via fe80::1 dev <ifName>,
//         permanent neighbour fe80::1 -> host veth MAC
//   host: <hostveth> addrgenmode none, address fe80::1/64 nodad noprefixroute,
//         route <podIPv6>/128 dev <hostveth>
//
// The gateway fe80::1 is the host veth's own (and only) link-local address. The host sends its
// neighbour solicitations for the pod's address from a link-local address of the veth, and the
// kernel sends none while that address is tentative: with the kernel's own EUI-64 link-local
// (duplicate address detection), a pod was unreachable from the host for the first 2.07 s after
// setup; with fe80::1 added nodad, the first echo reply came after 18 ms. The pod reaches the
// gateway by a permanent neighbour entry rather than by proxy NDP on the host: no solicitation,
// no proxy entry per veth, and no sysctl write (proxy_ndp is not settable by netlink), as IPv4's
// static neighbour spares it an ARP. IPv6 forwarding needs net.ipv6.conf.all.forwarding=1 in the
// host namespace (the plugin sets it; with only the veths' own forwarding=1, pods on one host did
// not reach each other).
//
// The veth's pod end is created directly in the pod namespace, never moved. Routes carry
// kRouteProtocol. The host's proxy_arp and forwarding are set through netlink (IFLA_INET_CONF, in
// the request that sets the veth up) and proxy_delay through the ARP table's per-device parameters
// (RTM_SETNEIGHTBL): same values as the sysctl files, no /proc/sys writes; so is the host veth's
// addrgenmode (IFLA_INET6_ADDR_GEN_MODE, in the same request). An IPv4-only pod gets no IPv6
// request at all.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lib/ipam/ip.h"
#include "lib/ipam/pod_gateway.h"
#include "lib/net/link.h"
#include "lib/net/netns.h"
#include "lib/net/veth_name.h"

namespace vnetipam::net {

// The pod's gateways (lib/ipam/pod_gateway.h): link-local, so every pod can use the same ones.
inline constexpr ipam::IPAddress kDefaultPodGateway = ipam::kPodGatewayV4;    // 169.254.1.1
inline constexpr ipam::IPAddress kDefaultPodGatewayV6 = ipam::kPodGatewayV6;  // fe80::1

struct TransparentPodParams {
  std::string containerID;      // CNI_CONTAINERID: with ifName, names the host veth
  std::string ifName = "eth0";  // CNI_IFNAME: the pod end
  std::string hostPrefix = std::string(kDefaultHostVethPrefix);
  std::uint32_t mtu = 0;  // 0: kernel default; otherwise 68..65535
  // The pod's addresses: IPv4, IPv6, or both; configure() needs at least one.
  std::optional<ipam::IPAddress> address;   // IPv4
  std::optional<ipam::IPAddress> address6;  // IPv6
  ipam::IPAddress gateway = kDefaultPodGateway;
  ipam::IPAddress gateway6 = kDefaultPodGatewayV6;  // link-local (fe80::/10)
  std::optional<MacAddress> hostMac;                // unset: random
};

struct TransparentPod {
  LinkInfo host;  // in hostNs
  LinkInfo pod;   // in podNs
  // Whether the pod's routes (the gateway's link route, the default route via it) went on this
  // interface. Not when the pod already routes the gateway through another of its interfaces (a
  // second network's attachment, eth1 beside eth0): the pod has one default route, its first
  // interface's, and this one gets its address, its gateway neighbour entry and the host's /32
  // route, so traffic to its address arrives on it and replies leave by the pod's default route.
  bool podRoutes = true;
  // The same for IPv6 (the default route via gateway6): not when the pod already has an IPv6
  // default route. Meaningful only with address6.
  bool podRoutes6 = true;
};

// Runs the recipe: PodVeth::create, then PodVeth::configure. A host veth of the same name left by
// an earlier attempt for the same attachment (container and ifName) is deleted first. On any
// failure everything this call created is deleted again (the veth, and with it every address, route
// and neighbour on it) and the error names the step, interface, namespace and address. kConflict if
// the pod's address is already routed to another interface of the host (a double allocation: the
// live pod keeps its route), or ifName exists in the pod.
Result<TransparentPod> setupTransparentPod(const Netns& hostNs, const Netns& podNs,
                                           const TransparentPodParams& params);

// The recipe in two steps, so a caller can make the veth while its IPAM plugin still runs. Holds a
// route netlink socket in each namespace; requests go out in batches (rtnl.h), two round trips in
// all. Not for concurrent use; move-only.
class PodVeth {
 public:
  // The veth pair alone, both ends down: params.address and params.gateway are not used yet.
  // Replaces a leftover host veth of the same attachment; kConflict if ifName exists in the pod.
  static Result<PodVeth> create(const Netns& hostNs, const Netns& podNs,
                                const TransparentPodParams& params);
  PodVeth(PodVeth&&) noexcept;
  PodVeth& operator=(PodVeth&&) = delete;
  PodVeth(const PodVeth&) = delete;
  PodVeth& operator=(const PodVeth&) = delete;
  // Deletes the veth unless configure() succeeded.
  ~PodVeth();

  // Everything else in the recipe (pod side, then host side), with params' address and gateway.
  // params must be the ones create() had, plus the address. On failure the veth is deleted here.
  Result<TransparentPod> configure(const TransparentPodParams& params);

 private:
  struct State;
  explicit PodVeth(std::unique_ptr<State> state);
  Result<TransparentPod> configureOrFail(const TransparentPodParams& params);
  std::unique_ptr<State> state_;
};

// Deletes the host veth of the attachment (containerID, ifName), which takes the pod end and all
// routes, addresses and neighbours on either end with it; the container's other attachments are
// not touched. Idempotent, and needs no pod namespace: if the runtime already deleted it, the
// kernel has deleted the pair too and this is a no-op.
Result<void> teardownTransparentPod(const Netns& hostNs, std::string_view containerID,
                                    std::string_view ifName,
                                    std::string_view hostPrefix = kDefaultHostVethPrefix);

// The kernel unregisters a deleted veth (links, addresses, routes gone, RTM_DELLINK announced)
// within a millisecond, but the deleting task then waits ~20 ms more in the same syscall for RCU
// callbacks before the kernel frees it. VethTeardown issues the delete on a thread of its own and
// lets the caller go on as soon as the pair is unregistered; its destructor waits for that thread.
class VethTeardown {
 public:
  // Returns once the host veth of (containerID, ifName) is gone from hostNs (or was not there):
  // the same guarantees as teardownTransparentPod() returning, while the kernel still finishes.
  static Result<VethTeardown> start(const Netns& hostNs, std::string_view containerID,
                                    std::string_view ifName,
                                    std::string_view hostPrefix = kDefaultHostVethPrefix);
  VethTeardown(VethTeardown&&) noexcept;
  VethTeardown& operator=(VethTeardown&&) = delete;
  VethTeardown(const VethTeardown&) = delete;
  VethTeardown& operator=(const VethTeardown&) = delete;
  // Waits for the kernel to finish the delete.
  ~VethTeardown();

 private:
  struct State;
  explicit VethTeardown(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace vnetipam::net
