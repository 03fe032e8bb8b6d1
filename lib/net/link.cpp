#include "lib/net/link.h"

#include <fmt/format.h>
#include <net/if.h>
#include <netlink/errno.h>
#include <netlink/route/link/veth.h>

namespace vnetipam::net {

Result<void> validateInterfaceName(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceName) {
    return fail(
        ErrorCode::kInvalidArgument,
        fmt::format("interface name '{}' must be 1..{} characters", name, kMaxInterfaceName));
  }
  if (name == "." || name == "..") {
    return fail(ErrorCode::kInvalidArgument, fmt::format("interface name '{}' is reserved", name));
  }
  for (const char c : name) {
    if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\0') {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("interface name '{}' contains '/', ':' or whitespace", name));
    }
  }
  return {};
}

Result<void> createVethPair(RouteSocket& host, const VethSpec& spec, const Netns& peerNs) {
  if (auto ok = validateInterfaceName(spec.hostName); !ok) return ok;
  if (auto ok = validateInterfaceName(spec.peerName); !ok) return ok;
  const std::string doing =
      fmt::format("create veth {} (namespace {}) with peer {} in namespace {}", spec.hostName,
                  host.netns(), spec.peerName, peerNs.label());

  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) return fail(ErrorCode::kIo, doing + ": out of memory");
  // rtnl_link_veth_get_peer takes a reference of its own.
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));
  if (!peer) return fail(ErrorCode::kIo, doing + ": no peer object");

  rtnl_link_set_name(link.get(), spec.hostName.c_str());
  rtnl_link_set_name(peer.get(), spec.peerName.c_str());
  rtnl_link_set_ns_fd(peer.get(), peerNs.fd());
  if (spec.mtu != 0) {
    rtnl_link_set_mtu(link.get(), spec.mtu);
    rtnl_link_set_mtu(peer.get(), spec.mtu);
  }
  if (spec.hostMac) {
    auto mac = toNlAddr(*spec.hostMac);
    if (!mac) return std::unexpected(mac.error());
    rtnl_link_set_addr(link.get(), mac->get());
  }
  if (const int err = rtnl_link_add(host.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
    return std::unexpected(nlError(err, doing));
  }
  return {};
}

Result<LinkInfo> getLink(RouteSocket& sock, std::string_view name) {
  if (auto ok = validateInterfaceName(name); !ok) return std::unexpected(ok.error());
  const std::string owned(name);
  rtnl_link* raw = nullptr;
  if (const int err = rtnl_link_get_kernel(sock.get(), 0, owned.c_str(), &raw); err < 0) {
    return std::unexpected(
        nlError(err, fmt::format("look up link {} in namespace {}", name, sock.netns())));
  }
  LinkPtr link(raw);
  LinkInfo info{.name = owned,
                .ifindex = rtnl_link_get_ifindex(link.get()),
                .mtu = rtnl_link_get_mtu(link.get()),
                .up = (rtnl_link_get_flags(link.get()) & IFF_UP) != 0};
  if (nl_addr* mac = rtnl_link_get_addr(link.get());
      mac != nullptr && nl_addr_get_len(mac) == info.mac.bytes.size()) {
    const auto* bytes = static_cast<const std::uint8_t*>(nl_addr_get_binary_addr(mac));
    std::copy(bytes, bytes + info.mac.bytes.size(), info.mac.bytes.begin());
  }
  return info;
}

Result<void> setLinkUp(RouteSocket& sock, const LinkInfo& link) {
  LinkPtr orig(rtnl_link_alloc());
  LinkPtr change(rtnl_link_alloc());
  if (!orig || !change) return fail(ErrorCode::kIo, "set link up: out of memory");
  rtnl_link_set_ifindex(orig.get(), link.ifindex);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (const int err = rtnl_link_change(sock.get(), orig.get(), change.get(), 0); err < 0) {
    return std::unexpected(
        nlError(err, fmt::format("set link {} up in namespace {}", link.name, sock.netns())));
  }
  return {};
}

Result<void> deleteLink(RouteSocket& sock, std::string_view name) {
  if (auto ok = validateInterfaceName(name); !ok) return ok;
  LinkPtr link(rtnl_link_alloc());
  if (!link) return fail(ErrorCode::kIo, "delete link: out of memory");
  const std::string owned(name);
  rtnl_link_set_name(link.get(), owned.c_str());
  const int err = rtnl_link_delete(sock.get(), link.get());
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return {};
  if (err < 0) {
    return std::unexpected(
        nlError(err, fmt::format("delete link {} in namespace {}", name, sock.netns())));
  }
  return {};
}

}  // namespace vnetipam::net
