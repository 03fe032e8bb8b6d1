#include "lib/net/transparent.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <span>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/net/route.h"
#include "lib/net/rtnl.h"

namespace vnetipam::net {
namespace {

// The checks create() can make before the address is known.
Result<void> validateLink(const TransparentPodParams& p) {
  if (auto ok = validateInterfaceName(p.ifName); !ok) return ok;
  if (p.mtu != 0 && (p.mtu < 68 || p.mtu > 65535)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("set up pod {}: MTU {} is outside 68..65535", p.containerID, p.mtu));
  }
  return {};
}

// "10.240.0.17", "fd00::17" or "10.240.0.17, fd00::17": the pod's addresses for messages.
std::string addressesOf(const TransparentPodParams& p) {
  std::string out;
  for (const auto& a : {p.address, p.address6}) {
    if (!a) continue;
    if (!out.empty()) out += ", ";
    out += a->toString();
  }
  return out.empty() ? std::string("no address") : out;
}

Result<void> validate(const TransparentPodParams& p) {
  const auto invalid = [&](std::string_view why) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("set up pod {} ({}): {}", p.containerID, addressesOf(p), why));
  };
  if (auto ok = validateInterfaceName(p.ifName); !ok) return ok;
  if (!p.address && !p.address6) return invalid("neither an IPv4 nor an IPv6 address");
  if ((p.address && p.address->family() != ipam::Family::kV4) ||
      p.gateway.family() != ipam::Family::kV4) {
    return invalid("the IPv4 pod address and gateway must be IPv4 addresses");
  }
  if ((p.address6 && p.address6->family() != ipam::Family::kV6) ||
      p.gateway6.family() != ipam::Family::kV6) {
    return invalid("the IPv6 pod address and gateway must be IPv6 addresses");
  }
  const auto unusable = [](ipam::IPAddress a) {
    const auto bits = static_cast<std::uint32_t>(a.bits());
    return bits == 0 || bits == 0xffffffffU || (bits >> 28) == 0xe || (bits >> 24) == 127;
  };
  // ::, ::1, multicast (ff00::/8), link-local (fe80::/10) and IPv4-mapped (::ffff:0:0/96).
  const auto linkLocal6 = [](ipam::IPAddress a) { return (a.bits() >> 118) == 0x3fa; };
  const auto unusable6 = [&](ipam::IPAddress a) {
    const ipam::U128 bits = a.bits();
    return bits <= 1 || (bits >> 120) == 0xff || linkLocal6(a) || (bits >> 32) == 0xffff;
  };
  if (p.address && unusable(*p.address)) {
    return invalid("the pod address is not a unicast address");
  }
  if (unusable(p.gateway)) {
    return invalid(fmt::format("gateway {} is not a unicast address", p.gateway.toString()));
  }
  if (p.gateway == p.address) return invalid("the gateway equals the pod address");
  if (p.address6 && unusable6(*p.address6)) {
    return invalid("the pod's IPv6 address is not a global or unique-local unicast address");
  }
  // The host veth takes gateway6 as its link-local address: not fe80:: (the subnet-router
  // anycast address).
  const ipam::U128 interfaceId = p.gateway6.bits() & ((ipam::U128{1} << 64) - 1);
  if (!linkLocal6(p.gateway6) || interfaceId == 0) {
    return invalid(fmt::format("IPv6 gateway {} is not a link-local unicast address (fe80::/10)",
                               p.gateway6.toString()));
  }
  if (p.mtu != 0 && (p.mtu < 68 || p.mtu > 65535)) {
    return invalid(fmt::format("MTU {} is outside 68..65535", p.mtu));
  }
  return {};
}

// Prefixes an error with the pod it concerns, so a CNI error reads on its own.
std::unexpected<Error> forPod(const TransparentPodParams& p, Error e) {
  e.message = fmt::format("set up pod {} ({}): {}", p.containerID, addressesOf(p), e.message);
  return std::unexpected(std::move(e));
}

void getLinkByName(RtnlBatch& b, std::string_view name, std::string what) {
  b.add(RTM_GETLINK, 0, ifinfomsg{}, std::move(what));
  b.attrString(IFLA_IFNAME, name);
  b.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
}

void deleteLinkByName(RtnlBatch& b, std::string_view name, std::string what) {
  b.add(RTM_DELLINK, 0, ifinfomsg{}, std::move(what));
  b.attrString(IFLA_IFNAME, name);
}

// A request that adds address/length to link ifindex; IFA_F_* flags above the header's 8 bits go
// in IFA_FLAGS.
void addAddressRequest(RtnlBatch& b, int ifindex, ipam::IPAddress address, int length,
                       std::uint32_t flags, std::string what) {
  const ifaddrmsg ifa{.ifa_family = addressFamily(address.family()),
                      .ifa_prefixlen = static_cast<std::uint8_t>(length),
                      .ifa_flags = static_cast<std::uint8_t>(flags & 0xff),
                      .ifa_scope = RT_SCOPE_UNIVERSE,
                      .ifa_index = static_cast<std::uint32_t>(ifindex)};
  b.add(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifa, std::move(what));
  const auto local = addressBytes(address);
  b.attr(IFA_LOCAL, local.data(), local.size);
  b.attr(IFA_ADDRESS, local.data(), local.size);
  if (flags > 0xff) b.attrU32(IFA_FLAGS, flags);
}

// A request that sets link ifindex up; the caller may add attributes to it.
void linkUpRequest(RtnlBatch& b, int ifindex, std::string what) {
  const ifinfomsg up{.ifi_family = AF_UNSPEC,
                     .__ifi_pad = 0,
                     .ifi_type = 0,
                     .ifi_index = ifindex,
                     .ifi_flags = IFF_UP,
                     .ifi_change = IFF_UP};
  b.add(RTM_NEWLINK, 0, up, std::move(what));
}

// Whether the pod's routes go on this interface, per family: TransparentPod::podRoutes and
// podRoutes6.
struct PodRoutes {
  bool v4 = true;
  bool v6 = true;
};

// Sends a batch and reads all its answers.
Result<void> roundTrip(RtnlSocket& sock, RtnlBatch& b) {
  if (auto ok = b.send(sock); !ok) return ok;
  return b.receive(sock);
}

}  // namespace

// ---- PodVeth ------------------------------------------------------------------------------------

struct PodVeth::State {
  RtnlSocket host;
  RtnlSocket pod;
  std::string podLabel;
  LinkInfo hostLink;
  int podIndex = 0;
  bool settled = false;  // configured for good, or deleted already

  // Deleting the host end deletes the pod end and everything configured on either.
  void remove() {
    if (settled) return;
    settled = true;
    RtnlBatch b;
    deleteLinkByName(b, hostLink.name, "undo: delete link " + hostLink.name);
    (void)roundTrip(host, b);
  }

  // Whether the pod's routes go on this interface: a lookup in the pod (one round trip).
  Result<PodRoutes> lookupPodRoutes(const TransparentPodParams& p);
  // The pod's batch: addresses, link up, routes, gateway neighbours, then the read-back of the pod
  // end, whose index in the batch it returns.
  std::size_t addPodSide(RtnlBatch& b, const TransparentPodParams& p, PodRoutes podRoutes);
  // The pod's /32 and /128 (those it has).
  void addPodAddresses(RtnlBatch& b, const TransparentPodParams& p);
  // The route to the IPv4 gateway and the default routes, those this interface gets.
  void addPodRoutes(RtnlBatch& b, const TransparentPodParams& p, PodRoutes podRoutes);
  // The permanent neighbour entry gateway -> the host veth's MAC on the pod end.
  void addGatewayNeighbour(RtnlBatch& b, const std::string& podDev, ipam::IPAddress gateway);
  // The host's batch: the IPv6 link-local gateway, link up (with IPv4's settings), the routes.
  void addHostSide(RtnlBatch& b, const TransparentPodParams& p);
  // addrgenmode none and gateway6/64 on the host veth.
  void addHostLinkLocal(RtnlBatch& b, ipam::IPAddress gateway6);
  // The host veth up, with proxy_arp=1 and forwarding=1.
  void addHostUpWithProxyArp(RtnlBatch& b);
  // proxy_delay=0 in the host veth's ARP parameters.
  void addNoProxyDelay(RtnlBatch& b);
  // Sends both batches and reads their answers: the first error of either, pod's first.
  Result<void> exchange(RtnlBatch& podBatch, RtnlBatch& hostBatch);
};

PodVeth::PodVeth(std::unique_ptr<State> state) : state_(std::move(state)) {}
PodVeth::PodVeth(PodVeth&&) noexcept = default;

PodVeth::~PodVeth() {
  if (state_) state_->remove();
}

Result<PodVeth> PodVeth::create(const Netns& hostNs, const Netns& podNs,
                                const TransparentPodParams& p) {
  if (auto ok = validateLink(p); !ok) return std::unexpected(ok.error());
  const auto forPodLink = [&](Error e) {
    e.message = fmt::format("set up pod {}: {}", p.containerID, e.message);
    return std::unexpected(std::move(e));
  };
  auto hostName = hostVethName(p.hostPrefix, p.containerID, p.ifName);
  if (!hostName) return forPodLink(hostName.error());
  auto hostSock = RtnlSocket::open(hostNs);
  if (!hostSock) return forPodLink(hostSock.error());
  auto podSock = RtnlSocket::open(podNs);
  if (!podSock) return forPodLink(podSock.error());

  const std::string creating =
      fmt::format("create veth {} (namespace {}) with peer {} in namespace {}", *hostName,
                  hostNs.label(), p.ifName, podNs.label());
  // One round trip: create the pair, then read the host end (its ifindex, MAC, and in IFLA_LINK
  // the pod end's ifindex). A leftover of an earlier ADD of this attachment (same name) makes the
  // create fail; only then is it deleted and the create tried once more.
  for (int attempt = 0;; ++attempt) {
    RtnlBatch b;
    b.add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg{}, creating);
    b.attrString(IFLA_IFNAME, *hostName);
    if (p.mtu != 0) b.attrU32(IFLA_MTU, p.mtu);
    if (p.hostMac) b.attr(IFLA_ADDRESS, p.hostMac->bytes.data(), p.hostMac->bytes.size());
    const auto linkInfo = b.nestBegin(IFLA_LINKINFO);
    b.attrString(IFLA_INFO_KIND, "veth");
    const auto infoData = b.nestBegin(IFLA_INFO_DATA);
    const auto peer = b.nestBegin(VETH_INFO_PEER);
    const ifinfomsg peerHeader{};
    b.bytes(&peerHeader, sizeof peerHeader);
    b.attrString(IFLA_IFNAME, p.ifName);
    if (p.mtu != 0) b.attrU32(IFLA_MTU, p.mtu);
    b.attrU32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(podNs.fd()));
    b.nestEnd(peer);
    b.nestEnd(infoData);
    b.nestEnd(linkInfo);
    getLinkByName(b, *hostName,
                  fmt::format("look up link {} in namespace {}", *hostName, hostNs.label()));
    if (auto ok = roundTrip(*hostSock, b); !ok) return forPodLink(ok.error());

    if (b.error(0) == -EEXIST && b.error(1) == 0 && attempt == 0) {
      RtnlBatch del;
      deleteLinkByName(
          del, *hostName,
          fmt::format("delete leftover link {} in namespace {}", *hostName, hostNs.label()));
      if (auto ok = roundTrip(*hostSock, del); !ok) return forPodLink(ok.error());
      if (del.error(0) != 0 && del.error(0) != -ENODEV) {
        return forPodLink(errnoError(-del.error(0), "delete leftover link " + *hostName));
      }
      continue;
    }
    if (b.error(0) != 0) return forPodLink(errnoError(-b.error(0), creating));
    auto state = std::make_unique<State>(
        State{.host = std::move(*hostSock), .pod = std::move(*podSock), .podLabel = podNs.label()});
    state->hostLink.name = *hostName;
    PodVeth veth(std::move(state));  // from here on, a failure deletes the pair
    const auto host = parseLinkMessage(b.reply(1));
    if (b.error(1) != 0 || !host || host->peerIndex <= 0) {
      return forPodLink(
          Error{ErrorCode::kIo, fmt::format("{}: no veth peer index in the answer", creating)});
    }
    veth.state_->hostLink = host->info;
    veth.state_->podIndex = host->peerIndex;
    return veth;
  }
}

Result<TransparentPod> PodVeth::configure(const TransparentPodParams& p) {
  auto pod = configureOrFail(p);
  // Now rather than in the destructor: the caller may release the address next, and that must
  // wait until no route to it is left.
  if (!pod) state_->remove();
  return pod;
}

Result<TransparentPod> PodVeth::configureOrFail(const TransparentPodParams& p) {
  if (auto ok = validate(p); !ok) return std::unexpected(ok.error());
  State& s = *state_;
  const auto podRoutes = s.lookupPodRoutes(p);
  if (!podRoutes) return std::unexpected(podRoutes.error());
  RtnlBatch pod;
  const std::size_t podLookup = s.addPodSide(pod, p, *podRoutes);
  RtnlBatch host;
  s.addHostSide(host, p);
  if (auto ok = s.exchange(pod, host); !ok) return forPod(p, ok.error());
  auto podLink = parseLinkMessage(pod.reply(podLookup));
  if (!podLink || podLink->info.ifindex != s.podIndex) {
    return forPod(p, Error{ErrorCode::kIo,
                           fmt::format("{} in namespace {} is not the veth's pod end (ifindex {})",
                                       p.ifName, s.podLabel, s.podIndex)});
  }
  s.settled = true;
  TransparentPod result{.host = s.hostLink,
                        .pod = podLink->info,
                        .podRoutes = podRoutes->v4,
                        .podRoutes6 = podRoutes->v6};
  result.host.up = true;
  return result;
}

// Does the pod already route the gateway (by a route of another of its interfaces: this one is
// new and has none)? Then the pod's routes are that interface's, and this one adds none: a
// second default route or gateway route in the main table would be refused (EEXIST) anyway.
// IPv6's gateway is link-local, reachable only by naming an interface, so for IPv6 the question
// is whether the pod has a default route: the lookup of ::, which only a default route matches.
Result<PodRoutes> PodVeth::State::lookupPodRoutes(const TransparentPodParams& p) {
  PodRoutes podRoutes;
  RtnlBatch lookup;
  const auto ask = [&](ipam::IPAddress dst) {
    rtmsg rt{};
    rt.rtm_family = addressFamily(dst.family());
    rt.rtm_dst_len = static_cast<std::uint8_t>(ipam::bitLength(dst.family()));
    lookup.add(RTM_GETROUTE, 0, rt,
               fmt::format("look up the route to {} in namespace {}", dst.toString(), podLabel));
    const auto bytes = addressBytes(dst);
    lookup.attr(RTA_DST, bytes.data(), bytes.size);
  };
  if (p.address) ask(p.gateway);
  if (p.address6) ask(ipam::IPAddress::fromBits(ipam::Family::kV6, 0));
  if (auto ok = roundTrip(pod, lookup); !ok) return forPod(p, ok.error());
  // ENETUNREACH: no route (the usual first interface); an answer: some route carries it.
  for (std::size_t i = 0; i < lookup.size(); ++i) {
    bool& routes = (i == 0 && p.address) ? podRoutes.v4 : podRoutes.v6;
    const int err = lookup.error(i);
    if (err == 0) {
      routes = false;
    } else if (err != -ENETUNREACH && err != -EHOSTUNREACH) {
      return forPod(p, errnoError(-err, fmt::format("look up a route in namespace {}", podLabel)));
    }
  }
  return podRoutes;
}

std::size_t PodVeth::State::addPodSide(RtnlBatch& b, const TransparentPodParams& p,
                                       PodRoutes podRoutes) {
  // Pod side, in order: the link must be up before routes can use it; the addresses add no subnet
  // route (a /32; a /128 noprefixroute), so there is nothing of the kernel's to delete. Last, read
  // the pod end back.
  addPodAddresses(b, p);
  linkUpRequest(b, podIndex, fmt::format("set link {} up in namespace {}", p.ifName, podLabel));
  addPodRoutes(b, p, podRoutes);
  if (p.address) addGatewayNeighbour(b, p.ifName, p.gateway);
  if (p.address6) addGatewayNeighbour(b, p.ifName, p.gateway6);
  const std::size_t podLookup = b.size();
  getLinkByName(b, p.ifName, fmt::format("look up link {} in namespace {}", p.ifName, podLabel));
  return podLookup;
}

void PodVeth::State::addPodAddresses(RtnlBatch& b, const TransparentPodParams& p) {
  if (p.address) {
    addAddressRequest(b, podIndex, *p.address, 32, 0,
                      fmt::format("add address {}/32 to {} in namespace {}", p.address->toString(),
                                  p.ifName, podLabel));
  }
  if (p.address6) {
    // nodad: usable at once, not tentative for the ~2 s duplicate address detection takes; the
    // address is the IPAM plugin's to hand out once. The kernel would add a prefix route even for
    // a /128; the default route covers it.
    addAddressRequest(b, podIndex, *p.address6, 128, IFA_F_NODAD | IFA_F_NOPREFIXROUTE,
                      fmt::format("add address {}/128 nodad noprefixroute to {} in namespace {}",
                                  p.address6->toString(), p.ifName, podLabel));
  }
}

void PodVeth::State::addPodRoutes(RtnlBatch& b, const TransparentPodParams& p,
                                  PodRoutes podRoutes) {
  if (p.address && podRoutes.v4) {
    addRouteRequest(b, podIndex, p.ifName,
                    Route{.dst = ipam::Prefix::masked(p.gateway, 32), .scope = RouteScope::kLink},
                    podLabel);
    addRouteRequest(
        b, podIndex, p.ifName,
        Route{.dst = ipam::Prefix::masked(ipam::IPAddress::v4(0), 0), .gateway = p.gateway},
        podLabel);
  }
  // A link-local gateway needs no route to it: the route names the interface.
  if (p.address6 && podRoutes.v6) {
    addRouteRequest(
        b, podIndex, p.ifName,
        Route{.dst = ipam::Prefix::masked(ipam::IPAddress::fromBits(ipam::Family::kV6, 0), 0),
              .gateway = p.gateway6},
        podLabel);
  }
}

void PodVeth::State::addGatewayNeighbour(RtnlBatch& b, const std::string& podDev,
                                         ipam::IPAddress gateway) {
  const ndmsg nd{.ndm_family = addressFamily(gateway.family()),
                 .ndm_pad1 = 0,
                 .ndm_pad2 = 0,
                 .ndm_ifindex = podIndex,
                 .ndm_state = NUD_PERMANENT,
                 .ndm_flags = 0,
                 .ndm_type = 0};
  b.add(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, nd,
        fmt::format("add permanent neighbour {} lladdr {} on {} in namespace {}",
                    gateway.toString(), hostLink.mac.toString(), podDev, podLabel));
  const auto dst = addressBytes(gateway);
  b.attr(NDA_DST, dst.data(), dst.size);
  b.attr(NDA_LLADDR, hostLink.mac.bytes.data(), hostLink.mac.bytes.size());
}

void PodVeth::State::addHostSide(RtnlBatch& b, const TransparentPodParams& p) {
  const std::string& hostName = hostLink.name;
  // IPv6 first, while the veth is still down: no kernel-made link-local address (it would be
  // tentative, and the host could not solicit the pod's address from it), and fe80::1 nodad
  // instead, without a prefix route (the host reaches nothing else on the link).
  if (p.address6) addHostLinkLocal(b, p.gateway6);
  if (p.address) {
    // Up with proxy_arp=1 and forwarding=1 in the same request (IFLA_INET_CONF, as the sysctl
    // files would set them), proxy_delay=0 so the pod's ARP is answered at once instead of after
    // up to 0.8 s, then the /32 route. Exclusive: if another interface already has this /32, IPAM
    // handed the address out twice; the live pod keeps its traffic and this ADD fails.
    addHostUpWithProxyArp(b);
    addNoProxyDelay(b);
    addRouteRequest(b, hostLink.ifindex, hostName,
                    Route{.dst = ipam::Prefix::masked(*p.address, 32), .scope = RouteScope::kLink},
                    host.netns());
  } else {
    linkUpRequest(b, hostLink.ifindex,
                  fmt::format("set link {} up in namespace {}", hostName, host.netns()));
  }
  // Exclusive as the /32 is. IPv6 routes have no scope: the kernel keeps them as universe.
  if (p.address6) {
    addRouteRequest(b, hostLink.ifindex, hostName,
                    Route{.dst = ipam::Prefix::masked(*p.address6, 128)}, host.netns());
  }
}

void PodVeth::State::addHostLinkLocal(RtnlBatch& b, ipam::IPAddress gateway6) {
  const ifinfomsg link{.ifi_family = AF_UNSPEC,
                       .__ifi_pad = 0,
                       .ifi_type = 0,
                       .ifi_index = hostLink.ifindex,
                       .ifi_flags = 0,
                       .ifi_change = 0};
  b.add(RTM_NEWLINK, 0, link,
        fmt::format("set addrgenmode none on {} in namespace {}", hostLink.name, host.netns()));
  const auto afSpec = b.nestBegin(IFLA_AF_SPEC);
  const auto inet6 = b.nestBegin(AF_INET6);
  const std::uint8_t none = IN6_ADDR_GEN_MODE_NONE;
  b.attr(IFLA_INET6_ADDR_GEN_MODE, &none, sizeof none);
  b.nestEnd(inet6);
  b.nestEnd(afSpec);
  addAddressRequest(b, hostLink.ifindex, gateway6, 64, IFA_F_NODAD | IFA_F_NOPREFIXROUTE,
                    fmt::format("add address {}/64 nodad noprefixroute to {} in namespace {}",
                                gateway6.toString(), hostLink.name, host.netns()));
}

void PodVeth::State::addHostUpWithProxyArp(RtnlBatch& b) {
  linkUpRequest(b, hostLink.ifindex,
                fmt::format("set link {} up with proxy_arp=1 forwarding=1 in namespace {}",
                            hostLink.name, host.netns()));
  const auto afSpec = b.nestBegin(IFLA_AF_SPEC);
  const auto inet = b.nestBegin(AF_INET);
  const auto conf = b.nestBegin(IFLA_INET_CONF);
  b.attrU32(IPV4_DEVCONF_PROXY_ARP, 1);
  b.attrU32(IPV4_DEVCONF_FORWARDING, 1);
  b.nestEnd(conf);
  b.nestEnd(inet);
  b.nestEnd(afSpec);
}

void PodVeth::State::addNoProxyDelay(RtnlBatch& b) {
  const ndtmsg ndt{.ndtm_family = AF_INET, .ndtm_pad1 = 0, .ndtm_pad2 = 0};
  b.add(RTM_SETNEIGHTBL, 0, ndt,
        fmt::format("set neigh/{}/proxy_delay=0 in namespace {}", hostLink.name, host.netns()));
  b.attrString(NDTA_NAME, "arp_cache");
  const auto parms = b.nestBegin(NDTA_PARMS);
  b.attrU32(NDTPA_IFINDEX, static_cast<std::uint32_t>(hostLink.ifindex));
  b.attrU64(NDTPA_PROXY_DELAY, 0);
  b.nestEnd(parms);
}

// Both namespaces' batches are in the kernel before either answer is read.
Result<void> PodVeth::State::exchange(RtnlBatch& podBatch, RtnlBatch& hostBatch) {
  if (auto ok = podBatch.send(pod); !ok) return ok;
  if (auto ok = hostBatch.send(host); !ok) return ok;
  if (auto ok = podBatch.receive(pod); !ok) return ok;
  if (auto ok = hostBatch.receive(host); !ok) return ok;
  if (auto ok = podBatch.firstError(); !ok) return ok;
  return hostBatch.firstError();
}

Result<TransparentPod> setupTransparentPod(const Netns& hostNs, const Netns& podNs,
                                           const TransparentPodParams& p) {
  if (auto ok = validate(p); !ok) return std::unexpected(ok.error());
  auto veth = PodVeth::create(hostNs, podNs, p);
  if (!veth) return std::unexpected(veth.error());
  return veth->configure(p);
}

// ---- teardown -----------------------------------------------------------------------------------

struct VethTeardown::State {
  RtnlSocket request;
  std::string hostName;
  UniqueFd done;  // eventfd, written when the delete request has its answer
  int error = 0;  // the kernel's answer, valid once `done` is readable
  std::thread worker;
};

VethTeardown::VethTeardown(std::unique_ptr<State> state) : state_(std::move(state)) {}
VethTeardown::VethTeardown(VethTeardown&&) noexcept = default;
VethTeardown::~VethTeardown() {
  if (state_ && state_->worker.joinable()) state_->worker.join();
}

Result<VethTeardown> VethTeardown::start(const Netns& hostNs, std::string_view containerID,
                                         std::string_view ifName, std::string_view hostPrefix) {
  const auto forTeardown = [&](Error e) {
    e.message = fmt::format("tear down pod {} ({}): {}", containerID, ifName, e.message);
    return std::unexpected(std::move(e));
  };
  auto hostName = hostVethName(hostPrefix, containerID, ifName);
  if (!hostName) return std::unexpected(hostName.error());
  // Subscribed before the delete is sent, so its RTM_DELLINK cannot be missed.
  auto monitor = RtnlSocket::open(hostNs, RTMGRP_LINK);
  if (!monitor) return forTeardown(monitor.error());
  auto request = RtnlSocket::open(hostNs);
  if (!request) return forTeardown(request.error());
  UniqueFd done(::eventfd(0, EFD_CLOEXEC));
  if (!done.valid()) {
    return forTeardown(Error{ErrorCode::kIo, fmt::format("eventfd: {}", std::strerror(errno))});
  }
  auto state = std::make_unique<State>(
      State{.request = std::move(*request), .hostName = *hostName, .done = std::move(done)});
  const std::string deleting =
      fmt::format("delete link {} in namespace {}", *hostName, hostNs.label());
  State* s = state.get();
  const auto remove = [s, deleting] {
    RtnlBatch b;
    deleteLinkByName(b, s->hostName, deleting);
    if (auto ok = roundTrip(s->request, b); !ok) {
      s->error = -EIO;
    } else {
      s->error = b.error(0);
    }
    const std::uint64_t one = 1;
    (void)::write(s->done.get(), &one, sizeof one);
  };
  try {
    state->worker = std::thread(remove);
  } catch (const std::system_error&) {
    remove();  // no thread: delete synchronously
  }
  VethTeardown teardown(std::move(state));

  // Wait for whichever comes first: the announcement that the link is gone, or the answer.
  pollfd fds[2] = {{.fd = monitor->fd(), .events = POLLIN, .revents = 0},
                   {.fd = s->done.get(), .events = POLLIN, .revents = 0}};
  std::vector<std::uint8_t> in(65536);
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;  // cannot wait for either: the answer, after the join below, decides
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents == 0) continue;
    const ssize_t n = ::recv(fds[0].fd, in.data(), in.size(), MSG_DONTWAIT);
    if (n < 0) {
      // ENOBUFS: notifications were dropped (a busy node); the answer still tells.
      if (errno != EAGAIN && errno != EINTR) fds[0].fd = -1;
      continue;
    }
    bool gone = false;
    forEachMessage(std::span<const std::uint8_t>(in).first(static_cast<std::size_t>(n)),
                   [&](const nlmsghdr& h, std::span<const std::uint8_t> message) {
                     if (h.nlmsg_type == RTM_DELLINK) {
                       const auto link = parseLinkMessage(message);
                       gone = link && link->info.name == s->hostName;
                     }
                     return !gone;
                   });
    if (gone) return teardown;
  }
  if (s->worker.joinable()) s->worker.join();
  if (s->error != 0 && s->error != -ENODEV) return forTeardown(errnoError(-s->error, deleting));
  return teardown;
}

Result<void> teardownTransparentPod(const Netns& hostNs, std::string_view containerID,
                                    std::string_view ifName, std::string_view hostPrefix) {
  auto teardown = VethTeardown::start(hostNs, containerID, ifName, hostPrefix);
  if (!teardown) return std::unexpected(teardown.error());
  return {};
}

}  // namespace vnetipam::net
