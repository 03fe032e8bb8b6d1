#include "node-agent/install_cni.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>
#include <utility>

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cli/logging.h"

namespace vnetipam::agent {

namespace fs = std::filesystem;

namespace {

using Table = cli::SetterTable<InstallCniOptions>;

const Table& setters() {
  static const Table table = {
      {"dest-dir", Table::text(&InstallCniOptions::destDir)},
      // Repeated: each one adds a directory to search, in order.
      {"source-dir",
       [](InstallCniOptions& o, const std::string& v) -> cli::ValueError {
         if (v.empty()) return std::string("must not be empty");
         o.sourceDirs.push_back(v);
         return std::nullopt;
       }},
      {"log-format", Table::logFormat(&InstallCniOptions::logFormat)},
      {"log-level", Table::logLevel(&InstallCniOptions::logLevel)},
  };
  return table;
}

std::unexpected<base::Error> ioError(const std::string& what, int err) {
  return base::fail(base::ErrorCode::kIo, fmt::format("{}: {}", what, std::strerror(err)));
}

// Owns the two descriptors of one copy and the temporary file: every early return closes both
// and removes the temporary file, so a failed install leaves nothing behind in dest.
struct CopyInProgress {
  int in = -1;
  int out = -1;
  std::string tmp;  // empty once renamed into place
  ~CopyInProgress() {
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
    if (!tmp.empty()) ::unlink(tmp.c_str());
  }
};

struct CopyError {
  bool reading;  // else writing
  int err;
};

// Copies all of `in` to `out`; the number of bytes.
std::expected<std::uintmax_t, CopyError> copyAll(int in, int out) {
  char buffer[64 * 1024];
  std::uintmax_t copied = 0;
  for (;;) {
    const ssize_t n = ::read(in, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(CopyError{.reading = true, .err = errno});
    if (n == 0) return copied;
    std::string_view rest(buffer, static_cast<std::size_t>(n));
    while (!rest.empty()) {
      const ssize_t w = ::write(out, rest.data(), rest.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return std::unexpected(CopyError{.reading = false, .err = errno});
      rest.remove_prefix(static_cast<std::size_t>(w));
    }
    copied += static_cast<std::uintmax_t>(n);
  }
}

}  // namespace

std::string_view installCniUsageText() {
  return "usage: vnet-ipam-agent install-cni --dest-dir DIR [--source-dir DIR]...\n"
         "  [--log-format text|json] [--log-level debug|info|warn|error] PLUGIN...\n"
         "Copies each PLUGIN into DIR: to a temporary name there, fsync, mode 0755, then a "
         "rename,\n"
         "so a runtime never execs a half-written plugin. Each PLUGIN is taken from the first\n"
         "--source-dir holding it (default: /usr/local/bin, then /usr/local/lib/cni). All are\n"
         "looked up before any is copied.\n";
}

std::expected<InstallCniOptions, std::string> parseInstallCniOptions(
    std::span<const char* const> args) {
  auto split = cli::splitArgs(args, cli::Positional::kAllowed);
  if (!split) return std::unexpected(std::move(split.error()));
  InstallCniOptions options;
  if (split->help) {
    options.help = true;
    return options;
  }
  if (auto error = setters().apply(options, split->flags)) {
    return std::unexpected(std::move(*error));
  }
  if (options.destDir.empty()) return std::unexpected(std::string("--dest-dir: required"));
  if (split->positional.empty()) {
    return std::unexpected(std::string("no plugin named: give one or more PLUGIN names"));
  }
  std::set<std::string, std::less<>> seen;
  for (const auto& name : split->positional) {
    if (name.find('/') != std::string::npos || name == "." || name == "..") {
      return std::unexpected(
          fmt::format("\"{}\" is not a plugin name (a file name, without '/')", name));
    }
    if (!seen.insert(name).second) {
      return std::unexpected(fmt::format("plugin \"{}\" is named twice", name));
    }
  }
  options.plugins = std::move(split->positional);
  return options;
}

base::Result<fs::path> findPlugin(std::span<const std::string> sourceDirs,
                                  const std::string& name) {
  std::string looked;
  for (const auto& dir : sourceDirs) {
    const fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    // A symlink to a regular file counts: the copy reads through it.
    if (fs::is_regular_file(candidate, ec)) return candidate;
    looked += looked.empty() ? dir : ", " + dir;
  }
  return base::fail(base::ErrorCode::kNotFound,
                    fmt::format("plugin {}: no regular file of that name in {}", name, looked));
}

base::Result<void> installPlugin(const fs::path& source, const fs::path& destDir,
                                 const std::string& name) {
  CopyInProgress copy;
  copy.in = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (copy.in < 0) return ioError(fmt::format("opening {}", source.string()), errno);

  // A unique name rather than a fixed one: two installers racing on one node (an old and a new
  // agent pod, a node image's own copy) must not write into the same temporary file.
  std::string tmp = (destDir / fmt::format(".{}.tmp-XXXXXX", name)).string();
  copy.out = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (copy.out < 0) {
    return ioError(fmt::format("creating a temporary file in {}", destDir.string()), errno);
  }
  copy.tmp = tmp;

  const auto copied = copyAll(copy.in, copy.out);
  if (!copied) {
    return copied.error().reading
               ? ioError(fmt::format("reading {}", source.string()), copied.error().err)
               : ioError(fmt::format("writing {}", tmp), copied.error().err);
  }
  // mkostemp made it 0600; the runtime execs plugins as root, but tools that list or checksum
  // the directory as another user expect what cp and the reference installers leave: 0755.
  if (::fchmod(copy.out, 0755) != 0) return ioError(fmt::format("chmod 0755 {}", tmp), errno);
  if (::fsync(copy.out) != 0) return ioError(fmt::format("fsync {}", tmp), errno);
  const int out = std::exchange(copy.out, -1);
  if (::close(out) != 0) return ioError(fmt::format("closing {}", tmp), errno);

  const fs::path target = destDir / name;
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    return ioError(fmt::format("renaming {} to {}", tmp, target.string()), errno);
  }
  copy.tmp.clear();
  // The rename is what must survive a crash. Should this fsync fail, the plugin is still in
  // place for every reader now, and the init container runs again after a reboot anyway.
  if (int dfd = ::open(destDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  spdlog::info("installed {} ({} bytes) from {} into {}", name, *copied, source.string(),
               destDir.string());
  return {};
}

base::Result<void> installPlugins(const InstallCniOptions& options) {
  std::vector<std::string> dirs = options.sourceDirs;
  if (dirs.empty()) dirs.assign(kDefaultPluginSourceDirs.begin(), kDefaultPluginSourceDirs.end());

  std::vector<fs::path> sources;
  for (const auto& name : options.plugins) {
    auto found = findPlugin(dirs, name);
    if (!found) return std::unexpected(std::move(found.error()));
    sources.push_back(std::move(*found));
  }
  for (std::size_t i = 0; i < options.plugins.size(); ++i) {
    if (auto installed = installPlugin(sources[i], options.destDir, options.plugins[i]);
        !installed) {
      return base::fail(installed.error().code, fmt::format("installing {}: {}", options.plugins[i],
                                                            installed.error().message));
    }
  }
  return {};
}

int installCniMain(std::span<const char* const> args) {
  auto options = parseInstallCniOptions(args);
  if (!options) {
    std::cerr << "vnet-ipam-agent install-cni: " << options.error() << "\n"
              << installCniUsageText();
    return 2;
  }
  if (options->help) {
    std::cout << installCniUsageText();
    return 0;
  }
  cli::setUpLogging({.name = "vnet-ipam-agent",
                     .format = options->logFormat,
                     .level = options->logLevel,
                     .flushOn = spdlog::level::info});
  if (auto installed = installPlugins(*options); !installed) {
    spdlog::error("install-cni: {}", installed.error().message);
    return 1;
  }
  return 0;
}

}  // namespace vnetipam::agent
