// The CNI network configuration list the agent installs for the container runtime. Its presence
// is what makes the node network-ready, so it is written only once the agent can serve, and
// removed on a clean shutdown.
#pragma once

#include <filesystem>
#include <string>

#include "lib/base/error.h"

namespace vnetipam::agent {

// {"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"vnet-ipam","plugins":[
//  {"type":"vnet-transparent","hostVethPrefix":P,"mtu":N,"ipam":{"type":"vnet-ipam","socket":S}},
//  {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}
// A runtime that speaks spec 1.1.0 runs it at 1.1.0 (GC, STATUS), an older one at 1.0.0.
// Without chainPortmap the list holds vnet-transparent alone: the runtime runs every plugin of the
// list for ADD and DEL, so a chained plugin missing from its CNI bin directory fails every DEL and
// leaves pods stuck terminating. Without portmap, hostPort mappings are not honoured.
std::string cniConfigList(const std::string& hostVethPrefix, int mtu, const std::string& socket,
                          bool chainPortmap);

}  // namespace vnetipam::agent
