#include "lib/cli/options.h"

#include <charconv>

#include <yaml-cpp/yaml.h>

#include "lib/base/host_port.h"

namespace vnetipam::cli {

std::expected<SplitArgs, std::string> splitArgs(std::span<const char* const> args,
                                                Positional positional) {
  SplitArgs split;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      split.help = true;
      return split;
    }
    if (positional == Positional::kAllowed && !arg.empty() && !arg.starts_with('-')) {
      split.positional.emplace_back(arg);
      continue;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      return std::unexpected(fmt::format("unexpected argument \"{}\"", arg));
    }
    const std::string_view body = arg.substr(2);
    const auto eq = body.find('=');
    if (eq != std::string_view::npos) {
      split.flags.emplace_back(std::string(body.substr(0, eq)), std::string(body.substr(eq + 1)));
      continue;
    }
    if (i + 1 >= args.size()) return std::unexpected(fmt::format("--{}: missing value", body));
    split.flags.emplace_back(std::string(body), std::string(args[++i]));
  }
  return split;
}

std::optional<std::string> forEachConfigEntry(
    const std::string& path,
    const std::function<std::optional<std::string>(const std::string& key,
                                                   const std::string& value)>& apply) {
  const std::string origin = fmt::format("--config \"{}\"", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return fmt::format("{}: cannot read the file", origin);
  } catch (const YAML::Exception& e) {
    return fmt::format("{}: not YAML or JSON: {}", origin, e.what());
  }
  if (root.IsNull()) return std::nullopt;
  if (!root.IsMap()) return fmt::format("{}: expected a mapping of options", origin);
  for (const auto& item : root) {
    const std::string key = item.first.as<std::string>();
    if (!item.second.IsScalar()) {
      return fmt::format("{}: {}: expected a single value", origin, key);
    }
    if (auto error = apply(key, item.second.as<std::string>())) {
      return fmt::format("{}: {}", origin, *error);
    }
  }
  return std::nullopt;
}

ValueError parseInt(const std::string& text, int min, int max, int& out) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return fmt::format("\"{}\" is not an integer in {}..{}", text, min, max);
  }
  out = value;
  return std::nullopt;
}

ValueError parseDouble(const std::string& text, double min, double& out) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min) {
    return fmt::format("\"{}\" is not a number >= {}", text, min);
  }
  out = value;
  return std::nullopt;
}

ValueError parseBool(const std::string& text, bool& out) {
  if (text == "true") {
    out = true;
  } else if (text == "false") {
    out = false;
  } else {
    return fmt::format("\"{}\" is not true or false", text);
  }
  return std::nullopt;
}

ValueError nonEmpty(const std::string& text, std::string& out) {
  if (text.empty()) return std::string("must not be empty");
  out = text;
  return std::nullopt;
}

ValueError parseHostPort(const std::string& text, HostPart host, std::string& out) {
  const auto split = base::splitHostPort(text);
  if (!split || (host == HostPart::kRequired && split->host.empty())) {
    return fmt::format("\"{}\" is not HOST:PORT", text);
  }
  out = text;
  return std::nullopt;
}

ValueError parseLogFormat(const std::string& text, LogFormat& out) {
  if (text == "text") {
    out = LogFormat::kText;
  } else if (text == "json") {
    out = LogFormat::kJson;
  } else {
    return fmt::format("\"{}\" is not text or json", text);
  }
  return std::nullopt;
}

ValueError parseLogLevel(const std::string& text, std::string& out) {
  if (text != "debug" && text != "info" && text != "warn" && text != "error") {
    return fmt::format("\"{}\" is not debug, info, warn or error", text);
  }
  out = text;
  return std::nullopt;
}

}  // namespace vnetipam::cli
