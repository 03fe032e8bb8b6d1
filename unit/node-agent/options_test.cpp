#include "node-agent/options.h"

#include <fstream>

#include <gtest/gtest.h>

#include "unit/node-agent/temp_dir.h"

namespace vnetipam::agent {
namespace {

auto noEnv = [](const char*) -> std::optional<std::string> { return std::nullopt; };

std::expected<AgentOptions, std::string> parse(std::vector<const char*> args,
                                               std::optional<std::string> nodeEnv = std::nullopt) {
  return parseOptions(args, [&](const char* name) -> std::optional<std::string> {
    return std::string_view(name) == "NODE_NAME" ? nodeEnv : std::nullopt;
  });
}

TEST(AgentOptionsTest, DefaultsAreTheContractsOnes) {
  auto o = parse({}, "n1");
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->nodeName, "n1");
  EXPECT_EQ(o->socket, "/run/vnet-ipam/agent.sock");
  EXPECT_EQ(o->stateDir, "/var/lib/vnet-ipam");
  EXPECT_EQ(o->cniConfDir, "/etc/cni/net.d");
  EXPECT_EQ(o->cniConfName, "10-vnet-ipam.conflist");
  EXPECT_EQ(o->hostVethPrefix, "vnet");
  EXPECT_EQ(o->mtu, 1500);
  EXPECT_EQ(o->metricsAddress, "0.0.0.0:9091");
  EXPECT_EQ(o->gcGraceSeconds, 60);
  EXPECT_EQ(o->releaseCooldownSeconds, 30);
  EXPECT_EQ(o->usageReportIntervalMs, 1000);
  EXPECT_EQ(o->apiWaitSeconds, 5);
  EXPECT_EQ(o->dataplaneCheckIntervalSeconds, 30);
  EXPECT_EQ(o->dataplaneGraceSeconds, 10);
  EXPECT_TRUE(o->chainPortmap);
}

TEST(AgentOptionsTest, DataplaneCheckOptionsAreBounded) {
  auto o =
      parse({"--dataplane-check-interval-seconds", "1", "--dataplane-grace-seconds", "0"}, "n1");
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->dataplaneCheckIntervalSeconds, 1);
  EXPECT_EQ(o->dataplaneGraceSeconds, 0);
  EXPECT_FALSE(parse({"--dataplane-check-interval-seconds", "0"}, "n1"));
  EXPECT_FALSE(parse({"--dataplane-grace-seconds", "3601"}, "n1"));
}

TEST(AgentOptionsTest, ApiWaitSecondsIsBounded) {
  auto o = parse({"--api-wait-seconds", "0"}, "n1");
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->apiWaitSeconds, 0);
  EXPECT_FALSE(parse({"--api-wait-seconds", "-1"}, "n1"));
  EXPECT_FALSE(parse({"--api-wait-seconds", "3601"}, "n1"));
}

TEST(AgentOptionsTest, ChainPortmapIsTrueOrFalseFromTheFlagOrTheFile) {
  auto off = parse({"--chain-portmap=false"}, "n1");
  ASSERT_TRUE(off) << off.error();
  EXPECT_FALSE(off->chainPortmap);
  auto on = parse({"--chain-portmap", "true"}, "n1");
  ASSERT_TRUE(on) << on.error();
  EXPECT_TRUE(on->chainPortmap);

  testing::TempDir dir;
  const auto file = dir.path() / "agent.yaml";
  std::ofstream(file) << "chain-portmap: false\n";
  const std::string config = file.string();
  auto fromFile = parse({"--config", config.c_str()}, "n1");
  ASSERT_TRUE(fromFile) << fromFile.error();
  EXPECT_FALSE(fromFile->chainPortmap);

  auto bad = parse({"--chain-portmap", "no"}, "n1");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "--chain-portmap: \"no\" is not true or false");
}

TEST(AgentOptionsTest, FlagsWinOverTheConfigFile) {
  testing::TempDir dir;
  const auto file = dir.path() / "agent.yaml";
  std::ofstream(file) << "node-name: from-file\nmtu: 9000\ngc-grace-seconds: 5\n";
  const std::string config = file.string();
  auto o = parse({"--config", config.c_str(), "--mtu=1400", "--socket", "/tmp/a.sock"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->nodeName, "from-file");
  EXPECT_EQ(o->mtu, 1400);
  EXPECT_EQ(o->gcGraceSeconds, 5);
  EXPECT_EQ(o->socket, "/tmp/a.sock");
}

TEST(AgentOptionsTest, ErrorsNameTheFlag) {
  struct Case {
    std::vector<const char*> args;
    std::string mentions;
  };
  const Case cases[] = {
      {{}, "--node-name"},
      {{"--node-name", "n", "--mtu", "12"}, "--mtu"},
      {{"--node-name", "n", "--bogus", "1"}, "--bogus"},
      {{"--node-name", "n", "--log-format", "xml"}, "--log-format"},
      {{"--node-name", "n", "--cni-conf-name", "a/b"}, "--cni-conf-name"},
      {{"--node-name", "n", "--metrics-address", "nope"}, "--metrics-address"},
      {{"--node-name"}, "missing value"},
      {{"--config", "/nonexistent.yaml"}, "/nonexistent.yaml"},
  };
  for (const Case& c : cases) {
    auto o = parse(c.args);
    ASSERT_FALSE(o) << c.mentions;
    EXPECT_NE(o.error().find(c.mentions), std::string::npos) << o.error();
  }
  (void)noEnv;
}

}  // namespace
}  // namespace vnetipam::agent
