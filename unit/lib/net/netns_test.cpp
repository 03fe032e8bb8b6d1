#include "lib/net/netns.h"

#include <future>

#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/stat.h>

#include "lib/net/link.h"
#include "lib/net/sysctl.h"
#include "unit/lib/net/test_netns.h"

namespace vnetipam::net {
namespace {

using testing::TestNetns;

unsigned long threadNetnsInode() {
  struct stat st {};
  EXPECT_EQ(::stat("/proc/thread-self/ns/net", &st), 0);
  return st.st_ino;
}

TEST(NetnsTest, OpenReportsMissingAndWrongFiles) {
  const auto missing = Netns::open("/var/run/netns/vnetipam-no-such-namespace");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("vnetipam-no-such-namespace"), std::string::npos);

  const auto notNetns = Netns::open("/proc/self/ns/uts");
  ASSERT_FALSE(notNetns.has_value());
  EXPECT_EQ(notNetns.error().code, ErrorCode::kInvalidArgument);

  EXPECT_EQ(Netns::openNamed("../etc").error().code, ErrorCode::kInvalidArgument);
}

TEST(NetnsTest, OpensProcPathOfAProcess) {
  const auto self = Netns::open(fmt::format("/proc/{}/ns/net", ::getpid()));
  ASSERT_TRUE(self.has_value()) << self.error().message;
  EXPECT_EQ(self->inode(), threadNetnsInode());
}

TEST(NetnsTest, OpensANamedNamespace) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  const std::string name = testing::uniqueNetnsName();
  // `ip netns add` is fine in test setup; the library never forks it.
  ASSERT_EQ(testing::runCommand("ip netns add " + name).status, 0);
  struct Remove {
    std::string name;
    ~Remove() { testing::runCommand("ip netns delete " + name); }
  } remove{name};

  const auto ns = Netns::openNamed(name);
  ASSERT_TRUE(ns.has_value()) << ns.error().message;
  EXPECT_EQ(ns->label(), "/var/run/netns/" + name);
  EXPECT_NE(ns->inode(), threadNetnsInode());
}

TEST(NetnsTest, GuardMovesOnlyThisThreadAndComesBack) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns target;
  const unsigned long original = threadNetnsInode();
  {
    // A thread started before the switch must stay where it is.
    std::promise<void> entered;
    std::future<unsigned long> other =
        std::async(std::launch::async, [&, f = entered.get_future()] {
          f.wait();
          return threadNetnsInode();
        });
    auto guard = NetnsGuard::enter(target.ns());
    ASSERT_TRUE(guard.has_value()) << guard.error().message;
    entered.set_value();
    EXPECT_EQ(threadNetnsInode(), target.ns().inode());
    EXPECT_EQ(other.get(), original);
  }
  EXPECT_EQ(threadNetnsInode(), original);
}

TEST(NetnsTest, RunInNetnsLeavesTheCallerWhereItWas) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns target;
  const unsigned long original = threadNetnsInode();
  unsigned long inside = 0;
  auto ok = runInNetns(target.ns(), [&]() -> Result<void> {
    inside = threadNetnsInode();
    return fail(ErrorCode::kConflict, "propagated");
  });
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().message, "propagated");
  EXPECT_EQ(inside, target.ns().inode());
  EXPECT_EQ(threadNetnsInode(), original);
}

TEST(NetnsTest, RtnlSocketActsInItsNamespace) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns target;
  auto sock = RtnlSocket::open(target.ns());
  ASSERT_TRUE(sock.has_value()) << sock.error().message;
  // Only lo exists in a fresh namespace: a veth made there must appear there and nowhere else.
  ASSERT_EQ(
      testing::runCommand(
          fmt::format("nsenter --net={} ip link add vnt-probe type veth peer name vnt-probe-p",
                      target.procPath()))
          .status,
      0);
  auto probe = getLink(*sock, "vnt-probe");
  EXPECT_TRUE(probe.has_value()) << probe.error().message;
  EXPECT_EQ(::if_nametoindex("vnt-probe"), 0u) << "the caller's own namespace has no such link";
}

TEST(SysctlTest, WritesAndReadsInsideTheNamespace) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns target;
  ASSERT_EQ(testing::runCommand(
                fmt::format("nsenter --net={} ip link add vnt-d0 type veth peer name vnt-d0-p",
                            target.procPath()))
                .status,
            0);
  const InterfaceSysctl proxyArp{.ifname = "vnt-d0", .key = "proxy_arp", .value = "1"};
  const InterfaceSysctl proxyDelay{
      .table = SysctlTable::kNeigh, .ifname = "vnt-d0", .key = "proxy_delay", .value = "0"};
  const InterfaceSysctl v6Forwarding{
      .family = ipam::Family::kV6, .ifname = "vnt-d0", .key = "forwarding", .value = "1"};
  const std::array settings{proxyArp, proxyDelay, v6Forwarding};
  auto ok = writeInterfaceSysctls(target.ns(), settings);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(*readInterfaceSysctl(target.ns(), proxyArp), "1");
  EXPECT_EQ(*readInterfaceSysctl(target.ns(), proxyDelay), "0");
  EXPECT_EQ(*readInterfaceSysctl(target.ns(), v6Forwarding), "1");
  // The interface exists only in the test namespace, so the caller's namespace cannot have it.
  EXPECT_NE(::access("/proc/sys/net/ipv4/conf/vnt-d0", F_OK), 0);
}

TEST(SysctlTest, NamesTheFileAndNamespaceOnFailure) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns target;
  const std::array settings{
      InterfaceSysctl{.ifname = "vnt-absent", .key = "proxy_arp", .value = "1"}};
  auto ok = writeInterfaceSysctls(target.ns(), settings);
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().code, ErrorCode::kNotFound);
  EXPECT_NE(ok.error().message.find("/proc/sys/net/ipv4/conf/vnt-absent/proxy_arp"),
            std::string::npos);
  EXPECT_NE(ok.error().message.find(target.ns().label()), std::string::npos);

  EXPECT_EQ(sysctlPath({.ifname = "vnt-d0", .key = "../../all/forwarding"}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(sysctlPath({.ifname = "..", .key = "forwarding"}).error().code,
            ErrorCode::kInvalidArgument);
}

// A namespace-wide setting, in a test namespace only: written when it differs, left alone when it
// does not.
TEST(SysctlTest, EnsureNetSysctlWritesOnlyWhatDiffers) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns target;
  auto wrote = ensureNetSysctl(target.ns(), "ipv4/ip_forward", "0");
  ASSERT_TRUE(wrote) << wrote.error().message;
  wrote = ensureNetSysctl(target.ns(), "ipv4/ip_forward", "1");
  ASSERT_TRUE(wrote) << wrote.error().message;
  EXPECT_TRUE(*wrote);
  wrote = ensureNetSysctl(target.ns(), "ipv4/ip_forward", "1");
  ASSERT_TRUE(wrote) << wrote.error().message;
  EXPECT_FALSE(*wrote) << "already 1: no write";
  EXPECT_EQ(*readInterfaceSysctl(target.ns(), {.ifname = "lo", .key = "forwarding"}), "1")
      << "ip_forward turns forwarding on for every interface";

  for (const char* key : {"", "/ipv4/ip_forward", "ipv4/../../kernel/x", "ipv4//ip_forward",
                          "ipv4/./ip_forward", "ipv4/"}) {
    auto bad = ensureNetSysctl(target.ns(), key, "1");
    ASSERT_FALSE(bad) << key;
    EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument) << key;
  }
  auto missing = ensureNetSysctl(target.ns(), "ipv4/no_such_setting", "1");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("/proc/sys/net/ipv4/no_such_setting"), std::string::npos);
  EXPECT_NE(missing.error().message.find(target.ns().label()), std::string::npos);
}

}  // namespace
}  // namespace vnetipam::net
