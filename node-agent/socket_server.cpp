#include "node-agent/socket_server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace vnetipam::agent {
namespace {

// A connection idle this long is closed; the plugin reconnects for every invocation anyway.
constexpr std::chrono::minutes kIdleTimeout{5};
constexpr std::chrono::seconds kWriteTimeout{10};

}  // namespace

SocketServer::SocketServer(std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)) {}

SocketServer::~SocketServer() { stop(); }

base::Result<void> SocketServer::start() {
  auto failed = [&](std::string_view what) {
    int err = errno;
    return base::fail(base::ErrorCode::kIo,
                      fmt::format("agent socket {}: {}: {}", path_, what, std::strerror(err)));
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof addr.sun_path) {
    return base::fail(base::ErrorCode::kInvalidArgument,
                      fmt::format("agent socket path \"{}\" must be 1 to {} bytes", path_,
                                  sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  std::error_code ec;
  const auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  // A socket file left by a killed agent refuses bind(); nobody listens on it any more (the
  // journal lock guarantees one agent per state dir), so replace it.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return base::fail(base::ErrorCode::kIo,
                        fmt::format("agent socket {}: exists and is not a socket", path_));
    }
    ::unlink(path_.c_str());
  }
  listenFd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listenFd_ < 0) return failed("socket");
  // Bind with a restrictive umask so the socket is never reachable by others, not even briefly.
  const mode_t old = ::umask(0177);
  const int bound = ::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (bound != 0) return failed("bind");
  if (::chmod(path_.c_str(), 0600) != 0) return failed("chmod 0600");
  if (::listen(listenFd_, 512) != 0) return failed("listen");
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return failed("eventfd");
  acceptor_ = std::thread([this] { acceptLoop(); });
  return {};
}

void SocketServer::acceptLoop() {
  std::chrono::milliseconds delay{0};  // the current backoff; 0 while accept() succeeds
  std::uint64_t failures = 0;          // in a row
  std::uint64_t failuresSinceLog = 0;
  std::chrono::steady_clock::time_point lastLog;
  while (!stopping_.load()) {
    pollfd fds[2] = {{.fd = listenFd_, .events = POLLIN, .revents = 0},
                     {.fd = wakeFd_, .events = POLLIN, .revents = 0}};
    int r = ::poll(fds, 2, 1000);
    {
      // Join workers that finished, so a long-running agent does not pile up thread handles.
      std::lock_guard lock(mu_);
      for (auto id : done_) {
        auto it = std::find_if(workers_.begin(), workers_.end(),
                               [id](const std::thread& t) { return t.get_id() == id; });
        if (it != workers_.end()) {
          it->join();
          workers_.erase(it);
        }
      }
      done_.clear();
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      spdlog::error("agent socket {}: poll: {}", path_, std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0 || stopping_.load()) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    std::uint64_t closedBefore = 0;
    {
      std::lock_guard lock(mu_);
      closedBefore = closed_;
    }
    // A failure to take a connection for want of a resource leaves it in the backlog and the
    // listen socket readable: retrying at once would spin (100% CPU and a log line per attempt
    // while the fd table is full). Any other error is treated alike: it too may persist.
    std::string failure;
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN || err == ECONNABORTED) continue;  // the next one may do
      failure = fmt::format("accept: {}", std::strerror(err));
    } else {
      std::lock_guard lock(mu_);
      try {
        workers_.emplace_back([this, fd] { serve(fd); });
        connections_.insert(fd);
      } catch (const std::system_error& e) {
        // No thread for it (EAGAIN): drop this client, which retries, rather than the agent.
        ::close(fd);
        failure = fmt::format("starting a connection thread: {}", e.what());
      }
    }
    if (failure.empty()) {
      if (failures != 0) {
        spdlog::info("agent socket {}: accepting again after {} failed attempts", path_, failures);
      }
      failures = 0;
      delay = std::chrono::milliseconds(0);
      continue;
    }
    ++failures;
    ++failuresSinceLog;
    acceptFailures_.fetch_add(1);
    delay = delay.count() == 0 ? kAcceptBackoffFirst : std::min(delay * 2, kAcceptBackoffMax);
    const auto now = std::chrono::steady_clock::now();
    // At most one line a second however the backoff goes; the first failure of an episode logs
    // at once (lastLog starts at the clock's epoch).
    if (now - lastLog >= kAcceptBackoffMax) {
      spdlog::warn(
          "agent socket {}: {} ({} failed attempts since the last message); retrying in {} ms",
          path_, failure, failuresSinceLog, delay.count());
      lastLog = now;
      failuresSinceLog = 0;
    }
    backOff(delay, closedBefore);
  }
}

void SocketServer::backOff(std::chrono::milliseconds delay, std::uint64_t closedBefore) {
  std::unique_lock lock(mu_);
  wake_.wait_for(lock, delay, [&] { return stopping_.load() || closed_ != closedBefore; });
}

void SocketServer::serve(int fd) {
  std::string buffer;
  while (!stopping_.load()) {
    auto line = readLine(fd, buffer, kIdleTimeout, kMaxRequestBytes);
    if (!line) {
      // Too long: say why, then close without reading the rest, which may never end.
      if (line.error().code == base::ErrorCode::kOutOfRange) {
        (void)writeAll(fd,
                       encode(Response::failure(ErrorCode::kDecodeFailure,
                                                "bad request to the vnet-ipam agent",
                                                fmt::format("request {}", line.error().message))),
                       kWriteTimeout);
      }
      break;  // too long, peer closed, idle, or shutting down
    }
    Response response;
    if (auto request = decodeRequest(*line); !request) {
      response = Response::failure(ErrorCode::kDecodeFailure, "bad request to the vnet-ipam agent",
                                   request.error().message);
    } else {
      response = handler_(*request);
    }
    if (!writeAll(fd, encode(response), kWriteTimeout)) break;
  }
  {
    std::lock_guard lock(mu_);
    connections_.erase(fd);
    ::close(fd);
    done_.push_back(std::this_thread::get_id());
    ++closed_;
  }
  wake_.notify_all();
}

void SocketServer::stop() {
  if (listenFd_ < 0) return;
  {
    // Under the lock, so an acceptor about to wait in backOff() sees it.
    std::lock_guard lock(mu_);
    stopping_.store(true);
  }
  wake_.notify_all();
  if (wakeFd_ >= 0) {
    std::uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    for (int fd : connections_)
      ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& t : workers)
    t.join();
  ::close(listenFd_);
  listenFd_ = -1;
  if (wakeFd_ >= 0) ::close(wakeFd_);
  wakeFd_ = -1;
  ::unlink(path_.c_str());
}

}  // namespace vnetipam::agent
