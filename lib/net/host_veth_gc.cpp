#include "lib/net/host_veth_gc.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <span>

#include <fmt/format.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "lib/net/link.h"
#include "lib/net/rtnl.h"
#include "lib/net/veth_name.h"

namespace vnetipam::net {
namespace {

// Host-veth prefixes of other CNI plugins a node may run next to this one.
constexpr std::array<std::string_view, 5> kForeignPrefixes = {"cali", "lxc", "veth", "azv", "eni"};

Result<std::vector<HostVeth>> listOn(RtnlSocket& sock, std::string_view prefix) {
  RtnlBatch dump;
  dump.add(RTM_GETLINK, NLM_F_DUMP, ifinfomsg{},
           fmt::format("list links in namespace {}", sock.netns()));
  dump.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  // Asks the kernel for veths only (smaller answers); each answer is checked below regardless.
  const auto linkInfo = dump.nestBegin(IFLA_LINKINFO);
  dump.attrString(IFLA_INFO_KIND, "veth");
  dump.nestEnd(linkInfo);
  if (auto ok = dump.send(sock); !ok) return std::unexpected(ok.error());
  std::vector<HostVeth> veths;
  auto ok = dump.receiveDump(sock, [&](std::span<const std::uint8_t> msg) {
    if (messageType(msg) != RTM_NEWLINK) return;
    auto link = parseLinkMessage(msg);
    if (link && link->kind == "veth" && link->peerElsewhere &&
        isHostVethName(prefix, link->info.name)) {
      veths.push_back({.name = std::move(link->info.name), .ifindex = link->info.ifindex});
    }
  });
  if (!ok) return std::unexpected(ok.error());
  return veths;
}

}  // namespace

std::optional<std::string> gcPrefixUnsafe(std::string_view prefix) {
  if (prefix.empty()) return "the host veth prefix is empty";
  for (const auto foreign : kForeignPrefixes) {
    if (prefix.starts_with(foreign) || foreign.starts_with(prefix)) {
      return fmt::format("the host veth prefix '{}' overlaps '{}', another CNI plugin's", prefix,
                         foreign);
    }
  }
  return std::nullopt;
}

Result<std::vector<HostVeth>> listHostVeths(const Netns& hostNs, std::string_view prefix) {
  auto sock = RtnlSocket::open(hostNs);
  if (!sock) return std::unexpected(sock.error());
  return listOn(*sock, prefix);
}

Result<std::vector<std::string>> deleteStaleHostVeths(const Netns& hostNs, std::string_view prefix,
                                                      const std::set<std::string>& keep) {
  if (auto why = gcPrefixUnsafe(prefix)) {
    return fail(
        ErrorCode::kInvalidArgument,
        fmt::format("garbage-collect host veths in namespace {}: {}", hostNs.label(), *why));
  }
  auto sock = RtnlSocket::open(hostNs);
  if (!sock) return std::unexpected(sock.error());
  auto veths = listOn(*sock, prefix);
  if (!veths) return std::unexpected(veths.error());

  RtnlBatch deletes;
  std::vector<std::string> names;
  for (const auto& v : *veths) {
    if (keep.contains(v.name)) continue;
    // By ifindex: if the name was freed and taken again since the dump, the new link is spared.
    ifinfomsg ifi{};
    ifi.ifi_index = v.ifindex;
    deletes.add(RTM_DELLINK, 0, ifi,
                fmt::format("delete stale host veth {} (ifindex {}) in namespace {}", v.name,
                            v.ifindex, hostNs.label()));
    names.push_back(v.name);
  }
  if (names.empty()) return names;
  if (auto ok = deletes.send(*sock); !ok) return std::unexpected(ok.error());
  if (auto ok = deletes.receive(*sock); !ok) return std::unexpected(ok.error());
  std::vector<std::string> deleted;
  for (std::size_t i = 0; i < names.size(); ++i) {
    // ENODEV: deleted meanwhile (a DEL, or its pod's namespace went away): what GC wanted.
    if (const int err = deletes.error(i); err != 0 && err != -ENODEV) {
      return std::unexpected(errnoError(
          -err,
          fmt::format("delete stale host veth {} in namespace {}", names[i], hostNs.label())));
    }
    deleted.push_back(names[i]);
  }
  return deleted;
}

}  // namespace vnetipam::net
