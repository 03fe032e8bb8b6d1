#include "node-agent/agent_events.h"

#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::agent {
namespace {

using nlohmann::json;

class AgentEventsTest : public ::testing::Test {
 protected:
  // Flushes the recorder and returns the Events it created, in order.
  std::vector<json> written() {
    for (int i = 0; i < 16; ++i)
      transport_.respond(201, "{}");
    recorder_.flush();
    std::vector<json> out;
    for (const auto& r : transport_.requests()) {
      if (r.method == "POST") out.push_back(json::parse(r.body));
    }
    return out;
  }

  http::testing::FakeTransport transport_;
  base::testing::FakeClock clock_;
  kube::Client client_{transport_, clock_, {.qps = 0, .maxRetries = 0}};
  kube::EventRecorder recorder_{
      client_,
      clock_,
      {.reportingController = "vnetipam.io/agent", .reportingInstance = "n1", .log = [](auto) {}}};
  AgentEvents events_{recorder_, "n1"};
};

Request allocateFor(std::string ns, std::string pod) {
  return {.op = Op::kAllocate,
          .owner = {.containerID = "c1", .ifName = "eth0"},
          .podNamespace = std::move(ns),
          .podName = std::move(pod),
          .podUID = "uid-1"};
}

TEST_F(AgentEventsTest, AnExhaustedNodeTellsThePod) {
  events_.allocateAnswered(
      allocateFor("default", "web"),
      Response::failure(ErrorCode::kTryAgainLater,
                        "allocate for c1/eth0: no free address on node n1",
                        "1 usable blocks, 0 addresses still cooling down after release"),
      /*noReadyBlock=*/false);
  const auto events = written();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "Warning");
  EXPECT_EQ(events[0]["reason"], "NoFreeAddress");
  EXPECT_EQ(events[0]["regarding"]["kind"], "Pod");
  EXPECT_EQ(events[0]["regarding"]["namespace"], "default");
  EXPECT_EQ(events[0]["regarding"]["name"], "web");
  EXPECT_EQ(events[0]["regarding"]["uid"], "uid-1");
  EXPECT_NE(events[0]["note"].get<std::string>().find("no free pod address on node n1"),
            std::string::npos);
  EXPECT_NE(transport_.requests()[0].target.find("/namespaces/default/events"), std::string::npos);
}

TEST_F(AgentEventsTest, NoReadyBlockTellsTheNodeAndThePod) {
  events_.allocateAnswered(allocateFor("default", "web"),
                           Response::failure(ErrorCode::kTryAgainLater,
                                             "allocate for c1/eth0: no free address on node n1"),
                           /*noReadyBlock=*/true);
  const auto events = written();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["reason"], "NoReadyBlock");
  EXPECT_EQ(events[0]["regarding"], (json{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", "n1"}}));
  EXPECT_EQ(events[1]["reason"], "NoFreeAddress");
}

TEST_F(AgentEventsTest, OtherAnswersRecordNothing) {
  events_.allocateAnswered(allocateFor("default", "web"), Response{}, false);
  events_.allocateAnswered(allocateFor("default", "web"),
                           Response::failure(ErrorCode::kTryAgainLater,
                                             "allocate for c1/eth0: the agent is not ready yet"),
                           false);
  events_.allocateAnswered(allocateFor("default", "web"),
                           Response::failure(ErrorCode::kIoFailure, "journal"), false);
  Request release = allocateFor("default", "web");
  release.op = Op::kRelease;
  events_.allocateAnswered(release, Response::failure(ErrorCode::kTryAgainLater, "x"), true);
  EXPECT_TRUE(written().empty());
}

TEST_F(AgentEventsTest, ARefusedBlockIsReportedOnceWhileItStaysRefused) {
  events_.blockSeen("b1", true);
  events_.blockSeen("b1", true);
  events_.blockSeen("b2", false);
  auto events = written();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["reason"], "BlockInvalid");
  EXPECT_EQ(events[0]["regarding"]["kind"], "Node");
  EXPECT_NE(events[0]["note"].get<std::string>().find("IPBlock b1"), std::string::npos);
}

TEST_F(AgentEventsTest, DriftWarnsOnChangeAndClearsWithANormalEvent) {
  const DriftFinding missing{.kind = DriftKind::kMissingRoute,
                             .block = "b1",
                             .address = *ipam::IPAddress::parse("10.0.0.5"),
                             .pod = "default/web",
                             .what = "no host route"};
  events_.dataplaneChecked({});  // in sync from the start: nothing to say
  events_.dataplaneChecked({missing});
  events_.dataplaneChecked({missing});  // unchanged: no new Event
  events_.dataplaneChecked({});
  const auto events = written();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["type"], "Warning");
  EXPECT_EQ(events[0]["reason"], "DataplaneDrift");
  EXPECT_EQ(events[0]["note"],
            "1 dataplane problem on the node: 10.0.0.5 (pod default/web): no host route");
  EXPECT_EQ(events[1]["type"], "Normal");
  EXPECT_EQ(events[1]["reason"], "DataplaneInSync");
}

}  // namespace
}  // namespace vnetipam::agent
