// The server over a real unix socket in a temp dir, with a scripted handler.
#include "node-agent/socket_server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/base/file.h"
#include "lib/base/unique_fd.h"
#include "node-agent/cni_config.h"
#include "unit/node-agent/memory_usage.h"
#include "unit/node-agent/temp_dir.h"

namespace vnetipam::agent {
namespace {

using namespace std::chrono_literals;

TEST(SocketServerTest, ServesRequestsInTurnAndManyClientsAtOnce) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "sub" / "agent.sock").string();
  std::atomic<int> calls{0};
  SocketServer server(path, [&](const Request& r) {
    ++calls;
    Response response;
    response.freeIPs = r.owner.containerID.size();
    return response;
  });
  ASSERT_TRUE(server.start());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto conn = AgentConnection::open(path, 1s);
  ASSERT_TRUE(conn) << conn.error().message;
  for (int i = 1; i <= 3; ++i) {
    auto r =
        conn->call(Request{.op = Op::kCheck,
                           .owner = {.containerID = std::string(static_cast<std::size_t>(i), 'x'),
                                     .ifName = "eth0"}},
                   1s);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->freeIPs, static_cast<std::uint64_t>(i));
  }
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (callAgent(path, Request{.op = Op::kStatus}, 2s)) ++ok;
      }
    });
  }
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(ok.load(), 400);
  EXPECT_EQ(calls.load(), 403);
  server.stop();
  EXPECT_FALSE(std::filesystem::exists(path));
}

// Over the wire, a plugin of the previous release (no "families") and one of this release (both)
// each get what they asked for from one agent; the dual-stack answer arrives whole, one
// allocation per family with its gateway.
TEST(SocketServerTest, OldAndNewAllocateFormsMeetOneServer) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "agent.sock").string();
  SocketServer server(path, [&](const Request& r) {
    Response response;
    response.allocations.push_back(Allocation{.owner = r.owner,
                                              .address = *ipam::IPAddress::parse("10.0.0.1"),
                                              .block = *ipam::Prefix::parse("10.0.0.0/28"),
                                              .blockName = "b4",
                                              .gateway = *ipam::IPAddress::parse("169.254.1.1")});
    if (r.families.size() == 2) {
      response.allocations.push_back(Allocation{.owner = r.owner,
                                                .address = *ipam::IPAddress::parse("fd00::1"),
                                                .block = *ipam::Prefix::parse("fd00::/112"),
                                                .blockName = "b6",
                                                .gateway = *ipam::IPAddress::parse("fe80::1")});
    }
    return response;
  });
  ASSERT_TRUE(server.start());
  auto conn = AgentConnection::open(path, 1s);
  ASSERT_TRUE(conn) << conn.error().message;
  auto dual = conn->call(Request{.op = Op::kAllocate,
                                 .owner = {.containerID = "c1", .ifName = "eth0"},
                                 .families = {ipam::Family::kV4, ipam::Family::kV6}},
                         1s);
  ASSERT_TRUE(dual) << dual.error().message;
  ASSERT_EQ(dual->allocations.size(), 2u);
  EXPECT_EQ(dual->allocations[1].address.toString(), "fd00::1");
  EXPECT_EQ(dual->allocations[1].gateway->toString(), "fe80::1");

  // The previous release's request line, byte for byte as it wrote it.
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_TRUE(writeAll(
      fd.get(), "{\"v\":1,\"op\":\"allocate\",\"containerID\":\"c2\",\"ifName\":\"eth0\"}\n", 1s));
  std::string buffer;
  auto line = readLine(fd.get(), buffer, 1s);
  ASSERT_TRUE(line) << line.error().message;
  auto old = decodeResponse(*line);
  ASSERT_TRUE(old) << *line;
  ASSERT_EQ(old->allocations.size(), 1u) << *line;
  EXPECT_EQ(old->allocations[0].address.toString(), "10.0.0.1");
  server.stop();
}

TEST(SocketServerTest, ABadLineGetsDecodeFailureAndTheConnectionStaysUsable) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "agent.sock").string();
  SocketServer server(path, [](const Request&) { return Response{}; });
  ASSERT_TRUE(server.start());
  auto conn = AgentConnection::open(path, 1s);
  ASSERT_TRUE(conn);
  // Raw access through a second connection: send garbage, read the answer.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_TRUE(writeAll(fd, "{\"v\":1,\"op\":\"nope\"}\n", 1s));
  std::string buffer;
  auto line = readLine(fd, buffer, 1s);
  ASSERT_TRUE(line);
  auto answer = decodeResponse(*line);
  ASSERT_TRUE(answer);
  EXPECT_FALSE(answer->ok);
  EXPECT_EQ(answer->code, ErrorCode::kDecodeFailure);
  EXPECT_NE(answer->details.find("nope"), std::string::npos);
  ASSERT_TRUE(writeAll(fd, encode(Request{.op = Op::kStatus}), 1s));
  auto next = readLine(fd, buffer, 1s);
  ASSERT_TRUE(next);
  EXPECT_TRUE(decodeResponse(*next)->ok);
  ::close(fd);
}

// A connected raw socket, for bytes AgentConnection would never send; -1 on failure.
int connectRaw(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(SocketServerTest, AnOverlongLineIsAnsweredAndClosedAndADeepOneRefused) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "agent.sock").string();
  std::atomic<int> calls{0};
  SocketServer server(path, [&](const Request&) {
    ++calls;
    return Response{};
  });
  ASSERT_TRUE(server.start());

  // 200,000 nested brackets fit the size limit: refused by depth, and the connection stays.
  const std::string deep = std::string(200'000, '[') + "\n";
  int fd = connectRaw(path);
  ASSERT_GE(fd, 0);
  std::string buffer;
  base::Result<std::string> line;
  std::int64_t grewKiB = vnetipam::testing::peakRssGrowthKiB([&] {
    ASSERT_TRUE(writeAll(fd, deep, 5s));
    line = readLine(fd, buffer, 5s);
  });
  ASSERT_TRUE(line) << line.error().message;
  auto answer = decodeResponse(*line);
  ASSERT_TRUE(answer);
  EXPECT_FALSE(answer->ok);
  EXPECT_EQ(answer->code, ErrorCode::kDecodeFailure);
  EXPECT_NE(answer->details.find("deeper than"), std::string::npos) << answer->details;
  EXPECT_LT(grewKiB, 32 * 1024) << "200,000 nested brackets cost " << grewKiB << " KiB";
  RecordProperty("deep_line_peak_rss_growth_kib", std::to_string(grewKiB));
  ASSERT_TRUE(writeAll(fd, encode(Request{.op = Op::kStatus}), 1s));
  auto next = readLine(fd, buffer, 5s);
  ASSERT_TRUE(next);
  EXPECT_TRUE(decodeResponse(*next)->ok);
  ::close(fd);

  // 4 MiB without an end: answered once the limit is passed, then closed unread.
  const std::string big(4 * 1024 * 1024, '[');
  fd = connectRaw(path);
  ASSERT_GE(fd, 0);
  buffer.clear();
  grewKiB = vnetipam::testing::peakRssGrowthKiB([&] {
    (void)writeAll(fd, big, 5s);  // fails (EPIPE) once the agent has closed: expected
    line = readLine(fd, buffer, 5s);
  });
  ASSERT_TRUE(line) << line.error().message;
  answer = decodeResponse(*line);
  ASSERT_TRUE(answer);
  EXPECT_FALSE(answer->ok);
  EXPECT_EQ(answer->code, ErrorCode::kDecodeFailure);
  EXPECT_NE(answer->details.find(fmt::format("longer than {} bytes", kMaxRequestBytes)),
            std::string::npos)
      << answer->details;
  EXPECT_FALSE(readLine(fd, buffer, 5s)) << "the connection is closed";
  EXPECT_LT(grewKiB, 32 * 1024) << "a 4 MiB line cost " << grewKiB << " KiB";
  RecordProperty("long_line_peak_rss_growth_kib", std::to_string(grewKiB));
  ::close(fd);
  EXPECT_EQ(calls.load(), 1) << "only the status request reached the handler";
}

// Everything the EMFILE test changes in the process, put back however the test ends.
class FdTableFiller {
 public:
  FdTableFiller() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    // A small table fills fast; the limit applies to the whole process, the server included.
    lowered.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 256);
    ::setrlimit(RLIMIT_NOFILE, &lowered);
  }
  // Takes every free descriptor; true if the table ended full (EMFILE).
  bool fill() {
    for (;;) {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return errno == EMFILE;
      fds_.push_back(fd);
    }
  }
  void release() {
    for (int fd : fds_)
      ::close(fd);
    fds_.clear();
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  ~FdTableFiller() { release(); }

 private:
  rlimit saved_{};
  std::vector<int> fds_;
};

// Keeps what the default logger writes, for as long as it lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()), sink_(std::make_shared<Sink>()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink_));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  // Messages so far that contain `text`.
  int count(std::string_view text) { return sink_->count(text); }

 private:
  class Sink : public spdlog::sinks::base_sink<std::mutex> {
   public:
    int count(std::string_view text) {
      std::lock_guard lock(mutex_);
      return static_cast<int>(std::ranges::count_if(
          messages_, [&](const std::string& m) { return m.find(text) != std::string::npos; }));
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      messages_.emplace_back(msg.payload.data(), msg.payload.size());
    }
    void flush_() override {}

   private:
    std::vector<std::string> messages_;  // guarded by mutex_
  };
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<Sink> sink_;
};

double cpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](timeval t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Out of descriptors, accept() fails while the listen socket stays readable: the server used to
// retry at once, at 100% CPU and with a log line each time (800 MB in 16 s).
TEST(SocketServerTest, OutOfFileDescriptorsTheAcceptLoopBacksOffAndServesAgainOnceFdsFree) {
  LogCapture logs;  // first in, last out: the server logs into it until it stops
  testing::TempDir dir;
  const std::string path = (dir.path() / "agent.sock").string();
  SocketServer server(path, [](const Request&) {
    Response response;
    response.freeIPs = 7;
    return response;
  });
  ASSERT_TRUE(server.start());
  FdTableFiller table;
  // The clients' sockets first: connecting needs no new descriptor on their side.
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_GE(clients.back(), 0);
  }
  ASSERT_TRUE(table.fill());
  for (int fd : clients) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
  }
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server.acceptFailures() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GT(server.acceptFailures(), 0u) << "accept() never failed: the table was not full";

  // One second of a full table (a window to measure, not a wait for an event): the backoff
  // (100, 200, 400, 800 ms) allows about four attempts; a spinning loop makes millions.
  const std::uint64_t failuresBefore = server.acceptFailures();
  const int logLinesBefore = logs.count("accept:");
  const double cpuBefore = cpuSeconds();
  std::this_thread::sleep_for(1s);
  const std::uint64_t attempts = server.acceptFailures() - failuresBefore;
  const double cpu = cpuSeconds() - cpuBefore;
  const int logLines = logs.count("accept:") - logLinesBefore;
  EXPECT_LE(attempts, 8u);
  EXPECT_LE(logLines, 2);
  EXPECT_LT(cpu, 0.1) << "CPU seconds in one second of EMFILE";
  RecordProperty("emfile_accept_attempts_per_second", std::to_string(attempts));
  RecordProperty("emfile_log_lines_per_second", std::to_string(logLines));
  std::cerr << "EMFILE for 1 s: " << attempts << " accept attempts, " << logLines << " log lines, "
            << cpu << " CPU s\n";

  // Free the table: every waiting client is served, within the longest backoff.
  table.release();
  for (int fd : clients) {
    std::string buffer;
    ASSERT_TRUE(writeAll(fd, encode(Request{.op = Op::kStatus}), 1s));
    auto line = readLine(fd, buffer, 5s);
    ASSERT_TRUE(line) << line.error().message;
    auto answer = decodeResponse(*line);
    ASSERT_TRUE(answer);
    EXPECT_TRUE(answer->ok);
    EXPECT_EQ(answer->freeIPs, 7u);
    ::close(fd);
  }
  const auto logDeadline = std::chrono::steady_clock::now() + 5s;
  while (logs.count("accepting again after") == 0 &&
         std::chrono::steady_clock::now() < logDeadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(logs.count("accepting again after"), 1);
  EXPECT_TRUE(callAgent(path, Request{.op = Op::kStatus}, 1s)) << "and new clients too";
}

TEST(SocketServerTest, AStaleSocketFileIsReplaced) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "agent.sock").string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);  // a stale file
  ::close(fd);
  SocketServer second(path, [](const Request&) { return Response{}; });
  ASSERT_TRUE(second.start());
  EXPECT_TRUE(callAgent(path, Request{.op = Op::kStatus}, 1s));
}

TEST(CniConfigTest, TheContractsConfigListWrittenAtomically) {
  const auto text = cniConfigList("cali", 1450, "/run/x.sock", /*chainPortmap=*/true);
  const auto j = nlohmann::json::parse(text);
  EXPECT_EQ(
      j, nlohmann::json::parse(
             R"({"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"vnet-ipam","plugins":[
      {"type":"vnet-transparent","hostVethPrefix":"cali","mtu":1450,
       "ipam":{"type":"vnet-ipam","socket":"/run/x.sock"}},
      {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]})"));
  testing::TempDir dir;
  ASSERT_TRUE(base::writeFileAtomically(dir.path() / "net.d", "10-vnet-ipam.conflist", text));
  std::ifstream in(dir.path() / "net.d" / "10-vnet-ipam.conflist");
  std::string read((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(read, text);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path() / "net.d"), {}), 1)
      << "no temporary file left";
}

// A node without the portmap binary: the runtime runs every plugin of the list on DEL, so the list
// must not name portmap at all.
TEST(CniConfigTest, WithoutPortmapTheListHoldsVnetTransparentAlone) {
  const auto j = nlohmann::json::parse(cniConfigList("vnet", 1500, "/run/x.sock", false));
  EXPECT_EQ(
      j, nlohmann::json::parse(
             R"({"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"vnet-ipam","plugins":[
      {"type":"vnet-transparent","hostVethPrefix":"vnet","mtu":1500,
       "ipam":{"type":"vnet-ipam","socket":"/run/x.sock"}}]})"));
}

}  // namespace
}  // namespace vnetipam::agent
