// The command line of kubectl-ipam, and where its kubeconfig comes from. Pure: the environment
// is passed in, so both are unit-tested.
//
// kubectl runs a plugin with the words after `kubectl ipam`: `kubectl ipam show --node n1` runs
// `kubectl-ipam show --node n1`. kubectl does not pass its own global flags (given before `ipam`)
// to a plugin, so --kubeconfig and --context must come after the command, as here.
#pragma once

#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>

namespace vnetipam::kubectl_ipam {

enum class Command { kHelp, kShow, kCheck, kWhy, kRelease };
enum class Output { kTable, kJson };

struct Args {
  Command command = Command::kHelp;
  Output output = Output::kTable;
  std::string kubeconfig;   // --kubeconfig
  std::string context;      // --context
  std::string node;         // show --node
  std::string podSubnet;    // check --podsubnet: only this PodSubnet's blocks and nodes
  std::string pod;          // why POD
  std::string ns;           // why -n/--namespace; empty: "default"
  std::string fromReport;   // release --from-report FILE: a `check -o json` report ("-": stdin)
  bool dryRun = false;      // release --dry-run: print the requests, write nothing
  int timeoutSeconds = 60;  // release --timeout: how long to wait for the agents' answers
};

// argv[1..]. Errors are one line: "unknown flag --x", "show: unexpected argument \"y\"", ...
std::expected<Args, std::string> parseArgs(std::span<const char* const> args);

// The usage text of --help.
std::string usage();

// Which kubeconfig file to read, as kubectl picks it: --kubeconfig, else the first file of
// $KUBECONFIG (a colon-separated list: kubectl merges them, this reads only the first), else
// ~/.kube/config. An error when none can be named.
using GetEnv = std::function<std::optional<std::string>(const char*)>;
std::expected<std::string, std::string> kubeconfigPath(const Args& args, const GetEnv& getenv);

}  // namespace vnetipam::kubectl_ipam
