#include "lib/observe/http_server.h"

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vnetipam::observe {
namespace {

// A scrape or probe request is a request line and a few headers; anything bigger is refused.
constexpr std::size_t kMaxRequestBytes = 16 * 1024;
// A client that does not finish its request in this long is dropped, so one stuck client cannot
// hold the (single) serving thread for long.
constexpr int kClientTimeoutMs = 2000;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

struct Check {
  std::string name;
  Probe probe;
  HealthCheck check;
};

void sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away: nothing to do
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string response(int status, std::string_view reason, std::string_view contentType,
                     std::string_view body, bool head) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
      status, reason, contentType, body.size());
  if (!head) out.append(body);
  return out;
}

// Reads until the end of the headers. Returns false on timeout, error or an oversized request.
bool readRequestHead(int fd, std::string& buffer) {
  char chunk[2048];
  while (buffer.find("\r\n\r\n") == std::string::npos) {
    if (buffer.size() > kMaxRequestBytes) return false;
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    int r = ::poll(&p, 1, kClientTimeoutMs);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

struct HttpServer::State {
  std::string address;
  std::shared_ptr<prometheus::Registry> registry;
  std::mutex checksMutex;
  std::vector<Check> checks;
  Fd listenFd;
  Fd wakeRead;
  Fd wakeWrite;
  std::thread thread;
  std::atomic<int> port{0};
  bool started = false;

  std::string runChecks(bool includeReadiness) {
    std::lock_guard lock(checksMutex);
    std::string failures;
    for (const Check& c : checks) {
      if (c.probe == Probe::kReadiness && !includeReadiness) continue;
      auto result = c.check();
      if (!result) failures += fmt::format("{}: {}\n", c.name, result.error());
    }
    return failures;
  }

  std::string handle(std::string_view head) {
    std::string_view line = head.substr(0, head.find("\r\n"));
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
      return response(400, "Bad Request", "text/plain", "malformed request line\n", false);
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const bool headOnly = method == "HEAD";
    if (method != "GET" && !headOnly) {
      return response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
    }
    if (target == "/metrics") {
      prometheus::TextSerializer serializer;
      std::string body = serializer.Serialize(registry->Collect());
      return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, headOnly);
    }
    if (target == "/healthz" || target == "/readyz") {
      std::string failures = runChecks(target == "/readyz");
      if (failures.empty()) return response(200, "OK", "text/plain", "ok\n", headOnly);
      return response(500, "Internal Server Error", "text/plain", failures, headOnly);
    }
    return response(404, "Not Found", "text/plain", "serves /metrics, /healthz and /readyz\n",
                    headOnly);
  }

  void serve() {
    for (;;) {
      pollfd fds[2] = {{.fd = listenFd.get(), .events = POLLIN, .revents = 0},
                       {.fd = wakeRead.get(), .events = POLLIN, .revents = 0}};
      int r = ::poll(fds, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 || (fds[1].revents & POLLIN) != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      Fd client(::accept4(listenFd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (client.get() < 0) continue;  // e.g. ECONNABORTED: the client gave up
      std::string head;
      if (!readRequestHead(client.get(), head)) continue;
      sendAll(client.get(), handle(head));
    }
  }
};

std::expected<HostPort, std::string> parseHostPort(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    return std::unexpected(
        fmt::format("address \"{}\" has no port: use HOST:PORT, e.g. 0.0.0.0:9090", address));
  }
  HostPort out;
  out.host = address.substr(0, colon);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty()) out.host = "0.0.0.0";
  std::string_view portText = std::string_view(address).substr(colon + 1);
  auto [ptr, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), out.port);
  if (ec != std::errc() || ptr != portText.data() + portText.size() || out.port < 0 ||
      out.port > 65535) {
    return std::unexpected(
        fmt::format("address \"{}\" has an invalid port \"{}\": want 0-65535", address, portText));
  }
  return out;
}

HttpServer::HttpServer(std::string address, std::shared_ptr<prometheus::Registry> registry)
    : state_(std::make_unique<State>()) {
  state_->address = std::move(address);
  state_->registry = std::move(registry);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::addCheck(std::string name, Probe probe, HealthCheck check) {
  std::lock_guard lock(state_->checksMutex);
  state_->checks.push_back(Check{std::move(name), probe, std::move(check)});
}

std::expected<void, std::string> HttpServer::start() {
  auto hp = parseHostPort(state_->address);
  if (!hp) return std::unexpected(hp.error());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string portText = std::to_string(hp->port);
  if (int rc = ::getaddrinfo(hp->host.c_str(), portText.c_str(), &hints, &found); rc != 0) {
    return std::unexpected(fmt::format("listening on {}: host \"{}\" is not an IP address ({})",
                                       state_->address, hp->host, ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
  Fd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return std::unexpected(
        fmt::format("listening on {}: socket: {}", state_->address, std::strerror(errno)));
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd.get(), 64) != 0) {
    return std::unexpected(
        fmt::format("listening on {}: {}", state_->address, std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  state_->port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    return std::unexpected(
        fmt::format("listening on {}: pipe: {}", state_->address, std::strerror(errno)));
  }
  state_->wakeRead = Fd(pipeFds[0]);
  state_->wakeWrite = Fd(pipeFds[1]);
  state_->listenFd = std::move(fd);
  state_->thread = std::thread([s = state_.get()] { s->serve(); });
  state_->started = true;
  return {};
}

void HttpServer::stop() {
  if (!state_ || !state_->started) return;
  char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(state_->wakeWrite.get(), &byte, 1);
  state_->thread.join();
  state_->listenFd.reset();
  state_->started = false;
}

int HttpServer::port() const { return state_->port.load(); }

}  // namespace vnetipam::observe
