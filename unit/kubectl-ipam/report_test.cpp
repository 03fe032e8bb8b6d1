// kubectl-ipam's reports on hand-built snapshots: each check finding and each `why` cause, with
// the state that triggers it and a near miss that must not.
#include "kubectl-ipam/report.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace vnetipam::kubectl_ipam {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;  // 2027-01-15T08:00:00Z

api::Condition cond(std::string_view type, std::string status, std::string reason = {},
                    std::string message = {}) {
  return {.type = std::string(type),
          .status = std::move(status),
          .reason = std::move(reason),
          .message = std::move(message)};
}

api::IPBlock block(std::string name, std::string node, std::string cidr,
                   api::BlockPhase phase = api::BlockPhase::kReady, std::int64_t used = 0,
                   std::string subnet = "pool") {
  api::IPBlock b;
  b.metadata.name = std::move(name);
  b.metadata.creationTimestamp = "2027-01-15T07:00:00Z";
  b.spec = {.podSubnet = std::move(subnet), .cidr = std::move(cidr), .nodeName = std::move(node)};
  b.status.phase = phase;
  b.status.used = used;
  b.status.capacity = 16;
  return b;
}

PodInfo pod(std::string name, std::string node, std::vector<std::string> ips,
            std::string phase = "Running", std::string ns = "default") {
  return {.ns = std::move(ns),
          .name = std::move(name),
          .nodeName = std::move(node),
          .phase = std::move(phase),
          .ips = std::move(ips),
          .startTime = "2027-01-15T07:30:00Z",
          .ready = true};
}

NodeInfo node(std::string name, std::map<std::string, std::string> labels = {{"pool", "a"}}) {
  return {.name = std::move(name), .labels = std::move(labels)};
}

SubnetInfo subnet(std::string name = "pool",
                  std::optional<api::LabelSelector> selector = api::LabelSelector{
                      .matchLabels = {{"pool", "a"}}}) {
  return {.name = std::move(name),
          .cidr = "10.0.0.0/24",
          .nodeSelector = std::move(selector),
          .totalBlocks = 16,
          .allocatedBlocks = 2};
}

PodInfo agent(std::string node, bool ready = true) {
  PodInfo a = pod("vnet-ipam-agent-" + node, node, {"10.1.0.4"}, "Running", "kube-system");
  a.hostNetwork = true;
  a.ready = ready;
  return a;
}

// Two nodes, one Ready block each, pods inside their own node's block, used matching.
Snapshot clean() {
  Snapshot s;
  s.now = kNow;
  s.subnets = {subnet()};
  s.nodes = {node("n1"), node("n2")};
  s.blocks = {block("b1", "n1", "10.0.0.0/28", api::BlockPhase::kReady, 2),
              block("b2", "n2", "10.0.0.16/28", api::BlockPhase::kReady, 1)};
  s.pods = {pod("p1", "n1", {"10.0.0.4"}), pod("p2", "n1", {"10.0.0.5"}),
            pod("p3", "n2", {"10.0.0.20"})};
  s.agentPods = {agent("n1"), agent("n2")};
  return s;
}

std::vector<std::string> ids(const CheckReport& r) {
  std::vector<std::string> out;
  for (const auto& f : r.findings)
    out.push_back(f.check);
  return out;
}

std::vector<std::string> causes(const WhyReport& r) {
  std::vector<std::string> out;
  for (const auto& c : r.causes)
    out.push_back(c.cause);
  return out;
}

// ---- show ----

TEST(ShowPools, CountsBlocksAddressesAndNodes) {
  Snapshot s = clean();
  s.blocks.push_back(block("b3", "n2", "10.0.0.32/28", api::BlockPhase::kPending));
  const auto pools = showPools(s);
  ASSERT_EQ(pools.size(), 1u);
  const auto& p = pools[0];
  EXPECT_EQ(p.name, "pool");
  EXPECT_EQ(p.cidr, "10.0.0.0/24");
  EXPECT_EQ(p.statusTotalBlocks, 16);
  EXPECT_EQ(p.statusAllocatedBlocks, 2);
  EXPECT_EQ(p.blocks, 3);
  EXPECT_EQ(p.readyBlocks, 2);
  EXPECT_EQ(p.capacity, 48);
  EXPECT_EQ(p.used, 3);
  EXPECT_EQ(p.free, 45);
  EXPECT_EQ(p.pods, 3);
  EXPECT_EQ(p.nodes, (std::vector<std::string>{"n1", "n2"}));
  EXPECT_FALSE(p.exhausted);

  const std::string table = renderPools(pools);
  EXPECT_NE(table.find("PODSUBNET  CIDR"), std::string::npos) << table;
  EXPECT_NE(table.find("n1,n2"), std::string::npos) << table;
  const auto j = toJson(pools);
  EXPECT_EQ(j["podSubnets"][0]["free"], 45);
  EXPECT_EQ(j["podSubnets"][0]["nodes"][1], "n2");
}

TEST(ShowPools, ShowsTheAddressesOthersHoldWhenKnown) {
  Snapshot s = clean();
  const auto unknown = showPools(s);
  EXPECT_EQ(unknown[0].foreign, std::nullopt);
  EXPECT_NE(renderPools(unknown).find("FREE  FOREIGN  PODS"), std::string::npos)
      << renderPools(unknown);
  EXPECT_TRUE(toJson(unknown)["podSubnets"][0]["foreignAddresses"].is_null());
  s.subnets[0].foreignAddresses = 7;
  const auto known = showPools(s);
  EXPECT_EQ(known[0].foreign, 7);
  EXPECT_EQ(toJson(known)["podSubnets"][0]["foreignAddresses"], 7);
  // CAPACITY USED FREE FOREIGN: 32 addresses in two blocks, 3 used, 29 free, 7 held by others.
  EXPECT_NE(renderPools(known).find(" 29    7 "), std::string::npos) << renderPools(known);
}

TEST(ShowPools, MarksAnExhaustedPool) {
  Snapshot s = clean();
  s.subnets[0].conditions = {cond(api::kConditionExhausted, "True", "NoFreeBlock")};
  EXPECT_TRUE(showPools(s)[0].exhausted);
  EXPECT_NE(renderPools(showPools(s)).find("pool (Exhausted)"), std::string::npos);
}

TEST(ShowNode, BlocksWithHeadroomAndNotesAndAllocationsMappedToBlocks) {
  Snapshot s = clean();
  s.blocks[0].status.conditions = {
      cond(api::kConditionProgrammed, "True"),
      cond(api::kConditionDataplaneSynced, "False", "Drift", "10.0.0.5 has no host route")};
  s.blocks[0].status.nic = api::NicRef{.id = "/nic/n1", .ipConfiguration = "ipconfig1"};
  s.pods.push_back(pod("stray", "n1", {"10.9.9.9"}));
  PodInfo host = pod("host", "n1", {"10.1.0.4"});
  host.hostNetwork = true;
  s.pods.push_back(host);
  const auto r = showNode(s, "n1");
  EXPECT_TRUE(r.nodeExists);
  ASSERT_EQ(r.blocks.size(), 1u);
  EXPECT_EQ(r.blocks[0].name, "b1");
  EXPECT_EQ(r.blocks[0].phase, "Ready");
  EXPECT_EQ(r.blocks[0].headroom, 14);
  EXPECT_EQ(r.blocks[0].pods, 2);  // p1 and p2; stray lies outside
  EXPECT_EQ(r.blocks[0].nic, "/nic/n1");
  ASSERT_EQ(r.blocks[0].notes.size(), 1u);  // Programmed=True is healthy: no note
  EXPECT_EQ(r.blocks[0].notes[0], "DataplaneSynced=False (Drift): 10.0.0.5 has no host route");
  ASSERT_EQ(r.allocations.size(), 3u);  // hostNetwork left out
  EXPECT_EQ(r.allocations[0].name, "p1");
  EXPECT_EQ(r.allocations[0].block, "b1");
  EXPECT_EQ(r.allocations[0].since, "2027-01-15T07:30:00Z");
  EXPECT_EQ(r.allocations[2].name, "stray");
  EXPECT_EQ(r.allocations[2].block, "");
  const std::string text = renderNode(r);
  EXPECT_NE(text.find("(none)"), std::string::npos) << text;
  EXPECT_EQ(toJson(r)["allocations"][0]["ips"][0], "10.0.0.4");
}

TEST(ShowNode, ANodeThatDoesNotExistAndItsNicCondition) {
  Snapshot s = clean();
  s.nodes[0].conditions = {
      cond(api::kNodeConditionNicProgrammed, "False", "QuotaExceeded", "too many prefixes")};
  EXPECT_EQ(
      showNode(s, "n1").nodeNotes,
      (std::vector<std::string>{"VnetIpamNICProgrammed=False (QuotaExceeded): too many prefixes"}));
  const auto gone = showNode(s, "n9");
  EXPECT_FALSE(gone.nodeExists);
  EXPECT_TRUE(gone.blocks.empty());
  EXPECT_NE(renderNode(gone).find("does not exist"), std::string::npos);
}

// ---- check ----

TEST(Check, ACleanClusterHasNoFindings) {
  const auto r = check(clean());
  EXPECT_TRUE(r.clean()) << renderCheck(r);
  EXPECT_EQ(r.podsChecked, 3);
  EXPECT_EQ(r.blocksChecked, 2);
  EXPECT_EQ(r.nodesChecked, 2);
  EXPECT_NE(renderCheck(r).find("No problems found."), std::string::npos);
  EXPECT_EQ(toJson(r)["clean"], true);
}

// Another pool's problems (here a block of a node that is gone) are not this pool's: check
// --podsubnet reports only the named PodSubnet.
TEST(Check, OfOnePodSubnetLeavesOtherPoolsOut) {
  Snapshot s = clean();
  s.subnets.push_back(subnet("other", api::LabelSelector{.matchLabels = {{"pool", "b"}}}));
  s.blocks.push_back(block("orphan", "gone", "10.9.0.0/28", api::BlockPhase::kReady, 0, "other"));
  EXPECT_EQ(ids(check(s)), (std::vector<std::string>{"block-orphaned"}));
  const auto only = onlyPodSubnet(s, "pool");
  ASSERT_TRUE(only);
  const auto r = check(*only);
  EXPECT_TRUE(r.clean()) << renderCheck(r);
  EXPECT_EQ(r.blocksChecked, 2);
}

TEST(Check, PodAddressOutsideTheBlocksOfItsNode) {
  Snapshot s = clean();
  s.pods.push_back(pod("lost", "n1", {"10.7.0.1"}));    // in no block
  s.pods.push_back(pod("wrong", "n1", {"10.0.0.21"}));  // in n2's block
  s.blocks[1].status.used = 2;
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"pod-ip-outside-blocks", "pod-ip-outside-blocks"}))
      << renderCheck(r);
  EXPECT_EQ(r.findings[0].object, "Pod default/lost");
  EXPECT_NE(r.findings[0].message.find("no block holds it"), std::string::npos);
  EXPECT_EQ(r.findings[1].object, "Pod default/wrong");
  EXPECT_NE(r.findings[1].message.find("block b2 of node n2"), std::string::npos);
}

TEST(Check, PodsOnNodesVnetIpamDoesNotServeAreSkipped) {
  Snapshot s = clean();
  s.nodes.push_back(node("other", {{"pool", "calico"}}));
  s.pods.push_back(pod("elsewhere", "other", {"192.168.7.7"}));
  auto r = check(s);
  EXPECT_TRUE(r.clean()) << renderCheck(r);
  EXPECT_EQ(r.podsSkipped, 1);
  EXPECT_NE(renderCheck(r).find("Skipped 1 pod(s)"), std::string::npos);
  // A node holding a block is served even when no PodSubnet selects it (any more).
  s.blocks.push_back(block("b9", "other", "10.0.0.96/28", api::BlockPhase::kReady, 1));
  r = check(s);
  EXPECT_EQ(ids(r), (std::vector<std::string>{"pod-ip-outside-blocks", "used-mismatch"}))
      << renderCheck(r);
}

TEST(Check, HostNetworkAndTerminatedPodsAreNotChecked) {
  Snapshot s = clean();
  PodInfo host = pod("host", "n1", {"192.168.0.1"});
  host.hostNetwork = true;
  s.pods.push_back(host);
  s.pods.push_back(pod("done", "n1", {"10.7.0.1"}, "Succeeded"));
  s.pods.push_back(pod("dup-done", "n1", {"10.0.0.4"}, "Failed"));
  EXPECT_TRUE(check(s).clean()) << renderCheck(check(s));
}

TEST(Check, PodAddressInABlockThatIsNotReadyOrInvalid) {
  Snapshot s = clean();
  s.blocks[0].status.phase = api::BlockPhase::kPending;
  s.blocks[0].status.conditions = {cond(api::kConditionProgrammed, "True")};
  s.blocks[1].status.conditions = {cond(api::kConditionInvalid, "True", "Overlap", "overlaps b1")};
  const auto r = check(s);
  const auto got = ids(r);
  EXPECT_EQ(std::count(got.begin(), got.end(), "pod-ip-in-unusable-block"), 3) << renderCheck(r);
  EXPECT_EQ(std::count(got.begin(), got.end(), "block-invalid"), 1) << renderCheck(r);
}

TEST(Check, OneAddressOnTwoPods) {
  Snapshot s = clean();
  s.pods.push_back(pod("twin", "n1", {"10.0.0.4"}, "Pending"));
  s.blocks[0].status.used = 3;
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"duplicate-ip"})) << renderCheck(r);
  EXPECT_EQ(r.findings[0].object, "Address 10.0.0.4");
  EXPECT_EQ(r.findings[0].message, "held by 2 pods: default/p1, default/twin");
}

TEST(Check, ProgrammedFalseIsReportedWithItsReason) {
  Snapshot s = clean();
  s.blocks[1].status.conditions = {
      cond(api::kConditionProgrammed, "False", "PrivateIPAddressLimitReached", "limit 256")};
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"block-not-programmed"})) << renderCheck(r);
  EXPECT_NE(r.findings[0].message.find("PrivateIPAddressLimitReached): limit 256"),
            std::string::npos);
}

TEST(Check, WithoutProgrammedAPendingBlockPastTheGraceIsReportedAYoungOneIsNot) {
  Snapshot s = clean();
  s.blocks.push_back(block("young", "n2", "10.0.0.32/28", api::BlockPhase::kPending));
  s.blocks.back().metadata.creationTimestamp = "2027-01-15T07:59:30Z";  // 30 s old
  EXPECT_TRUE(check(s).clean()) << renderCheck(check(s));
  s.blocks.back().metadata.creationTimestamp = "2027-01-15T07:57:00Z";  // 180 s old
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"block-not-programmed"})) << renderCheck(r);
  EXPECT_EQ(r.findings[0].message, "Pending for 180s (Programmed not reported)");
}

TEST(Check, WithoutProgrammedAReadyBlockWithoutANicIsReportedWhenOthersHaveOne) {
  Snapshot s = clean();
  EXPECT_TRUE(check(s).clean());  // no block has a NIC: a cluster without a cloud
  s.blocks[0].status.nic = api::NicRef{.id = "/nic/n1"};
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"block-not-programmed"})) << renderCheck(r);
  EXPECT_EQ(r.findings[0].object, "IPBlock b2");
  s.blocks[1].status.conditions = {cond(api::kConditionProgrammed, "True")};
  EXPECT_TRUE(check(s).clean()) << "a reported Programmed=True wins over the fallback";
}

TEST(Check, NodeNicConditionFalse) {
  Snapshot s = clean();
  s.nodes[1].conditions = {cond(api::kNodeConditionNicProgrammed, "False", "Throttled", "429")};
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"nic-programming-failed"})) << renderCheck(r);
  EXPECT_EQ(r.findings[0].object, "Node n2");
}

TEST(Check, UsedAboveThePodsIsASuspectedLeak) {
  Snapshot s = clean();
  s.blocks[1].status.used = 4;  // one pod in it
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"used-mismatch"})) << renderCheck(r);
  EXPECT_NE(r.findings[0].message.find("3 suspected leaked"), std::string::npos);
}

TEST(Check, UsedBelowTheRunningPodsIsAnUndercountPendingPodsAreTolerated) {
  Snapshot s = clean();
  s.pods.push_back(pod("starting", "n2", {"10.0.0.21"}, "Pending"));
  EXPECT_TRUE(check(s).clean()) << "used 1, one Running and one Pending pod: in range";
  s.blocks[1].status.used = 2;
  EXPECT_TRUE(check(s).clean()) << "used 2 counts the Pending one too";
  s.blocks[1].status.used = 0;
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"used-mismatch"})) << renderCheck(r);
  EXPECT_NE(r.findings[0].message.find("undercount"), std::string::npos);
}

TEST(Check, DataplaneDriftInvalidAndOrphanedBlocks) {
  Snapshot s = clean();
  s.blocks[0].status.conditions = {cond(api::kConditionDataplaneSynced, "False", "Drift", "x")};
  s.blocks.push_back(block("ghost", "gone", "10.0.0.48/28"));
  s.blocks.push_back(block("bad", "n1", "10.0.0.64/28"));
  s.blocks.back().status.conditions = {cond(api::kConditionInvalid, "True", "OutsideSubnet")};
  const auto r = check(s);
  EXPECT_EQ(ids(r),
            (std::vector<std::string>{"block-invalid", "block-orphaned", "dataplane-drift"}))
      << renderCheck(r);
  EXPECT_EQ(r.findings[1].message, "its node gone does not exist");
  const auto j = toJson(r);
  EXPECT_EQ(j["clean"], false);
  EXPECT_EQ(j["findings"][0]["check"], "block-invalid");
  EXPECT_EQ(j["findings"][0]["object"], "IPBlock bad");
  const std::string text = renderCheck(r);
  EXPECT_NE(text.find("3 problem(s):"), std::string::npos) << text;
}

// clean() with the allocations its agents publish: one per pod address, the pods' UIDs.
Snapshot published() {
  Snapshot s = clean();
  for (auto& p : s.pods)
    p.uid = "uid-" + p.name;
  auto allocation = [](std::string address, std::string id, std::string pod) {
    return api::IPAllocation{.address = std::move(address),
                             .owner = {.containerID = std::move(id), .ifName = "eth0"},
                             .podNamespace = "default",
                             .podName = pod,
                             .podUID = "uid-" + pod};
  };
  s.blocks[0].status.allocations = {allocation("10.0.0.4", "c1", "p1"),
                                    allocation("10.0.0.5", "c2", "p2")};
  s.blocks[1].status.allocations = {allocation("10.0.0.20", "c3", "p3")};
  return s;
}

TEST(Check, PublishedAllocationsThatMatchThePodsAreClean) {
  const auto r = check(published());
  EXPECT_TRUE(r.clean()) << renderCheck(r);
}

TEST(Check, AnAllocationWhosePodIsGoneOrRecreatedIsALeakWithWhatReleaseNeeds) {
  Snapshot s = published();
  s.pods.erase(s.pods.begin());  // p1 is gone; its 10.0.0.4 stays allocated
  s.pods[1].uid = "uid-p3-new";  // p3 was recreated under its name
  s.pods[1].ips = {"10.0.0.21"};
  s.blocks[1].status.allocations.push_back({.address = "10.0.0.21",
                                            .owner = {.containerID = "c4", .ifName = "eth0"},
                                            .podNamespace = "default",
                                            .podName = "p3",
                                            .podUID = "uid-p3-new"});
  s.blocks[1].status.used = 2;
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"allocation-pod-gone", "allocation-pod-gone",
                                              "used-mismatch", "used-mismatch"}))
      << renderCheck(r);
  ASSERT_TRUE(r.findings[0].leak.has_value());
  EXPECT_EQ(*r.findings[0].leak, (LeakedAllocation{.block = "b1",
                                                   .node = "n1",
                                                   .address = "10.0.0.4",
                                                   .owner = {.containerID = "c1", .ifName = "eth0"},
                                                   .podNamespace = "default",
                                                   .podName = "p1",
                                                   .podUID = "uid-p1"}));
  EXPECT_NE(r.findings[1].message.find("recreated"), std::string::npos) << r.findings[1].message;
  EXPECT_EQ(r.findings[1].leak->address, "10.0.0.20");
  const auto j = toJson(r);
  EXPECT_EQ(j["findings"][0]["allocation"], (nlohmann::json{{"block", "b1"},
                                                            {"node", "n1"},
                                                            {"address", "10.0.0.4"},
                                                            {"containerID", "c1"},
                                                            {"ifName", "eth0"},
                                                            {"podNamespace", "default"},
                                                            {"podName", "p1"},
                                                            {"podUID", "uid-p1"}}));
  EXPECT_FALSE(j["findings"][2].contains("allocation")) << "used-mismatch names no allocation";
}

TEST(Check, APodOfThatNameOnAnotherNodeIsGoneForTheAgent) {
  Snapshot s = published();
  s.pods[0].nodeName = "n2";
  s.pods[0].ips = {"10.0.0.22"};
  s.blocks[1].status.allocations.push_back({.address = "10.0.0.22",
                                            .owner = {.containerID = "c9", .ifName = "eth0"},
                                            .podNamespace = "default",
                                            .podName = "p1",
                                            .podUID = "uid-p1"});
  s.blocks[1].status.used = 2;
  const auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"allocation-pod-gone", "used-mismatch"}))
      << renderCheck(r);
  EXPECT_EQ(r.findings[0].leak->node, "n1");
}

TEST(Check, ALivePodWithoutTheAllocatedAddressIsAStaleSandbox) {
  Snapshot s = published();
  // A second sandbox of p1 whose CNI DEL was lost: the pod shows only its current address.
  s.blocks[0].status.allocations.push_back({.address = "10.0.0.9",
                                            .owner = {.containerID = "c-old", .ifName = "eth0"},
                                            .podNamespace = "default",
                                            .podName = "p1",
                                            .podUID = "uid-p1"});
  s.blocks[0].status.used = 3;
  auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"allocation-stale-sandbox", "used-mismatch"}))
      << renderCheck(r);
  EXPECT_EQ(r.findings[0].leak->owner.containerID, "c-old");
  EXPECT_EQ(r.findings[0].leak->address, "10.0.0.9");
  EXPECT_NE(r.findings[0].message.find("10.0.0.4"), std::string::npos) << r.findings[0].message;

  // A pod that shows no address yet (its first ADD in flight) is not judged.
  s.pods[0].ips = {};
  s.pods[0].phase = "Pending";
  r = check(s);
  EXPECT_EQ(ids(r), (std::vector<std::string>{"used-mismatch"})) << renderCheck(r);
}

TEST(Check, APodAddressTheAgentDoesNotHoldIsDangerous) {
  Snapshot s = published();
  s.blocks[0].status.allocations.pop_back();  // 10.0.0.5 of p2
  s.blocks[0].status.used = 1;
  auto r = check(s);
  ASSERT_EQ(ids(r), (std::vector<std::string>{"pod-ip-without-allocation", "used-mismatch"}))
      << renderCheck(r);
  EXPECT_EQ(r.findings[0].object, "Pod default/p2");
  EXPECT_FALSE(r.findings[0].leak.has_value());
  EXPECT_NE(r.findings[0].message.find("hand it out again"), std::string::npos);

  // An agent that does not publish allocations (used 2, none listed) is not judged by them.
  s.blocks[0].status.allocations.clear();
  s.blocks[0].status.used = 2;
  r = check(s);
  EXPECT_TRUE(r.clean()) << renderCheck(r);
}

// ---- why ----

Snapshot waiting(std::string onNode = "n1") {
  Snapshot s = clean();
  s.pods.push_back(pod("web", std::move(onNode), {}, "Pending"));
  return s;
}

TEST(Why, PodNotFound) {
  const auto r = why(clean(), "default", "nope");
  EXPECT_FALSE(r.found);
  EXPECT_EQ(causes(r), (std::vector<std::string>{"pod-not-found"}));
}

TEST(Why, NotScheduledHostNetworkOrAlreadyAddressed) {
  EXPECT_EQ(causes(why(waiting(""), "default", "web")),
            (std::vector<std::string>{"not-scheduled"}));
  Snapshot s = waiting();
  s.pods.back().hostNetwork = true;
  EXPECT_EQ(causes(why(s, "default", "web")), (std::vector<std::string>{"host-network"}));
  const auto has = why(clean(), "default", "p1");
  EXPECT_EQ(causes(has), (std::vector<std::string>{"has-address"}));
  EXPECT_EQ(has.causes[0].details, (std::vector<std::string>{"10.0.0.4: block b1 (10.0.0.0/28)"}));
}

TEST(Why, NoCauseWhenTheNodeHasAReadyBlockAndAReadyAgent) {
  const auto r = why(waiting(), "default", "web");
  EXPECT_TRUE(r.causes.empty()) << renderWhy(r);
  EXPECT_NE(renderWhy(r).find("No cause found"), std::string::npos);
}

TEST(Why, NodeWithoutBlocksAndNoPodSubnetSelectingIt) {
  Snapshot s = waiting("n3");
  s.nodes.push_back(node("n3", {{"pool", "b"}}));
  s.agentPods.push_back(agent("n3"));
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"no-podsubnet", "no-ready-block"}))
      << renderWhy(r);
  EXPECT_EQ(r.causes[0].details, (std::vector<std::string>{"PodSubnet pool selects pool=a"}));
  EXPECT_EQ(r.causes[1].details, (std::vector<std::string>{"the node holds no IPBlock"}));
}

TEST(Why, ALabelSelectorSelectsTheNode) {
  Snapshot s = waiting("n3");
  s.nodes.push_back(node("n3", {{"zone", "2"}}));
  s.agentPods.push_back(agent("n3"));
  s.subnets[0].nodeSelector =
      api::LabelSelector{.matchExpressions = {{.key = "zone", .op = "In", .values = {"1", "2"}}}};
  EXPECT_EQ(causes(why(s, "default", "web")), (std::vector<std::string>{"no-ready-block"}));
  s.subnets[0].nodeSelector->matchExpressions[0].op = "NotIn";
  EXPECT_EQ(causes(why(s, "default", "web")),
            (std::vector<std::string>{"no-podsubnet", "no-ready-block"}));
}

TEST(Why, NodeNotFound) {
  Snapshot s = waiting("gone");
  const auto r = why(s, "default", "web");
  ASSERT_GE(r.causes.size(), 1u);
  EXPECT_EQ(r.causes[0].cause, "node-not-found") << renderWhy(r);
}

TEST(Why, PodSubnetExhaustedComesBeforeTheGenericNoReadyBlock) {
  Snapshot s = waiting("n3");
  s.nodes.push_back(node("n3"));
  s.agentPods.push_back(agent("n3"));
  s.subnets[0].conditions = {cond(api::kConditionExhausted, "True", "NoFreeBlock", "0 of 16")};
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"podsubnet-exhausted", "no-ready-block"}))
      << renderWhy(r);
  EXPECT_EQ(r.causes[0].details[0], "Exhausted=True (NoFreeBlock): 0 of 16");
}

TEST(Why, PendingBlockWithProgrammedFalseQuotesTheCloudsError) {
  Snapshot s = waiting("n3");
  s.nodes.push_back(node("n3"));
  s.agentPods.push_back(agent("n3"));
  s.blocks.push_back(block("b3", "n3", "10.0.0.32/28", api::BlockPhase::kPending));
  s.blocks.back().status.conditions = {
      cond(api::kConditionProgrammed, "False", "SubnetIsFull", "no room on the NIC")};
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"nic-programming-failed", "no-ready-block"}))
      << renderWhy(r);
  EXPECT_EQ(r.causes[0].details[0],
            "b3 10.0.0.32/28 (Pending): Programmed=False (SubnetIsFull): no room on the NIC");
}

TEST(Why, NodeNicConditionFalse) {
  Snapshot s = waiting("n3");
  s.nodes.push_back(node("n3"));
  s.nodes.back().conditions = {cond(api::kNodeConditionNicProgrammed, "False", "Throttled", "429")};
  s.agentPods.push_back(agent("n3"));
  s.blocks.push_back(block("b3", "n3", "10.0.0.32/28", api::BlockPhase::kPending));
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"nic-programming-failed", "no-ready-block"}))
      << renderWhy(r);
  EXPECT_EQ(r.causes[0].details[0], "Node n3: VnetIpamNICProgrammed=False (Throttled): 429");
}

TEST(Why, EveryReadyBlockFullNamesTheExhaustedPodSubnet) {
  Snapshot s = waiting();
  s.blocks[0].status.used = 16;
  s.subnets[0].conditions = {cond(api::kConditionExhausted, "True", "NoFreeBlock")};
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"blocks-full"})) << renderWhy(r);
  EXPECT_EQ(r.causes[0].details,
            (std::vector<std::string>{"b1 10.0.0.0/28: 16 of 16 used",
                                      "PodSubnet pool: Exhausted=True (NoFreeBlock)"}));
  s.blocks.push_back(block("b1b", "n1", "10.0.0.80/28", api::BlockPhase::kReady, 3));
  EXPECT_TRUE(why(s, "default", "web").causes.empty()) << "a block with room: not full";
}

TEST(Why, InvalidBlocks) {
  Snapshot s = waiting();
  s.blocks[0].status.conditions = {cond(api::kConditionInvalid, "True", "Overlap", "with b9")};
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"block-invalid", "no-ready-block"}))
      << renderWhy(r);
}

TEST(Why, AgentMissingOrNotReady) {
  Snapshot s = waiting();
  s.agentPods = {agent("n1", /*ready=*/false)};
  auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"agent-not-ready"})) << renderWhy(r);
  EXPECT_NE(r.causes[0].summary.find("kube-system/vnet-ipam-agent-n1"), std::string::npos);
  s.agentPods = {agent("n2")};
  r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"agent-not-ready"})) << renderWhy(r);
  EXPECT_EQ(r.causes[0].summary, "no vnet-ipam agent pod runs on node n1");
}

TEST(Why, SandboxErrorAndEventsNewestFirst) {
  Snapshot s = waiting();
  s.events = {
      {.type = "Warning",
       .reason = "FailedCreatePodSandBox",
       .message = "plugin type=\"vnet-ipam\" failed (add): no free address",
       .objectKind = "Pod",
       .objectName = "web",
       .objectNamespace = "default",
       .time = "2027-01-15T07:58:00Z"},
      {.type = "Warning",
       .reason = "BackOff",
       .objectKind = "Pod",
       .objectName = "web",
       .objectNamespace = "default",
       .time = "2027-01-15T07:59:00Z"},
      {.type = "Normal",
       .reason = "Scheduled",
       .objectKind = "Pod",
       .objectName = "web",
       .objectNamespace = "default"},
      {.type = "Warning",
       .reason = "NICProgrammingFailed",
       .objectKind = "IPBlock",
       .objectName = "b1",
       .time = "2027-01-15T07:50:00Z"},
      {.type = "Warning", .reason = "Other", .objectKind = "Node", .objectName = "n2"},
  };
  const auto r = why(s, "default", "web");
  ASSERT_EQ(causes(r), (std::vector<std::string>{"cni-error"})) << renderWhy(r);
  EXPECT_EQ(r.causes[0].details[0], "plugin type=\"vnet-ipam\" failed (add): no free address");
  ASSERT_EQ(r.podEvents.size(), 2u);
  EXPECT_EQ(r.podEvents[0].reason, "BackOff");
  ASSERT_EQ(r.nodeEvents.size(), 1u);
  EXPECT_EQ(r.nodeEvents[0].objectName, "b1");
  const std::string text = renderWhy(r);
  EXPECT_NE(text.find("Warning events of the pod:"), std::string::npos) << text;
  EXPECT_NE(text.find("IPBlock/b1"), std::string::npos) << text;
  EXPECT_EQ(toJson(r)["causes"][0]["cause"], "cni-error");
}

TEST(Why, DataplaneDrift) {
  Snapshot s = waiting();
  s.blocks[0].status.conditions = {cond(api::kConditionDataplaneSynced, "False", "Drift", "x")};
  EXPECT_EQ(causes(why(s, "default", "web")), (std::vector<std::string>{"dataplane-drift"}));
}

TEST(RenderTable, AlignsColumnsWithoutTrailingBlanks) {
  EXPECT_EQ(renderTable({{"A", "BB", "C"}, {"aaa", "b", ""}}), "A    BB  C\naaa  b\n");
}

}  // namespace
}  // namespace vnetipam::kubectl_ipam
