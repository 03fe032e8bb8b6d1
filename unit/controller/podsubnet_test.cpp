// The PodSubnet reconciler against the fake cloud: what a PodSubnet carved from an Azure subnet
// with more than one address prefix carves, and what its status says about the rest. And a
// dual-stack node's blocks (an IPv4 and an IPv6 PodSubnet, --cloud=none) counted per family.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "api/codec.h"
#include "controller/subnet_usage.h"
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
  // Nodes named as their VMs (vm-a: kVm), each with its NIC nic-<vm>.
  void addAzureNodes(std::initializer_list<std::string> vms) {
    for (const std::string& vm : vms) {
      const std::string providerID = std::string(kVm).substr(0, std::string(kVm).size() - 4) + vm;
      cloud_.addNode(providerID, "nic-" + vm);
      addNode(nodeJson(vm, providerID));
    }
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

// Every IPv4 prefix of the Azure subnet that holds a block is a range of the pool: counted as one,
// listed in status.cidrs; a prefix smaller than a block is named in the Ready condition.
TEST_F(PodSubnetTest, EveryIPv4PrefixOfTheAzureSubnetIsCarved) {
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26"), prefix("10.2.0.0/26"), prefix("10.3.0.0/29"),
                               prefix("fd00:1::/64")});
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();
  const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  ASSERT_TRUE(subnet);
  const json status = (*subnet)["status"];
  EXPECT_EQ(status["cidr"], "10.1.0.0/26");
  EXPECT_EQ(status["cidrs"], (json{"10.1.0.0/26", "10.2.0.0/26"}));
  EXPECT_EQ(status["totalBlocks"], 4) << "Azure keeps the first four and the last of each prefix";
  const std::string message = readyCondition("pods")["message"];
  EXPECT_TRUE(message.starts_with("10.1.0.0/26, 10.2.0.0/26 carved into 4 usable /28 blocks"))
      << message;
  EXPECT_NE(message.find("the Azure subnet's IPv4 prefix 10.3.0.0/29 is not carved: it is smaller "
                         "than one /28 block"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("IPv6 prefix fd00:1::/64 is not carved"), std::string::npos) << message;

  // Nodes get blocks of both ranges, the first range first.
  addAzureNodes({"vm-a", "vm-b", "vm-c"});
  runUntilQuiet();
  EXPECT_EQ(blocksOf("vm-a")[0]["spec"]["cidr"], "10.1.0.16/28");
  EXPECT_EQ(blocksOf("vm-b")[0]["spec"]["cidr"], "10.1.0.32/28");
  EXPECT_EQ(blocksOf("vm-c")[0]["spec"]["cidr"], "10.2.0.16/28");
  EXPECT_EQ(cloud_.nic("nic-vm-c"), std::vector{prefix("10.2.0.16/28")});
}

// An address prefix added to the Azure subnet while the pool is in use (the usage poller reads
// the subnet's prefixes) is carved at once: a node short of a block gets one there, and the
// PodSubnet is no longer exhausted.
TEST_F(PodSubnetTest, APrefixAddedToTheAzureSubnetIsCarvedLive) {
  SubnetUsageStore store;
  controller_->setSubnetUsageStore(&store);
  SubnetUsagePoller poller(
      cloud_, store,
      {.subnetIds = [&] { return controller_->azureSubnetIds(); },
       .changed = [&](const std::string& id) { controller_->subnetUsageChanged(id); }},
      std::chrono::seconds(3600));
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26")});  // 2 usable blocks
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  addAzureNodes({"vm-a", "vm-b", "vm-c"});
  runUntilQuiet();
  (void)poller.pollOnce();
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("vm-c").empty());
  const auto exhausted = [&] {
    const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
    for (const json& c : (*subnet)["status"]["conditions"]) {
      if (c["type"] == "Exhausted") return c["status"] == "True";
    }
    return false;
  };
  EXPECT_TRUE(exhausted());

  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26"), prefix("10.9.0.0/26")});
  (void)poller.pollOnce();
  runUntilQuiet();
  ASSERT_EQ(blocksOf("vm-c").size(), 1u);
  EXPECT_EQ(blocksOf("vm-c")[0]["spec"]["cidr"], "10.9.0.16/28");
  EXPECT_EQ(api::ipBlockFromJson(blocksOf("vm-c")[0])->status.phase, api::BlockPhase::kReady);
  EXPECT_EQ(cloud_.nic("nic-vm-c"), std::vector{prefix("10.9.0.16/28")});
  const auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  EXPECT_EQ((*subnet)["status"]["cidrs"], (json{"10.1.0.0/26", "10.9.0.0/26"}));
  EXPECT_EQ((*subnet)["status"]["totalBlocks"], 4);
  EXPECT_FALSE(exhausted());

  // The prefix leaves the Azure subnet again (Azure allows that only while no ipConfiguration is
  // in it; the fake does not check): the range is retired, vm-c's block there is released and no
  // block is carved there again.
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26")});
  (void)poller.pollOnce();
  runUntilQuiet();
  ASSERT_EQ(blocksOf("vm-c").size(), 1u);
  EXPECT_TRUE(blocksOf("vm-c")[0]["metadata"].contains("deletionTimestamp"))
      << "released (ReservedRange), kept by agent-drain while its pods hold addresses";
  dropAgentDrain("pods-10-9-0-16-28");  // the node's agent lets go: no pod holds an address there
  runUntilQuiet();
  EXPECT_TRUE(blocksOf("vm-c").empty());
  EXPECT_TRUE(cloud_.nic("nic-vm-c").empty());
  const auto shrunk = api_.get(std::string(kPodSubnetsPath) + "/pods");
  EXPECT_EQ((*shrunk)["status"]["cidrs"], (json{"10.1.0.0/26"}));
  EXPECT_EQ((*shrunk)["status"]["totalBlocks"], 2);
  EXPECT_NE(readyCondition("pods")["message"].get<std::string>().find(
                "prefix 10.9.0.0/26 is not carved: it is no longer one of the Azure subnet's "
                "prefixes"),
            std::string::npos)
      << readyCondition("pods")["message"];
  EXPECT_TRUE(exhausted());
}

// A read of the Azure subnet that started before the carve's own (a poll in flight while the
// subnet changed) is not taken: it would retire the prefix the carve just read.
TEST_F(PodSubnetTest, APollOlderThanTheCarveChangesNothing) {
  SubnetUsageStore store;
  controller_->setSubnetUsageStore(&store);
  store.setPrefixes(kSubnetId, {prefix("10.1.0.0/26")}, store.beginRead());
  cloud_.setSubnet(kSubnetId, {prefix("10.1.0.0/26"), prefix("10.9.0.0/26")});
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();
  auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  EXPECT_EQ((*subnet)["status"]["cidrs"], (json{"10.1.0.0/26", "10.9.0.0/26"}));
  EXPECT_EQ((*subnet)["status"]["totalBlocks"], 4);

  // A read that started after the carve's is taken.
  store.setPrefixes(kSubnetId, {prefix("10.1.0.0/26")}, store.beginRead());
  controller_->subnetUsageChanged(kSubnetId);
  runUntilQuiet();
  subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
  EXPECT_EQ((*subnet)["status"]["cidrs"], (json{"10.1.0.0/26"}));
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
    controller_ =
        std::make_unique<Controller>(client_, nullptr, queue_, &events_, &metrics_, config, clock_);
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

// spec.reservedCIDRs edited on a carved PodSubnet (--cloud=none, spec.cidr 10.0.0.0/26: four /28s).
class ReservedEditTest : public ControllerFixture {
 protected:
  void editReserved(json reserved, int generation) {
    json subnet = subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"reservedCIDRs", reserved}});
    subnet["metadata"]["generation"] = generation;
    subnet["metadata"]["resourceVersion"] = std::to_string(generation);
    api_.put(std::string(kPodSubnetsPath) + "/pods", subnet);
    controller_->applySubnetEvent(kube::WatchEventType::kModified, subnet);
  }
  json status() { return (*api_.get(std::string(kPodSubnetsPath) + "/pods"))["status"]; }
  std::string readyMessage() {
    const json s = status();
    for (const json& c : s["conditions"]) {
      if (c["type"] == "Ready") return c["message"];
    }
    return "";
  }
  bool deleting(const std::string& name) {
    const auto block = api_.get(blockPathOf(name));
    return block && (*block)["metadata"].contains("deletionTimestamp");
  }
};

// A range reserved live is never carved again; the block the pool held there takes no new pods (it
// is released at once, the ordinary way, so the agent allocates nothing more from it and keeps
// its pods' addresses until agent-drain) and its node gets a block outside the range; the status
// counts and names it. Once gone its CIDR stays reserved; a range no longer reserved is free.
TEST_F(ReservedEditTest, AReservedRangeIsAppliedLiveAndItsBlockReleasedTheOrdinaryWay) {
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}}));
  runUntilQuiet();
  addNode(nodeJson("b"));
  runUntilQuiet();
  ASSERT_EQ(blocksOf("a").size(), 1u);
  ASSERT_EQ(blocksOf("a")[0]["spec"]["cidr"], "10.0.0.0/28");
  ASSERT_EQ(blocksOf("b")[0]["spec"]["cidr"], "10.0.0.16/28");
  api_.patchStatus(blockPathOf("pods-10-0-0-0-28"), {{"used", 3}});
  ASSERT_EQ(controller_->poolFree("pods"), 2u);

  editReserved({"10.0.0.0/28", "10.0.0.32/28"}, 2);
  runUntilQuiet();
  EXPECT_TRUE(deleting("pods-10-0-0-0-28")) << "released at once, kept by agent-drain";
  EXPECT_FALSE(deleting("pods-10-0-0-16-28"));
  std::vector<std::string> cidrs;
  for (const json& b : blocksOf("a"))
    cidrs.push_back(b["spec"]["cidr"]);
  EXPECT_EQ(cidrs, (std::vector<std::string>{"10.0.0.0/28", "10.0.0.48/28"}))
      << "the node's new block is outside both reserved ranges";
  EXPECT_EQ(controller_->poolFree("pods"), 0u);
  EXPECT_EQ(controller_->block("pods-10-0-0-0-28")->trust, Trust::kAccepted);
  EXPECT_EQ(status()["totalBlocks"], 2);
  EXPECT_EQ(status()["allocatedBlocks"], 2);
  EXPECT_NE(readyMessage().find("1 block(s) in spec.reservedCIDRs take no new pods and are "
                                "released as their pods go: pods-10-0-0-0-28"),
            std::string::npos)
      << readyMessage();

  // The agent gives the block up once its pods are gone: the object goes, the CIDR stays reserved.
  dropAgentDrain("pods-10-0-0-0-28");
  runUntilQuiet();
  EXPECT_FALSE(api_.get(blockPathOf("pods-10-0-0-0-28")));
  EXPECT_EQ(controller_->poolFree("pods"), 0u);
  EXPECT_EQ(readyMessage(), "10.0.0.0/26 carved into 2 usable /28 blocks (2 excluded)");

  // Unreserved: both ranges are free again.
  editReserved(json::array(), 3);
  runUntilQuiet();
  EXPECT_EQ(controller_->poolFree("pods"), 2u);
  EXPECT_EQ(status()["totalBlocks"], 4);

  // Reserved again over a block in use: .16 of node b goes too, and b gets .0 instead.
  editReserved({"10.0.0.16/28"}, 4);
  runUntilQuiet();
  EXPECT_TRUE(deleting("pods-10-0-0-16-28"));
  ASSERT_EQ(blocksOf("b").size(), 2u);
  EXPECT_EQ(blocksOf("b")[0]["spec"]["cidr"], "10.0.0.0/28");
}

// A controller that starts after the edit does what a running one does: a block in a reserved
// range (reserved while the controller was down, or while it was draining) is the pool's and is
// released, not refused: refused, its prefix would be an unowned one and its pods' addresses
// would no longer be the node's.
TEST_F(ReservedEditTest, AtStartABlockInAReservedRangeIsReleasedLikeALiveEdit) {
  json old = blockJson("pods", "10.0.0.0/28", "a", "pods-10-0-0-0-28");
  old["metadata"]["finalizers"] = {"vnetipam.io/agent-drain"};
  old["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
  old["status"] = {{"phase", "Ready"}, {"capacity", 16}, {"used", 5}};
  api_.put(blockPathOf("pods-10-0-0-0-28"), old);
  syncBlocks();
  addNode(nodeJson("a"));
  addSubnet(subnetJson("pods", {{"cidr", "10.0.0.0/26"}, {"reservedCIDRs", {"10.0.0.0/27"}}}));
  runUntilQuiet();

  EXPECT_EQ(controller_->block("pods-10-0-0-0-28")->trust, Trust::kAccepted);
  EXPECT_TRUE(deleting("pods-10-0-0-0-28"));
  const json kept = *api_.get(blockPathOf("pods-10-0-0-0-28"));
  EXPECT_FALSE(kept["status"].contains("conditions")) << "no Invalid condition: " << kept.dump();
  EXPECT_FALSE(events_.has("ReservedRange")) << "no refusal event";
  ASSERT_EQ(blocksOf("a").size(), 2u);
  EXPECT_EQ(blocksOf("a")[1]["spec"]["cidr"], "10.0.0.32/28");
  EXPECT_EQ(controller_->poolFree("pods"), 1u);

  // A block made in the reserved range after the carve is refused, as ever.
  json hostile = blockJson("pods", "10.0.0.16/28", "a", "pods-10-0-0-16-28");
  api_.put(blockPathOf("pods-10-0-0-16-28"), hostile);
  runUntilQuiet();
  EXPECT_EQ(controller_->block("pods-10-0-0-16-28")->trust, Trust::kInvalid);
  EXPECT_FALSE(deleting("pods-10-0-0-16-28"));
}

}  // namespace
}  // namespace vnetipam::controller::testing
