// Throw-away network namespaces for the lib/net tests.
//
// A TestNetns is created by unshare(CLONE_NEWNET) on a short-lived thread and held only by an open
// fd: it has no name under /var/run/netns, so it cannot outlive the test process even if the test
// crashes or is killed, and parallel tests cannot collide. Tools reach it through the fd's /proc
// path (`nsenter --net=/proc/<pid>/fd/<n>`). Everything a test does happens inside these
// namespaces; nothing touches the namespace the test runs in.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/net/netns.h"

namespace vnetipam::net::testing {

// Why namespaces cannot be made here, or nullopt if they can.
inline std::optional<std::string> netnsUnavailable() {
  if (::geteuid() != 0) return "needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create namespaces";
  std::optional<std::string> why;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0)
      why = fmt::format("unshare(CLONE_NEWNET): {}", std::strerror(errno));
  }).join();
  return why;
}

#define VNETIPAM_SKIP_WITHOUT_NETNS()                                                  \
  do {                                                                                 \
    if (auto why = ::vnetipam::net::testing::netnsUnavailable()) GTEST_SKIP() << *why; \
  } while (0)

inline std::string uniqueNetnsName() {
  static std::atomic<int> counter{0};
  return fmt::format("vnetipam-t-{}-{}", ::getpid(), counter++);
}

class TestNetns {
 public:
  TestNetns() : ns_(make()) {}

  const Netns& ns() const { return ns_; }
  // For tools: `nsenter --net=<path>`.
  std::string procPath() const { return fmt::format("/proc/{}/fd/{}", ::getpid(), ns_.fd()); }

 private:
  static Netns make() {
    std::optional<Netns> made;
    std::string error;
    std::thread([&] {
      if (::unshare(CLONE_NEWNET) != 0) {
        error = std::strerror(errno);
        return;
      }
      const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        error = std::strerror(errno);
        return;
      }
      auto ns = Netns::adopt(UniqueFd(fd), uniqueNetnsName());
      if (!ns) {
        error = ns.error().message;
        return;
      }
      made.emplace(std::move(*ns));
    }).join();
    if (!made) throw std::runtime_error("create a test network namespace: " + error);
    return std::move(*made);
  }
  Netns ns_;
};

struct CommandResult {
  int status = -1;  // exit status, or -1 if it did not exit normally
  std::string out;  // stdout
};

inline CommandResult runCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
    result.out.append(buf, n);
  const int raw = ::pclose(pipe);
  if (raw != -1 && WIFEXITED(raw)) result.status = WEXITSTATUS(raw);
  return result;
}

// Runs `ip -j <args>` inside ns and parses its JSON (an empty array if ip printed nothing).
inline nlohmann::json ipJson(const TestNetns& ns, const std::string& args) {
  const auto r = runCommand(fmt::format("nsenter --net={} ip -j {}", ns.procPath(), args));
  EXPECT_EQ(r.status, 0) << "ip -j " << args << ": " << r.out;
  if (r.status != 0 || r.out.find_first_not_of(" \n") == std::string::npos) {
    return nlohmann::json::array();
  }
  return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
}

}  // namespace vnetipam::net::testing
