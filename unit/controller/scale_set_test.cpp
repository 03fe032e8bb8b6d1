// Scale-set nodes in the controller, against the fake API server and the fake cloud: a VM of a
// Flexible scale set is programmed like any VM; a VM of a Uniform scale set is carved no block,
// causes no cloud call, and gets one terminal Node condition and one Warning Event.
#include <gtest/gtest.h>

#include "api/codec.h"
#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

// A VM of a Flexible scale set is an ordinary VM (its name is the scale set's choice).
constexpr const char* kFlexible =
    "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/"
    "flex_4f2a1b";
constexpr const char* kUniform =
    "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
    "virtualMachineScaleSets/pool/virtualMachines/3";

std::optional<json> conditionOf(const json& object, std::string_view type) {
  for (const json& c : object.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("type", "") == type) return c;
  }
  return std::nullopt;
}

class ScaleSetTest : public ControllerFixture {
 protected:
  explicit ScaleSetTest(bool withCloud = true) : ControllerFixture(withCloud) {}
  void SetUp() override {
    ControllerFixture::SetUp();
    cloud_.addNode(kFlexible, "nic-flex");
    // Were the controller to look the Uniform VM's NIC up, the fake would hand it one, and the
    // reads and PUTs below would show it.
    cloud_.addNode(kUniform, "nic-uniform");
  }
  void node(const std::string& name, const std::string& providerID) {
    api_.put(std::string(kNodesPath) + "/" + name, nodeJson(name, providerID));
    addNode(*api_.get(std::string(kNodesPath) + "/" + name));
  }
  std::size_t nodeStatusWrites(const std::string& name) const {
    std::size_t n = 0;
    const std::string path = std::string(kNodesPath) + "/" + name + "/status";
    for (const auto& r : api_.requests())
      n += r.method == "PATCH" && r.target.substr(0, r.target.find('?')) == path ? 1u : 0u;
    return n;
  }
  std::size_t warnings(const std::string& node, std::string_view reason) const {
    std::size_t n = 0;
    for (const auto& e : events_.events)
      n += e.kind == "Node" && e.name == node && e.reason == reason ? 1u : 0u;
    return n;
  }
};

TEST_F(ScaleSetTest, AFlexibleScaleSetVmIsProgrammedLikeAnyVm) {
  node("flex", kFlexible);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();

  const auto mine = blocksOf("flex");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(api::ipBlockFromJson(mine[0])->status.phase, api::BlockPhase::kReady) << mine[0].dump();
  EXPECT_EQ(mine[0]["metadata"]["annotations"]["vnetipam.io/programmed-on"], "nic-flex");
  EXPECT_EQ(cloud_.nic("nic-flex"), std::vector{*ipam::Prefix::parse("10.0.0.0/28")});
  EXPECT_EQ(nodeStatusWrites("flex"), 0u) << "a node that programs fine gets no condition";
}

TEST_F(ScaleSetTest, AUniformScaleSetVmGetsNoBlockNoCloudCallAndOneTerminalCondition) {
  node("uniform", kUniform);
  node("flex", kFlexible);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();

  EXPECT_TRUE(blocksOf("uniform").empty())
      << "no block waits Pending for a NIC that cannot take it";
  EXPECT_TRUE(cloud_.nic("nic-uniform").empty());
  ASSERT_EQ(blocksOf("flex").size(), 1u) << "the other node is served as ever";
  EXPECT_EQ(cloud_.puts, 1) << "one PUT, the Flexible VM's";
  const int reads = cloud_.reads;

  const auto got = api_.get(std::string(kNodesPath) + "/uniform");
  ASSERT_TRUE(got);
  const auto condition = conditionOf(*got, api::kNodeConditionNicProgrammed);
  ASSERT_TRUE(condition) << got->dump();
  EXPECT_EQ((*condition)["status"], "False");
  EXPECT_EQ((*condition)["reason"], "UniformScaleSetUnsupported");
  const std::string message = (*condition)["message"];
  EXPECT_NE(message.find("Uniform scale set pool"), std::string::npos) << message;
  EXPECT_NE(message.find("Flexible orchestration"), std::string::npos) << message;
  EXPECT_NE(message.find("standalone VMs"), std::string::npos) << message;
  EXPECT_EQ(warnings("uniform", "UniformScaleSetUnsupported"), 1u);

  // Terminal, not retried: every key queued again (a new leader, a resync) writes nothing more,
  // emits nothing more and still asks the cloud nothing about the node.
  const std::size_t writes = nodeStatusWrites("uniform");
  EXPECT_EQ(writes, 1u);
  controller_->enqueueAll();
  runUntilQuiet();
  controller_->applyNodeEvent(kube::WatchEventType::kModified,
                              *api_.get(std::string(kNodesPath) + "/uniform"));
  runUntilQuiet();
  EXPECT_EQ(nodeStatusWrites("uniform"), writes);
  EXPECT_EQ(warnings("uniform", "UniformScaleSetUnsupported"), 1u);
  EXPECT_EQ(cloud_.puts, 1);
  EXPECT_EQ(cloud_.reads, reads + 1) << "only the Flexible VM's NIC was read again";
  EXPECT_EQ(controller_->poolFree("pods"), 15u);
}

TEST_F(ScaleSetTest, AUniformNodeNoPodSubnetSelectsGetsNoCondition) {
  node("uniform", kUniform);
  addSubnet(subnetJson(
      "pods", {{"cidr", "10.0.0.0/24"}, {"nodeSelector", {{"matchLabels", {{"pool", "x"}}}}}}));
  runUntilQuiet();
  EXPECT_EQ(nodeStatusWrites("uniform"), 0u) << "it asked for nothing: nothing to refuse";
  EXPECT_TRUE(events_.events.empty());
  EXPECT_EQ(cloud_.reads, 0);
}

TEST_F(ScaleSetTest, ABlockAUniformNodeAlreadyHasIsReleasedWithoutACloudCall) {
  // Made by a controller that carved for such nodes: Pending, never programmable.
  node("uniform", kUniform);
  json block = blockJson("pods", "10.0.0.0/28", "uniform", "pods-10-0-0-0-28");
  block["metadata"]["finalizers"] =
      json::array({"vnetipam.io/agent-drain", "vnetipam.io/nic-release"});
  block["metadata"]["annotations"] = {{"vnetipam.io/provider-id", kUniform}};
  api_.put(blockPathOf("pods-10-0-0-0-28"), block);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();

  auto mine = blocksOf("uniform");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_TRUE(mine[0]["metadata"].contains("deletionTimestamp")) << mine[0].dump();
  EXPECT_EQ(mine[0]["metadata"]["finalizers"], json::array({"vnetipam.io/agent-drain"}))
      << "no NIC holds it: only the agent's word is left to wait for";
  // The agent gives it up; the block goes and its CIDR is back in the pool.
  dropAgentDrain("pods-10-0-0-0-28");
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("uniform").empty());
  EXPECT_EQ(controller_->poolFree("pods"), 16u);
  EXPECT_EQ(cloud_.reads, 0);
  EXPECT_EQ(cloud_.puts, 0);
  EXPECT_EQ(warnings("uniform", "UniformScaleSetUnsupported"), 1u);
}

class ScaleSetWithoutCloudTest : public ScaleSetTest {
 protected:
  ScaleSetWithoutCloudTest() : ScaleSetTest(false) {}
};

TEST_F(ScaleSetWithoutCloudTest, AUniformNodeIsServedWhenThereIsNoNicToProgram) {
  node("uniform", kUniform);
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/24"}}));
  runUntilQuiet();
  const auto mine = blocksOf("uniform");
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(api::ipBlockFromJson(mine[0])->status.phase, api::BlockPhase::kReady);
  EXPECT_EQ(nodeStatusWrites("uniform"), 0u);
}

}  // namespace
}  // namespace vnetipam::controller::testing
