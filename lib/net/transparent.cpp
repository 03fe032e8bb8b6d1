#include "lib/net/transparent.h"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "lib/net/netlink.h"
#include "lib/net/route.h"
#include "lib/net/sysctl.h"

namespace vnetipam::net {
namespace {

// Runs its action on scope exit unless dismissed: undoes a partial ADD.
template <typename F>
class ScopeGuard {
 public:
  explicit ScopeGuard(F f) : f_(std::move(f)) {}
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ~ScopeGuard() {
    if (armed_) f_();
  }
  void dismiss() { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

Result<void> validate(const TransparentPodParams& p) {
  const auto invalid = [&](std::string_view why) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("set up pod {} ({}): {}", p.containerId, p.address.toString(), why));
  };
  if (auto ok = validateInterfaceName(p.ifName); !ok) return ok;
  if (p.address.family() != ipam::Family::kV4 || p.gateway.family() != ipam::Family::kV4) {
    return invalid("only IPv4 pod addresses and gateways are supported");
  }
  const auto unusable = [](ipam::IPAddress a) {
    const auto bits = static_cast<std::uint32_t>(a.bits());
    return bits == 0 || bits == 0xffffffffU || (bits >> 28) == 0xe || (bits >> 24) == 127;
  };
  if (unusable(p.address)) return invalid("the pod address is not a unicast address");
  if (unusable(p.gateway)) {
    return invalid(fmt::format("gateway {} is not a unicast address", p.gateway.toString()));
  }
  if (p.gateway == p.address) return invalid("the gateway equals the pod address");
  if (p.mtu != 0 && (p.mtu < 68 || p.mtu > 65535)) {
    return invalid(fmt::format("MTU {} is outside 68..65535", p.mtu));
  }
  return {};
}

// Prefixes an error with the pod it concerns, so a CNI error reads on its own.
std::unexpected<Error> forPod(const TransparentPodParams& p, Error e) {
  e.message = fmt::format("set up pod {} ({}): {}", p.containerId, p.address.toString(), e.message);
  return std::unexpected(std::move(e));
}

}  // namespace

Result<TransparentPod> setupTransparentPod(const Netns& hostNs, const Netns& podNs,
                                           const TransparentPodParams& p) {
  if (auto ok = validate(p); !ok) return std::unexpected(ok.error());
  auto hostName = hostVethName(p.hostPrefix, p.containerId);
  if (!hostName) return forPod(p, hostName.error());
  auto hostSock = RouteSocket::open(hostNs);
  if (!hostSock) return forPod(p, hostSock.error());
  auto podSock = RouteSocket::open(podNs);
  if (!podSock) return forPod(p, podSock.error());

  // Same container id, same name: a leftover of an earlier ADD of this container.
  if (auto ok = deleteLink(*hostSock, *hostName); !ok) return forPod(p, ok.error());

  const VethSpec veth{
      .hostName = *hostName, .peerName = p.ifName, .mtu = p.mtu, .hostMac = p.hostMac};
  if (auto ok = createVethPair(*hostSock, veth, podNs); !ok) return forPod(p, ok.error());
  // Deleting the host end deletes the pod end and everything configured on either.
  ScopeGuard undo([&] { (void)deleteLink(*hostSock, *hostName); });

  auto host = getLink(*hostSock, *hostName);
  if (!host) return forPod(p, host.error());
  auto pod = getLink(*podSock, p.ifName);
  if (!pod) return forPod(p, pod.error());

  // Pod side. The link must be up before routes can use it; a /32 address adds no subnet route,
  // so there is nothing of the kernel's to delete.
  if (auto ok = addHostAddress(*podSock, *pod, p.address); !ok) return forPod(p, ok.error());
  if (auto ok = setLinkUp(*podSock, *pod); !ok) return forPod(p, ok.error());
  const Route gatewayRoute{.dst = ipam::Prefix::masked(p.gateway, 32), .scope = RouteScope::kLink};
  if (auto ok = addRoute(*podSock, *pod, gatewayRoute); !ok) return forPod(p, ok.error());
  const Route defaultRoute{.dst = ipam::Prefix::masked(ipam::IPAddress::v4(0), 0),
                           .gateway = p.gateway};
  if (auto ok = addRoute(*podSock, *pod, defaultRoute); !ok) return forPod(p, ok.error());
  if (auto ok = addPermanentNeighbour(*podSock, *pod, p.gateway, host->mac); !ok) {
    return forPod(p, ok.error());
  }

  // Host side. proxy_delay=0: answer the pod's ARP at once instead of after up to 0.8 s.
  const std::array<InterfaceSysctl, 3> sysctls{{
      {.table = SysctlTable::kConf, .ifname = *hostName, .key = "proxy_arp", .value = "1"},
      {.table = SysctlTable::kConf, .ifname = *hostName, .key = "forwarding", .value = "1"},
      {.table = SysctlTable::kNeigh, .ifname = *hostName, .key = "proxy_delay", .value = "0"},
  }};
  if (auto ok = writeInterfaceSysctls(hostNs, sysctls); !ok) return forPod(p, ok.error());
  if (auto ok = setLinkUp(*hostSock, *host); !ok) return forPod(p, ok.error());
  // Exclusive: if another interface already has this /32, IPAM handed the address out twice; the
  // live pod keeps its traffic and this ADD fails.
  const Route podRoute{.dst = ipam::Prefix::masked(p.address, 32), .scope = RouteScope::kLink};
  if (auto ok = addRoute(*hostSock, *host, podRoute); !ok) return forPod(p, ok.error());

  undo.dismiss();
  host->up = true;
  pod->up = true;
  return TransparentPod{.host = std::move(*host), .pod = std::move(*pod)};
}

Result<void> teardownTransparentPod(const Netns& hostNs, std::string_view containerId,
                                    std::string_view hostPrefix) {
  auto hostName = hostVethName(hostPrefix, containerId);
  if (!hostName) return std::unexpected(hostName.error());
  auto hostSock = RouteSocket::open(hostNs);
  if (!hostSock) return std::unexpected(hostSock.error());
  if (auto ok = deleteLink(*hostSock, *hostName); !ok) {
    Error e = ok.error();
    e.message = fmt::format("tear down pod {}: {}", containerId, e.message);
    return std::unexpected(std::move(e));
  }
  return {};
}

}  // namespace vnetipam::net
