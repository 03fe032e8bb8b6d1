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
  queue.add("n/a");
  queue.add("n/b");
  queue.add("n/a");
  EXPECT_EQ(queue.depth(), 2u);
  EXPECT_EQ(queue.get(), "n/a");
  EXPECT_EQ(queue.get(), "n/b");
  EXPECT_EQ(queue.depth(), 0u);
}

TEST(WorkQueueTest, AKeyAddedWhileProcessedIsHandedOutAgainOnlyAfterDone) {
  WorkQueue queue;
  queue.add("n/a");
  auto key = queue.get();
  ASSERT_EQ(key, "n/a");
  queue.add("n/a");  // a change arrives while a worker holds the key
  EXPECT_EQ(queue.depth(), 0u) << "never two workers on one key";
  queue.done(*key);
  EXPECT_EQ(queue.depth(), 1u);
  EXPECT_EQ(queue.get(), "n/a");
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
  queue.addRateLimited("c/a");
  queue.addRateLimited("c/a");
  EXPECT_EQ(queue.failures("c/a"), 2);
  EXPECT_EQ(queue.depth(), 0u) << "a failed key waits for its backoff";
  EXPECT_EQ(queue.waiting(), 1u) << "one waiting entry per key";
  queue.forget("c/a");
  EXPECT_EQ(queue.failures("c/a"), 0);
}

TEST(WorkQueueTest, AnEarlierAddAfterWinsAndAZeroDelayQueuesAtOnce) {
  base::testing::FakeClock clock;
  WorkQueue queue(clock);
  queue.addAfter("s/p", 60s);
  queue.addAfter("s/p", 120s);
  EXPECT_EQ(queue.waiting(), 1u);
  queue.addAfter("s/q", 0s);
  EXPECT_EQ(queue.depth(), 1u);
  queue.addAfter("s/p", 1ms);
  EXPECT_EQ(queue.get(), "s/q");
  EXPECT_EQ(queue.depth(), 0u) << "p waits for its delay";
  clock.advance(1ms);
  EXPECT_EQ(queue.get(), "s/p") << "the 1 ms entry replaced the 60 s one";
}

// Delays are the injected clock's: a key due on it is handed out without any real wait (on the
// real clock this get() would block for a minute).
TEST(WorkQueueTest, ADelayedKeyIsDueWhenTheInjectedClockSaysSo) {
  base::testing::FakeClock clock;
  WorkQueue queue(clock, WorkQueueOptions{.baseDelay = 60'000ms, .maxDelay = 60'000ms});
  queue.addRateLimited("n/a");
  clock.advance(59s);
  queue.add("n/b");
  EXPECT_EQ(queue.get(), "n/b") << "a is not due yet";
  clock.advance(1s);
  EXPECT_EQ(queue.get(), "n/a");
  EXPECT_EQ(queue.waiting(), 0u);
}

TEST(WorkQueueTest, ShutdownWakesGetWithNothing) {
  WorkQueue queue;
  queue.shutdown();
  EXPECT_EQ(queue.get(), std::nullopt);
  queue.add("n/a");
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
