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
  // Spec 1.1.0 for the runtimes that speak it, 1.0.0 for those that do not, in one list. A runtime
  // runs the list at one version for every plugin in it: our plugins and the portmap chained here
  // (the pinned release the image ships, scripts/cni-plugins/go.mod) speak both. "cniVersions"
  // (spec 1.1.0) lists what the list supports; a runtime whose libcni knows it (v1.2 and later)
  // runs the highest one it implements, 1.1.0, and so sends GC and STATUS. One whose libcni
  // predates it ignores the field and runs "cniVersion": 1.0.0. That cannot be 1.1.0: such a
  // libcni (v1.1.x, in containerd 1.6 and 1.7) fails every ADD on a 1.1.0 result ("unsupported CNI
  // result version"), and those runtimes never send GC or STATUS anyway.
  ordered_json list{{"cniVersion", "1.0.0"},
                    {"cniVersions", ordered_json::array({"1.0.0", "1.1.0"})},
                    {"name", "vnet-ipam"},
                    {"plugins", std::move(plugins)}};
  return list.dump(2) + "\n";
}

base::Result<void> writeFileAtomically(const std::filesystem::path& dir, const std::string& name,
                                       const std::string& content) {
  const auto target = dir / name;
  const auto tmp = dir / fmt::format(".{}.tmp", name);
  auto failed = [&](std::string_view what, const std::filesystem::path& path) {
    int err = errno;
    return base::fail(base::ErrorCode::kIo,
                      fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return base::fail(base::ErrorCode::kIo,
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
