// The IPBlock <-> NIC reconciler against the fake cloud: batching, phases from GETs only,
// releases before finalizers, orphan prefixes after the grace period, Azure subnets.
#include <gtest/gtest.h>

#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

ipam::Prefix prefix(const char* text) { return *ipam::Prefix::parse(text); }

class NicWiringTest : public ControllerFixture {
 protected:
  NicWiringTest() : ControllerFixture(true) {}
  void SetUp() override {
    ControllerFixture::SetUp();
    cloud_.addNode(kVm, "nic-a");
  }
};

// NIC first: the carved prefixes go on the NIC in one PUT (after one GET), confirmed by its
// operation, and each block is then created in one POST, already Ready (vnetipam.io/on-nic): no
// status write, no read-back, no second GET.
TEST_F(NicWiringTest, NewBlocksOfANodeGoOnItsNicInOnePutBeforeTheirCreateAndAreReadyFromIt) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}, {"minFreeIPsPerNode", 40}}));
  runUntilQuiet();

  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 3u);
  EXPECT_EQ(cloud_.puts, 1) << "three blocks, one PUT";
  ASSERT_EQ(cloud_.putBodies.size(), 1u);
  EXPECT_EQ(cloud_.putBodies[0].size(), 3u);
  EXPECT_EQ(cloud_.nic("nic-a"),
            (std::vector{prefix("10.0.0.0/28"), prefix("10.0.0.16/28"), prefix("10.0.0.32/28")}));
  for (const json& b : mine) {
    EXPECT_EQ(phaseOf(b), "Ready") << b.dump();
    EXPECT_EQ(b["metadata"]["annotations"]["vnetipam.io/on-nic"], "nic-a");
    EXPECT_FALSE(b.contains("status")) << b.dump();
    // With a cloud nic-release keeps each block until its prefix is off the NIC; agent-drain
    // (always) until its agent has given it up.
    EXPECT_EQ(b["metadata"]["finalizers"],
              json::array({"vnetipam.io/agent-drain", "vnetipam.io/nic-release"}));
  }
  EXPECT_EQ(cloud_.reads, 1);
  int writes = 0;
  for (const auto& r : api_.requests()) {
    if (r.method != "GET" && r.target.starts_with(std::string(kIPBlocksPath))) ++writes;
  }
  EXPECT_EQ(writes, 3) << "one POST per block, nothing else";
}

// A Pending block (created before NIC-first, or whose prefix vanished) is programmed by the NIC
// pass, and its phase moves on what the PUT's operation confirmed: one GET, one PUT, no re-read.
TEST_F(NicWiringTest, APendingBlockMovesOnlyOnWhatTheCloudConfirmed) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}, {"minFreeIPsPerNode", 0}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  api_.put(blockPathOf("pods-10-0-0-0-28"),
           blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28"));
  syncBlocks();
  ASSERT_FALSE(controller_->reconcileNic("a"));
  // GET (absent) + PUT -> Ready: one reconcile, one read, one status write.
  EXPECT_EQ(cloud_.puts, 1);
  EXPECT_EQ(cloud_.reads, 1);
  std::vector<std::string> phases;
  for (const auto& r : api_.requests()) {
    if (r.method != "PATCH" || !r.target.starts_with(blockPathOf("pods-10-0-0-0-28"))) continue;
    phases.push_back(json::parse(r.body)["status"].value("phase", ""));
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"Ready"}));
  EXPECT_EQ(phaseOf(blocksOf("a")[0]), "Ready");
}

TEST_F(NicWiringTest, APutOfUnknownOutcomeMovesNoPhase) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}, {"minFreeIPsPerNode", 0}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  api_.put(blockPathOf("pods-10-0-0-0-28"),
           blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28"));
  syncBlocks();
  cloud_.failNextPut();
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_EQ(blocksOf("a")[0].value("status", json::object()).value("phase", "Pending"), "Pending");
}

TEST_F(NicWiringTest, AReleasedBlockLeavesTheNicBeforeItsFinalizerGoes) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  ASSERT_EQ(cloud_.nic("nic-a").size(), 1u);

  controller_->applyNodeEvent(kube::WatchEventType::kDeleted, nodeJson("a", kVm));
  ASSERT_FALSE(controller_->reconcileNode("a"));  // DELETE: the finalizers hold the object
  syncBlocks();
  // agent-drain is still on it: the agent may still serve pods from it, the prefix stays.
  ASSERT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.nic("nic-a").size(), 1u);
  EXPECT_EQ(cloud_.puts, 1) << "only the first programming";
  // The Node is gone from the API server too: no agent is left, the controller drops agent-drain.
  ASSERT_FALSE(controller_->reconcileNode("a"));
  syncBlocks();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["metadata"]["finalizers"], json::array({"vnetipam.io/nic-release"}));
  cloud_.failNextPut();
  EXPECT_TRUE(controller_->reconcileNic("a")) << "the PUT's outcome is unknown";
  ASSERT_EQ(blocksOf("a").size(), 1u) << "the finalizer stays until a GET shows the prefix gone";

  runUntilQuiet();
  EXPECT_TRUE(cloud_.nic("nic-a").empty());
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 16u);
}

// A join whose PUT landed but whose create never happened (a crash, a new leader) left the prefix
// on the node's NIC: the next join's GET shows it, and when the pool carves that CIDR for the same
// node it is adopted as it is, with no PUT.
TEST_F(NicWiringTest, APrefixLeftOnTheNodesNicByAJoinThatDidNotCreateIsAdoptedWithoutAPut) {
  cloud_.setNic("nic-a", {prefix("10.0.0.0/28")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["spec"]["cidr"], "10.0.0.0/28");
  EXPECT_EQ(phaseOf(mine[0]), "Ready");
  EXPECT_EQ(cloud_.puts, 0);
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.0/28")}));
}

// Another NIC holds the carved CIDR (an earlier leader's join for another node that never made
// its block): Azure refuses the overlap, the CIDR stays out of the pool, and the node gets the
// next one at once, never the one another NIC carries.
TEST_F(NicWiringTest, ACidrAnotherNicHoldsIsRefusedByAzureAndTheNodeGetsAnother) {
  const std::string vmB =
      "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-b";
  cloud_.addNode(vmB, "nic-b");
  cloud_.setNic("nic-b", {prefix("10.0.0.0/28")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  EXPECT_EQ(cloud_.inUseRefusals, 1);
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["spec"]["cidr"], "10.0.0.16/28");
  EXPECT_EQ(phaseOf(mine[0]), "Ready");
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.16/28")}));
  EXPECT_EQ(controller_->poolFree("pods"), 14u) << "10.0.0.0/28 is leaked, not handed out";
}

// A PUT whose answer is lost (it landed): no block, the CIDR is leaked rather than reused, and
// the prefix no block owns leaves the NIC after the grace; the node's block is another CIDR.
TEST_F(NicWiringTest, APutOfUnknownOutcomeLeaksTheCidrAndTheNicPassSweepsItsPrefix) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  cloud_.failNextPut(/*applied=*/true);
  EXPECT_TRUE(controller_->reconcileNode("a"));
  syncBlocks();
  EXPECT_TRUE(blocksOf("a").empty()) << "no block for a prefix Azure did not confirm";
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.0/28")}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.0.0.16/28") << "the leaked CIDR is not reused";
  wallNow_ += std::chrono::seconds(121);
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.16/28")}));
}

// The create refused after the PUT: the prefix is on the NIC with no block. The CIDR is leaked
// (not handed to another node while the NIC still carries it) and the NIC pass takes the prefix
// off after the grace.
TEST_F(NicWiringTest, ACreateRefusedAfterThePutLeavesNoPrefixBehind) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  api_.answerNext("POST", 422);
  EXPECT_TRUE(controller_->reconcileNode("a"));
  syncBlocks();
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 15u) << "leaked, not back in the pool";
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.0.0.16/28");
  wallNow_ += std::chrono::seconds(121);
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.16/28")}));
}

TEST_F(NicWiringTest, AnUnownedPrefixInAPodSubnetGoesAfterTheGraceAndOthersStay) {
  cloud_.setNic("nic-a", {prefix("10.0.0.240/28"), prefix("192.168.0.0/28")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.0/28"), prefix("10.0.0.240/28"),
                                              prefix("192.168.0.0/28")}));
  EXPECT_TRUE(events_.has("UnownedPrefixFound"));

  wallNow_ += std::chrono::seconds(121);
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.0/28"), prefix("192.168.0.0/28")}))
      << "the orphan went; the prefix outside every PodSubnet is not ours";
  EXPECT_TRUE(events_.has("UnownedPrefixRemoved"));
}

TEST_F(NicWiringTest, AVanishedPrefixIsProgrammedAgain) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  cloud_.setNic("nic-a", {});
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_TRUE(events_.has("PrefixVanished"));
  runUntilQuiet();
  EXPECT_EQ(cloud_.nic("nic-a"), std::vector{prefix("10.0.0.0/28")});
  EXPECT_EQ(phaseOf(blocksOf("a")[0]), "Ready");
}

TEST_F(NicWiringTest, TheAzureSubnetIsCarvedFromWhatAzureSays) {
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();
  // Azure reserves the first four and the last address: the first and last /28 are excluded.
  EXPECT_EQ(controller_->poolFree("pods"), 1u);
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.1.0.16/28");
}

TEST_F(NicWiringTest, ABlockLengthOfTheWrongFamilyForTheAzureSubnetIsRefused) {
  cloud_.setSubnet(kSubnetId, {prefix("fd00:1::/64")});
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}, {"blockPrefixLength", 28}}));
  runUntilQuiet();
  EXPECT_FALSE(controller_->poolFree("pods"));
  const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  ASSERT_TRUE(subnet);
  const std::string message = (*subnet)["status"]["conditions"][0]["message"];
  EXPECT_NE(message.find("spec.blockPrefixLength"), std::string::npos) << message;
  EXPECT_NE(message.find("fd00:1::/64"), std::string::npos) << message;
}

// Azure takes only IPv4 (/28) prefixes on a NIC ipConfiguration: an IPv6 PodSubnet, from an Azure
// subnet or spec.cidr, is not carved and says why; its node gets no block and its NIC no PUT,
// while an IPv4 PodSubnet next to it is served as ever.
TEST_F(NicWiringTest, AnIPv6PodSubnetIsNotCarvedWithACloudAndItsNicIsLeftAlone) {
  cloud_.setSubnet(kSubnetId, {prefix("fd00:1::/64")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("azure6", {{"azureSubnetID", kSubnetId}, {"blockPrefixLength", 80}}));
  addSubnet(subnetJson("pods6", {{"cidr", "fd00:2::/64"}, {"blockPrefixLength", 80}}));
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(cloud_.puts, 0);
  for (const char* name : {"azure6", "pods6"}) {
    EXPECT_FALSE(controller_->poolFree(name)) << name;
    const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/" + name);
    ASSERT_TRUE(subnet);
    const json& ready = (*subnet)["status"]["conditions"][0];
    EXPECT_EQ(ready["type"], "Ready");
    EXPECT_EQ(ready["status"], "False");
    EXPECT_EQ(ready["reason"], "NotCarved");
    const std::string message = ready["message"];
    EXPECT_NE(message.find("is IPv6: Azure takes only IPv4 (/28) prefixes"), std::string::npos)
        << message;
  }

  addSubnet(subnetJson("pods4", {{"cidr", "10.0.0.0/26"}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.0.0.0/28");
  EXPECT_EQ(cloud_.nic("nic-a"), std::vector{prefix("10.0.0.0/28")});
}

}  // namespace
}  // namespace vnetipam::controller::testing

namespace vnetipam::controller::testing {
namespace {

TEST_F(NicWiringTest, ARestartedControllerRemovesTheDeletedNodesPrefixFromTheNicItWasOn) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  ASSERT_EQ(cloud_.nic("nic-a").size(), 1u);

  // The node is deleted while no controller runs; a new one starts knowing nothing of NICs.
  controller_ = std::make_unique<Controller>(client_, &cloud_, queue_, &events_, nullptr,
                                             ControllerConfig{.statusInterval = {}},
                                             [this] { return wallNow_; });
  controller_->setWritable(true);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_TRUE(cloud_.nic("nic-a").empty()) << "the prefix left the NIC before the block went";
}

}  // namespace
}  // namespace vnetipam::controller::testing

namespace vnetipam::controller::testing {
namespace {

TEST_F(NicWiringTest, APrefixPutJustBeforeACrashIsFoundThroughTheBlocksProviderID) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  ASSERT_EQ(blocksOf("a")[0]["metadata"]["annotations"]["vnetipam.io/provider-id"], kVm);
  // The PUT went through, then the controller died before writing any status.
  cloud_.setNic("nic-a", {prefix("10.0.0.0/28")});

  controller_ = std::make_unique<Controller>(client_, &cloud_, queue_, &events_, nullptr,
                                             ControllerConfig{.statusInterval = {}},
                                             [this] { return wallNow_; });
  controller_->setWritable(true);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();  // node "a" is gone for this controller
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_TRUE(cloud_.nic("nic-a").empty());
}

}  // namespace
}  // namespace vnetipam::controller::testing
