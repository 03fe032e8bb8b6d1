#include "node-agent/api_sync.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::agent {
namespace {

using nlohmann::json;

json block(std::string name, std::string node, std::string cidr, std::string phase) {
  json j{{"metadata", {{"name", name}}},
         {"spec", {{"podSubnet", "pods"}, {"cidr", cidr}, {"nodeName", node}}}};
  if (!phase.empty()) j["status"] = {{"phase", phase}};
  return j;
}

TEST(ApiBlockTest, ReadsPhaseAndDeletion) {
  auto ready = apiBlockFromJson(block("b", "n1", "10.0.0.16/28", "Ready"), "n1");
  ASSERT_TRUE(ready) << ready.error();
  EXPECT_EQ(ready->name, "b");
  EXPECT_EQ(ready->cidr.toString(), "10.0.0.16/28");
  EXPECT_TRUE(ready->ready);
  EXPECT_FALSE(ready->deleting);

  EXPECT_FALSE(apiBlockFromJson(block("b", "n1", "10.0.0.16/28", "Programmed"), "n1")->ready);
  EXPECT_FALSE(apiBlockFromJson(block("b", "n1", "10.0.0.16/28", ""), "n1")->ready);
  EXPECT_TRUE(apiBlockFromJson(block("b", "n1", "10.0.0.16/28", "Releasing"), "n1")->deleting);
  json deleting = block("b", "n1", "10.0.0.16/28", "Ready");
  deleting["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z";
  EXPECT_TRUE(apiBlockFromJson(deleting, "n1")->deleting);
}

TEST(ApiBlockTest, RefusesOtherNodesAndBadCidrs) {
  auto other = apiBlockFromJson(block("b", "n2", "10.0.0.16/28", "Ready"), "n1");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().find("n2"), std::string::npos);
  auto bad = apiBlockFromJson(block("b", "n1", "10.0.0.17/28", "Ready"), "n1");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("spec.cidr"), std::string::npos);
}

TEST(ApiBlockTest, AnInvalidConditionMakesABlockUnservable) {
  json invalid = block("b", "n1", "10.0.0.16/28", "Ready");
  invalid["status"]["conditions"] =
      json::array({{{"type", "Invalid"}, {"status", "True"}, {"reason", "NotMadeByController"}}});
  auto decoded = apiBlockFromJson(invalid, "n1");
  ASSERT_TRUE(decoded) << decoded.error();
  EXPECT_TRUE(decoded->invalid);
  invalid["status"]["conditions"][0]["status"] = "False";
  EXPECT_FALSE(apiBlockFromJson(invalid, "n1")->invalid);
  EXPECT_FALSE(apiBlockFromJson(block("b", "n1", "10.0.0.16/28", "Ready"), "n1")->invalid);
}

TEST(ApiBlockTest, AnObjectTheCodecRefusesIsNotABlock) {
  json bad = block("b", "n1", "10.0.0.16/28", "Ready");
  bad["status"]["phase"] = "Exploded";
  auto decoded = apiBlockFromJson(bad, "n1");
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().find("status.phase"), std::string::npos) << decoded.error();
}

TEST(DrainTargetTest, OnlyADeletingBlockOfThisNodeWithAgentDrain) {
  json b = block("b", "n1", "10.0.0.16/28", "Ready");
  b["metadata"]["uid"] = "u1";
  b["metadata"]["finalizers"] = {"vnetipam.io/nic-release", "vnetipam.io/agent-drain"};
  EXPECT_FALSE(drainTargetFromJson(b, "n1")) << "not being deleted";
  b["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z";
  EXPECT_EQ(drainTargetFromJson(b, "n1"),
            (DrainTarget{.name = "b", .uid = "u1", .finalizerIndex = 1}));
  EXPECT_FALSE(drainTargetFromJson(b, "n2")) << "another node's";
  b["metadata"]["finalizers"] = {"vnetipam.io/nic-release"};
  EXPECT_FALSE(drainTargetFromJson(b, "n1")) << "already drained";
}

TEST(DrainTargetTest, ThePatchTestsTheIncarnationAndTheEntryBeforeRemovingIt) {
  EXPECT_EQ(removeAgentDrainPatch({.name = "b", .uid = "u1", .finalizerIndex = 2}), json::parse(R"([
              {"op": "test", "path": "/metadata/uid", "value": "u1"},
              {"op": "test", "path": "/metadata/finalizers/2", "value": "vnetipam.io/agent-drain"},
              {"op": "remove", "path": "/metadata/finalizers/2"}])"));
}

TEST(UsageReporterTest, AppliesOnlyChangedUsedUnderTheAgentsFieldManager) {
  http::testing::FakeTransport transport;
  base::testing::FakeClock clock;
  kube::Client client(transport, clock, {.qps = 0, .maxRetries = 0});
  AgentMetrics metrics(std::make_shared<prometheus::Registry>());
  UsageReporter reporter(client, &metrics);

  transport.respond(200, "{}");
  EXPECT_EQ(reporter.report({{.name = "b1", .used = 3, .inApi = true},
                             {.name = "orphan", .used = 1, .inApi = false}}),
            1u);
  auto requests = transport.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PATCH");
  EXPECT_NE(requests[0].target.find("/apis/vnetipam.io/v1alpha1/ipblocks/b1/status"),
            std::string::npos);
  EXPECT_NE(requests[0].target.find("fieldManager=vnet-ipam-agent"), std::string::npos);
  const json body = json::parse(requests[0].body);
  EXPECT_EQ(body["status"], (json{{"used", 3}})) << "only the field the agent owns";
  EXPECT_EQ(body["kind"], "IPBlock");

  EXPECT_EQ(reporter.report({{.name = "b1", .used = 3, .inApi = true}}), 0u);
  EXPECT_EQ(transport.requests().size(), 1u) << "unchanged: no API call";

  transport.respond(500, R"({"kind":"Status","message":"boom"})");
  EXPECT_EQ(reporter.report({{.name = "b1", .used = 4, .inApi = true}}), 0u);
  transport.respond(200, "{}");
  EXPECT_EQ(reporter.report({{.name = "b1", .used = 4, .inApi = true}}), 1u) << "retried";
}

Allocation held(std::string containerID, std::string address, std::string podUID = "u1",
                std::string network = "") {
  return Allocation{.owner = {.containerID = std::move(containerID), .ifName = "eth0"},
                    .network = std::move(network),
                    .podNamespace = "default",
                    .podName = "web",
                    .podUID = std::move(podUID),
                    .address = *ipam::IPAddress::parse(address),
                    .block = *ipam::Prefix::parse("10.0.0.0/28"),
                    .blockName = "b1"};
}

TEST(UsageReporterTest, TheAllocationsRideWithUsedInTheSameApply) {
  http::testing::FakeTransport transport;
  base::testing::FakeClock clock;
  kube::Client client(transport, clock, {.qps = 0, .maxRetries = 0});
  UsageReporter reporter(client, nullptr);

  transport.respond(200, "{}");
  ASSERT_EQ(reporter.report({{.name = "b1",
                              .used = 2,
                              .inApi = true,
                              .allocations = {held("c1", "10.0.0.1", "u1", "net-b"),
                                              held("c2", "10.0.0.2", "")}}}),
            1u);
  ASSERT_EQ(transport.requests().size(), 1u);
  EXPECT_EQ(json::parse(transport.requests()[0].body)["status"],
            json::parse(R"({"used": 2, "allocations": [
              {"address": "10.0.0.1", "containerID": "c1", "ifName": "eth0",
               "podNamespace": "default", "podName": "web", "podUID": "u1",
               "network": "net-b"},
              {"address": "10.0.0.2", "containerID": "c2", "ifName": "eth0",
               "podNamespace": "default", "podName": "web"}]})"));

  // The same count with another owner of an address is news: one apply, no second write.
  transport.respond(200, "{}");
  ASSERT_EQ(reporter.report({{.name = "b1",
                              .used = 2,
                              .inApi = true,
                              .allocations = {held("c1", "10.0.0.1"), held("c3", "10.0.0.2")}}}),
            1u);
  ASSERT_EQ(transport.requests().size(), 2u);
  EXPECT_EQ(json::parse(transport.requests()[1].body)["status"]["allocations"][1]["containerID"],
            "c3");

  // The last one released: the list is left out, which removes the items the agent owned.
  transport.respond(200, "{}");
  ASSERT_EQ(reporter.report({{.name = "b1", .used = 0, .inApi = true}}), 1u);
  EXPECT_EQ(json::parse(transport.requests()[2].body)["status"], (json{{"used", 0}}));
}

TEST(UsageReporterTest, TheDataplaneConditionRidesWithUsedAndIsWrittenOnlyOnChange) {
  http::testing::FakeTransport transport;
  base::testing::FakeClock clock(std::chrono::system_clock::from_time_t(1'795'000'000));
  kube::Client client(transport, clock, {.qps = 0, .maxRetries = 0});
  UsageReporter reporter(client, nullptr);
  const DataplaneCondition inSync{.status = "True", .reason = "InSync", .message = "all good"};
  const DataplaneCondition drift{
      .status = "False", .reason = "Drift", .message = "10.0.0.1 (pod default/p): no host route"};
  const std::vector<BlockUsage> usage = {{.name = "b1", .used = 1, .inApi = true}};
  auto lastBody = [&] { return json::parse(transport.requests().back().body); };
  auto condition = [&] { return lastBody()["status"]["conditions"][0]; };
  for (int i = 0; i < 5; ++i)
    transport.respond(200, "{}");  // one answer per write below
  ASSERT_EQ(reporter.report(usage), 1u);
  EXPECT_FALSE(lastBody()["status"].contains("conditions")) << "not checked yet: used alone";

  ASSERT_EQ(reporter.report(usage, {{"b1", inSync}}), 1u);
  EXPECT_EQ(lastBody()["status"]["used"], 1) << "used rides along, or the apply would drop it";
  EXPECT_EQ(condition(), (json{{"type", "DataplaneSynced"},
                               {"status", "True"},
                               {"reason", "InSync"},
                               {"message", "all good"},
                               {"lastTransitionTime", "2026-11-18T11:06:40Z"}}));
  EXPECT_EQ(lastBody()["status"]["conditions"].size(), 1u) << "only the agent's own condition";

  EXPECT_EQ(reporter.report(usage, {{"b1", inSync}}), 0u);
  EXPECT_EQ(transport.requests().size(), 2u) << "nothing changed: no write";

  // used changes: the condition rides along (omitting it would remove it), transition unchanged.
  clock.advance(std::chrono::minutes(1));
  ASSERT_EQ(reporter.report({{.name = "b1", .used = 2, .inApi = true}}), 1u);
  EXPECT_EQ(lastBody()["status"]["used"], 2);
  EXPECT_EQ(condition()["status"], "True");
  EXPECT_EQ(condition()["lastTransitionTime"], "2026-11-18T11:06:40Z");

  // Drift: a new status, a new transition time.
  ASSERT_EQ(reporter.report({{.name = "b1", .used = 2, .inApi = true}}, {{"b1", drift}}), 1u);
  EXPECT_EQ(condition()["status"], "False");
  EXPECT_EQ(condition()["reason"], "Drift");
  EXPECT_EQ(condition()["message"], drift.message);
  EXPECT_EQ(condition()["lastTransitionTime"], "2026-11-18T11:07:40Z");

  // Another message with the same status: written, the transition time kept.
  clock.advance(std::chrono::minutes(1));
  DataplaneCondition more = drift;
  more.message += "; 10.0.0.2: no host route";
  ASSERT_EQ(reporter.report({{.name = "b1", .used = 2, .inApi = true}}, {{"b1", more}}), 1u);
  EXPECT_EQ(condition()["message"], more.message);
  EXPECT_EQ(condition()["lastTransitionTime"], "2026-11-18T11:07:40Z");

  // A failed write is retried with the same body.
  clock.advance(std::chrono::minutes(1));
  transport.respond(500, R"({"kind":"Status","message":"boom"})");
  transport.respond(200, "{}");
  EXPECT_EQ(reporter.report({{.name = "b1", .used = 2, .inApi = true}}, {{"b1", inSync}}), 0u);
  const json failed = lastBody();
  EXPECT_EQ(reporter.report({{.name = "b1", .used = 2, .inApi = true}}), 1u);
  EXPECT_EQ(lastBody(), failed);
  EXPECT_EQ(condition()["lastTransitionTime"], "2026-11-18T11:09:40Z");
}

TEST(UsageReporterTest, AnEarlierRunsConditionOfTheSameStatusKeepsItsTransitionTime) {
  http::testing::FakeTransport transport;
  base::testing::FakeClock clock(std::chrono::system_clock::from_time_t(1'795'000'000));
  kube::Client client(transport, clock, {.qps = 0, .maxRetries = 0});
  const json earlier{
      {"metadata", {{"name", "b1"}}},
      {"status",
       {{"used", 1},
        {"conditions", json::array({{{"type", "Programmed"},
                                     {"status", "True"},
                                     {"lastTransitionTime", "2026-01-01T00:00:00Z"}},
                                    {{"type", "DataplaneSynced"},
                                     {"status", "True"},
                                     {"reason", "InSync"},
                                     {"lastTransitionTime", "2026-11-01T00:00:00Z"}}})}}}};
  UsageReporter reporter(client, nullptr,
                         [&](const std::string& name) { return name == "b1" ? earlier : json(); });
  const DataplaneCondition inSync{.status = "True", .reason = "InSync", .message = "all good"};
  const DataplaneCondition drift{.status = "False", .reason = "Drift", .message = "bad"};
  transport.respond(200, "{}");
  transport.respond(200, "{}");
  ASSERT_EQ(reporter.report({{.name = "b1", .used = 1, .inApi = true},
                             {.name = "b2", .used = 0, .inApi = true}},
                            {{"b1", inSync}, {"b2", drift}}),
            2u);
  const auto requests = transport.requests();
  const json b1 = json::parse(requests[0].body)["status"]["conditions"][0];
  EXPECT_EQ(b1["lastTransitionTime"], "2026-11-01T00:00:00Z") << "the same status as before";
  const json b2 = json::parse(requests[1].body)["status"]["conditions"][0];
  EXPECT_EQ(b2["lastTransitionTime"], "2026-11-18T11:06:40Z") << "nothing earlier: now";
}

}  // namespace
}  // namespace vnetipam::agent
