#include "azure-mock/route_programmer.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace vnetipam::azuremock {

namespace {

bool validNetnsName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == ".." || name[0] == '-')
    return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::expected<std::unique_ptr<IpRouteProgrammerImpl>, std::string> IpRouteProgrammerImpl::create(
    std::string netns, std::string ipBinary) {
  if (!validNetnsName(netns)) {
    return std::unexpected(fmt::format(
        "SDN emulation needs a network namespace name of 1-64 characters [A-Za-z0-9_.-], got "
        "'{}'; the mock never programs routes in the root namespace",
        netns));
  }
  return std::unique_ptr<IpRouteProgrammerImpl>(
      new IpRouteProgrammerImpl(std::move(netns), std::move(ipBinary)));
}

std::expected<void, std::string> IpRouteProgrammerImpl::replaceRoute(
    const ipam::Prefix& block, const ipam::IPAddress& nextHop) {
  // ip(8) takes the route's family from the block. Linux routes an IPv6 prefix only via an IPv6
  // gateway ("IPv6 does not support RTA_VIA attribute" for an IPv4 one), as Azure's SDN routes an
  // IPv6 prefix to the NIC's IPv6 configuration: a next hop of the other family is refused here,
  // before ip(8) would half-apply it.
  if (block.family() != nextHop.family()) {
    return std::unexpected(
        fmt::format("ip -n {} route replace {} via {}: the next hop is {} but "
                    "the block is {}; a route's gateway must be of its family",
                    netns_, block.toString(), nextHop.toString(), ipam::toString(nextHop.family()),
                    ipam::toString(block.family())));
  }
  return run({"route", "replace", block.toString(), "via", nextHop.toString()}, false);
}

std::expected<void, std::string> IpRouteProgrammerImpl::deleteRoute(const ipam::Prefix& block) {
  return run({"route", "del", block.toString()}, true);
}

std::expected<void, std::string> IpRouteProgrammerImpl::run(std::vector<std::string> args,
                                                            bool missingIsOk) {
  // Always `ip -n <netns> ...`: the namespace argument is first and fixed, so no caller can reach
  // the root namespace's routing table through this class.
  std::vector<std::string> argv = {ip_, "-n", netns_};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const std::string what = fmt::format("ip -n {} {}", netns_, fmt::join(args, " "));

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // ip's "RTNETLINK answers: No such process" for a missing route is expected on delete; keep
  // its chatter off the mock's own stderr, which may be JSON lines.
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, ip_.c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return std::unexpected(fmt::format("{}: cannot start: {}", what, std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return std::unexpected(fmt::format("{}: waitpid failed", what));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  // ip exits 2 for "No such process" (route absent) on del; treat it as done.
  if (missingIsOk && WIFEXITED(status) && WEXITSTATUS(status) == 2) return {};
  return std::unexpected(
      fmt::format("{}: exited with status {}", what, WIFEXITED(status) ? WEXITSTATUS(status) : -1));
}

std::vector<std::string> RouteSync::sync(const Routes& desired) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> failures;
  for (auto it = programmed_.begin(); it != programmed_.end();) {
    if (desired.contains(it->first)) {
      ++it;
      continue;
    }
    if (auto r = programmer_.deleteRoute(it->first); !r) {
      failures.push_back(r.error());
      ++it;
    } else {
      it = programmed_.erase(it);
    }
  }
  for (const auto& [block, via] : desired) {
    auto found = programmed_.find(block);
    // The first round replaces everything: routes left from an earlier run may point elsewhere.
    if (!firstSync_ && found != programmed_.end() && found->second == via) continue;
    if (auto r = programmer_.replaceRoute(block, via); !r) {
      failures.push_back(r.error());
    } else {
      programmed_[block] = via;
    }
  }
  firstSync_ = false;
  return failures;
}

Routes RouteSync::programmed() const {
  std::lock_guard lock(mutex_);
  return programmed_;
}

}  // namespace vnetipam::azuremock
