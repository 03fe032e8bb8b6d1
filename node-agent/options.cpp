#include "node-agent/options.h"

#include <charconv>
#include <cstdlib>
#include <map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vnetipam::agent {

namespace {

using Setter = std::function<std::optional<std::string>(AgentOptions&, const std::string&)>;

std::optional<std::string> parseInt(const std::string& text, int min, int max, int& out) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return fmt::format("\"{}\" is not an integer in {}..{}", text, min, max);
  }
  out = value;
  return std::nullopt;
}

std::optional<std::string> nonEmpty(const std::string& text, std::string& out) {
  if (text.empty()) return std::string("must not be empty");
  out = text;
  return std::nullopt;
}

Setter stringSetter(std::string AgentOptions::*member) {
  return [member](AgentOptions& o, const std::string& v) { return nonEmpty(v, o.*member); };
}

Setter intSetter(int AgentOptions::*member, int min, int max) {
  return [member, min, max](AgentOptions& o, const std::string& v) {
    return parseInt(v, min, max, o.*member);
  };
}

const std::map<std::string, Setter, std::less<>>& setters() {
  static const std::map<std::string, Setter, std::less<>> table = {
      {"kubeconfig", stringSetter(&AgentOptions::kubeconfig)},
      {"node-name", stringSetter(&AgentOptions::nodeName)},
      {"socket", stringSetter(&AgentOptions::socket)},
      {"state-dir", stringSetter(&AgentOptions::stateDir)},
      {"cni-conf-dir", stringSetter(&AgentOptions::cniConfDir)},
      {"cni-conf-name",
       [](AgentOptions& o, const std::string& v) -> std::optional<std::string> {
         if (v.empty() || v.find('/') != std::string::npos || v == "." || v == "..") {
           return fmt::format("\"{}\" is not a file name (no '/')", v);
         }
         o.cniConfName = v;
         return std::nullopt;
       }},
      {"host-veth-prefix",
       [](AgentOptions& o, const std::string& v) -> std::optional<std::string> {
         // Linux interface names are at most 15 bytes; the plugin appends a hash.
         if (v.empty() || v.size() > 11) {
           return fmt::format("\"{}\" must be 1 to 11 characters", v);
         }
         o.hostVethPrefix = v;
         return std::nullopt;
       }},
      {"mtu", intSetter(&AgentOptions::mtu, 68, 65535)},
      {"metrics-address",
       [](AgentOptions& o, const std::string& v) -> std::optional<std::string> {
         const auto colon = v.rfind(':');
         int port = 0;
         if (colon == std::string::npos || parseInt(v.substr(colon + 1), 0, 65535, port)) {
           return fmt::format("\"{}\" is not HOST:PORT", v);
         }
         o.metricsAddress = v;
         return std::nullopt;
       }},
      {"gc-grace-seconds", intSetter(&AgentOptions::gcGraceSeconds, 0, 86400 * 7)},
      {"release-cooldown-seconds", intSetter(&AgentOptions::releaseCooldownSeconds, 0, 86400)},
      {"usage-report-interval-ms", intSetter(&AgentOptions::usageReportIntervalMs, 10, 3'600'000)},
      {"log-format",
       [](AgentOptions& o, const std::string& v) -> std::optional<std::string> {
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
       [](AgentOptions& o, const std::string& v) -> std::optional<std::string> {
         if (v != "debug" && v != "info" && v != "warn" && v != "error") {
           return fmt::format("\"{}\" is not debug, info, warn or error", v);
         }
         o.logLevel = v;
         return std::nullopt;
       }},
  };
  return table;
}

std::optional<std::string> loadConfigFile(AgentOptions& options, const std::string& path) {
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
  for (const auto& item : root) {
    const std::string key = item.first.as<std::string>();
    if (!item.second.IsScalar()) {
      return fmt::format("--config \"{}\": {}: expected a single value", path, key);
    }
    const auto found = setters().find(key);
    if (found == setters().end()) {
      return fmt::format("--config \"{}\": unknown option \"{}\"", path, key);
    }
    if (auto error = found->second(options, item.second.as<std::string>())) {
      return fmt::format("--config \"{}\": {}: {}", path, key, *error);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view usageText() {
  return "usage: vnet-ipam-agent [--config FILE] [--kubeconfig PATH] [--node-name NAME]\n"
         "  [--socket PATH] [--state-dir DIR] [--cni-conf-dir DIR] [--cni-conf-name NAME]\n"
         "  [--host-veth-prefix P] [--mtu N] [--metrics-address HOST:PORT]\n"
         "  [--gc-grace-seconds S] [--release-cooldown-seconds S] [--usage-report-interval-ms MS]\n"
         "  [--log-format text|json] [--log-level debug|info|warn|error]\n"
         "--node-name defaults to $NODE_NAME and is required.\n";
}

std::expected<AgentOptions, std::string> parseOptions(
    std::span<const char* const> args,
    const std::function<std::optional<std::string>(const char*)>& getenv) {
  std::vector<std::pair<std::string, std::string>> flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      AgentOptions help;
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

  AgentOptions options;
  if (auto env = getenv ? getenv("NODE_NAME") : [] -> std::optional<std::string> {
        const char* v = std::getenv("NODE_NAME");
        return v ? std::optional<std::string>(v) : std::nullopt;
      }()) {
    options.nodeName = *env;
  }
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
  if (options.nodeName.empty()) {
    return std::unexpected(std::string("--node-name: required (or set $NODE_NAME)"));
  }
  return options;
}

}  // namespace vnetipam::agent
