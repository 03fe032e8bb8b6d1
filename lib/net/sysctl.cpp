#include "lib/net/sysctl.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "lib/net/link.h"

namespace vnetipam::net {

namespace {

// The file's content with trailing newlines and spaces stripped. Call on a thread inside ns (which
// only names it in the message).
Result<std::string> readSysctlFile(const std::string& path, const Netns& ns) {
  const auto failed = [&](int err) {
    return fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("read {} in namespace {}: {}", path, ns.label(), std::strerror(err)));
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return failed(errno);
  char buf[64];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0) return failed(errno);
  std::string value(buf, static_cast<std::size_t>(n));
  while (!value.empty() && (value.back() == '\n' || value.back() == ' '))
    value.pop_back();
  return value;
}

// Writes value to path. Call on a thread inside ns (which only names it in the message).
Result<void> writeSysctlFile(const std::string& path, std::string_view value, const Netns& ns) {
  const auto failed = [&](int err) {
    return fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("write {} to {} in namespace {}: {}", value, path, ns.label(),
                            std::strerror(err)));
  };
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return failed(errno);
  const ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) return failed(errno);
  if (static_cast<std::size_t>(n) != value.size()) return failed(EIO);
  return {};
}

}  // namespace

Result<std::string> sysctlPath(const InterfaceSysctl& s) {
  if (auto ok = validateInterfaceName(s.ifname); !ok) return std::unexpected(ok.error());
  if (s.key.empty() || s.key.find('/') != std::string::npos || s.key == "." || s.key == "..") {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("sysctl key '{}' must be a plain file name", s.key));
  }
  return fmt::format("/proc/sys/net/{}/{}/{}/{}", ipam::labelOf(s.family),
                     s.table == SysctlTable::kConf ? "conf" : "neigh", s.ifname, s.key);
}

Result<void> writeInterfaceSysctls(const Netns& ns, std::span<const InterfaceSysctl> settings) {
  std::vector<std::string> paths;
  paths.reserve(settings.size());
  for (const auto& s : settings) {
    auto path = sysctlPath(s);
    if (!path) return std::unexpected(path.error());
    paths.push_back(std::move(*path));
  }
  return runInNetns(ns, [&]() -> Result<void> {
    for (std::size_t i = 0; i < settings.size(); ++i) {
      if (auto ok = writeSysctlFile(paths[i], settings[i].value, ns); !ok) return ok;
    }
    return {};
  });
}

Result<std::string> readInterfaceSysctl(const Netns& ns, const InterfaceSysctl& s) {
  auto path = sysctlPath(s);
  if (!path) return std::unexpected(path.error());
  std::string value;
  auto ok = runInNetns(ns, [&]() -> Result<void> {
    auto read = readSysctlFile(*path, ns);
    if (!read) return std::unexpected(read.error());
    value = std::move(*read);
    return {};
  });
  if (!ok) return std::unexpected(ok.error());
  return value;
}

Result<bool> ensureNetSysctl(const Netns& ns, std::string_view key, std::string_view value) {
  // Plain path components only: no "..", no empty or "." component, no absolute path.
  bool plain = !key.empty();
  for (std::size_t start = 0; plain && start <= key.size();) {
    const std::size_t end = std::min(key.find('/', start), key.size());
    const std::string_view part = key.substr(start, end - start);
    plain = !part.empty() && part != "." && part != ".." &&
            part.find_first_of(std::string_view("\0\n", 2)) == std::string_view::npos;
    start = end + 1;
  }
  if (!plain) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("sysctl key '{}' must be a relative path under /proc/sys/net", key));
  }
  const std::string path = fmt::format("/proc/sys/net/{}", key);
  bool wrote = false;
  auto ok = runInNetns(ns, [&]() -> Result<void> {
    auto current = readSysctlFile(path, ns);
    if (!current) return std::unexpected(current.error());
    if (*current == value) return {};
    if (auto written = writeSysctlFile(path, value, ns); !written) return written;
    wrote = true;
    return {};
  });
  if (!ok) return std::unexpected(ok.error());
  return wrote;
}

}  // namespace vnetipam::net
