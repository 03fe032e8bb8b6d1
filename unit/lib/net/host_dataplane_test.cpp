#include "lib/net/host_dataplane.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "lib/net/link.h"
#include "lib/net/route.h"
#include "unit/lib/net/rtnl_fixture.h"
#include "unit/lib/net/test_netns.h"

namespace vnetipam::net {
namespace {

using testing::TestNetns;

TEST(HostDataplaneTest, ReadsLinksTheirStateAndMainTableHostRoutes) {
  VNETIPAM_SKIP_WITHOUT_NETNS();
  TestNetns host;
  TestNetns pod;
  auto sock = RtnlSocket::open(host.ns());
  ASSERT_TRUE(sock) << sock.error().message;
  ASSERT_TRUE(testing::addVeth(*sock, "vnetup", pod.ns(), "eth0"));
  ASSERT_TRUE(testing::addVeth(*sock, "vnetdown", pod.ns(), "eth1"));
  auto up = getLink(*sock, "vnetup");
  ASSERT_TRUE(up);
  ASSERT_TRUE(testing::setLinkUp(*sock, *up));
  const Route route{.dst = *ipam::Prefix::parse("10.0.0.5/32"), .scope = RouteScope::kLink};
  ASSERT_TRUE(testing::addRoute(*sock, *up, route));
  const Route route6{.dst = *ipam::Prefix::parse("fd00::5/128")};
  ASSERT_TRUE(testing::addRoute(*sock, *up, route6));

  auto read = readHostDataplane(host.ns());
  ASSERT_TRUE(read) << read.error().message;
  auto link = [&](std::string_view name) {
    return std::ranges::find_if(read->links, [&](const auto& l) { return l.name == name; });
  };
  ASSERT_NE(link("vnetup"), read->links.end());
  EXPECT_TRUE(link("vnetup")->up);
  EXPECT_EQ(link("vnetup")->ifindex, up->ifindex);
  ASSERT_NE(link("vnetdown"), read->links.end());
  EXPECT_FALSE(link("vnetdown")->up);
  ASSERT_NE(link("lo"), read->links.end());
  ASSERT_EQ(read->routes.size(), 2u) << "the main table holds only the host routes";
  EXPECT_EQ(read->routes[0].dst.toString(), "10.0.0.5/32");
  EXPECT_EQ(read->routes[0].oif, up->ifindex);
  EXPECT_EQ(read->routes[1].dst.toString(), "fd00::5/128");
  EXPECT_EQ(read->routes[1].oif, up->ifindex);
}

}  // namespace
}  // namespace vnetipam::net
