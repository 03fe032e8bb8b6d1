#include "node-agent/cni/skel.h"

#include <gtest/gtest.h>

namespace vnetipam::cni {
namespace {

using nlohmann::json;

struct Calls {
  int add = 0, del = 0, check = 0, gc = 0, status = 0;
};

Plugin recordingPlugin(Calls& calls) {
  return Plugin{
      .name = "test",
      .add = [&](const Env&, const NetConf&) -> Outcome<Result> {
        ++calls.add;
        Result r;
        r.ips.push_back({.address = *ipam::IPAddress::parse("10.0.0.9"), .prefixLength = 32});
        return r;
      },
      .del = [&](const Env&, const NetConf&) -> Outcome<void> {
        ++calls.del;
        return {};
      },
      .check = [&](const Env&, const NetConf&) -> Outcome<void> {
        ++calls.check;
        return {};
      },
      .gc = [&](const Env&, const NetConf&) -> Outcome<void> {
        ++calls.gc;
        return failWith(kTryAgainLater, "busy", "later");
      },
      .status = {},
  };
}

std::map<std::string, std::string> env(const char* command) {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "c"},
          {"CNI_NETNS", "/n"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/bin"}};
}

std::string conf(std::string_view version) {
  return json{{"cniVersion", version}, {"name", "n"}, {"type", "test"}}.dump();
}

TEST(RunPlugin, VersionNeedsNoConfig) {
  Calls calls;
  for (const std::string& input : {std::string(), std::string("garbage"), conf("0.4.0")}) {
    const auto inv = runPlugin(recordingPlugin(calls), {{"CNI_COMMAND", "VERSION"}}, input);
    EXPECT_EQ(inv.exitCode, 0);
    const auto doc = json::parse(inv.out);
    EXPECT_EQ(doc["supportedVersions"], (json{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
    EXPECT_EQ(doc["cniVersion"], input == conf("0.4.0") ? "0.4.0" : "1.1.0");
  }
}

TEST(RunPlugin, AddPrintsTheResultInTheConfigVersion) {
  Calls calls;
  const auto inv = runPlugin(recordingPlugin(calls), env("ADD"), conf("0.3.1"));
  ASSERT_EQ(inv.exitCode, 0) << inv.out;
  const auto doc = json::parse(inv.out);
  EXPECT_EQ(doc["cniVersion"], "0.3.1");
  EXPECT_EQ(doc["ips"][0]["version"], "4");
  EXPECT_EQ(calls.add, 1);
}

TEST(RunPlugin, ErrorsAreTheSpecObjectWithNonZeroExit) {
  Calls calls;
  const auto bad = runPlugin(recordingPlugin(calls), env("ADD"), "{");
  EXPECT_NE(bad.exitCode, 0);
  EXPECT_EQ(json::parse(bad.out)["code"], kDecodeFailure);

  const auto unknown = runPlugin(recordingPlugin(calls), env("ADD"), conf("2.0.0"));
  EXPECT_NE(unknown.exitCode, 0);
  EXPECT_EQ(json::parse(unknown.out)["code"], kIncompatibleVersion);

  const auto gc = runPlugin(recordingPlugin(calls), env("GC"), conf("1.1.0"));
  EXPECT_NE(gc.exitCode, 0);
  EXPECT_EQ(json::parse(gc.out),
            (json{{"cniVersion", "1.1.0"}, {"code", 11}, {"msg", "busy"}, {"details", "later"}}));
  EXPECT_EQ(calls.add, 0) << "nothing runs on a bad config";
}

TEST(RunPlugin, CommandsNeedTheVersionThatIntroducedThem) {
  Calls calls;
  EXPECT_EQ(json::parse(runPlugin(recordingPlugin(calls), env("CHECK"), conf("0.3.1")).out)["code"],
            kIncompatibleVersion);
  EXPECT_EQ(json::parse(runPlugin(recordingPlugin(calls), env("GC"), conf("1.0.0")).out)["code"],
            kIncompatibleVersion);
  EXPECT_EQ(
      json::parse(runPlugin(recordingPlugin(calls), env("STATUS"), conf("1.0.0")).out)["code"],
      kIncompatibleVersion);
  EXPECT_EQ(calls.check + calls.gc, 0);
  const auto check = runPlugin(recordingPlugin(calls), env("CHECK"), conf("0.4.0"));
  EXPECT_EQ(check.exitCode, 0);
  EXPECT_TRUE(check.out.empty());
  EXPECT_EQ(calls.check, 1);
  // A handler the plugin does not have answers "unsupported".
  EXPECT_EQ(
      json::parse(runPlugin(recordingPlugin(calls), env("STATUS"), conf("1.1.0")).out)["code"],
      kUnsupportedField);
}

TEST(RunPlugin, DelPrintsNothing) {
  Calls calls;
  auto e = env("DEL");
  e.erase("CNI_NETNS");
  const auto inv = runPlugin(recordingPlugin(calls), e, conf("1.1.0"));
  EXPECT_EQ(inv.exitCode, 0);
  EXPECT_TRUE(inv.out.empty());
  EXPECT_EQ(calls.del, 1);
}

}  // namespace
}  // namespace vnetipam::cni
