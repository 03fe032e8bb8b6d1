#include "lib/azure/credentials.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "unit/lib/azure/recording_observer.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::azure {
namespace {

using namespace std::chrono_literals;
using base::testing::FakeClock;
using http::testing::FakeTransport;
using testing::RecordingObserver;

constexpr std::string_view kAudience = "https://management.azure.com/";

class CredentialTest : public ::testing::Test {
 protected:
  CredentialOptions options() {
    return {.random01 = [] { return 0.0; }, .observer = &observer_};
  }
  FakeTransport transport_;
  FakeClock clock_;
  RecordingObserver observer_;
};

TEST_F(CredentialTest, ClientSecretPostsTheV2FormAndCachesTheToken) {
  ClientSecretCredentialImpl credential(transport_, clock_, "tenant-1", "client-1",
                                        "s3cret&=", std::string(kAudience), options());
  transport_.respond(200, R"({"token_type":"Bearer","expires_in":3599,"access_token":"tok-1"})");
  auto token = credential.token();
  ASSERT_TRUE(token.has_value()) << token.error().message;
  EXPECT_EQ(*token, "tok-1");
  // Cached: no second request.
  clock_.advance(30min);
  EXPECT_EQ(credential.token().value(), "tok-1");
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/tenant-1/oauth2/v2.0/token");
  EXPECT_EQ(requests[0].headers.at("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(requests[0].body,
            "grant_type=client_credentials&client_id=client-1"
            "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_secret=s3cret%26%3D");
  ASSERT_EQ(observer_.requests().size(), 1u);
  EXPECT_EQ(observer_.requests()[0].operation, "AcquireToken");
  EXPECT_EQ(observer_.requests()[0].status, 200);
}

TEST_F(CredentialTest, RefreshesBeforeExpiry) {
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        options());
  transport_.respond(200, R"({"expires_in":3600,"access_token":"tok-1"})");
  transport_.respond(200, R"({"expires_in":3600,"access_token":"tok-2"})");
  EXPECT_EQ(credential.token().value(), "tok-1");
  clock_.advance(54min + 59s);  // 5 minutes and a second before expiry: still fresh
  EXPECT_EQ(credential.token().value(), "tok-1");
  clock_.advance(1s);  // the 5 minute margin reached: refresh while the old one still works
  EXPECT_EQ(credential.token().value(), "tok-2");
  EXPECT_EQ(transport_.requests().size(), 2u);
}

TEST_F(CredentialTest, ShortLivedTokensRefreshAtHalfLife) {
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        options());
  transport_.respond(200, R"({"expires_in":"120","access_token":"tok-1"})");
  transport_.respond(200, R"({"expires_in":"120","access_token":"tok-2"})");
  EXPECT_EQ(credential.token().value(), "tok-1");
  clock_.advance(59s);
  EXPECT_EQ(credential.token().value(), "tok-1");
  clock_.advance(1s);
  EXPECT_EQ(credential.token().value(), "tok-2");
}

TEST_F(CredentialTest, AFailedRefreshKeepsAStillValidToken) {
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        options());
  transport_.respond(200, R"({"expires_in":3600,"access_token":"tok-1"})");
  EXPECT_EQ(credential.token().value(), "tok-1");
  clock_.advance(56min);
  transport_.respond(400, R"({"error":"temporarily_unavailable"})");
  EXPECT_EQ(credential.token().value(), "tok-1");
  clock_.advance(4min);  // expired now
  transport_.respond(400, R"({"error":"invalid_client"})");
  EXPECT_FALSE(credential.token().has_value());
}

TEST_F(CredentialTest, InvalidateFetchesAgain) {
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        options());
  transport_.respond(200, R"({"expires_in":3600,"access_token":"tok-1"})");
  transport_.respond(200, R"({"expires_in":3600,"access_token":"tok-2"})");
  EXPECT_EQ(credential.token().value(), "tok-1");
  credential.invalidate();
  EXPECT_EQ(credential.token().value(), "tok-2");
}

TEST_F(CredentialTest, RefusalIsAnAuthErrorThatNamesTheCodeButNotTheSecret) {
  ClientSecretCredentialImpl credential(transport_, clock_, "tenant-1", "client-1",
                                        "very-secret-value", std::string(kAudience), options());
  transport_.respond(401,
                     R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid )"
                     R"(client secret provided.","error_codes":[7000215]})");
  auto token = credential.token();
  ASSERT_FALSE(token.has_value());
  EXPECT_EQ(token.error().code, ErrorCode::kAuth);
  EXPECT_EQ(token.error().httpStatus, 401);
  EXPECT_EQ(token.error().azureCode, "invalid_client");
  EXPECT_EQ(token.error().message,
            "client secret token for client client-1 in tenant tenant-1: HTTP 401: "
            "invalid_client: AADSTS7000215: Invalid client secret provided.");
  EXPECT_EQ(transport_.requests().size(), 1u);  // a 401 is not retried
}

TEST_F(CredentialTest, AMalformedSuccessNeverEchoesTheBody) {
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        options());
  transport_.respond(200, R"({"access_token":"leaky-token","expires_in":"soon"})");
  auto token = credential.token();
  ASSERT_FALSE(token.has_value());
  EXPECT_EQ(token.error().code, ErrorCode::kBadResponse);
  EXPECT_EQ(token.error().message.find("leaky"), std::string::npos);
  EXPECT_NE(token.error().message.find("expires_in"), std::string::npos);
}

TEST_F(CredentialTest, ManagedIdentityAsksImdsWithTheMetadataHeader) {
  ManagedIdentityCredentialImpl credential(transport_, clock_, "", std::string(kAudience),
                                           options());
  transport_.respond(200, R"({"access_token":"mi-tok","refresh_token":"","expires_in":"3599",
    "expires_on":"1506484173","not_before":"1506480273",
    "resource":"https://management.azure.com/","token_type":"Bearer"})");
  EXPECT_EQ(credential.token().value(), "mi-tok");
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target,
            "/metadata/identity/oauth2/token?api-version=2018-02-01"
            "&resource=https%3A%2F%2Fmanagement.azure.com%2F");
  EXPECT_EQ(requests[0].headers.at("Metadata"), "true");
}

TEST_F(CredentialTest, ManagedIdentityNamesAUserAssignedIdentity) {
  ManagedIdentityCredentialImpl byClient(transport_, clock_, "abcd-1", std::string(kAudience),
                                         options());
  ManagedIdentityCredentialImpl byResource(
      transport_, clock_,
      "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
      "userAssignedIdentities/id1",
      std::string(kAudience), options());
  transport_.respond(200, R"({"access_token":"a","expires_in":"3599"})");
  transport_.respond(200, R"({"access_token":"b","expires_in":"3599"})");
  ASSERT_TRUE(byClient.token().has_value());
  ASSERT_TRUE(byResource.token().has_value());
  const auto requests = transport_.requests();
  EXPECT_TRUE(requests[0].target.ends_with("&client_id=abcd-1")) << requests[0].target;
  EXPECT_TRUE(requests[1].target.ends_with(
      "&mi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Frg%2Fproviders%2F"
      "Microsoft.ManagedIdentity%2FuserAssignedIdentities%2Fid1"))
      << requests[1].target;
}

TEST_F(CredentialTest, ImdsRetriesTransientAnswersWithBackoffAndRetryAfter) {
  ManagedIdentityCredentialImpl credential(transport_, clock_, "", std::string(kAudience),
                                           options());
  transport_.respond(404, "{}");  // identity not yet assigned
  transport_.respond(429, "{}", {{"Retry-After", "7"}});
  transport_.respond(500, "{}");
  transport_.failWith(http::ErrorCode::kTransport);
  transport_.respond(200, R"({"access_token":"mi","expires_in":"3599"})");
  EXPECT_EQ(credential.token().value(), "mi");
  // random01 = 0: half the step; 1 s doubling per attempt; Retry-After as given.
  const std::vector<Clock::Duration> expected = {500ms, 7s, 2s, 4s};
  EXPECT_EQ(clock_.sleeps(), expected);
  const auto waits = observer_.waits();
  ASSERT_EQ(waits.size(), 4u);
  EXPECT_EQ(waits[1].reason, WaitReason::kThrottled);
  EXPECT_EQ(waits[0].reason, WaitReason::kRetryBackoff);
}

TEST_F(CredentialTest, TokenEndpointGivesUpAfterMaxRetries) {
  auto opts = options();
  opts.maxRetries = 2;
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        opts);
  transport_.failWith(http::ErrorCode::kConnectFailed, "connection refused");
  transport_.failWith(http::ErrorCode::kConnectFailed, "connection refused");
  transport_.failWith(http::ErrorCode::kConnectFailed, "connection refused");
  auto token = credential.token();
  ASSERT_FALSE(token.has_value());
  EXPECT_EQ(token.error().code, ErrorCode::kConnectFailed);
  EXPECT_EQ(transport_.requests().size(), 3u);
  // A 404 from Entra ID is not the IMDS "not yet" and is not retried.
  transport_.respond(404, R"({"error":"not_found"})");
  credential.invalidate();
  EXPECT_EQ(credential.token().error().httpStatus, 404);
  EXPECT_EQ(transport_.requests().size(), 4u);
}

class WorkloadIdentityTest : public CredentialTest {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("azure-wi-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void writeToken(std::string_view text) { std::ofstream(path_, std::ios::trunc) << text; }
  std::filesystem::path path_;
};

TEST_F(WorkloadIdentityTest, SendsTheFileAsAssertionAndRereadsItOnEveryRefresh) {
  WorkloadIdentityCredentialImpl credential(transport_, clock_, "tenant-1", "client-1",
                                            path_.string(), std::string(kAudience), options());
  writeToken("eyJhbGciOiJSUzI1NiJ9.first.sig\n");
  transport_.respond(200, R"({"expires_in":3600,"access_token":"wi-1"})");
  transport_.respond(200, R"({"expires_in":3600,"access_token":"wi-2"})");
  EXPECT_EQ(credential.token().value(), "wi-1");
  writeToken("eyJhbGciOiJSUzI1NiJ9.second.sig");  // kubelet rotated it
  clock_.advance(56min);
  EXPECT_EQ(credential.token().value(), "wi-2");
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/tenant-1/oauth2/v2.0/token");
  const std::string prefix =
      "grant_type=client_credentials&client_id=client-1"
      "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
      "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
      "&client_assertion=";
  EXPECT_EQ(requests[0].body, prefix + "eyJhbGciOiJSUzI1NiJ9.first.sig");
  EXPECT_EQ(requests[1].body, prefix + "eyJhbGciOiJSUzI1NiJ9.second.sig");
}

TEST_F(WorkloadIdentityTest, AMissingOrEmptyFileIsNamedWithoutContents) {
  WorkloadIdentityCredentialImpl credential(transport_, clock_, "t", "c", path_.string(),
                                            std::string(kAudience), options());
  auto missing = credential.token();
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kAuth);
  EXPECT_EQ(missing.error().message,
            "workload identity token file \"" + path_.string() + "\" cannot be read");
  writeToken("\n");
  auto empty = credential.token();
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message.find("is empty"), std::string::npos);
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(CredentialTest, MakeCredentialFollowsTheConfig) {
  AzureConfig config;
  config.credential = CredentialKind::kManagedIdentity;
  config.endpoints.tokenAudience = std::string(kAudience);
  FakeTransport authority;
  auto credential = makeCredential(config, authority, transport_, clock_, options());
  transport_.respond(200, R"({"access_token":"mi","expires_in":"3599"})");
  EXPECT_EQ(credential->token().value(), "mi");
  EXPECT_TRUE(authority.requests().empty());
  EXPECT_EQ(transport_.requests().size(), 1u);
}

// ---- the token response's bounds: what a broken or hostile endpoint sends is kBadResponse ----

TEST(TokenResponseTest, ALifetimeBeyondAWeekIsRefusedNotOverflowed) {
  // 2^62 s in the steady clock's nanoseconds overflowed: refreshAt_ landed in the past.
  for (const std::string_view expires :
       {"4611686018427387904", "\"4611686018427387904\"", "604801"}) {
    auto token = parseTokenResponse(
        R"({"access_token":"t","expires_in":)" + std::string(expires) + "}", "x");
    ASSERT_FALSE(token.has_value()) << expires;
    EXPECT_EQ(token.error().code, ErrorCode::kBadResponse);
    EXPECT_NE(token.error().message.find("more than the limit of 604800 s"), std::string::npos)
        << token.error().message;
  }
  EXPECT_TRUE(parseTokenResponse(R"({"access_token":"t","expires_in":604800})", "x").has_value());
}

TEST(TokenResponseTest, ATokenThatCannotBeAHeaderValueIsRefused) {
  // It goes into "Authorization: Bearer <token>": a CR LF would end that header early.
  auto split = parseTokenResponse(R"({"access_token":"a\r\nX-Evil: 1","expires_in":60})", "x");
  ASSERT_FALSE(split.has_value());
  EXPECT_EQ(split.error().code, ErrorCode::kBadResponse);
  EXPECT_NE(split.error().message.find("visible ASCII"), std::string::npos);
  EXPECT_EQ(split.error().message.find("Evil"), std::string::npos);  // never echoed

  const std::string huge(65 * 1024, 'a');
  auto big = parseTokenResponse(R"({"access_token":")" + huge + R"(","expires_in":60})", "x");
  ASSERT_FALSE(big.has_value());
  EXPECT_NE(big.error().message.find("access_token of 66560 bytes"), std::string::npos)
      << big.error().message;
}

TEST(TokenResponseTest, SizeAndNestingAreCheckedBeforeParsing) {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  auto nested = parseTokenResponse(R"({"access_token":"t","expires_in":60,"claims":)" + deep + "}",
                                   "token for c");
  ASSERT_FALSE(nested.has_value());
  EXPECT_EQ(nested.error().code, ErrorCode::kBadResponse);
  EXPECT_EQ(nested.error().message,
            "token for c: token response: the response nests deeper than 64 levels");

  const std::string padded = R"({"access_token":"t","expires_in":60})" + std::string(1U << 20, ' ');
  auto large = parseTokenResponse(padded, "token for c");
  ASSERT_FALSE(large.has_value());
  EXPECT_NE(large.error().message.find("more than the limit of 1048576"), std::string::npos)
      << large.error().message;

  auto broken = parseTokenResponse(R"({"access_token":"secret-xyz",)", "token for c");
  ASSERT_FALSE(broken.has_value());
  EXPECT_NE(broken.error().message.find("not JSON (syntax error at byte"), std::string::npos)
      << broken.error().message;
  EXPECT_EQ(broken.error().message.find("secret-xyz"), std::string::npos);
}

TEST(TokenResponseTest, ANumberNoDoubleHoldsIsABadResponseNotAnException) {
  // Found by fuzz/azure_decoders: json::parse throws out_of_range (not parse_error) for it.
  auto token = parseTokenResponse(R"({"access_token":"t","expires_in":1e999})", "token for c");
  ASSERT_FALSE(token.has_value());
  EXPECT_EQ(token.error().message,
            "token for c: token response: the response holds a number "
            "too large to read");
}

TEST_F(CredentialTest, ARefusalQuotesABoundedCode) {
  ClientSecretCredentialImpl credential(transport_, clock_, "t", "c", "s", std::string(kAudience),
                                        options());
  transport_.respond(400, R"({"error":")" + std::string(100'000, 'e') + R"("})");
  auto token = credential.token();
  ASSERT_FALSE(token.has_value());
  EXPECT_EQ(token.error().code, ErrorCode::kAuth);
  EXPECT_EQ(token.error().azureCode, std::string(256, 'e') + "...");
  EXPECT_LT(token.error().message.size(), 1024u);
}

}  // namespace
}  // namespace vnetipam::azure
