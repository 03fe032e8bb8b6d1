#include "controller/options.h"

#include <charconv>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vnetipam::controller {

namespace {

using Setter = std::function<std::optional<std::string>(ControllerOptions&, const std::string&)>;

std::optional<std::string> parseInt(const std::string& text, int min, int max, int& out) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return fmt::format("\"{}\" is not an integer in {}..{}", text, min, max);
  }
  out = value;
  return std::nullopt;
}

std::optional<std::string> parseDouble(const std::string& text, double min, double& out) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min) {
    return fmt::format("\"{}\" is not a number >= {}", text, min);
  }
  out = value;
  return std::nullopt;
}

std::optional<std::string> parseBool(const std::string& text, bool& out) {
  if (text == "true") {
    out = true;
  } else if (text == "false") {
    out = false;
  } else {
    return fmt::format("\"{}\" is not true or false", text);
  }
  return std::nullopt;
}

std::optional<std::string> nonEmpty(const std::string& text, std::string& out) {
  if (text.empty()) return std::string("must not be empty");
  out = text;
  return std::nullopt;
}

const std::map<std::string, Setter, std::less<>>& setters() {
  static const std::map<std::string, Setter, std::less<>> table = {
      {"kubeconfig",
       [](ControllerOptions& o, const std::string& v) { return nonEmpty(v, o.kubeconfig); }},
      {"cloud",
       [](ControllerOptions& o, const std::string& v) -> std::optional<std::string> {
         if (v == "azure") {
           o.cloud = CloudKind::kAzure;
         } else if (v == "none") {
           o.cloud = CloudKind::kNone;
         } else {
           return fmt::format("\"{}\" is not azure or none", v);
         }
         return std::nullopt;
       }},
      {"azure-config",
       [](ControllerOptions& o, const std::string& v) { return nonEmpty(v, o.azureConfig); }},
      {"azure-ca-file",
       [](ControllerOptions& o, const std::string& v) { return nonEmpty(v, o.azureCaFile); }},
      {"metrics-address",
       [](ControllerOptions& o, const std::string& v) -> std::optional<std::string> {
         const auto colon = v.rfind(':');
         int port = 0;
         if (colon == std::string::npos || colon == 0 ||
             parseInt(v.substr(colon + 1), 0, 65535, port)) {
           return fmt::format("\"{}\" is not HOST:PORT", v);
         }
         o.metricsAddress = v;
         return std::nullopt;
       }},
      {"leader-elect",
       [](ControllerOptions& o, const std::string& v) { return parseBool(v, o.leaderElect); }},
      {"leader-election-namespace",
       [](ControllerOptions& o, const std::string& v) {
         return nonEmpty(v, o.leaderElectionNamespace);
       }},
      {"leader-election-name",
       [](ControllerOptions& o, const std::string& v) {
         return nonEmpty(v, o.leaderElectionName);
       }},
      {"leader-election-identity",
       [](ControllerOptions& o, const std::string& v) {
         return nonEmpty(v, o.leaderElectionIdentity);
       }},
      {"workers",
       [](ControllerOptions& o, const std::string& v) { return parseInt(v, 1, 256, o.workers); }},
      {"kube-api-qps",
       [](ControllerOptions& o, const std::string& v) { return parseDouble(v, 0, o.kubeApiQps); }},
      {"kube-api-burst",
       [](ControllerOptions& o, const std::string& v) {
         return parseInt(v, 1, 100000, o.kubeApiBurst);
       }},
      {"nic-orphan-grace-seconds",
       [](ControllerOptions& o, const std::string& v) {
         return parseInt(v, 0, 86400 * 7, o.nicOrphanGraceSeconds);
       }},
      {"log-format",
       [](ControllerOptions& o, const std::string& v) -> std::optional<std::string> {
         if (v == "text") {
           o.logFormat = LogFormat::kText;
         } else if (v == "json") {
           o.logFormat = LogFormat::kJson;
         } else {
           return fmt::format("\"{}\" is not text or json", v);
         }
         return std::nullopt;
       }},
      {"log-level",
       [](ControllerOptions& o, const std::string& v) -> std::optional<std::string> {
         if (v != "debug" && v != "info" && v != "warn" && v != "error") {
           return fmt::format("\"{}\" is not debug, info, warn or error", v);
         }
         o.logLevel = v;
         return std::nullopt;
       }},
  };
  return table;
}

std::optional<std::string> set(ControllerOptions& options, std::string_view key,
                               const std::string& value, std::string_view origin) {
  const auto found = setters().find(key);
  if (found == setters().end()) return fmt::format("{}: unknown option \"{}\"", origin, key);
  if (auto error = found->second(options, value)) {
    return fmt::format("{}: {}: {}", origin, key, *error);
  }
  return std::nullopt;
}

std::optional<std::string> loadConfigFile(ControllerOptions& options, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return fmt::format("--config \"{}\": cannot read the file", path);
  } catch (const YAML::Exception& e) {
    return fmt::format("--config \"{}\": not YAML or JSON: {}", path, e.what());
  }
  if (root.IsNull()) return std::nullopt;
  if (!root.IsMap()) return fmt::format("--config \"{}\": expected a mapping of options", path);
  const std::string origin = fmt::format("--config \"{}\"", path);
  for (const auto& item : root) {
    const std::string key = item.first.as<std::string>();
    if (!item.second.IsScalar()) {
      return fmt::format("{}: {}: expected a single value", origin, key);
    }
    if (auto error = set(options, key, item.second.as<std::string>(), origin)) return error;
  }
  return std::nullopt;
}

}  // namespace

std::string_view usageText() {
  return "usage: vnet-ipam-controller [--config FILE] [--kubeconfig PATH] [--cloud azure|none]\n"
         "  [--azure-config PATH] [--azure-ca-file PATH] [--metrics-address HOST:PORT]\n"
         "  [--leader-elect true|false] [--leader-election-namespace NS]\n"
         "  [--leader-election-name NAME] [--leader-election-identity ID] [--workers N]\n"
         "  [--kube-api-qps Q] [--kube-api-burst B] [--nic-orphan-grace-seconds S]\n"
         "  [--log-format text|json] [--log-level debug|info|warn|error]\n";
}

std::expected<ControllerOptions, std::string> parseOptions(std::span<const char* const> args) {
  // Split into (key, value) first: --key value or --key=value.
  std::vector<std::pair<std::string, std::string>> flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      ControllerOptions help;
      help.help = true;
      return help;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      return std::unexpected(fmt::format("unexpected argument \"{}\"", arg));
    }
    const std::string_view body = arg.substr(2);
    const auto eq = body.find('=');
    if (eq != std::string_view::npos) {
      flags.emplace_back(std::string(body.substr(0, eq)), std::string(body.substr(eq + 1)));
      continue;
    }
    if (i + 1 >= args.size()) return std::unexpected(fmt::format("--{}: missing value", body));
    flags.emplace_back(std::string(body), std::string(args[++i]));
  }

  ControllerOptions options;
  for (const auto& [key, value] : flags) {
    if (key != "config") continue;
    if (auto error = loadConfigFile(options, value)) return std::unexpected(*error);
  }
  for (const auto& [key, value] : flags) {
    if (key == "config") continue;
    const auto found = setters().find(key);
    if (found == setters().end()) return std::unexpected(fmt::format("unknown flag --{}", key));
    if (auto error = found->second(options, value)) {
      return std::unexpected(fmt::format("--{}: {}", key, *error));
    }
  }
  return options;
}

}  // namespace vnetipam::controller
