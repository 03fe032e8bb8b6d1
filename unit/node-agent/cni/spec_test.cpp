#include "node-agent/cni/spec.h"

#include <gtest/gtest.h>

namespace vnetipam::cni {
namespace {

using nlohmann::json;

std::map<std::string, std::string> addEnv() {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "c1"},
          {"CNI_NETNS", "/run/netns/p"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/opt/cni/bin:/usr/lib/cni"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0"}};
}

TEST(ParseEnv, ReadsEveryVariable) {
  auto env = parseEnv(addEnv());
  ASSERT_TRUE(env) << env.error().msg;
  EXPECT_EQ(env->command, Command::kAdd);
  EXPECT_EQ(env->containerID, "c1");
  EXPECT_EQ(env->netns, "/run/netns/p");
  EXPECT_EQ(env->ifName, "eth0");
  EXPECT_EQ(env->path, (std::vector<std::string>{"/opt/cni/bin", "/usr/lib/cni"}));
  EXPECT_EQ(env->podNamespace, "ns1");
  EXPECT_EQ(env->podName, "web-0");
  EXPECT_EQ(env->args.size(), 3U);
  EXPECT_EQ(env->all.at("CNI_ARGS"), addEnv().at("CNI_ARGS"));
}

TEST(ParseEnv, RequiresWhatEachCommandNeeds) {
  for (const char* missing : {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"}) {
    auto e = addEnv();
    e.erase(missing);
    auto env = parseEnv(e);
    ASSERT_FALSE(env) << missing;
    EXPECT_EQ(env.error().code, kInvalidEnvironment);
    EXPECT_NE(env.error().msg.find(missing), std::string::npos) << env.error().msg;
  }
  // DEL works without a netns (the runtime may have removed it already).
  auto del = addEnv();
  del["CNI_COMMAND"] = "DEL";
  del.erase("CNI_NETNS");
  EXPECT_TRUE(parseEnv(del));
  // GC needs CNI_PATH and nothing about a container.
  EXPECT_TRUE(parseEnv({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/opt/cni/bin"}}));
  auto gc = parseEnv({{"CNI_COMMAND", "GC"}});
  ASSERT_FALSE(gc);
  EXPECT_EQ(gc.error().code, kInvalidEnvironment);
  EXPECT_TRUE(parseEnv({{"CNI_COMMAND", "STATUS"}}));
  EXPECT_TRUE(parseEnv({{"CNI_COMMAND", "VERSION"}}));
}

TEST(ParseEnv, RefusesUnknownCommandAndBadArgs) {
  auto unknown = parseEnv({{"CNI_COMMAND", "UPDATE"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, kInvalidEnvironment);
  EXPECT_NE(unknown.error().msg.find("UPDATE"), std::string::npos);
  EXPECT_FALSE(parseEnv({}));
  auto e = addEnv();
  e["CNI_ARGS"] = "K8S_POD_NAME=a;garbage";
  auto bad = parseEnv(e);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, kInvalidEnvironment);
  EXPECT_NE(bad.error().msg.find("garbage"), std::string::npos);
}

TEST(ParseNetConf, ReadsTheRuntimeFields) {
  const json doc = {
      {"cniVersion", "1.1.0"},
      {"name", "vnet"},
      {"type", "vnet-transparent"},
      {"ipam", {{"type", "vnet-ipam"}, {"socket", "/run/x.sock"}}},
      {"runtimeConfig", {{"portMappings", json::array()}}},
      {"cni.dev/valid-attachments", {{{"containerID", "c1"}, {"ifname", "eth0"}}}},
      {"prevResult",
       {{"cniVersion", "1.1.0"},
        {"ips", {{{"address", "10.0.0.5/32"}, {"gateway", "169.254.1.1"}, {"interface", 1}}}}}}};
  auto conf = parseNetConf(doc.dump());
  ASSERT_TRUE(conf) << conf.error().msg;
  EXPECT_EQ(conf->cniVersion, "1.1.0");
  EXPECT_EQ(conf->name, "vnet");
  EXPECT_EQ(conf->type, "vnet-transparent");
  EXPECT_EQ(conf->ipamType, "vnet-ipam");
  EXPECT_EQ(conf->ipam["socket"], "/run/x.sock");
  EXPECT_TRUE(conf->runtimeConfig.contains("portMappings"));
  EXPECT_EQ(conf->validAttachments, (std::vector<ipam::Owner>{{"c1", "eth0"}}));
  ASSERT_TRUE(conf->prevResult);
  ASSERT_EQ(conf->prevResult->ips.size(), 1U);
  EXPECT_EQ(conf->prevResult->ips[0].address.toString(), "10.0.0.5");
  EXPECT_EQ(conf->prevResult->ips[0].interface, 1);
}

TEST(ParseNetConf, ErrorCodesFollowTheSpec) {
  const auto code = [](std::string_view text) {
    auto conf = parseNetConf(text);
    return conf ? 0 : conf.error().code;
  };
  EXPECT_EQ(code("not json"), kDecodeFailure);
  EXPECT_EQ(code("[1,2]"), kDecodeFailure);
  EXPECT_EQ(code(R"({"name":"n","type":"t"})"), kInvalidConfig);
  EXPECT_EQ(code(R"({"cniVersion":"1.1.0","type":"t"})"), kInvalidConfig);
  EXPECT_EQ(code(R"({"cniVersion":"1.1.0","name":"n"})"), kInvalidConfig);
  EXPECT_EQ(code(R"({"cniVersion":"0.2.0","name":"n","type":"t"})"), kIncompatibleVersion);
  EXPECT_EQ(code(R"({"cniVersion":"9.9.9","name":"n","type":"t"})"), kIncompatibleVersion);
  EXPECT_EQ(code(R"({"cniVersion":"1.0.0","name":"n","type":"t","ipam":"x"})"), kInvalidConfig);
  EXPECT_EQ(code(R"({"cniVersion":"1.0.0","name":"n","type":"t","prevResult":{"ips":[{}]}})"),
            kDecodeFailure);
  EXPECT_EQ(code(R"({"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/valid-attachments":[1]})"),
            kInvalidConfig);
  for (const auto v : kSupportedVersions) {
    EXPECT_EQ(code(json{{"cniVersion", v}, {"name", "n"}, {"type", "t"}}.dump()), 0) << v;
  }
  auto unknown = parseNetConf(R"({"cniVersion":"9.9.9","name":"n","type":"t"})");
  EXPECT_NE(unknown.error().msg.find("1.1.0"), std::string::npos) << "lists the supported ones";
}

Result sampleResult() {
  auto parsed = parseResult(json::parse(R"({
    "interfaces":[{"name":"vnetabc","mac":"aa:bb:cc:dd:ee:ff","mtu":1500},
                  {"name":"eth0","mac":"11:22:33:44:55:66","sandbox":"/run/netns/p"}],
    "ips":[{"address":"10.240.0.17/32","gateway":"169.254.1.1","interface":1}],
    "routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1","priority":5}],
    "dns":{"nameservers":["10.0.0.10"]}})"));
  EXPECT_TRUE(parsed) << parsed.error().msg;
  return *parsed;
}

TEST(Results, OneDotZeroAndLaterHaveNoIpVersion) {
  for (const auto v : {"1.0.0", "1.1.0"}) {
    const json doc = toJson(sampleResult(), v);
    EXPECT_EQ(doc["cniVersion"], v);
    EXPECT_FALSE(doc["ips"][0].contains("version"));
    EXPECT_EQ(doc["ips"][0]["address"], "10.240.0.17/32");
    EXPECT_EQ(doc["ips"][0]["interface"], 1);
    EXPECT_EQ(doc["routes"][0],
              (json{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}, {"priority", 5}}));
    EXPECT_EQ(doc["interfaces"][1]["sandbox"], "/run/netns/p");
    EXPECT_EQ(doc["dns"]["nameservers"][0], "10.0.0.10");
  }
}

TEST(Results, ZeroDotThreeAndFourCarryIpVersion) {
  for (const auto v : {"0.3.0", "0.3.1", "0.4.0"}) {
    const json doc = toJson(sampleResult(), v);
    EXPECT_EQ(doc["cniVersion"], v);
    EXPECT_EQ(doc["ips"][0]["version"], "4");
    // And it reads back to the same thing.
    auto back = parseResult(doc);
    ASSERT_TRUE(back);
    EXPECT_EQ(toJson(*back, "1.1.0"), toJson(sampleResult(), "1.1.0"));
  }
}

TEST(Results, ParseRefusesMalformedAddresses) {
  EXPECT_FALSE(parseResult(json::parse(R"({"ips":[{"address":"10.0.0.1"}]})")));
  EXPECT_FALSE(parseResult(json::parse(R"({"ips":[{"address":"10.0.0.1/33"}]})")));
  EXPECT_FALSE(parseResult(json::parse(R"({"routes":[{"dst":"x/0"}]})")));
  EXPECT_FALSE(parseResult(json::parse(R"({"ips":[{"address":"10.0.0.1/32","gateway":"nope"}]})")));
  auto hostBits = parseCidrAddress("10.0.0.17/24");
  ASSERT_TRUE(hostBits);
  EXPECT_EQ(hostBits->first.toString(), "10.0.0.17");
  EXPECT_EQ(hostBits->second, 24);
}

TEST(ErrorJson, HasTheSpecFields) {
  const json withDetails =
      json::parse(errorJson(Error{kTryAgainLater, "no free address", "node n1"}, "1.0.0"));
  EXPECT_EQ(withDetails, (json{{"cniVersion", "1.0.0"},
                               {"code", 11},
                               {"msg", "no free address"},
                               {"details", "node n1"}}));
  const json plain = json::parse(errorJson(Error{kInvalidConfig, "bad"}, "7.7.7"));
  EXPECT_EQ(plain["cniVersion"], "1.1.0") << "an unknown version is answered in the latest";
  EXPECT_FALSE(plain.contains("details"));
}

TEST(Versions, CompareNumerically) {
  EXPECT_LT(compareVersions("0.4.0", "1.0.0"), 0);
  EXPECT_GT(compareVersions("0.10.0", "0.4.0"), 0);
  EXPECT_EQ(compareVersions("1.1.0", "1.1.0"), 0);
  EXPECT_TRUE(isSupportedVersion("0.3.1"));
  EXPECT_FALSE(isSupportedVersion("0.2.0"));
}

}  // namespace
}  // namespace vnetipam::cni
