#include "node-agent/cni/ipam_plugin.h"

#include <gtest/gtest.h>

#include "lib/ipam/pod_gateway.h"

namespace vnetipam::cni {
namespace {

using nlohmann::json;

// Answers from a script and records what it was asked.
class FakeAgent : public AgentClient {
 public:
  base::Result<agent::Response> call(const std::string& socketPath, const agent::Request& request,
                                     std::chrono::milliseconds timeout) override {
    sockets.push_back(socketPath);
    requests.push_back(request);
    timeouts.push_back(timeout);
    if (unreachable) return base::fail(base::ErrorCode::kIo, "connect: No such file or directory");
    return next;
  }
  agent::Response next;
  bool unreachable = false;
  std::vector<std::string> sockets;
  std::vector<agent::Request> requests;
  std::vector<std::chrono::milliseconds> timeouts;
};

agent::Allocation allocation(std::string_view address,
                             std::optional<ipam::IPAddress> gateway = std::nullopt) {
  const auto a = *ipam::IPAddress::parse(address);
  const bool v4 = a.family() == ipam::Family::kV4;
  return agent::Allocation{.owner = {.containerID = "c1", .ifName = "eth0"},
                           .address = a,
                           .block = *ipam::Prefix::parse(v4 ? "10.240.0.16/28" : "fd00:240::/112"),
                           .blockName = v4 ? "pods-10-240-0-16-28" : "pods-fd00-240-112",
                           .gateway = gateway};
}

std::map<std::string, std::string> env(const char* command) {
  return {
      {"CNI_COMMAND", command},      {"CNI_CONTAINERID", "c1"},
      {"CNI_NETNS", "/run/netns/p"}, {"CNI_IFNAME", "eth0"},
      {"CNI_PATH", "/opt/cni/bin"},  {"CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"}};
}

json conf(json ipam = json::object(), std::string version = "1.1.0") {
  ipam["type"] = "vnet-ipam";
  return {{"cniVersion", version}, {"name", "vnet"}, {"type", "vnet-transparent"}, {"ipam", ipam}};
}

TEST(VnetIpam, AddAllocatesAndReturnsSlash32ViaTheLinkLocalGateway) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  const auto inv = runPlugin(makeIpamPlugin(agent), env("ADD"),
                             conf({{"socket", "/tmp/a.sock"}, {"timeoutMs", 250}}).dump());
  ASSERT_EQ(inv.exitCode, 0) << inv.out;
  EXPECT_EQ(json::parse(inv.out),
            (json{{"cniVersion", "1.1.0"},
                  {"ips", {{{"address", "10.240.0.17/32"}, {"gateway", "169.254.1.1"}}}},
                  {"routes", {{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}}}}}));
  ASSERT_EQ(agent.requests.size(), 1U);
  EXPECT_EQ(agent.requests[0].op, agent::Op::kAllocate);
  EXPECT_EQ(agent.requests[0].owner.containerID, "c1");
  EXPECT_EQ(agent.requests[0].owner.ifName, "eth0");
  EXPECT_EQ(agent.requests[0].podNamespace, "default");
  EXPECT_EQ(agent.requests[0].podName, "web");
  EXPECT_EQ(agent.sockets[0], "/tmp/a.sock");
  EXPECT_EQ(agent.timeouts[0], std::chrono::milliseconds(250));
}

// A dual-stack node: both families, IPv4 first whatever the agent's order, each with its own
// gateway and default route. The allocate asks for both.
TEST(VnetIpam, AddOnADualStackNodeReturnsOneAddressPerFamilyEachWithItsGateway) {
  FakeAgent agent;
  agent.next.allocations = {allocation("fd00:240::11", ipam::kPodGatewayV6),
                            allocation("10.240.0.17", ipam::kPodGatewayV4)};
  const auto inv = runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump());
  ASSERT_EQ(inv.exitCode, 0) << inv.out;
  EXPECT_EQ(json::parse(inv.out),
            (json{{"cniVersion", "1.1.0"},
                  {"ips",
                   {{{"address", "10.240.0.17/32"}, {"gateway", "169.254.1.1"}},
                    {{"address", "fd00:240::11/128"}, {"gateway", "fe80::1"}}}},
                  {"routes",
                   {{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}},
                    {{"dst", "::/0"}, {"gw", "fe80::1"}}}}}));
  EXPECT_EQ(agent.requests.at(0).families,
            (std::vector<ipam::Family>{ipam::Family::kV4, ipam::Family::kV6}));
  // IPv6 alone (an IPv6-only node): no IPv4 route without an IPv4 address.
  agent.next.allocations = {allocation("fd00:240::11")};
  const auto v6 = runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump());
  ASSERT_EQ(v6.exitCode, 0) << v6.out;
  EXPECT_EQ(json::parse(v6.out)["ips"],
            (json{{{"address", "fd00:240::11/128"}, {"gateway", "fe80::1"}}}));
  EXPECT_EQ(json::parse(v6.out)["routes"], (json{{{"dst", "::/0"}, {"gw", "fe80::1"}}}));
  // Two addresses of one family is not an answer this plugin can use.
  agent.next.allocations = {allocation("10.240.0.17"), allocation("10.240.0.18")};
  EXPECT_EQ(json::parse(runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump()).out)["code"],
            kInternal);
}

TEST(VnetIpam, AddSendsThePodUIDFromCniArgs) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  auto e = env("ADD");
  // As containerd passes them: IgnoreUnknown first, the sandbox id after the pod's fields.
  e["CNI_ARGS"] =
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
      "K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=7b2f1c0e-5d1a-4c3e-9f0a-1234567890ab";
  const auto inv = runPlugin(makeIpamPlugin(agent), e, conf().dump());
  ASSERT_EQ(inv.exitCode, 0) << inv.out;
  ASSERT_EQ(agent.requests.size(), 1U);
  EXPECT_EQ(agent.requests[0].podName, "web-0");
  EXPECT_EQ(agent.requests[0].podUID, "7b2f1c0e-5d1a-4c3e-9f0a-1234567890ab");

  e["CNI_COMMAND"] = "DEL";
  ASSERT_EQ(runPlugin(makeIpamPlugin(agent), e, conf().dump()).exitCode, 0);
  ASSERT_EQ(agent.requests.size(), 2U);
  EXPECT_EQ(agent.requests[1].op, agent::Op::kRelease);
  EXPECT_EQ(agent.requests[1].podUID, "") << "only allocate records it";
}

TEST(VnetIpam, WithoutK8sPodUIDTheAllocateCarriesNone) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  const auto inv = runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump());
  ASSERT_EQ(inv.exitCode, 0) << inv.out;
  ASSERT_EQ(agent.requests.size(), 1U);
  EXPECT_EQ(agent.requests[0].podUID, "");
  EXPECT_EQ(agent::encode(agent.requests[0]).find("podUID"), std::string::npos)
      << "the request is what an older plugin sent";
}

TEST(VnetIpam, PodUIDFromArgs) {
  auto parsed = [](const char* args) {
    auto e = env("ADD");
    e["CNI_ARGS"] = args;
    auto environment = parseEnv(e);
    EXPECT_TRUE(environment) << args;
    return environment ? podUIDFromArgs(*environment) : std::string("<error>");
  };
  EXPECT_EQ(parsed("K8S_POD_UID=abc"), "abc");
  EXPECT_EQ(parsed("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"), "");
  EXPECT_EQ(parsed(""), "");
  EXPECT_EQ(parsed("K8S_POD_UID="), "") << "empty: not known";
  EXPECT_EQ(parsed("K8S_POD_UID=a;K8S_POD_UID=b"), "b") << "the last one, as for the pod's name";
  EXPECT_EQ(parsed("k8s_pod_uid=x;K8S_POD_UIDX=y"), "") << "keys match exactly";
}

TEST(VnetIpam, PtpShapeIsConfigurable) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  const auto inv =
      runPlugin(makeIpamPlugin(agent), env("ADD"),
                conf({{"addressPrefixLength", 16}, {"routes", json::array()}}, "0.4.0").dump());
  ASSERT_EQ(inv.exitCode, 0) << inv.out;
  const auto doc = json::parse(inv.out);
  EXPECT_EQ(doc["ips"][0]["address"], "10.240.0.17/16");
  EXPECT_EQ(doc["ips"][0]["version"], "4");
  EXPECT_FALSE(doc.contains("routes"));
  EXPECT_EQ(agent.sockets[0], "/run/vnet-ipam/agent.sock") << "the default socket";
}

TEST(VnetIpam, UnreachableOrExhaustedAgentIsTryAgainLater) {
  FakeAgent agent;
  agent.unreachable = true;
  auto inv = runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump());
  EXPECT_NE(inv.exitCode, 0);
  auto doc = json::parse(inv.out);
  EXPECT_EQ(doc["code"], 11);
  EXPECT_NE(doc["msg"].get<std::string>().find("/run/vnet-ipam/agent.sock"), std::string::npos);
  EXPECT_NE(doc["msg"].get<std::string>().find("c1"), std::string::npos);

  agent.unreachable = false;
  agent.next =
      agent::Response::failure(agent::ErrorCode::kTryAgainLater, "no free address on node n1");
  inv = runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump());
  doc = json::parse(inv.out);
  EXPECT_EQ(doc["code"], 11);
  EXPECT_NE(doc["msg"].get<std::string>().find("no free address on node n1"), std::string::npos);
}

TEST(VnetIpam, DelReleasesAndFailsOnlyWhenTheAgentCannotBeAsked) {
  FakeAgent agent;
  auto e = env("DEL");
  e.erase("CNI_NETNS");
  auto inv = runPlugin(makeIpamPlugin(agent), e, conf().dump());
  EXPECT_EQ(inv.exitCode, 0) << inv.out;
  EXPECT_EQ(agent.requests.at(0).op, agent::Op::kRelease);
  // Releasing what is not held: the agent says ok with no allocations; so do we.
  inv = runPlugin(makeIpamPlugin(agent), e, conf().dump());
  EXPECT_EQ(inv.exitCode, 0);
  agent.unreachable = true;
  inv = runPlugin(makeIpamPlugin(agent), e, conf().dump());
  EXPECT_EQ(json::parse(inv.out)["code"], 11);
}

TEST(VnetIpam, CheckComparesTheAgentWithPrevResult) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  auto c = conf();
  c["prevResult"] = {{"cniVersion", "1.1.0"}, {"ips", {{{"address", "10.240.0.17/32"}}}}};
  EXPECT_EQ(runPlugin(makeIpamPlugin(agent), env("CHECK"), c.dump()).exitCode, 0);
  EXPECT_EQ(agent.requests.at(0).op, agent::Op::kCheck);
  c["prevResult"]["ips"][0]["address"] = "10.240.0.18/32";
  auto inv = runPlugin(makeIpamPlugin(agent), env("CHECK"), c.dump());
  EXPECT_EQ(json::parse(inv.out)["code"], kLayoutMismatch);
  agent.next =
      agent::Response::failure(agent::ErrorCode::kUnknownContainer, "no allocation for c1");
  inv = runPlugin(makeIpamPlugin(agent), env("CHECK"), c.dump());
  EXPECT_EQ(json::parse(inv.out)["code"], kUnknownContainer);
}

TEST(VnetIpam, CheckWantsEveryFamilyTheAgentHoldsInPrevResult) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17"), allocation("fd00:240::11")};
  auto c = conf();
  c["prevResult"] = {{"cniVersion", "1.1.0"},
                     {"ips", {{{"address", "10.240.0.17/32"}}, {{"address", "fd00:240::11/128"}}}}};
  EXPECT_EQ(runPlugin(makeIpamPlugin(agent), env("CHECK"), c.dump()).exitCode, 0);
  c["prevResult"]["ips"].erase(1);
  const auto inv = runPlugin(makeIpamPlugin(agent), env("CHECK"), c.dump());
  EXPECT_EQ(json::parse(inv.out)["code"], kLayoutMismatch);
  EXPECT_NE(inv.out.find("fd00:240::11"), std::string::npos) << inv.out;
}

TEST(VnetIpam, GcSendsTheValidAttachments) {
  FakeAgent agent;
  auto c = conf();
  c["cni.dev/valid-attachments"] = {{{"containerID", "a"}, {"ifname", "eth0"}},
                                    {{"containerID", "b"}, {"ifname", "net1"}}};
  const auto inv =
      runPlugin(makeIpamPlugin(agent), {{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, c.dump());
  EXPECT_EQ(inv.exitCode, 0) << inv.out;
  ASSERT_EQ(agent.requests.size(), 1U);
  EXPECT_EQ(agent.requests[0].op, agent::Op::kGc);
  EXPECT_EQ(agent.requests[0].validAttachments,
            (std::vector<ipam::Owner>{{"a", "eth0"}, {"b", "net1"}}));
}

// The agent keys allocations by network too and scopes GC by it: ADD, DEL, CHECK and GC name the
// configuration's "name".
TEST(VnetIpam, EveryAttachmentRequestNamesTheNetwork) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  auto c = conf();
  c["name"] = "net-b";
  for (const char* command : {"ADD", "CHECK", "DEL"})
    EXPECT_EQ(runPlugin(makeIpamPlugin(agent), env(command), c.dump()).exitCode, 0) << command;
  c["cni.dev/valid-attachments"] = json::array();
  EXPECT_EQ(runPlugin(makeIpamPlugin(agent), {{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, c.dump())
                .exitCode,
            0);
  ASSERT_EQ(agent.requests.size(), 4U);
  for (const agent::Request& r : agent.requests)
    EXPECT_EQ(r.network, "net-b") << agent::toString(r.op);
  EXPECT_EQ(agent.requests[3].op, agent::Op::kGc);
}

// The spec bounds no network name; the protocol carries at most kMaxNetworkBytes. A longer name is
// not sent, so the network works as it did before networks were named rather than being refused.
TEST(VnetIpam, ANetworkNameLongerThanTheProtocolCarriesIsNotNamed) {
  FakeAgent agent;
  agent.next.allocations = {allocation("10.240.0.17")};
  auto c = conf();
  c["name"] = std::string(agent::kMaxNetworkBytes + 1, 'n');
  EXPECT_EQ(runPlugin(makeIpamPlugin(agent), env("ADD"), c.dump()).exitCode, 0);
  c["name"] = std::string(agent::kMaxNetworkBytes, 'n');
  EXPECT_EQ(runPlugin(makeIpamPlugin(agent), env("ADD"), c.dump()).exitCode, 0);
  ASSERT_EQ(agent.requests.size(), 2U);
  EXPECT_EQ(agent.requests[0].network, "");
  EXPECT_EQ(agent.requests[1].network, std::string(agent::kMaxNetworkBytes, 'n'));
}

TEST(VnetIpam, AnAttachmentAnotherNetworkHoldsIsCode102) {
  FakeAgent agent;
  agent.next = agent::Response::failure(agent::ErrorCode::kInterfaceExists,
                                        "the attachment holds 10.240.0.17 for network net-a");
  const auto inv = runPlugin(makeIpamPlugin(agent), env("ADD"), conf().dump());
  EXPECT_NE(inv.exitCode, 0);
  EXPECT_EQ(json::parse(inv.out)["code"], kInterfaceExists);
  EXPECT_NE(inv.out.find("net-a"), std::string::npos) << inv.out;
}

TEST(VnetIpam, StatusIsReadyOnlyWithFreeAddresses) {
  FakeAgent agent;
  const auto status = [&] {
    const auto inv = runPlugin(makeIpamPlugin(agent), {{"CNI_COMMAND", "STATUS"}}, conf().dump());
    return inv.exitCode == 0 ? 0 : json::parse(inv.out)["code"].get<int>();
  };
  agent.next.ready = true;
  agent.next.freeIPs = 3;
  EXPECT_EQ(status(), 0);
  agent.next.freeIPs = 0;
  EXPECT_EQ(status(), kPluginNotAvailable);
  agent.next.ready = false;
  agent.next.freeIPs = 3;
  EXPECT_EQ(status(), kPluginNotAvailable);
  agent.unreachable = true;
  EXPECT_EQ(status(), kPluginNotAvailable);
  agent.unreachable = false;
  agent.next = agent::Response::failure(agent::ErrorCode::kTryAgainLater, "starting");
  EXPECT_EQ(status(), kPluginNotAvailable);
}

TEST(VnetIpam, BadConfigIsCodeSevenAndAsksNothing) {
  FakeAgent agent;
  for (const json& ipam : {json{{"socket", 5}}, json{{"timeoutMs", 0}},
                           json{{"addressPrefixLength", 33}}, json{{"routes", "x"}}}) {
    const auto inv = runPlugin(makeIpamPlugin(agent), env("ADD"), conf(ipam).dump());
    EXPECT_EQ(json::parse(inv.out)["code"], kInvalidConfig) << ipam;
  }
  EXPECT_TRUE(agent.requests.empty());
}

}  // namespace
}  // namespace vnetipam::cni
