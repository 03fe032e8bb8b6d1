#include "lib/kube/client.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::kube {
namespace {

using base::testing::FakeClock;
using http::testing::FakeTransport;
using nlohmann::json;

constexpr std::string_view kBlocks = "/apis/vnetipam.io/v1alpha1/ipblocks";
constexpr std::string_view kBlock = "/apis/vnetipam.io/v1alpha1/ipblocks/pods-10-0-0-0-28";

std::string status(int code, std::string_view reason, std::string_view message) {
  return json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
              {"reason", reason}, {"message", message}, {"code", code}}
      .dump();
}

class ClientTest : public ::testing::Test {
 protected:
  Client makeClient(ClientOptions options = {}) {
    options.qps = 0;                        // rate limiting has its own tests
    options.random01 = [] { return 0.0; };  // backoff = half the step, deterministic
    return Client(transport_, clock_, std::move(options));
  }
  FakeTransport transport_;
  FakeClock clock_;
};

TEST_F(ClientTest, GetSendsTheTokenAndReturnsTheObject) {
  int calls = 0;
  Client client = makeClient(
      {.token = [&calls]() -> Result<std::string> { return "token-" + std::to_string(++calls); }});
  transport_.respond(200, R"({"metadata":{"name":"a"}})");
  transport_.respond(200, R"({"metadata":{"name":"b"}})");
  auto first = client.get(kBlock);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ((*first)["metadata"]["name"], "a");
  ASSERT_TRUE(client.get(kBlock).has_value());
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, kBlock);
  EXPECT_EQ(requests[0].headers.at("authorization"), "Bearer token-1");
  // The provider is asked per request, so a rotated token is used at once.
  EXPECT_EQ(requests[1].headers.at("Authorization"), "Bearer token-2");
}

TEST_F(ClientTest, ListFollowsContinueTokensAndMergesEveryPage) {
  Client client = makeClient();
  transport_.respond(200,
                     R"({"kind":"IPBlockList","metadata":{"resourceVersion":"10","continue":"c1"},
               "items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})");
  transport_.respond(200, R"({"kind":"IPBlockList","metadata":{"resourceVersion":"10",
                              "continue":"c 2/="},"items":[{"metadata":{"name":"c"}}]})");
  transport_.respond(200, R"({"kind":"IPBlockList","metadata":{"resourceVersion":"10"},
                              "items":[{"metadata":{"name":"d"}}]})");
  auto list = client.list(kBlocks, {.labelSelector = "vnetipam.io/node=n1", .limit = 2});
  ASSERT_TRUE(list.has_value()) << list.error().message;
  ASSERT_EQ((*list)["items"].size(), 4u);
  EXPECT_EQ((*list)["items"][0]["metadata"]["name"], "a");
  EXPECT_EQ((*list)["items"][3]["metadata"]["name"], "d");
  EXPECT_EQ((*list)["metadata"]["resourceVersion"], "10");
  EXPECT_FALSE((*list)["metadata"].contains("continue"));
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 3u);
  const std::string base = std::string(kBlocks) + "?labelSelector=vnetipam.io%2Fnode%3Dn1&limit=2";
  EXPECT_EQ(requests[0].target, base);
  EXPECT_EQ(requests[1].target, base + "&continue=c1");
  EXPECT_EQ(requests[2].target, base + "&continue=c%202%2F%3D");
}

TEST_F(ClientTest, AnExpiredContinueTokenIsGone) {
  Client client = makeClient();
  transport_.respond(200, R"({"metadata":{"continue":"c1"},"items":[]})");
  transport_.respond(410, status(410, "Expired", "the continue token is too old"));
  auto list = client.list(kBlocks);
  ASSERT_FALSE(list.has_value());
  EXPECT_EQ(list.error().code, ErrorCode::kGone);
  EXPECT_EQ(list.error().httpStatus, 410);
}

TEST_F(ClientTest, AStaleUpdateIsAConflictWithTheServersReasonAndMessage) {
  Client client = makeClient();
  transport_.respond(409, status(409, "Conflict",
                                 "Operation cannot be fulfilled on ipblocks.vnetipam.io "
                                 "\"pods-10-0-0-0-28\": the object has been modified"));
  const json object = {{"metadata", {{"name", "pods-10-0-0-0-28"}, {"resourceVersion", "41"}}}};
  auto updated = client.update(kBlock, object);
  ASSERT_FALSE(updated.has_value());
  EXPECT_EQ(updated.error().code, ErrorCode::kConflict);
  EXPECT_EQ(updated.error().httpStatus, 409);
  EXPECT_EQ(updated.error().reason, "Conflict");
  EXPECT_NE(updated.error().message.find("PUT " + std::string(kBlock)), std::string::npos);
  EXPECT_NE(updated.error().message.find("the object has been modified"), std::string::npos);
  // A conflict is an answer, not a failure to retry.
  EXPECT_EQ(transport_.requests().size(), 1u);
  EXPECT_EQ(json::parse(transport_.requests()[0].body), object);
}

TEST_F(ClientTest, CreatingAnExistingNameIsAlreadyExistsNotConflict) {
  Client client = makeClient();
  transport_.respond(409, status(409, "AlreadyExists", "ipblocks \"x\" already exists"));
  auto created = client.create(kBlocks, json{{"metadata", {{"name", "x"}}}});
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(transport_.requests()[0].method, "POST");
  EXPECT_EQ(transport_.requests()[0].headers.at("Content-Type"), "application/json");
}

TEST_F(ClientTest, TooManyRequestsWaitsForRetryAfterThenRetries) {
  Client client = makeClient();
  transport_.respond(429, status(429, "TooManyRequests", "slow down"), {{"Retry-After", "7"}});
  transport_.respond(201, R"({"metadata":{"name":"x","uid":"u1"}})");
  // Even a create: a 429 is refused before the server acts on it.
  auto created = client.create(kBlocks, json{{"metadata", {{"name", "x"}}}});
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_EQ((*created)["metadata"]["uid"], "u1");
  EXPECT_EQ(transport_.requests().size(), 2u);
  ASSERT_EQ(clock_.sleeps().size(), 1u);
  EXPECT_EQ(clock_.sleeps()[0], std::chrono::seconds(7));
}

TEST_F(ClientTest, RetryAfterAsAnHttpDateWaitsUntilThatTime) {
  // Sun, 06 Nov 1994 08:49:30 GMT: seven seconds before the date the server names.
  const auto wallNow = std::chrono::sys_days(std::chrono::year(1994) / 11 / 6) +
                       std::chrono::hours(8) + std::chrono::minutes(49) + std::chrono::seconds(30);
  clock_.setWall(wallNow);
  Client client = makeClient();
  transport_.respond(429, status(429, "TooManyRequests", "slow down"),
                     {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  transport_.respond(429, status(429, "TooManyRequests", "slow down"),
                     {{"Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT"}});  // already past
  transport_.respond(200, R"({"metadata":{"name":"x"}})");
  ASSERT_TRUE(client.get(kBlock).has_value());
  EXPECT_EQ(clock_.sleeps(),
            (std::vector<base::Clock::Duration>{std::chrono::seconds(7), std::chrono::seconds(0)}));
}

TEST(ParseRetryAfter, AcceptsSecondsAndTheThreeHttpDateForms) {
  using std::chrono::seconds;
  const std::chrono::system_clock::time_point now =
      std::chrono::sys_days(std::chrono::year(1994) / 11 / 6) + std::chrono::hours(8);
  EXPECT_EQ(parseRetryAfter("120", now), seconds(120));
  EXPECT_EQ(parseRetryAfter(" 3 ", now), seconds(3));
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), seconds(49 * 60 + 37));
  EXPECT_EQ(parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), seconds(49 * 60 + 37));
  EXPECT_EQ(parseRetryAfter("Sun Nov  6 08:49:37 1994", now), seconds(49 * 60 + 37));
  EXPECT_EQ(parseRetryAfter("Mon, 07 Nov 1994 08:00:00 GMT", now), seconds(86400));
  // Sub-second distance rounds up, so a retry never comes early.
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:00:01 GMT", now - std::chrono::milliseconds(1)),
            seconds(2));
  EXPECT_EQ(parseRetryAfter("Sat, 05 Nov 1994 08:00:00 GMT", now), seconds(0));
  for (const char* bad : {"", "-1", "soon", "1.5", "Sun, 06 Nov 1994 08:49:37 PST",
                          "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT",
                          "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49 GMT"}) {
    EXPECT_EQ(parseRetryAfter(bad, now), std::nullopt) << bad;
  }
}

TEST_F(ClientTest, ServerErrorsAreRetriedForGetWithGrowingBackoff) {
  Client client = makeClient({.maxRetries = 5, .initialBackoff = std::chrono::milliseconds(100)});
  transport_.respond(503, "");
  transport_.failWith(http::ErrorCode::kTransport, "connection reset");
  transport_.respond(500, status(500, "InternalError", "etcd timeout"));
  transport_.respond(200, R"({"metadata":{"name":"a"}})");
  auto got = client.get(kBlock);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(transport_.requests().size(), 4u);
  // random01 = 0: half of 100, 200, 400 ms.
  ASSERT_EQ(clock_.sleeps().size(), 3u);
  EXPECT_EQ(clock_.sleeps()[0], std::chrono::milliseconds(50));
  EXPECT_EQ(clock_.sleeps()[1], std::chrono::milliseconds(100));
  EXPECT_EQ(clock_.sleeps()[2], std::chrono::milliseconds(200));
}

TEST_F(ClientTest, RetriesStopAfterMaxRetriesWithTheLastError) {
  Client client = makeClient({.maxRetries = 2});
  for (int i = 0; i < 5; ++i)
    transport_.respond(503, status(503, "ServiceUnavailable", "down"));
  auto got = client.get(kBlock);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::kServerError);
  EXPECT_EQ(got.error().httpStatus, 503);
  EXPECT_EQ(transport_.requests().size(), 3u);
}

TEST_F(ClientTest, ACreateWithAnUnknownOutcomeIsNeverRetried) {
  Client client = makeClient();
  transport_.respond(500, status(500, "InternalError", "etcd timeout"));
  auto created = client.create(kBlocks, json{{"metadata", {{"name", "x"}}}});
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().code, ErrorCode::kServerError);
  EXPECT_EQ(transport_.requests().size(), 1u);

  transport_.failWith(http::ErrorCode::kTransport, "timed out");
  created = client.create(kBlocks, json{{"metadata", {{"name", "y"}}}});
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().code, ErrorCode::kTransport);
  EXPECT_NE(created.error().message.find("outcome unknown"), std::string::npos);
  EXPECT_EQ(transport_.requests().size(), 2u);
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(ClientTest, ARefusedConnectionIsRetriedEvenForCreate) {
  Client client = makeClient();
  transport_.failWith(http::ErrorCode::kConnectFailed, "connection refused");
  transport_.respond(201, R"({"metadata":{"name":"x"}})");
  auto created = client.create(kBlocks, json{{"metadata", {{"name", "x"}}}});
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_EQ(transport_.requests().size(), 2u);
}

TEST_F(ClientTest, WritesAreRetriedOnlyWithAPrecondition) {
  Client client = makeClient();
  // Without a resourceVersion a PUT is not repeated after a 5xx.
  transport_.respond(502, "");
  auto plain = client.update(kBlock, json{{"metadata", {{"name", "x"}}}});
  ASSERT_FALSE(plain.has_value());
  EXPECT_EQ(transport_.requests().size(), 1u);

  // With one it is: a repeat of a write that did land fails its precondition instead.
  transport_.respond(502, "");
  transport_.respond(200, R"({"metadata":{"name":"x","resourceVersion":"43"}})");
  auto guarded =
      client.update(kBlock, json{{"metadata", {{"name", "x"}, {"resourceVersion", "42"}}}});
  ASSERT_TRUE(guarded.has_value()) << guarded.error().message;
  EXPECT_EQ(transport_.requests().size(), 3u);
}

TEST_F(ClientTest, ServerSideApplySendsTheContentTypeFieldManagerAndForce) {
  Client client = makeClient();
  transport_.respond(200, R"({"metadata":{"name":"x"},"status":{"used":3}})");
  const json patch = {{"apiVersion", "vnetipam.io/v1alpha1"},
                      {"kind", "IPBlock"},
                      {"metadata", {{"name", "x"}}},
                      {"status", {{"used", 3}}}};
  auto applied =
      client.applyStatus(kBlock, patch, {.fieldManager = "vnet-ipam-agent", .force = true});
  ASSERT_TRUE(applied.has_value()) << applied.error().message;
  const auto request = transport_.requests().at(0);
  EXPECT_EQ(request.method, "PATCH");
  EXPECT_EQ(request.target,
            std::string(kBlock) + "/status?fieldManager=vnet-ipam-agent&force=true");
  EXPECT_EQ(request.headers.at("Content-Type"), "application/apply-patch+yaml");
  EXPECT_EQ(json::parse(request.body), patch);

  transport_.respond(200, "{}");
  ASSERT_TRUE(client.apply(kBlock, patch, {.fieldManager = "ctl"}).has_value());
  EXPECT_EQ(transport_.requests().at(1).target, std::string(kBlock) + "?fieldManager=ctl");

  auto noManager = client.apply(kBlock, patch, {});
  ASSERT_FALSE(noManager.has_value());
  EXPECT_EQ(noManager.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(transport_.requests().size(), 2u);
}

TEST_F(ClientTest, MergePatchAndStatusSubresource) {
  Client client = makeClient();
  transport_.respond(200, "{}");
  transport_.respond(200, "{}");
  ASSERT_TRUE(client.mergePatch(kBlock, json{{"metadata", {{"labels", {{"a", "b"}}}}}}));
  ASSERT_TRUE(client.updateStatus(kBlock, json{{"status", {{"phase", "Ready"}}}}));
  const auto requests = transport_.requests();
  EXPECT_EQ(requests[0].method, "PATCH");
  EXPECT_EQ(requests[0].headers.at("Content-Type"), "application/merge-patch+json");
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].target, std::string(kBlock) + "/status");
}

TEST_F(ClientTest, DeleteSendsPreconditionsAndIsRetriedWithThem) {
  Client client = makeClient();
  transport_.respond(503, "");
  transport_.respond(200, R"({"kind":"Status","status":"Success"})");
  auto removed = client.remove(kBlock, {.uid = "u-1", .resourceVersion = "7"});
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "DELETE");
  const json body = json::parse(requests[1].body);
  EXPECT_EQ(body["kind"], "DeleteOptions");
  EXPECT_EQ(body["preconditions"]["uid"], "u-1");
  EXPECT_EQ(body["preconditions"]["resourceVersion"], "7");
}

TEST_F(ClientTest, NotFoundAndANonJsonBodyAreDistinctErrors) {
  Client client = makeClient();
  transport_.respond(404, status(404, "NotFound", "ipblocks \"x\" not found"));
  transport_.respond(200, "<html>proxy</html>");
  auto missing = client.get(kBlock);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().reason, "NotFound");
  auto garbage = client.get(kBlock);
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().code, ErrorCode::kBadResponse);
}

TEST_F(ClientTest, EveryRequestTakesATokenFromTheBucket) {
  Client client(transport_, clock_, {.qps = 5, .burst = 1, .random01 = [] { return 0.0; }});
  for (int i = 0; i < 3; ++i)
    transport_.respond(200, "{}");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(client.get(kBlock).has_value());
  ASSERT_EQ(clock_.sleeps().size(), 2u);
  EXPECT_EQ(clock_.sleeps()[0], std::chrono::milliseconds(200));
}

}  // namespace
}  // namespace vnetipam::kube
