#include "node-agent/cni/transparent_plugin.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "lib/net/host_veth_gc.h"
#include "lib/net/link.h"
#include "lib/net/sysctl.h"
#include "lib/net/transparent.h"
#include "lib/net/veth_name.h"
#include "node-agent/cni/input_bounds.h"
#include "node-agent/cni/link_state.h"

namespace vnetipam::cni {
namespace {

// ---- helpers ------------------------------------------------------------------------------------

// A lib/net error as a CNI error: bad input is a config problem (7), the kernel refusing is I/O
// (5).
std::unexpected<Error> fromNet(const net::Error& e) {
  return failWith(e.code == net::ErrorCode::kInvalidArgument ? kInvalidConfig : kIoFailure,
                  "vnet-transparent: " + e.message);
}

Outcome<net::Netns> openPodNetns(const Env& env) {
  auto ns = net::Netns::open(env.netns);
  if (!ns) {
    return failWith(kInvalidEnvironment,
                    fmt::format("vnet-transparent: CNI_NETNS \"{}\" is not a usable network "
                                "namespace: {}",
                                env.netns, ns.error().message));
  }
  return std::move(*ns);
}

std::unexpected<Error> mismatch(const Env& env, std::string what) {
  return failWith(kLayoutMismatch,
                  fmt::format("vnet-transparent: CHECK of container {} ({} in {}): {}",
                              env.containerID, env.ifName, env.netns, what));
}

// Runs IPAM DEL on scope exit unless dismissed: an ADD that fails after IPAM ADD holds nothing.
class IpamRelease {
 public:
  IpamRelease(IpamDelegate& ipam, const Env& env, const NetConf& conf)
      : ipam_(ipam), env_(env), conf_(conf) {}
  IpamRelease(const IpamRelease&) = delete;
  IpamRelease& operator=(const IpamRelease&) = delete;
  ~IpamRelease() {
    if (!armed_) return;
    if (auto ok = ipam_.run(Command::kDel, env_, conf_); !ok) {
      std::fprintf(stderr, "vnet-transparent: undo IPAM ADD of container %s: %s\n",
                   env_.containerID.c_str(), ok.error().msg.c_str());
    }
  }
  void dismiss() { armed_ = false; }

 private:
  IpamDelegate& ipam_;
  const Env& env_;
  const NetConf& conf_;
  bool armed_ = true;
};

// ---- ADD ----------------------------------------------------------------------------------------

// net.ipv4.ip_forward=1 in the host namespace, as the reference ptp plugin sets it. The kernel
// forwards an IPv4 packet only if the interface it came in on has forwarding on. The host veth's
// own forwarding=1 covers what a pod sends; a packet for the pod from another node comes in on the
// node's uplink, which forwards only once ip_forward=1 has turned forwarding on for every
// interface. Written only when it is not 1 already (net::ensureNetSysctl).
Outcome<void> enableForwarding(const net::Netns& hostNs) {
  if (auto ok = net::ensureNetSysctl(hostNs, "ipv4/ip_forward", "1"); !ok) {
    return failWith(kIoFailure,
                    "vnet-transparent: enabling IPv4 forwarding (net.ipv4.ip_forward=1): " +
                        ok.error().message);
  }
  return {};
}

// net.ipv6.conf.all.forwarding=1 in the host namespace, for a pod with an IPv6 address (as ptp
// sets it). The kernel forwards IPv6 only with the namespace-wide switch on: the host veths' own
// forwarding=1 does not do (measured: two pods on one host did not reach each other). Writing it
// also turns forwarding on for every interface, as for IPv4. Only read (and left alone) when it is
// 1 already.
Outcome<void> enableForwarding6(const net::Netns& hostNs) {
  if (auto ok = net::ensureNetSysctl(hostNs, "ipv6/conf/all/forwarding", "1"); !ok) {
    return failWith(kIoFailure,
                    "vnet-transparent: enabling IPv6 forwarding "
                    "(net.ipv6.conf.all.forwarding=1): " +
                        ok.error().message);
  }
  return {};
}

// The spec: "If an interface of the requested name already exists in the container, the CNI
// plugin MUST return with an error." Asked before IPAM ADD, so a repeated ADD allocates nothing;
// and never answered by rebuilding the interface: the existing one is a live attachment (a second
// ADD of the same attachment, or another network's interface of that name), whose address, routes
// and veth must stay as they are. Creating the veth would fail on the name too, but only after
// IPAM ADD, whose undo (IPAM DEL of the same container and interface) would release the address
// the live attachment holds.
Outcome<void> refuseExistingInterface(const net::Netns& podNs, const Env& env) {
  auto sock = net::RtnlSocket::open(podNs);
  if (!sock) return fromNet(sock.error());
  auto existing = net::getLink(*sock, env.ifName);
  if (existing) {
    return failWith(kInterfaceExists,
                    fmt::format("vnet-transparent: ADD of container {}: interface {} already "
                                "exists in {} (ifindex {}, MAC {}); DEL it first",
                                env.containerID, env.ifName, env.netns, existing->ifindex,
                                existing->mac.toString()));
  }
  if (existing.error().code != net::ErrorCode::kNotFound) return fromNet(existing.error());
  return {};
}

Outcome<Result> add(const net::Netns& hostNs, IpamDelegate& ipam, const Env& env,
                    const NetConf& conf) {
  auto config = parseTransparentConfig(conf);
  if (!config) return std::unexpected(config.error());
  // Before IPAM: a bad netns, or an interface name the pod already has, must not cost an address.
  auto podNs = openPodNetns(env);
  if (!podNs) return std::unexpected(podNs.error());
  if (auto ok = refuseExistingInterface(*podNs, env); !ok) return std::unexpected(ok.error());

  // The veth needs no address: it is made while the IPAM plugin runs. If IPAM then fails, the
  // veth is deleted again (PodVeth's destructor) and the IPAM error is what the runtime sees.
  net::TransparentPodParams params{.containerID = env.containerID,
                                   .ifName = env.ifName,
                                   .hostPrefix = config->hostVethPrefix,
                                   .mtu = config->mtu};
  auto ipamAdd = ipam.start(Command::kAdd, env, conf);
  auto veth = net::PodVeth::create(hostNs, *podNs, params);
  auto forwarding = enableForwarding(hostNs);
  auto allocated = ipamAdd->finish();
  if (!allocated) return std::unexpected(allocated.error());
  IpamRelease release(ipam, env, conf);
  if (!veth) return fromNet(veth.error());
  if (!forwarding) return std::unexpected(forwarding.error());

  // The first address of each family the IPAM plugin returned (host-local with two ranges, one
  // IPv4 and one IPv6, returns one of each).
  const auto first = [&](ipam::Family f) -> std::optional<ipam::IPAddress> {
    const auto it = std::ranges::find_if(
        allocated->ips, [&](const IPConfig& ipc) { return ipc.address.family() == f; });
    if (it == allocated->ips.end()) return std::nullopt;
    return it->address;
  };
  params.address = first(ipam::Family::kV4);
  params.address6 = first(ipam::Family::kV6);
  if (!params.address && !params.address6) {
    return failWith(kInternal, fmt::format("vnet-transparent: IPAM plugin \"{}\" returned no "
                                           "address for container {}",
                                           conf.ipamType, env.containerID));
  }
  if (params.address6) {
    if (auto ok = enableForwarding6(hostNs); !ok) return std::unexpected(ok.error());
  }
  auto pod = veth->configure(params);
  if (!pod) return fromNet(pod.error());

  Result result = conf.prevResult.value_or(Result{});
  const int hostIndex = static_cast<int>(result.interfaces.size());
  result.interfaces.push_back(
      Interface{.name = pod->host.name, .mac = pod->host.mac.toString(), .mtu = pod->host.mtu});
  result.interfaces.push_back(Interface{.name = pod->pod.name,
                                        .mac = pod->pod.mac.toString(),
                                        .mtu = pod->pod.mtu,
                                        .sandbox = env.netns});
  if (params.address) {
    result.ips.push_back(IPConfig{.address = *params.address,
                                  .prefixLength = 32,
                                  .gateway = params.gateway,
                                  .interface = hostIndex + 1});
  }
  if (params.address6) {
    result.ips.push_back(IPConfig{.address = *params.address6,
                                  .prefixLength = 128,
                                  .gateway = params.gateway6,
                                  .interface = hostIndex + 1});
  }
  // A second network's interface adds no route: the pod's default route is its first interface's
  // (net::TransparentPod::podRoutes), and the result lists only what this plugin made.
  if (params.address && pod->podRoutes) {
    result.routes.push_back(
        RouteEntry{.dst = ipam::Prefix::masked(ipam::IPAddress::v4(0), 0), .gw = params.gateway});
  }
  if (params.address6 && pod->podRoutes6) {
    result.routes.push_back(
        RouteEntry{.dst = ipam::Prefix::masked(ipam::IPAddress::fromBits(ipam::Family::kV6, 0), 0),
                   .gw = params.gateway6});
  }
  if (result.dns.empty()) result.dns = allocated->dns;
  release.dismiss();
  return result;
}

// ---- DEL ----------------------------------------------------------------------------------------

Outcome<void> del(const net::Netns& hostNs, IpamDelegate& ipam, const Env& env,
                  const NetConf& conf) {
  auto config = parseTransparentConfig(conf);
  if (!config) return std::unexpected(config.error());
  // The veth first: while the /32 route exists the address must stay allocated, or a new pod
  // could get it and find its route taken. VethTeardown returns once the kernel has unregistered
  // the pair (its routes are gone); the kernel's remaining ~20 ms of cleanup overlap IPAM DEL.
  // Only this attachment's veth: the container's other interfaces (eth1 of a second network, say)
  // keep theirs.
  auto teardown =
      net::VethTeardown::start(hostNs, env.containerID, env.ifName, config->hostVethPrefix);
  if (!teardown) return fromNet(teardown.error());
  if (auto ok = ipam.run(Command::kDel, env, conf); !ok) return std::unexpected(ok.error());
  return {};
}

// ---- CHECK --------------------------------------------------------------------------------------

// The interface prevResult lists for this attachment's pod end (CNI_IFNAME in CNI_NETNS).
Outcome<std::vector<Interface>::const_iterator> findPodInterface(const Env& env,
                                                                 const Result& prev) {
  const auto podIt = std::ranges::find_if(prev.interfaces, [&](const Interface& i) {
    return i.name == env.ifName && i.sandbox == env.netns;
  });
  if (podIt == prev.interfaces.end()) {
    return mismatch(env, "prevResult lists no such interface in that sandbox");
  }
  return podIt;
}

// The attachment's veth as CHECK reads it: both ends, a socket in each end's namespace and, once
// readVethState has read them, the addresses, routes and neighbours on each end.
struct CheckedVeth {
  net::Netns podNs;
  std::string hostName;
  net::RtnlSocket hostSock;
  net::RtnlSocket podSock;
  net::LinkInfo host;
  net::LinkInfo pod;
  LinkState hostState;
  LinkState podState;
};

// Opens the pod's namespace and finds both ends of the veth: either missing is a mismatch.
Outcome<CheckedVeth> findVeth(const net::Netns& hostNs, const Env& env,
                              const TransparentConfig& config) {
  auto podNs = openPodNetns(env);
  if (!podNs) return std::unexpected(podNs.error());
  auto hostName = net::hostVethName(config.hostVethPrefix, env.containerID, env.ifName);
  if (!hostName) return fromNet(hostName.error());
  auto hostSock = net::RtnlSocket::open(hostNs);
  if (!hostSock) return fromNet(hostSock.error());
  auto podSock = net::RtnlSocket::open(*podNs);
  if (!podSock) return fromNet(podSock.error());
  auto host = net::getLink(*hostSock, *hostName);
  if (!host) return mismatch(env, fmt::format("host veth {} is missing", *hostName));
  auto pod = net::getLink(*podSock, env.ifName);
  if (!pod) return mismatch(env, "the pod interface is missing");
  return CheckedVeth{.podNs = std::move(*podNs),
                     .hostName = std::move(*hostName),
                     .hostSock = std::move(*hostSock),
                     .podSock = std::move(*podSock),
                     .host = std::move(*host),
                     .pod = std::move(*pod)};
}

// The links themselves: the pod end's MAC (if prevResult lists one), both ends up, both with the
// configured MTU.
Outcome<void> checkLinks(const Env& env, const Interface& listed, const CheckedVeth& veth,
                         std::uint32_t mtu) {
  const net::LinkInfo& host = veth.host;
  const net::LinkInfo& pod = veth.pod;
  if (!listed.mac.empty() && listed.mac != pod.mac.toString()) {
    return mismatch(env,
                    fmt::format("MAC is {}, prevResult says {}", pod.mac.toString(), listed.mac));
  }
  if (!host.up || !pod.up) {
    return mismatch(env, fmt::format("{} is down", host.up ? env.ifName : veth.hostName));
  }
  if (pod.mtu != mtu || host.mtu != mtu) {
    return mismatch(env, fmt::format("MTU is {} (pod) / {} (host {}), the config says {}", pod.mtu,
                                     host.mtu, veth.hostName, mtu));
  }
  return {};
}

// Reads the addresses, routes and neighbours on each end, the pod's first.
Outcome<void> readVethState(CheckedVeth& veth) {
  auto podState = readLinkState(veth.podSock, veth.pod);
  if (!podState) return fromNet(podState.error());
  auto hostState = readLinkState(veth.hostSock, veth.host);
  if (!hostState) return fromNet(hostState.error());
  veth.podState = std::move(*podState);
  veth.hostState = std::move(*hostState);
  return {};
}

// Whether s has the route to dst via gw; without gw, a link route.
bool hasRoute(const LinkState& s, ipam::Prefix dst, std::optional<ipam::IPAddress> gw) {
  return std::ranges::any_of(s.routes, [&](const LinkState::Route& r) {
    // IPv6 routes have no scope (the kernel keeps them as universe).
    return r.dst == dst && r.gateway == gw &&
           (gw.has_value() || r.linkScope || dst.family() == ipam::Family::kV6);
  });
}

// The families of the addresses prevResult lists for the pod's interface.
struct ListedFamilies {
  bool v4 = false;
  bool v6 = false;
};

// Each address prevResult lists for the pod's interface (the podIndex'th): on the pod end, and the
// host's route to it on the host veth. At least one is listed.
Outcome<ListedFamilies> checkAddresses(const Env& env, const Result& prev, int podIndex,
                                       const CheckedVeth& veth) {
  ListedFamilies listed;
  for (const auto& ipc : prev.ips) {
    if (ipc.interface && *ipc.interface != podIndex) continue;
    (ipc.address.family() == ipam::Family::kV4 ? listed.v4 : listed.v6) = true;
    const int length = ipam::bitLength(ipc.address.family());
    const auto text = ipc.address.toString();
    if (!std::ranges::any_of(veth.podState.addresses, [&](const LinkState::Address& a) {
          return a.address == ipc.address && a.prefixLength == length;
        })) {
      return mismatch(env, fmt::format("address {}/{} is missing", text, length));
    }
    if (!hasRoute(veth.hostState, ipam::Prefix::masked(ipc.address, length), std::nullopt)) {
      return mismatch(
          env, fmt::format("host route {}/{} dev {} is missing", text, length, veth.hostName));
    }
  }
  if (!listed.v4 && !listed.v6) {
    return mismatch(env, "prevResult lists no address for the interface");
  }
  return listed;
}

// The pod's routes are on this interface when ADD put them there, which its result says by
// listing the default route (a second network's interface has none: see ADD).
bool ownsDefault(const Result& prev, ipam::Prefix dst, ipam::IPAddress gateway) {
  return std::ranges::any_of(prev.routes,
                             [&](const RouteEntry& r) { return r.dst == dst && r.gw == gateway; });
}

// The pod end's permanent neighbour entry gateway -> the host veth's MAC.
Outcome<void> checkGatewayNeighbour(const Env& env, const CheckedVeth& veth,
                                    ipam::IPAddress gateway) {
  if (!std::ranges::any_of(veth.podState.neighbours, [&](const LinkState::Neighbour& n) {
        return n.dst == gateway && n.permanent && n.mac == veth.host.mac.toString();
      })) {
    return mismatch(env, fmt::format("permanent neighbour {} -> {} is missing", gateway.toString(),
                                     veth.host.mac.toString()));
  }
  return {};
}

// IPv4: the pod's link route to the gateway and default route via it (if this interface has the
// pod's routes), the gateway's neighbour entry, and proxy_arp=1 on the host veth.
Outcome<void> checkIpv4(const net::Netns& hostNs, const Env& env, const Result& prev,
                        const CheckedVeth& veth) {
  const auto gateway = net::kDefaultPodGateway;
  const auto defaultRoute = ipam::Prefix::masked(ipam::IPAddress::v4(0), 0);
  const bool ownsRoutes = ownsDefault(prev, defaultRoute, gateway);
  if (ownsRoutes && !hasRoute(veth.podState, ipam::Prefix::masked(gateway, 32), std::nullopt)) {
    return mismatch(env, fmt::format("link route {} is missing", gateway.toString()));
  }
  if (ownsRoutes && !hasRoute(veth.podState, defaultRoute, gateway)) {
    return mismatch(env, fmt::format("default route via {} is missing", gateway.toString()));
  }
  if (auto ok = checkGatewayNeighbour(env, veth, gateway); !ok) return ok;
  auto proxyArp = net::readInterfaceSysctl(
      hostNs, {.table = net::SysctlTable::kConf, .ifname = veth.hostName, .key = "proxy_arp"});
  if (!proxyArp) return fromNet(proxyArp.error());
  if (*proxyArp != "1") {
    return mismatch(env, fmt::format("proxy_arp on {} is {}, not 1", veth.hostName, *proxyArp));
  }
  return {};
}

// IPv6: the pod's default route via the gateway (if this interface has the pod's routes), the
// gateway's neighbour entry, the gateway address on the host veth, and IPv6 forwarding on it.
Outcome<void> checkIpv6(const net::Netns& hostNs, const Env& env, const Result& prev,
                        const CheckedVeth& veth) {
  const auto gateway = net::kDefaultPodGatewayV6;
  const auto defaultRoute =
      ipam::Prefix::masked(ipam::IPAddress::fromBits(ipam::Family::kV6, 0), 0);
  if (ownsDefault(prev, defaultRoute, gateway) && !hasRoute(veth.podState, defaultRoute, gateway)) {
    return mismatch(env, fmt::format("IPv6 default route via {} is missing", gateway.toString()));
  }
  if (auto ok = checkGatewayNeighbour(env, veth, gateway); !ok) return ok;
  if (!std::ranges::any_of(veth.hostState.addresses,
                           [&](const LinkState::Address& a) { return a.address == gateway; })) {
    return mismatch(env, fmt::format("host veth {} does not have the gateway address {}",
                                     veth.hostName, gateway.toString()));
  }
  auto forwarding = net::readInterfaceSysctl(hostNs, {.family = ipam::Family::kV6,
                                                      .table = net::SysctlTable::kConf,
                                                      .ifname = veth.hostName,
                                                      .key = "forwarding"});
  if (!forwarding) return fromNet(forwarding.error());
  if (*forwarding != "1") {
    return mismatch(env, fmt::format("IPv6 forwarding on {} is {}, not 1 "
                                     "(net.ipv6.conf.all.forwarding)",
                                     veth.hostName, *forwarding));
  }
  return {};
}

// IPAM CHECK, then the layout against prevResult, step by step: the first difference is the error.
Outcome<void> check(const net::Netns& hostNs, IpamDelegate& ipam, const Env& env,
                    const NetConf& conf) {
  auto config = parseTransparentConfig(conf);
  if (!config) return std::unexpected(config.error());
  if (!conf.prevResult) {
    return failWith(kInvalidConfig, "vnet-transparent: CHECK needs prevResult");
  }
  if (auto ok = ipam.run(Command::kCheck, env, conf); !ok) return std::unexpected(ok.error());
  const Result& prev = *conf.prevResult;
  const auto podIt = findPodInterface(env, prev);
  if (!podIt) return std::unexpected(podIt.error());
  const int podIndex = static_cast<int>(*podIt - prev.interfaces.begin());
  auto veth = findVeth(hostNs, env, *config);
  if (!veth) return std::unexpected(veth.error());
  if (auto ok = checkLinks(env, **podIt, *veth, config->mtu); !ok) return ok;
  if (auto ok = readVethState(*veth); !ok) return ok;
  const auto listed = checkAddresses(env, prev, podIndex, *veth);
  if (!listed) return std::unexpected(listed.error());
  if (listed->v4) {
    if (auto ok = checkIpv4(hostNs, env, prev, *veth); !ok) return ok;
  }
  if (listed->v6) {
    if (auto ok = checkIpv6(hostNs, env, prev, *veth); !ok) return ok;
  }
  return {};
}

// ---- GC -----------------------------------------------------------------------------------------

// Deletes the host veths of attachments the runtime no longer lists (their pod ends, /32 routes and
// neighbours go with them), then passes GC to IPAM, which releases their addresses. The veths go
// first for the reason DEL deletes its veth first: a route must never point at a released address.
// A host veth name carries no network name, so two networks sharing one hostVethPrefix would
// collect each other's veths: give each network its own prefix. Each valid attachment keeps the
// veth named for it, and also the name releases before interface names were hashed gave any
// attachment of its container (the eth0 name): a pod an older agent gave a non-eth0 interface
// keeps its veth until the runtime says the container is gone.
Outcome<void> gc(const net::Netns& hostNs, IpamDelegate& ipam, const Env& env,
                 const NetConf& conf) {
  // An empty prefix is refused by ADD, so no veth of ours has one; for GC it only means "delete
  // nothing" (it would match every veth), while the rest of the configuration must still be valid.
  NetConf checked = conf;
  const auto prefixIt = checked.raw.find("hostVethPrefix");
  const bool emptyPrefix = prefixIt != checked.raw.end() && prefixIt->is_string() &&
                           prefixIt->get<std::string>().empty();
  if (emptyPrefix) checked.raw.erase("hostVethPrefix");
  auto config = parseTransparentConfig(checked);
  if (!config) return std::unexpected(config.error());
  if (emptyPrefix) config->hostVethPrefix.clear();
  if (auto why = net::gcPrefixUnsafe(config->hostVethPrefix)) {
    // Still GC in IPAM: leaked addresses are worth collecting even when the veths are not.
    std::fprintf(stderr, "vnet-transparent: GC: not deleting host veths (%s)\n", why->c_str());
  } else {
    std::set<std::string> keep;
    for (const auto& a : conf.validAttachments) {
      auto name = net::hostVethName(config->hostVethPrefix, a.containerID, a.ifName);
      auto legacy = net::legacyHostVethName(config->hostVethPrefix, a.containerID);
      if (!name || !legacy) {
        return failWith(
            kInvalidConfig,
            fmt::format("vnet-transparent: GC: valid attachment of container \"{}\" "
                        "interface \"{}\": {}",
                        a.containerID, a.ifName, (name ? legacy : name).error().message));
      }
      keep.insert(std::move(*name));
      keep.insert(std::move(*legacy));
    }
    auto deleted = net::deleteStaleHostVeths(hostNs, config->hostVethPrefix, keep);
    if (!deleted) return fromNet(deleted.error());
    for (const auto& name : *deleted) {
      std::fprintf(stderr, "vnet-transparent: GC: deleted stale host veth %s\n", name.c_str());
    }
  }
  if (auto ok = ipam.run(Command::kGc, env, conf); !ok) return std::unexpected(ok.error());
  return {};
}

}  // namespace

Outcome<TransparentConfig> parseTransparentConfig(const NetConf& conf) {
  TransparentConfig config;
  const auto& raw = conf.raw;
  const auto invalid = [](std::string msg) {
    return failWith(kInvalidConfig, "vnet-transparent: " + msg);
  };
  if (raw.contains("hostVethPrefix")) {
    if (!raw["hostVethPrefix"].is_string()) return invalid("\"hostVethPrefix\" must be a string");
    config.hostVethPrefix = raw["hostVethPrefix"].get<std::string>();
  }
  if (auto name = net::hostVethName(config.hostVethPrefix, "probe", "eth0"); !name) {
    return invalid(fmt::format("\"hostVethPrefix\" \"{}\": {}", printable(config.hostVethPrefix),
                               name.error().message));
  }
  if (raw.contains("mtu")) {
    const auto mtu = integerIn(raw["mtu"], 68, 65535);
    if (!mtu) return invalid("\"mtu\" must be an integer 68..65535");
    config.mtu = static_cast<std::uint32_t>(*mtu);
  }
  if (conf.ipamType.empty()) {
    return invalid(
        "an \"ipam\" section with a \"type\" is required (for example vnet-ipam or "
        "host-local)");
  }
  return config;
}

Plugin makeTransparentPlugin(const net::Netns& hostNs, IpamDelegate& ipam) {
  const auto passToIpam = [&ipam](Command command) {
    return [&ipam, command](const Env& env, const NetConf& conf) -> Outcome<void> {
      if (auto config = parseTransparentConfig(conf); !config) {
        return std::unexpected(config.error());
      }
      if (auto ok = ipam.run(command, env, conf); !ok) return std::unexpected(ok.error());
      return {};
    };
  };
  return Plugin{
      .name = "vnet-transparent",
      .add = [&](const Env& e, const NetConf& c) { return add(hostNs, ipam, e, c); },
      .del = [&](const Env& e, const NetConf& c) { return del(hostNs, ipam, e, c); },
      .check = [&](const Env& e, const NetConf& c) { return check(hostNs, ipam, e, c); },
      .gc = [&](const Env& e, const NetConf& c) { return gc(hostNs, ipam, e, c); },
      .status = passToIpam(Command::kStatus),
  };
}

}  // namespace vnetipam::cni
