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
  EXPECT_EQ(checkAccessToken(body["access_token"].get<std::string>(), testing::kNow), "");
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
