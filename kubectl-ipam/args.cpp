#include "kubectl-ipam/args.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace vnetipam::kubectl_ipam {

std::string usage() {
  return R"(kubectl ipam: where vnet-ipam's addresses are, whether they are consistent, and why a
pod has none, and the release of leaked addresses. Reads the API (PodSubnets, IPBlocks, Nodes,
Pods, Events); only release writes (an annotation on the IPBlocks it names).

Usage:
  kubectl ipam show [--node NODE]     each PodSubnet's blocks and addresses; with --node, the
                                      node's blocks and the pods holding addresses on it
  kubectl ipam check [--podsubnet P]  consistency report; exit 0 when clean, 1 with problems;
                                      with --podsubnet, only P's blocks and the nodes it serves
  kubectl ipam why POD [-n NS]        why a pod has no address, most likely cause first
  kubectl ipam release --from-report FILE [--dry-run] [--timeout SECONDS]
                                      asks each node's agent to release the leaked allocations
                                      a `check -o json` report names (FILE "-": stdin); the
                                      agent releases only an owner it can prove dead. Prints
                                      each address released, refused (why) or timed out; exit
                                      0 only when all were released. --dry-run writes nothing

Flags (after the command):
  -o, --output table|json   output format (default table)
  -n, --namespace NS        the pod's namespace (why; default "default")
  --kubeconfig FILE         default: the first file of $KUBECONFIG, else ~/.kube/config
  --context NAME            a context of the kubeconfig (default: its current-context)
  -h, --help                this text

Exit status: 0 success (check: clean; release: all released), 1 check found problems or release
did not release them all, 2 usage, config or API error.
)";
}

namespace {

// A flag as given: its name ("o" and "n" already read as "output" and "namespace"), and its
// value when the same word holds it (--key=value, -kvalue, -k=value).
struct Flag {
  std::string key;
  std::optional<std::string> value;
};

// Splits a word that starts with '-' (and is not "-") into a Flag.
Flag splitFlag(std::string_view arg) {
  Flag flag;
  if (arg.starts_with("--")) {
    const auto body = arg.substr(2);
    const auto eq = body.find('=');
    flag.key = std::string(body.substr(0, eq));
    if (eq != std::string_view::npos) flag.value = std::string(body.substr(eq + 1));
  } else if (arg.size() >= 2) {
    flag.key = std::string(arg.substr(1, 1));
    if (arg.size() > 2) flag.value = std::string(arg.substr(arg[2] == '=' ? 3 : 2));
  }
  if (flag.key == "o") flag.key = "output";
  if (flag.key == "n") flag.key = "namespace";
  return flag;
}

// The value of --output: json, or table (also "wide").
std::expected<Output, std::string> parseOutput(const std::string& value) {
  if (value == "json") return Output::kJson;
  if (value == "table" || value == "wide") return Output::kTable;
  return std::unexpected(fmt::format("--output: \"{}\" is not table or json", value));
}

// The value of --timeout: a number of seconds from 1 to 3600, with or without an "s".
std::expected<int, std::string> parseTimeout(const std::string& value) {
  std::string_view v = value;
  if (v.ends_with('s')) v.remove_suffix(1);
  int seconds = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (ec != std::errc() || end != v.data() + v.size() || seconds < 1 || seconds > 3600) {
    return std::unexpected(
        fmt::format("--timeout: \"{}\" is not a number of seconds from 1 to 3600", value));
  }
  return seconds;
}

// Sets the field of `args` that the flag `key` (one of kKeys in readFlags) names.
std::expected<void, std::string> setFlag(const std::string& key, const std::string& value,
                                         Args& args) {
  if (key == "output") {
    const auto output = parseOutput(value);
    if (!output) return std::unexpected(output.error());
    args.output = *output;
  } else if (key == "namespace") {
    args.ns = value;
  } else if (key == "kubeconfig") {
    args.kubeconfig = value;
  } else if (key == "context") {
    args.context = value;
  } else if (key == "node") {
    args.node = value;
  } else if (key == "podsubnet") {
    args.podSubnet = value;
  } else if (key == "from-report") {
    args.fromReport = value;
  } else if (key == "timeout") {
    const auto seconds = parseTimeout(value);
    if (!seconds) return std::unexpected(seconds.error());
    args.timeoutSeconds = *seconds;
  }
  return {};
}

// What the command line holds besides the flags readFlags sets in Args.
struct Words {
  std::vector<std::string> positional;  // the command and its arguments
  bool sawHelp = false;
  bool sawTimeout = false;  // --timeout given (only for release)
};

// Reads every flag of `argv` into `args`, in order; the first error ends it.
std::expected<Words, std::string> readFlags(std::span<const char* const> argv, Args& args) {
  Words words;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      words.sawHelp = true;
      continue;
    }
    if (arg == "--dry-run") {
      args.dryRun = true;
      continue;
    }
    if (!arg.starts_with('-') || arg == "-") {
      words.positional.emplace_back(arg);
      continue;
    }
    auto [key, value] = splitFlag(arg);
    static const std::vector<std::string> kKeys{"output", "namespace", "kubeconfig",  "context",
                                                "node",   "podsubnet", "from-report", "timeout"};
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      return std::unexpected(fmt::format("unknown flag {}", arg));
    }
    if (!value) {
      if (i + 1 >= argv.size()) return std::unexpected(fmt::format("--{}: missing value", key));
      value = argv[++i];
    }
    if (value->empty()) return std::unexpected(fmt::format("--{}: empty value", key));
    if (auto applied = setFlag(key, *value, args); !applied)
      return std::unexpected(applied.error());
    if (key == "timeout") words.sawTimeout = true;
  }
  return words;
}

// The command, positional.front(), and its arguments: show and check take none, why the pod,
// release none but needs --from-report.
std::expected<void, std::string> readCommand(const std::vector<std::string>& positional,
                                             Args& args) {
  const std::string& command = positional.front();
  const std::size_t extra = positional.size() - 1;
  if (command == "show") {
    args.command = Command::kShow;
    if (extra > 0)
      return std::unexpected(fmt::format("show: unexpected argument \"{}\"", positional[1]));
  } else if (command == "check") {
    args.command = Command::kCheck;
    if (extra > 0)
      return std::unexpected(fmt::format("check: unexpected argument \"{}\"", positional[1]));
  } else if (command == "why") {
    args.command = Command::kWhy;
    if (extra == 0) return std::unexpected("why: name the pod: kubectl ipam why POD [-n NS]");
    if (extra > 1)
      return std::unexpected(fmt::format("why: unexpected argument \"{}\"", positional[2]));
    args.pod = positional[1];
  } else if (command == "release") {
    args.command = Command::kRelease;
    if (extra > 0)
      return std::unexpected(fmt::format("release: unexpected argument \"{}\"", positional[1]));
    if (args.fromReport.empty()) {
      return std::unexpected(
          "release: name the report: kubectl ipam release --from-report FILE (from check -o json)");
    }
  } else {
    return std::unexpected(
        fmt::format("unknown command \"{}\": show, check, why or release", command));
  }
  return {};
}

// Refuses a flag given with a command it is not for.
std::expected<void, std::string> checkFlagsFitCommand(const Args& args, bool sawTimeout) {
  if (args.command != Command::kRelease &&
      (!args.fromReport.empty() || args.dryRun || sawTimeout)) {
    return std::unexpected("--from-report, --dry-run and --timeout: only for release");
  }
  if (!args.node.empty() && args.command != Command::kShow) {
    return std::unexpected("--node: only for show");
  }
  if (!args.podSubnet.empty() && args.command != Command::kCheck) {
    return std::unexpected("--podsubnet: only for check");
  }
  if (!args.ns.empty() && args.command != Command::kWhy) {
    return std::unexpected("--namespace: only for why");
  }
  return {};
}

}  // namespace

std::expected<Args, std::string> parseArgs(std::span<const char* const> argv) {
  Args args;
  const auto words = readFlags(argv, args);
  if (!words) return std::unexpected(words.error());
  if (words->sawHelp || words->positional.empty()) {
    if (!words->sawHelp && words->positional.empty()) {
      return std::unexpected("no command: show, check, why or release");
    }
    args.command = Command::kHelp;
    return args;
  }
  if (auto command = readCommand(words->positional, args); !command) {
    return std::unexpected(command.error());
  }
  if (auto fit = checkFlagsFitCommand(args, words->sawTimeout); !fit) {
    return std::unexpected(fit.error());
  }
  if (args.ns.empty()) args.ns = "default";
  return args;
}

std::expected<std::string, std::string> kubeconfigPath(const Args& args, const GetEnv& getenv) {
  if (!args.kubeconfig.empty()) return args.kubeconfig;
  if (auto list = getenv("KUBECONFIG"); list && !list->empty()) {
    // kubectl merges every file of the list; the first is where its current-context usually is.
    for (std::size_t start = 0; start <= list->size();) {
      const auto colon = list->find(':', start);
      const auto end = colon == std::string::npos ? list->size() : colon;
      if (end > start) return list->substr(start, end - start);
      start = end + 1;
    }
  }
  if (auto home = getenv("HOME"); home && !home->empty()) return *home + "/.kube/config";
  return std::unexpected("no kubeconfig: give --kubeconfig, or set KUBECONFIG or HOME");
}

}  // namespace vnetipam::kubectl_ipam
