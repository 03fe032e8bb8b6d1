// `vnet-ipam-agent install-cni`: puts CNI plugin binaries from the image into the host's CNI bin
// directory. It is the agent pod's init container, and the image has no shell, so the copy that
// used to be `cp; chmod; mv` in sh lives here.
//
// What a caller may rely on:
//   - every plugin is looked up before any is copied: a missing one installs nothing;
//   - each plugin reaches dest/NAME whole or not at all: it is written under a unique dot name in
//     dest (which a runtime never execs), fsynced, made 0755 and renamed over NAME, so a runtime
//     exec'ing the old binary at that moment gets the old one or the new one;
//   - a plugin that fails leaves the ones before it installed and no temporary file behind.
#pragma once

#include <array>
#include <expected>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/error.h"
#include "lib/cli/options.h"

namespace vnetipam::agent {

inline constexpr std::string_view kInstallCniCommand = "install-cni";

// Where the image keeps the plugins: ours with the other binaries, the reference plugins
// (loopback, portmap) apart so that /usr/local/bin holds only vnet-ipam's own commands.
inline constexpr std::array<std::string_view, 2> kDefaultPluginSourceDirs = {"/usr/local/bin",
                                                                             "/usr/local/lib/cni"};

struct InstallCniOptions {
  std::string destDir;                  // required
  std::vector<std::string> sourceDirs;  // searched in order; kDefaultPluginSourceDirs if none given
  std::vector<std::string> plugins;     // file names, at least one, no repeats
  cli::LogFormat logFormat = cli::LogFormat::kText;
  std::string logLevel = "info";
  bool help = false;
};

// Parses the arguments after "install-cni". Errors are one line naming the flag or the argument.
std::expected<InstallCniOptions, std::string> parseInstallCniOptions(
    std::span<const char* const> args);

std::string_view installCniUsageText();

// The first of `sourceDirs` holding a regular file `name`; kNotFound listing every place looked.
base::Result<std::filesystem::path> findPlugin(std::span<const std::string> sourceDirs,
                                               const std::string& name);

// Copies `source` to destDir/name as described above and logs it. kIo naming the path and the
// step that failed.
base::Result<void> installPlugin(const std::filesystem::path& source,
                                 const std::filesystem::path& destDir, const std::string& name);

// Looks up every plugin, then installs each in order. The first error, naming the plugin.
base::Result<void> installPlugins(const InstallCniOptions& options);

// The whole subcommand: parse, set up logging, install. Exit status 0, 1 (install failed) or 2
// (bad arguments).
int installCniMain(std::span<const char* const> args);

}  // namespace vnetipam::agent
