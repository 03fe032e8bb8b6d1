// Serves an ArmHandler over HTTP/1.1 or HTTPS (OpenSSL), one thread per connection, and runs the
// background work: completing async operations on time, syncing SDN routes, persisting state.
// Requests are read with HttpRequestReader, so headers and bodies are bounded while they arrive
// (a general-purpose listener buffered a whole chunked body before anyone could look at its
// size).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <set>
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
  std::size_t maxHeaderBytes = 64 * 1024;
  std::size_t maxHeaderCount = 100;
  // Connections beyond this are closed at once.
  std::size_t maxConnections = 512;
  // A connection that sends nothing (or cannot be written to) for this long is closed.
  std::chrono::seconds idleTimeout{60};
  std::chrono::milliseconds tickInterval{50};
};

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
  void acceptLoop();
  void serveConnection(int fd, std::string peer);
  void background();
  void persistIfChanged();

  ServerOptions options_;
  ArmHandler& handler_;
  RouteSync* routes_;
  std::unique_ptr<Listener> listener_;
  std::thread acceptThread_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::mutex persistMutex_;
  std::uint64_t persistedRevision_ = 0;
};

}  // namespace vnetipam::azuremock
