// The server over a real unix socket in a temp dir, with a scripted handler.
#include "node-agent/socket_server.h"

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "node-agent/cni_config.h"
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
    response.freeIPs = r.containerID.size();
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
    auto r = conn->call(Request{.op = Op::kCheck,
                                .containerID = std::string(static_cast<std::size_t>(i), 'x'),
                                .ifName = "eth0"},
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
  EXPECT_EQ(j, nlohmann::json::parse(R"({"cniVersion":"1.0.0","name":"vnet-ipam","plugins":[
      {"type":"vnet-transparent","hostVethPrefix":"cali","mtu":1450,
       "ipam":{"type":"vnet-ipam","socket":"/run/x.sock"}},
      {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]})"));
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomically(dir.path() / "net.d", "10-vnet-ipam.conflist", text));
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
  EXPECT_EQ(j, nlohmann::json::parse(R"({"cniVersion":"1.0.0","name":"vnet-ipam","plugins":[
      {"type":"vnet-transparent","hostVethPrefix":"vnet","mtu":1500,
       "ipam":{"type":"vnet-ipam","socket":"/run/x.sock"}}]})"));
}

}  // namespace
}  // namespace vnetipam::agent
