// Serves the agent protocol (protocol.h) on a unix stream socket: one thread accepts, one thread
// per connection reads a request line, calls the handler, writes the answer, in turn. The CNI
// plugin opens one short connection per invocation, so connections are few and brief; a thread
// each is the simplest thing that lets a slow fsync on one not hold up another.
//
// The socket is created mode 0600 (root only, like the runtime that calls the plugin); a stale
// socket file left by a killed agent is replaced. A line that does not decode is answered with
// code 6 (decode failure) naming the field; the connection stays open. A line longer than
// kMaxRequestBytes is answered with code 6 too, then the connection is closed unread.
//
// When accept() fails for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM, or no thread to
// serve the connection), the server waits before it tries again instead of spinning on a listen
// socket that stays readable: 100 ms, doubling to 1 s, cut short when one of its own connections
// closes (an fd came free). It logs such failures at most once a second, with a count.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/error.h"
#include "node-agent/protocol.h"

namespace vnetipam::agent {

class SocketServer {
 public:
  using Handler = std::function<Response(const Request&)>;

  // `handler` is called from many threads at once.
  SocketServer(std::string path, Handler handler);
  ~SocketServer();  // stop()
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;

  // Binds (replacing a stale socket file, creating the parent directory), listens and starts
  // accepting. kIo naming the path on failure.
  base::Result<void> start();
  // Stops accepting, closes every connection (an in-flight request finishes first), joins, and
  // removes the socket file. Idempotent.
  void stop();

  const std::string& path() const { return path_; }
  // How many times accept() (or starting a connection's thread) failed and the server backed off.
  std::uint64_t acceptFailures() const { return acceptFailures_.load(); }

  static constexpr std::chrono::milliseconds kAcceptBackoffFirst{100};
  static constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

 private:
  void acceptLoop();
  void serve(int fd);
  // Waits `delay`, or less when stop() is called or a connection closes after `closedBefore`.
  void backOff(std::chrono::milliseconds delay, std::uint64_t closedBefore);

  const std::string path_;
  Handler handler_;
  int listenFd_ = -1;
  int wakeFd_ = -1;  // eventfd: tells the accept loop to stop
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::set<int> connections_;          // guarded by mu_
  std::vector<std::thread> workers_;   // guarded by mu_
  std::vector<std::thread::id> done_;  // finished workers, joined by the acceptor; guarded by mu_
  std::uint64_t closed_ = 0;           // connections closed so far; guarded by mu_
  std::condition_variable wake_;       // closed_ grew or stopping_ was set
  std::atomic<std::uint64_t> acceptFailures_{0};
};

}  // namespace vnetipam::agent
