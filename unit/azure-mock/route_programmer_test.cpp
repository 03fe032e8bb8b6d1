#include "azure-mock/route_programmer.h"

#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"
#include "unit/lib/ipam/literals.h"

namespace vnetipam::azuremock {
namespace {

using ipam::testing::A;
using ipam::testing::P;

TEST(IpRouteProgrammer, RefusesToRunWithoutANamespace) {
  // The root namespace is never a target: no name, or a name that is not a plain netns name.
  for (const std::string& name : std::vector<std::string>{
           "", ".", "..", "a/b", "../etc", "ns with space", "-n", std::string(65, 'a')}) {
    EXPECT_FALSE(IpRouteProgrammerImpl::create(name)) << name;
  }
  EXPECT_TRUE(IpRouteProgrammerImpl::create("vnet-fabric_1.test"));
}

TEST(IpRouteProgrammer, ReportsWhatFailed) {
  // A binary that does not exist: the error names the command; nothing is run.
  auto p = IpRouteProgrammerImpl::create("ns1", "/nonexistent/ip");
  ASSERT_TRUE(p);
  auto r = (*p)->replaceRoute(P("10.0.0.16/28"), A("10.0.0.4"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("ip -n ns1 route replace 10.0.0.16/28 via 10.0.0.4"), std::string::npos)
      << r.error();
}

TEST(IpRouteProgrammer, PassesArgumentsToIp) {
  // /bin/true stands in for ip(8): the call succeeds without touching any namespace.
  auto p = IpRouteProgrammerImpl::create("ns1", "true");
  ASSERT_TRUE(p);
  EXPECT_TRUE((*p)->replaceRoute(P("10.0.0.16/28"), A("10.0.0.4")));
  EXPECT_TRUE((*p)->deleteRoute(P("10.0.0.16/28")));
  auto failing = IpRouteProgrammerImpl::create("ns1", "false");
  EXPECT_FALSE((*failing)->replaceRoute(P("10.0.0.16/28"), A("10.0.0.4")));
}

TEST(IpRouteProgrammer, RoutesAnIPv6BlockViaAnIPv6NextHopOnly) {
  // The error of a binary that does not exist names the argv it would have run.
  auto p = IpRouteProgrammerImpl::create("ns1", "/nonexistent/ip");
  ASSERT_TRUE(p);
  auto r = (*p)->replaceRoute(P("fd00:10::/80"), A("fd00::4"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("ip -n ns1 route replace fd00:10::/80 via fd00::4: cannot start"),
            std::string::npos)
      << r.error();
  r = (*p)->deleteRoute(P("fd00:10::/80"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("ip -n ns1 route del fd00:10::/80: cannot start"), std::string::npos)
      << r.error();
  // Linux has no IPv6 route via an IPv4 gateway: refused before ip(8) is run (true would succeed).
  auto ok = IpRouteProgrammerImpl::create("ns1", "true");
  ASSERT_TRUE(ok);
  EXPECT_TRUE((*ok)->replaceRoute(P("fd00:10::/80"), A("fd00::4")));
  r = (*ok)->replaceRoute(P("fd00:10::/80"), A("10.0.0.4"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("the next hop is IPv4 but the block is IPv6"), std::string::npos)
      << r.error();
}

TEST(RouteSync, KeepsIPv4AndIPv6BlocksApart) {
  testing::FakeRouteProgrammer fake;
  RouteSync sync(fake);
  Routes desired{{P("10.0.0.16/28"), A("10.0.0.4")},
                 {P("fd00:10::/80"), A("fd00::4")},
                 {P("fd00:10:0:0:1::/80"), A("fd00::5")}};
  EXPECT_TRUE(sync.sync(desired).empty());
  EXPECT_EQ(fake.routes, desired);
  desired.erase(P("fd00:10::/80"));
  EXPECT_TRUE(sync.sync(desired).empty());
  EXPECT_EQ(fake.routes, desired);
  EXPECT_FALSE(fake.routes.contains(P("fd00:10::/80")));
  EXPECT_TRUE(fake.routes.contains(P("10.0.0.16/28")));
}

TEST(RouteSync, AddsChangesRemovesAndRetries) {
  testing::FakeRouteProgrammer fake;
  RouteSync sync(fake);
  Routes desired{{P("10.0.0.16/28"), A("10.0.0.4")}, {P("10.0.0.32/28"), A("10.0.0.5")}};
  fake.failNext = true;
  EXPECT_EQ(sync.sync(desired).size(), 1u);
  EXPECT_EQ(fake.routes.size(), 1u);
  EXPECT_TRUE(sync.sync(desired).empty()) << "the failed one is retried";
  EXPECT_EQ(fake.routes, desired);
  const auto calls = fake.calls.size();
  EXPECT_TRUE(sync.sync(desired).empty());
  EXPECT_EQ(fake.calls.size(), calls) << "nothing to do";
  desired[P("10.0.0.16/28")] = A("10.0.0.6");
  desired.erase(P("10.0.0.32/28"));
  EXPECT_TRUE(sync.sync(desired).empty());
  EXPECT_EQ(fake.routes, desired);
  EXPECT_EQ(sync.programmed(), desired);
}

}  // namespace
}  // namespace vnetipam::azuremock
