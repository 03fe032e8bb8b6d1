#include "lib/observe/http_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/base/text.h"

// How the work is split, and why. cpp-httplib parses requests, routes them and writes the
// answers. Its own listener is not used: it gives each connection a pool thread from accept to
// close, so a handful of clients that connect and send nothing (or a byte a second) hold every
// thread and the kubelet's liveness probe waits behind them; its timeouts are per read, not per
// request, it binds with SO_REUSEPORT, and an accept() error other than EMFILE ends its listening
// for good. Instead one poll() thread owns every connection: it
// accepts, collects a request until it is complete (within a size bound and a deadline), hands
// the complete request to a small pool that runs httplib on it in memory, and writes the answer
// back without blocking. A pool thread therefore never waits on a client, and a slow or idle
// client costs one descriptor and at most one request's bytes, up to a bounded number of
// connections.
namespace vnetipam::observe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A scrape or probe request is a request line and a few headers; a bigger head gets 431.
constexpr std::size_t kMaxHeadBytes = 16 * 1024;
// No endpoint takes a body; a small one is read so a POST still gets its 405.
constexpr std::size_t kMaxBodyBytes = 4 * 1024;
// Open connections kept at once. At the limit a new connection displaces the longest-waiting
// one that is not being answered, so a probe always gets in and descriptors stay bounded.
constexpr std::size_t kMaxConnections = 128;
// Pool threads running handlers: /metrics serialization and the health checks, nothing that
// waits on a client.
constexpr std::size_t kWorkers = 2;
// A connection (new, or kept alive after an answer) with no request byte for this long is closed.
constexpr milliseconds kIdleTimeout{1000};
// The whole request must have arrived this long after the connection became ready for it;
// otherwise 408 and close. Per-read timeouts would let a client sending a byte a second stay.
constexpr milliseconds kRequestDeadline{2000};
// The whole answer must be taken by the client within this long, or the connection is closed.
constexpr milliseconds kWriteDeadline{5000};
// After a final answer the write side is shut and input drained for up to this long, so unread
// request bytes do not turn the close into a reset that destroys the answer in flight.
constexpr milliseconds kLingerTimeout{500};
constexpr std::size_t kMaxLingerBytes = 256 * 1024;
// Requests answered on one keep-alive connection before it is closed.
constexpr std::size_t kMaxRequestsPerConnection = 100;
// New connections taken per loop turn, so a connection flood cannot starve reads.
constexpr int kAcceptBatch = 64;
// When accept() runs out of descriptors the listener is left alone this long instead of spinning.
constexpr milliseconds kAcceptBackoff{100};

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

// One complete request for httplib to read and the bytes of its answer; never touches the
// socket, so a pool thread cannot block on the client.
class Exchange final : public httplib::Stream {
 public:
  explicit Exchange(std::string request) : in_(std::move(request)) {}

  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    size = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, size);
    pos_ += size;
    return static_cast<ssize_t>(size);
  }
  using httplib::Stream::write;
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  // Only fills REMOTE_ADDR and friends in the request, which no handler here reads.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

  std::string takeOutput() { return std::move(out_); }

 private:
  std::string in_;
  std::size_t pos_ = 0;
  std::string out_;
};

// httplib's request processing, without its listener (see the top of this file).
class Router final : public httplib::Server {
 public:
  // Answers one request read from `exchange`. `last`: the connection closes after it (the
  // answer says so). Returns whether the connection may stay open.
  bool answer(Exchange& exchange, bool last) {
    bool clientCloses = false;
    bool ok = process_request(exchange, last, clientCloses, [](httplib::Request& req) {
      // The answer is sent as the handler wrote it: no gzip/brotli (the library is built with
      // both) and no byte ranges.
      req.headers.erase("Accept-Encoding");
      req.headers.erase("Range");
      req.ranges.clear();
    });
    return ok && !clientCloses && !last;
  }
};

// httplib::Server's constructor sets SIGPIPE to SIG_IGN for the whole process. Every write here
// uses MSG_NOSIGNAL, so the embedding program's own choice is put back.
std::unique_ptr<Router> makeRouter() {
  struct sigaction previous {};
  ::sigaction(SIGPIPE, nullptr, &previous);
  auto router = std::make_unique<Router>();
  ::sigaction(SIGPIPE, &previous, nullptr);
  return router;
}

// The answers given before a request reaches httplib (its status texts are not in its header).
std::string plainAnswer(int status, std::string_view body) {
  std::string_view reason = status == 400   ? "Bad Request"
                            : status == 408 ? "Request Timeout"
                            : status == 411 ? "Length Required"
                            : status == 413 ? "Payload Too Large"
                            : status == 431 ? "Request Header Fields Too Large"
                                            : "Internal Server Error";
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: "
      "close\r\n\r\n{}",
      status, reason, body.size(), body);
}

// Where the first request in `in` ends, or the status to refuse it with. Only the framing is
// read here (end of head, Content-Length); httplib parses the rest.
struct Framing {
  enum Kind { kIncomplete, kComplete, kRefused } kind = kIncomplete;
  std::size_t length = 0;  // kComplete: bytes of the request
  int status = 0;          // kRefused
  std::string_view why;    // kRefused: the answer's body
};

Framing frame(std::string_view in) {
  auto end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (in.size() > kMaxHeadBytes) {
      return {Framing::kRefused, 0, 431, "request head over 16 KiB\n"};
    }
    return {};
  }
  if (end + 4 > kMaxHeadBytes) return {Framing::kRefused, 0, 431, "request head over 16 KiB\n"};
  std::string_view head = in.substr(0, end + 2);
  std::size_t bodyBytes = 0;
  bool sawLength = false;
  for (auto pos = head.find("\r\n") + 2; pos < head.size();) {
    auto eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // httplib skips it too
    std::string_view name = line.substr(0, colon);
    std::string_view value = text::trimOws(line.substr(colon + 1));
    if (text::iequals(name, "transfer-encoding")) {
      return {Framing::kRefused, 0, 411, "request bodies need a Content-Length\n"};
    }
    if (!text::iequals(name, "content-length")) continue;
    std::size_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || ptr != value.data() + value.size() || (sawLength && n != bodyBytes)) {
      return {Framing::kRefused, 0, 400, "bad Content-Length\n"};
    }
    if (n > kMaxBodyBytes) return {Framing::kRefused, 0, 413, "request body over 4 KiB\n"};
    bodyBytes = n;
    sawLength = true;
  }
  if (in.size() < end + 4 + bodyBytes) return {};
  return {Framing::kComplete, end + 4 + bodyBytes, 0, {}};
}

enum class Phase {
  kReading,    // waiting for (the rest of) a request
  kAnswering,  // a complete request is with the pool; the socket is not polled
  kWriting,    // sending the answer
  kLingering,  // final answer sent, write side shut, discarding input until the client closes
};

struct Connection {
  Fd fd;
  Phase phase = Phase::kReading;
  std::string in;   // received, not yet handed to the pool (may hold pipelined requests)
  std::string out;  // answer bytes not yet sent
  std::size_t sent = 0;
  bool closeAfterWrite = false;
  std::size_t answered = 0;
  std::size_t drained = 0;
  Clock::time_point readySince;  // when the current phase's clock started
  Clock::time_point deadline;
};

struct Answer {
  std::uint64_t id = 0;
  std::string bytes;
  bool keepAlive = false;
};

}  // namespace

struct HttpServer::State {
  std::string address;
  std::shared_ptr<prometheus::Registry> registry;
  std::mutex checksMutex;
  std::vector<Check> checks;
  std::unique_ptr<Router> router = makeRouter();
  Fd listenFd;
  Fd wakeFd;  // eventfd: stop() and finished answers wake the loop
  std::thread thread;
  std::unique_ptr<httplib::ThreadPool> pool;
  std::atomic<int> port{0};
  std::atomic<bool> stopping{false};
  bool started = false;

  std::mutex answersMutex;
  std::vector<Answer> answers;

  // Owned by the loop thread.
  std::unordered_map<std::uint64_t, Connection> connections;
  std::uint64_t nextId = 1;
  Clock::time_point acceptPausedUntil;

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

  void routes() {
    using httplib::Request;
    using httplib::Response;
    router->set_pre_routing_handler([](const Request& req, Response& res) {
      if (req.method == "GET" || req.method == "HEAD") {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      res.status = 405;
      res.set_content("only GET and HEAD\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    });
    router->Get("/metrics", [this](const Request&, Response& res) {
      prometheus::TextSerializer serializer;
      res.set_content(serializer.Serialize(registry->Collect()),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    auto probe = [this](bool readiness) {
      return [this, readiness](const Request&, Response& res) {
        std::string failures = runChecks(readiness);
        if (failures.empty()) {
          res.set_content("ok\n", "text/plain");
        } else {
          res.status = 500;
          res.set_content(failures, "text/plain");
        }
      };
    };
    router->Get("/healthz", probe(false));
    router->Get("/readyz", probe(true));
    // Called for every status >= 400; only fills in answers that have no body yet (404, and the
    // 400/414 httplib gives a request it cannot parse).
    router->set_error_handler(
        httplib::Server::HandlerWithResponse([](const Request&, Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          res.set_content(
              res.status == 404 ? "serves /metrics, /healthz and /readyz\n" : "malformed request\n",
              "text/plain");
          return httplib::Server::HandlerResponse::Handled;
        }));
    router->set_keep_alive_timeout(
        std::chrono::duration_cast<std::chrono::seconds>(kIdleTimeout).count());
    router->set_keep_alive_max_count(kMaxRequestsPerConnection);
    router->set_payload_max_length(kMaxBodyBytes);
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wakeFd.get(), &one, sizeof one);
  }

  // ---- the loop thread ------------------------------------------------------------------------

  void serve() {
    std::vector<pollfd> fds;
    std::vector<std::uint64_t> ids;
    while (!stopping.load()) {
      auto now = Clock::now();
      expire(now);
      fds.clear();
      ids.clear();
      fds.push_back({.fd = wakeFd.get(), .events = POLLIN, .revents = 0});
      const bool accepting = now >= acceptPausedUntil;
      fds.push_back({.fd = accepting ? listenFd.get() : -1, .events = POLLIN, .revents = 0});
      Clock::time_point next = accepting ? now + std::chrono::hours(1) : acceptPausedUntil;
      for (auto& [id, c] : connections) {
        if (c.phase == Phase::kAnswering) continue;
        short events = c.phase == Phase::kWriting ? POLLOUT : POLLIN;
        fds.push_back({.fd = c.fd.get(), .events = events, .revents = 0});
        ids.push_back(id);
        next = std::min(next, c.deadline);
      }
      auto wait = std::chrono::ceil<milliseconds>(next - now).count();
      int r = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<long>(wait, 0, 60000)));
      if (r < 0) {
        if (errno != EINTR) std::this_thread::sleep_for(milliseconds(10));  // ENOMEM: retry
        continue;
      }
      if (fds[0].revents != 0) {
        std::uint64_t count = 0;
        [[maybe_unused]] ssize_t n = ::read(wakeFd.get(), &count, sizeof count);
        takeAnswers();
      }
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (fds[i + 2].revents == 0) continue;
        auto it = connections.find(ids[i]);
        if (it == connections.end()) continue;
        if (!progress(ids[i], it->second)) connections.erase(it);
      }
      if ((fds[1].revents & POLLIN) != 0) acceptSome();
    }
    connections.clear();
  }

  // Returns false when the connection is done and should be closed.
  bool progress(std::uint64_t id, Connection& c) {
    switch (c.phase) {
      case Phase::kReading: return readMore(id, c);
      case Phase::kWriting: return writeMore(id, c);
      case Phase::kLingering: return drain(c);
      case Phase::kAnswering: return true;
    }
    return false;
  }

  bool readMore(std::uint64_t id, Connection& c) {
    char buf[16 * 1024];
    ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (n == 0) return false;  // the client closed, maybe mid-request: nothing to answer
    const bool first = c.in.empty();
    c.in.append(buf, static_cast<std::size_t>(n));
    if (first) c.deadline = c.readySince + kRequestDeadline;
    return dispatch(id, c);
  }

  // Hands the first complete request in `c.in` to the pool, refuses a bad one, or waits.
  bool dispatch(std::uint64_t id, Connection& c) {
    Framing f = frame(c.in);
    if (f.kind == Framing::kIncomplete) return true;
    if (f.kind == Framing::kRefused) {
      c.in.clear();
      return startWriting(id, c, plainAnswer(f.status, f.why), /*keepAlive=*/false);
    }
    std::string request = c.in.substr(0, f.length);
    c.in.erase(0, f.length);
    c.phase = Phase::kAnswering;
    const bool last = ++c.answered >= kMaxRequestsPerConnection;
    pool->enqueue([this, id, last, request = std::move(request)] {
      Answer a{.id = id, .bytes = {}, .keepAlive = false};
      if (!stopping.load()) {
        try {
          Exchange exchange(request);
          a.keepAlive = router->answer(exchange, last);
          a.bytes = exchange.takeOutput();
        } catch (const std::exception&) {
          a.bytes = plainAnswer(500, "internal error\n");
          a.keepAlive = false;
        }
      }
      {
        std::lock_guard lock(answersMutex);
        answers.push_back(std::move(a));
      }
      wake();
    });
    return true;
  }

  void takeAnswers() {
    std::vector<Answer> ready;
    {
      std::lock_guard lock(answersMutex);
      ready.swap(answers);
    }
    for (Answer& a : ready) {
      auto it = connections.find(a.id);
      if (it == connections.end()) continue;
      if (!startWriting(a.id, it->second, std::move(a.bytes), a.keepAlive)) {
        connections.erase(it);
      }
    }
  }

  bool startWriting(std::uint64_t id, Connection& c, std::string bytes, bool keepAlive) {
    c.phase = Phase::kWriting;
    c.out = std::move(bytes);
    c.sent = 0;
    c.closeAfterWrite = !keepAlive;
    c.readySince = Clock::now();
    c.deadline = c.readySince + kWriteDeadline;
    return writeMore(id, c);  // usually all of it fits the socket buffer right away
  }

  bool writeMore(std::uint64_t id, Connection& c) {
    while (c.sent < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.sent += static_cast<std::size_t>(n);
    }
    c.out.clear();
    c.out.shrink_to_fit();
    c.readySince = Clock::now();
    if (c.closeAfterWrite) {
      ::shutdown(c.fd.get(), SHUT_WR);
      c.phase = Phase::kLingering;
      c.in.clear();
      c.deadline = c.readySince + kLingerTimeout;
      return true;
    }
    c.phase = Phase::kReading;
    c.deadline = c.readySince + (c.in.empty() ? kIdleTimeout : kRequestDeadline);
    return dispatch(id, c);  // a pipelined request may already be here
  }

  bool drain(Connection& c) {
    char buf[16 * 1024];
    ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.drained += static_cast<std::size_t>(n);
    return n > 0 && c.drained <= kMaxLingerBytes;
  }

  // Deadlines: an idle connection is closed, an incomplete request gets 408, a stalled answer or
  // a lingering close ends.
  void expire(Clock::time_point now) {
    for (auto it = connections.begin(); it != connections.end();) {
      Connection& c = it->second;
      bool keep = true;
      if (c.phase != Phase::kAnswering && c.deadline <= now) {
        if (c.phase == Phase::kReading && !c.in.empty()) {
          c.in.clear();
          keep = startWriting(it->first, c, plainAnswer(408, "request not complete in time\n"),
                              /*keepAlive=*/false);
        } else {
          keep = false;
        }
      }
      it = keep ? std::next(it) : connections.erase(it);
    }
  }

  // At the connection limit: closes the connection that has waited longest, preferring those
  // already closing, then those waiting for a request, then those being written to. Never one
  // whose request is with the pool. False when every connection is.
  bool evictOne() {
    auto rank = [](Phase p) {
      switch (p) {
        case Phase::kLingering: return 0;
        case Phase::kReading: return 1;
        case Phase::kWriting: return 2;
        case Phase::kAnswering: return 3;
      }
      return 3;
    };
    auto victim = connections.end();
    for (auto it = connections.begin(); it != connections.end(); ++it) {
      if (it->second.phase == Phase::kAnswering) continue;
      if (victim == connections.end() || rank(it->second.phase) < rank(victim->second.phase) ||
          (rank(it->second.phase) == rank(victim->second.phase) &&
           it->second.readySince < victim->second.readySince)) {
        victim = it;
      }
    }
    if (victim == connections.end()) return false;
    connections.erase(victim);
    return true;
  }

  void acceptSome() {
    for (int i = 0; i < kAcceptBatch; ++i) {
      Fd client(::accept4(listenFd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (client.get() < 0) {
        if (errno == EINTR) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: shed an idle connection, and leave the backlog alone for a
          // moment rather than spin on a listener that stays readable.
          evictOne();
          acceptPausedUntil = Clock::now() + kAcceptBackoff;
          return;
        }
        // EAGAIN: nothing left. Anything else (ECONNABORTED, a network error on a pending
        // connection) concerns that one connection only.
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        continue;
      }
      if (connections.size() >= kMaxConnections && !evictOne()) continue;  // closes `client`
      Connection c;
      c.fd = std::move(client);
      c.readySince = Clock::now();
      c.deadline = c.readySince + kIdleTimeout;
      connections.emplace(nextId++, std::move(c));
    }
  }
};

std::expected<base::HostPort, std::string> parseHostPort(const std::string& address) {
  auto out = base::splitHostPort(address);
  if (!out) return std::unexpected("address " + out.error());
  if (out->host.empty()) out->host = "0.0.0.0";
  return out;
}

HttpServer::HttpServer(std::string address, std::shared_ptr<prometheus::Registry> registry)
    : state_(std::make_unique<State>()) {
  state_->address = std::move(address);
  state_->registry = std::move(registry);
  state_->routes();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::addCheck(std::string name, Probe probe, HealthCheck check) {
  std::lock_guard lock(state_->checksMutex);
  state_->checks.push_back(Check{std::move(name), probe, std::move(check)});
}

std::expected<void, std::string> HttpServer::start() {
  if (state_->started) return {};
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
  // Not SO_REUSEPORT: a second daemon on the same port must fail to start, not share it.
  Fd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return std::unexpected(
        fmt::format("listening on {}: socket: {}", state_->address, std::strerror(errno)));
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A full accept queue drops SYNs and the client's connect() waits a second to retry: with a
  // deep queue a flood of connections is taken (and shed) by the loop instead, probes included.
  if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0 ||
      ::listen(fd.get(), SOMAXCONN) != 0) {
    return std::unexpected(
        fmt::format("listening on {}: {}", state_->address, std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  state_->port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (wake.get() < 0) {
    return std::unexpected(
        fmt::format("listening on {}: eventfd: {}", state_->address, std::strerror(errno)));
  }
  state_->wakeFd = std::move(wake);
  state_->listenFd = std::move(fd);
  state_->stopping = false;
  state_->pool = std::make_unique<httplib::ThreadPool>(kWorkers);
  state_->thread = std::thread([s = state_.get()] { s->serve(); });
  state_->started = true;
  return {};
}

void HttpServer::stop() {
  if (!state_ || !state_->started) return;
  state_->stopping = true;
  state_->wake();
  state_->thread.join();  // closes every connection
  // Requests already with the pool are skipped (stopping); the threads are joined.
  state_->pool->shutdown();
  state_->pool.reset();
  state_->answers.clear();
  state_->listenFd.reset();
  state_->wakeFd.reset();
  state_->started = false;
}

int HttpServer::port() const { return state_->port.load(); }

}  // namespace vnetipam::observe
