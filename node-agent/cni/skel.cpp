#include "node-agent/cni/skel.h"

#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <unistd.h>

#include "node-agent/cni/input_bounds.h"

extern char** environ;  // NOLINT: POSIX

namespace vnetipam::cni {
namespace {

Invocation failed(const Error& error, std::string_view version) {
  return {.exitCode = 1, .out = errorJson(error, version) + "\n"};
}

Outcome<void> requireAtLeast(const NetConf& conf, Command command, std::string_view minimum) {
  if (compareVersions(conf.cniVersion, minimum) >= 0) return {};
  return failWith(kIncompatibleVersion,
                  fmt::format("{} needs cniVersion {} or later; the configuration says \"{}\"",
                              toString(command), minimum, conf.cniVersion));
}

Invocation versionInfo(std::string_view stdinText) {
  // The runtime may send any config (or none): answer in its version if we speak it.
  const auto doc = parseBoundedJson(stdinText, "stdin");
  std::string version(kLatestVersion);
  if (doc && doc->is_object() && doc->contains("cniVersion") && (*doc)["cniVersion"].is_string() &&
      isSupportedVersion((*doc)["cniVersion"].get<std::string>())) {
    version = (*doc)["cniVersion"].get<std::string>();
  }
  nlohmann::json info = {{"cniVersion", version}, {"supportedVersions", nlohmann::json::array()}};
  for (const auto v : kSupportedVersions)
    info["supportedVersions"].push_back(v);
  return {.exitCode = 0, .out = dumpJson(info) + "\n"};
}

Invocation dispatch(const Plugin& plugin, const std::map<std::string, std::string>& environment,
                    std::string_view stdinText) {
  auto env = parseEnv(environment);
  if (!env) return failed(env.error(), kLatestVersion);
  if (env->command == Command::kVersion) return versionInfo(stdinText);

  auto conf = parseNetConf(stdinText);
  if (!conf) return failed(conf.error(), kLatestVersion);
  const std::string& version = conf->cniVersion;

  const auto unsupported = [&]() {
    return failed(Error{kUnsupportedField, fmt::format("{} does not implement {}", plugin.name,
                                                       toString(env->command))},
                  version);
  };
  const auto finish = [&](const Outcome<void>& outcome) -> Invocation {
    if (!outcome) return failed(outcome.error(), version);
    return {};
  };
  switch (env->command) {
    case Command::kAdd: {
      if (!plugin.add) return unsupported();
      auto result = plugin.add(*env, *conf);
      if (!result) return failed(result.error(), version);
      return {.exitCode = 0, .out = dumpJson(toJson(*result, version)) + "\n"};
    }
    case Command::kDel:
      if (!plugin.del) return unsupported();
      return finish(plugin.del(*env, *conf));
    case Command::kCheck:
      if (auto ok = requireAtLeast(*conf, Command::kCheck, "0.4.0"); !ok) return finish(ok);
      if (!plugin.check) return unsupported();
      return finish(plugin.check(*env, *conf));
    case Command::kGc:
      if (auto ok = requireAtLeast(*conf, Command::kGc, "1.1.0"); !ok) return finish(ok);
      if (!plugin.gc) return unsupported();
      return finish(plugin.gc(*env, *conf));
    case Command::kStatus:
      if (auto ok = requireAtLeast(*conf, Command::kStatus, "1.1.0"); !ok) return finish(ok);
      if (!plugin.status) return unsupported();
      return finish(plugin.status(*env, *conf));
    case Command::kVersion: break;
  }
  return versionInfo(stdinText);
}

}  // namespace

Invocation runPlugin(const Plugin& plugin, const std::map<std::string, std::string>& environment,
                     std::string_view stdinText) {
  // The decoders check every type and range they read, so nothing below should throw. This is
  // the backstop that keeps a missed case an error the runtime can log rather than an abort.
  try {
    return dispatch(plugin, environment, stdinText);
  } catch (const nlohmann::json::exception& e) {
    return failed(
        Error{kDecodeFailure, fmt::format("{}: the network configuration could not be decoded: {}",
                                          plugin.name, e.what())},
        kLatestVersion);
  } catch (const std::exception& e) {
    return failed(
        Error{kInternal, fmt::format("{}: unexpected failure: {}", plugin.name, e.what())},
        kLatestVersion);
  }
}

int pluginMain(const Plugin& plugin) {
  std::signal(SIGPIPE, SIG_IGN);
  std::map<std::string, std::string> environment;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    environment.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  std::string input;
  // VERSION may come with no stdin at all; every other command reads the whole config.
  const auto command = environment.find("CNI_COMMAND");
  if (command == environment.end() || command->second != "VERSION" || ::isatty(0) == 0) {
    // No further than the limit: parseNetConf refuses what is longer, naming the limit.
    input = readBounded(0, kMaxConfigBytes);
  }
  const Invocation inv = runPlugin(plugin, environment, input);
  if (inv.exitCode != 0) {
    // The runtime logs stdout's error; stderr keeps a line for whoever runs the plugin by hand.
    std::fprintf(stderr, "%s: %s", plugin.name.c_str(), inv.out.c_str());
  }
  std::fwrite(inv.out.data(), 1, inv.out.size(), stdout);
  std::fflush(stdout);
  return inv.exitCode;
}

}  // namespace vnetipam::cni
