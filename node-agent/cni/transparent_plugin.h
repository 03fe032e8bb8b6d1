// vnet-transparent: the CNI main plugin that wires a pod in transparent mode (the recipe is in
// lib/net/transparent.h): one veth whose pod end is born in the pod's netns, a /32 on it, the
// 169.254.1.1 gateway, and a /32 route to the pod on the host. No bridge. With an IPv6 address
// from IPAM (alone or beside the IPv4 one) also a /128 on it, the fe80::1 gateway and a /128 route
// on the host.
//
// Configuration keys: "hostVethPrefix" (default "vnet", at most 11 characters), "mtu" (default
// 1500, 68..65535), "ipam" (required; any IPAM plugin, run per the spec through IpamDelegate).
//
//   ADD    IPAM ADD, with the veth made while the IPAM plugin runs, then addresses and routes.
//          Also sets net.ipv4.ip_forward=1 in the host namespace when it is not 1 (as ptp does):
//          without it a node does not forward what other nodes send to its pods (code 5 if it
//          cannot be set). With an IPv6 address, net.ipv6.conf.all.forwarding=1 likewise.
//          If any step fails, the veth is deleted again and (if IPAM ADD succeeded) IPAM DEL runs
//          after that, so a failed ADD holds nothing.
//   DEL    deletes the host veth (the kernel takes the pod end, its routes and neighbours), then
//          IPAM DEL once the pair is gone, while the kernel finishes the delete (VethTeardown).
//          Needs no netns; idempotent.
//   CHECK  IPAM CHECK, then every piece of the layout against prevResult, per family of its
//          addresses (code 101 naming the first difference).
//   GC     deletes the host veths (kind veth, peer in another namespace, name of our shape) whose
//          names no cni.dev/valid-attachments entry would have, in the plugin's own namespace
//          only, then passes GC to the IPAM plugin. With a prefix that is empty or overlaps
//          another plugin's (net::gcPrefixUnsafe) it deletes nothing and says so on stderr.
//   STATUS passed to the IPAM plugin.
#pragma once

#include <cstdint>
#include <string>

#include "lib/net/netns.h"
#include "node-agent/cni/delegate.h"
#include "node-agent/cni/skel.h"

namespace vnetipam::cni {

struct TransparentConfig {
  std::string hostVethPrefix = "vnet";
  std::uint32_t mtu = 1500;
};

// Code 7 naming the key and what would be valid; also when "ipam.type" is missing.
Outcome<TransparentConfig> parseTransparentConfig(const NetConf& conf);

// The handlers. hostNs is where host veths and pod routes go (the plugin's own namespace in
// production; a test namespace in tests). Both references must outlive the Plugin.
Plugin makeTransparentPlugin(const net::Netns& hostNs, IpamDelegate& ipam);

}  // namespace vnetipam::cni
