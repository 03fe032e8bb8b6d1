// Deterministic host-side veth names: <prefix><hex hash of the container id>, IFNAMSIZ-1 long.
//
// The prefix lets a policy engine match every pod interface (Calico's `interfacePrefix`); the hash
// makes DEL find the interface ADD created from nothing but the container id.
#pragma once

#include <string>
#include <string_view>

#include "lib/net/error.h"

namespace vnetipam::net {

// The longest prefix accepted: it leaves at least 4 hex digits (16 bits) of hash.
inline constexpr std::size_t kMaxHostVethPrefix = 11;
inline constexpr std::string_view kDefaultHostVethPrefix = "vnet";

// prefix + the first (15 - prefix.size()) hex digits of the 64-bit FNV-1a hash of containerId.
// Stable across releases: changing it would orphan every existing pod's veth on upgrade.
// kInvalidArgument for an empty container id, or a prefix that is empty, longer than
// kMaxHostVethPrefix, or not a valid interface name.
Result<std::string> hostVethName(std::string_view prefix, std::string_view containerId);

// Whether `name` has the shape hostVethName(prefix, <some id>) gives: prefix, then lowercase hex
// up to kMaxInterfaceName characters in all. False for an empty prefix.
bool isHostVethName(std::string_view prefix, std::string_view name);

}  // namespace vnetipam::net
