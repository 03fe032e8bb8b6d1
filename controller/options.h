// The controller's command line and --config file (YAML or JSON, the same keys as the flags
// without the leading "--"). Flags win over the file; --help lists them.
#pragma once

#include <expected>
#include <span>
#include <string>
#include <string_view>

#include "lib/cli/options.h"

namespace vnetipam::controller {

enum class CloudKind { kAzure, kNone };
using LogFormat = cli::LogFormat;

struct ControllerOptions {
  std::string kubeconfig;  // empty: in-cluster
  CloudKind cloud = CloudKind::kAzure;
  std::string azureConfig = "/etc/kubernetes/azure.json";
  std::string azureCaFile;
  // How often the VNETs' usage lists are read for the addresses others hold in each PodSubnet's
  // Azure subnet (controller/subnet_usage.h); 0 never reads them.
  int subnetUsagePeriodSeconds = 300;
  std::string metricsAddress = "0.0.0.0:9090";
  bool leaderElect = true;
  std::string leaderElectionNamespace = "kube-system";
  std::string leaderElectionName = "vnet-ipam-controller";
  std::string leaderElectionIdentity;  // empty: <hostname>_<pid>, filled in by main
  int workers = 4;
  double kubeApiQps = 50;
  int kubeApiBurst = 100;
  int nicOrphanGraceSeconds = 120;
  LogFormat logFormat = LogFormat::kText;
  std::string logLevel = "info";
  bool help = false;
};

// Parses argv[1..] (and the --config file they name). The error is one line naming the flag or
// the file and what would be valid.
std::expected<ControllerOptions, std::string> parseOptions(std::span<const char* const> args);

std::string_view usageText();

}  // namespace vnetipam::controller
