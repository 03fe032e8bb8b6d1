#include "controller/options.h"

#include <fmt/format.h>

#include "lib/cli/options.h"

namespace vnetipam::controller {

namespace {

using Table = cli::SetterTable<ControllerOptions>;

const Table& setters() {
  static const Table table = {
      {"kubeconfig", Table::text(&ControllerOptions::kubeconfig)},
      {"cloud",
       [](ControllerOptions& o, const std::string& v) -> cli::ValueError {
         if (v == "azure") {
           o.cloud = CloudKind::kAzure;
         } else if (v == "none") {
           o.cloud = CloudKind::kNone;
         } else {
           return fmt::format("\"{}\" is not azure or none", v);
         }
         return std::nullopt;
       }},
      {"azure-config", Table::text(&ControllerOptions::azureConfig)},
      {"azure-ca-file", Table::text(&ControllerOptions::azureCaFile)},
      {"subnet-usage-period-seconds",
       Table::integer(&ControllerOptions::subnetUsagePeriodSeconds, 0, 86400)},
      {"metrics-address",
       Table::hostPort(&ControllerOptions::metricsAddress, cli::HostPart::kRequired)},
      {"leader-elect", Table::boolean(&ControllerOptions::leaderElect)},
      {"leader-election-namespace", Table::text(&ControllerOptions::leaderElectionNamespace)},
      {"leader-election-name", Table::text(&ControllerOptions::leaderElectionName)},
      {"leader-election-identity", Table::text(&ControllerOptions::leaderElectionIdentity)},
      {"workers", Table::integer(&ControllerOptions::workers, 1, 256)},
      {"kube-api-qps", Table::number(&ControllerOptions::kubeApiQps, 0)},
      {"kube-api-burst", Table::integer(&ControllerOptions::kubeApiBurst, 1, 100000)},
      {"nic-orphan-grace-seconds",
       Table::integer(&ControllerOptions::nicOrphanGraceSeconds, 0, 86400 * 7)},
      {"orphan-sweep-period-seconds",
       Table::integer(&ControllerOptions::orphanSweepPeriodSeconds, 0, 86400)},
      {"foreign-hold-seconds",
       Table::integer(&ControllerOptions::foreignHoldSeconds, 1, 86400 * 7)},
      {"azure-read-budget-per-5min",
       Table::integer(&ControllerOptions::azureReadBudgetPer5Min, 0, 1000000)},
      {"azure-write-budget-per-5min",
       Table::integer(&ControllerOptions::azureWriteBudgetPer5Min, 0, 1000000)},
      {"azure-read-reserve", Table::integer(&ControllerOptions::azureReadReserve, 0, 100000)},
      {"azure-write-reserve", Table::integer(&ControllerOptions::azureWriteReserve, 0, 100000)},
      {"azure-budget-time-scale", Table::number(&ControllerOptions::azureBudgetTimeScale, 0.001)},
      {"log-format", Table::logFormat(&ControllerOptions::logFormat)},
      {"log-level", Table::logLevel(&ControllerOptions::logLevel)},
  };
  return table;
}

}  // namespace

std::string_view usageText() {
  return "usage: vnet-ipam-controller [--config FILE] [--kubeconfig PATH] [--cloud azure|none]\n"
         "  [--azure-config PATH] [--azure-ca-file PATH] [--subnet-usage-period-seconds S]\n"
         "  [--metrics-address HOST:PORT]\n"
         "  [--leader-elect true|false] [--leader-election-namespace NS]\n"
         "  [--leader-election-name NAME] [--leader-election-identity ID] [--workers N]\n"
         "  [--kube-api-qps Q] [--kube-api-burst B] [--nic-orphan-grace-seconds S]\n"
         "  [--orphan-sweep-period-seconds S] [--foreign-hold-seconds S]\n"
         "  [--azure-read-budget-per-5min N] [--azure-write-budget-per-5min N]\n"
         "  [--azure-read-reserve N] [--azure-write-reserve N] [--azure-budget-time-scale X]\n"
         "  [--log-format text|json] [--log-level debug|info|warn|error]\n";
}

std::expected<ControllerOptions, std::string> parseOptions(std::span<const char* const> args) {
  return cli::parseCommandLine(args, setters());
}

}  // namespace vnetipam::controller
