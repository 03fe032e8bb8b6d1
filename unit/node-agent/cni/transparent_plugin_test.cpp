// vnet-transparent's ADD, CHECK and DEL against real namespaces (anonymous, made per test; needs
// root), with the IPAM delegate faked so the test controls the address and sees every call.
#include "node-agent/cni/transparent_plugin.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <tuple>

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/net/veth_name.h"
#include "unit/lib/net/test_netns.h"

namespace vnetipam::cni {
namespace {

using net::testing::ipJson;
using net::testing::runCommand;
using net::testing::TestNetns;
using nlohmann::json;

class FakeIpam : public IpamDelegate {
 public:
  Outcome<Result> run(Command command, const Env&, const NetConf& conf) override {
    commands.push_back(command);
    types.push_back(conf.ipamType);
    if (command == Command::kAdd) {
      if (failAdd) return failWith(kTryAgainLater, "no free address");
      Result r;
      if (!address.empty()) {
        r.ips.push_back({.address = *ipam::IPAddress::parse(address),
                         .prefixLength = 24,
                         .gateway = *ipam::IPAddress::parse("10.77.0.1")});
      }
      if (!address6.empty()) {
        r.ips.push_back({.address = *ipam::IPAddress::parse(address6),
                         .prefixLength = 64,
                         .gateway = *ipam::IPAddress::parse("fd00:77::1")});
      }
      return r;
    }
    if (command == Command::kCheck && failCheck) return failWith(kUnknownContainer, "unknown");
    return Result{};
  }
  std::string address = "10.77.0.5";  // empty: none
  std::string address6;               // empty: none
  bool failAdd = false;
  bool failCheck = false;
  std::vector<Command> commands;
  std::vector<std::string> types;
};

class TransparentPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = net::testing::netnsUnavailable()) GTEST_SKIP() << *why;
    host_.emplace();
    pod_.emplace();
  }

  std::map<std::string, std::string> env(const char* command, std::string containerID = "ctr-1") {
    return {{"CNI_COMMAND", command},
            {"CNI_CONTAINERID", std::move(containerID)},
            {"CNI_NETNS", pod_->procPath()},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/nonexistent"}};
  }
  static json conf() {
    return {{"cniVersion", "1.1.0"},   {"name", "vnet"}, {"type", "vnet-transparent"},
            {"hostVethPrefix", "tst"}, {"mtu", 1400},    {"ipam", {{"type", "fake-ipam"}}}};
  }
  Invocation run(const std::map<std::string, std::string>& e, const json& c) {
    return runPlugin(makeTransparentPlugin(host_->ns(), ipam_), e, c.dump());
  }
  std::string hostVeth(std::string_view containerID = "ctr-1", std::string_view ifName = "eth0") {
    return *net::hostVethName("tst", containerID, ifName);
  }
  bool hostHasLink(const std::string& name) {
    const auto links = ipJson(*host_, "link show");
    return std::ranges::any_of(links, [&](const json& l) { return l["ifname"] == name; });
  }
  // net.ipv4.ip_forward of a test namespace, read or written by a tool inside it.
  static std::string ipForward(const TestNetns& ns) {
    const auto r = runCommand(
        fmt::format("nsenter --net={} cat /proc/sys/net/ipv4/ip_forward", ns.procPath()));
    EXPECT_EQ(r.status, 0) << r.out;
    return r.out.substr(0, r.out.find('\n'));
  }
  static void setIpForward(const TestNetns& ns, int value) {
    const auto r = runCommand(fmt::format(
        "nsenter --net={} sh -c 'echo {} > /proc/sys/net/ipv4/ip_forward'", ns.procPath(), value));
    ASSERT_EQ(r.status, 0) << r.out;
  }

  std::optional<TestNetns> host_;
  std::optional<TestNetns> pod_;
  FakeIpam ipam_;
};

TEST_F(TransparentPluginTest, AddCheckDelDel) {
  const auto add = run(env("ADD"), conf());
  ASSERT_EQ(add.exitCode, 0) << add.out;
  const json result = json::parse(add.out);
  EXPECT_EQ(result["ips"],
            (json{{{"address", "10.77.0.5/32"}, {"gateway", "169.254.1.1"}, {"interface", 1}}}));
  EXPECT_EQ(result["routes"], (json{{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}}}));
  EXPECT_EQ(result["interfaces"][0]["name"], hostVeth());
  EXPECT_EQ(result["interfaces"][1]["name"], "eth0");
  EXPECT_EQ(result["interfaces"][1]["sandbox"], pod_->procPath());
  EXPECT_EQ(result["interfaces"][1]["mtu"], 1400);

  // The layout, as `ip` sees it.
  const auto podAddr = ipJson(*pod_, "addr show dev eth0");
  ASSERT_EQ(podAddr.size(), 1U);
  EXPECT_EQ(podAddr[0]["mtu"], 1400);
  bool slash32 = false;
  for (const auto& a : podAddr[0]["addr_info"])
    slash32 |= a["local"] == "10.77.0.5" && a["prefixlen"] == 32;
  EXPECT_TRUE(slash32) << podAddr.dump();
  const auto hostRoutes = ipJson(*host_, "route show 10.77.0.5/32");
  ASSERT_EQ(hostRoutes.size(), 1U);
  EXPECT_EQ(hostRoutes[0]["dev"], hostVeth());

  auto check = conf();
  check["prevResult"] = result;
  const auto ok = run(env("CHECK"), check);
  EXPECT_EQ(ok.exitCode, 0) << ok.out;

  // Break one piece: CHECK names it.
  ASSERT_EQ(runCommand(
                fmt::format("nsenter --net={} ip neigh del 169.254.1.1 dev eth0", pod_->procPath()))
                .status,
            0);
  const auto broken = run(env("CHECK"), check);
  ASSERT_NE(broken.exitCode, 0);
  const auto err = json::parse(broken.out);
  EXPECT_EQ(err["code"], kLayoutMismatch);
  EXPECT_NE(err["msg"].get<std::string>().find("neighbour 169.254.1.1"), std::string::npos)
      << err["msg"];

  for (int i = 0; i < 2; ++i) {
    const auto del = run(env("DEL"), conf());
    EXPECT_EQ(del.exitCode, 0) << del.out;
    EXPECT_FALSE(hostHasLink(hostVeth()));
    EXPECT_TRUE(ipJson(*host_, "route show 10.77.0.5/32").empty());
  }
  EXPECT_EQ(ipam_.commands, (std::vector<Command>{Command::kAdd, Command::kCheck, Command::kCheck,
                                                  Command::kDel, Command::kDel}));
  EXPECT_EQ(ipam_.types.front(), "fake-ipam");
}

TEST_F(TransparentPluginTest, CheckFailsWhenTheIpamDelegateDoes) {
  const auto add = run(env("ADD"), conf());
  ASSERT_EQ(add.exitCode, 0) << add.out;
  auto check = conf();
  check["prevResult"] = json::parse(add.out);
  ipam_.failCheck = true;
  EXPECT_EQ(json::parse(run(env("CHECK"), check).out)["code"], kUnknownContainer);
  check.erase("prevResult");
  EXPECT_EQ(json::parse(run(env("CHECK"), check).out)["code"], kInvalidConfig);
}

// Each piece of the layout CHECK reads (links, addresses, routes on both sides, the neighbour
// entry) broken on its own, after a fresh ADD: CHECK fails with kLayoutMismatch and names that
// piece.
TEST_F(TransparentPluginTest, CheckNamesEachBrokenPiece) {
  struct Fault {
    std::string what;
    // Run inside the pod (or the host) with "HOSTMAC" replaced by the host veth's MAC; empty: the
    // fault is in prevResult instead (another address than ADD gave).
    std::string command;
    bool inPod = true;
    std::string named;  // part of CHECK's message
  };
  const std::string veth = hostVeth();
  const std::vector<Fault> faults = {
      {"pod address", "ip addr del 10.77.0.5/32 dev eth0", true, "address 10.77.0.5/32 is missing"},
      {"another address in prevResult", "", true, "address 10.77.0.9/32 is missing"},
      {"host route", "ip route del 10.77.0.5/32", false, "host route 10.77.0.5/32 dev " + veth},
      {"gateway link route", "ip route del 169.254.1.1/32 dev eth0", true,
       "link route 169.254.1.1 is missing"},
      {"default route", "ip route del default", true, "default route via 169.254.1.1 is missing"},
      {"neighbour MAC",
       "ip neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:01 dev eth0 nud permanent", true,
       "permanent neighbour 169.254.1.1"},
      {"neighbour not permanent", "ip neigh replace 169.254.1.1 lladdr HOSTMAC dev eth0 nud stale",
       true, "permanent neighbour 169.254.1.1"},
      {"pod MAC", "ip link set eth0 address ee:ee:ee:ee:ee:02", true, "MAC is ee:ee:ee:ee:ee:02"},
      {"pod MTU", "ip link set eth0 mtu 1300", true, "MTU is 1300 (pod)"},
      {"host veth down", "ip link set " + veth + " down", false, veth + " is down"},
  };
  for (const auto& f : faults) {
    SCOPED_TRACE(f.what);
    const auto add = run(env("ADD"), conf());
    ASSERT_EQ(add.exitCode, 0) << add.out;
    auto check = conf();
    check["prevResult"] = json::parse(add.out);
    ASSERT_EQ(run(env("CHECK"), check).exitCode, 0) << "whole before the fault";
    if (f.command.empty()) {
      check["prevResult"]["ips"][0]["address"] = "10.77.0.9/32";
    } else {
      std::string command = f.command;
      if (const auto at = command.find("HOSTMAC"); at != std::string::npos) {
        command.replace(at, 7, check["prevResult"]["interfaces"][0]["mac"].get<std::string>());
      }
      const auto r = runCommand(
          fmt::format("nsenter --net={} {}", (f.inPod ? *pod_ : *host_).procPath(), command));
      ASSERT_EQ(r.status, 0) << command << ": " << r.out;
    }
    const auto broken = run(env("CHECK"), check);
    ASSERT_NE(broken.exitCode, 0);
    const auto err = json::parse(broken.out);
    EXPECT_EQ(err["code"], kLayoutMismatch) << broken.out;
    EXPECT_NE(err["msg"].get<std::string>().find(f.named), std::string::npos) << err["msg"];
    ASSERT_EQ(run(env("DEL"), conf()).exitCode, 0);
  }
}

// A dual-stack IPAM result (host-local with an IPv4 and an IPv6 range): both families wired,
// listed, checked and deleted; IPv6 forwarding turned on in the host namespace.
TEST_F(TransparentPluginTest, DualStackAddCheckDel) {
  ipam_.address6 = "fd00:77::5";
  const auto add = run(env("ADD"), conf());
  ASSERT_EQ(add.exitCode, 0) << add.out;
  const json result = json::parse(add.out);
  EXPECT_EQ(result["ips"],
            (json{{{"address", "10.77.0.5/32"}, {"gateway", "169.254.1.1"}, {"interface", 1}},
                  {{"address", "fd00:77::5/128"}, {"gateway", "fe80::1"}, {"interface", 1}}}));
  EXPECT_EQ(result["routes"], (json{{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}},
                                    {{"dst", "::/0"}, {"gw", "fe80::1"}}}));
  const auto hostRoutes = ipJson(*host_, "-6 route show fd00:77::5/128");
  ASSERT_EQ(hostRoutes.size(), 1U);
  EXPECT_EQ(hostRoutes[0]["dev"], hostVeth());
  EXPECT_EQ(ipJson(*pod_, "-6 route show default").size(), 1U);
  const auto forwarding = runCommand(fmt::format(
      "nsenter --net={} cat /proc/sys/net/ipv6/conf/all/forwarding", host_->procPath()));
  EXPECT_EQ(forwarding.out, "1\n");

  auto check = conf();
  check["prevResult"] = result;
  const auto ok = run(env("CHECK"), check);
  EXPECT_EQ(ok.exitCode, 0) << ok.out;

  for (int i = 0; i < 2; ++i) {
    const auto del = run(env("DEL"), conf());
    EXPECT_EQ(del.exitCode, 0) << del.out;
  }
  EXPECT_FALSE(hostHasLink(hostVeth()));
  EXPECT_TRUE(ipJson(*host_, "-6 route show fd00:77::5/128").empty());
  EXPECT_TRUE(ipJson(*host_, "-4 route show 10.77.0.5/32").empty());
}

TEST_F(TransparentPluginTest, IPv6OnlyAddCheckDel) {
  ipam_.address.clear();
  ipam_.address6 = "fd00:77::6";
  const auto add = run(env("ADD"), conf());
  ASSERT_EQ(add.exitCode, 0) << add.out;
  const json result = json::parse(add.out);
  EXPECT_EQ(result["ips"],
            (json{{{"address", "fd00:77::6/128"}, {"gateway", "fe80::1"}, {"interface", 1}}}));
  EXPECT_EQ(result["routes"], (json{{{"dst", "::/0"}, {"gw", "fe80::1"}}}));
  EXPECT_TRUE(ipJson(*pod_, "-4 addr show dev eth0").empty());
  EXPECT_TRUE(ipJson(*pod_, "-4 route show").empty());
  auto check = conf();
  check["prevResult"] = result;
  const auto ok = run(env("CHECK"), check);
  EXPECT_EQ(ok.exitCode, 0) << ok.out;
  ASSERT_EQ(run(env("DEL"), conf()).exitCode, 0);
  EXPECT_TRUE(ipJson(*host_, "-6 route show fd00:77::6/128").empty());
}

TEST_F(TransparentPluginTest, CheckNamesEachBrokenIPv6Piece) {
  ipam_.address6 = "fd00:77::5";
  const std::string veth = hostVeth();
  const std::vector<std::tuple<std::string, bool, std::string>> faults = {
      {"ip -6 addr del fd00:77::5/128 dev eth0", true, "address fd00:77::5/128 is missing"},
      {"ip -6 route del fd00:77::5/128", false, "host route fd00:77::5/128 dev " + veth},
      {"ip -6 route del default", true, "IPv6 default route via fe80::1 is missing"},
      {"ip -6 neigh replace fe80::1 lladdr HOSTMAC dev eth0 nud stale", true,
       "permanent neighbour fe80::1"},
      {"ip -6 addr del fe80::1/64 dev " + veth, false, "does not have the gateway address fe80::1"},
      {"sh -c 'echo 0 > /proc/sys/net/ipv6/conf/" + veth + "/forwarding'", false,
       "IPv6 forwarding on " + veth + " is 0"},
  };
  for (const auto& [command, inPod, named] : faults) {
    SCOPED_TRACE(command);
    const auto add = run(env("ADD"), conf());
    ASSERT_EQ(add.exitCode, 0) << add.out;
    auto check = conf();
    check["prevResult"] = json::parse(add.out);
    ASSERT_EQ(run(env("CHECK"), check).exitCode, 0) << "whole before the fault";
    std::string c = command;
    if (const auto at = c.find("HOSTMAC"); at != std::string::npos) {
      c.replace(at, 7, check["prevResult"]["interfaces"][0]["mac"].get<std::string>());
    }
    const auto r =
        runCommand(fmt::format("nsenter --net={} {}", (inPod ? *pod_ : *host_).procPath(), c));
    ASSERT_EQ(r.status, 0) << c << ": " << r.out;
    const auto broken = run(env("CHECK"), check);
    ASSERT_NE(broken.exitCode, 0);
    const auto err = json::parse(broken.out);
    EXPECT_EQ(err["code"], kLayoutMismatch) << broken.out;
    EXPECT_NE(err["msg"].get<std::string>().find(named), std::string::npos) << err["msg"];
    ASSERT_EQ(run(env("DEL"), conf()).exitCode, 0);
  }
}

// GC does not look at families: a stale dual-stack attachment's veth goes, and its /128 and /32
// with it.
TEST_F(TransparentPluginTest, GcTakesAStaleDualStackAttachmentsRoutes) {
  ipam_.address6 = "fd00:77::7";
  ASSERT_EQ(run(env("ADD", "ctr-stale"), conf()).exitCode, 0);
  ASSERT_EQ(ipJson(*host_, "-6 route show fd00:77::7/128").size(), 1U);
  const auto out = run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, conf());
  ASSERT_EQ(out.exitCode, 0) << out.out;
  EXPECT_FALSE(hostHasLink(hostVeth("ctr-stale")));
  EXPECT_TRUE(ipJson(*host_, "-6 route show fd00:77::7/128").empty());
  EXPECT_TRUE(ipJson(*host_, "-4 route show 10.77.0.5/32").empty());
}

// The spec: "If an interface of the requested name already exists in the container, the CNI plugin
// MUST return with an error." An eth0 the pod has from elsewhere: refused before IPAM (no address
// taken, none released), nothing made, the interface left as it was.
TEST_F(TransparentPluginTest, AddRefusesAnInterfaceThePodAlreadyHasBeforeIpam) {
  ASSERT_EQ(runCommand(fmt::format("nsenter --net={} ip link add eth0 type veth peer name x0",
                                   pod_->procPath()))
                .status,
            0);
  const auto add = run(env("ADD"), conf());
  ASSERT_NE(add.exitCode, 0);
  const auto err = json::parse(add.out);
  EXPECT_EQ(err["code"], kInterfaceExists);
  EXPECT_NE(err["msg"].get<std::string>().find("interface eth0 already exists"), std::string::npos)
      << err["msg"];
  EXPECT_TRUE(ipam_.commands.empty());
  EXPECT_FALSE(hostHasLink(hostVeth()));
  EXPECT_EQ(ipJson(*pod_, "link show dev eth0").size(), 1U);
}

// A second ADD of the same attachment (container and interface): refused, and the first stays
// whole: same MAC, same address, its host veth and route, CHECK still passes, and IPAM saw one ADD
// only (no second address, no undo releasing the first one's).
TEST_F(TransparentPluginTest, ASecondAddOfTheSameAttachmentIsRefusedAndLeavesTheFirstWhole) {
  const auto first = run(env("ADD"), conf());
  ASSERT_EQ(first.exitCode, 0) << first.out;
  const json result = json::parse(first.out);
  ipam_.address = "10.77.0.9";
  const auto second = run(env("ADD"), conf());
  ASSERT_NE(second.exitCode, 0) << second.out;
  EXPECT_EQ(json::parse(second.out)["code"], kInterfaceExists) << second.out;
  EXPECT_EQ(ipam_.commands, std::vector<Command>{Command::kAdd});

  const auto podLink = ipJson(*pod_, "link show dev eth0");
  ASSERT_EQ(podLink.size(), 1U);
  EXPECT_EQ(podLink[0]["address"], result["interfaces"][1]["mac"]) << "eth0 was not rebuilt";
  ASSERT_EQ(ipJson(*host_, "route show 10.77.0.5/32").size(), 1U);
  EXPECT_EQ(ipJson(*host_, "route show 10.77.0.5/32")[0]["dev"], hostVeth());
  EXPECT_TRUE(ipJson(*host_, "route show 10.77.0.9/32").empty());
  auto check = conf();
  check["prevResult"] = result;
  const auto ok = run(env("CHECK"), check);
  EXPECT_EQ(ok.exitCode, 0) << ok.out;
}

// Two networks on one pod (eth0, and eth1 as Multus adds it), here with one prefix: each
// attachment has a host veth of its own. DEL of eth1 leaves eth0 whole (address, veth, route, and
// CHECK passes); GC listing eth0 alone deletes only eth1's veth.
TEST_F(TransparentPluginTest, TwoInterfacesOfOnePodAreTwoAttachments) {
  const auto add0 = run(env("ADD"), conf());
  ASSERT_EQ(add0.exitCode, 0) << add0.out;
  ipam_.address = "10.77.0.6";
  auto eth1 = env("ADD");
  eth1["CNI_IFNAME"] = "eth1";
  const auto add1 = run(eth1, conf());
  ASSERT_EQ(add1.exitCode, 0) << add1.out;
  EXPECT_EQ(hostVeth("ctr-1", "eth0"), *net::legacyHostVethName("tst", "ctr-1"))
      << "eth0 keeps the name older releases gave it";
  EXPECT_NE(hostVeth("ctr-1", "eth1"), hostVeth("ctr-1", "eth0"));
  EXPECT_EQ(json::parse(add1.out)["interfaces"][0]["name"], hostVeth("ctr-1", "eth1"));
  // One default route in the pod, eth0's: eth1 adds its address and neighbour entry, no routes.
  EXPECT_FALSE(json::parse(add1.out).contains("routes")) << add1.out;
  const auto podRoutes = ipJson(*pod_, "route show");
  ASSERT_EQ(podRoutes.size(), 2U) << podRoutes.dump();
  for (const auto& r : podRoutes)
    EXPECT_EQ(r["dev"], "eth0") << podRoutes.dump();
  EXPECT_EQ(ipJson(*pod_, "neigh show dev eth1").size(), 1U);
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-1", "eth0")));
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-1", "eth1")));
  EXPECT_EQ(ipJson(*host_, "route show 10.77.0.5/32")[0]["dev"], hostVeth("ctr-1", "eth0"));
  EXPECT_EQ(ipJson(*host_, "route show 10.77.0.6/32")[0]["dev"], hostVeth("ctr-1", "eth1"));
  auto check1 = conf();
  check1["prevResult"] = json::parse(add1.out);
  auto checkEnv1 = env("CHECK");
  checkEnv1["CNI_IFNAME"] = "eth1";
  EXPECT_EQ(run(checkEnv1, check1).exitCode, 0);

  auto del1 = env("DEL");
  del1["CNI_IFNAME"] = "eth1";
  ASSERT_EQ(run(del1, conf()).exitCode, 0);
  EXPECT_FALSE(hostHasLink(hostVeth("ctr-1", "eth1")));
  EXPECT_TRUE(ipJson(*host_, "route show 10.77.0.6/32").empty());
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-1", "eth0")));
  EXPECT_EQ(ipJson(*host_, "route show 10.77.0.5/32").size(), 1U);
  EXPECT_EQ(ipJson(*pod_, "addr show dev eth0").size(), 1U);
  auto check0 = conf();
  check0["prevResult"] = json::parse(add0.out);
  const auto ok = run(env("CHECK"), check0);
  EXPECT_EQ(ok.exitCode, 0) << ok.out;

  // eth1 again, then GC with eth0 the only valid attachment.
  ASSERT_EQ(run(eth1, conf()).exitCode, 0);
  auto gc = conf();
  gc["cni.dev/valid-attachments"] = json::array({{{"containerID", "ctr-1"}, {"ifname", "eth0"}}});
  ASSERT_EQ(run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc).exitCode, 0);
  EXPECT_FALSE(hostHasLink(hostVeth("ctr-1", "eth1")));
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-1", "eth0")));
  EXPECT_EQ(run(env("CHECK"), check0).exitCode, 0);
}

// A pod an older release gave a non-eth0 interface has a veth named by its container id alone.
// GC of an upgraded plugin must keep it while the runtime lists the container.
TEST_F(TransparentPluginTest, GcKeepsAVethNamedByTheOlderSchemeWhileItsContainerIsListed) {
  const std::string legacy = *net::legacyHostVethName("tst", "ctr-old");
  ASSERT_EQ(runCommand(fmt::format("nsenter --net={} ip link add {} type veth peer name net1 "
                                   "netns {}",
                                   host_->procPath(), legacy, pod_->procPath()))
                .status,
            0);
  auto gc = conf();
  gc["cni.dev/valid-attachments"] = json::array({{{"containerID", "ctr-old"}, {"ifname", "net1"}}});
  ASSERT_EQ(run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc).exitCode, 0);
  EXPECT_TRUE(hostHasLink(legacy));
  gc["cni.dev/valid-attachments"] = json::array();
  ASSERT_EQ(run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc).exitCode, 0);
  EXPECT_FALSE(hostHasLink(legacy)) << "once the container is gone, it is collected";
}

// A packet from another node to a pod comes in on the node's uplink, which forwards only with
// net.ipv4.ip_forward=1: ADD turns it on in the host namespace (a test namespace here), as ptp
// does, and leaves the pod's namespace alone.
TEST_F(TransparentPluginTest, AddTurnsOnIpForwardInTheHostNamespace) {
  setIpForward(*host_, 0);
  setIpForward(*pod_, 0);
  ASSERT_EQ(ipForward(*host_), "0");
  const auto add = run(env("ADD"), conf());
  ASSERT_EQ(add.exitCode, 0) << add.out;
  EXPECT_EQ(ipForward(*host_), "1");
  EXPECT_EQ(ipForward(*pod_), "0");

  // Already on: the next ADD succeeds and it stays on.
  TestNetns second;
  ipam_.address = "10.77.0.6";
  auto e = env("ADD", "ctr-2");
  e["CNI_NETNS"] = second.procPath();
  const auto again = run(e, conf());
  ASSERT_EQ(again.exitCode, 0) << again.out;
  EXPECT_EQ(ipForward(*host_), "1");
}

// Where ip_forward is 0 and cannot be written (/proc/sys read-only, as for a runtime in a
// container), ADD fails with the spec's I/O error naming the sysctl, and holds nothing: no veth,
// no route, the address released. The plugin runs in a child process that remounts /proc/sys
// read-only in a mount namespace of its own, so this process's mounts never change.
TEST_F(TransparentPluginTest, AddFailsNamingIpForwardWhenItCannotBeSet) {
  setIpForward(*host_, 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    ::close(fds[0]);
    json report;
    // Private first: without it the read-only mount could propagate to the parent's namespace.
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("/proc/sys", "/proc/sys", nullptr, MS_BIND, nullptr) != 0 ||
        ::mount(nullptr, "/proc/sys", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      report["skip"] = std::string("read-only /proc/sys: ") + std::strerror(errno);
    } else {
      const auto add = run(env("ADD"), conf());
      report["exitCode"] = add.exitCode;
      report["out"] = add.out;
      report["commands"] = json::array();
      for (Command c : ipam_.commands)
        report["commands"].push_back(static_cast<int>(c));
    }
    const std::string text = report.dump();
    (void)!::write(fds[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const json report = json::parse(text);
  if (report.contains("skip")) GTEST_SKIP() << report["skip"].get<std::string>();

  ASSERT_NE(report["exitCode"], 0);
  const json err = json::parse(report["out"].get<std::string>());
  EXPECT_EQ(err["code"], kIoFailure);
  EXPECT_NE(err["msg"].get<std::string>().find("net.ipv4.ip_forward"), std::string::npos)
      << err["msg"];
  EXPECT_EQ(report["commands"],
            (json{static_cast<int>(Command::kAdd), static_cast<int>(Command::kDel)}));
  EXPECT_FALSE(hostHasLink(hostVeth()));
  EXPECT_TRUE(ipJson(*host_, "route show 10.77.0.5/32").empty());
  EXPECT_EQ(ipForward(*host_), "0");
}

TEST_F(TransparentPluginTest, IpamFailureIsPassedThroughAndNothingIsCreated) {
  ipam_.failAdd = true;
  const auto add = run(env("ADD"), conf());
  EXPECT_EQ(json::parse(add.out)["code"], kTryAgainLater);
  EXPECT_FALSE(hostHasLink(hostVeth()));
}

TEST_F(TransparentPluginTest, BadNetnsOrConfigCostsNoAddress) {
  auto e = env("ADD");
  e["CNI_NETNS"] = "/nonexistent/netns";
  auto add = run(e, conf());
  EXPECT_EQ(json::parse(add.out)["code"], kInvalidEnvironment);
  EXPECT_NE(json::parse(add.out)["msg"].get<std::string>().find("/nonexistent/netns"),
            std::string::npos);
  for (const auto& [key, value] : {std::pair<std::string, json>{"mtu", 20},
                                   {"hostVethPrefix", "much-too-long-prefix"},
                                   {"ipam", json::object()}}) {
    auto c = conf();
    c[key] = value;
    add = run(env("ADD"), c);
    EXPECT_EQ(json::parse(add.out)["code"], kInvalidConfig) << key;
  }
  EXPECT_TRUE(ipam_.commands.empty());
}

TEST_F(TransparentPluginTest, DelWorksWhenTheNetnsIsGone) {
  ASSERT_EQ(run(env("ADD"), conf()).exitCode, 0);
  const auto e = env("DEL");
  pod_.reset();  // the runtime removed the pod's namespace: the kernel deletes the veth pair
  auto gone = e;
  gone["CNI_NETNS"] = "/proc/self/fd/999999";
  const auto del = run(gone, conf());
  EXPECT_EQ(del.exitCode, 0) << del.out;
  gone.erase("CNI_NETNS");
  EXPECT_EQ(run(gone, conf()).exitCode, 0);
  EXPECT_EQ(ipam_.commands.back(), Command::kDel);
}

// GC deletes the host veths of attachments not listed, and nothing else: not a listed one, not a
// non-veth or a veth with both ends here that has our name's shape, not another prefix's veth.
TEST_F(TransparentPluginTest, GcDeletesOnlyStaleHostVethsOfOurs) {
  TestNetns stalePod;
  TestNetns otherPod;
  ASSERT_EQ(run(env("ADD", "ctr-keep"), conf()).exitCode, 0);
  ipam_.address = "10.77.0.6";
  auto staleEnv = env("ADD", "ctr-stale");
  staleEnv["CNI_NETNS"] = stalePod.procPath();
  const auto added = run(staleEnv, conf());
  ASSERT_EQ(added.exitCode, 0) << added.out;
  ASSERT_EQ(ipJson(*host_, "route show 10.77.0.6/32").size(), 1U);

  const auto inHost = [&](const std::string& cmd) {
    const auto r = runCommand(fmt::format("nsenter --net={} {}", host_->procPath(), cmd));
    ASSERT_EQ(r.status, 0) << cmd << ": " << r.out;
  };
  const std::string bridge = hostVeth("ctr-bridge");
  const std::string local = hostVeth("ctr-local");
  inHost(fmt::format("ip link add {} type bridge", bridge));
  inHost(fmt::format("ip link add {} type veth peer name local-peer", local));
  inHost(fmt::format("ip link add xyz0123456789ab type veth peer name eth9 netns {}",
                     otherPod.procPath()));

  ipam_.commands.clear();
  auto gc = conf();
  gc["cni.dev/valid-attachments"] =
      json::array({{{"containerID", "ctr-keep"}, {"ifname", "eth0"}}});
  const auto out = run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc);
  ASSERT_EQ(out.exitCode, 0) << out.out;

  EXPECT_FALSE(hostHasLink(hostVeth("ctr-stale")));
  EXPECT_TRUE(ipJson(*host_, "route show 10.77.0.6/32").empty());
  EXPECT_EQ(ipJson(stalePod, "link show").size(), 1U);  // the pod end went too: only lo
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-keep")));
  EXPECT_EQ(ipJson(*host_, "route show 10.77.0.5/32").size(), 1U);
  EXPECT_TRUE(hostHasLink(bridge));
  EXPECT_TRUE(hostHasLink(local));
  EXPECT_TRUE(hostHasLink("local-peer"));
  EXPECT_TRUE(hostHasLink("xyz0123456789ab"));
  EXPECT_EQ(ipam_.commands, std::vector<Command>{Command::kGc});

  // Again: nothing stale is left, so nothing changes.
  ASSERT_EQ(run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc).exitCode, 0);
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-keep")));
}

TEST_F(TransparentPluginTest, GcWithAnEmptyPrefixDeletesNothingButStillRunsIpamGc) {
  ASSERT_EQ(run(env("ADD", "ctr-stale"), conf()).exitCode, 0);
  ipam_.commands.clear();
  auto gc = conf();
  gc["hostVethPrefix"] = "";
  gc["cni.dev/valid-attachments"] = json::array();
  const auto out = run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc);
  EXPECT_EQ(out.exitCode, 0) << out.out;
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-stale")));
  EXPECT_EQ(ipam_.commands, std::vector<Command>{Command::kGc});
  // A prefix overlapping another plugin's: the same.
  gc["hostVethPrefix"] = "cali";
  EXPECT_EQ(run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, gc).exitCode, 0);
  EXPECT_TRUE(hostHasLink(hostVeth("ctr-stale")));
}

TEST_F(TransparentPluginTest, GcAndStatusGoToIpam) {
  EXPECT_EQ(run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}}, conf()).exitCode, 0);
  EXPECT_EQ(run({{"CNI_COMMAND", "STATUS"}}, conf()).exitCode, 0);
  EXPECT_EQ(ipam_.commands, (std::vector<Command>{Command::kGc, Command::kStatus}));
}

}  // namespace
}  // namespace vnetipam::cni
