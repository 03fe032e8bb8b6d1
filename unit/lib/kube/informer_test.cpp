#include "lib/kube/informer.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::kube {
namespace {

using namespace std::chrono_literals;
using base::testing::FakeClock;
using http::testing::FakeTransport;
using nlohmann::json;

constexpr std::string_view kBlocks = "/apis/vnetipam.io/v1alpha1/ipblocks";

json object(std::string_view name, std::string_view rv, std::string_view uid = {}) {
  return {{"metadata",
           {{"name", name},
            {"resourceVersion", rv},
            {"uid", uid.empty() ? fmt::format("uid-{}", name) : std::string(uid)}}}};
}

std::string listBody(std::string_view rv, const std::vector<json>& items) {
  return json{{"kind", "IPBlockList"}, {"metadata", {{"resourceVersion", rv}}}, {"items", items}}
      .dump();
}

std::string event(std::string_view type, const json& obj) {
  return json{{"type", type}, {"object", obj}}.dump() + "\n";
}

std::string bookmark(std::string_view rv) {
  return event("BOOKMARK", {{"metadata", {{"resourceVersion", rv}}}});
}

std::string errorEvent(int code, std::string_view reason, std::string_view message) {
  return event("ERROR",
               {{"kind", "Status"}, {"code", code}, {"reason", reason}, {"message", message}});
}

// FakeTransport for send(); stream() answers from a script of its own that can also end a stream
// with a non-2xx status or a transport error, and records when (on the fake clock) each watch
// connected.
class ScriptedStreams final : public http::HttpTransport {
 public:
  explicit ScriptedStreams(base::Clock& clock) : clock_(clock) {}

  struct Stream {
    std::vector<std::string> chunks;
    http::Result<http::HttpResponse> end = http::HttpResponse{200, {}, {}};
  };
  void stream(std::vector<std::string> chunks) { script_.push_back({std::move(chunks)}); }
  void streamThenFail(std::vector<std::string> chunks, http::ErrorCode code) {
    script_.push_back({std::move(chunks), std::unexpected(http::Error{code, "scripted failure"})});
  }
  void status(int code, std::string body) {
    script_.push_back({{}, http::HttpResponse{code, {}, std::move(body)}});
  }

  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    return sends.send(request);
  }

  http::Result<http::HttpResponse> stream(const http::HttpRequest& request,
                                          const std::function<bool(std::string_view)>& onChunk,
                                          http::CancelSignal& cancel) override {
    watches.push_back(request.target);
    connectedAt.push_back(clock_.now());
    if (script_.empty())
      return std::unexpected(http::Error{http::ErrorCode::kConnectFailed, "no stream"});
    Stream next = std::move(script_.front());
    script_.pop_front();
    for (const auto& chunk : next.chunks) {
      if (cancel.cancelled())
        return std::unexpected(http::Error{http::ErrorCode::kCancelled, "cancelled"});
      if (!onChunk(chunk)) return http::HttpResponse{200, {}, {}};
    }
    return next.end;
  }
  std::size_t pending() const { return script_.size(); }

  FakeTransport sends;
  std::vector<std::string> watches;
  std::vector<base::Clock::TimePoint> connectedAt;

 private:
  base::Clock& clock_;
  std::deque<Stream> script_;
};

// What the handlers saw, one line per call: "add a 5", "update a 5->6", "delete b 7".
struct Recorder {
  std::vector<std::string> calls;
  InformerHandlers handlers() {
    auto rv = [](const json& o) { return o["metadata"].value("resourceVersion", ""); };
    auto name = [](const json& o) { return o["metadata"].value("name", ""); };
    return {
        .onAdd =
            [=, this](const json& o) { calls.push_back(fmt::format("add {} {}", name(o), rv(o))); },
        .onUpdate =
            [=, this](const json& o, const json& n) {
              calls.push_back(fmt::format("update {} {}->{}", name(n), rv(o), rv(n)));
            },
        .onDelete =
            [=, this](const json& o) {
              calls.push_back(fmt::format("delete {} {}", name(o), rv(o)));
            },
    };
  }
  std::vector<std::string> take() { return std::exchange(calls, {}); }
};

class InformerTest : public ::testing::Test {
 protected:
  InformerTest()
      : client_(transport_, clock_, {.qps = 0, .maxRetries = 0, .random01 = [] { return 0.0; }}) {}

  Informer makeInformer(InformerOptions options = {}) {
    options.reconnect.initialBackoff = 200ms;
    options.reconnect.maxBackoff = 1'000ms;
    options.reconnect.random01 = [] { return 0.0; };  // each delay is half its step
    options.onError = [this](const Error& e) { errors_.push_back(e.code); };
    return Informer(client_, std::string(kBlocks), std::move(options), recorder_.handlers());
  }
  void respondList(std::string_view rv, const std::vector<json>& items) {
    transport_.sends.respond(200, listBody(rv, items));
  }
  // Runs one step and expects it to succeed.
  void stepOk(Informer& informer) {
    auto result = informer.step(cancel_);
    ASSERT_TRUE(result.has_value()) << result.error().message;
  }
  std::vector<std::string> cachedNames(const Informer& informer) {
    std::vector<std::string> names;
    for (const json& o : informer.list())
      names.push_back(fmt::format("{}@{}", o["metadata"]["name"].get<std::string>(),
                                  o["metadata"]["resourceVersion"].get<std::string>()));
    return names;
  }

  FakeClock clock_;
  ScriptedStreams transport_{clock_};
  Client client_;
  Recorder recorder_;
  std::vector<ErrorCode> errors_;
  http::CancelSignal cancel_;
};

TEST_F(InformerTest, ListsThenWatchesWithTheSelectorsAndTheListsVersion) {
  Informer informer = makeInformer({.list = {.labelSelector = "vnetipam.io/node=n1",
                                             .fieldSelector = "spec.nodeName=n1",
                                             .limit = 100}});
  respondList("10", {object("a", "5"), object("b", "7")});
  EXPECT_FALSE(informer.hasSynced());
  stepOk(informer);
  EXPECT_TRUE(informer.hasSynced());
  EXPECT_EQ(recorder_.take(), (std::vector<std::string>{"add a 5", "add b 7"}));
  ASSERT_TRUE(informer.get("a").has_value());
  EXPECT_EQ((*informer.get("b"))["metadata"]["resourceVersion"], "7");

  transport_.stream({event("ADDED", object("c", "11"))});
  stepOk(informer);
  EXPECT_EQ(recorder_.take(), (std::vector<std::string>{"add c 11"}));
  EXPECT_EQ(
      transport_.sends.requests().at(0).target,
      std::string(kBlocks) +
          "?labelSelector=vnetipam.io%2Fnode%3Dn1&fieldSelector=spec.nodeName%3Dn1&limit=100");
  EXPECT_EQ(transport_.watches.at(0),
            std::string(kBlocks) +
                "?watch=1&allowWatchBookmarks=true&resourceVersion=10"
                "&labelSelector=vnetipam.io%2Fnode%3Dn1&fieldSelector=spec.nodeName%3Dn1"
                "&timeoutSeconds=300");
}

TEST_F(InformerTest, WatchEventsReachTheHandlersOncePerChange) {
  Informer informer = makeInformer();
  respondList("10", {object("a", "5"), object("b", "7")});
  stepOk(informer);
  recorder_.take();
  transport_.stream({event("MODIFIED", object("a", "11")),
                     event("MODIFIED", object("a", "11")),  // a repeat: no new change
                     event("ADDED", object("b", "7")),      // what the cache holds already
                     event("DELETED", object("b", "12")),
                     event("DELETED", object("x", "13")),  // never seen: nothing to delete
                     event("ADDED", object("c", "14")) + event("MODIFIED", object("c", "15"))});
  stepOk(informer);
  EXPECT_EQ(recorder_.take(), (std::vector<std::string>{"update a 5->11", "delete b 12", "add c 14",
                                                        "update c 14->15"}));
  EXPECT_EQ(cachedNames(informer), (std::vector<std::string>{"a@11", "c@15"}));
}

TEST_F(InformerTest, A410ErrorEventRelistsAndEmitsOnlyTheDifferences) {
  Informer informer = makeInformer();
  respondList("10", {object("gone", "5"), object("changed", "6"), object("same", "7"),
                     object("recreated", "8")});
  stepOk(informer);
  recorder_.take();

  transport_.stream({event("MODIFIED", object("same", "7")),
                     errorEvent(410, "Expired", "too old resource version: 10 (50)")});
  auto gone = informer.step(cancel_);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kGone);
  EXPECT_EQ(errors_, std::vector<ErrorCode>{ErrorCode::kGone});

  respondList("60", {object("changed", "40"), object("same", "7"), object("new", "41"),
                     object("recreated", "42", "uid-second")});
  stepOk(informer);
  EXPECT_EQ(recorder_.take(),
            (std::vector<std::string>{"update changed 6->40", "delete gone 5", "delete recreated 8",
                                      "add recreated 42", "add new 41"}));
  EXPECT_EQ(cachedNames(informer),
            (std::vector<std::string>{"changed@40", "new@41", "recreated@42", "same@7"}));

  // The watch resumes from the new list, not from where the old one stopped.
  transport_.stream({});
  stepOk(informer);
  EXPECT_NE(transport_.watches.back().find("&resourceVersion=60&"), std::string::npos)
      << transport_.watches.back();
  EXPECT_TRUE(recorder_.take().empty());
}

TEST_F(InformerTest, A410StatusAndOtherErrorEventsRelistToo) {
  Informer informer = makeInformer();
  respondList("10", {object("a", "5")});
  stepOk(informer);
  transport_.status(410, R"({"kind":"Status","code":410,"reason":"Expired"})");
  EXPECT_EQ(informer.step(cancel_).error().code, ErrorCode::kGone);
  respondList("20", {object("a", "5")});
  stepOk(informer);
  transport_.stream({errorEvent(500, "InternalError", "etcd said no")});
  EXPECT_FALSE(informer.step(cancel_).has_value());
  respondList("30", {object("a", "5")});
  stepOk(informer);
  EXPECT_EQ(transport_.sends.requests().size(), 3u);  // three lists
  EXPECT_EQ(recorder_.take(), std::vector<std::string>{"add a 5"});
}

TEST_F(InformerTest, BookmarksMoveTheResumePointWithoutCallingHandlers) {
  Informer informer = makeInformer();
  respondList("10", {object("a", "5")});
  stepOk(informer);
  recorder_.take();
  transport_.stream({bookmark("50")});
  stepOk(informer);
  EXPECT_TRUE(recorder_.take().empty());
  transport_.stream({event("MODIFIED", object("a", "51"))});
  stepOk(informer);
  ASSERT_EQ(transport_.watches.size(), 2u);
  EXPECT_NE(transport_.watches[1].find("&resourceVersion=50&"), std::string::npos)
      << transport_.watches[1];
  EXPECT_EQ(recorder_.take(), std::vector<std::string>{"update a 5->51"});
  // The bookmark counted as progress: the quiet stream was not a failure to back off from.
  EXPECT_EQ(transport_.connectedAt[1], transport_.connectedAt[0]);
}

TEST_F(InformerTest, ReconnectsFromTheLastVersionWithGrowingBackoff) {
  Informer informer = makeInformer();
  respondList("10", {object("a", "5")});
  stepOk(informer);
  recorder_.take();
  // Breaks after one event, then: refused, 503, refused, then a healthy stream.
  transport_.streamThenFail({event("MODIFIED", object("a", "20"))}, http::ErrorCode::kTransport);
  transport_.streamThenFail({}, http::ErrorCode::kConnectFailed);
  transport_.status(503, "busy");
  transport_.streamThenFail({}, http::ErrorCode::kConnectFailed);
  transport_.stream({event("MODIFIED", object("a", "21"))});
  transport_.streamThenFail({}, http::ErrorCode::kTransport);
  for (int i = 0; i < 6; ++i)
    (void)informer.step(cancel_);
  EXPECT_EQ(transport_.pending(), 0u);
  EXPECT_EQ(recorder_.take(), (std::vector<std::string>{"update a 5->20", "update a 20->21"}));

  // No relist, each reconnect from the last event seen, after 100, 200, 400, 500 (the 1 s cap
  // halved) ms; after a healthy stream the next connect is immediate.
  EXPECT_EQ(transport_.sends.requests().size(), 1u);
  const auto& at = transport_.connectedAt;
  ASSERT_EQ(at.size(), 6u);
  EXPECT_EQ(at[1] - at[0], 100ms);
  EXPECT_EQ(at[2] - at[1], 200ms);
  EXPECT_EQ(at[3] - at[2], 400ms);
  EXPECT_EQ(at[4] - at[3], 500ms);
  EXPECT_EQ(at[5], at[4]);
  for (std::size_t i = 1; i < 5; ++i)
    EXPECT_NE(transport_.watches[i].find("&resourceVersion=20&"), std::string::npos) << i;
  EXPECT_NE(transport_.watches[5].find("&resourceVersion=21&"), std::string::npos);
  EXPECT_EQ(errors_, (std::vector<ErrorCode>{ErrorCode::kTransport, ErrorCode::kConnectFailed,
                                             ErrorCode::kServerError, ErrorCode::kConnectFailed,
                                             ErrorCode::kTransport}));
}

TEST_F(InformerTest, AStreamEndingMidEventResumesFromTheLastWholeEvent) {
  Informer informer = makeInformer();
  respondList("10", {});
  stepOk(informer);
  const std::string half = event("ADDED", object("b", "12"));
  transport_.stream({event("ADDED", object("a", "11")) + half.substr(0, 10)});
  EXPECT_EQ(informer.step(cancel_).error().code, ErrorCode::kTransport);
  transport_.stream({half});
  stepOk(informer);
  EXPECT_EQ(recorder_.take(), (std::vector<std::string>{"add a 11", "add b 12"}));
  EXPECT_NE(transport_.watches[1].find("&resourceVersion=11&"), std::string::npos);
}

TEST_F(InformerTest, AFailedListBacksOffBeforeTheNextOne) {
  Informer informer = makeInformer();
  transport_.sends.respond(500, "down");
  transport_.sends.respond(500, "down");
  respondList("10", {object("a", "5")});
  EXPECT_EQ(informer.step(cancel_).error().code, ErrorCode::kServerError);
  EXPECT_FALSE(informer.hasSynced());
  const auto before = clock_.now();
  EXPECT_FALSE(informer.step(cancel_).has_value());
  EXPECT_EQ(clock_.now() - before, 100ms);
  stepOk(informer);
  EXPECT_EQ(clock_.now() - before, 100ms + 200ms);
  EXPECT_TRUE(informer.hasSynced());
  EXPECT_EQ(recorder_.take(), std::vector<std::string>{"add a 5"});
}

TEST_F(InformerTest, ResyncCallsUpdateForEveryCachedObjectEachPeriod) {
  Informer informer = makeInformer({.resyncPeriod = 30s});
  respondList("10", {object("a", "5"), object("b", "6")});
  stepOk(informer);
  recorder_.take();

  clock_.advance(10s);
  transport_.stream({event("MODIFIED", object("a", "11"))});
  stepOk(informer);
  EXPECT_EQ(recorder_.take(), std::vector<std::string>{"update a 5->11"});
  // The watch asks the server to end it by the time the next resync is due.
  EXPECT_NE(transport_.watches.back().find("&timeoutSeconds=20"), std::string::npos)
      << transport_.watches.back();

  clock_.advance(20s);
  transport_.stream({bookmark("12")});
  stepOk(informer);
  EXPECT_EQ(recorder_.take(), (std::vector<std::string>{"update a 11->11", "update b 6->6"}));

  clock_.advance(29s);
  transport_.stream({bookmark("13")});
  stepOk(informer);
  EXPECT_TRUE(recorder_.take().empty());
}

TEST_F(InformerTest, ACancelledStepReportsCancelled) {
  Informer informer = makeInformer();
  cancel_.cancel();
  EXPECT_EQ(informer.step(cancel_).error().code, ErrorCode::kCancelled);
  EXPECT_TRUE(transport_.sends.requests().empty());
}

// A transport whose watch blocks until cancelled, to prove stop() cuts an in-flight watch.
class BlockingWatchTransport final : public http::HttpTransport {
 public:
  http::Result<http::HttpResponse> send(const http::HttpRequest&) override {
    return http::HttpResponse{200, {}, listBody("10", {object("a", "5")})};
  }
  http::Result<http::HttpResponse> stream(const http::HttpRequest&,
                                          const std::function<bool(std::string_view)>&,
                                          http::CancelSignal& cancel) override {
    const auto id = cancel.onCancel([this] {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      wake_.notify_all();
    });
    std::unique_lock lock(mutex_);
    watching_ = true;
    wake_.notify_all();
    wake_.wait(lock, [this] { return cancelled_; });
    lock.unlock();
    cancel.removeOnCancel(id);
    return std::unexpected(http::Error{http::ErrorCode::kCancelled, "cancelled"});
  }
  void waitUntilWatching() {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [this] { return watching_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool watching_ = false;
  bool cancelled_ = false;
};

TEST(InformerThread, StopCancelsTheInFlightWatch) {
  BlockingWatchTransport transport;
  FakeClock clock;
  Client client(transport, clock, {.qps = 0});
  int adds = 0;
  Informer informer(client, "/api/v1/nodes", {}, {.onAdd = [&adds](const json&) { ++adds; }});
  informer.start();
  transport.waitUntilWatching();
  EXPECT_TRUE(informer.hasSynced());
  EXPECT_TRUE(informer.get("a").has_value());
  informer.stop();  // returns only once the thread has joined
  EXPECT_EQ(adds, 1);
  informer.stop();  // idempotent
}

}  // namespace
}  // namespace vnetipam::kube
