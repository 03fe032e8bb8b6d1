// In-memory HttpTransport for unit tests: answers from a script, in order, and records every
// request it was sent. One fake for the interface, shared by every test of a client
// above it (lib/kube, lib/azure and their users). A test whose answers depend on what is asked
// (the fake API server in unit/lib/kube/fake_api_server.h, a fake ARM) derives from
// SendOnlyTransport instead.
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "lib/http/transport.h"

namespace vnetipam::http::testing {

class FakeTransport final : public HttpTransport {
 public:
  // Queues the answer to the next unanswered send().
  void respond(int status, std::string body, Headers headers = {}) {
    std::lock_guard lock(mutex_);
    script_.push_back(HttpResponse{status, std::move(headers), std::move(body)});
  }
  void failWith(ErrorCode code, std::string message = "scripted failure") {
    std::lock_guard lock(mutex_);
    script_.push_back(std::unexpected(Error{code, std::move(message)}));
  }
  // The chunks the next stream() delivers (with status 200).
  void streamChunks(std::vector<std::string> chunks) {
    std::lock_guard lock(mutex_);
    streams_.push_back(std::move(chunks));
  }

  Result<HttpResponse> send(const HttpRequest& request) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    if (script_.empty()) {
      return std::unexpected(Error{ErrorCode::kConnectFailed,
                                   "FakeTransport: no scripted answer for " + request.target});
    }
    auto next = std::move(script_.front());
    script_.pop_front();
    return next;
  }

  Result<HttpResponse> stream(const HttpRequest& request,
                              const std::function<bool(std::string_view)>& onChunk,
                              CancelSignal& cancel) override {
    std::vector<std::string> chunks;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(request);
      if (streams_.empty()) {
        return std::unexpected(Error{ErrorCode::kConnectFailed, "FakeTransport: no stream"});
      }
      chunks = std::move(streams_.front());
      streams_.pop_front();
    }
    for (const auto& chunk : chunks) {
      if (cancel.cancelled()) return std::unexpected(Error{ErrorCode::kCancelled, "cancelled"});
      if (!onChunk(chunk)) break;
    }
    return HttpResponse{200, {}, {}};
  }

  std::vector<HttpRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t unanswered() const {
    std::lock_guard lock(mutex_);
    return script_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::deque<Result<HttpResponse>> script_;
  std::deque<std::vector<std::string>> streams_;
  std::vector<HttpRequest> requests_;
};

// The base of a test transport that only answers send(): every stream() fails to connect.
class SendOnlyTransport : public HttpTransport {
 public:
  Result<HttpResponse> stream(const HttpRequest&, const std::function<bool(std::string_view)>&,
                              CancelSignal&) override {
    return std::unexpected(Error{ErrorCode::kConnectFailed, "no streams here"});
  }
};

}  // namespace vnetipam::http::testing
