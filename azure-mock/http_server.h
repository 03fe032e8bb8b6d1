// Serves an ArmHandler over HTTP or HTTPS with cpprestsdk's http_listener, and runs the
// background work: completing async operations on time, syncing SDN routes, persisting state.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "azure-mock/arm_handler.h"
#include "azure-mock/route_programmer.h"

namespace vnetipam::azuremock {

struct ServerOptions {
  std::string listenUrl = "http://127.0.0.1:8080";
  // PEM files; both required for an https:// listen URL. Read once at start.
  std::string certFile;
  std::string keyFile;
  // When set, the state document is written here (atomically) after every change.
  std::string stateFile;
  std::size_t maxBodyBytes = 4 * 1024 * 1024;
  std::chrono::milliseconds tickInterval{50};
};

// Writes `text` to `path` via a temporary file, fsync and rename, so a crash leaves the old or
// the new file, never a torn one.
std::expected<void, std::string> writeFileAtomically(const std::string& path,
                                                     const std::string& text);

class HttpServer {
 public:
  // `routes` may be null (no SDN emulation).
  HttpServer(ServerOptions options, ArmHandler& handler, RouteSync* routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts listening and the background thread. The error names the URL or file that failed.
  std::expected<void, std::string> start();
  void stop();

 private:
  struct Listener;
  void background();
  void persistIfChanged();

  ServerOptions options_;
  ArmHandler& handler_;
  RouteSync* routes_;
  std::unique_ptr<Listener> listener_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::mutex persistMutex_;
  std::uint64_t persistedRevision_ = 0;
};

}  // namespace vnetipam::azuremock
