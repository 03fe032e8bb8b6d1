#include "node-agent/cni_config.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace vnetipam::agent {

std::string cniConfigList(const std::string& hostVethPrefix, int mtu, const std::string& socket,
                          bool chainPortmap) {
  // ordered_json keeps the documented member order, which is easier on humans reading the file.
  using nlohmann::ordered_json;
  ordered_json plugins = ordered_json::array();
  plugins.push_back(
      ordered_json{{"type", "vnet-transparent"},
                   {"hostVethPrefix", hostVethPrefix},
                   {"mtu", mtu},
                   {"ipam", ordered_json{{"type", "vnet-ipam"}, {"socket", socket}}}});
  if (chainPortmap) {
    plugins.push_back(ordered_json{{"type", "portmap"},
                                   {"capabilities", ordered_json{{"portMappings", true}}},
                                   {"snat", true}});
  }
  // 1.0.0, not 1.1.0: a list has one version for every plugin in it, and the portmap chained
  // here (Debian's containernetworking-plugins 1.1.1) speaks at most 1.0.0. Our plugins speak
  // both; a runtime that sends 1.1.0 commands (GC, STATUS) to a 1.0.0 list skips them. The list
  // without portmap stays at 1.0.0 as well: a runtime whose libcni predates spec 1.1.0 cannot
  // read a 1.1.0 result, and turning portmap off should change nothing but portmap.
  ordered_json list{
      {"cniVersion", "1.0.0"}, {"name", "vnet-ipam"}, {"plugins", std::move(plugins)}};
  return list.dump(2) + "\n";
}

ipam::Result<void> writeFileAtomically(const std::filesystem::path& dir, const std::string& name,
                                       const std::string& content) {
  const auto target = dir / name;
  const auto tmp = dir / fmt::format(".{}.tmp", name);
  auto failed = [&](std::string_view what, const std::filesystem::path& path) {
    int err = errno;
    return ipam::fail(ipam::ErrorCode::kIo,
                      fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return ipam::fail(ipam::ErrorCode::kIo,
                      fmt::format("creating {}: {}", dir.string(), ec.message()));
  }
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed("creating", tmp);
  std::string_view rest = content;
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto error = failed("writing", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return error;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0) {
    auto error = failed("fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return error;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    auto error = failed("renaming into place", target);
    ::unlink(tmp.c_str());
    return error;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace vnetipam::agent
