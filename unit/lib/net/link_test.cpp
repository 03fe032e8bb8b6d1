#include "lib/net/link.h"

#include <algorithm>

#include <gtest/gtest.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "lib/net/route.h"
#include "unit/lib/net/rtnl_fixture.h"
#include "unit/lib/net/test_netns.h"

namespace vnetipam::net {
namespace {

using testing::ipJson;
using testing::TestNetns;

ipam::IPAddress ip(std::string_view text) { return *ipam::IPAddress::parse(text); }
ipam::Prefix prefix(std::string_view text) { return *ipam::Prefix::parse(text); }

class LinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VNETIPAM_SKIP_WITHOUT_NETNS();
    host_.emplace();
    peer_.emplace();
    auto h = RtnlSocket::open(host_->ns());
    ASSERT_TRUE(h.has_value()) << h.error().message;
    hostSock_.emplace(std::move(*h));
    auto p = RtnlSocket::open(peer_->ns());
    ASSERT_TRUE(p.has_value()) << p.error().message;
    peerSock_.emplace(std::move(*p));
  }

  // Creates vnt-host <-> peerName (in peer) and returns both ends.
  std::pair<LinkInfo, LinkInfo> makeVeth(std::string_view hostName = "vnt-host",
                                         std::string_view peerName = "eth0") {
    auto ok = testing::addVeth(*hostSock_, hostName, peer_->ns(), peerName);
    EXPECT_TRUE(ok.has_value()) << ok.error().message;
    auto host = getLink(*hostSock_, hostName);
    auto peer = getLink(*peerSock_, peerName);
    EXPECT_TRUE(host.has_value() && peer.has_value());
    return {host.value_or(LinkInfo{}), peer.value_or(LinkInfo{})};
  }

  std::optional<TestNetns> host_;
  std::optional<TestNetns> peer_;
  std::optional<RtnlSocket> hostSock_;
  std::optional<RtnlSocket> peerSock_;
};

TEST_F(LinkTest, GetLinkReadsEachVethEndInItsOwnNamespace) {
  const auto mac = *MacAddress::parse("EE:EE:EE:EE:EE:01");
  auto ok = testing::addVeth(*hostSock_, "vnt-host", peer_->ns(), "eth0", 1410, mac);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;

  auto host = getLink(*hostSock_, "vnt-host");
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->name, "vnt-host");
  EXPECT_EQ(host->mac.toString(), "ee:ee:ee:ee:ee:01");
  EXPECT_EQ(host->mtu, 1410u);
  EXPECT_FALSE(host->up);
  const auto shown = ipJson(*host_, "link show vnt-host");
  ASSERT_EQ(shown.size(), 1u);
  EXPECT_EQ(shown[0]["ifindex"], host->ifindex);
  auto peer = getLink(*peerSock_, "eth0");
  ASSERT_TRUE(peer.has_value()) << peer.error().message;
  EXPECT_EQ(peer->mtu, 1410u);
  EXPECT_NE(peer->mac, host->mac);
  EXPECT_EQ(ipJson(*peer_, "link show eth0")[0]["address"], peer->mac.toString());

  ASSERT_TRUE(testing::setLinkUp(*hostSock_, *host).has_value());
  EXPECT_TRUE(getLink(*hostSock_, "vnt-host")->up);

  // Each end exists only in its own namespace; the error names the link and the namespace.
  auto missing = getLink(*hostSock_, "eth0");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("eth0"), std::string::npos) << missing.error().message;
  EXPECT_NE(missing.error().message.find(host_->ns().label()), std::string::npos);
  EXPECT_EQ(getLink(*peerSock_, "vnt-host").error().code, ErrorCode::kNotFound);
}

TEST_F(LinkTest, ADeletedVethIsNotFoundAtEitherEnd) {
  auto [host, peer] = makeVeth();
  ASSERT_TRUE(testing::deleteLink(*hostSock_, host).has_value());
  EXPECT_EQ(getLink(*hostSock_, "vnt-host").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(getLink(*peerSock_, "eth0").error().code, ErrorCode::kNotFound) << "peer goes too";
}

TEST_F(LinkTest, GetLinkRefusesBadNamesBeforeTheKernelSeesThem) {
  EXPECT_EQ(getLink(*hostSock_, "a-name-that-is-too-long").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(getLink(*hostSock_, "").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(getLink(*hostSock_, "vnt/host").error().code, ErrorCode::kInvalidArgument);
}

// One link's addresses, routes (every table) and neighbour entries, and nothing of the link beside
// it; checked field by field and, in number, against `ip`.
TEST_F(LinkTest, DumpsReadOneLinksAddressesRoutesAndNeighbours) {
  auto [host, eth0] = makeVeth();
  auto [host1, eth1] = makeVeth("vnt-host1", "eth1");
  const auto gatewayMac = *MacAddress::parse("ee:ee:ee:ee:ee:02");
  const auto otherMac = *MacAddress::parse("ee:ee:ee:ee:ee:03");
  for (const auto* link : {&eth0, &eth1}) {
    ASSERT_TRUE(testing::setLinkUp(*peerSock_, *link).has_value());
  }
  auto& sock = *peerSock_;
  ASSERT_TRUE(testing::addAddress(sock, eth0, ip("10.99.0.5"), 32).has_value());
  ASSERT_TRUE(testing::addAddress(sock, eth0, ip("10.98.0.1"), 24).has_value());
  ASSERT_TRUE(testing::addAddress(sock, eth1, ip("10.97.0.1"), 32).has_value());
  const Route link{.dst = prefix("169.254.1.1/32"), .scope = RouteScope::kLink};
  ASSERT_TRUE(testing::addRoute(sock, eth0, link).has_value());
  const Route viaGateway{.dst = prefix("0.0.0.0/0"), .gateway = ip("169.254.1.1")};
  auto added = testing::addRoute(sock, eth0, viaGateway);
  ASSERT_TRUE(added.has_value()) << added.error().message;
  const Route table100{.dst = prefix("10.200.0.0/16"), .scope = RouteScope::kLink, .table = 100};
  ASSERT_TRUE(testing::addRoute(sock, eth0, table100).has_value());
  ASSERT_TRUE(
      testing::addRoute(sock, eth1, {.dst = prefix("10.201.0.0/16"), .scope = RouteScope::kLink})
          .has_value());
  ASSERT_TRUE(testing::addNeighbour(sock, eth0, ip("169.254.1.1"), gatewayMac).has_value());
  ASSERT_TRUE(testing::addNeighbour(sock, eth0, ip("10.98.0.7"), otherMac, NUD_STALE).has_value());
  ASSERT_TRUE(testing::addNeighbour(sock, eth1, ip("169.254.1.1"), otherMac).has_value());

  auto addresses = dumpAddresses(sock, eth0.ifindex);
  ASSERT_TRUE(addresses.has_value()) << addresses.error().message;
  const auto hasAddress = [](const std::vector<DumpedAddress>& in, int ifindex,
                             std::string_view address, int length) {
    return std::ranges::any_of(in, [&](const DumpedAddress& a) {
      return a.ifindex == ifindex && a.address == ip(address) && a.prefixLength == length;
    });
  };
  EXPECT_EQ(addresses->size(), 2u);
  EXPECT_TRUE(hasAddress(*addresses, eth0.ifindex, "10.99.0.5", 32));
  EXPECT_TRUE(hasAddress(*addresses, eth0.ifindex, "10.98.0.1", 24));
  auto all = dumpAddresses(sock);
  ASSERT_TRUE(all.has_value()) << all.error().message;
  EXPECT_TRUE(hasAddress(*all, eth1.ifindex, "10.97.0.1", 32)) << "every link's with ifindex 0";
  EXPECT_EQ(all->size(), 3u);

  auto routes = dumpRoutes(sock, eth0.ifindex);
  ASSERT_TRUE(routes.has_value()) << routes.error().message;
  EXPECT_EQ(routes->size(), ipJson(*peer_, "-4 route show table all dev eth0").size());
  const auto find = [&](std::string_view dst, std::uint32_t table) {
    return std::ranges::find_if(
        *routes, [&](const DumpedRoute& r) { return r.dst == prefix(dst) && r.table == table; });
  };
  const auto linkRoute = find("169.254.1.1/32", kMainTable);
  ASSERT_NE(linkRoute, routes->end());
  EXPECT_EQ(linkRoute->scope, RT_SCOPE_LINK);
  EXPECT_EQ(linkRoute->protocol, kRouteProtocol);
  EXPECT_EQ(linkRoute->type, RTN_UNICAST);
  EXPECT_FALSE(linkRoute->gateway.has_value());
  const auto defaultRoute = find("0.0.0.0/0", kMainTable);
  ASSERT_NE(defaultRoute, routes->end());
  EXPECT_EQ(defaultRoute->gateway, ip("169.254.1.1"));
  EXPECT_EQ(defaultRoute->scope, RT_SCOPE_UNIVERSE);
  ASSERT_NE(find("10.200.0.0/16", 100), routes->end());
  const auto subnet = find("10.98.0.0/24", kMainTable);
  ASSERT_NE(subnet, routes->end()) << "the kernel's route of the /24";
  EXPECT_EQ(subnet->protocol, RTPROT_KERNEL);
  EXPECT_NE(find("10.99.0.5/32", RT_TABLE_LOCAL), routes->end()) << "local routes too";
  EXPECT_EQ(find("10.201.0.0/16", kMainTable), routes->end()) << "eth1's";
  for (const auto& r : *routes)
    EXPECT_EQ(r.oif, eth0.ifindex);

  auto neighbours = dumpNeighbours(sock, eth0.ifindex);
  ASSERT_TRUE(neighbours.has_value()) << neighbours.error().message;
  EXPECT_EQ(neighbours->size(), ipJson(*peer_, "-4 neigh show dev eth0").size());
  ASSERT_EQ(neighbours->size(), 2u);
  const auto gateway = std::ranges::find_if(
      *neighbours, [&](const DumpedNeighbour& n) { return n.dst == ip("169.254.1.1"); });
  ASSERT_NE(gateway, neighbours->end());
  EXPECT_EQ(gateway->lladdr, gatewayMac);
  EXPECT_EQ(gateway->state, NUD_PERMANENT);
  const auto other = std::ranges::find_if(
      *neighbours, [&](const DumpedNeighbour& n) { return n.dst == ip("10.98.0.7"); });
  ASSERT_NE(other, neighbours->end());
  EXPECT_EQ(other->lladdr, otherMac);
  EXPECT_EQ(other->state & NUD_PERMANENT, 0);
}

// The same reads for IPv6, the transparent recipe's IPv6 layout: a /128 nodad, a default route via
// the link-local fe80::1, a permanent neighbour for it, and a /128 host route. An IPv4 read sees
// none of it.
TEST_F(LinkTest, IPv6DumpsReadAddressesRoutesAndNeighbours) {
  auto [host, eth0] = makeVeth();
  ASSERT_TRUE(testing::setLinkUp(*peerSock_, eth0).has_value());
  auto& sock = *peerSock_;
  const auto gatewayMac = *MacAddress::parse("ee:ee:ee:ee:ee:06");
  ASSERT_TRUE(testing::addAddress(sock, eth0, ip("fd00:10::5"), 128, IFA_F_NODAD).has_value());
  auto viaGateway =
      testing::addRoute(sock, eth0, {.dst = prefix("::/0"), .gateway = ip("fe80::1")});
  ASSERT_TRUE(viaGateway.has_value()) << viaGateway.error().message;
  ASSERT_TRUE(testing::addRoute(sock, eth0, {.dst = prefix("fd00:20::7/128")}).has_value());
  ASSERT_TRUE(testing::addNeighbour(sock, eth0, ip("fe80::1"), gatewayMac).has_value());

  auto addresses = dumpAddresses(sock, eth0.ifindex, InterruptedDump::kFail, ipam::Family::kV6);
  ASSERT_TRUE(addresses.has_value()) << addresses.error().message;
  const auto address = std::ranges::find_if(
      *addresses, [&](const DumpedAddress& a) { return a.address == ip("fd00:10::5"); });
  ASSERT_NE(address, addresses->end());
  EXPECT_EQ(address->prefixLength, 128);
  EXPECT_NE(address->flags & IFA_F_NODAD, 0u);
  EXPECT_EQ(address->flags & IFA_F_TENTATIVE, 0u) << "usable at once";
  auto v4 = dumpAddresses(sock, eth0.ifindex);
  ASSERT_TRUE(v4.has_value());
  EXPECT_TRUE(v4->empty());

  auto routes = dumpRoutes(sock, eth0.ifindex, InterruptedDump::kFail, ipam::Family::kV6);
  ASSERT_TRUE(routes.has_value()) << routes.error().message;
  const auto find = [&](std::string_view dst) {
    return std::ranges::find_if(*routes, [&](const DumpedRoute& r) {
      return r.dst == prefix(dst) && r.table == kMainTable;
    });
  };
  const auto defaultRoute = find("::/0");
  ASSERT_NE(defaultRoute, routes->end());
  EXPECT_EQ(defaultRoute->gateway, ip("fe80::1"));
  EXPECT_EQ(defaultRoute->protocol, kRouteProtocol);
  EXPECT_EQ(defaultRoute->oif, eth0.ifindex);
  const auto hostRoute = find("fd00:20::7/128");
  ASSERT_NE(hostRoute, routes->end());
  EXPECT_FALSE(hostRoute->gateway.has_value());
  EXPECT_EQ(hostRoute->type, RTN_UNICAST);
  auto routes4 = dumpRoutes(sock, eth0.ifindex);
  ASSERT_TRUE(routes4.has_value());
  EXPECT_TRUE(routes4->empty());

  auto neighbours = dumpNeighbours(sock, eth0.ifindex, InterruptedDump::kFail, ipam::Family::kV6);
  ASSERT_TRUE(neighbours.has_value()) << neighbours.error().message;
  const auto gateway = std::ranges::find_if(
      *neighbours, [&](const DumpedNeighbour& n) { return n.dst == ip("fe80::1"); });
  ASSERT_NE(gateway, neighbours->end());
  EXPECT_EQ(gateway->lladdr, gatewayMac);
  EXPECT_EQ(gateway->state, NUD_PERMANENT);
}

}  // namespace
}  // namespace vnetipam::net
