// cpprest's U() macro breaks {fmt}'s templates; we never use it.
#define _TURN_OFF_PLATFORM_STRING
#include "lib/http/cpprest_transport.h"

#include <algorithm>
#include <cerrno>
#include <exception>
#include <map>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/ssl.hpp>
#include <cpprest/http_client.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pplx/pplxtasks.h>

namespace vnetipam::http {

namespace wh = web::http;
using wh::client::http_client;
using wh::client::http_client_config;

struct CpprestTransportImpl::Clients {
  std::unique_ptr<http_client> requests;
  std::unique_ptr<http_client> streams;
};

namespace {

// The trust store (the system's CAs plus `caPem`) for every connection that trusts `caPem`, built
// once per process and shared: an SSL_CTX holds a reference to it. The ASIO client builds a fresh
// ssl::context per connection and loads the system's CA bundle into it, about 1 MiB of parsed
// certificates; with tens of pooled connections (the controller keeps one per busy worker, to the
// API server and to ARM) those copies were most of the process's memory. Null when `caPem` does
// not parse: the caller then adds it to its own context, which throws as it always did.
X509_STORE* sharedTrustStore(const std::string& caPem) {
  static std::mutex mutex;
  // Never destroyed: a connection may still be set up on a cpprest thread during exit.
  static auto* stores = new std::map<std::string, X509_STORE*>();
  std::lock_guard lock(mutex);
  if (auto found = stores->find(caPem); found != stores->end()) return found->second;
  try {
    // Built the way each connection's context would be, so what is trusted does not change.
    boost::asio::ssl::context model(boost::asio::ssl::context::sslv23);
    model.set_default_verify_paths();
    if (!caPem.empty()) model.add_certificate_authority(boost::asio::buffer(caPem));
    X509_STORE* store = SSL_CTX_get_cert_store(model.native_handle());
    if (store == nullptr || X509_STORE_up_ref(store) != 1) return nullptr;
    stores->emplace(caPem, store);
    return store;
  } catch (const std::exception&) {
    return nullptr;
  }
}

http_client_config makeConfig(const CpprestTransportOptions& options,
                              std::chrono::seconds timeout) {
  http_client_config config;
  config.set_timeout(timeout);
  config.set_validate_certificates(!options.insecureSkipTlsVerify);
  // Called per connection, after the client has built its context; the PEM bytes are captured
  // once, and the context's own copy of the system's CAs is replaced by the shared store.
  config.set_ssl_context_callback([caPem = options.caPem, certPem = options.clientCertPem,
                                   keyPem = options.clientKeyPem](boost::asio::ssl::context& ctx) {
    if (X509_STORE* shared = sharedTrustStore(caPem)) {
      SSL_CTX_set1_cert_store(ctx.native_handle(), shared);  // frees the context's own store
    } else if (!caPem.empty()) {
      ctx.add_certificate_authority(boost::asio::buffer(caPem));
    }
    if (!certPem.empty()) {
      ctx.use_certificate_chain(boost::asio::buffer(certPem));
      ctx.use_private_key(boost::asio::buffer(keyPem), boost::asio::ssl::context::pem);
    }
  });
  return config;
}

wh::http_request toCpprest(const HttpRequest& request) {
  wh::http_request out(wh::method(request.method));
  out.set_request_uri(request.target);
  for (const auto& [name, value] : request.headers)
    out.headers().add(name, value);
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    // The Content-Type header set above wins over the default of this overload.
    out.set_body(std::vector<unsigned char>(request.body.begin(), request.body.end()));
  }
  return out;
}

HttpResponse headOf(const wh::http_response& response) {
  HttpResponse out;
  out.status = response.status_code();
  for (const auto& [name, value] : response.headers())
    out.headers[name] = value;
  return out;
}

bool isConnectError(const std::error_code& ec) {
  switch (ec.value()) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EADDRNOTAVAIL: return true;
    default: return false;
  }
}

// Maps what cpprest throws to our error. A refused connection means the request never left; any
// other failure may have happened after the server acted, so its outcome is unknown.
Error errorOf(std::exception_ptr failure, const HttpRequest& request) {
  const std::string what = fmt::format("{} {}", request.method, request.target);
  try {
    std::rethrow_exception(std::move(failure));
  } catch (const pplx::task_canceled&) {
    return Error{ErrorCode::kCancelled, fmt::format("{}: cancelled", what)};
  } catch (const wh::http_exception& e) {
    const ErrorCode code =
        isConnectError(e.error_code()) ? ErrorCode::kConnectFailed : ErrorCode::kTransport;
    return Error{code, fmt::format("{}: {}", what, e.what())};
  } catch (const std::exception& e) {
    return Error{ErrorCode::kTransport, fmt::format("{}: {}", what, e.what())};
  }
}

}  // namespace

Result<std::unique_ptr<CpprestTransportImpl>> CpprestTransportImpl::create(
    CpprestTransportOptions options) {
  if (!options.clientCertPem.empty() && options.clientKeyPem.empty()) {
    return fail(ErrorCode::kConfig, "client certificate given without its client key");
  }
  try {
    auto clients = std::make_unique<Clients>();
    const web::uri base(options.server);
    clients->requests =
        std::make_unique<http_client>(base, makeConfig(options, options.requestTimeout));
    clients->streams =
        std::make_unique<http_client>(base, makeConfig(options, options.streamTimeout));
    return std::unique_ptr<CpprestTransportImpl>(new CpprestTransportImpl(std::move(clients)));
  } catch (const std::exception& e) {
    return fail(ErrorCode::kConfig, fmt::format("server URL \"{}\": {}", options.server, e.what()));
  }
}

CpprestTransportImpl::CpprestTransportImpl(std::unique_ptr<Clients> clients)
    : clients_(std::move(clients)) {}

CpprestTransportImpl::~CpprestTransportImpl() = default;

Result<HttpResponse> CpprestTransportImpl::send(const HttpRequest& request) {
  try {
    wh::http_response response = clients_->requests->request(toCpprest(request)).get();
    HttpResponse out = headOf(response);
    const std::vector<unsigned char> body = response.extract_vector().get();
    out.body.assign(body.begin(), body.end());
    return out;
  } catch (...) {
    return std::unexpected(errorOf(std::current_exception(), request));
  }
}

Result<HttpResponse> CpprestTransportImpl::stream(
    const HttpRequest& request, const std::function<bool(std::string_view)>& onChunk,
    CancelSignal& cancel) {
  // Cancelling the token shuts the socket down, which also ends a read blocked below.
  pplx::cancellation_token_source source;
  const std::uint64_t registration = cancel.onCancel([&source] { source.cancel(); });
  struct Unregister {
    CancelSignal& signal;
    std::uint64_t id;
    ~Unregister() { signal.removeOnCancel(id); }
  } unregister{cancel, registration};

  try {
    // Completes once the headers are parsed; the body keeps arriving into a buffer.
    wh::http_response response =
        clients_->streams->request(toCpprest(request), source.get_token()).get();
    HttpResponse out = headOf(response);
    if (out.status < 200 || out.status > 299) {
      const std::vector<unsigned char> body = response.extract_vector().get();
      out.body.assign(body.begin(), body.end());
      return out;
    }
    auto buffer = response.body().streambuf();
    // A burst of events (5,000 nodes joining) can leave megabytes buffered; taking them in
    // bounded chunks keeps this string and the caller's line buffer small for the whole stream.
    constexpr std::size_t kMaxChunk = 64 * 1024;
    std::string chunk;
    while (!cancel.cancelled()) {
      // Wait for one byte (or the end), then take whatever else has already arrived, so events
      // are delivered as they come rather than when the body ends.
      const auto first = buffer.bumpc().get();
      if (first == concurrency::streams::streambuf<uint8_t>::traits::eof()) break;
      chunk.assign(1, static_cast<char>(first));
      const std::size_t available = std::min(buffer.in_avail(), kMaxChunk - 1);
      if (available > 0) {
        chunk.resize(1 + available);
        const std::size_t got =
            buffer.getn(reinterpret_cast<uint8_t*>(chunk.data() + 1), available).get();
        chunk.resize(1 + got);
      }
      if (!onChunk(chunk)) return out;
    }
    if (cancel.cancelled()) {
      return fail(ErrorCode::kCancelled,
                  fmt::format("{} {}: cancelled", request.method, request.target));
    }
    return out;
  } catch (...) {
    if (cancel.cancelled()) {
      return fail(ErrorCode::kCancelled,
                  fmt::format("{} {}: cancelled", request.method, request.target));
    }
    return std::unexpected(errorOf(std::current_exception(), request));
  }
}

}  // namespace vnetipam::http
