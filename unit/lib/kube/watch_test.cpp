#include "lib/kube/watch.h"

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

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
  http::testing::FakeTransport transport;
  const std::string body = event("ADDED", "a", "11") + event("BOOKMARK", "", "20");
  transport.streamChunks({body.substr(0, 10), body.substr(10, 30), body.substr(40)});
  http::CancelSignal cancel;
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
  http::testing::FakeTransport transport;
  transport.streamChunks({event("ADDED", "a", "1")});
  http::CancelSignal cancel;
  cancel.cancel();
  auto resume = watch(
      transport, {}, "/api/v1/nodes", {}, [](WatchEvent) {}, cancel);
  ASSERT_FALSE(resume.has_value());
  EXPECT_EQ(resume.error().code, ErrorCode::kCancelled);
}

TEST(ReconnectDelay, DoublesUpToTheCapWithEqualJitter) {
  using std::chrono::milliseconds;
  ReconnectOptions options{.initialBackoff = milliseconds(100),
                           .maxBackoff = milliseconds(1000),
                           .random01 = [] { return 0.0; }};
  EXPECT_EQ(reconnectDelay(options, 0), milliseconds(50));
  EXPECT_EQ(reconnectDelay(options, 3), milliseconds(400));
  EXPECT_EQ(reconnectDelay(options, 4), milliseconds(500));
  EXPECT_EQ(reconnectDelay(options, 100), milliseconds(500));
  options.random01 = [] { return 0.999; };
  EXPECT_GT(reconnectDelay(options, 4), milliseconds(999));
  EXPECT_LE(reconnectDelay(options, 4), milliseconds(1000));
}

TEST(ResumableWatch, ResumesAcrossServerEndsAndStopsAtGone) {
  http::testing::FakeTransport transport;
  base::testing::FakeClock clock;
  transport.streamChunks({event("ADDED", "a", "11")});
  transport.streamChunks({event("BOOKMARK", "", "30")});
  transport.streamChunks(
      {event("MODIFIED", "a", "31") +
       json{{"type", "ERROR"},
            {"object", {{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}}}}
           .dump() +
       "\n"});
  ResumableWatch resumable(transport, clock, {}, "/api/v1/nodes", {.resourceVersion = "10"});
  std::vector<std::string> seen;
  http::CancelSignal cancel;
  const WatchStep step = resumable.runUntilRelist(
      [&seen](WatchEvent e) { seen.push_back(e.object["metadata"]["resourceVersion"]); }, cancel);
  EXPECT_EQ(step.outcome, WatchOutcome::kRelist);
  ASSERT_TRUE(step.error.has_value());
  EXPECT_EQ(step.error->code, ErrorCode::kGone);
  EXPECT_EQ(seen, (std::vector<std::string>{"11", "30", "31"}));
  const auto requests = transport.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_NE(requests[0].target.find("&resourceVersion=10&"), std::string::npos);
  EXPECT_NE(requests[1].target.find("&resourceVersion=11&"), std::string::npos);
  EXPECT_NE(requests[2].target.find("&resourceVersion=30&"), std::string::npos);
  EXPECT_TRUE(clock.sleeps().empty());  // every stream made progress: no backoff

  resumable.restart("99");
  EXPECT_EQ(resumable.resourceVersion(), "99");
  EXPECT_EQ(resumable.failuresInARow(), 0);
}

TEST(ResumableWatch, AnEmptyStreamThatEndsAtOnceBacksOff) {
  http::testing::FakeTransport transport;
  base::testing::FakeClock clock;
  transport.streamChunks({});
  transport.streamChunks({});
  ResumableWatch resumable(
      transport, clock, {}, "/api/v1/nodes", {.resourceVersion = "10"},
      {.initialBackoff = std::chrono::milliseconds(100), .random01 = [] { return 0.0; }});
  http::CancelSignal cancel;
  EXPECT_EQ(resumable.next([](WatchEvent) {}, cancel).outcome, WatchOutcome::kResume);
  EXPECT_EQ(resumable.failuresInARow(), 1);
  EXPECT_EQ(resumable.next([](WatchEvent) {}, cancel).outcome, WatchOutcome::kResume);
  EXPECT_EQ(clock.sleeps(), std::vector<base::Clock::Duration>{std::chrono::milliseconds(50)});
  cancel.cancel();
  EXPECT_EQ(resumable.next([](WatchEvent) {}, cancel).outcome, WatchOutcome::kCancelled);
  EXPECT_EQ(transport.requests().size(), 2u);
}

}  // namespace
}  // namespace vnetipam::kube
