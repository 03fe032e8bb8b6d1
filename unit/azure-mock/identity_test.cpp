#include "azure-mock/identity.h"

#include <gtest/gtest.h>

#include "unit/azure-mock/fakes.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;
using testing::MockFixture;
using testing::parsed;

constexpr std::string_view kForm = "application/x-www-form-urlencoded";

ArmResponse postForm(MockFixture& m, std::string path, std::string body) {
  return m.call("POST", std::move(path), std::move(body), {{"Content-Type", std::string(kForm)}});
}

TEST(Identity, V2ClientSecretGivesNumericExpiry) {
  MockFixture m;
  auto r = postForm(m, "/tenant1/oauth2/v2.0/token",
                    "client_id=app&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&"
                    "client_secret=s3cret&grant_type=client_credentials");
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = parsed(r);
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_TRUE(body["expires_in"].is_number_integer());
  EXPECT_EQ(body["expires_in"], 3599);
  EXPECT_EQ(
      checkAccessToken(testing::kTokenKey, body["access_token"].get<std::string>(), testing::kNow),
      "");
  // The token opens ARM.
  auto arm = m.getNic();
  EXPECT_EQ(arm.status, 200);
}

TEST(Identity, V1AndImdsGiveStringExpiry) {
  MockFixture m;
  auto r = postForm(m, "/tenant1/oauth2/token?api-version=1.0",
                    "grant_type=client_credentials&client_id=app&client_secret=x&"
                    "resource=https%3A%2F%2Fmanagement.azure.com%2F");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parsed(r)["expires_in"], "3599");
  EXPECT_EQ(parsed(r)["expires_on"], std::to_string(testing::kNow + 3599));
  EXPECT_EQ(parsed(r)["resource"], "https://management.azure.com/");

  const std::string imds =
      "/metadata/identity/oauth2/token?api-version=2018-02-01&"
      "resource=https://management.azure.com/";
  r = m.call("GET", imds, "", {{"Metadata", "true"}});
  ASSERT_EQ(r.status, 200) << r.body;
  for (const char* key : {"access_token", "refresh_token", "expires_in", "expires_on", "not_before",
                          "resource", "token_type"})
    EXPECT_TRUE(parsed(r)[key].is_string()) << key;
  r = m.call("GET", imds);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(parsed(r)["error_description"], "Required metadata header not specified");
  EXPECT_EQ(m.call("GET", imds + "&client_id=a&object_id=b", "", {{"Metadata", "true"}}).status,
            400);
  EXPECT_EQ(m.call("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01", "",
                   {{"Metadata", "true"}})
                .status,
            400);
}

TEST(Identity, ChecksWhatItReceives) {
  MockFixture m;
  const auto code = [&](std::string body) {
    auto r = postForm(m, "/tenant1/oauth2/v2.0/token", std::move(body));
    return std::pair{r.status, parsed(r).value("error", "")};
  };
  const std::string scope = "scope=https%3A%2F%2Fmanagement.azure.com%2F.default";
  EXPECT_EQ(code("client_id=a&client_secret=b&" + scope),
            (std::pair{400, std::string("invalid_request")}));
  EXPECT_EQ(code("grant_type=password&client_id=a&client_secret=b&" + scope),
            (std::pair{400, std::string("unsupported_grant_type")}));
  EXPECT_EQ(code("grant_type=client_credentials&client_id=a&client_secret=b&scope=https%3A%2F%"
                 "2Fgraph.microsoft.com%2F.default"),
            (std::pair{400, std::string("invalid_scope")}));
  EXPECT_EQ(code("grant_type=client_credentials&client_id=a&" + scope),
            (std::pair{401, std::string("invalid_client")}));
  EXPECT_EQ(code("grant_type=client_credentials&client_id=a&client_assertion=abc&"
                 "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-"
                 "bearer&" +
                 scope),
            (std::pair{401, std::string("invalid_client")}))
      << "not a JWT";
  EXPECT_EQ(code("grant_type=client_credentials&client_id=a&client_assertion=aaaa.bbbb.cccc&"
                 "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-"
                 "bearer&" +
                 scope)
                .first,
            200);
  auto r = m.call("POST", "/tenant1/oauth2/v2.0/token", "grant_type=client_credentials",
                  {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(parsed(r)["error_codes"].is_array());
}

TEST(Identity, KnownClientsOnly) {
  HandlerOptions options;
  options.clients = {{.tenantId = "tenant1", .clientId = "app", .clientSecret = "right"}};
  MockFixture m({}, options);
  const std::string tail =
      "&grant_type=client_credentials&scope=https%3A%2F%2Fmanagement.azure.com%2F.default";
  EXPECT_EQ(
      postForm(m, "/tenant1/oauth2/v2.0/token", "client_id=app&client_secret=right" + tail).status,
      200);
  EXPECT_EQ(
      postForm(m, "/tenant1/oauth2/v2.0/token", "client_id=app&client_secret=wrong" + tail).status,
      401);
  EXPECT_EQ(postForm(m, "/tenant1/oauth2/v2.0/token", "client_id=other&client_secret=right" + tail)
                .status,
            400);
  EXPECT_EQ(
      postForm(m, "/tenant2/oauth2/v2.0/token", "client_id=app&client_secret=right" + tail).status,
      400);
}

// An unsigned token in the shape the mock used to issue, naming any client.
std::string unsignedToken(std::string_view alg, std::int64_t exp) {
  const json header = {{"alg", alg}, {"typ", "JWT"}};
  const json payload = {{"aud", "https://management.azure.com/"},
                        {"appid", "someone-else"},
                        {"exp", exp},
                        {"idp", "azure-vnet-mock"}};
  return base64UrlEncode(header.dump()) + "." + base64UrlEncode(payload.dump()) + ".";
}

TEST(Identity, RefusesTokensItDidNotSign) {
  const std::string key(testing::kTokenKey);
  const std::string good =
      issueAccessToken(key, "t", "c", "https://management.azure.com/", testing::kNow);
  EXPECT_EQ(checkAccessToken(key, good, testing::kNow), "");
  EXPECT_EQ(accessTokenClientId(key, good), "c");

  // alg none, with or without a signature part.
  const std::string none = unsignedToken("none", testing::kNow + 100);
  EXPECT_NE(checkAccessToken(key, none, testing::kNow), "");
  EXPECT_NE(checkAccessToken(key, none + "AAAA", testing::kNow), "");
  EXPECT_EQ(accessTokenClientId(key, none), "");
  // Another algorithm, even with this key's HMAC over it.
  for (std::string_view alg : {"HS384", "RS256", "hs256"}) {
    std::string t = unsignedToken(alg, testing::kNow + 100);
    t.pop_back();
    EXPECT_NE(checkAccessToken(key, t + "." + base64UrlEncode("x"), testing::kNow), "") << alg;
  }
  // Signed with another key.
  const std::string forged =
      issueAccessToken("another-key", "t", "c", "https://management.azure.com/", testing::kNow);
  EXPECT_NE(checkAccessToken(key, forged, testing::kNow), "");
  EXPECT_EQ(accessTokenClientId(key, forged), "");
  // The right signature over a changed payload.
  const auto dot1 = good.find('.'), dot2 = good.rfind('.');
  const std::string otherPayload = base64UrlEncode(json{
      {"aud", "https://management.azure.com/"},
      {"appid", "someone-else"},
      {"exp", testing::kNow + 100},
      {"idp", "azure-vnet-mock"}}.dump());
  const std::string swapped = good.substr(0, dot1 + 1) + otherPayload + good.substr(dot2);
  EXPECT_NE(checkAccessToken(key, swapped, testing::kNow), "");
  EXPECT_EQ(accessTokenClientId(key, swapped), "");
  // A flipped signature character.
  std::string flipped = good;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_NE(checkAccessToken(key, flipped, testing::kNow), "");
  // Expired, and for another audience.
  EXPECT_NE(checkAccessToken(key, good, testing::kNow + kTokenLifetimeSeconds), "");
  EXPECT_NE(checkAccessToken(
                key, issueAccessToken(key, "t", "c", "https://graph.microsoft.com/", testing::kNow),
                testing::kNow),
            "");
  // A header nested deep enough to crash a recursive reader.
  const std::string deep = base64UrlEncode(std::string(100000, '[')) + "." + base64UrlEncode("{}") +
                           "." + base64UrlEncode("x");
  EXPECT_NE(checkAccessToken(key, deep, testing::kNow), "");
}

TEST(Identity, ArmAnswersForgedTokensWith401) {
  MockFixture m;
  const auto expect401 = [&](const std::string& token, std::string_view what) {
    auto r = m.getNic();
    r = m.call("GET",
               std::string(testing::kRg) +
                   "/providers/Microsoft.Network/networkInterfaces/test-nic?api-version=2024-05-01",
               "", {{"Authorization", "Bearer " + token}});
    EXPECT_EQ(r.status, 401) << what << ": " << r.body;
    EXPECT_EQ(parsed(r)["error"]["code"], "InvalidAuthenticationToken") << what;
    EXPECT_TRUE(parsed(r)["error"]["message"].is_string()) << what;
  };
  expect401(unsignedToken("none", testing::kNow + 100), "alg none");
  expect401(
      issueAccessToken("another-key", "t", "c", "https://management.azure.com/", testing::kNow),
      "bad signature");
  expect401(issueAccessToken(testing::kTokenKey, "t", "c", "https://management.azure.com/",
                             testing::kNow - kTokenLifetimeSeconds - 1),
            "expired");
}

TEST(AdminAccess, LoopbackOrTheAdminToken) {
  EXPECT_EQ(adminAccess("127.0.0.1", "", ""), AdminAccess::kAllowed);
  EXPECT_EQ(adminAccess("127.3.4.5", "", ""), AdminAccess::kAllowed);
  EXPECT_EQ(adminAccess("::1", "", ""), AdminAccess::kAllowed);
  EXPECT_EQ(adminAccess("::ffff:127.0.0.1", "", ""), AdminAccess::kAllowed);
  EXPECT_EQ(adminAccess("10.0.0.5", "", "s3cret"), AdminAccess::kUnauthenticated);
  EXPECT_EQ(adminAccess("", "", "s3cret"), AdminAccess::kUnauthenticated) << "unknown peer";
  EXPECT_EQ(adminAccess("::ffff:10.0.0.5", "", ""), AdminAccess::kUnauthenticated);
  EXPECT_EQ(adminAccess("10.0.0.5", "Bearer s3cret", "s3cret"), AdminAccess::kAllowed);
  EXPECT_EQ(adminAccess("10.0.0.5", "bearer s3cret", "s3cret"), AdminAccess::kAllowed);
  EXPECT_EQ(adminAccess("10.0.0.5", "Bearer s3cre", "s3cret"), AdminAccess::kForbidden);
  EXPECT_EQ(adminAccess("10.0.0.5", "Bearer s3creT", "s3cret"), AdminAccess::kForbidden);
  EXPECT_EQ(adminAccess("10.0.0.5", "Basic s3cret", "s3cret"), AdminAccess::kForbidden);
  // Without a configured token no header opens it, not even an empty bearer.
  EXPECT_EQ(adminAccess("10.0.0.5", "Bearer ", ""), AdminAccess::kForbidden);
  EXPECT_EQ(adminAccess("128.0.0.1", "", ""), AdminAccess::kUnauthenticated);
}

TEST(AdminAccess, MockEndpointsOffLoopbackNeedTheToken) {
  HandlerOptions options;
  options.adminToken = "admin-s3cret";
  MockFixture m({}, options);
  m.peer = "10.1.2.3";
  // healthz stays open for probes.
  EXPECT_EQ(m.call("GET", "/mock/healthz").status, 200);
  // An ARM token is no admin token.
  EXPECT_EQ(m.call("GET", "/mock/state").status, 403);
  auto r = m.call("GET", "/mock/state", "", {{"Authorization", ""}});
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(parsed(r)["error"]["code"], "AuthenticationFailed");
  EXPECT_EQ(m.call("PUT", "/mock/faults", R"({"errorRate":1})", {{"Authorization", ""}}).status,
            401);
  EXPECT_EQ(m.call("GET", "/mock/faults", "", {{"Authorization", "Bearer wrong"}}).status, 403);
  const HeaderList admin = {{"Authorization", "Bearer admin-s3cret"}};
  EXPECT_EQ(m.call("GET", "/mock/state", "", admin).status, 200);
  EXPECT_EQ(m.call("GET", "/mock/faults", "", admin).status, 200);
  EXPECT_EQ(m.call("PUT", "/mock/faults", R"({"errorRate":0})", admin).status, 200);
  // Loopback needs no token.
  m.peer = "127.0.0.1";
  EXPECT_EQ(m.call("GET", "/mock/state", "", {{"Authorization", ""}}).status, 200);
}

TEST(Identity, Base64UrlRoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\x00\x10 binary"}) {
    std::string out;
    ASSERT_TRUE(base64UrlDecode(base64UrlEncode(s), out));
    EXPECT_EQ(out, s);
  }
  std::string out;
  EXPECT_FALSE(base64UrlDecode("a+b/", out));
}

}  // namespace
}  // namespace vnetipam::azuremock
