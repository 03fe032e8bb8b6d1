#include "node-agent/cni/delegate.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node-agent/cni/input_bounds.h"

namespace vnetipam::cni {
namespace {

// Closes its fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
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

// A delegate process with its stdin written (or being written) and its stdout still to read.
class Spawned {
 public:
  Spawned(std::string binary, pid_t pid, Fd out, Fd in, const std::string& input)
      : binary_(std::move(binary)), pid_(pid), out_(std::move(out)), in_(std::move(in)) {
    // A config that fits in the pipe goes in at once: an empty pipe takes it without blocking.
    // A larger one (a GC with thousands of attachments) is written from a thread, so a delegate
    // that answers before reading all of it cannot deadlock against us.
    const int capacity = ::fcntl(in_.get(), F_GETPIPE_SZ);
    if (capacity > 0 && input.size() <= static_cast<std::size_t>(capacity)) {
      writeAll(input);
    } else {
      writer_ = std::thread([this, &input] { writeAll(input); });
      // input must outlive the thread: collect() joins it before the caller's config goes away.
    }
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() {
    if (pid_ > 0) (void)collect();
  }

  Outcome<Exec> collect() {
    Exec result;
    // Bounded like our own stdin. A delegate that writes more gets EPIPE (or SIGPIPE) once out_ is
    // closed here, so the wait below cannot hang on it.
    result.out = readBounded(out_.get(), kMaxConfigBytes);
    out_.reset();
    if (writer_.joinable()) writer_.join();
    const pid_t pid = pid_;
    pid_ = -1;
    while (::waitpid(pid, &result.status, 0) < 0) {
      if (errno != EINTR) {
        return failWith(kIoFailure, fmt::format("wait for {}: {}", binary_, std::strerror(errno)));
      }
    }
    return result;
  }

 private:
  void writeAll(std::string_view rest) {
    while (!rest.empty()) {
      const ssize_t n = ::write(in_.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    in_.reset();
  }

  std::string binary_;
  pid_t pid_;
  Fd out_;
  Fd in_;
  std::thread writer_;
};

// posix_spawn (vfork-like: no page-table copy) of binary with input on its stdin.
Outcome<std::unique_ptr<Spawned>> spawnWithStdin(const std::string& binary,
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
  return std::make_unique<Spawned>(binary, pid, std::move(outRead), std::move(inWrite), input);
}

// The delegate's output as the spec reads it.
Outcome<Result> interpret(const std::string& binary, Command command, const Exec& exec) {
  const auto parsed = parseBoundedJson(exec.out, fmt::format("the output of {}", binary));
  const nlohmann::json doc = parsed ? *parsed : nlohmann::json();
  const bool exited = WIFEXITED(exec.status);
  const int code = exited ? WEXITSTATUS(exec.status) : -1;
  if (code != 0) {
    const auto text = [&](const char* key) {
      const auto it = doc.is_object() ? doc.find(key) : doc.end();
      return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const auto errorCode = doc.is_object() && doc.contains("code")
                               ? integerIn(doc["code"], 1, INT32_MAX)
                               : std::nullopt;
    if (errorCode) {
      return failWith(static_cast<int>(*errorCode), text("msg"), text("details"));
    }
    return failWith(kInternal,
                    fmt::format("IPAM plugin {} {} {}", binary, toString(command),
                                exited ? fmt::format("exited {}", code)
                                       : fmt::format("died on signal {}", WTERMSIG(exec.status))),
                    printable(exec.out, 4096));
  }
  if (command != Command::kAdd) return Result{};
  if (!parsed) {
    return failWith(kDecodeFailure,
                    fmt::format("IPAM plugin {} ADD printed no usable JSON result: {}", binary,
                                parsed.error().msg),
                    printable(exec.out, 4096));
  }
  auto result = parseResult(doc);
  if (!result) {
    return failWith(kDecodeFailure,
                    fmt::format("IPAM plugin {} ADD result: {}", binary, result.error().msg));
  }
  return result;
}

// A call whose outcome is known when it is made.
class DoneCall : public IpamCall {
 public:
  explicit DoneCall(Outcome<Result> outcome) : outcome_(std::move(outcome)) {}
  Outcome<Result> finish() override { return std::move(outcome_); }

 private:
  Outcome<Result> outcome_;
};

class ExecCall : public IpamCall {
 public:
  ExecCall(std::string binary, Command command, std::string input)
      : binary_(std::move(binary)), command_(command), input_(std::move(input)) {}
  // Separate from the constructor: the spawned process's stdin writer refers to input_.
  Outcome<void> spawn(const std::map<std::string, std::string>& env) {
    auto spawned = spawnWithStdin(binary_, env, input_);
    if (!spawned) return std::unexpected(spawned.error());
    process_ = std::move(*spawned);
    return {};
  }
  Outcome<Result> finish() override {
    auto exec = process_->collect();
    process_.reset();
    if (!exec) return std::unexpected(exec.error());
    return interpret(binary_, command_, *exec);
  }

 private:
  std::string binary_;
  Command command_;
  std::string input_;
  std::unique_ptr<Spawned> process_;  // destroyed unfinished: waits for the process
};

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

std::unique_ptr<IpamCall> IpamDelegate::start(Command command, const Env& env,
                                              const NetConf& conf) {
  return std::make_unique<DoneCall>(run(command, env, conf));
}

Outcome<Result> ExecIpamDelegate::run(Command command, const Env& env, const NetConf& conf) {
  return start(command, env, conf)->finish();
}

std::unique_ptr<IpamCall> ExecIpamDelegate::start(Command command, const Env& env,
                                                  const NetConf& conf) {
  auto binary = findPlugin(conf.ipamType, env.path);
  if (!binary) return std::make_unique<DoneCall>(std::unexpected(binary.error()));
  auto environment = env.all;
  environment["CNI_COMMAND"] = std::string(toString(command));
  auto call = std::make_unique<ExecCall>(*binary, command, dumpJson(conf.raw));
  if (auto ok = call->spawn(environment); !ok) {
    return std::make_unique<DoneCall>(std::unexpected(ok.error()));
  }
  return call;
}

}  // namespace vnetipam::cni
