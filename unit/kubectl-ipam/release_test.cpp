// kubectl ipam release, the pure half: what it reads from a check report, what it asks of which
// block, what --dry-run prints, and how it reads the agent's answer.
#include "kubectl-ipam/release.h"

#include <gtest/gtest.h>

#include "api/codec.h"

namespace vnetipam::kubectl_ipam {
namespace {

using nlohmann::json;

LeakedAllocation leak(std::string block, std::string address, std::string id,
                      std::string pod = "web") {
  return {.block = std::move(block),
          .node = "n1",
          .address = std::move(address),
          .owner = {.containerID = std::move(id), .ifName = "eth0"},
          .podNamespace = "default",
          .podName = std::move(pod),
          .podUID = "u1"};
}

TEST(LeaksFromReport, ReadsWhatCheckWrites) {
  CheckReport report;
  report.findings.push_back(
      {"allocation-pod-gone", "IPBlock b1", "m", leak("b1", "10.0.0.9", "c")});
  report.findings.push_back({"used-mismatch", "IPBlock b1", "m", std::nullopt});
  auto leaks = leaksFromReport(toJson(report));
  ASSERT_TRUE(leaks) << leaks.error().message;
  EXPECT_EQ(*leaks, std::vector<LeakedAllocation>{leak("b1", "10.0.0.9", "c")});

  EXPECT_FALSE(leaksFromReport(json::array()));
  EXPECT_FALSE(leaksFromReport(json{{"podSubnets", json::array()}})) << "a show report";
  json missing = toJson(report);
  missing["findings"][0]["allocation"].erase("containerID");
  auto refused = leaksFromReport(missing);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("findings[0].allocation.containerID"), std::string::npos);
}

TEST(PlanRelease, ByBlockEachRequestOnceInAddressOrder) {
  auto plan = planRelease({leak("b2", "10.0.0.20", "c3"), leak("b1", "10.0.0.9", "c2"),
                           leak("b1", "10.0.0.3", "c1", "old"), leak("b1", "10.0.0.9", "c2")});
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].block, "b1");
  EXPECT_EQ((*plan)[0].requests,
            (std::vector<api::ReleaseRequest>{
                {.address = "10.0.0.3", .owner = {.containerID = "c1", .ifName = "eth0"}},
                {.address = "10.0.0.9", .owner = {.containerID = "c2", .ifName = "eth0"}}}));
  EXPECT_EQ((*plan)[0].pods, (std::vector<std::string>{"default/old", "default/web"}));
  EXPECT_EQ((*plan)[1].block, "b2");

  std::vector<LeakedAllocation> many;
  for (int i = 0; i <= api::kMaxReleaseRequests; ++i)
    many.push_back(leak("b1", "10.0.0." + std::to_string(i), "c"));
  EXPECT_FALSE(planRelease(many));
}

TEST(PlanRelease, DryRunPrintsEachRequestAndThatNothingIsWritten) {
  auto plan = planRelease({leak("b1", "10.0.0.9", "c2")});
  ASSERT_TRUE(plan);
  EXPECT_EQ(renderPlan(*plan),
            "would ask the agent on node n1 to release 10.0.0.9 (container c2 interface eth0) of "
            "pod default/web from block b1\n"
            "1 request(s) in 1 block(s); --dry-run: nothing written.\n");
  EXPECT_EQ(renderPlan({}), "The report names no leaked allocation: nothing to release.\n");
}

TEST(ReleaseAnnotationEdits, KeepOtherWritersEntries) {
  const api::ReleaseRequest a{.address = "10.0.0.1",
                              .owner = {.containerID = "a", .ifName = "eth0"}};
  const api::ReleaseRequest b{.address = "10.0.0.2",
                              .owner = {.containerID = "b", .ifName = "eth0"}};
  const api::ReleaseRequest other{.address = "10.0.0.3",
                                  .owner = {.containerID = "x", .ifName = "eth0"}};
  EXPECT_EQ(withRequests({other, a}, {a, b}), (std::vector<api::ReleaseRequest>{other, a, b}));
  EXPECT_EQ(withoutRequests({other, a, b}, {a, b}), std::vector<api::ReleaseRequest>{other});
}

api::IPBlock blockHolding(std::vector<api::IPAllocation> allocations) {
  api::IPBlock b;
  b.metadata.name = "b1";
  b.status.used = static_cast<std::int64_t>(allocations.size());
  b.status.allocations = std::move(allocations);
  return b;
}

TEST(Judge, ReleasedWhenTheOwnerNoLongerHoldsItRefusedByTheAgentsEvent) {
  const api::ReleaseRequest r{.address = "10.0.0.9",
                              .owner = {.containerID = "c-old", .ifName = "eth0"}};
  const api::IPAllocation held{.address = "10.0.0.9",
                               .owner = {.containerID = "c-old", .ifName = "eth0"}};
  const std::int64_t since = 1'800'000'000;  // 2027-01-15T08:00:00Z
  std::string why;
  EXPECT_EQ(holds(blockHolding({held}), r), true);
  EXPECT_EQ(judge(blockHolding({held}), r, true, {}, since, why), Outcome::kPending);

  const EventInfo refused{.type = "Warning",
                          .reason = "ReleaseRefused",
                          .message =
                              "10.0.0.9 (container c-old interface eth0): pod default/web "
                              "lives and its status shows the address (PodUsesAddress)",
                          .time = "2027-01-15T08:00:01.5Z"};
  EXPECT_EQ(judge(blockHolding({held}), r, true, {refused}, since, why), Outcome::kRefused);
  EXPECT_EQ(why, "pod default/web lives and its status shows the address (PodUsesAddress)");
  EventInfo stale = refused;
  stale.time = "2027-01-15T07:59:59Z";
  EXPECT_EQ(judge(blockHolding({held}), r, true, {stale}, since, why), Outcome::kPending)
      << "an answer to an earlier run";
  EventInfo otherOwner = refused;
  otherOwner.message = "10.0.0.9 (container c-older interface eth0): x";
  EXPECT_EQ(judge(blockHolding({held}), r, true, {otherOwner}, since, why), Outcome::kPending);

  // Gone from status.allocations (or held by another owner now): released.
  api::IPAllocation reused = held;
  reused.owner.containerID = "c-next";
  why.clear();
  EXPECT_EQ(judge(blockHolding({reused}), r, true, {}, since, why), Outcome::kReleased);
  EXPECT_EQ(judge(std::nullopt, r, true, {}, since, why), Outcome::kReleased)
      << "the block is gone";
  // An owner that never held it (a wrong or stale report) is not "released": the agent refuses.
  EXPECT_EQ(judge(blockHolding({reused}), r, false, {}, since, why), Outcome::kPending);
  EXPECT_EQ(judge(blockHolding({reused}), r, false, {refused}, since, why), Outcome::kRefused);
  // An agent that does not publish allocations (used without a list) proves nothing.
  api::IPBlock silent = blockHolding({});
  silent.status.used = 3;
  EXPECT_EQ(holds(silent, r), std::nullopt);
  EXPECT_EQ(judge(silent, r, true, {}, since, why), Outcome::kPending);
  // The agent's own word for a release counts, with its why.
  EventInfo releasedEvent = refused;
  releasedEvent.reason = "AddressReleased";
  releasedEvent.message = "10.0.0.9 (container c-old interface eth0): pod gone (PodGone)";
  EXPECT_EQ(judge(silent, r, true, {releasedEvent}, since, why), Outcome::kReleased);
  EXPECT_EQ(why, "pod gone (PodGone)");
}

TEST(RenderOutcomes, OneLinePerAddressAndASummary) {
  const api::ReleaseRequest r{.address = "10.0.0.9",
                              .owner = {.containerID = "c", .ifName = "eth0"}};
  const std::vector<RequestOutcome> outcomes{
      {.block = "b1", .node = "n1", .request = r, .outcome = Outcome::kReleased, .why = "gone"},
      {.block = "b1", .node = "n1", .request = r, .outcome = Outcome::kRefused, .why = "lives"},
      {.block = "b1", .node = "n1", .request = r, .outcome = Outcome::kTimedOut}};
  EXPECT_EQ(renderOutcomes(outcomes),
            "released 10.0.0.9 (container c interface eth0) in block b1 on node n1: gone\n"
            "refused 10.0.0.9 (container c interface eth0) in block b1 on node n1: lives\n"
            "timed out 10.0.0.9 (container c interface eth0) in block b1 on node n1\n"
            "1 released, 1 refused, 1 timed out.\n");
  EXPECT_FALSE(allReleased(outcomes));
  EXPECT_TRUE(allReleased({outcomes[0]}));
}

}  // namespace
}  // namespace vnetipam::kubectl_ipam
