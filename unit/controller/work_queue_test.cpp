#include "controller/work_queue.h"

#include <chrono>

#include <gtest/gtest.h>

#include "controller/collection_watch.h"
#include "unit/lib/base/fake_clock.h"

namespace vnetipam::controller {
namespace {

using namespace std::chrono_literals;

TEST(WorkQueueTest, AKeyAddedTwiceIsQueuedOnce) {
  WorkQueue queue;
  queue.add(nodeKey("a"));
  queue.add(nodeKey("b"));
  queue.add(nodeKey("a"));
  EXPECT_EQ(queue.depth(), 2u);
  EXPECT_EQ(queue.get(), nodeKey("a"));
  EXPECT_EQ(queue.get(), nodeKey("b"));
  EXPECT_EQ(queue.depth(), 0u);
}

TEST(WorkQueueTest, OneNameUnderTwoKindsIsTwoKeys) {
  WorkQueue queue;
  queue.add(nodeKey("a"));
  queue.add(nicKey("a"));
  queue.add(subnetKey("a"));
  EXPECT_EQ(queue.depth(), 3u);
  EXPECT_EQ(queue.get(), nodeKey("a"));
  EXPECT_EQ(queue.get(), nicKey("a"));
  EXPECT_EQ(queue.get(), subnetKey("a"));
  EXPECT_EQ(toString(nicKey("a")), "nic/a");
}

TEST(WorkQueueTest, AKeyAddedWhileProcessedIsHandedOutAgainOnlyAfterDone) {
  WorkQueue queue;
  queue.add(nodeKey("a"));
  auto key = queue.get();
  ASSERT_EQ(key, nodeKey("a"));
  queue.add(nodeKey("a"));  // a change arrives while a worker holds the key
  EXPECT_EQ(queue.depth(), 0u) << "never two workers on one key";
  queue.done(*key);
  EXPECT_EQ(queue.depth(), 1u);
  EXPECT_EQ(queue.get(), nodeKey("a"));
}

TEST(WorkQueueTest, BackoffDoublesPerFailureUpToTheMaximum) {
  const WorkQueueOptions options{.baseDelay = 5ms, .maxDelay = 1000ms};
  EXPECT_EQ(WorkQueue::backoff(options, 0), 5ms);
  EXPECT_EQ(WorkQueue::backoff(options, 1), 10ms);
  EXPECT_EQ(WorkQueue::backoff(options, 4), 80ms);
  EXPECT_EQ(WorkQueue::backoff(options, 30), 1000ms);
}

TEST(WorkQueueTest, RateLimitedRetriesCountFailuresAndForgetResetsThem) {
  WorkQueue queue(WorkQueueOptions{.baseDelay = 10'000ms, .maxDelay = 60'000ms});
  queue.addRateLimited(nicKey("a"));
  queue.addRateLimited(nicKey("a"));
  EXPECT_EQ(queue.failures(nicKey("a")), 2);
  EXPECT_EQ(queue.depth(), 0u) << "a failed key waits for its backoff";
  EXPECT_EQ(queue.waiting(), 1u) << "one waiting entry per key";
  queue.forget(nicKey("a"));
  EXPECT_EQ(queue.failures(nicKey("a")), 0);
}

TEST(WorkQueueTest, AnEarlierAddAfterWinsAndAZeroDelayQueuesAtOnce) {
  base::testing::FakeClock clock;
  WorkQueue queue(clock);
  queue.addAfter(subnetKey("p"), 60s);
  queue.addAfter(subnetKey("p"), 120s);
  EXPECT_EQ(queue.waiting(), 1u);
  queue.addAfter(subnetKey("q"), 0s);
  EXPECT_EQ(queue.depth(), 1u);
  queue.addAfter(subnetKey("p"), 1ms);
  EXPECT_EQ(queue.get(), subnetKey("q"));
  EXPECT_EQ(queue.depth(), 0u) << "p waits for its delay";
  clock.advance(1ms);
  EXPECT_EQ(queue.get(), subnetKey("p")) << "the 1 ms entry replaced the 60 s one";
}

// Delays are the injected clock's: a key due on it is handed out without any real wait (on the
// real clock this get() would block for a minute).
TEST(WorkQueueTest, ADelayedKeyIsDueWhenTheInjectedClockSaysSo) {
  base::testing::FakeClock clock;
  WorkQueue queue(clock, WorkQueueOptions{.baseDelay = 60'000ms, .maxDelay = 60'000ms});
  queue.addRateLimited(nodeKey("a"));
  clock.advance(59s);
  queue.add(nodeKey("b"));
  EXPECT_EQ(queue.get(), nodeKey("b")) << "a is not due yet";
  clock.advance(1s);
  EXPECT_EQ(queue.get(), nodeKey("a"));
  EXPECT_EQ(queue.waiting(), 0u);
}

TEST(WorkQueueTest, ShutdownWakesGetWithNothing) {
  WorkQueue queue;
  queue.shutdown();
  EXPECT_EQ(queue.get(), std::nullopt);
  queue.add(nodeKey("a"));
  EXPECT_EQ(queue.depth(), 0u);
}

// The controller's watches and lists reconnect with a bounded backoff: however long the API
// server was down, the next attempt is at most 4 s away (lib/kube's default cap is 30 s).
TEST(CollectionWatchTest, ReconnectsBackOffToAtMostFourSeconds) {
  kube::ReconnectOptions options = kCollectionReconnect;
  for (double jitter : {0.0, 0.5, 0.999}) {
    options.random01 = [jitter] { return jitter; };
    for (int attempt = 0; attempt < 64; ++attempt) {
      EXPECT_LE(kube::reconnectDelay(options, attempt), 4s) << attempt;
    }
    EXPECT_GE(kube::reconnectDelay(options, 64), 2s) << "and no faster than 2 s when failing";
  }
}

}  // namespace
}  // namespace vnetipam::controller
