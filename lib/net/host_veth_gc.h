// Garbage collection of host veths (CNI GC): the host ends this plugin made for attachments the
// runtime no longer lists.
//
// A link is a candidate only if all of these hold, so an unrelated link that happens to share the
// prefix is never touched: it is in the namespace the socket is bound to (nothing in any other
// namespace is read or changed), its kind is "veth", its peer is in another namespace (a pod's),
// and its name has the exact shape hostVethName() gives (prefix + lowercase hex, 15 characters).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lib/net/error.h"
#include "lib/net/netns.h"

namespace vnetipam::net {

// A host veth as one RTM_GETLINK dump shows it.
struct HostVeth {
  std::string name;
  int ifindex = 0;
};

// Every link of hostNs that passes the checks above for `prefix`, from one netlink dump.
Result<std::vector<HostVeth>> listHostVeths(const Netns& hostNs, std::string_view prefix);

// Deletes every host veth of `prefix` (as listHostVeths finds them) whose name is not in `keep`;
// deleting a veth takes its peer and every route and neighbour on either end with it. One dump,
// then one batch of deletes by ifindex (a link deleted meanwhile by someone else is not an error).
// Returns the names deleted. kInvalidArgument, touching nothing, if gcPrefixUnsafe(prefix).
Result<std::vector<std::string>> deleteStaleHostVeths(const Netns& hostNs, std::string_view prefix,
                                                      const std::set<std::string>& keep);

// Why deleting by `prefix` could hit another plugin's veths, or nullopt if it cannot: the prefix
// is empty, or it overlaps (one starts with the other) a host-veth prefix of a well-known CNI
// plugin (Calico "cali", Cilium "lxc", Docker/bridge "veth", Azure CNI "azv", AWS VPC CNI "eni").
std::optional<std::string> gcPrefixUnsafe(std::string_view prefix);

}  // namespace vnetipam::net
