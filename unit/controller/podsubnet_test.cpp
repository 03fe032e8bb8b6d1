// The PodSubnet reconciler against the fake cloud: what a PodSubnet carved from an Azure subnet
// with more than one address prefix carves, and what its status says about the rest. And a
// dual-stack node's blocks (an IPv4 and an IPv6 PodSubnet, --cloud=none) counted per family.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

ipam::Prefix prefix(const char* text) { return *ipam::Prefix::parse(text); }

class PodSubnetTest : public ControllerFixture {
 protected:
  PodSubnetTest() : ControllerFixture(true) {}
  void SetUp() override {
    ControllerFixture::SetUp();
    cloud_.addNode(kVm, "nic-a");
  }
  json readyCondition(const std::string& name) {
    const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/" + name);
    EXPECT_TRUE(subnet);
    if (!subnet) return json::object();
    for (const json& c : (*subnet)["status"]["conditions"]) {
      if (c["type"] == "Ready") return c;
    }
    ADD_FAILURE() << "no Ready condition: " << subnet->dump();
    return json::object();
  }
};

// A dual-stack Azure subnet (an IPv4 and an IPv6 address prefix, as cloud.h sorts them): the IPv4
// prefix is carved and served as ever, the IPv6 one is not, and the Ready condition says so,
// naming it, instead of leaving the half silently unused.
TEST_F(PodSubnetTest, ADualStackAzureSubnetCarvesItsIPv4PrefixAndNamesTheIPv6One) {
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26"), prefix("fd00:1::/64")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();

  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.1.0.16/28");
  EXPECT_EQ(cloud_.nic("nic-a"), std::vector{prefix("10.1.0.16/28")});
  const json ready = readyCondition("pods");
  EXPECT_EQ(ready["status"], "True");
  EXPECT_EQ(ready["reason"], "Carved");
  const std::string message = ready["message"];
  EXPECT_TRUE(message.starts_with("10.1.0.0/26 carved into 2 usable /28 blocks")) << message;
  EXPECT_NE(message.find("the Azure subnet's IPv6 prefix fd00:1::/64 is not carved: Azure takes "
                         "only IPv4 (/28) prefixes on a NIC ipConfiguration"),
            std::string::npos)
      << message;
}

// An IPv4-only Azure subnet's condition is what it always was.
TEST_F(PodSubnetTest, ASingleStackAzureSubnetSaysNothingMore) {
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26")});
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();
  EXPECT_EQ(readyCondition("pods")["message"],
            "10.1.0.0/26 carved into 2 usable /28 blocks (2 excluded)");
}

// With --cloud=none an IPv4 and an IPv6 PodSubnet give a node a block of each; the node gauge
// counts them per family, so a dashboard shows the node short of one family, as the agent's free
// addresses do.
class DualStackNodeMetricsTest : public ControllerFixture {
 protected:
  void SetUp() override {
    ControllerFixture::SetUp();
    ControllerConfig config;
    config.statusInterval = std::chrono::milliseconds(0);
    controller_ = std::make_unique<Controller>(client_, nullptr, queue_, &events_, &metrics_,
                                               config, [this] { return wallNow_; });
    controller_->setWritable(true);
  }
  std::string gauges() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  ControllerMetrics metrics_{registry_};
};

TEST_F(DualStackNodeMetricsTest, TheNodeGaugeCountsBlocksPerFamily) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("v4", {{"cidr", "10.0.0.0/24"}, {"minFreeIPsPerNode", 20}}));
  addSubnet(subnetJson("v6", {{"cidr", "fd00:5::/112"}, {"blockPrefixLength", 120}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 3u);  // two /28s for 20 IPv4 addresses, one IPv6 /120
  const std::string text = gauges();
  EXPECT_NE(text.find("vnetipam_node_blocks{family=\"ipv4\",node=\"a\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vnetipam_node_blocks{family=\"ipv6\",node=\"a\"} 1"), std::string::npos)
      << text;
}

TEST_F(DualStackNodeMetricsTest, AnIPv4OnlyNodeHasNoIPv6Series) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("v4", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  const std::string text = gauges();
  EXPECT_NE(text.find("vnetipam_node_blocks{family=\"ipv4\",node=\"a\"} 1"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("family=\"ipv6\""), std::string::npos) << text;
}

}  // namespace
}  // namespace vnetipam::controller::testing
