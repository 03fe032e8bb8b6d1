#include "azure-mock/http_server.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "azure-mock/http_reader.h"
#include "azure-mock/wire.h"
#include "lib/base/file.h"
#include "lib/base/host_port.h"

namespace vnetipam::azuremock {

struct HttpServer::Listener {
  int fd = -1;
  int wakeRead = -1;  // the accept loop polls this too; stop() writes to wakeWrite
  int wakeWrite = -1;
  SSL_CTX* tls = nullptr;
  std::mutex mutex;
  std::condition_variable idle;
  std::set<int> connections;  // open connection fds, shut down by stop()
  bool closing = false;

  ~Listener() {
    for (int f : {fd, wakeRead, wakeWrite}) {
      if (f >= 0) ::close(f);
    }
    if (tls != nullptr) SSL_CTX_free(tls);
  }
};

namespace {

std::string tlsError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  std::array<char, 256> text{};
  ERR_error_string_n(e, text.data(), text.size());
  return text.data();
}

// Reads from a plain socket or through TLS. SO_RCVTIMEO bounds every read.
class ConnectionSource final : public ByteSource {
 public:
  ConnectionSource(int fd, SSL* tls) : fd_(fd), tls_(tls) {}
  std::expected<std::size_t, std::string> read(char* out, std::size_t max) override {
    if (tls_ != nullptr) {
      errno = 0;  // SSL_ERROR_SYSCALL leaves the cause in errno, if there is one
      const int n = SSL_read(tls_, out, static_cast<int>(std::min<std::size_t>(max, 1 << 30)));
      if (n > 0) return static_cast<std::size_t>(n);
      const int why = SSL_get_error(tls_, n);
      if (why == SSL_ERROR_ZERO_RETURN) return 0;
      if (why == SSL_ERROR_SYSCALL && errno == 0) return 0;  // closed without close_notify
      return std::unexpected(why == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno))
                                                      : tlsError());
    }
    while (true) {
      const ssize_t n = ::recv(fd_, out, max, 0);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return std::unexpected(std::string(std::strerror(errno)));
    }
  }
  bool write(std::string_view data) {
    while (!data.empty()) {
      if (tls_ != nullptr) {
        const int n = SSL_write(tls_, data.data(), static_cast<int>(data.size()));
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

 private:
  int fd_;
  SSL* tls_;
};

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string serialize(const ArmResponse& response, bool keepAlive) {
  std::string out =
      fmt::format("HTTP/1.1 {} {}\r\n", response.status, reasonPhrase(response.status));
  for (const auto& [name, value] : response.headers) {
    // A header the handler echoes must not be able to split the response.
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos)
      continue;
    out += fmt::format("{}: {}\r\n", name, value);
  }
  // A 204 has no body and, per RFC 9110 (8.6), no Content-Length either.
  if (response.status != 204) out += fmt::format("Content-Length: {}\r\n", response.body.size());
  out += fmt::format("Connection: {}\r\n\r\n", keepAlive ? "keep-alive" : "close");
  if (response.status != 204) out += response.body;
  return out;
}

// "http://host:port" or "https://host:port"; host may be a name, an IPv4 address or [IPv6].
struct ListenAddress {
  bool https = false;
  std::string host;
  std::string port;
};

std::expected<ListenAddress, std::string> parseListenUrl(std::string_view url) {
  ListenAddress a;
  if (url.starts_with("https://")) {
    a.https = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::unexpected("expected an http:// or https:// URL");
  }
  while (url.ends_with('/'))
    url.remove_suffix(1);
  auto split = base::splitHostPort(url);
  if (!split) return std::unexpected(fmt::format("expected http://HOST:PORT: {}", split.error()));
  if (split->host.empty()) return std::unexpected("expected http://HOST:PORT: no host");
  a.host = std::move(split->host);
  a.port = std::to_string(split->port);
  return a;
}

std::string peerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  std::array<char, INET6_ADDRSTRLEN> text{};
  const void* raw =
      addr.ss_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&addr)->sin_addr);
  if (::inet_ntop(addr.ss_family, raw, text.data(), text.size()) == nullptr) return "";
  return text.data();
}

}  // namespace

HttpServer::HttpServer(ServerOptions options, ArmHandler& handler, RouteSync* routes)
    : options_(std::move(options)), handler_(handler), routes_(routes) {}

HttpServer::~HttpServer() { stop(); }

std::expected<void, std::string> HttpServer::start() {
  const auto fail = [&](std::string message) {
    return std::unexpected(fmt::format("--listen {}: {}", options_.listenUrl, message));
  };
  auto address = parseListenUrl(options_.listenUrl);
  if (!address) return fail(address.error());
  listener_ = std::make_unique<Listener>();
  if (address->https) {
    if (options_.certFile.empty() || options_.keyFile.empty())
      return std::unexpected("an https:// listen URL needs --cert and --key");
    listener_->tls = SSL_CTX_new(TLS_server_method());
    if (listener_->tls == nullptr) return fail(tlsError());
    SSL_CTX_set_min_proto_version(listener_->tls, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(listener_->tls, options_.certFile.c_str()) != 1)
      return std::unexpected(fmt::format("--cert {}: {}", options_.certFile, tlsError()));
    if (SSL_CTX_use_PrivateKey_file(listener_->tls, options_.keyFile.c_str(), SSL_FILETYPE_PEM) !=
            1 ||
        SSL_CTX_check_private_key(listener_->tls) != 1)
      return std::unexpected(fmt::format("--key {}: {}", options_.keyFile, tlsError()));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(address->host.c_str(), address->port.c_str(), &hints, &found);
      rc != 0)
    return fail(::gai_strerror(rc));
  std::string lastError = "no address";
  for (addrinfo* ai = found; ai != nullptr && listener_->fd < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 512) == 0) {
      listener_->fd = fd;
    } else {
      lastError = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (listener_->fd < 0) return fail(lastError);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) return fail(std::strerror(errno));
  listener_->wakeRead = wake[0];
  listener_->wakeWrite = wake[1];
  persistIfChanged();
  acceptThread_ = std::thread([this] { acceptLoop(); });
  thread_ = std::thread([this] { background(); });
  return {};
}

void HttpServer::acceptLoop() {
  while (true) {
    std::array<pollfd, 2> fds{{{listener_->fd, POLLIN, 0}, {listener_->wakeRead, POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;  // stop()
    const int fd = ::accept4(listener_->fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
        spdlog::warn("accept: {}", std::strerror(errno));
      continue;
    }
    const timeval timeout{.tv_sec = options_.idleTimeout.count(), .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    {
      std::lock_guard lock(listener_->mutex);
      if (listener_->closing || listener_->connections.size() >= options_.maxConnections) {
        ::close(fd);
        continue;
      }
      listener_->connections.insert(fd);
    }
    std::thread([this, fd] {
      serveConnection(fd, peerAddress(fd));
      std::lock_guard lock(listener_->mutex);
      listener_->connections.erase(fd);
      ::close(fd);
      listener_->idle.notify_all();
    }).detach();
  }
}

void HttpServer::serveConnection(int fd, std::string peer) {
  std::unique_ptr<SSL, decltype(&SSL_free)> tls(nullptr, SSL_free);
  if (listener_->tls != nullptr) {
    tls.reset(SSL_new(listener_->tls));
    if (!tls || SSL_set_fd(tls.get(), fd) != 1 || SSL_accept(tls.get()) != 1) {
      spdlog::debug("TLS handshake with {} failed: {}", peer, tlsError());
      return;
    }
  }
  ConnectionSource connection(fd, tls.get());
  HttpRequestReader reader(connection, {.maxHeaderBytes = options_.maxHeaderBytes,
                                        .maxHeaderCount = options_.maxHeaderCount,
                                        .maxBodyBytes = options_.maxBodyBytes});
  bool keepAlive = true;
  while (keepAlive) {
    const auto started = std::chrono::steady_clock::now();
    ArmRequest in;
    ArmResponse out;
    auto head = reader.readHead();
    std::expected<std::string, ReadFailure> body;
    if (head) {
      in.method = head->method;
      const auto q = head->target.find('?');
      in.path = head->target.substr(0, q);
      if (q != std::string::npos) in.query = head->target.substr(q + 1);
      in.headers = head->headers;
      in.peerAddress = peer;
      keepAlive = head->keepAlive;
      const bool fits = head->chunked || head->contentLength.value_or(0) <= options_.maxBodyBytes;
      if (head->expectContinue && fits && !connection.write("HTTP/1.1 100 Continue\r\n\r\n"))
        return;
      body = reader.readBody(*head);
    }
    const ReadFailure* failure = !head ? &head.error() : !body ? &body.error() : nullptr;
    if (failure != nullptr) {
      if (failure->status == 0) {
        if (!failure->message.empty())
          spdlog::debug("connection from {}: {}", peer, failure->message);
        return;
      }
      // The stream cannot be framed past this point: answer and close.
      out = error(failure->status, failure->code, failure->message);
      keepAlive = false;
    } else {
      in.body = std::move(*body);
      out = handler_.handle(in);
    }
    if (out.delay.count() > 0) std::this_thread::sleep_for(out.delay);
    if (!connection.write(serialize(out, keepAlive))) return;
    if (failure != nullptr) {
      // Closing with unread bytes in the socket makes the kernel send a reset, which can destroy
      // the answer before the client reads it; and a client that sends its whole body before it
      // reads (most do) is still sending. Read and discard what follows, without keeping it,
      // until the client closes or a bound is reached.
      const timeval drainTimeout{.tv_sec = 2, .tv_usec = 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &drainTimeout, sizeof(drainTimeout));
      constexpr std::size_t kMaxDrainBytes = 64 * 1024 * 1024;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      std::array<char, 16 * 1024> scratch{};
      for (std::size_t drained = 0;
           drained < kMaxDrainBytes && std::chrono::steady_clock::now() < deadline;) {
        // The raw socket, not TLS: the bytes are thrown away, and a TLS read can end early on
        // a record the client had not finished sending.
        const ssize_t n = ::recv(fd, scratch.data(), scratch.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        drained += static_cast<std::size_t>(n);
      }
    }
    // Never the query or body: they can carry client secrets (token endpoints).
    spdlog::info("{} {} -> {} ({} ms)", in.method.empty() ? "-" : in.method,
                 in.path.empty() ? "-" : in.path, out.status,
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count());
    if (!in.method.empty() && in.method != "GET") persistIfChanged();
  }
  if (tls) SSL_shutdown(tls.get());
}

void HttpServer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (listener_) {
    if (acceptThread_.joinable()) {
      const char byte = 0;
      [[maybe_unused]] const auto ignored = ::write(listener_->wakeWrite, &byte, 1);
      acceptThread_.join();
    }
    std::unique_lock lock(listener_->mutex);
    listener_->closing = true;
    // Wakes every connection blocked in a read; each closes its own fd.
    for (int fd : listener_->connections)
      ::shutdown(fd, SHUT_RDWR);
    listener_->idle.wait(lock, [this] { return listener_->connections.empty(); });
  }
  persistIfChanged();
}

void HttpServer::background() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    handler_.tick();
    if (routes_ != nullptr) {
      // sync() only calls ip(8) for differences, so every tick is cheap; a failed change is
      // retried on the next one.
      for (const auto& failure : routes_->sync(handler_.snapshotRoutes().first))
        spdlog::warn("SDN route: {}", failure);
    }
    persistIfChanged();
    lock.lock();
    wake_.wait_for(lock, options_.tickInterval, [this] { return stopping_; });
  }
}

void HttpServer::persistIfChanged() {
  if (options_.stateFile.empty()) return;
  std::lock_guard lock(persistMutex_);
  auto [doc, revision] = handler_.stateDocument();
  if (revision == persistedRevision_) return;
  const std::filesystem::path path(options_.stateFile);
  if (auto ok =
          base::writeFileAtomically(path.parent_path(), path.filename().string(), doc.dump(2));
      !ok) {
    spdlog::error("persisting state: {}", ok.error().message);
    return;
  }
  persistedRevision_ = revision;
}

}  // namespace vnetipam::azuremock
