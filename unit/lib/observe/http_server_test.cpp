#include "lib/observe/http_server.h"

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vnetipam::observe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A probe must answer well inside the kubelet's 3 s timeout even on a loaded machine.
constexpr milliseconds kProbeBudget{1000};

// A client socket on loopback, closed on scope exit.
class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    EXPECT_TRUE(connected_) << std::strerror(errno);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // False once the server is gone (EPIPE/ECONNRESET): a trickling client keeps going regardless.
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }

  // Reads one response: the head, then Content-Length bytes of body (none for HEAD), or up to
  // the server closing. Stops at `deadline` and returns what arrived, so a hung server fails the
  // caller's assertion instead of hanging the test.
  // Bytes past the response (the next pipelined one) are kept for the next call.
  std::string readResponse(Clock::time_point deadline, bool head = false) {
    for (;;) {
      if (auto end = pending_.find("\r\n\r\n"); end != std::string::npos) {
        std::size_t want = end + 4 + (head ? 0 : contentLength(pending_.substr(0, end)));
        if (pending_.size() >= want) {
          std::string out = pending_.substr(0, want);
          pending_.erase(0, want);
          return out;
        }
      }
      if (!waitReadable(deadline)) return std::exchange(pending_, {});
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::exchange(pending_, {});
      pending_.append(buf, static_cast<std::size_t>(n));
    }
  }

  // True when the server closed the connection (EOF or reset) before `deadline`; bytes it sent
  // first (an error answer) are skipped.
  bool closedBy(Clock::time_point deadline) {
    for (;;) {
      if (!waitReadable(deadline)) return false;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
  }

 private:
  bool waitReadable(Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left < 0) return false;
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r > 0) return true;
      if (r == 0 || errno != EINTR) return false;
    }
  }

  static std::size_t contentLength(const std::string& head) {
    std::string lower = head;
    for (char& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return 0;
    return std::stoul(lower.substr(at + 17));
  }

  int fd_;
  bool connected_ = false;
  std::string pending_;
};

// One request on a fresh connection; the response, or what arrived within `budget`.
std::string roundTrip(int port, const std::string& request,
                      milliseconds budget = milliseconds(5000)) {
  Client c(port);
  EXPECT_TRUE(c.send(request));
  return c.readResponse(Clock::now() + budget, request.starts_with("HEAD "));
}

std::string get(int port, const std::string& path, milliseconds budget = milliseconds(5000)) {
  return roundTrip(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", budget);
}

// A fresh /healthz answers 200 within the probe budget.
::testing::AssertionResult healthzAnswersInTime(int port) {
  auto start = Clock::now();
  Client c(port);
  auto connected = Clock::now();
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = c.readResponse(start + kProbeBudget);
  auto ms = [](auto d) { return std::chrono::duration_cast<milliseconds>(d).count(); };
  if (r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n")) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "/healthz after " << ms(Clock::now() - start) << " ms (connected after "
         << ms(connected - start) << " ms): \"" << r << "\"";
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& family = prometheus::BuildCounter()
                       .Name("vnetipam_test_things_total")
                       .Help("Things counted by the test.")
                       .Register(*registry_);
    family.Add({{"kind", "a"}}).Increment(3);
    server_.addCheck("alive", Probe::kLiveness, [this]() -> std::expected<void, std::string> {
      if (alive_) return {};
      return std::unexpected("the work loop is stuck");
    });
    server_.addCheck("synced", Probe::kReadiness, [this]() -> std::expected<void, std::string> {
      if (ready_) return {};
      return std::unexpected("informers not synced");
    });
    ASSERT_TRUE(server_.start().has_value());
    ASSERT_GT(server_.port(), 0);
  }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  HttpServer server_{"127.0.0.1:0", registry_};
  std::atomic<bool> alive_{true};
  std::atomic<bool> ready_{false};
};

TEST_F(HttpServerTest, MetricsAreInTheTextFormat) {
  std::string r = get(server_.port(), "/metrics");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("# TYPE vnetipam_test_things_total counter"), std::string::npos) << r;
  EXPECT_NE(r.find("vnetipam_test_things_total{kind=\"a\"} 3"), std::string::npos) << r;
}

TEST_F(HttpServerTest, MetricsBodyIsExactlyTheSerializedRegistry) {
  // Not compressed or re-encoded, whatever the scraper offers: byte for byte what
  // prometheus-cpp's text serializer writes.
  std::string r = roundTrip(server_.port(),
                            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n"
                            "Range: bytes=0-3\r\n\r\n");
  ASSERT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  std::string body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_EQ(body, prometheus::TextSerializer().Serialize(registry_->Collect()));
}

TEST_F(HttpServerTest, ReadinessFailsAloneAndNamesTheCheck) {
  std::string healthz = get(server_.port(), "/healthz");
  EXPECT_TRUE(healthz.starts_with("HTTP/1.1 200 OK\r\n")) << healthz;
  std::string readyz = get(server_.port(), "/readyz");
  EXPECT_TRUE(readyz.starts_with("HTTP/1.1 500 ")) << readyz;
  EXPECT_NE(readyz.find("synced: informers not synced"), std::string::npos) << readyz;
  ready_ = true;
  EXPECT_TRUE(get(server_.port(), "/readyz?verbose").starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST_F(HttpServerTest, LivenessFailureFailsBothProbes) {
  ready_ = true;
  alive_ = false;
  std::string healthz = get(server_.port(), "/healthz");
  EXPECT_TRUE(healthz.starts_with("HTTP/1.1 500 ")) << healthz;
  EXPECT_NE(healthz.find("alive: the work loop is stuck"), std::string::npos) << healthz;
  EXPECT_TRUE(get(server_.port(), "/readyz").starts_with("HTTP/1.1 500 "));
}

TEST_F(HttpServerTest, UnknownPathsMethodsAndGarbageGetClientErrors) {
  EXPECT_TRUE(get(server_.port(), "/nope").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(
      roundTrip(server_.port(), "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
  EXPECT_TRUE(roundTrip(server_.port(), "garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
  // HEAD: headers only.
  std::string head = roundTrip(server_.port(), "HEAD /healthz HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;
  // Still serving after all that.
  EXPECT_TRUE(get(server_.port(), "/healthz").starts_with("HTTP/1.1 200 OK\r\n"));
}

// Connections that never send a byte must not hold up a probe: a client can open many.
TEST_F(HttpServerTest, HealthzAnswersWhileThreeConnectionsAreIdle) {
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 3; ++i)
    idle.push_back(std::make_unique<Client>(server_.port()));
  EXPECT_TRUE(healthzAnswersInTime(server_.port()));
  EXPECT_TRUE(healthzAnswersInTime(server_.port()));
}

TEST_F(HttpServerTest, HealthzAnswersWhile64ConnectionsAreIdle) {
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 64; ++i)
    idle.push_back(std::make_unique<Client>(server_.port()));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(healthzAnswersInTime(server_.port()));
}

// More idle connections than the server keeps open: it sheds the oldest idle ones instead of
// running out of descriptors or refusing the probe.
TEST_F(HttpServerTest, HealthzAnswersWithMoreIdleConnectionsThanTheServerKeeps) {
  constexpr int kIdle = 600;
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < 2 * kIdle + 64) GTEST_SKIP() << "RLIMIT_NOFILE " << lim.rlim_cur;
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < kIdle; ++i)
    idle.push_back(std::make_unique<Client>(server_.port()));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(healthzAnswersInTime(server_.port()));
}

// A client that sends a byte every 1.5 s never finishes its request: it must not hold up a
// probe while it trickles. One probe right after each of its first bytes.
TEST_F(HttpServerTest, HealthzAnswersWhileAClientTrickles) {
  Client slow(server_.port());
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int sent = 0;
  std::thread trickler([&] {
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (char byte : request) {
      slow.send(std::string(1, byte));
      std::unique_lock lock(mu);
      ++sent;
      cv.notify_all();
      if (cv.wait_for(lock, milliseconds(1500), [&] { return done; })) return;
    }
  });
  for (int k = 1; k <= 3 && !HasFailure(); ++k) {
    {
      std::unique_lock lock(mu);
      ASSERT_TRUE(cv.wait_for(lock, milliseconds(5000), [&] { return sent >= k; }));
    }
    EXPECT_TRUE(healthzAnswersInTime(server_.port())) << "after byte " << k;
  }
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  trickler.join();
}

// A request that never completes is closed once the request deadline passes, even when the
// client keeps sending often enough to defeat a per-read timeout.
TEST_F(HttpServerTest, ARequestThatNeverCompletesIsClosedAfterTheDeadline) {
  Client slow(server_.port());
  ASSERT_TRUE(slow.send("GET /healthz HTTP/1.1\r\nX-Slow: "));
  auto start = Clock::now();
  const auto giveUp = start + milliseconds(6000);
  bool closed = false;
  while (!closed && Clock::now() < giveUp) {
    slow.send("a");  // fails once the server is gone; the read below then sees it
    closed = slow.closedBy(Clock::now() + milliseconds(300));
  }
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_TRUE(closed) << "still open after " << took << " ms";
  EXPECT_TRUE(healthzAnswersInTime(server_.port()));
}

TEST_F(HttpServerTest, OversizedHeadersAreRefusedAndTheServerKeepsServing) {
  Client big(server_.port());
  std::string request =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  big.send(request);
  std::string r = big.readResponse(Clock::now() + milliseconds(5000));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431 ") || r.starts_with("HTTP/1.1 400 ")) << r.substr(0, 200);
  // Many headers, each small: the bound is on the whole head.
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 2000; ++i)
    many += "X-H" + std::to_string(i) + ": v\r\n";
  r = roundTrip(server_.port(), many + "\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431 ") || r.starts_with("HTTP/1.1 400 ")) << r.substr(0, 200);
  EXPECT_TRUE(healthzAnswersInTime(server_.port()));
}

TEST_F(HttpServerTest, RequestBodiesAreBounded) {
  std::string r =
      roundTrip(server_.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" +
                                    std::string(1000, 'x'));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 413 ")) << r;
  r = roundTrip(server_.port(),
                "POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 411 ")) << r;
  // A small body is read, so the request after it on the same connection is understood.
  Client c(server_.port());
  ASSERT_TRUE(
      c.send("POST /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
             "GET /healthz HTTP/1.1\r\n\r\n"));
  EXPECT_TRUE(c.readResponse(Clock::now() + kProbeBudget).starts_with("HTTP/1.1 405 "));
  EXPECT_TRUE(c.readResponse(Clock::now() + kProbeBudget).starts_with("HTTP/1.1 200 "));
}

// Requests are answered concurrently: a health check that takes its time does not hold up a
// scrape.
TEST(HttpServer, MetricsAnswerWhileAHealthCheckIsSlow) {
  auto registry = std::make_shared<prometheus::Registry>();
  HttpServer server("127.0.0.1:0", registry);
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool release = false;
  server.addCheck("slow", Probe::kLiveness, [&]() -> std::expected<void, std::string> {
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return {};
  });
  ASSERT_TRUE(server.start().has_value());
  std::string slowAnswer;
  std::thread prober([&] { slowAnswer = get(server.port(), "/healthz"); });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, milliseconds(5000), [&] { return entered; }));
  }
  std::string metrics = get(server.port(), "/metrics", kProbeBudget);
  EXPECT_TRUE(metrics.starts_with("HTTP/1.1 200 OK\r\n")) << metrics;
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  prober.join();
  EXPECT_TRUE(slowAnswer.starts_with("HTTP/1.1 200 OK\r\n")) << slowAnswer;
}

TEST_F(HttpServerTest, AKeepAliveConnectionServesSeveralRequests) {
  Client c(server_.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string r = c.readResponse(Clock::now() + kProbeBudget);
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n")) << i << r;
  }
  // Pipelined: both answered, in order.
  ASSERT_TRUE(
      c.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(c.readResponse(Clock::now() + kProbeBudget).starts_with("HTTP/1.1 500 "));
  EXPECT_TRUE(c.readResponse(Clock::now() + kProbeBudget).starts_with("HTTP/1.1 200 "));
  // An idle keep-alive connection is closed soon.
  EXPECT_TRUE(c.closedBy(Clock::now() + milliseconds(3000)));
}

TEST(HttpServer, BindFailureNamesTheAddress) {
  auto registry = std::make_shared<prometheus::Registry>();
  HttpServer first("127.0.0.1:0", registry);
  ASSERT_TRUE(first.start().has_value());
  HttpServer second("127.0.0.1:" + std::to_string(first.port()), registry);
  auto r = second.start();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << r.error();
  EXPECT_NE(r.error().find("in use"), std::string::npos) << r.error();
}

TEST(HttpServer, StopsWithConnectionsOpen) {
  auto registry = std::make_shared<prometheus::Registry>();
  HttpServer server("127.0.0.1:0", registry);
  ASSERT_TRUE(server.start().has_value());
  Client idle(server.port());
  Client partial(server.port());
  partial.send("GET /metrics HTTP/1.1\r\n");
  server.stop();
  EXPECT_TRUE(idle.closedBy(Clock::now() + milliseconds(2000)));
  EXPECT_TRUE(partial.closedBy(Clock::now() + milliseconds(2000)));
  server.stop();  // idempotent
}

TEST(ParseHostPort, AcceptsTheUsualFormsAndNamesBadInput) {
  EXPECT_EQ(parseHostPort("0.0.0.0:9090")->port, 9090);
  EXPECT_EQ(parseHostPort(":9091")->host, "0.0.0.0");
  EXPECT_EQ(parseHostPort("[::1]:80")->host, "::1");
  EXPECT_FALSE(parseHostPort("9090").has_value());
  auto bad = parseHostPort("localhost:http");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().find("\"http\""), std::string::npos) << bad.error();
  EXPECT_FALSE(parseHostPort("1.2.3.4:70000").has_value());
}

}  // namespace
}  // namespace vnetipam::observe
