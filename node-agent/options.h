// The agent's command line and --config file (YAML or JSON, the same keys as the flags without the
// leading "--"). Flags win over the file. The list is the one in the contracts between the parts
// (vnet-ipam-agent flags); usageText() repeats it.
#pragma once

#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "lib/cli/options.h"

namespace vnetipam::agent {

using LogFormat = cli::LogFormat;

struct AgentOptions {
  std::string kubeconfig;  // empty: in-cluster
  std::string nodeName;    // default $NODE_NAME; required
  std::string socket = "/run/vnet-ipam/agent.sock";
  std::string stateDir = "/var/lib/vnet-ipam";
  std::string cniConfDir = "/etc/cni/net.d";
  std::string cniConfName = "10-vnet-ipam.conflist";
  std::string hostVethPrefix = "vnet";
  int mtu = 1500;
  // Chain the reference portmap plugin (hostPort) after vnet-transparent in the CNI config. Off
  // when portmap is not installed in the runtime's CNI bin directory: a chained plugin that is
  // missing fails every DEL.
  bool chainPortmap = true;
  std::string metricsAddress = "0.0.0.0:9091";
  int gcGraceSeconds = 60;
  int releaseCooldownSeconds = 30;
  int usageReportIntervalMs = 1000;
  // How often the agent compares its allocations with the host's routes and links (also once
  // right after the first sync), and how long a new allocation may lack its host route before a
  // single check counts it (the CNI plugin allocates first and wires afterwards).
  int dataplaneCheckIntervalSeconds = 30;
  int dataplaneGraceSeconds = 10;
  // How long a starting agent waits for the API server before it serves the blocks persisted in
  // its state dir (served-blocks) instead.
  int apiWaitSeconds = 5;
  LogFormat logFormat = LogFormat::kText;
  std::string logLevel = "info";
  bool help = false;
};

// Parses argv[1..] (and the --config file they name). `getenv` supplies NODE_NAME (default:
// std::getenv). The error is one line naming the flag or the file and what would be valid.
std::expected<AgentOptions, std::string> parseOptions(
    std::span<const char* const> args,
    const std::function<std::optional<std::string>(const char*)>& getenv = {});

std::string_view usageText();

}  // namespace vnetipam::agent
