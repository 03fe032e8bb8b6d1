#include "lib/azure/arm_client.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "lib/azure/bounded_json.h"
#include "unit/lib/azure/arm_fixture.h"
#include "unit/lib/azure/recording_observer.h"

namespace vnetipam::azure {
namespace {

using namespace std::chrono_literals;
using base::testing::FakeClock;
using http::testing::FakeTransport;
using nlohmann::json;
using testing::FakeCredential;
using testing::RecordingObserver;

constexpr std::string_view kEndpoint = testing::kArmEndpoint;
constexpr std::string_view kNic =
    "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic1"
    "?api-version=2024-05-01";
constexpr std::string_view kOperationPath =
    "/subscriptions/sub/providers/Microsoft.Network/locations/eastus/operations/op1"
    "?api-version=2024-05-01";

std::string cloudError(std::string_view code, std::string_view message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

class ArmClientTest : public ::testing::Test {
 protected:
  ArmClientOptions options() {
    ArmClientOptions options = testing::unpacedArmOptions();
    options.observer = &observer_;
    return options;
  }
  ArmClient makeClient() { return makeClient(options()); }
  ArmClient makeClient(ArmClientOptions opts) {
    return ArmClient(transport_, std::string(kEndpoint), credential_, clock_, std::move(opts));
  }
  std::vector<Clock::Duration> sleeps() const { return clock_.sleeps(); }

  FakeTransport transport_;
  FakeClock clock_;
  FakeCredential credential_;
  RecordingObserver observer_;
};

TEST_F(ArmClientTest, GetSendsTheTokenAndReturnsTheResource) {
  ArmClient client = makeClient();
  transport_.respond(200, R"({"id":"/x","name":"nic1"})");
  auto doc = client.get("GetNetworkInterface", kNic);
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  EXPECT_EQ((*doc)["name"], "nic1");
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, kNic);
  EXPECT_EQ(requests[0].headers.at("Authorization"), "Bearer tok-1");
  EXPECT_EQ(requests[0].headers.at("Accept"), "application/json");
  ASSERT_EQ(observer_.requests().size(), 1u);
  EXPECT_EQ(observer_.requests()[0].operation, "GetNetworkInterface");
  EXPECT_EQ(observer_.requests()[0].status, 200);
}

TEST_F(ArmClientTest, CloudErrorsCarryCodeMessageAndFirstDetail) {
  ArmClient client = makeClient();
  transport_.respond(400, cloudError("SubnetIsFull",
                                     "Subnet Subnet1 with address prefix 10.0.0.0/24 does not "
                                     "have enough capacity for 1 IP addresses."));
  auto full = client.get("GetSubnet", kNic);
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(full.error().httpStatus, 400);
  EXPECT_EQ(full.error().azureCode, "SubnetIsFull");
  EXPECT_EQ(full.error().message,
            std::string("GetSubnet ") + std::string(kNic) +
                ": HTTP 400: SubnetIsFull: Subnet Subnet1 with address prefix 10.0.0.0/24 does "
                "not have enough capacity for 1 IP addresses.");

  transport_.respond(404, cloudError("ResourceNotFound", "The Resource was not found."));
  auto missing = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().azureCode, "ResourceNotFound");

  transport_.respond(
      412, R"({"error":{"code":"PreconditionFailed","message":"Precondition failed.","details":[
        {"code":"PreconditionFailedEtagMismatch","message":"Etag provided in if-match header W/\"a\" does not match etag W/\"b\" of resource x."}]}})");
  auto stale = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kPreconditionFailed);
  EXPECT_NE(stale.error().message.find("(PreconditionFailedEtagMismatch: Etag provided"),
            std::string::npos)
      << stale.error().message;
}

TEST_F(ArmClientTest, ThrottlingIsWaitedOutWithRetryAfterSecondsOrDate) {
  ArmClient client = makeClient();
  transport_.respond(429, cloudError("RetryableError", "A retryable error occured."),
                     {{"Retry-After", "17"}});
  transport_.respond(429, "",
                     {{"Retry-After", "Mon, 01 Jan 2024 12:01:00 GMT"},
                      {"Date", "Mon, 01 Jan 2024 12:00:00 GMT"}});
  transport_.respond(429, "");  // no Retry-After: backoff, counting the waits so far
  transport_.respond(200, R"({"id":"/x"})");
  auto doc = client.get("GetNetworkInterface", kNic);
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  const std::vector<Clock::Duration> expected = {17s, 60s, 1s};
  EXPECT_EQ(sleeps(), expected);
  const auto waits = observer_.waits();
  ASSERT_EQ(waits.size(), 3u);
  for (const auto& w : waits) {
    EXPECT_EQ(w.reason, WaitReason::kThrottled);
    EXPECT_EQ(w.operation, "GetNetworkInterface");
  }
  EXPECT_EQ(observer_.requests().size(), 4u);
}

TEST_F(ArmClientTest, ThrottlingPausesEveryRequestOfItsClassNotOnlyTheRefusedOne) {
  auto opts = options();
  opts.maxThrottleRetries = 0;  // the refused GET comes back at once, so the pause is visible
  ArmClient client = makeClient(opts);
  transport_.respond(429, cloudError("SubscriptionRequestsThrottled", "slow down"),
                     {{"Retry-After", "17"}});
  transport_.respond(200, R"({"id":"/x"})");  // the next GET: waits the 17 s out first
  transport_.respond(200, R"({"id":"/y"})");  // a GET after the pause: no wait
  auto refused = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(sleeps().empty());
  ASSERT_TRUE(client.get("GetVirtualMachine", kNic).has_value());
  EXPECT_EQ(sleeps(), std::vector<Clock::Duration>{17s});
  ASSERT_TRUE(client.get("GetVirtualMachine", kNic).has_value());
  EXPECT_EQ(sleeps(), std::vector<Clock::Duration>{17s});
  const auto waits = observer_.waits();
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0].reason, WaitReason::kThrottled);
  EXPECT_EQ(waits[0].operation, "GetVirtualMachine");
}

TEST_F(ArmClientTest, ThrottledReadsDoNotPauseWrites) {
  auto opts = options();
  opts.maxThrottleRetries = 0;
  ArmClient client = makeClient(opts);
  transport_.respond(429, "", {{"Retry-After", "30"}});
  transport_.respond(200, R"({"id":"/x","properties":{"provisioningState":"Succeeded"}})");
  ASSERT_FALSE(client.get("GetNetworkInterface", kNic).has_value());
  auto put = client.send("PutNetworkInterface", "PUT", kNic, R"({"id":"/x"})");
  ASSERT_TRUE(put.has_value()) << put.error().message;
  EXPECT_EQ(put->status, 200);
  EXPECT_TRUE(sleeps().empty());
}

TEST_F(ArmClientTest, ALongRetryAfterIsCut) {
  auto opts = options();
  opts.maxRetryAfter = 120s;
  ArmClient client = makeClient(opts);
  transport_.respond(429, "", {{"Retry-After", "3600"}});
  transport_.respond(200, R"({"id":"/x"})");
  ASSERT_TRUE(client.get("GetNetworkInterface", kNic).has_value());
  EXPECT_EQ(sleeps(), std::vector<Clock::Duration>{120s});
}

TEST_F(ArmClientTest, ThrottlingThatNeverEndsIsReturned) {
  auto opts = options();
  opts.maxThrottleRetries = 2;
  ArmClient client = makeClient(opts);
  for (int i = 0; i < 3; ++i)
    transport_.respond(429, cloudError("RetryableErrorDueToAnotherOperation", "busy"),
                       {{"Retry-After", "1"}});
  auto doc = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().code, ErrorCode::kThrottled);
  EXPECT_EQ(doc.error().azureCode, "RetryableErrorDueToAnotherOperation");
  EXPECT_EQ(transport_.requests().size(), 3u);
}

TEST_F(ArmClientTest, AnotherOperationInProgressIsWaitedOut) {
  ArmClient client = makeClient();
  transport_.respond(409, cloudError("AnotherOperationInProgress",
                                     "Another operation on this or dependent resource is in "
                                     "progress."));
  transport_.respond(409, cloudError("AnotherOperationInProgress", "still"),
                     {{"Retry-After", "3"}});
  transport_.respond(200, R"({"id":"/x"})");
  auto doc = client.put("PutNetworkInterface", kNic, json{{"name", "nic1"}});
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  // 2 s in-progress backoff, halved by the zero jitter; then the server's Retry-After.
  const std::vector<Clock::Duration> expected = {1s, 3s};
  EXPECT_EQ(sleeps(), expected);
  EXPECT_EQ(observer_.waits()[0].reason, WaitReason::kOperationInProgress);
}

TEST_F(ArmClientTest, OtherConflictsAreReturnedAtOnce) {
  ArmClient client = makeClient();
  transport_.respond(409, cloudError("InUseSubnetCannotBeDeleted", "in use"));
  auto doc = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().code, ErrorCode::kConflict);
  EXPECT_EQ(doc.error().azureCode, "InUseSubnetCannotBeDeleted");
  EXPECT_TRUE(sleeps().empty());
}

TEST_F(ArmClientTest, TransientFailuresAreRetriedWithJitteredBackoff) {
  ArmClient client = makeClient();
  transport_.respond(408, "");
  transport_.respond(500, cloudError("InternalServerError", "oops"));
  transport_.failWith(http::ErrorCode::kConnectFailed, "connection refused");
  transport_.failWith(http::ErrorCode::kTransport, "connection reset");
  transport_.respond(503, "", {{"Retry-After", "2"}});
  transport_.respond(200, R"({"id":"/x"})");
  auto doc = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  // 500 ms doubling, half of it with zero jitter; a 5xx's Retry-After is honoured.
  const std::vector<Clock::Duration> expected = {250ms, 500ms, 1s, 2s, 2s};
  EXPECT_EQ(sleeps(), expected);
  for (const auto& w : observer_.waits())
    EXPECT_EQ(w.reason, WaitReason::kRetryBackoff);
  const auto requests = observer_.requests();
  ASSERT_EQ(requests.size(), 6u);
  EXPECT_EQ(requests[2].status, 0);  // no response
}

TEST_F(ArmClientTest, TransientFailuresGiveUpAfterMaxRetries) {
  auto opts = options();
  opts.maxRetries = 2;
  ArmClient client = makeClient(opts);
  for (int i = 0; i < 3; ++i)
    transport_.respond(502, cloudError("BadGateway", "upstream"));
  auto doc = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().code, ErrorCode::kServerError);
  EXPECT_EQ(doc.error().azureCode, "BadGateway");

  for (int i = 0; i < 3; ++i)
    transport_.failWith(http::ErrorCode::kTransport, "timed out");
  auto broken = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().code, ErrorCode::kTransport);
  EXPECT_NE(broken.error().message.find("after 2 retries"), std::string::npos);
  EXPECT_EQ(broken.error().message.find("tok-"), std::string::npos);
}

TEST_F(ArmClientTest, UnauthorizedRefreshesTheTokenOnce) {
  ArmClient client = makeClient();
  transport_.respond(401, cloudError("ExpiredAuthenticationToken", "expired"));
  transport_.respond(200, R"({"id":"/x"})");
  ASSERT_TRUE(client.get("GetNetworkInterface", kNic).has_value());
  EXPECT_EQ(credential_.invalidations(), 1);
  const auto requests = transport_.requests();
  EXPECT_EQ(requests[0].headers.at("Authorization"), "Bearer tok-1");
  EXPECT_EQ(requests[1].headers.at("Authorization"), "Bearer tok-2");

  transport_.respond(401, cloudError("InvalidAuthenticationToken", "bad"));
  transport_.respond(401, cloudError("InvalidAuthenticationToken", "bad"));
  auto doc = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().code, ErrorCode::kUnauthorized);
  EXPECT_EQ(credential_.invalidations(), 2);
}

TEST_F(ArmClientTest, ListFollowsNextLinkUnderTheEndpointOnly) {
  ArmClient client = makeClient();
  const std::string collection =
      "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces"
      "?api-version=2024-05-01";
  transport_.respond(200, json{{"value", {{{"id", "a"}}, {{"id", "b"}}}},
                               {"nextLink", std::string(kEndpoint) + collection + "&$skiptoken=2"}}
                              .dump());
  transport_.respond(200, json{{"value", {{{"id", "c"}}}}}.dump());
  auto items = client.list("ListNetworkInterfaces", collection);
  ASSERT_TRUE(items.has_value()) << items.error().message;
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[2]["id"], "c");
  EXPECT_EQ(transport_.requests()[1].target, collection + "&$skiptoken=2");

  transport_.respond(
      200, json{{"value", json::array()}, {"nextLink", "https://evil.example.com/steal"}}.dump());
  auto evil = client.list("ListNetworkInterfaces", collection);
  ASSERT_FALSE(evil.has_value());
  EXPECT_EQ(evil.error().code, ErrorCode::kBadResponse);
  EXPECT_EQ(transport_.requests().size(), 3u);  // the foreign URL was never sent
}

TEST_F(ArmClientTest, TargetOfHonoursAPathPrefix) {
  ArmClient client(transport_, "http://127.0.0.1:8080/arm/", credential_, clock_, options());
  EXPECT_EQ(client.targetOf("http://127.0.0.1:8080/arm/subscriptions/s?x=1").value(),
            "/subscriptions/s?x=1");
  EXPECT_EQ(client.targetOf("HTTP://127.0.0.1:8080/arm/a").value(), "/a");
  EXPECT_FALSE(client.targetOf("http://127.0.0.1:8080/armory/a").has_value());
  EXPECT_FALSE(client.targetOf("http://127.0.0.1:9090/arm/a").has_value());
}

TEST_F(ArmClientTest, PutFollowsAzureAsyncOperationThenReadsTheResource) {
  ArmClient client = makeClient();
  const std::string opUrl = std::string(kEndpoint) + std::string(kOperationPath);
  transport_.respond(201, R"({"id":"/x","properties":{"provisioningState":"Updating"}})",
                     {{"Azure-AsyncOperation", opUrl}, {"Retry-After", "10"}});
  transport_.respond(200, R"({"status":"InProgress"})", {{"Retry-After", "4"}});
  transport_.respond(500, "");  // a failed read of the status is retried
  transport_.respond(200, R"({"status":"Succeeded"})");
  transport_.respond(
      200, R"({"id":"/x","etag":"W/\"2\"","properties":{"provisioningState":"Succeeded"}})");
  auto doc = client.put("PutNetworkInterface", kNic, json{{"name", "nic1"}}, "W/\"1\"");
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  EXPECT_EQ((*doc)["etag"], "W/\"2\"");
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].headers.at("If-Match"), "W/\"1\"");
  EXPECT_EQ(requests[0].headers.at("Content-Type"), "application/json");
  EXPECT_EQ(requests[0].body, R"({"name":"nic1"})");
  EXPECT_EQ(requests[1].target, kOperationPath);
  EXPECT_EQ(requests[1].headers.at("Authorization"), "Bearer tok-1");
  EXPECT_EQ(requests[4].method, "GET");
  EXPECT_EQ(requests[4].target, kNic);
  // The PUT's Retry-After, the poll's, then the backoff before the poll that got a 500 is sent
  // again.
  const std::vector<Clock::Duration> expected = {10s, 4s, 250ms};
  EXPECT_EQ(sleeps(), expected);
  const auto waits = observer_.waits();
  EXPECT_EQ(waits[0].reason, WaitReason::kOperationPoll);
  EXPECT_EQ(observer_.requests()[1].operation, "PollOperation");
}

TEST_F(ArmClientTest, AFailedOrCanceledOperationCarriesItsError) {
  ArmClient client = makeClient();
  const std::string opUrl = std::string(kEndpoint) + std::string(kOperationPath);
  transport_.respond(200, R"({"id":"/x"})", {{"Azure-AsyncOperation", opUrl}});
  transport_.respond(
      200,
      R"({"status":"Failed","error":{"code":"PrivateIPAddressInUse","message":"IP configuration x is using the same private IP address 10.0.0.16 as IP configuration y."}})");
  auto failed = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kOperationFailed);
  EXPECT_EQ(failed.error().azureCode, "PrivateIPAddressInUse");
  EXPECT_NE(failed.error().message.find("the operation ended Failed: PrivateIPAddressInUse"),
            std::string::npos)
      << failed.error().message;

  transport_.respond(200, R"({"id":"/x"})", {{"Azure-AsyncOperation", opUrl}});
  transport_.respond(200, R"({"status":"Canceled"})");
  auto canceled = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_FALSE(canceled.has_value());
  EXPECT_EQ(canceled.error().code, ErrorCode::kOperationFailed);
  EXPECT_NE(canceled.error().message.find("ended Canceled"), std::string::npos);
}

TEST_F(ArmClientTest, PollingStopsAtTheOperationTimeout) {
  auto opts = options();
  opts.operationTimeout = 60s;
  ArmClient client = makeClient(opts);
  const std::string opUrl = std::string(kEndpoint) + std::string(kOperationPath);
  transport_.respond(200, R"({"id":"/x"})", {{"Azure-AsyncOperation", opUrl}});
  for (int i = 0; i < 20; ++i)
    transport_.respond(200, R"({"status":"InProgress"})", {{"Retry-After", "25"}});
  auto doc = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().code, ErrorCode::kTimeout);
  // The PUT, then polls at 5, 30 and 55 s; the next would be at 80 s, past the 60 s limit.
  EXPECT_EQ(transport_.requests().size(), 4u);
}

TEST_F(ArmClientTest, AnOperationStatusReadThatFailsIsAnError) {
  ArmClient client = makeClient();
  const std::string opUrl = std::string(kEndpoint) + std::string(kOperationPath);
  transport_.respond(200, R"({"id":"/x"})", {{"Azure-AsyncOperation", opUrl}});
  transport_.respond(404, cloudError("OperationNotFound", "gone"));
  auto doc = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(doc.error().azureCode, "OperationNotFound");
}

TEST_F(ArmClientTest, APutThatSucceededAtOnceIsNotPolled) {
  ArmClient client = makeClient();
  const std::string opUrl = std::string(kEndpoint) + std::string(kOperationPath);
  transport_.respond(
      201, R"({"id":"/x","etag":"W/\"2\"","properties":{"provisioningState":"Succeeded"}})",
      {{"Azure-AsyncOperation", opUrl}, {"Retry-After", "1"}});
  auto doc = client.put("PutNetworkInterface", kNic, json{{"name", "nic1"}});
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  EXPECT_EQ((*doc)["etag"], "W/\"2\"");
  EXPECT_EQ(transport_.requests().size(), 1u);
  EXPECT_TRUE(sleeps().empty());
}

TEST_F(ArmClientTest, PutFollowsLocationUntilTheResult) {
  ArmClient client = makeClient();
  const std::string location =
      std::string(kEndpoint) +
      "/subscriptions/sub/providers/Microsoft.Network/locations/eastus/operationResults/op1"
      "?api-version=2024-05-01";
  transport_.respond(202, "", {{"Location", location}, {"Retry-After", "1"}});
  transport_.respond(202, "", {{"Location", location}});
  transport_.respond(200, R"({"id":"/x","name":"done"})");
  auto doc = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  EXPECT_EQ((*doc)["name"], "done");
  EXPECT_EQ(transport_.requests().size(), 3u);
  const std::vector<Clock::Duration> expected = {1s, 5s};
  EXPECT_EQ(sleeps(), expected);
}

TEST_F(ArmClientTest, APutWithoutOperationHeadersReturnsItsBody) {
  ArmClient client = makeClient();
  transport_.respond(200, R"({"id":"/x","name":"now"})");
  auto doc = client.put("PutNetworkInterface", kNic, json::object());
  ASSERT_TRUE(doc.has_value()) << doc.error().message;
  EXPECT_EQ((*doc)["name"], "now");
  EXPECT_EQ(transport_.requests().size(), 1u);
}

TEST_F(ArmClientTest, TheWriteBudgetSpacesWritesAndLeavesReadsAlone) {
  auto opts = options();
  opts.writeQps = 0.5;
  opts.writeBurst = 2;
  ArmClient client = makeClient(opts);
  for (int i = 0; i < 3; ++i)
    transport_.respond(200, R"({"id":"/x"})");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(client.put("PutNetworkInterface", kNic, json::object()).has_value());
  EXPECT_EQ(sleeps(), std::vector<Clock::Duration>{2s});  // the third write waits for a token
  ASSERT_EQ(observer_.waits().size(), 1u);
  EXPECT_EQ(observer_.waits()[0].reason, WaitReason::kWriteBudget);
  for (int i = 0; i < 5; ++i)
    transport_.respond(200, R"({"id":"/x"})");
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(client.get("GetNetworkInterface", kNic).has_value());
  EXPECT_EQ(sleeps().size(), 1u);
}

TEST_F(ArmClientTest, TheDefaultBudgetsStayUnderArmHourlyLimits) {
  const ArmClientOptions defaults;
  // ARM: 1200 writes and 12000 reads per subscription per hour (reference §3c).
  EXPECT_LE(defaults.writeQps * 3600 + defaults.writeBurst, 1200);
  EXPECT_LE(defaults.readQps * 3600 + defaults.readBurst, 12000);
  // NRP: 1000 writes and 10000 reads per 5 minutes.
  EXPECT_LE(defaults.writeQps * 300 + defaults.writeBurst, 1000);
  EXPECT_LE(defaults.readQps * 300 + defaults.readBurst, 10000);
}

// ---- response bounds: a malformed or hostile body is an Error, never a crash or an exception ----

TEST_F(ArmClientTest, AnOverlongCloudErrorIsQuotedCutNotWhole) {
  // The message runs through redactSecrets; its regex recursed once per character after
  // "Bearer " and a 100 KB message overflowed the stack.
  ArmClient client = makeClient();
  transport_.respond(400, cloudError("Bad", "Bearer " + std::string(100'000, 'x')));
  auto refused = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(refused.error().azureCode, "Bad");
  EXPECT_NE(refused.error().message.find("Bad: Bearer <redacted>"), std::string::npos);
  EXPECT_LT(refused.error().message.size(), 2048u);

  // redactSecrets itself stays bounded whatever it is given.
  const std::string redacted = redactSecrets("Bearer " + std::string(200'000, 'y'));
  EXPECT_TRUE(redacted.starts_with("Bearer <redacted>")) << redacted.substr(0, 40);
  EXPECT_NE(redacted.find("(195911 bytes cut)"), std::string::npos) << redacted;
}

// A walk that names the members it reads keeps only those of each item, at any depth: a page
// of a thousand NICs is not built into a whole tree. The limits still apply to the text.
TEST_F(ArmClientTest, AWalkKeepsOnlyTheMembersItNames) {
  ArmClient client = makeClient();
  transport_.respond(200, R"({"value": [
      {"id": "/a", "etag": "e", "properties": {"primary": true, "ipConfigurations": [{"id": "c"}],
                                              "virtualMachine": {"id": "/vm", "extra": 1}}},
      {"id": "/b", "tags": {"id": "not read"}}],
    "nextLink": null, "other": "x"})");
  std::vector<json> items;
  static constexpr std::string_view kKeep[] = {"id", "properties", "virtualMachine", "primary"};
  auto pages = client.forEachPage(
      "ListNetworkInterfaces", kNic,
      [&items](json& page) -> Result<void> {
        for (auto& item : page)
          items.push_back(std::move(item));
        return {};
      },
      kKeep);
  ASSERT_TRUE(pages.has_value()) << pages.error().message;
  EXPECT_EQ(*pages, 1);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0], json::parse(R"({"id": "/a", "properties": {"primary": true,
                                       "virtualMachine": {"id": "/vm"}}})"));
  EXPECT_EQ(items[1], json::parse(R"({"id": "/b"})"));

  transport_.respond(200, R"({"value": [)" + std::string(65, '[') + std::string(65, ']') + "]}");
  auto deep = client.forEachPage(
      "ListNetworkInterfaces", kNic, [](json&) -> Result<void> { return {}; }, kKeep);
  ASSERT_FALSE(deep.has_value());
  EXPECT_EQ(deep.error().code, ErrorCode::kBadResponse);
}

TEST_F(ArmClientTest, BodiesOverTheSizeOrDepthLimitAreBadResponses) {
  ArmClient client = makeClient();
  transport_.respond(200,
                     R"({"id":"/x","deep":)" + std::string(65, '[') + std::string(65, ']') + "}");
  auto deep = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(deep.has_value());
  EXPECT_EQ(deep.error().code, ErrorCode::kBadResponse);
  EXPECT_EQ(deep.error().message, "GetNetworkInterface " + std::string(kNic) +
                                      ": the response nests deeper than 64 levels");

  transport_.respond(200, R"({"id":"/x"})" + std::string(kMaxArmBodyBytes, ' '));
  auto large = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(large.has_value());
  EXPECT_EQ(large.error().code, ErrorCode::kBadResponse);
  EXPECT_NE(large.error().message.find("more than the limit of 67108864"), std::string::npos)
      << large.error().message.substr(0, 300);

  transport_.respond(200, R"({"id":"/x",)");
  auto cut = client.get("GetNetworkInterface", kNic);
  ASSERT_FALSE(cut.has_value());
  EXPECT_NE(cut.error().message.find("is not JSON (syntax error at byte 12)"), std::string::npos)
      << cut.error().message;
}

TEST_F(ArmClientTest, AFinishedPutWithANonStringStateIsNotAnException) {
  // json::value("provisioningState", "") threw type_error on a number.
  ArmClient client = makeClient();
  transport_.respond(200, R"({"id":"/x","properties":{"provisioningState":5}})");
  nlohmann::json done;
  EXPECT_NO_THROW({
    auto put = client.put("PutNetworkInterface", kNic, json{{"id", "/x"}});
    ASSERT_TRUE(put.has_value()) << put.error().message;
    done = *put;
  });
  EXPECT_EQ(done["properties"]["provisioningState"], 5);  // no operation to follow: the body
}

TEST_F(ArmClientTest, ANextLinkThatCannotBeARequestTargetIsNotFollowed) {
  ArmClient client = makeClient();
  transport_.respond(200, json{{"value", json::array({json{{"id", "/a"}}})},
                               {"nextLink", std::string(kEndpoint) + "/page2 HTTP/1.1\r\nX: y"}}
                              .dump());
  auto items = client.list("ListNetworkInterfaces", kNic);
  ASSERT_FALSE(items.has_value());
  EXPECT_EQ(items.error().code, ErrorCode::kBadResponse);
  EXPECT_NE(items.error().message.find("white space or control characters"), std::string::npos)
      << items.error().message;
  EXPECT_EQ(transport_.requests().size(), 1u);

  transport_.respond(200, R"({"value":[],"nextLink":7})");
  auto typed = client.list("ListNetworkInterfaces", kNic);
  ASSERT_FALSE(typed.has_value());
  EXPECT_NE(typed.error().message.find("\"nextLink\" is not a string"), std::string::npos);
}

}  // namespace
}  // namespace vnetipam::azure
