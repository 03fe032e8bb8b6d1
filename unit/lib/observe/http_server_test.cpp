#include "lib/observe/http_server.h"

#include <atomic>
#include <string>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vnetipam::observe {
namespace {

// One HTTP exchange on loopback: sends `request` verbatim, returns everything the server wrote
// before closing the connection.
std::string roundTrip(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

std::string get(int port, const std::string& path) {
  return roundTrip(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
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
