// A node is reported short of its PodSubnet's pool (Event PodSubnetExhausted, the PodSubnet's
// Exhausted condition) only against a carved pool.
#include <gtest/gtest.h>

#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

class ExhaustionTest : public ControllerFixture {
 protected:
  ExhaustionTest() : ControllerFixture(true) {}
};

TEST_F(ExhaustionTest, ANodeIsNeverShortOfAPoolThatIsNotCarvedYet) {
  cloud_.addNode(kVm, "nic-a");
  cloud_.setSubnet(kSubnetId, {*ipam::Prefix::parse("10.0.0.0/26")});
  addNode(nodeJson("a", kVm));
  const json subnet = subnetJson("pods", {{"azureSubnetID", kSubnetId}});
  addSubnet(subnet);
  runUntilQuiet();
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  // The node's block is full: it wants another one.
  api_.patchStatus(blockPathOf(mine[0]["metadata"]["name"]), {{"used", 16}});
  syncBlocks();

  // The PodSubnet goes and comes back while its old block is still there, and Azure does not
  // answer with the subnet's prefix yet: the pool is not carved when the node is decided.
  controller_->applySubnetEvent(kube::WatchEventType::kDeleted, subnet);
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  cloud_.setSubnet(kSubnetId, {});
  controller_->applySubnetEvent(kube::WatchEventType::kAdded, subnet);
  EXPECT_TRUE(controller_->reconcileSubnet("pods")) << "Azure gave no prefix: retried";
  ASSERT_FALSE(controller_->poolFree("pods")) << "not carved";
  events_.events.clear();
  EXPECT_FALSE(controller_->reconcileNode("a"));
  EXPECT_FALSE(events_.has("PodSubnetExhausted")) << "no pool, so no shortage of it";

  // Carved: the node gets its block, and nothing was short.
  cloud_.setSubnet(kSubnetId, {*ipam::Prefix::parse("10.0.0.0/26")});
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  EXPECT_FALSE(controller_->reconcileNode("a"));
  EXPECT_FALSE(controller_->reconcileNic("a"));  // the new block is created once on the NIC
  EXPECT_FALSE(events_.has("PodSubnetExhausted"));
  EXPECT_EQ(blocksOf("a").size(), 2u);
}

}  // namespace
}  // namespace vnetipam::controller::testing
