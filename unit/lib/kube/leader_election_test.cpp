#include "lib/kube/leader_election.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/kube/fake_api_server.h"

namespace vnetipam::kube {
namespace {

using base::testing::FakeClock;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeApiServer;

constexpr std::string_view kLeases = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
constexpr std::string_view kLease =
    "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/vnet-ipam";

std::string status(int code, std::string_view reason) {
  return json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
              {"reason", reason}, {"message", reason},  {"code", code}}
      .dump();
}

// What one candidate saw through its callbacks.
struct Observed {
  int started = 0;
  int stopped = 0;
  std::vector<std::string> leaders;
  std::vector<std::string> log;
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  LeaderElectionConfig config(const std::string& identity, Observed& seen) {
    return LeaderElectionConfig{
        .leaseNamespace = "kube-system",
        .leaseName = "vnet-ipam",
        .identity = identity,
        .random01 = [] { return 0.0; },
        .onStartedLeading = [&seen] { ++seen.started; },
        .onStoppedLeading = [&seen] { ++seen.stopped; },
        .onNewLeader = [&seen](const std::string& id) { seen.leaders.push_back(id); },
        .log = [&seen](std::string_view line) { seen.log.emplace_back(line); },
    };
  }

  json spec() const { return storedLease()["spec"]; }
  json storedLease() const { return server_.get(std::string(kLease)).value_or(json()); }

  // Holds objects with real resourceVersion semantics, so two electors can contend for one
  // Lease: the scripted FakeTransport cannot play that part, since what is answered depends on
  // what the other one wrote.
  FakeApiServer server_;
  FakeClock clock_;  // calendar time 2026-11-26T12:00:00Z at the start
  base::Clock::TimePoint start_ = clock_.now();
  // No retries: each round is one attempt per request, as the tests count them.
  Client client_{server_, clock_, {.qps = 0, .maxRetries = 0}};
  Observed a_;
  Observed b_;
  LeaderElector electorA_{client_, clock_, config("a", a_)};
  LeaderElector electorB_{client_, clock_, config("b", b_)};
};

TEST_F(LeaderElectionTest, ValidateRefusesInconsistentDurations) {
  Observed seen;
  EXPECT_EQ(LeaderElector::validate(config("a", seen)), std::nullopt);
  auto bad = config("a", seen);
  bad.renewDeadline = seconds(20);
  EXPECT_NE(LeaderElector::validate(bad), std::nullopt);
  bad = config("", seen);
  EXPECT_NE(LeaderElector::validate(bad), std::nullopt);
}

TEST_F(LeaderElectionTest, AcquiresAnAbsentLeaseByCreatingIt) {
  const ElectionRound round = electorA_.tryAcquireOrRenew();
  EXPECT_TRUE(round.acquiredOrRenewed);
  EXPECT_TRUE(round.leading);
  EXPECT_TRUE(electorA_.isLeader());
  EXPECT_EQ(a_.started, 1);
  EXPECT_EQ(a_.leaders, std::vector<std::string>{"a"});
  EXPECT_EQ(server_.requests().back().method, "POST");
  EXPECT_EQ(server_.requests().back().target, kLeases);
  const json s = spec();
  EXPECT_EQ(s["holderIdentity"], "a");
  EXPECT_EQ(s["leaseDurationSeconds"], 15);
  EXPECT_EQ(s["acquireTime"], "2026-11-26T12:00:00.000000Z");
  EXPECT_EQ(s["renewTime"], "2026-11-26T12:00:00.000000Z");
  EXPECT_EQ(s["leaseTransitions"], 0);
}

TEST_F(LeaderElectionTest, RenewKeepsTheTermAndMovesRenewTime) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  const std::string rv = storedLease()["metadata"]["resourceVersion"];
  clock_.advance(std::chrono::microseconds(2'000'250));  // renewTime shows microseconds
  const ElectionRound round = electorA_.tryAcquireOrRenew();
  EXPECT_TRUE(round.acquiredOrRenewed);
  EXPECT_TRUE(round.leading);
  EXPECT_EQ(a_.started, 1);  // one term
  const auto put = server_.requests().back();
  EXPECT_EQ(put.method, "PUT");
  EXPECT_EQ(json::parse(put.body)["metadata"]["resourceVersion"], rv);  // the precondition
  const json s = spec();
  EXPECT_EQ(s["acquireTime"], "2026-11-26T12:00:00.000000Z");
  EXPECT_EQ(s["renewTime"], "2026-11-26T12:00:02.000250Z");
  EXPECT_EQ(s["leaseTransitions"], 0);
}

TEST_F(LeaderElectionTest, AnotherHolderNotExpiredIsNotTakenOver) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  ElectionRound round = electorB_.tryAcquireOrRenew();
  EXPECT_FALSE(round.leading);
  EXPECT_FALSE(round.acquiredOrRenewed);
  EXPECT_EQ(round.holder, "a");
  EXPECT_FALSE(round.error.has_value());
  EXPECT_EQ(b_.leaders, std::vector<std::string>{"a"});
  clock_.advance(seconds(14));
  EXPECT_FALSE(electorB_.tryAcquireOrRenew().leading);
  EXPECT_EQ(b_.started, 0);
  EXPECT_EQ(spec()["holderIdentity"], "a");
}

TEST_F(LeaderElectionTest, ExpiryIsJudgedByWhenWeSawTheRecordChangeNotByItsRenewTime) {
  // A holder whose wall clock is a year behind writes an old renewTime; by the remote time the
  // lease looks long expired, yet it was renewed just now and must be respected.
  FakeClock skewedClock(clock_.wallNow() - std::chrono::hours(24 * 365));
  const auto advance = [&](base::Clock::Duration d) {
    clock_.advance(d);
    skewedClock.advance(d);
  };
  LeaderElector skewedA(client_, skewedClock, config("a", a_));
  ASSERT_TRUE(skewedA.tryAcquireOrRenew().leading);     // t = 0
  EXPECT_FALSE(electorB_.tryAcquireOrRenew().leading);  // B sees the record at t = 0
  advance(seconds(8));
  ASSERT_TRUE(skewedA.tryAcquireOrRenew().acquiredOrRenewed);  // t = 8: a new record
  advance(seconds(6));
  EXPECT_FALSE(electorB_.tryAcquireOrRenew().leading);  // t = 14: B sees the change
  advance(seconds(14));
  EXPECT_FALSE(electorB_.tryAcquireOrRenew().leading);  // t = 28: 14 s after the change it saw
  advance(milliseconds(1001));
  EXPECT_TRUE(electorB_.tryAcquireOrRenew().leading);  // t = 29.001: expired by our clock
}

TEST_F(LeaderElectionTest, ExpiredLeaseIsTakenOverAndTheOldLeaderStops) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  ASSERT_FALSE(electorB_.tryAcquireOrRenew().leading);  // B sees the record now
  clock_.advance(seconds(15));  // A is gone: no renewal for a whole leaseDuration
  const ElectionRound round = electorB_.tryAcquireOrRenew();
  EXPECT_TRUE(round.leading);
  EXPECT_EQ(b_.started, 1);
  EXPECT_EQ(b_.leaders, (std::vector<std::string>{"a", "b"}));
  const json s = spec();
  EXPECT_EQ(s["holderIdentity"], "b");
  EXPECT_EQ(s["leaseTransitions"], 1);
  EXPECT_EQ(s["acquireTime"], "2026-11-26T12:00:15.000000Z");

  // A comes back (it was paused, not dead): past its renew deadline, it stops without writing.
  const std::size_t requests = server_.requests().size();
  const ElectionRound old = electorA_.tryAcquireOrRenew();
  EXPECT_FALSE(old.leading);
  EXPECT_EQ(a_.stopped, 1);
  EXPECT_EQ(server_.requests().size(), requests);
  EXPECT_EQ(spec()["holderIdentity"], "b");
}

TEST_F(LeaderElectionTest, ALeaderThatSeesAnotherHolderStopsAtOnce) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  json lease = storedLease();
  lease["spec"]["holderIdentity"] = "intruder";  // e.g. written by hand with kubectl
  server_.put(std::string(kLease), lease);
  clock_.advance(seconds(2));
  const ElectionRound round = electorA_.tryAcquireOrRenew();
  EXPECT_FALSE(round.leading);
  EXPECT_EQ(round.holder, "intruder");
  EXPECT_EQ(a_.stopped, 1);
  EXPECT_EQ(a_.leaders, (std::vector<std::string>{"a", "intruder"}));
  EXPECT_EQ(spec()["holderIdentity"], "intruder");
}

TEST_F(LeaderElectionTest, ConflictOnUpdateIsNotLeaderThisRound) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  ASSERT_FALSE(electorB_.tryAcquireOrRenew().leading);
  clock_.advance(seconds(16));
  server_.failNext("PUT", http::HttpResponse{409, {}, status(409, "Conflict")});
  const ElectionRound round = electorB_.tryAcquireOrRenew();
  EXPECT_FALSE(round.leading);
  ASSERT_TRUE(round.error.has_value());
  EXPECT_EQ(round.error->code, ErrorCode::kConflict);
  EXPECT_EQ(b_.started, 0);
  EXPECT_EQ(spec()["holderIdentity"], "a");
  EXPECT_TRUE(electorB_.tryAcquireOrRenew().leading);  // the next round wins
}

TEST_F(LeaderElectionTest, LosingTheCreateRaceIsNotLeader) {
  // B read "absent" but A created the lease before B's create arrived.
  server_.failNext("GET", http::HttpResponse{404, {}, status(404, "NotFound")});
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  server_.failNext("GET", http::HttpResponse{404, {}, status(404, "NotFound")});
  const ElectionRound round = electorB_.tryAcquireOrRenew();
  EXPECT_FALSE(round.leading);
  ASSERT_TRUE(round.error.has_value());
  EXPECT_EQ(round.error->code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(spec()["holderIdentity"], "a");
}

TEST_F(LeaderElectionTest, RenewFailingPastRenewDeadlineStopsLeading) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  for (int i = 1; i <= 4; ++i) {  // t = 2, 4, 6, 8 s: failing, still within the 10 s deadline
    clock_.advance(seconds(2));
    server_.failNext("GET", http::HttpResponse{503, {}, status(503, "ServiceUnavailable")});
    const ElectionRound round = electorA_.tryAcquireOrRenew();
    EXPECT_FALSE(round.acquiredOrRenewed);
    EXPECT_TRUE(round.leading) << "t=" << 2 * i;
    EXPECT_EQ(a_.stopped, 0);
  }
  clock_.advance(seconds(2));  // t = 10 s
  server_.failNext("GET", http::Result<http::HttpResponse>(std::unexpected(
                              http::Error{http::ErrorCode::kTransport, "read timed out"})));
  const ElectionRound round = electorA_.tryAcquireOrRenew();
  EXPECT_FALSE(round.leading);
  EXPECT_FALSE(electorA_.isLeader());
  EXPECT_EQ(a_.stopped, 1);
  EXPECT_EQ(a_.started, 1);
}

TEST_F(LeaderElectionTest, ReleaseClearsTheLeaseSoTheStandbyTakesOverAtOnce) {
  ASSERT_TRUE(electorA_.tryAcquireOrRenew().leading);
  ASSERT_FALSE(electorB_.tryAcquireOrRenew().leading);
  clock_.advance(seconds(1));
  ASSERT_TRUE(electorA_.release().has_value());
  EXPECT_EQ(a_.stopped, 1);
  EXPECT_FALSE(electorA_.isLeader());
  json s = spec();
  EXPECT_EQ(s["holderIdentity"], "");
  EXPECT_EQ(s["leaseDurationSeconds"], 1);
  EXPECT_EQ(s["leaseTransitions"], 0);

  // No leaseDuration wait: the next round of the standby takes it.
  EXPECT_TRUE(electorB_.tryAcquireOrRenew().leading);
  s = spec();
  EXPECT_EQ(s["holderIdentity"], "b");
  EXPECT_EQ(s["leaseTransitions"], 1);
  EXPECT_TRUE(electorA_.release().has_value());  // not leading: nothing to do
  EXPECT_EQ(spec()["holderIdentity"], "b");
}

TEST_F(LeaderElectionTest, RunRenewsEveryRetryPeriodUntilCancelledThenReleases) {
  http::CancelSignal cancel;
  int puts = 0;
  server_.intercept =
      [&](const http::HttpRequest& request) -> std::optional<http::Result<http::HttpResponse>> {
    if (request.method == "PUT" && ++puts == 3) cancel.cancel();  // as a SIGTERM handler would
    return std::nullopt;
  };
  electorA_.run(cancel);
  EXPECT_EQ(a_.started, 1);
  EXPECT_EQ(a_.stopped, 1);
  EXPECT_EQ(puts, 4);  // three renewals and the release
  EXPECT_EQ(clock_.now() - start_, seconds(6));
  EXPECT_EQ(spec()["holderIdentity"], "");
}

TEST_F(LeaderElectionTest, RunReturnsWhenRenewalsFailForRenewDeadline) {
  int requests = 0;
  server_.intercept =
      [&](const http::HttpRequest&) -> std::optional<http::Result<http::HttpResponse>> {
    if (++requests <= 2) return std::nullopt;  // GET (absent) and the create succeed
    return http::HttpResponse{503, {}, status(503, "ServiceUnavailable")};
  };
  http::CancelSignal never;
  electorA_.run(never);
  EXPECT_EQ(a_.started, 1);
  EXPECT_EQ(a_.stopped, 1);
  EXPECT_FALSE(electorA_.isLeader());
  EXPECT_EQ(clock_.now() - start_, seconds(10));  // the renew deadline, not the lease duration
}

}  // namespace
}  // namespace vnetipam::kube
