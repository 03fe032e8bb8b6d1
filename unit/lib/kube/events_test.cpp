#include "lib/kube/events.h"

#include <chrono>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::kube {
namespace {

using base::testing::FakeClock;
using http::testing::FakeTransport;
using nlohmann::json;
using std::chrono::seconds;

constexpr std::string_view kDefaultEvents = "/apis/events.k8s.io/v1/namespaces/default/events";

const ObjectReference kBlock{.apiVersion = "vnetipam.io/v1alpha1",
                             .kind = "IPBlock",
                             .name = "pods-10-240-0-16-28",
                             .uid = "0b9e6c9e-0000-4000-8000-000000000001"};

class EventRecorderTest : public ::testing::Test {
 protected:
  EventRecorderOptions options() {
    return EventRecorderOptions{
        .reportingController = "vnetipam.io/controller",
        .reportingInstance = "controller-0",
        .log = [this](std::string_view line) { log_.emplace_back(line); },
    };
  }

  FakeTransport transport_;
  FakeClock clock_;  // calendar time 2026-11-26T12:00:00Z at the start
  Client client_{transport_, clock_, {.qps = 0, .maxRetries = 0}};
  std::vector<std::string> log_;
  EventRecorder recorder_{client_, clock_, options()};
};

TEST_F(EventRecorderTest, CreatesAnEventWithTheRightFields) {
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockAllocated", "Allocate",
                               "Allocated 10.240.0.16/28 to node worker-1"));
  EXPECT_TRUE(transport_.requests().empty());  // record() never waits on the API server
  transport_.respond(201, "{}");
  EXPECT_EQ(recorder_.flush(), 1u);

  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, kDefaultEvents);  // cluster-scoped object: "default"
  const json body = json::parse(requests[0].body);
  EXPECT_EQ(body["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ(body["kind"], "Event");
  EXPECT_EQ(body["metadata"]["namespace"], "default");
  EXPECT_TRUE(body["metadata"]["name"].get<std::string>().starts_with("pods-10-240-0-16-28."));
  EXPECT_EQ(body["regarding"], (json{{"apiVersion", "vnetipam.io/v1alpha1"},
                                     {"kind", "IPBlock"},
                                     {"name", "pods-10-240-0-16-28"},
                                     {"uid", "0b9e6c9e-0000-4000-8000-000000000001"}}));
  EXPECT_EQ(body["reason"], "BlockAllocated");
  EXPECT_EQ(body["action"], "Allocate");
  EXPECT_EQ(body["note"], "Allocated 10.240.0.16/28 to node worker-1");
  EXPECT_EQ(body["type"], "Normal");
  EXPECT_EQ(body["reportingController"], "vnetipam.io/controller");
  EXPECT_EQ(body["reportingInstance"], "controller-0");
  EXPECT_EQ(body["eventTime"], "2026-11-26T12:00:00.000000Z");
  EXPECT_FALSE(body.contains("series"));
}

TEST_F(EventRecorderTest, NamespacedObjectsKeepTheirNamespace) {
  const ObjectReference lease{.apiVersion = "coordination.k8s.io/v1",
                              .kind = "Lease",
                              .name = "vnet-ipam",
                              .ns = "kube-system"};
  ASSERT_TRUE(recorder_.record(lease, EventType::kWarning, "LeaderLost", "Renew", "lost it"));
  transport_.respond(201, "{}");
  ASSERT_EQ(recorder_.flush(), 1u);
  const auto request = transport_.requests().at(0);
  EXPECT_EQ(request.target, "/apis/events.k8s.io/v1/namespaces/kube-system/events");
  const json body = json::parse(request.body);
  EXPECT_EQ(body["regarding"]["namespace"], "kube-system");
  EXPECT_EQ(body["type"], "Warning");
}

TEST_F(EventRecorderTest, RepeatsWithinTheWindowUpdateTheSeries) {
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kWarning, "NicUpdateFailed", "Program", "429"));
  transport_.respond(201, "{}");
  ASSERT_EQ(recorder_.flush(), 1u);
  const std::string name =
      json::parse(transport_.requests().at(0).body)["metadata"]["name"].get<std::string>();

  clock_.advance(seconds(30));
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kWarning, "NicUpdateFailed", "Program", "429"));
  clock_.advance(seconds(30));
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kWarning, "NicUpdateFailed", "Program", "429"));
  transport_.respond(200, "{}");
  transport_.respond(200, "{}");
  ASSERT_EQ(recorder_.flush(), 2u);

  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(requests[i].method, "PATCH");
    EXPECT_EQ(requests[i].target, fmt::format("{}/{}", kDefaultEvents, name));
    EXPECT_EQ(requests[i].headers.at("Content-Type"), "application/merge-patch+json");
  }
  EXPECT_EQ(
      json::parse(requests[1].body),
      (json{{"series", {{"count", 2}, {"lastObservedTime", "2026-11-26T12:00:30.000000Z"}}}}));
  EXPECT_EQ(
      json::parse(requests[2].body),
      (json{{"series", {{"count", 3}, {"lastObservedTime", "2026-11-26T12:01:00.000000Z"}}}}));
}

TEST_F(EventRecorderTest, ADifferentNoteOrAnExpiredWindowIsANewEvent) {
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready"));
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready again"));
  clock_.advance(std::chrono::minutes(7));  // past the 6 minute window
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready"));
  for (int i = 0; i < 3; ++i)
    transport_.respond(201, "{}");
  ASSERT_EQ(recorder_.flush(), 3u);
  std::vector<std::string> names;
  for (const auto& request : transport_.requests()) {
    EXPECT_EQ(request.method, "POST");
    names.push_back(json::parse(request.body)["metadata"]["name"]);
  }
  ASSERT_EQ(names.size(), 3u);
  EXPECT_NE(names[0], names[1]);  // same wall time, still unique names
}

TEST_F(EventRecorderTest, AnEventThatExpiredOnTheServerIsCreatedAgain) {
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready"));
  transport_.respond(201, "{}");
  ASSERT_EQ(recorder_.flush(), 1u);
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready"));
  transport_.respond(404, R"({"kind":"Status","reason":"NotFound","message":"gone","code":404})");
  transport_.respond(201, "{}");
  EXPECT_EQ(recorder_.flush(), 1u);
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1].method, "PATCH");
  EXPECT_EQ(requests[2].method, "POST");
  EXPECT_FALSE(json::parse(requests[2].body).contains("series"));
}

TEST_F(EventRecorderTest, FailuresAreLoggedNotThrownAndNotRetried) {
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready"));
  transport_.respond(500,
                     R"({"kind":"Status","reason":"InternalError","message":"etcd","code":500})");
  EXPECT_EQ(recorder_.flush(), 0u);
  EXPECT_EQ(transport_.requests().size(), 1u);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_NE(log_[0].find("not created"), std::string::npos) << log_[0];
  EXPECT_NE(log_[0].find("InternalError"), std::string::npos) << log_[0];
  // A later repeat is a fresh create: the failed one was never tracked.
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "ready"));
  transport_.respond(201, "{}");
  EXPECT_EQ(recorder_.flush(), 1u);
  EXPECT_EQ(transport_.requests().back().method, "POST");
}

TEST_F(EventRecorderTest, RefusesReasonsThatAreNotCamelCaseAndCutsLongNotes) {
  EXPECT_FALSE(recorder_.record(kBlock, EventType::kNormal, "block ready", "Program", "x"));
  EXPECT_FALSE(recorder_.record(kBlock, EventType::kNormal, "blockReady", "Program", "x"));
  EXPECT_FALSE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "", "x"));
  EXPECT_EQ(log_.size(), 3u);
  // 1023 ASCII bytes then a two-byte character: cut before it, not inside it.
  const std::string note = std::string(1023, 'a') + "\xC3\xA9" + "tail";
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", note));
  transport_.respond(201, "{}");
  ASSERT_EQ(recorder_.flush(), 1u);
  EXPECT_EQ(json::parse(transport_.requests().at(0).body)["note"], std::string(1023, 'a'));
}

TEST_F(EventRecorderTest, TheWorkerWritesInTheBackgroundAndStopDrains) {
  transport_.respond(201, "{}");
  transport_.respond(201, "{}");
  recorder_.start();
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "one"));
  ASSERT_TRUE(recorder_.record(kBlock, EventType::kNormal, "BlockReady", "Program", "two"));
  recorder_.stop();
  EXPECT_EQ(transport_.requests().size(), 2u);
  EXPECT_EQ(transport_.unanswered(), 0u);
}

}  // namespace
}  // namespace vnetipam::kube
