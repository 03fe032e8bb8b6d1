// The HTTP transport the Kubernetes and Azure clients talk through. A small interface of ours so
// the real implementation (cpprestsdk, cpprest_transport.h) stays in one file and unit tests
// inject an in-memory fake (unit/lib/http/fake_transport.h).
//
// The transport knows about connections, TLS and bytes; it knows nothing of Kubernetes or ARM.
// Status codes are not errors at this level: any response that arrives, 500 included, is a value.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "lib/http/error.h"

namespace vnetipam::http {

// Header names compare case-insensitively, as HTTP says.
struct HeaderNameLess {
  bool operator()(std::string_view a, std::string_view b) const;
  using is_transparent = void;
};
using Headers = std::map<std::string, std::string, HeaderNameLess>;

struct HttpRequest {
  std::string method;  // "GET", "POST", "PUT", "PATCH", "DELETE"
  std::string target;  // path and query, already percent-encoded: "/api/v1/nodes?limit=500"
  Headers headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;  // for stream(): the body only when the status is not 2xx
};

// A cancellation a caller can trigger from any thread, e.g. on shutdown or loss of a lease.
// Callbacks registered with onCancel run once, on the thread calling cancel(), or at once if the
// signal was already cancelled. Thread-safe.
class CancelSignal {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Returns an id for removeOnCancel. The callback must not call back into this signal.
  std::uint64_t onCancel(std::function<void()> callback);
  // Returns once the callback is neither registered nor running, so what it captures may then be
  // destroyed: a cancel() on another thread that already took it is waited for.
  void removeOnCancel(std::uint64_t id);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::condition_variable idle_;  // signalled when cancel() has run its callbacks
  bool running_ = false;          // cancel() is running callbacks (outside mutex_)
  std::uint64_t nextId_ = 1;
  std::map<std::uint64_t, std::function<void()>> callbacks_;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;

  // Sends one request and waits for the whole response. An error means no HTTP response was
  // received: kConnectFailed when the request was certainly not sent (refused, DNS, TLS
  // handshake), kTransport when it may have been (reset, timeout) — the outcome is then unknown.
  // Thread-safe: concurrent calls are allowed.
  virtual Result<HttpResponse> send(const HttpRequest& request) = 0;

  // Sends a request whose body is read as it arrives (a watch). When the status is 2xx, onChunk
  // gets each piece of the body in order, with no guarantee about where pieces split (a JSON line
  // may span several); returning false from onChunk stops reading. Returns the status and headers
  // when the body ends, onChunk stops, or `cancel` fires (then the error is kCancelled). For a
  // non-2xx status onChunk is never called and the response carries the whole body.
  // Thread-safe; onChunk runs on the calling thread.
  virtual Result<HttpResponse> stream(const HttpRequest& request,
                                      const std::function<bool(std::string_view)>& onChunk,
                                      CancelSignal& cancel) = 0;
};

}  // namespace vnetipam::http
