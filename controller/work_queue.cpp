#include "controller/work_queue.h"

#include <algorithm>

namespace vnetipam::controller {

WorkQueue::WorkQueue(base::Clock& clock, WorkQueueOptions options)
    : clock_(clock), options_(options) {}

WorkQueue::WorkQueue(WorkQueueOptions options) : WorkQueue(base::systemClock(), options) {}

WorkQueue::Clock::duration WorkQueue::backoff(const WorkQueueOptions& options, int failures) {
  const auto base = std::chrono::duration_cast<Clock::duration>(options.baseDelay);
  const auto max = std::chrono::duration_cast<Clock::duration>(options.maxDelay);
  Clock::duration delay = base;
  for (int i = 0; i < failures && delay < max; ++i)
    delay *= 2;
  return std::min(delay, max);
}

void WorkQueue::addLocked(const WorkKey& key) {
  if (shutdown_ || dirty_.contains(key)) return;
  dirty_.insert(key);
  if (processing_.contains(key)) return;  // done() queues it again
  queue_.push_back(key);
  changed_.notify_one();
}

void WorkQueue::add(const WorkKey& key) {
  std::lock_guard lock(mutex_);
  addLocked(key);
}

void WorkQueue::addAfter(const WorkKey& key, Clock::duration delay) {
  if (delay <= Clock::duration::zero()) return add(key);
  std::lock_guard lock(mutex_);
  if (shutdown_) return;
  const Clock::time_point at = clock_.now() + delay;
  const auto waiting = delayedAt_.find(key);
  if (waiting != delayedAt_.end()) {
    if (waiting->second <= at) return;
    auto [first, last] = delayed_.equal_range(waiting->second);
    for (auto it = first; it != last; ++it) {
      if (it->second == key) {
        delayed_.erase(it);
        break;
      }
    }
  }
  delayed_.emplace(at, key);
  delayedAt_[key] = at;
  changed_.notify_one();  // a sleeping get() may need to wake earlier
}

void WorkQueue::addRateLimited(const WorkKey& key) {
  int failures = 0;
  {
    std::lock_guard lock(mutex_);
    failures = failures_[key]++;
  }
  addAfter(key, backoff(options_, failures));
}

void WorkQueue::forget(const WorkKey& key) {
  std::lock_guard lock(mutex_);
  failures_.erase(key);
}

int WorkQueue::failures(const WorkKey& key) const {
  std::lock_guard lock(mutex_);
  const auto found = failures_.find(key);
  return found == failures_.end() ? 0 : found->second;
}

void WorkQueue::promoteDueLocked(Clock::time_point now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    WorkKey key = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    delayedAt_.erase(key);
    addLocked(key);
  }
}

std::optional<WorkKey> WorkQueue::get() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (shutdown_) return std::nullopt;
    promoteDueLocked(clock_.now());
    if (!queue_.empty()) {
      WorkKey key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    if (delayed_.empty()) {
      changed_.wait(lock);
    } else {
      // Relative, so an injected clock's time is what is waited for.
      changed_.wait_for(lock, delayed_.begin()->first - clock_.now());
    }
  }
}

void WorkQueue::done(const WorkKey& key) {
  std::lock_guard lock(mutex_);
  processing_.erase(key);
  if (dirty_.contains(key) && !shutdown_) {
    queue_.push_back(key);
    changed_.notify_one();
  }
}

void WorkQueue::shutdown() {
  std::lock_guard lock(mutex_);
  shutdown_ = true;
  changed_.notify_all();
}

bool WorkQueue::shuttingDown() const {
  std::lock_guard lock(mutex_);
  return shutdown_;
}

std::size_t WorkQueue::depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

std::size_t WorkQueue::waiting() const {
  std::lock_guard lock(mutex_);
  return delayed_.size();
}

}  // namespace vnetipam::controller
