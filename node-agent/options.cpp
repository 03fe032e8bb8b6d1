#include "node-agent/options.h"

#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "lib/cli/options.h"

namespace vnetipam::agent {

namespace {

using Table = cli::SetterTable<AgentOptions>;

const Table& setters() {
  static const Table table = {
      {"kubeconfig", Table::text(&AgentOptions::kubeconfig)},
      {"node-name", Table::text(&AgentOptions::nodeName)},
      {"socket", Table::text(&AgentOptions::socket)},
      {"state-dir", Table::text(&AgentOptions::stateDir)},
      {"cni-conf-dir", Table::text(&AgentOptions::cniConfDir)},
      {"cni-conf-name",
       [](AgentOptions& o, const std::string& v) -> cli::ValueError {
         if (v.empty() || v.find('/') != std::string::npos || v == "." || v == "..") {
           return fmt::format("\"{}\" is not a file name (no '/')", v);
         }
         o.cniConfName = v;
         return std::nullopt;
       }},
      {"host-veth-prefix",
       [](AgentOptions& o, const std::string& v) -> cli::ValueError {
         // Linux interface names are at most 15 bytes; the plugin appends a hash.
         if (v.empty() || v.size() > 11) {
           return fmt::format("\"{}\" must be 1 to 11 characters", v);
         }
         o.hostVethPrefix = v;
         return std::nullopt;
       }},
      {"mtu", Table::integer(&AgentOptions::mtu, 68, 65535)},
      {"chain-portmap", Table::boolean(&AgentOptions::chainPortmap)},
      // ":PORT" (every address) is accepted here, unlike the controller's flag.
      {"metrics-address", Table::hostPort(&AgentOptions::metricsAddress, cli::HostPart::kOptional)},
      {"gc-grace-seconds", Table::integer(&AgentOptions::gcGraceSeconds, 0, 86400 * 7)},
      {"release-cooldown-seconds", Table::integer(&AgentOptions::releaseCooldownSeconds, 0, 86400)},
      {"usage-report-interval-ms",
       Table::integer(&AgentOptions::usageReportIntervalMs, 10, 3'600'000)},
      {"dataplane-check-interval-seconds",
       Table::integer(&AgentOptions::dataplaneCheckIntervalSeconds, 1, 3600)},
      {"dataplane-grace-seconds", Table::integer(&AgentOptions::dataplaneGraceSeconds, 0, 3600)},
      {"api-wait-seconds", Table::integer(&AgentOptions::apiWaitSeconds, 0, 3600)},
      {"log-format", Table::logFormat(&AgentOptions::logFormat)},
      {"log-level", Table::logLevel(&AgentOptions::logLevel)},
  };
  return table;
}

}  // namespace

std::string_view usageText() {
  return "usage: vnet-ipam-agent [--config FILE] [--kubeconfig PATH] [--node-name NAME]\n"
         "  [--socket PATH] [--state-dir DIR] [--cni-conf-dir DIR] [--cni-conf-name NAME]\n"
         "  [--host-veth-prefix P] [--mtu N] [--chain-portmap true|false]\n"
         "  [--metrics-address HOST:PORT]\n"
         "  [--gc-grace-seconds S] [--release-cooldown-seconds S] [--usage-report-interval-ms MS]\n"
         "  [--dataplane-check-interval-seconds S] [--dataplane-grace-seconds S]\n"
         "  [--api-wait-seconds S]\n"
         "  [--log-format text|json] [--log-level debug|info|warn|error]\n"
         "--node-name defaults to $NODE_NAME and is required.\n"
         "       vnet-ipam-agent install-cni --dest-dir DIR [--source-dir DIR]... PLUGIN...\n"
         "copies CNI plugins into DIR for the runtime (install-cni --help says more).\n";
}

std::expected<AgentOptions, std::string> parseOptions(
    std::span<const char* const> args,
    const std::function<std::optional<std::string>(const char*)>& getenv) {
  AgentOptions defaults;
  if (auto env = getenv ? getenv("NODE_NAME") : [] -> std::optional<std::string> {
        const char* v = std::getenv("NODE_NAME");
        return v ? std::optional<std::string>(v) : std::nullopt;
      }()) {
    defaults.nodeName = *env;
  }
  auto options = cli::parseCommandLine(args, setters(), std::move(defaults));
  if (options && !options->help && options->nodeName.empty()) {
    return std::unexpected(std::string("--node-name: required (or set $NODE_NAME)"));
  }
  return options;
}

}  // namespace vnetipam::agent
