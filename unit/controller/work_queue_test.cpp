#include "controller/work_queue.h"

#include <chrono>

#include <gtest/gtest.h>

#include "controller/collection_watch.h"

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
  WorkQueue queue;
  queue.addAfter("s/p", 60s);
  queue.addAfter("s/p", 120s);
  EXPECT_EQ(queue.waiting(), 1u);
  queue.addAfter("s/q", 0s);
  EXPECT_EQ(queue.depth(), 1u);
  queue.addAfter("s/p", 1ms);
  auto key = queue.get();  // the 1 ms entry replaced the 60 s one
  EXPECT_TRUE(key == "s/q" || key == "s/p");
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
