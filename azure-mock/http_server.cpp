// cpprest's U() macro breaks {fmt}'s templates; we never use it.
#define _TURN_OFF_PLATFORM_STRING
#include "azure-mock/http_server.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <boost/asio/ssl.hpp>
#include <cpprest/http_listener.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "azure-mock/wire.h"

namespace vnetipam::azuremock {

namespace http = web::http;

struct HttpServer::Listener {
  std::unique_ptr<http::experimental::listener::http_listener> listener;
  bool opened = false;
};

namespace {

std::expected<std::string, std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void reply(http::http_request& request, const ArmResponse& response) {
  http::http_response out(static_cast<http::status_code>(response.status));
  out.set_body(std::vector<unsigned char>(response.body.begin(), response.body.end()));
  for (const auto& [name, value] : response.headers)
    out.headers()[name] = value;
  request.reply(out).then([](pplx::task<void> t) {
    try {
      t.get();
    } catch (const std::exception& e) {
      spdlog::debug("reply failed: {}", e.what());  // the client went away
    }
  });
}

}  // namespace

std::expected<void, std::string> writeFileAtomically(const std::string& path,
                                                     const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return std::unexpected(fmt::format("open {}: {}", tmp, std::strerror(errno)));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return std::unexpected(fmt::format("write {}: {}", tmp, std::strerror(e)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return std::unexpected(fmt::format("fsync {}: {}", tmp, std::strerror(errno)));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return std::unexpected(fmt::format("rename {} to {}: {}", tmp, path, std::strerror(errno)));
  return {};
}

HttpServer::HttpServer(ServerOptions options, ArmHandler& handler, RouteSync* routes)
    : options_(std::move(options)), handler_(handler), routes_(routes) {}

HttpServer::~HttpServer() { stop(); }

std::expected<void, std::string> HttpServer::start() {
  http::experimental::listener::http_listener_config config;
  const bool https = options_.listenUrl.starts_with("https://");
  if (!https && !options_.listenUrl.starts_with("http://"))
    return std::unexpected(
        fmt::format("--listen {}: expected an http:// or https:// URL", options_.listenUrl));
  if (https) {
    if (options_.certFile.empty() || options_.keyFile.empty())
      return std::unexpected("an https:// listen URL needs --cert and --key");
    auto cert = readFile(options_.certFile);
    if (!cert) return std::unexpected(cert.error());
    auto key = readFile(options_.keyFile);
    if (!key) return std::unexpected(key.error());
    // Loaded once here; the callback runs per listener and only hands the bytes to OpenSSL.
    config.set_ssl_context_callback([certPem = std::move(*cert),
                                     keyPem = std::move(*key)](boost::asio::ssl::context& ctx) {
      ctx.set_options(boost::asio::ssl::context::default_workarounds |
                      boost::asio::ssl::context::no_sslv2 | boost::asio::ssl::context::no_sslv3 |
                      boost::asio::ssl::context::no_tlsv1 | boost::asio::ssl::context::no_tlsv1_1);
      ctx.use_certificate_chain(boost::asio::buffer(certPem));
      ctx.use_private_key(boost::asio::buffer(keyPem), boost::asio::ssl::context::pem);
    });
  }
  listener_ = std::make_unique<Listener>();
  try {
    listener_->listener = std::make_unique<http::experimental::listener::http_listener>(
        web::uri(options_.listenUrl), config);
  } catch (const std::exception& e) {
    return std::unexpected(fmt::format("--listen {}: {}", options_.listenUrl, e.what()));
  }
  listener_->listener->support([this](http::http_request request) {
    const auto started = std::chrono::steady_clock::now();
    ArmRequest in;
    in.method = request.method();
    const auto& uri = request.request_uri();
    in.path = uri.path();
    in.query = uri.query();
    for (const auto& [name, value] : request.headers())
      in.headers.emplace_back(name, value);
    ArmResponse out;
    // Refuse an oversized body before reading it; the handler refuses it again by size if the
    // client did not announce a length.
    std::uint64_t announced = 0;
    if (request.headers().has("Content-Length") &&
        (announced = request.headers().content_length()) > options_.maxBodyBytes) {
      out = error(413, "RequestEntityTooLarge",
                  fmt::format("The request content size {} exceeds the maximum of {} bytes.",
                              announced, options_.maxBodyBytes));
    } else {
      try {
        const auto body = request.extract_vector().get();
        in.body.assign(body.begin(), body.end());
        out = handler_.handle(in);
      } catch (const std::exception& e) {
        out = error(400, "InvalidRequestFormat",
                    fmt::format("Cannot parse the request: {}", e.what()));
      }
    }
    if (out.delay.count() > 0) std::this_thread::sleep_for(out.delay);
    reply(request, out);
    // Never the query or body: they can carry client secrets (token endpoints).
    spdlog::info("{} {} -> {} ({} ms)", in.method, in.path, out.status,
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count());
    if (in.method != "GET") persistIfChanged();
  });
  try {
    listener_->listener->open().wait();
    listener_->opened = true;
  } catch (const std::exception& e) {
    return std::unexpected(fmt::format("--listen {}: {}", options_.listenUrl, e.what()));
  }
  persistIfChanged();
  thread_ = std::thread([this] { background(); });
  return {};
}

void HttpServer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (listener_ && listener_->listener && listener_->opened) {
    try {
      listener_->listener->close().wait();
    } catch (const std::exception& e) {
      spdlog::warn("closing the listener: {}", e.what());
    }
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
  if (auto ok = writeFileAtomically(options_.stateFile, doc.dump(2)); !ok) {
    spdlog::error("persisting state: {}", ok.error());
    return;
  }
  persistedRevision_ = revision;
}

}  // namespace vnetipam::azuremock
