#include "lib/net/sysctl.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "lib/net/link.h"

namespace vnetipam::net {

Result<std::string> sysctlPath(const InterfaceSysctl& s) {
  if (auto ok = validateInterfaceName(s.ifname); !ok) return std::unexpected(ok.error());
  if (s.key.empty() || s.key.find('/') != std::string::npos || s.key == "." || s.key == "..") {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("sysctl key '{}' must be a plain file name", s.key));
  }
  return fmt::format("/proc/sys/net/{}/{}/{}/{}", s.family == ipam::Family::kV4 ? "ipv4" : "ipv6",
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
      const std::string& path = paths[i];
      const std::string& value = settings[i].value;
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
    }
    return {};
  });
}

Result<std::string> readInterfaceSysctl(const Netns& ns, const InterfaceSysctl& s) {
  auto path = sysctlPath(s);
  if (!path) return std::unexpected(path.error());
  std::string value;
  auto ok = runInNetns(ns, [&]() -> Result<void> {
    UniqueFd fd(::open(path->c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      const int err = errno;
      return fail(
          err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
          fmt::format("read {} in namespace {}: {}", *path, ns.label(), std::strerror(err)));
    }
    char buf[64];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      return fail(ErrorCode::kIo, fmt::format("read {} in namespace {}: {}", *path, ns.label(),
                                              std::strerror(errno)));
    }
    value.assign(buf, static_cast<std::size_t>(n));
    while (!value.empty() && (value.back() == '\n' || value.back() == ' '))
      value.pop_back();
    return {};
  });
  if (!ok) return std::unexpected(ok.error());
  return value;
}

}  // namespace vnetipam::net
