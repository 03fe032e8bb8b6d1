// A work queue of WorkKeys (work_key.h) for level-triggered reconcilers, with client-go's workqueue
// semantics: a key is queued at most once (dedup), is never handed to two workers at once (a key
// added while it is being processed is queued again when done() is called), and failures are
// retried with a per-key exponential backoff (addRateLimited) that forget() resets.
//
// The queue holds each key at most once, so its size is bounded by the number of distinct
// objects. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "controller/work_key.h"
#include "lib/base/clock.h"

namespace vnetipam::controller {

struct WorkQueueOptions {
  std::chrono::milliseconds baseDelay{5};
  std::chrono::milliseconds maxDelay{300'000};
};

class WorkQueue {
 public:
  // base::Clock's: durations and time points are steady_clock's.
  using Clock = std::chrono::steady_clock;

  // Delays run on `clock` (tests drive a fake by hand), which must outlive the queue.
  explicit WorkQueue(base::Clock& clock, WorkQueueOptions options = {});
  // On the process's steady clock.
  explicit WorkQueue(WorkQueueOptions options = {});

  // Queues `key` now unless it is already queued. While the key is being processed it is queued
  // again once done() is called.
  void add(const WorkKey& key);
  // Queues `key` after `delay`. A key already waiting keeps the earlier of the two times.
  void addAfter(const WorkKey& key, Clock::duration delay);
  // addAfter(backoff(failures)) and counts one more failure of `key`.
  void addRateLimited(const WorkKey& key);
  // Forgets the failures of `key` (call after a successful reconcile).
  void forget(const WorkKey& key);
  int failures(const WorkKey& key) const;

  // Blocks until a key is ready (or the queue shuts down: nullopt). The caller must call done().
  std::optional<WorkKey> get();
  void done(const WorkKey& key);

  // Wakes every get() with nullopt; later adds are ignored.
  void shutdown();
  bool shuttingDown() const;

  // Keys ready to be processed (not the delayed ones, not the ones in process).
  std::size_t depth() const;
  // Keys waiting for their delay.
  std::size_t waiting() const;

  // The delay before retry number `failures` (0-based): baseDelay * 2^failures, at most maxDelay.
  static Clock::duration backoff(const WorkQueueOptions& options, int failures);

 private:
  void addLocked(const WorkKey& key);
  void promoteDueLocked(Clock::time_point now);

  base::Clock& clock_;
  const WorkQueueOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<WorkKey> queue_;
  std::unordered_set<WorkKey> dirty_;       // queued (or to be re-queued after processing)
  std::unordered_set<WorkKey> processing_;  // handed to a worker, not done() yet
  std::multimap<Clock::time_point, WorkKey> delayed_;
  std::unordered_map<WorkKey, Clock::time_point> delayedAt_;
  std::unordered_map<WorkKey, int> failures_;
  bool shutdown_ = false;
};

}  // namespace vnetipam::controller
