#include "lib/kube/watch.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lib/kube/fake_transport.h"

namespace vnetipam::kube {
namespace {

using nlohmann::json;

std::string event(std::string_view type, std::string_view name, std::string_view rv) {
  return json{{"type", type}, {"object", {{"metadata", {{"name", name}, {"resourceVersion", rv}}}}}}
             .dump() +
         "\n";
}

TEST(WatchDecoder, ReassemblesLinesSplitAcrossChunks) {
  const std::string body =
      event("ADDED", "a", "5") + event("MODIFIED", "a", "6") + event("DELETED", "b", "7");
  // Every possible split point between two chunks gives the same three events.
  for (std::size_t split = 0; split <= body.size(); ++split) {
    WatchDecoder decoder;
    std::vector<WatchEvent> events;
    auto collect = [&events](WatchEvent e) { events.push_back(std::move(e)); };
    ASSERT_TRUE(decoder.feed(std::string_view(body).substr(0, split), collect));
    ASSERT_TRUE(decoder.feed(std::string_view(body).substr(split), collect));
    ASSERT_EQ(events.size(), 3u) << "split at " << split;
    EXPECT_EQ(events[0].type, WatchEventType::kAdded);
    EXPECT_EQ(events[1].type, WatchEventType::kModified);
    EXPECT_EQ(events[2].type, WatchEventType::kDeleted);
    EXPECT_EQ(events[2].object["metadata"]["name"], "b");
    EXPECT_EQ(decoder.resourceVersion(), "7");
    EXPECT_FALSE(decoder.hasPartialLine());
  }
}

TEST(WatchDecoder, BookmarksAdvanceTheResourceVersion) {
  WatchDecoder decoder;
  int bookmarks = 0;
  ASSERT_TRUE(decoder.feed(event("ADDED", "a", "5") + event("BOOKMARK", "", "99"),
                           [&bookmarks](WatchEvent e) {
                             if (e.type == WatchEventType::kBookmark) ++bookmarks;
                           }));
  EXPECT_EQ(bookmarks, 1);
  EXPECT_EQ(decoder.resourceVersion(), "99");
}

TEST(WatchDecoder, Error410MeansRelist) {
  WatchDecoder decoder;
  const json status = {{"kind", "Status"},
                       {"code", 410},
                       {"reason", "Expired"},
                       {"message", "too old resource version: 5 (10)"}};
  const std::string gone = json{{"type", "ERROR"}, {"object", status}}.dump() + "\n";
  auto result = decoder.feed(gone, [](WatchEvent) { FAIL() << "no event expected"; });
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kGone);
  EXPECT_EQ(result.error().httpStatus, 410);
  EXPECT_NE(result.error().message.find("too old resource version"), std::string::npos);
}

TEST(WatchDecoder, GarbageIsABadResponse) {
  WatchDecoder decoder;
  auto result = decoder.feed("<html>\n", [](WatchEvent) {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kBadResponse);
}

TEST(Watch, SendsTheWatchQueryAndReturnsTheVersionToResumeFrom) {
  testing::FakeTransport transport;
  const std::string body = event("ADDED", "a", "11") + event("BOOKMARK", "", "20");
  transport.streamChunks({body.substr(0, 10), body.substr(10, 30), body.substr(40)});
  CancelSignal cancel;
  std::vector<std::string> names;
  auto resume = watch(
      transport, [] { return Result<std::string>("tok"); }, "/apis/vnetipam.io/v1alpha1/ipblocks",
      {.resourceVersion = "10", .labelSelector = "vnetipam.io/node=n1", .timeoutSeconds = 60},
      [&names](WatchEvent e) {
        if (e.type != WatchEventType::kBookmark) names.push_back(e.object["metadata"]["name"]);
      },
      cancel);
  ASSERT_TRUE(resume.has_value()) << resume.error().message;
  EXPECT_EQ(*resume, "20");
  EXPECT_EQ(names, std::vector<std::string>{"a"});
  const auto request = transport.requests().at(0);
  EXPECT_EQ(request.target,
            "/apis/vnetipam.io/v1alpha1/ipblocks?watch=1&allowWatchBookmarks=true"
            "&resourceVersion=10&labelSelector=vnetipam.io%2Fnode%3Dn1&timeoutSeconds=60");
  EXPECT_EQ(request.headers.at("Authorization"), "Bearer tok");
}

TEST(Watch, ACancelledWatchReportsCancelled) {
  testing::FakeTransport transport;
  transport.streamChunks({event("ADDED", "a", "1")});
  CancelSignal cancel;
  cancel.cancel();
  auto resume = watch(
      transport, {}, "/api/v1/nodes", {}, [](WatchEvent) {}, cancel);
  ASSERT_FALSE(resume.has_value());
  EXPECT_EQ(resume.error().code, ErrorCode::kCancelled);
}

}  // namespace
}  // namespace vnetipam::kube
