// Deterministic host-side veth names: <prefix><hex hash of the attachment>, IFNAMSIZ-1 long.
//
// The prefix lets a policy engine match every pod interface (Calico's `interfacePrefix`); the hash
// makes DEL find the interface ADD created from nothing but the attachment: the container id and
// the pod's interface name, so a pod with several interfaces (eth0, and eth1 from a second network
// as Multus adds it) has one host veth for each.
#pragma once

#include <string>
#include <string_view>

#include "lib/net/error.h"

namespace vnetipam::net {

// The longest prefix accepted: it leaves at least 4 hex digits (16 bits) of hash.
inline constexpr std::size_t kMaxHostVethPrefix = 11;
inline constexpr std::string_view kDefaultHostVethPrefix = "vnet";

// prefix + the first (15 - prefix.size()) hex digits of the 64-bit FNV-1a hash of the attachment:
// of containerID alone when ifName is "eth0", of containerID + "/" + ifName otherwise ('/' is in
// neither a container id nor an interface name, so no two attachments hash the same text).
// Stable across releases: changing it would orphan every existing pod's veth on upgrade. That is
// why eth0 keeps the hash of the container id alone: releases before interface names were hashed
// named every attachment that way, and nearly every pod has just an eth0, so those pods' veths
// keep their names (DEL, CHECK and GC find them) when the agent is upgraded under them.
// kInvalidArgument for an empty container id or interface name, or a prefix that is empty, longer
// than kMaxHostVethPrefix, or not a valid interface name.
Result<std::string> hostVethName(std::string_view prefix, std::string_view containerID,
                                 std::string_view ifName);

// The name releases before interface names were hashed gave every attachment of containerID,
// whatever its interface: hostVethName(prefix, containerID, "eth0"). GC keeps it for each container
// it is told is live, so a pod given a non-eth0 interface by an older release keeps its veth.
Result<std::string> legacyHostVethName(std::string_view prefix, std::string_view containerID);

// Whether `name` has the shape hostVethName(prefix, <some id>) gives: prefix, then lowercase hex
// up to kMaxInterfaceName characters in all. False for an empty prefix.
bool isHostVethName(std::string_view prefix, std::string_view name);

}  // namespace vnetipam::net
