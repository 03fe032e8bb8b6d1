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
  // How often the orphan sweep (controller/orphan_sweep.h) reads the PodSubnets' Azure subnets for
  // prefixes on NICs of no Node; 0 never sweeps. Its grace is nicOrphanGraceSeconds.
  int orphanSweepPeriodSeconds = 300;
  // A block's CIDR is not carved again for this long after Azure refused its prefix because
  // another resource holds an address in it (ControllerConfig::foreignHold).
  int foreignHoldSeconds = 600;
  // The ARM pacer (lib/azure/arm_pacer.h): this process's share of the subscription's ARM
  // requests per 5 minutes, half the Network RP's limits (10,000 reads, 1,000 writes) because
  // other tools use the subscription too; 0 turns pacing off. A class is held while a
  // remaining count Azure sends is under its reserve.
  int azureReadBudgetPer5Min = 5000;
  int azureWriteBudgetPer5Min = 500;
  int azureReadReserve = 50;
  int azureWriteReserve = 20;
  // Runs the pacer this many times faster, to match azure-vnet-mock --time-scale in benchmarks.
  double azureBudgetTimeScale = 1;
  LogFormat logFormat = LogFormat::kText;
  std::string logLevel = "info";
  bool help = false;
};

// Parses argv[1..] (and the --config file they name). The error is one line naming the flag or
// the file and what would be valid.
std::expected<ControllerOptions, std::string> parseOptions(std::span<const char* const> args);

std::string_view usageText();

}  // namespace vnetipam::controller
