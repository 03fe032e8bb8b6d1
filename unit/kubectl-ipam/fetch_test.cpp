// The API edge against the kube fake transport: pages are followed, lists past the limits are
// refused instead of held, and `why` asks for the right objects.
#include "kubectl-ipam/fetch.h"

#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::kubectl_ipam {
namespace {

using nlohmann::json;

std::string page(int first, int count, std::string next = {}) {
  json items = json::array();
  for (int i = first; i < first + count; ++i)
    items.push_back({{"metadata", {{"name", "n" + std::to_string(i)}}}});
  json meta = json::object();
  if (!next.empty()) meta["continue"] = next;
  return json{{"kind", "NodeList"}, {"metadata", meta}, {"items", items}}.dump();
}

class FetchTest : public ::testing::Test {
 protected:
  http::testing::FakeTransport transport_;
  base::testing::FakeClock clock_;
  kube::Client client_{transport_, clock_, {.qps = 0, .maxRetries = 0}};
};

TEST_F(FetchTest, FollowsContinueTokens) {
  transport_.respond(200, page(0, 2, "tok/1"));
  transport_.respond(200, page(2, 1));
  auto items = listBounded(client_, "/api/v1/nodes", {.fieldSelector = "a=b"}, {.pageSize = 2});
  ASSERT_TRUE(items) << items.error().message;
  EXPECT_EQ(items->size(), 3u);
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/api/v1/nodes?limit=2&fieldSelector=a%3Db");
  EXPECT_EQ(requests[1].target, "/api/v1/nodes?limit=2&fieldSelector=a%3Db&continue=tok%2F1");
}

TEST_F(FetchTest, RefusesMoreItemsThanTheLimit) {
  transport_.respond(200, page(0, 2, "t"));
  transport_.respond(200, page(2, 2));
  auto items = listBounded(client_, "/api/v1/pods", {}, {.pageSize = 2, .maxItems = 3});
  ASSERT_FALSE(items);
  EXPECT_EQ(items.error().code, kube::ErrorCode::kBadResponse);
  EXPECT_EQ(items.error().message,
            "GET /api/v1/pods: more than 3 items: refusing to hold them all");
}

TEST_F(FetchTest, RefusesEndlessPages) {
  for (int i = 0; i < 3; ++i)
    transport_.respond(200, page(i, 1, "again"));
  auto items = listBounded(client_, "/api/v1/pods", {}, {.pageSize = 1, .maxPages = 3});
  ASSERT_FALSE(items);
  EXPECT_EQ(items.error().message,
            "GET /api/v1/pods: more than 3 pages: refusing an unbounded list");
}

TEST_F(FetchTest, RefusesAPageThatIsNotAList) {
  transport_.respond(200, R"({"items": 7})");
  auto items = listBounded(client_, "/api/v1/pods", {});
  ASSERT_FALSE(items);
  EXPECT_EQ(items.error().message, "GET /api/v1/pods: items is not an array");
}

TEST_F(FetchTest, ApiErrorsPassThrough) {
  transport_.respond(403, R"({"kind":"Status","reason":"Forbidden","message":"no"})");
  auto items = listBounded(client_, "/api/v1/pods", {});
  ASSERT_FALSE(items);
  EXPECT_EQ(items.error().code, kube::ErrorCode::kForbidden);
}

TEST_F(FetchTest, WhyReadsThePodItsEventsItsNodesAgentAndTheNodesWarnings) {
  const json empty = {{"metadata", json::object()}, {"items", json::array()}};
  transport_.respond(200, empty.dump());  // podsubnets
  transport_.respond(
      200, json{{"metadata", json::object()},
                {"items",
                 {{{"apiVersion", "vnetipam.io/v1alpha1"},
                   {"kind", "IPBlock"},
                   {"metadata", {{"name", "b1"}}},
                   {"spec", {{"podSubnet", "p"}, {"cidr", "10.0.0.0/28"}, {"nodeName", "n1"}}}}}}}
               .dump());                // ipblocks
  transport_.respond(200, page(1, 1));  // nodes
  transport_.respond(200, json{{"metadata", {{"name", "web"}, {"namespace", "prod"}}},
                               {"spec", {{"nodeName", "n1"}}}}
                              .dump());   // the pod
  transport_.respond(200, empty.dump());  // its events
  transport_.respond(200, empty.dump());  // agent pods
  transport_.respond(200, empty.dump());  // node events
  transport_.respond(200, empty.dump());  // b1's events
  Args args{.command = Command::kWhy, .pod = "web", .ns = "prod"};
  auto s = fetchSnapshot(client_, args);
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->pods.size(), 1u);
  EXPECT_EQ(s->pods[0].nodeName, "n1");
  const auto r = transport_.requests();
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r[0].target, "/apis/vnetipam.io/v1alpha1/podsubnets?limit=500");
  EXPECT_EQ(r[1].target, "/apis/vnetipam.io/v1alpha1/ipblocks?limit=500");
  EXPECT_EQ(r[2].target, "/api/v1/nodes?limit=500");
  EXPECT_EQ(r[3].target, "/api/v1/namespaces/prod/pods/web");
  EXPECT_EQ(r[4].target,
            "/api/v1/namespaces/prod/events?limit=500&fieldSelector=type%3DWarning%2C"
            "involvedObject.kind%3DPod%2CinvolvedObject.name%3Dweb");
  EXPECT_EQ(r[5].target,
            "/api/v1/pods?limit=500&labelSelector=app.kubernetes.io%2Fname%3Dvnet-ipam%2C"
            "app.kubernetes.io%2Fcomponent%3Dagent&fieldSelector=spec.nodeName%3Dn1");
  EXPECT_NE(r[6].target.find("involvedObject.kind%3DNode%2CinvolvedObject.name%3Dn1"),
            std::string::npos);
  EXPECT_NE(r[7].target.find("involvedObject.kind%3DIPBlock%2CinvolvedObject.name%3Db1"),
            std::string::npos);
}

TEST_F(FetchTest, WhyOfAMissingPodIsNotAnError) {
  const std::string empty = R"({"metadata":{},"items":[]})";
  for (int i = 0; i < 3; ++i)
    transport_.respond(200, empty);
  transport_.respond(404, R"({"kind":"Status","reason":"NotFound","message":"not found"})");
  auto s = fetchSnapshot(client_, Args{.command = Command::kWhy, .pod = "x", .ns = "default"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->pods.empty());
}

}  // namespace
}  // namespace vnetipam::kubectl_ipam
