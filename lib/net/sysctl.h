// Sysctls under /proc/sys/net, per interface or namespace-wide, written inside a given network
// namespace.
//
// For what rtnetlink does not carry (namespace-wide settings such as ip_forward) and to read a
// setting back as the kernel shows it. A /proc/sys/net file resolves against the namespace of the
// thread that opens it, so the files are opened on a thread inside the target namespace
// (runInNetns); nothing is ever written in the caller's own namespace by accident.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "lib/ipam/ip.h"
#include "lib/net/netns.h"

namespace vnetipam::net {

enum class SysctlTable : std::uint8_t {
  kConf,   // /proc/sys/net/ipv{4,6}/conf/<if>/<key>   (proxy_arp, forwarding, proxy_ndp, ...)
  kNeigh,  // /proc/sys/net/ipv{4,6}/neigh/<if>/<key>  (proxy_delay, ...)
};

struct InterfaceSysctl {
  ipam::Family family = ipam::Family::kV4;
  SysctlTable table = SysctlTable::kConf;
  std::string ifname;
  std::string key;
  std::string value;
};

// The file a setting lives in, e.g. "/proc/sys/net/ipv4/conf/veth0/proxy_arp". kInvalidArgument if
// ifname or key could escape the directory.
Result<std::string> sysctlPath(const InterfaceSysctl& s);

// Writes each setting in order from one thread inside ns; stops at the first failure, whose
// message names the file, the value and the namespace (kNotFound if the interface does not exist).
Result<void> writeInterfaceSysctls(const Netns& ns, std::span<const InterfaceSysctl> settings);

// Reads a setting back (trailing newline stripped), from a thread inside ns.
Result<std::string> readInterfaceSysctl(const Netns& ns, const InterfaceSysctl& s);

// A namespace-wide setting: `key` is its path under /proc/sys/net ("ipv4/ip_forward" for
// net.ipv4.ip_forward). From one thread inside ns, reads it and writes `value` only when it
// differs: a setting that is already right costs no write, so it succeeds where /proc/sys is
// read-only (a runtime in a container) and does not redo the kernel's work of a change (ip_forward
// walks every interface). True when it wrote. kInvalidArgument if key could leave /proc/sys/net;
// otherwise the message names the file, the value and the namespace.
Result<bool> ensureNetSysctl(const Netns& ns, std::string_view key, std::string_view value);

}  // namespace vnetipam::net
