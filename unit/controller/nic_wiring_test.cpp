// The IPBlock <-> NIC reconciler against the fake cloud: batching, phases from GETs only,
// releases before finalizers, orphan prefixes after the grace period, Azure subnets.
#include <gtest/gtest.h>

#include "api/codec.h"
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

// How every reader sees a block: through the codec (a new block has no status.phase).
api::IPBlock decoded(const json& block) { return *api::ipBlockFromJson(block); }

// Requests `method` to a path under `prefix` that `api` answered after the first `from`.
int writesTo(const FakeApiServer& api, std::size_t from, std::string_view method,
             const std::string& prefix) {
  const auto requests = api.requests();
  int n = 0;
  for (std::size_t i = from; i < requests.size(); ++i) {
    if (requests[i].method == method && requests[i].target.starts_with(prefix)) ++n;
  }
  return n;
}

TEST_F(NicWiringTest, NewBlocksOfANodeGoOnItsNicInOnePutAndAreCreatedReady) {
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
    EXPECT_EQ(b["metadata"]["annotations"]["vnetipam.io/programmed-on"], "nic-a") << b.dump();
    EXPECT_FALSE(b.contains("status") && b["status"].contains("phase")) << "created, not written";
    const api::IPBlock block = decoded(b);
    EXPECT_EQ(block.status.phase, api::BlockPhase::kReady);
    EXPECT_EQ(block.status.capacity, 16);
    ASSERT_TRUE(block.status.nic);
    EXPECT_EQ(block.status.nic->id, "nic-a");
    // With a cloud nic-release keeps each block until its prefix is off the NIC; agent-drain
    // (always) until its agent has given it up.
    EXPECT_EQ(b["metadata"]["finalizers"],
              json::array({"vnetipam.io/agent-drain", "vnetipam.io/nic-release"}));
  }
}

TEST_F(NicWiringTest, ANodeJoinIsOneApiWriteAndNoReadOfTheNicAfterThePut) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  const std::size_t from = api_.requests().size();
  ASSERT_FALSE(controller_->reconcileNode("a"));
  EXPECT_TRUE(blocksOf("a").empty()) << "no IPBlock before its prefix is on the NIC";
  EXPECT_EQ(cloud_.puts, 0);
  ASSERT_FALSE(controller_->reconcileNic("a"));
  // GET (absent) + PUT, then the create: no GET after the PUT, no status write.
  EXPECT_EQ(cloud_.reads, 1);
  EXPECT_EQ(cloud_.puts, 1);
  EXPECT_EQ(writesTo(api_, from, "POST", std::string(kIPBlocksPath)), 1);
  EXPECT_EQ(writesTo(api_, from, "PATCH", std::string(kIPBlocksPath)), 0);
  EXPECT_EQ(writesTo(api_, from, "PUT", std::string(kIPBlocksPath)), 0);
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(decoded(blocksOf("a")[0]).status.phase, api::BlockPhase::kReady);
  EXPECT_EQ(cloud_.nic("nic-a"), std::vector{prefix("10.0.0.0/28")});
}

// The providerID of VM `name` in the tests' resource group (kVm is vm-a's).
std::string vmNamed(const std::string& name) {
  return "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
         "virtualMachines/" +
         name;
}

// Nodes that join together find their NICs in one list of their resource group (NicDirectory)
// rather than a VM GET each; each join then reads its NIC once and PUTs once, and the pass its
// create wakes reads nothing.
TEST_F(NicWiringTest, NodesJoiningTogetherShareOneListAndEachJoinIsOneNicReadAndOnePut) {
  cloud_.addNode(vmNamed("vm-b"), "nic-b");
  cloud_.addNode(vmNamed("vm-c"), "nic-c");
  cloud_.listPages = 2;
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  for (const char* node : {"a", "b", "c"})
    addNode(nodeJson(node, vmNamed(std::string("vm-") + node)));
  runUntilQuiet();
  EXPECT_EQ(cloud_.lists, 1);
  EXPECT_EQ(cloud_.vmReads, 0);
  EXPECT_EQ(cloud_.reads, 3);
  EXPECT_EQ(cloud_.puts, 3);
  for (const char* node : {"a", "b", "c"}) {
    ASSERT_EQ(blocksOf(node).size(), 1u) << node;
    EXPECT_EQ(decoded(blocksOf(node)[0]).status.phase, api::BlockPhase::kReady) << node;
    EXPECT_EQ(cloud_.nic(std::string("nic-") + node).size(), 1u) << node;
  }

  // The list took two pages: one node joining alone reads its VM (one GET, not two); two nodes
  // waiting at once are worth a list again.
  cloud_.addNode(vmNamed("vm-d"), "nic-d");
  addNode(nodeJson("d", vmNamed("vm-d")));
  runUntilQuiet();
  EXPECT_EQ(cloud_.lists, 1);
  EXPECT_EQ(cloud_.vmReads, 1);
  cloud_.addNode(vmNamed("vm-e"), "nic-e");
  cloud_.addNode(vmNamed("vm-f"), "nic-f");
  addNode(nodeJson("e", vmNamed("vm-e")));
  addNode(nodeJson("f", vmNamed("vm-f")));
  runUntilQuiet();
  EXPECT_EQ(cloud_.lists, 2);
  EXPECT_EQ(cloud_.vmReads, 1);
  EXPECT_EQ(cloud_.nic("nic-e").size(), 1u);
  EXPECT_EQ(cloud_.nic("nic-f").size(), 1u);
}

// A node that comes before its PodSubnet is carved has its NIC read once, when the carve gives it
// a block to program: not once before (nothing to do) and once after.
TEST_F(NicWiringTest, ANodeSeenBeforeItsPoolIsCarvedReadsItsNicOnlyForItsJoin) {
  addNode(nodeJson("a", kVm));
  runUntilQuiet();
  EXPECT_EQ(cloud_.reads, 0);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  EXPECT_EQ(cloud_.reads, 1);
  EXPECT_EQ(cloud_.puts, 1);
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(decoded(blocksOf("a")[0]).status.phase, api::BlockPhase::kReady);
}

// Nor does a replica that starts to lead (or resyncs: every key queued again) read the NIC of a
// node that has had no NIC pass and has no block: the carve's join brings its first pass. Once
// programmed, the resync reads it again (the drift check).
TEST_F(NicWiringTest, ALeaderStartReadsNoNicOfANodeWithNothingToProgramYet) {
  addNode(nodeJson("a", kVm));
  runUntilQuiet();
  controller_->enqueueAll();
  runUntilQuiet();
  EXPECT_EQ(cloud_.reads, 0);
  EXPECT_EQ(cloud_.lists + cloud_.vmReads, 0);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  controller_->enqueueAll();
  runUntilQuiet();
  EXPECT_EQ(cloud_.reads, 1);
  EXPECT_EQ(cloud_.puts, 1);
  ASSERT_EQ(blocksOf("a").size(), 1u);
  controller_->enqueueAll();
  runUntilQuiet();
  EXPECT_EQ(cloud_.reads, 2);
  EXPECT_EQ(cloud_.puts, 1);
}

// What a list said is checked against the NIC itself: one no longer on the node's VM (or gone)
// sends the pass to the VM, which names the NIC it has now.
TEST_F(NicWiringTest, ANicTheListNamedThatIsNoLongerOnTheVmIsLookedUpThroughTheVm) {
  cloud_.addNode(vmNamed("vm-b"), "nic-b");
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  addNode(nodeJson("a", kVm));
  addNode(nodeJson("b", vmNamed("vm-b")));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  ASSERT_FALSE(controller_->reconcileNode("b"));
  ASSERT_FALSE(controller_->reconcileNic("a"));
  ASSERT_EQ(cloud_.lists, 1);
  // After the list: vm-b's NIC moves to another VM, and vm-b gets nic-b2.
  cloud_.placeNic("nic-b", kSubnetId, vmNamed("vm-x"));
  cloud_.addNode(vmNamed("vm-b"), "nic-b2");
  ASSERT_FALSE(controller_->reconcileNic("b"));
  EXPECT_EQ(cloud_.vmReads, 1);
  EXPECT_TRUE(cloud_.nic("nic-b").empty());
  EXPECT_EQ(cloud_.nic("nic-b2").size(), 1u);
  runUntilQuiet();
  ASSERT_EQ(blocksOf("b").size(), 1u);
  EXPECT_EQ(decoded(blocksOf("b")[0]).status.nic->id, "nic-b2");
}

// A list that fails costs its one read and doubles the nodes the next list must serve: the nodes
// read their VMs meanwhile.
TEST_F(NicWiringTest, AFailedListSendsTheNodesToTheirVmsAndRaisesTheBarForTheNext) {
  cloud_.addNode(vmNamed("vm-b"), "nic-b");
  cloud_.listError = azure::Error{.code = azure::ErrorCode::kForbidden,
                                  .message = "injected: AuthorizationFailed"};
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  addNode(nodeJson("a", kVm));
  addNode(nodeJson("b", vmNamed("vm-b")));
  runUntilQuiet();
  EXPECT_EQ(cloud_.lists, 1) << "b alone waits after a's list failed: less than two nodes";
  EXPECT_EQ(cloud_.vmReads, 2);
  EXPECT_EQ(cloud_.nic("nic-a").size(), 1u);
  EXPECT_EQ(cloud_.nic("nic-b").size(), 1u);
}

// A Releasing block (as an earlier version released one) whose prefix is off the NIC: the pass
// deletes it and takes nic-release off at once, the patch made against what the delete left (its
// resourceVersion), not refused as stale and tried again later.
TEST_F(NicWiringTest, AReleasedBlockIsDeletedAndLosesNicReleaseInOnePass) {
  const std::string name = "pods-10-0-0-16-28";
  json b = blockJson("pods", "10.0.0.16/28", "a", name);
  b["metadata"]["finalizers"] = {"vnetipam.io/agent-drain", "vnetipam.io/nic-release"};
  b["status"] = {{"phase", "Releasing"}};
  api_.put(blockPathOf(name), b);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  addNode(nodeJson("a", kVm));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  syncBlocks();
  EXPECT_FALSE(controller_->reconcileNic("a"));
  auto got = api_.get(blockPathOf(name));
  ASSERT_TRUE(got);
  EXPECT_TRUE((*got)["metadata"].contains("deletionTimestamp")) << got->dump();
  EXPECT_EQ((*got)["metadata"]["finalizers"], json::array({"vnetipam.io/agent-drain"}))
      << got->dump();
  const auto known = controller_->block(name);
  ASSERT_TRUE(known);
  EXPECT_TRUE(known->deleting) << "known from the delete's answer, before any watch event";
}

// A block an earlier version created before programming it: Pending until a GET shows it.
TEST_F(NicWiringTest, APendingBlockMovesOnlyAfterAFreshGetShowedThePrefix) {
  api_.put(blockPathOf("pods-10-0-0-0-28"),
           blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28"));
  syncBlocks();
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  ASSERT_FALSE(controller_->reconcileNic("a"));
  // GET (absent) + PUT; GET (present) -> Ready: one reconcile, two reads, one status write.
  EXPECT_EQ(cloud_.puts, 1);
  EXPECT_EQ(cloud_.reads, 2);
  std::vector<std::string> phases;
  for (const auto& r : api_.requests()) {
    if (r.method != "PATCH" || !r.target.starts_with(blockPathOf("pods-10-0-0-0-28"))) continue;
    phases.push_back(json::parse(r.body)["status"].value("phase", ""));
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"Ready"}));
  EXPECT_EQ(blocksOf("a")[0]["status"]["phase"], "Ready");
}

TEST_F(NicWiringTest, APutOfUnknownOutcomeCreatesNoBlockUntilTheNicShowsThePrefix) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  cloud_.failNextPut();
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 15u) << "the CIDR stays taken for the node";
  // The PUT did land after all (its answer was lost): the next GET shows the prefix, and the block
  // is created from that, with no second PUT.
  cloud_.setNic("nic-a", {prefix("10.0.0.0/28")});
  ASSERT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.puts, 1);
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.0.0.0/28");
  EXPECT_EQ(decoded(blocksOf("a")[0]).status.phase, api::BlockPhase::kReady);
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

TEST_F(NicWiringTest, AnUnownedPrefixInAPodSubnetGoesAfterTheGraceAndOthersStay) {
  // Not a block of the pool (a /29 of a /28 pool), so no block of the node's can be made of it.
  cloud_.setNic("nic-a", {prefix("10.0.0.248/29"), prefix("192.168.0.0/28")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.0/28"), prefix("10.0.0.248/29"),
                                              prefix("192.168.0.0/28")}));
  EXPECT_TRUE(events_.has("UnownedPrefixFound"));

  clock_.advance(std::chrono::seconds(121));
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{prefix("10.0.0.0/28"), prefix("192.168.0.0/28")}))
      << "the orphan went; the prefix outside every PodSubnet is not ours";
  EXPECT_TRUE(events_.has("UnownedPrefixRemoved"));
}

// A prefix of ours that is a free block of a PodSubnet selecting the node: what a join's PUT left
// when its controller died before creating the IPBlock. The NIC pass creates it, Ready on the NIC.
TEST_F(NicWiringTest, AnOwnFreeBlockOnTheNodesNicBecomesItsBlock) {
  cloud_.setNic("nic-a", {prefix("10.0.0.240/28")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  // It takes the place of the block the Node reconciler carved for the node: one block, no PUT.
  EXPECT_EQ(cloud_.nic("nic-a"), std::vector{prefix("10.0.0.240/28")});
  EXPECT_EQ(cloud_.puts, 0);
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["metadata"]["name"], "pods-10-0-0-240-28");
  EXPECT_EQ(decoded(mine[0]).status.phase, api::BlockPhase::kReady);
  EXPECT_FALSE(events_.has("UnownedPrefixFound"));
  EXPECT_EQ(controller_->poolFree("pods"), 15u) << "the carved block went back to the pool";
}

// The Node is deleted while the PUT of its join is on its way: the IPBlock created after the PUT
// is released like any block of a gone node, and its prefix leaves the NIC.
TEST_F(NicWiringTest, ANodeDeletedDuringItsJoinsPutHasItsBlockReleased) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  cloud_.duringNextPut = [this] {
    controller_->applyNodeEvent(kube::WatchEventType::kDeleted, nodeJson("a", kVm));
  };
  runUntilQuiet();
  for (const json& b : blocksOf("a"))
    dropAgentDrain(b["metadata"]["name"].get<std::string>());
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("a").empty()) << json(blocksOf("a")).dump();
  EXPECT_TRUE(cloud_.nic("nic-a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 16u);
}

// A controller that starts takes a node's NIC from its blocks (programmed-on, for the providerID
// the node still has): no lookup of the VM's NIC. One whose NIC is gone is looked up through the
// VM.
TEST_F(NicWiringTest, ARestartedControllerTakesTheNicFromTheNodesBlocks) {
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  ASSERT_EQ(cloud_.vmReads + cloud_.lists, 1) << "the NIC found once: a list of the group";
  ASSERT_EQ(blocksOf("a").size(), 1u);

  controller_ = std::make_unique<Controller>(client_, &cloud_, queue_, &events_, nullptr,
                                             ControllerConfig{.statusInterval = {}}, clock_);
  controller_->setWritable(true);
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  controller_->enqueueAll();
  runUntilQuiet();
  EXPECT_EQ(cloud_.vmReads + cloud_.lists, 1) << "the block named the NIC";
  EXPECT_GT(cloud_.reads, 1);

  // The node's VM now has another NIC: the old one is gone.
  cloud_.removeNic("nic-a");
  cloud_.addNode(kVm, "nic-a2");
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(cloud_.vmReads, 1) << "a NIC found gone is looked up through the VM, in the same pass";
  EXPECT_EQ(cloud_.lists, 1);
  EXPECT_EQ(cloud_.nic("nic-a2").size(), 1u);
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
  EXPECT_EQ(blocksOf("a")[0]["status"]["phase"], "Ready") << "written once it changed";
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
                                             ControllerConfig{.statusInterval = {}}, clock_);
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

// A block created before its prefix was programmed (as an earlier version did), whose PUT went
// through before the controller died without writing any status; its node is gone since.
TEST_F(NicWiringTest, APrefixPutJustBeforeACrashIsFoundThroughTheBlocksProviderID) {
  json old = blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28");
  old["metadata"]["annotations"] = {{"vnetipam.io/provider-id", kVm}};
  old["metadata"]["finalizers"] = {"vnetipam.io/agent-drain", "vnetipam.io/nic-release"};
  api_.put(blockPathOf("pods-10-0-0-0-28"), old);
  syncBlocks();
  cloud_.setNic("nic-a", {prefix("10.0.0.0/28")});
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();  // node "a" is gone for this controller
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_TRUE(cloud_.nic("nic-a").empty());
}

}  // namespace
}  // namespace vnetipam::controller::testing
