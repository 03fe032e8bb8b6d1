// vnet-ipam: the CNI IPAM plugin that asks the node agent for addresses.
//
// Configuration (the "ipam" section of the network config):
//   "socket"               the agent's unix socket (default /run/vnet-ipam/agent.sock)
//   "timeoutMs"            per call (default 5000)
//   "addressPrefixLength"  length written on the result's IPv4 address (default 32, transparent
//                          mode); an IPv6 address is always /128.
//                          Under Debian's ptp give a shorter one (say 16, the VNET's): ptp deletes
//                          the kernel's subnet route of the address, which a /32 does not have.
//   "routes"               the result's routes (default: a default route per family of the result,
//                          {"dst":"0.0.0.0/0","gw":"169.254.1.1"} and
//                          {"dst":"::/0","gw":"fe80::1"}). Under ptp give []: ptp installs routes
//                          before its gateway is on-link.
//
// Every ADD, DEL, CHECK and GC names the network (the configuration's "name") to the agent, which
// records it with the allocation and scopes GC by it (node-agent/protocol.h).
//
// ADD asks the agent for every family; the result holds one address per family the node serves
// (IPv4 first, IPv6 second), each with its gateway (lib/ipam/pod_gateway.h: 169.254.1.1,
// fe80::1) and no "interface" (an IPAM plugin creates none; the interface plugin sets it). CHECK
// fails when prevResult lacks any address the agent holds for the attachment.
//
// Errors: an agent that cannot be reached, or has no free address, is code 11 (try again later).
// DEL with an unreachable agent is also an error (11), not a success: the address is still held
// in the agent's journal, and a runtime retries a failed DEL, whereas a DEL reported as done is
// never retried and the address would wait for the agent's GC. A DEL of an address the agent does
// not hold (a second DEL) succeeds.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "node-agent/cni/skel.h"
#include "node-agent/cni/spec.h"
#include "node-agent/protocol.h"

namespace vnetipam::cni {

// One request to the agent. A transport failure is an base::Error; an agent's "no" is a Response
// with ok == false.
class AgentClient {
 public:
  virtual ~AgentClient() = default;
  virtual base::Result<agent::Response> call(const std::string& socketPath,
                                             const agent::Request& request,
                                             std::chrono::milliseconds timeout) = 0;
};

// Over the agent's unix socket (agent::callAgent).
class SocketAgentClient : public AgentClient {
 public:
  base::Result<agent::Response> call(const std::string& socketPath, const agent::Request& request,
                                     std::chrono::milliseconds timeout) override;
};

struct IpamConfig {
  std::string socket = std::string(agent::kDefaultSocketPath);
  std::chrono::milliseconds timeout{5000};
  int addressPrefixLength = 32;
  std::vector<RouteEntry> routes;  // filled with the default route unless configured
  bool routesConfigured = false;   // "routes" was given: used as is, for every family
};

// Code 7 naming the key and what would be valid.
Outcome<IpamConfig> parseIpamConfig(const NetConf& conf);

// K8S_POD_UID from CNI_ARGS (containerd and CRI-O pass it), or empty when the runtime did not.
// Sent with allocate so the agent's GC tells a pod from a later one of the same name.
std::string podUIDFromArgs(const Env& env);

// The handlers of vnet-ipam, talking to the agent through `client` (which must outlive them).
Plugin makeIpamPlugin(AgentClient& client);

}  // namespace vnetipam::cni
