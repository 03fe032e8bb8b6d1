// The machinery both daemons' command lines share. A daemon declares its options struct and one
// SetterTable<Options> naming each key (the flag without "--", the same key in the --config
// file); parseCommandLine() does the rest: split argv, apply every --config file, then the flags,
// so flags win over the file.
//
// Error texts, one line each, are part of the interface (tests and operators read them):
//   "--<flag>: <what>"  "unknown flag --<flag>"  "unexpected argument \"<arg>\""
//   "--config \"<path>\": <key>: <what>"  "--config \"<path>\": unknown option \"<key>\""
#pragma once

#include <expected>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace vnetipam::cli {

// What a value parser returns: nullopt when the value was accepted (and stored), else what is
// wrong with it, without the flag name ("\"x\" is not an integer in 1..256").
using ValueError = std::optional<std::string>;

// (key, value) in command-line order; the key has no leading "--".
using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct SplitArgs {
  KeyValues flags;
  std::vector<std::string> positional;  // in order; only with Positional::kAllowed
  bool help = false;  // --help or -h was given (the other arguments were not looked at further)
};

// Whether arguments that are not flags are accepted. The daemons take none: a stray word is a
// mistake there. A subcommand that names things to act on (install-cni PLUGIN...) takes them.
enum class Positional { kRefused, kAllowed };

// Splits argv[1..] into --key value / --key=value pairs. --help / -h wins over everything after.
// With kAllowed, an argument that does not start with '-' (and is not a flag's value) is a
// positional one; "-x" and a bare "--" are refused either way.
std::expected<SplitArgs, std::string> splitArgs(std::span<const char* const> args,
                                                Positional positional = Positional::kRefused);

// Calls `apply(key, value)` for each entry of the --config file at `path` (a YAML or JSON mapping
// of scalars; an empty file has none), in file order, stopping at the first error. `apply` returns
// the error without the file prefix ("workers: ..." or "unknown option \"x\""); this adds it.
std::optional<std::string> forEachConfigEntry(
    const std::string& path,
    const std::function<std::optional<std::string>(const std::string& key,
                                                   const std::string& value)>& apply);

// Value parsers: on success store into `out` and return nullopt.
ValueError parseInt(const std::string& text, int min, int max, int& out);
ValueError parseDouble(const std::string& text, double min, double& out);
ValueError parseBool(const std::string& text, bool& out);  // exactly "true" or "false"
ValueError nonEmpty(const std::string& text, std::string& out);

// HOST:PORT with a port in 0..65535. kRequired rejects an empty host (":9090").
enum class HostPart { kRequired, kOptional };
ValueError parseHostPort(const std::string& text, HostPart host, std::string& out);

enum class LogFormat { kText, kJson };
ValueError parseLogFormat(const std::string& text, LogFormat& out);   // text | json
ValueError parseLogLevel(const std::string& text, std::string& out);  // debug|info|warn|error

// The keys an options struct accepts and how each one is parsed into it.
template <typename Options>
class SetterTable {
 public:
  using Setter = std::function<ValueError(Options&, const std::string&)>;

  SetterTable(std::initializer_list<std::pair<const std::string, Setter>> entries)
      : setters_(entries) {}

  // Setters for the common shapes of member.
  static Setter text(std::string Options::*member) {
    return [member](Options& o, const std::string& v) { return nonEmpty(v, o.*member); };
  }
  static Setter integer(int Options::*member, int min, int max) {
    return [member, min, max](Options& o, const std::string& v) {
      return parseInt(v, min, max, o.*member);
    };
  }
  static Setter number(double Options::*member, double min) {
    return
        [member, min](Options& o, const std::string& v) { return parseDouble(v, min, o.*member); };
  }
  static Setter boolean(bool Options::*member) {
    return [member](Options& o, const std::string& v) { return parseBool(v, o.*member); };
  }
  static Setter hostPort(std::string Options::*member, HostPart host) {
    return [member, host](Options& o, const std::string& v) {
      return parseHostPort(v, host, o.*member);
    };
  }
  static Setter logFormat(LogFormat Options::*member) {
    return [member](Options& o, const std::string& v) { return parseLogFormat(v, o.*member); };
  }
  static Setter logLevel(std::string Options::*member) {
    return [member](Options& o, const std::string& v) { return parseLogLevel(v, o.*member); };
  }

  // Applies every --config file in `flags` (in order), then every other flag, onto `options`.
  std::optional<std::string> apply(Options& options, const KeyValues& flags) const {
    for (const auto& [key, value] : flags) {
      if (key != "config") continue;
      auto error = forEachConfigEntry(
          value, [&](const std::string& fileKey, const std::string& fileValue) -> ValueError {
            const auto found = setters_.find(fileKey);
            if (found == setters_.end()) return fmt::format("unknown option \"{}\"", fileKey);
            if (auto bad = found->second(options, fileValue)) {
              return fmt::format("{}: {}", fileKey, *bad);
            }
            return std::nullopt;
          });
      if (error) return error;
    }
    for (const auto& [key, value] : flags) {
      if (key == "config") continue;
      const auto found = setters_.find(key);
      if (found == setters_.end()) return fmt::format("unknown flag --{}", key);
      if (auto error = found->second(options, value)) {
        return fmt::format("--{}: {}", key, *error);
      }
    }
    return std::nullopt;
  }

 private:
  std::map<std::string, Setter, std::less<>> setters_;
};

// splitArgs + SetterTable::apply onto `options` (the defaults, and whatever the caller filled in
// from the environment). On --help returns a default Options with `help` set: Options needs a
// `bool help` member.
template <typename Options>
std::expected<Options, std::string> parseCommandLine(std::span<const char* const> args,
                                                     const SetterTable<Options>& table,
                                                     Options options = {}) {
  auto split = splitArgs(args);
  if (!split) return std::unexpected(std::move(split.error()));
  if (split->help) {
    Options help;
    help.help = true;
    return help;
  }
  if (auto error = table.apply(options, split->flags)) return std::unexpected(std::move(*error));
  return options;
}

}  // namespace vnetipam::cli
