#include "lib/net/link.h"

#include <gtest/gtest.h>

#include "lib/net/route.h"
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
    auto h = RouteSocket::open(host_->ns());
    ASSERT_TRUE(h.has_value()) << h.error().message;
    hostSock_.emplace(std::move(*h));
    auto p = RouteSocket::open(peer_->ns());
    ASSERT_TRUE(p.has_value()) << p.error().message;
    peerSock_.emplace(std::move(*p));
  }

  // Creates vnt-host <-> eth0 (in peer) and returns both ends.
  std::pair<LinkInfo, LinkInfo> makeVeth(std::uint32_t mtu = 0) {
    const VethSpec spec{.hostName = "vnt-host", .peerName = "eth0", .mtu = mtu};
    auto ok = createVethPair(*hostSock_, spec, peer_->ns());
    EXPECT_TRUE(ok.has_value()) << ok.error().message;
    auto host = getLink(*hostSock_, "vnt-host");
    auto peer = getLink(*peerSock_, "eth0");
    EXPECT_TRUE(host.has_value() && peer.has_value());
    return {host.value_or(LinkInfo{}), peer.value_or(LinkInfo{})};
  }

  std::optional<TestNetns> host_;
  std::optional<TestNetns> peer_;
  std::optional<RouteSocket> hostSock_;
  std::optional<RouteSocket> peerSock_;
};

TEST_F(LinkTest, VethPeerIsBornInTheOtherNamespace) {
  const auto mac = *MacAddress::parse("EE:EE:EE:EE:EE:01");
  const VethSpec spec{.hostName = "vnt-host", .peerName = "eth0", .mtu = 1410, .hostMac = mac};
  auto ok = createVethPair(*hostSock_, spec, peer_->ns());
  ASSERT_TRUE(ok.has_value()) << ok.error().message;

  auto host = getLink(*hostSock_, "vnt-host");
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->mac.toString(), "ee:ee:ee:ee:ee:01");
  EXPECT_EQ(host->mtu, 1410u);
  EXPECT_FALSE(host->up);
  auto peer = getLink(*peerSock_, "eth0");
  ASSERT_TRUE(peer.has_value()) << peer.error().message;
  EXPECT_EQ(peer->mtu, 1410u);
  EXPECT_NE(peer->mac, host->mac);

  // Each end exists only in its own namespace.
  EXPECT_EQ(getLink(*hostSock_, "eth0").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(getLink(*peerSock_, "vnt-host").error().code, ErrorCode::kNotFound);
}

TEST_F(LinkTest, CreatingAnExistingNameIsAConflictNamingIt) {
  makeVeth();
  const VethSpec again{.hostName = "vnt-host", .peerName = "eth1"};
  auto ok = createVethPair(*hostSock_, again, peer_->ns());
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().code, ErrorCode::kConflict);
  EXPECT_NE(ok.error().message.find("vnt-host"), std::string::npos) << ok.error().message;
  EXPECT_NE(ok.error().message.find(host_->ns().label()), std::string::npos);
  // The kernel creates both ends or neither.
  EXPECT_EQ(getLink(*peerSock_, "eth1").error().code, ErrorCode::kNotFound);
}

TEST_F(LinkTest, SetUpAndDeleteAreIdempotent) {
  auto [host, peer] = makeVeth();
  ASSERT_TRUE(setLinkUp(*hostSock_, host).has_value());
  ASSERT_TRUE(setLinkUp(*hostSock_, host).has_value());
  EXPECT_TRUE(getLink(*hostSock_, "vnt-host")->up);

  ASSERT_TRUE(deleteLink(*hostSock_, "vnt-host").has_value());
  EXPECT_EQ(getLink(*hostSock_, "vnt-host").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(getLink(*peerSock_, "eth0").error().code, ErrorCode::kNotFound) << "peer goes too";
  auto again = deleteLink(*hostSock_, "vnt-host");
  EXPECT_TRUE(again.has_value()) << again.error().message;
}

TEST_F(LinkTest, RefusesBadNamesBeforeTheKernelSeesThem) {
  EXPECT_EQ(getLink(*hostSock_, "a-name-that-is-too-long").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(deleteLink(*hostSock_, "").error().code, ErrorCode::kInvalidArgument);
  const VethSpec spec{.hostName = "vnt/host", .peerName = "eth0"};
  EXPECT_EQ(createVethPair(*hostSock_, spec, peer_->ns()).error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(LinkTest, AddressesRoutesAndNeighbours) {
  auto [host, peer] = makeVeth();
  ASSERT_TRUE(setLinkUp(*peerSock_, peer).has_value());

  ASSERT_TRUE(addHostAddress(*peerSock_, peer, ip("10.99.0.5")).has_value());
  auto dup = addHostAddress(*peerSock_, peer, ip("10.99.0.5"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  EXPECT_NE(dup.error().message.find("10.99.0.5/32"), std::string::npos) << dup.error().message;
  ASSERT_TRUE(addHostAddress(*peerSock_, peer, ip("fd00::5")).has_value());

  const Route link{.dst = prefix("169.254.1.1/32"), .scope = RouteScope::kLink};
  ASSERT_TRUE(addRoute(*peerSock_, peer, link).has_value());
  EXPECT_EQ(addRoute(*peerSock_, peer, link).error().code, ErrorCode::kConflict);
  EXPECT_TRUE(addRoute(*peerSock_, peer, link, RouteWrite::kReplace).has_value());
  const Route onlink{
      .dst = prefix("10.200.0.0/16"), .gateway = ip("10.99.0.1"), .onlink = true, .table = 100};
  auto added = addRoute(*peerSock_, peer, onlink);
  ASSERT_TRUE(added.has_value()) << added.error().message;
  ASSERT_TRUE(addPermanentNeighbour(*peerSock_, peer, ip("169.254.1.1"), host.mac).has_value());
  ASSERT_TRUE(addPermanentNeighbour(*peerSock_, peer, ip("169.254.1.1"), host.mac).has_value());

  const auto routes = ipJson(*peer_, "route show table all proto 118");
  ASSERT_EQ(routes.size(), 2u) << routes.dump();
  const auto table100 = ipJson(*peer_, "route show table 100");
  ASSERT_EQ(table100.size(), 1u) << table100.dump();
  EXPECT_EQ(table100[0]["dst"], "10.200.0.0/16");
  EXPECT_EQ(table100[0]["gateway"], "10.99.0.1");
  EXPECT_NE(table100[0]["flags"].dump().find("onlink"), std::string::npos) << table100.dump();
  const auto neigh = ipJson(*peer_, "neigh show dev eth0");
  ASSERT_EQ(neigh.size(), 1u) << neigh.dump();
  EXPECT_EQ(neigh[0]["dst"], "169.254.1.1");
  EXPECT_EQ(neigh[0]["lladdr"], host.mac.toString());
  EXPECT_EQ(neigh[0]["state"][0], "PERMANENT");

  // Delete only touches our protocol; deleting twice is fine.
  Route foreign = link;
  foreign.protocol = 4;  // RTPROT_STATIC
  ASSERT_TRUE(deleteRoute(*peerSock_, peer, foreign).has_value());
  EXPECT_EQ(ipJson(*peer_, "route show 169.254.1.1/32").size(), 1u);
  ASSERT_TRUE(deleteRoute(*peerSock_, peer, link).has_value());
  ASSERT_TRUE(deleteRoute(*peerSock_, peer, link).has_value());
  ASSERT_TRUE(deleteRoute(*peerSock_, peer, onlink).has_value());
  EXPECT_TRUE(ipJson(*peer_, "route show table all proto 118").empty());
}

}  // namespace
}  // namespace vnetipam::net
