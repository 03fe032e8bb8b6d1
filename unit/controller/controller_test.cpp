// The controller's wiring with --cloud=none: PodSubnet carving and status, node blocks, releases,
// the safety rules of controller.h, against the in-memory API server.
#include <gtest/gtest.h>

#include "api/codec.h"
#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

class ControllerTest : public ControllerFixture {};

TEST_F(ControllerTest, ExistingBlocksAreOccupiedBeforeAnyNewBlockIsHandedOut) {
  api_.put(blockPathOf("pods-10-0-0-0-28"),
           blockJson("pods", "10.0.0.0/28", "old", "pods-10-0-0-0-28"));
  syncBlocks();
  addNode(nodeJson("old"));
  addNode(nodeJson("new"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  runUntilQuiet();

  const auto mine = blocksOf("new");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["spec"]["cidr"], "10.0.0.16/28");
  EXPECT_EQ(mine[0]["metadata"]["name"], "pods-10-0-0-16-28");
  EXPECT_EQ(mine[0]["metadata"]["labels"]["vnetipam.io/node"], "new");
  EXPECT_EQ(mine[0]["metadata"]["labels"]["vnetipam.io/subnet"], "pods");
  EXPECT_EQ(mine[0]["metadata"]["finalizers"], json::array({"vnetipam.io/agent-drain"}))
      << "--cloud=none: no NIC to release, but an agent to drain";
  EXPECT_EQ(mine[0]["metadata"]["annotations"]["vnetipam.io/programmed-on"], "none")
      << "--cloud=none: created Ready, in one write";
  const auto block = api::ipBlockFromJson(mine[0]);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->status.phase, api::BlockPhase::kReady);
  EXPECT_EQ(block->status.capacity, 16);
  EXPECT_FALSE(block->status.nic) << "no NIC without a cloud";
  EXPECT_EQ(blocksOf("old").size(), 1u);

  const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  ASSERT_TRUE(subnet);
  EXPECT_EQ((*subnet)["status"]["totalBlocks"], 4);
  EXPECT_EQ((*subnet)["status"]["allocatedBlocks"], 2);
  EXPECT_EQ((*subnet)["status"]["cidr"], "10.0.0.0/26");
  EXPECT_EQ(controller_->poolFree("pods"), 2u);
}

TEST_F(ControllerTest, AlreadyExistsOccupiesThatBlockAndTriesTheNext) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  // Another writer created the first block; this replica's cache has not seen it yet.
  api_.put(blockPathOf("pods-10-0-0-0-28"),
           blockJson("pods", "10.0.0.0/28", "elsewhere", "pods-10-0-0-0-28"));
  EXPECT_FALSE(controller_->reconcileNode("a"));
  EXPECT_FALSE(controller_->reconcileNode("a"));

  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["spec"]["cidr"], "10.0.0.16/28");
  EXPECT_EQ(controller_->poolFree("pods"), 2u) << "the taken block stays occupied";
}

TEST_F(ControllerTest, ACreateOfUnknownOutcomeLeaksItsBlockUntilTheGraceEnds) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  api_.failNext("POST", http::ErrorCode::kTransport);
  EXPECT_TRUE(controller_->reconcileNode("a")) << "an unknown outcome is retried";
  EXPECT_EQ(controller_->poolFree("pods"), 3u) << "leaked, not handed out again";
  EXPECT_TRUE(blocksOf("a").empty());

  clock_.advance(std::chrono::seconds(30));
  EXPECT_FALSE(controller_->reconcileSubnet("pods"));
  EXPECT_EQ(controller_->poolFree("pods"), 3u) << "still within the grace period";

  clock_.advance(std::chrono::seconds(31));
  EXPECT_FALSE(controller_->reconcileSubnet("pods"));
  EXPECT_EQ(controller_->poolFree("pods"), 4u) << "no IPBlock showed up: free again";
}

TEST_F(ControllerTest, ALeakedBlockThatDidGetCreatedIsKept) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  api_.failNext("POST", http::ErrorCode::kTransport);
  EXPECT_TRUE(controller_->reconcileNode("a"));
  // The create did happen after all; the watch brings it.
  api_.put(blockPathOf("pods-10-0-0-0-28"),
           blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28"));
  syncBlocks();
  clock_.advance(std::chrono::seconds(61));
  EXPECT_FALSE(controller_->reconcileSubnet("pods"));
  EXPECT_EQ(controller_->poolFree("pods"), 3u);
  EXPECT_FALSE(controller_->reconcileNode("a"));
  EXPECT_EQ(blocksOf("a").size(), 1u) << "the node is satisfied by the block that exists";
}

TEST_F(ControllerTest, ARefusedCreateGivesTheBlockBackAtOnce) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  api_.answerNext("POST", 422);
  EXPECT_TRUE(controller_->reconcileNode("a"));
  EXPECT_EQ(controller_->poolFree("pods"), 4u);
}

TEST_F(ControllerTest, ADeletedNodeReleasesEveryBlockAndThePoolGetsThemBack) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"minFreeIPsPerNode", 20}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 2u);
  EXPECT_EQ(controller_->poolFree("pods"), 2u);

  // The Node is gone from the API server too (the fake holds no Node "a"): no agent is left to
  // remove vnetipam.io/agent-drain, so the controller does.
  controller_->applyNodeEvent(kube::WatchEventType::kDeleted, nodeJson("a"));
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 4u);
}

// The cache says the node is gone but the API server still has it (its watch event is late, or
// it is back): agent-drain stays, and so do the blocks and their CIDRs.
TEST_F(ControllerTest, AgentDrainStaysWhileTheApiServerStillHasTheNode) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  api_.put(std::string(kNodesPath) + "/a", nodeJson("a"));
  controller_->applyNodeEvent(kube::WatchEventType::kDeleted, nodeJson("a"));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(blocksOf("a")[0]["metadata"]["finalizers"], json::array({"vnetipam.io/agent-drain"}));
  EXPECT_EQ(controller_->poolFree("pods"), 3u);
}

// Every block the controller creates carries vnetipam.io/agent-drain in the create itself, and
// one released for an empty extra block stays (CIDR taken) until the agent removes it.
TEST_F(ControllerTest, ABlockIsCreatedWithAgentDrainAndReleasedOnlyOnceTheAgentLetsGo) {
  addNode(nodeJson("a"));
  api_.put(std::string(kNodesPath) + "/a", nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"releaseDelaySeconds", 10}}));
  runUntilQuiet();
  std::size_t creates = 0;
  for (const auto& r : api_.requests()) {
    if (r.method == "POST" && r.target.starts_with(std::string(kIPBlocksPath))) {
      ++creates;
      EXPECT_EQ(json::parse(r.body)["metadata"]["finalizers"],
                json::array({"vnetipam.io/agent-drain"}))
          << r.body;
    }
  }
  EXPECT_EQ(creates, 1u);
  for (const auto& r : api_.requests()) {
    const std::string path = r.target.substr(0, r.target.find('?'));
    EXPECT_FALSE(r.method == "PATCH" && path.starts_with(std::string(kIPBlocksPath)) &&
                 !path.ends_with("/status"))
        << "no second write for the finalizer: " << r.body;
  }

  api_.patchStatus(blockPathOf("pods-10-0-0-0-28"), {{"used", 12}});
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 2u);
  api_.patchStatus(blockPathOf("pods-10-0-0-0-28"), {{"used", 0}});
  runUntilQuiet();
  clock_.advance(std::chrono::seconds(11));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  runUntilQuiet();
  const auto released = api_.get(blockPathOf("pods-10-0-0-16-28"));
  ASSERT_TRUE(released) << "kept by agent-drain";
  EXPECT_TRUE((*released)["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(controller_->poolFree("pods"), 2u) << "its CIDR is not free yet";
  EXPECT_EQ(blocksOf("a").size(), 2u) << "and the node is not given a third";

  dropAgentDrain("pods-10-0-0-16-28");
  runUntilQuiet();
  EXPECT_FALSE(api_.get(blockPathOf("pods-10-0-0-16-28")));
  EXPECT_EQ(controller_->poolFree("pods"), 3u);
}

// A block made by an earlier version has no agent-drain: it is released as before, at once.
TEST_F(ControllerTest, ABlockWithoutAgentDrainIsReleasedAsBefore) {
  json old = blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28");
  old["metadata"]["finalizers"] = json::array();
  old["status"] = {{"phase", "Ready"}, {"capacity", 16}};
  api_.put(blockPathOf("pods-10-0-0-0-28"), old);
  syncBlocks();
  addNode(nodeJson("a", "", {{"pool", "blue"}}));
  api_.put(std::string(kNodesPath) + "/a", nodeJson("a", "", {{"pool", "blue"}}));
  addSubnet(subnetJson(
      "pods", {{"cidr", "10.0.0.0/26"}, {"nodeSelector", {{"matchLabels", {{"pool", "blue"}}}}}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(controller_->poolFree("pods"), 3u);

  controller_->applyNodeEvent(kube::WatchEventType::kModified,
                              nodeJson("a", "", {{"pool", "green"}}));
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 4u);
}

// Blocks someone else made that the pool must not trust: each gets the Invalid condition (naming
// the rule, the field and the conflict) and a Warning event, is never Ready, never counts as the
// node's capacity, never takes or frees a CIDR of the pool, and is never deleted.
TEST_F(ControllerTest, UntrustedBlocksAreRefusedReportedAndLeftAlone) {
  addNode(nodeJson("a"));
  addNode(nodeJson("b"));
  api_.put(std::string(kNodesPath) + "/a", nodeJson("a"));
  api_.put(std::string(kNodesPath) + "/b", nodeJson("b"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"reservedCIDRs", {"10.0.0.48/28"}}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  ASSERT_EQ(blocksOf("b").size(), 1u);
  const std::string aBlock = blocksOf("a")[0]["metadata"]["name"];
  EXPECT_EQ(controller_->poolFree("pods"), 1u);

  struct Hostile {
    std::string name, subnet, cidr, node, reason, mentions;
  };
  const std::vector<Hostile> hostile = {
      {"pods-10-0-0-0-27", "pods", "10.0.0.0/27", "b", "Overlap", "pods-10-0-0-0-28"},
      {"pods-10-1-0-0-16", "pods", "10.1.0.0/16", "b", "OutsidePodSubnet", "10.0.0.0/26"},
      {"pods-10-0-0-48-28", "pods", "10.0.0.48/28", "b", "ReservedRange", "10.0.0.48/28"},
      {"pods-10-0-0-32-29", "pods", "10.0.0.32/29", "b", "WrongPrefixLength", "28"},
      {"ghost-10-0-0-32-28", "ghost", "10.0.0.32/28", "b", "UnknownPodSubnet", "ghost"},
  };
  for (const Hostile& h : hostile) {
    json b = blockJson(h.subnet, h.cidr, h.node, h.name);
    b["status"] = {{"phase", "Pending"}, {"used", 0}};
    api_.put(blockPathOf(h.name), b);
  }
  runUntilQuiet();
  controller_->enqueueAll();
  runUntilQuiet();

  for (const Hostile& h : hostile) {
    SCOPED_TRACE(h.name);
    const auto b = api_.get(blockPathOf(h.name));
    ASSERT_TRUE(b) << "never deleted by the controller";
    EXPECT_FALSE((*b)["metadata"].contains("deletionTimestamp"));
    EXPECT_EQ((*b)["status"]["phase"], "Pending") << "never set Ready";
    const json& conditions = (*b)["status"]["conditions"];
    ASSERT_EQ(conditions.size(), 1u) << b->dump();
    EXPECT_EQ(conditions[0]["type"], "Invalid");
    EXPECT_EQ(conditions[0]["status"], "True");
    EXPECT_EQ(conditions[0]["reason"], h.reason);
    const std::string message = conditions[0]["message"];
    EXPECT_NE(message.find("spec."), std::string::npos) << message;
    EXPECT_NE(message.find(h.mentions), std::string::npos) << message;
    std::size_t warnings = 0;
    for (const auto& e : events_.events) {
      if (e.kind == "IPBlock" && e.name == h.name && e.reason == h.reason) ++warnings;
    }
    EXPECT_EQ(warnings, 1u) << "one event, not one per pass";
    EXPECT_EQ(controller_->block(h.name)->trust, Trust::kInvalid);
  }
  EXPECT_EQ(blocksOf("b").size(), 6u) << "its own block, and no extra one taken or given";
  EXPECT_EQ(controller_->poolFree("pods"), 1u) << "no refused block took or skipped a CIDR";

  // The admin deletes the refused blocks: they go (the controller removes its own finalizer, no
  // agent-drain was added by anyone), and the pool frees nothing for them.
  for (const Hostile& h : hostile)
    ASSERT_TRUE(client_.remove(blockPathOf(h.name)));
  runUntilQuiet();
  for (const Hostile& h : hostile)
    EXPECT_FALSE(api_.get(blockPathOf(h.name))) << h.name;
  EXPECT_EQ(controller_->poolFree("pods"), 1u);
  EXPECT_TRUE(api_.get(blockPathOf(aBlock)));
}

// A refused block is refused for good: when the block it overlapped goes, it does not take the
// CIDR, and a restarted controller reads the refusal from its status (no second event).
TEST_F(ControllerTest, ARefusalOutlivesTheBlockItOverlappedAndARestart) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  api_.put(blockPathOf("pods-10-0-0-0-27"),
           blockJson("pods", "10.0.0.0/27", "b", "pods-10-0-0-0-27"));
  runUntilQuiet();
  ASSERT_EQ(controller_->block("pods-10-0-0-0-27")->trust, Trust::kInvalid);

  // Node a and its block go.
  controller_->applyNodeEvent(kube::WatchEventType::kDeleted, nodeJson("a"));
  runUntilQuiet();
  EXPECT_FALSE(api_.get(blockPathOf("pods-10-0-0-0-28")));
  EXPECT_EQ(controller_->block("pods-10-0-0-0-27")->trust, Trust::kInvalid);
  EXPECT_EQ(controller_->poolFree("pods"), 4u);

  // A new controller over the same objects.
  const std::size_t eventsBefore = events_.events.size();
  controller_ = std::make_unique<Controller>(client_, nullptr, queue_, &events_, nullptr,
                                             ControllerConfig{}, clock_);
  controller_->setWritable(true);
  syncBlocks();
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  controller_->enqueueAll();
  runUntilQuiet();
  EXPECT_EQ(controller_->block("pods-10-0-0-0-27")->trust, Trust::kInvalid);
  EXPECT_EQ(controller_->poolFree("pods"), 4u);
  EXPECT_EQ(events_.events.size(), eventsBefore);
}

// At start-up, of two blocks over the same CIDR the earlier one (creationTimestamp, then name) is
// held, whatever order the list brings them in.
TEST_F(ControllerTest, AtStartTheEarliestOfTwoOverlappingBlocksIsHeld) {
  json early = blockJson("pods", "10.0.0.16/28", "a", "zz-late-name");
  early["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
  json late = blockJson("pods", "10.0.0.16/28", "b", "pods-10-0-0-16-28");
  late["metadata"]["creationTimestamp"] = "2026-01-01T00:00:05Z";
  api_.put(blockPathOf("pods-10-0-0-16-28"), late);
  api_.put(blockPathOf("zz-late-name"), early);
  syncBlocks();
  addNode(nodeJson("a"));
  addNode(nodeJson("b"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  runUntilQuiet();
  EXPECT_EQ(controller_->block("zz-late-name")->trust, Trust::kAccepted);
  EXPECT_EQ(controller_->block("pods-10-0-0-16-28")->trust, Trust::kInvalid);
  const auto refused = api_.get(blockPathOf("pods-10-0-0-16-28"));
  ASSERT_TRUE(refused);
  EXPECT_NE(
      (*refused)["status"]["conditions"][0]["message"].get<std::string>().find("zz-late-name"),
      std::string::npos);
}

TEST_F(ControllerTest, UsageAboveTheWarmTargetAddsABlockAndAnEmptyExtraGoesAfterTheDelay) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"releaseDelaySeconds", 10}}));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);

  api_.patchStatus(blockPathOf("pods-10-0-0-0-28"), {{"used", 12}});
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 2u) << "4 free < minFreeIPsPerNode 8";

  api_.patchStatus(blockPathOf("pods-10-0-0-0-28"), {{"used", 0}});
  runUntilQuiet();
  EXPECT_EQ(blocksOf("a").size(), 2u) << "empty, but not for releaseDelaySeconds yet";

  clock_.advance(std::chrono::seconds(11));
  EXPECT_FALSE(controller_->reconcileNode("a"));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 2u) << "released, but kept until the agent lets go";
  dropAgentDrain("pods-10-0-0-16-28");
  runUntilQuiet();
  const auto left = blocksOf("a");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]["spec"]["cidr"], "10.0.0.0/28") << "the higher, newer extra block went";
}

TEST_F(ControllerTest, APoolWithoutFreeBlocksIsExhaustedWithEventsAndRecovers) {
  addNode(nodeJson("a"));
  addNode(nodeJson("b"));
  addNode(nodeJson("c"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/27"}}));
  runUntilQuiet();
  auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  ASSERT_TRUE(subnet);
  const json& conditions = (*subnet)["status"]["conditions"];
  const auto exhausted =
      std::ranges::find_if(conditions, [](const json& c) { return c["type"] == "Exhausted"; });
  ASSERT_NE(exhausted, conditions.end());
  EXPECT_EQ((*exhausted)["status"], "True");
  EXPECT_TRUE(events_.has("Exhausted"));
  EXPECT_TRUE(events_.has("PodSubnetExhausted"));

  // A node leaves: the short one gets its block.
  const std::string holder = blocksOf("a").empty() ? "b" : "a";
  controller_->applyNodeEvent(kube::WatchEventType::kDeleted, nodeJson(holder));
  runUntilQuiet();
  EXPECT_EQ(blocksOf("c").size() + blocksOf(holder == "a" ? "b" : "a").size(), 2u);
  subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  for (const json& c : (*subnet)["status"]["conditions"]) {
    if (c["type"] == "Exhausted") {
      EXPECT_EQ(c["status"], "False") << c.dump();
    }
  }
}

TEST_F(ControllerTest, AnOverlappingPodSubnetIsRefusedNamingTheOtherOne) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("first", {{"cidr", "10.0.0.0/24"}}, "2026-01-01T00:00:00Z"));
  addSubnet(subnetJson("second", {{"cidr", "10.0.0.128/25"}}, "2026-01-01T00:00:05Z"));
  runUntilQuiet();
  EXPECT_TRUE(controller_->poolFree("first"));
  EXPECT_FALSE(controller_->poolFree("second"));
  const auto second = api_.get(std::string(kPodSubnetsPath) + "/second");
  ASSERT_TRUE(second);
  const json& ready = (*second)["status"]["conditions"][0];
  EXPECT_EQ(ready["type"], "Ready");
  EXPECT_EQ(ready["status"], "False");
  EXPECT_NE(ready["message"].get<std::string>().find("\"first\""), std::string::npos)
      << ready.dump();
  for (const json& b : blocksOf("a"))
    EXPECT_EQ(b["spec"]["podSubnet"], "first");
}

TEST_F(ControllerTest, ANodeOutsideTheSelectorGetsNothingAndLosesItsBlocksWhenItLeavesIt) {
  addNode(nodeJson("a", "", {{"pool", "blue"}}));
  addNode(nodeJson("b", "", {{"pool", "green"}}));
  addSubnet(subnetJson(
      "pods", {{"cidr", "10.0.0.0/26"}, {"nodeSelector", {{"matchLabels", {{"pool", "blue"}}}}}}));
  runUntilQuiet();
  EXPECT_EQ(blocksOf("a").size(), 1u);
  EXPECT_TRUE(blocksOf("b").empty());

  controller_->applyNodeEvent(kube::WatchEventType::kModified,
                              nodeJson("a", "", {{"pool", "green"}}));
  api_.put(std::string(kNodesPath) + "/a", nodeJson("a", "", {{"pool", "green"}}));
  runUntilQuiet();
  // Released (deleted), but the node's agent still holds it: the block and its CIDR stay.
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_TRUE(blocksOf("a")[0]["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(controller_->poolFree("pods"), 3u) << "not free before the agent lets go";

  dropAgentDrain("pods-10-0-0-0-28");  // what the agent does once it serves nothing from it
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("a").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 4u);
}

// Without a cloud no block carries vnetipam.io/nic-release: one the controller creates never has
// it, so once the controller is gone (helm uninstall) the blocks, and then the CRDs, can be
// deleted without anyone to remove a finalizer.
TEST_F(ControllerTest, WithoutACloudBlocksGoWithoutTheControllerWhenDeleted) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"minFreeIPsPerNode", 20}}));
  runUntilQuiet();
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 2u);
  for (const json& b : mine) {
    EXPECT_EQ(b["metadata"]["finalizers"], json::array({"vnetipam.io/agent-drain"})) << b.dump();
    EXPECT_EQ(api::ipBlockFromJson(b)->status.phase, api::BlockPhase::kReady);
  }
  for (const auto& r : api_.requests()) {
    if (r.method == "POST" && r.target.starts_with(std::string(kIPBlocksPath))) {
      EXPECT_EQ(json::parse(r.body)["metadata"]["finalizers"],
                json::array({"vnetipam.io/agent-drain"}))
          << r.body;
    }
  }
  // The controller is gone: nobody processes the deletes, and they complete once the agent has
  // given each block up (it removes agent-drain; the controller is not needed for that).
  controller_.reset();
  for (const json& b : mine) {
    const std::string name = b["metadata"]["name"];
    ASSERT_TRUE(client_.remove(blockPathOf(name)));
    ASSERT_TRUE(api_.get(blockPathOf(name)));
    dropAgentDrain(name);
  }
  EXPECT_TRUE(blocksOf("a").empty());
}

// A block that carries the finalizer from before (an earlier version, or a controller run with a
// cloud) loses it once a controller without a cloud starts; other finalizers stay, and the block
// is kept and used as before.
TEST_F(ControllerTest, WithoutACloudTheFinalizerOfAnExistingBlockIsRemovedAndOthersKept) {
  json old = blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28");
  old["metadata"]["finalizers"] = {"vnetipam.io/nic-release", "example.com/keep"};
  old["status"] = {{"phase", "Ready"}, {"capacity", 16}};
  api_.put(blockPathOf("pods-10-0-0-0-28"), old);
  json plain = blockJson("pods", "10.0.0.16/28", "b", "pods-10-0-0-16-28");
  api_.put(blockPathOf("pods-10-0-0-16-28"), plain);
  syncBlocks();
  addNode(nodeJson("a"));
  addNode(nodeJson("b"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  controller_->enqueueAll();  // what a replica does when it starts leading
  runUntilQuiet();

  const auto a = api_.get(blockPathOf("pods-10-0-0-0-28"));
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["metadata"]["finalizers"], json::array({"example.com/keep"}));
  EXPECT_FALSE((*a)["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ((*a)["status"]["phase"], "Ready");
  const auto b = api_.get(blockPathOf("pods-10-0-0-16-28"));
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)["metadata"]["finalizers"], json::array());
  EXPECT_EQ((*b)["status"]["phase"], "Ready");
  EXPECT_EQ(blocksOf("a").size(), 1u) << "no new block: the old one is still the node's";
  EXPECT_EQ(controller_->block("pods-10-0-0-0-28")->hasFinalizer, false);

  // Each removal was one patch, conditional on the version read.
  std::size_t patches = 0;
  for (const auto& r : api_.requests()) {
    const std::string path = r.target.substr(0, r.target.find('?'));
    if (r.method != "PATCH" || !path.starts_with(std::string(kIPBlocksPath)) ||
        path.ends_with("/status")) {
      continue;
    }
    ++patches;
    EXPECT_TRUE(json::parse(r.body)["metadata"].contains("resourceVersion")) << r.body;
  }
  EXPECT_EQ(patches, 2u);
}

// A patch that meets a newer version is retried against it, and a standby removes nothing.
TEST_F(ControllerTest, WithoutACloudTheFinalizerRemovalRetriesAConflictAndAStandbyLeavesIt) {
  json block = blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28");
  block["status"] = {{"phase", "Ready"}, {"capacity", 16}};
  api_.put(blockPathOf("pods-10-0-0-0-28"), block);
  syncBlocks();
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  controller_->setWritable(false);
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_EQ((*api_.get(blockPathOf("pods-10-0-0-0-28")))["metadata"]["finalizers"],
            json::array({"vnetipam.io/nic-release"}));

  controller_->setWritable(true);
  api_.patchStatus(blockPathOf("pods-10-0-0-0-28"), {{"used", 1}});  // a newer version
  EXPECT_TRUE(controller_->reconcileNic("a")) << "the stale patch conflicts";
  syncBlocks();
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ((*api_.get(blockPathOf("pods-10-0-0-0-28")))["metadata"]["finalizers"], json::array());
}

TEST_F(ControllerTest, AStandbyWritesNothing) {
  controller_->setWritable(false);
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  EXPECT_TRUE(controller_->reconcileSubnet("pods"));
  EXPECT_TRUE(controller_->reconcileNode("a"));
  EXPECT_EQ(api_.count("POST"), 0u);
  EXPECT_EQ(api_.count("PATCH"), 0u);
  EXPECT_EQ(controller_->poolFree("pods"), 4u) << "nothing kept allocated for a write not made";
}

}  // namespace
}  // namespace vnetipam::controller::testing
