#include "node-agent/cni/delegate.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vnetipam::cni {
namespace {

// Closes its fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

struct Exec {
  int status = 0;  // raw wait status
  std::string out;
};

Outcome<Exec> execWithStdin(const std::string& binary,
                            const std::map<std::string, std::string>& env,
                            const std::string& input) {
  int inPipe[2];
  int outPipe[2];
  if (::pipe2(inPipe, O_CLOEXEC) != 0) {
    return failWith(kIoFailure, fmt::format("pipe for {}: {}", binary, std::strerror(errno)));
  }
  Fd inRead(inPipe[0]), inWrite(inPipe[1]);
  if (::pipe2(outPipe, O_CLOEXEC) != 0) {
    return failWith(kIoFailure, fmt::format("pipe for {}: {}", binary, std::strerror(errno)));
  }
  Fd outRead(outPipe[0]), outWrite(outPipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, inRead.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, outWrite.get(), 1);
  // stderr is inherited: the delegate's logs go where ours go.

  std::vector<std::string> envStrings;
  envStrings.reserve(env.size());
  for (const auto& [k, v] : env)
    envStrings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : envStrings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string argv0 = binary;
  char* argv[] = {argv0.data(), nullptr};

  // The plugin ignores SIGPIPE (see pluginMain); the delegate gets the default back.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, binary.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return failWith(kIoFailure, fmt::format("exec {}: {}", binary, std::strerror(rc)));
  }
  inRead.reset();
  outWrite.reset();

  // Write stdin on its own thread so a delegate that answers before reading all of a large
  // config (a GC with thousands of attachments) cannot deadlock against us.
  std::thread writer([&] {
    std::string_view rest = input;
    while (!rest.empty()) {
      const ssize_t n = ::write(inWrite.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    inWrite.reset();
  });
  Exec result;
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(outRead.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.out.append(buf, static_cast<std::size_t>(n));
  }
  writer.join();
  while (::waitpid(pid, &result.status, 0) < 0) {
    if (errno != EINTR) {
      return failWith(kIoFailure, fmt::format("wait for {}: {}", binary, std::strerror(errno)));
    }
  }
  return result;
}

}  // namespace

Outcome<std::string> findPlugin(std::string_view type, const std::vector<std::string>& path) {
  if (type.empty()) return failWith(kInvalidConfig, "\"ipam.type\" is required");
  if (type.find('/') != std::string_view::npos || type == "." || type == "..") {
    return failWith(kInvalidConfig,
                    fmt::format("\"ipam.type\" \"{}\" must be a plugin name, not a path", type));
  }
  std::string searched;
  for (const auto& dir : path) {
    const std::string candidate = fmt::format("{}/{}", dir, type);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    searched += searched.empty() ? dir : ":" + dir;
  }
  return failWith(kInvalidConfig,
                  fmt::format("IPAM plugin \"{}\" not found in CNI_PATH \"{}\"", type, searched));
}

Outcome<Result> ExecIpamDelegate::run(Command command, const Env& env, const NetConf& conf) {
  auto binary = findPlugin(conf.ipamType, env.path);
  if (!binary) return std::unexpected(binary.error());
  auto environment = env.all;
  environment["CNI_COMMAND"] = std::string(toString(command));
  auto exec = execWithStdin(*binary, environment, conf.raw.dump());
  if (!exec) return std::unexpected(exec.error());

  const auto doc = nlohmann::json::parse(exec->out, nullptr, /*allow_exceptions=*/false);
  const bool exited = WIFEXITED(exec->status);
  const int code = exited ? WEXITSTATUS(exec->status) : -1;
  if (code != 0) {
    if (doc.is_object() && doc.contains("code") && doc["code"].is_number_integer()) {
      return failWith(doc["code"].get<int>(), doc.value("msg", ""), doc.value("details", ""));
    }
    return failWith(kInternal,
                    fmt::format("IPAM plugin {} {} {}", *binary, toString(command),
                                exited ? fmt::format("exited {}", code)
                                       : fmt::format("died on signal {}", WTERMSIG(exec->status))),
                    exec->out);
  }
  if (command != Command::kAdd) return Result{};
  if (doc.is_discarded()) {
    return failWith(kDecodeFailure,
                    fmt::format("IPAM plugin {} ADD printed no JSON result", *binary), exec->out);
  }
  auto result = parseResult(doc);
  if (!result) {
    return failWith(kDecodeFailure,
                    fmt::format("IPAM plugin {} ADD result: {}", *binary, result.error().msg));
  }
  return result;
}

}  // namespace vnetipam::cni
