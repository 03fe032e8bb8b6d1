#include "kubectl-ipam/snapshot.h"

#include <gtest/gtest.h>

namespace vnetipam::kubectl_ipam {
namespace {

using nlohmann::json;

TEST(PodFromJson, ReadsAddressesPhaseReadinessAndHostNetwork) {
  const auto pod = podFromJson(json::parse(R"({
    "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"},
                 "deletionTimestamp": "2027-01-01T00:00:00Z"},
    "spec": {"nodeName": "n1", "hostNetwork": false},
    "status": {"phase": "Running", "startTime": "2027-01-01T00:00:00Z",
               "podIP": "10.0.0.4", "podIPs": [{"ip": "10.0.0.4"}, {"ip": "fd00::4"}],
               "conditions": [{"type": "Ready", "status": "True"}]}})"));
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->ns, "prod");
  EXPECT_EQ(pod->nodeName, "n1");
  EXPECT_EQ(pod->ips, (std::vector<std::string>{"10.0.0.4", "fd00::4"}));
  EXPECT_TRUE(pod->ready);
  EXPECT_TRUE(pod->deleting);
  EXPECT_FALSE(pod->hostNetwork);
  EXPECT_EQ(pod->labels.at("app"), "web");
}

TEST(PodFromJson, PodIPAloneAndOddShapesReadAsEmpty) {
  auto pod = podFromJson(json::parse(R"({"status": {"podIP": "10.0.0.9"}})"));
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->ips, (std::vector<std::string>{"10.0.0.9"}));
  pod = podFromJson(json::parse(R"({"metadata": 7, "spec": [], "status": {"podIPs": 3}})"));
  ASSERT_TRUE(pod);
  EXPECT_TRUE(pod->ips.empty());
  EXPECT_FALSE(podFromJson(json::array()));
}

TEST(EventFromJson, ReadsCoreAndEventsV1Shapes) {
  auto e = eventFromJson(json::parse(R"({
    "metadata": {"namespace": "prod"}, "type": "Warning", "reason": "FailedCreatePodSandBox",
    "message": "cni failed", "involvedObject": {"kind": "Pod", "name": "web", "namespace": "prod"},
    "lastTimestamp": "2027-01-01T00:00:05Z", "count": 4})"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->objectKind, "Pod");
  EXPECT_EQ(e->time, "2027-01-01T00:00:05Z");
  EXPECT_EQ(e->count, 4);
  e = eventFromJson(json::parse(R"({
    "type": "Warning", "reason": "NICProgrammingFailed", "eventTime": "2027-01-01T00:00:01.000000Z",
    "series": {"count": 3, "lastObservedTime": "2027-01-01T00:00:09.000000Z"},
    "involvedObject": {"kind": "IPBlock", "name": "b1"}})"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->time, "2027-01-01T00:00:09.000000Z");
  EXPECT_EQ(e->count, 3);
}

TEST(SubnetFromJson, ALabelSelectorJudgedAsTheControllerJudgesIt) {
  auto s = subnetFromJson(json::parse(R"({"metadata": {"name": "p"},
    "spec": {"cidr": "10.0.0.0/24", "nodeSelector": {"matchLabels": {"pool": "a"},
             "matchExpressions": [{"key": "zone", "operator": "In", "values": ["1", "2"]},
                                  {"key": "drain", "operator": "DoesNotExist"}]}},
    "status": {"cidr": "10.9.0.0/16", "totalBlocks": 16, "allocatedBlocks": 2,
               "conditions": [{"type": "Exhausted", "status": "False"}]}})"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->invalid, "");
  EXPECT_EQ(s->cidr, "10.9.0.0/16");
  EXPECT_EQ(s->totalBlocks, 16);
  EXPECT_EQ(s->allocatedBlocks, 2);
  ASSERT_EQ(s->conditions.size(), 1u);
  EXPECT_TRUE(s->selects({{"pool", "a"}, {"zone", "2"}}));
  EXPECT_FALSE(s->selects({{"pool", "a"}, {"zone", "3"}}));
  EXPECT_FALSE(s->selects({{"pool", "a"}, {"zone", "1"}, {"drain", ""}}));
  EXPECT_EQ(s->selectorText(), "pool=a,zone In (1,2),drain DoesNotExist");

  s = subnetFromJson(
      json::parse(R"({"metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/24"}})"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->cidr, "10.0.0.0/24");
  EXPECT_TRUE(s->selects({}));
  EXPECT_EQ(s->selectorText(), "every node");
}

// What the API server leaves of the label map of earlier versions is an empty selector, which
// the controller refuses: the PodSubnet selects no node, and the tool says why.
TEST(SubnetFromJson, AnEmptySelectorSelectsNoNode) {
  auto s = subnetFromJson(json::parse(R"({"metadata": {"name": "p"},
    "spec": {"cidr": "10.0.0.0/24", "nodeSelector": {}}})"));
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->selects({{"pool", "a"}}));
  EXPECT_NE(s->invalid.find("spec.nodeSelector"), std::string::npos) << s->invalid;
  EXPECT_EQ(s->selectorText().rfind("no node: PodSubnet \"p\": spec.nodeSelector", 0), 0u)
      << s->selectorText();
}

TEST(SubnetFromJson, ASpecThatDoesNotDecodeSelectsNoNodeButKeepsItsStatus) {
  auto s = subnetFromJson(json::parse(R"({"metadata": {"name": "p"},
    "spec": {"cidr": 7}, "status": {"cidr": "10.0.0.0/24"}})"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->cidr, "10.0.0.0/24");
  EXPECT_FALSE(s->invalid.empty());
  EXPECT_FALSE(s->selects({}));
}

TEST(OnlyPodSubnet, KeepsThatPodSubnetAndItsBlocks) {
  Snapshot s;
  s.subnets = {SubnetInfo{.name = "a"}, SubnetInfo{.name = "b"}};
  s.blocks.resize(3);
  s.blocks[0].spec.podSubnet = "a";
  s.blocks[1].spec.podSubnet = "b";
  s.blocks[2].spec.podSubnet = "a";
  s.nodes = {NodeInfo{.name = "n1"}};
  s.pods = {PodInfo{.name = "p"}};
  auto only = onlyPodSubnet(s, "a");
  ASSERT_TRUE(only);
  ASSERT_EQ(only->subnets.size(), 1u);
  EXPECT_EQ(only->subnets[0].name, "a");
  ASSERT_EQ(only->blocks.size(), 2u);
  EXPECT_EQ(only->blocks[0].spec.podSubnet, "a");
  EXPECT_EQ(only->blocks[1].spec.podSubnet, "a");
  EXPECT_EQ(only->nodes.size(), 1u);
  EXPECT_EQ(only->pods.size(), 1u);
  EXPECT_FALSE(onlyPodSubnet(s, "c"));
}

// The parsing itself is lib/base's (unit/lib/base/time_test.cpp); this is its unit.
TEST(ParseTime, SecondsSinceTheEpoch) {
  EXPECT_EQ(parseTime("2027-01-15T08:00:00Z"), 1'800'000'000);
  EXPECT_EQ(parseTime("yesterday"), std::nullopt);
}

}  // namespace
}  // namespace vnetipam::kubectl_ipam
