// Conditions and Events that explain cloud programming: IPBlock Programmed, the Node's
// VnetIpamNICProgrammed and NICProgrammingFailed/Recovered, against the fake API server (which
// applies status per field manager, as server-side apply does) and the fake cloud.
#include <gtest/gtest.h>

#include "api/codec.h"
#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

constexpr const char* kBlock = "pods-10-0-0-0-28";
const std::string kNodePath = std::string(kNodesPath) + "/a";
constexpr const char* kVmB =
    "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-b";

std::optional<json> conditionOf(const json& object, std::string_view type) {
  for (const json& c : object.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("type", "") == type) return c;
  }
  return std::nullopt;
}

// A refusal of the whole PUT that names no block: every block it was to add stays Pending.
azure::Error internalError() {
  return azure::Error{.code = azure::ErrorCode::kOperationFailed,
                      .message =
                          "NIC nic-a: the operation ended Failed: InternalServerError: An "
                          "error occurred (request 5e1f)",
                      .httpStatus = 200,
                      .azureCode = "InternalServerError"};
}

// Another resource holds 10.0.0.21, inside the node's second block: Azure's words (the VNET
// mock's too) name the ipConfiguration of that block.
azure::Error inUseBySecond() {
  return azure::Error{.code = azure::ErrorCode::kBadRequest,
                      .message =
                          "NIC nic-a: IP configuration nic-a/ipConfigurations/"
                          "vnetipam-10-0-0-16-28 is using the same private IP address "
                          "10.0.0.16/28 as IP configuration nic-x/ipConfigurations/other",
                      .httpStatus = 400,
                      .azureCode = "PrivateIPAddressInUse"};
}

class NicProgrammingTest : public ControllerFixture {
 protected:
  explicit NicProgrammingTest(bool withCloud = true) : ControllerFixture(withCloud) {}
  void SetUp() override {
    ControllerFixture::SetUp();
    cloud_.addNode(kVm, "nic-a");
    api_.put(kNodePath, nodeJson("a", kVm));
    addNode(*api_.get(kNodePath));
  }

  // Status writes so far: (object path, body) of every status apply.
  std::vector<std::pair<std::string, json>> statusWrites(std::string_view prefix) const {
    std::vector<std::pair<std::string, json>> out;
    for (const auto& r : api_.requests()) {
      const std::string path = r.target.substr(0, r.target.find('?'));
      if (r.method == "PATCH" && path.ends_with("/status") && path.starts_with(prefix)) {
        out.emplace_back(path, json::parse(r.body));
      }
    }
    return out;
  }
  std::size_t eventsWith(std::string_view kind, std::string_view reason) const {
    std::size_t n = 0;
    for (const auto& e : events_.events)
      n += e.kind == kind && e.reason == reason ? 1u : 0u;
    return n;
  }
  // The node's one block, Pending, as an earlier version created it (before programming it),
  // and the subnet carved.
  void oneBlockCreated() {
    json old = blockJson("pods", "10.0.0.0/28", "a", kBlock);
    old["metadata"]["annotations"] = {{"vnetipam.io/provider-id", kVm}};
    old["metadata"]["finalizers"] = {"vnetipam.io/agent-drain", "vnetipam.io/nic-release"};
    api_.put(blockPathOf(kBlock), old);
    syncBlocks();
    addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
    ASSERT_FALSE(controller_->reconcileSubnet("pods"));
    ASSERT_FALSE(controller_->reconcileNode("a"));
    syncBlocks();
  }
  json blockObject() const { return *api_.get(blockPathOf(kBlock)); }
  json nodeObject() const { return *api_.get(kNodePath); }
};

TEST_F(NicProgrammingTest, ReadyCarriesProgrammedInTheSameWriteAndTheNodeIsNotWritten) {
  oneBlockCreated();
  ASSERT_FALSE(controller_->reconcileNic("a"));

  const auto writes = statusWrites(kIPBlocksPath);
  ASSERT_EQ(writes.size(), 1u) << "one status write per block: Ready with Programmed";
  EXPECT_EQ(writes[0].second["status"]["phase"], "Ready");
  const json block = blockObject();
  const auto programmed = conditionOf(block, api::kConditionProgrammed);
  ASSERT_TRUE(programmed) << block.dump();
  EXPECT_EQ((*programmed)["status"], "True");
  EXPECT_EQ((*programmed)["reason"], "PrefixOnNIC");
  EXPECT_NE((*programmed)["message"].get<std::string>().find("nic-a"), std::string::npos);
  EXPECT_NE((*programmed)["message"].get<std::string>().find("vnetipam-10-0-0-0-28"),
            std::string::npos)
      << "names the ipConfiguration";
  EXPECT_TRUE(statusWrites(kNodesPath).empty()) << "a join that never failed writes no Node";
  EXPECT_TRUE(events_.events.empty());
}

TEST_F(NicProgrammingTest, AFailedPutSaysWhyOnTheBlockAndTheNodeOnceAndRecovers) {
  oneBlockCreated();
  cloud_.failPuts(internalError());
  EXPECT_TRUE(controller_->reconcileNic("a"));

  json block = blockObject();
  auto programmed = conditionOf(block, api::kConditionProgrammed);
  ASSERT_TRUE(programmed) << block.dump();
  EXPECT_EQ((*programmed)["status"], "False");
  EXPECT_EQ((*programmed)["reason"], "InternalServerError");
  EXPECT_NE((*programmed)["message"].get<std::string>().find("5e1f"), std::string::npos);
  EXPECT_EQ(block["status"]["phase"], "Pending");
  auto nodeCondition = conditionOf(nodeObject(), api::kNodeConditionNicProgrammed);
  ASSERT_TRUE(nodeCondition) << nodeObject().dump();
  EXPECT_EQ((*nodeCondition)["status"], "False");
  EXPECT_EQ((*nodeCondition)["reason"], "InternalServerError");
  EXPECT_EQ(eventsWith("Node", "NICProgrammingFailed"), 1u);
  EXPECT_EQ(eventsWith("IPBlock", "NICProgrammingFailed"), 1u);
  const std::string failedSince = (*programmed)["lastTransitionTime"];

  // Retries with the same failure write nothing more (the Node's Event repeats: a series).
  const std::size_t blockWrites = statusWrites(kIPBlocksPath).size();
  const std::size_t nodeWrites = statusWrites(kNodesPath).size();
  ASSERT_EQ(nodeWrites, 1u);
  syncBlocks();
  clock_.advance(std::chrono::seconds(30));
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_EQ(statusWrites(kIPBlocksPath).size(), blockWrites);
  EXPECT_EQ(statusWrites(kNodesPath).size(), nodeWrites);
  EXPECT_EQ(eventsWith("Node", "NICProgrammingFailed"), 3u);
  EXPECT_EQ(eventsWith("IPBlock", "NICProgrammingFailed"), 1u);

  // Another failure: the reason follows, the transition time stays (still False).
  cloud_.failPuts({.code = azure::ErrorCode::kThrottled,
                   .message = "429 after every retry",
                   .httpStatus = 429,
                   .azureCode = ""});
  clock_.advance(std::chrono::seconds(30));
  EXPECT_TRUE(controller_->reconcileNic("a"));
  programmed = conditionOf(blockObject(), api::kConditionProgrammed);
  EXPECT_EQ((*programmed)["reason"], "Throttled");
  EXPECT_EQ((*programmed)["lastTransitionTime"], failedSince);
  nodeCondition = conditionOf(nodeObject(), api::kNodeConditionNicProgrammed);
  EXPECT_EQ((*nodeCondition)["reason"], "Throttled");
  EXPECT_EQ(statusWrites(kNodesPath).size(), 2u);

  // The cloud takes the PUT: Ready and Programmed=True in one write, the Node True again.
  cloud_.stopFailingPuts();
  clock_.advance(std::chrono::seconds(30));
  EXPECT_FALSE(controller_->reconcileNic("a"));
  block = blockObject();
  EXPECT_EQ(block["status"]["phase"], "Ready");
  programmed = conditionOf(block, api::kConditionProgrammed);
  EXPECT_EQ((*programmed)["status"], "True");
  EXPECT_EQ((*programmed)["reason"], "PrefixOnNIC");
  EXPECT_NE((*programmed)["lastTransitionTime"], failedSince);
  nodeCondition = conditionOf(nodeObject(), api::kNodeConditionNicProgrammed);
  EXPECT_EQ((*nodeCondition)["status"], "True");
  EXPECT_EQ((*nodeCondition)["reason"], "NICProgrammed");
  EXPECT_EQ(eventsWith("Node", "NICProgrammingRecovered"), 1u);
  EXPECT_EQ(statusWrites(kNodesPath).size(), 3u);

  // Healthy from here on: no more Node writes.
  syncBlocks();
  EXPECT_FALSE(controller_->reconcileNic("a"));
  EXPECT_EQ(statusWrites(kNodesPath).size(), 3u);
  EXPECT_EQ(eventsWith("Node", "NICProgrammingRecovered"), 1u);
}

TEST_F(NicProgrammingTest, AConditionWriteKeepsThePhaseAndTheNic) {
  oneBlockCreated();
  ASSERT_FALSE(controller_->reconcileNic("a"));
  syncBlocks();
  // The prefix vanishes and the PUT that would put it back fails.
  cloud_.setNic("nic-a", {});
  cloud_.failPuts(internalError());
  EXPECT_TRUE(controller_->reconcileNic("a"));
  const json block = blockObject();
  EXPECT_EQ(block["status"]["phase"], "Pending");
  EXPECT_EQ(block["status"]["nic"]["id"], "nic-a") << "where the prefix was, still known";
  EXPECT_EQ(block["status"]["capacity"], 16);
  const auto programmed = conditionOf(block, api::kConditionProgrammed);
  ASSERT_TRUE(programmed);
  EXPECT_EQ((*programmed)["status"], "False");
  EXPECT_EQ((*programmed)["reason"], "InternalServerError") << "the failure, not PrefixVanished";

  // Another reason: a write of the condition alone, which keeps every other field it owns.
  syncBlocks();
  cloud_.failPuts({.code = azure::ErrorCode::kServerError,
                   .message = "503 after every retry",
                   .httpStatus = 503,
                   .azureCode = ""});
  clock_.advance(std::chrono::seconds(30));
  EXPECT_TRUE(controller_->reconcileNic("a"));
  const json again = blockObject();
  EXPECT_EQ((*conditionOf(again, api::kConditionProgrammed))["reason"], "ServerError");
  EXPECT_EQ(again["status"]["phase"], "Pending");
  EXPECT_EQ(again["status"]["lastTransitionTime"], block["status"]["lastTransitionTime"]);
  EXPECT_EQ(again["status"]["nic"]["id"], "nic-a");
  EXPECT_EQ(again["status"]["capacity"], 16);

  // Another writer's condition (the agent's) is left alone by the controller's applies.
  ASSERT_TRUE(client_.applyStatus(
      blockPathOf(kBlock),
      {{"apiVersion", "vnetipam.io/v1alpha1"},
       {"kind", "IPBlock"},
       {"metadata", {{"name", kBlock}}},
       {"status",
        {{"used", 0},
         {"conditions", json::array({{{"type", "DataplaneSynced"},
                                      {"status", "True"},
                                      {"reason", "Synced"},
                                      {"message", "ok"},
                                      {"lastTransitionTime", "2026-01-02T00:00:00Z"}}})}}}},
      {.fieldManager = "vnet-ipam-agent", .force = false}));
  syncBlocks();
  cloud_.stopFailingPuts();
  EXPECT_FALSE(controller_->reconcileNic("a"));
  const json after = blockObject();
  EXPECT_EQ(after["status"]["phase"], "Ready");
  EXPECT_TRUE(conditionOf(after, "DataplaneSynced"));
  EXPECT_EQ((*conditionOf(after, api::kConditionProgrammed))["status"], "True");
}

TEST_F(NicProgrammingTest, ARefusedBlockKeepsItsProgrammedEntryAsFalseNextToInvalid) {
  // A block an earlier controller programmed, seen in a range the pool reserves (a block the pool
  // held when its range became reserved is released instead, podsubnet_test.cpp).
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}, {"reservedCIDRs", {"10.0.0.0/28"}}}));
  runUntilQuiet();
  json stale = blockJson("pods", "10.0.0.0/28", "a", kBlock);
  api_.put(blockPathOf(kBlock), stale);
  ASSERT_TRUE(client_.applyStatus(
      blockPathOf(kBlock),
      {{"apiVersion", "vnetipam.io/v1alpha1"},
       {"kind", "IPBlock"},
       {"metadata", {{"name", kBlock}}},
       {"status",
        {{"phase", "Ready"},
         {"capacity", 16},
         {"conditions", json::array({{{"type", "Programmed"},
                                      {"status", "True"},
                                      {"reason", "PrefixOnNIC"},
                                      {"message", "on nic-a"},
                                      {"lastTransitionTime", "2026-01-01T00:00:00Z"}}})}}}},
      {.fieldManager = std::string(api::kControllerFieldManager), .force = true}));
  runUntilQuiet();

  const json block = blockObject();
  const auto invalid = conditionOf(block, api::kConditionInvalid);
  ASSERT_TRUE(invalid) << block.dump();
  EXPECT_EQ((*invalid)["status"], "True");
  const auto programmed = conditionOf(block, api::kConditionProgrammed);
  ASSERT_TRUE(programmed) << "the refusal's apply keeps the entry: " << block.dump();
  EXPECT_EQ((*programmed)["status"], "False");
  EXPECT_EQ((*programmed)["reason"], "Refused");
}

// A new block is created only once its prefix is on the NIC: while the PUT fails there is no
// IPBlock, and the Node says why (once per reason); once a PUT succeeds the block is created,
// Ready, and the Node condition turns True.
TEST_F(NicProgrammingTest, AFailedPutOfANewBlockSaysWhyOnTheNodeAndCreatesItOnceOnTheNic) {
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  cloud_.failPuts(internalError());
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_TRUE(blocksOf("a").empty());
  auto nodeCondition = conditionOf(nodeObject(), api::kNodeConditionNicProgrammed);
  ASSERT_TRUE(nodeCondition) << nodeObject().dump();
  EXPECT_EQ((*nodeCondition)["status"], "False");
  EXPECT_EQ((*nodeCondition)["reason"], "InternalServerError");
  EXPECT_EQ(eventsWith("Node", "NICProgrammingFailed"), 1u);
  EXPECT_EQ(controller_->poolFree("pods"), 15u) << "the CIDR stays the node's";

  // A retry fails the same way: no new Node write, the Event repeats; still no block.
  ASSERT_FALSE(controller_->reconcileNode("a"));
  EXPECT_TRUE(controller_->reconcileNic("a"));
  EXPECT_EQ(statusWrites(kNodesPath).size(), 1u);
  EXPECT_EQ(eventsWith("Node", "NICProgrammingFailed"), 2u);
  EXPECT_EQ(cloud_.putBodies.back(), std::vector{*ipam::Prefix::parse("10.0.0.0/28")})
      << "the same CIDR, not a second one";

  cloud_.stopFailingPuts();
  clock_.advance(std::chrono::seconds(30));
  EXPECT_FALSE(controller_->reconcileNic("a"));
  ASSERT_EQ(blocksOf("a").size(), 1u);
  EXPECT_EQ(api::ipBlockFromJson(blockObject())->status.phase, api::BlockPhase::kReady);
  EXPECT_TRUE(statusWrites(kIPBlocksPath).empty()) << "created Ready: no status write";
  nodeCondition = conditionOf(nodeObject(), api::kNodeConditionNicProgrammed);
  EXPECT_EQ((*nodeCondition)["status"], "True");
  EXPECT_EQ(eventsWith("Node", "NICProgrammingRecovered"), 1u);
}

// A shared subnet: another resource holds an address inside one of the CIDRs carved for the node.
// The node's other blocks are programmed (and created) in the same pass, no IPBlock is ever made
// of the held CIDR and the Node says why, a replacement is carved and programmed, and the held
// CIDR is not carved again until its hold ends.
TEST_F(NicProgrammingTest, ACidrAnotherResourceHoldsAnAddressInIsQuarantinedAndReplaced) {
  const ipam::Prefix held = *ipam::Prefix::parse("10.0.0.16/28");
  cloud_.refuseAdding(held, inUseBySecond());
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"minFreeIPsPerNode", 40}}));
  ASSERT_FALSE(controller_->reconcileSubnet("pods"));
  ASSERT_FALSE(controller_->reconcileNode("a"));
  EXPECT_TRUE(blocksOf("a").empty()) << "three CIDRs carved, no IPBlock yet";

  ASSERT_EQ(controller_->reconcileNic("a"), std::nullopt);
  EXPECT_EQ(cloud_.nic("nic-a"), (std::vector{*ipam::Prefix::parse("10.0.0.0/28"),
                                              *ipam::Prefix::parse("10.0.0.32/28")}))
      << "the other two, in the same pass";
  ASSERT_GE(cloud_.putBodies.size(), 2u);
  EXPECT_EQ(cloud_.putBodies[0].size(), 3u) << "the first PUT carried all three";
  EXPECT_EQ(cloud_.putBodies[1].size(), 2u);
  EXPECT_FALSE(api_.get(blockPathOf("pods-10-0-0-16-28"))) << "never an IPBlock";
  for (const char* ready : {"pods-10-0-0-0-28", "pods-10-0-0-32-28"}) {
    const auto block = api_.get(blockPathOf(ready));
    ASSERT_TRUE(block) << ready;
    EXPECT_EQ(api::ipBlockFromJson(*block)->status.phase, api::BlockPhase::kReady) << ready;
  }
  EXPECT_FALSE(conditionOf(nodeObject(), api::kNodeConditionNicProgrammed))
      << "the node is not stalled: no Node condition";
  // The refused PUT, and what became of the CIDR: both on the Node, which has no block of it.
  EXPECT_EQ(eventsWith("Node", "NICProgrammingFailed"), 2u);
  bool named = false;
  for (const auto& e : events_.events) {
    if (e.kind == "Node" && e.note.find("10.0.0.16/28") != std::string::npos &&
        e.note.find("nic-x/ipConfigurations/other") != std::string::npos) {
      named = true;
    }
  }
  EXPECT_TRUE(named) << "a Node Event names the held CIDR and the other holder";

  // The node gets another block in its place, and it is programmed.
  runUntilQuiet();
  const auto replacement = api_.get(blockPathOf("pods-10-0-0-48-28"));
  ASSERT_TRUE(replacement);
  EXPECT_EQ(api::ipBlockFromJson(*replacement)->status.phase, api::BlockPhase::kReady);
  EXPECT_EQ(cloud_.nic("nic-a").size(), 3u);
  EXPECT_EQ(controller_->poolFree("pods"), 1u) << "free, but held for the other resource";
  cloud_.addNode(kVmB, "nic-b");
  api_.put(std::string(kNodesPath) + "/b", nodeJson("b", kVmB));
  addNode(*api_.get(std::string(kNodesPath) + "/b"));
  ASSERT_FALSE(controller_->reconcileNode("b"));
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("b").empty()) << "the only free block is held";

  // The other resource lets the address go and the hold ends: the CIDR is carved again, and
  // programmed.
  cloud_.refuseAdding(held, std::nullopt);
  clock_.advance(std::chrono::seconds(601));
  ASSERT_FALSE(controller_->reconcileNic("a"));  // any NIC pass ends due holds
  runUntilQuiet();
  const auto ofB = blocksOf("b");
  ASSERT_EQ(ofB.size(), 1u);
  EXPECT_EQ(ofB[0]["spec"]["cidr"], "10.0.0.16/28");
  EXPECT_EQ(api::ipBlockFromJson(ofB[0])->status.phase, api::BlockPhase::kReady);
  EXPECT_EQ(cloud_.nic("nic-b"), std::vector{held});
}

class NicProgrammingNoCloudTest : public NicProgrammingTest {
 protected:
  NicProgrammingNoCloudTest() : NicProgrammingTest(false) {}
};

// A Pending block of an earlier version: Ready, with Programmed (NoCloud) in the same write.
TEST_F(NicProgrammingNoCloudTest, ReadyCarriesProgrammedNoCloudInTheSameWrite) {
  oneBlockCreated();
  ASSERT_FALSE(controller_->reconcileNic("a"));
  const auto writes = statusWrites(kIPBlocksPath);
  ASSERT_EQ(writes.size(), 1u);
  const auto programmed = conditionOf(blockObject(), api::kConditionProgrammed);
  ASSERT_TRUE(programmed);
  EXPECT_EQ((*programmed)["status"], "True");
  EXPECT_EQ((*programmed)["reason"], "NoCloud");
  EXPECT_EQ(blockObject()["status"]["phase"], "Ready");
  EXPECT_TRUE(statusWrites(kNodesPath).empty());
}

}  // namespace
}  // namespace vnetipam::controller::testing
