#include "lib/http/transport.h"

#include <algorithm>
#include <vector>

#include "lib/base/text.h"

namespace vnetipam::http {

bool HeaderNameLess::operator()(std::string_view a, std::string_view b) const {
  // Bytes compare unsigned, as std::string's own order does.
  return std::ranges::lexicographical_compare(a, b, [](char x, char y) {
    return static_cast<unsigned char>(text::asciiLower(x)) <
           static_cast<unsigned char>(text::asciiLower(y));
  });
}

void CancelSignal::cancel() {
  std::vector<std::function<void()>> toRun;
  std::unique_lock lock(mutex_);
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  for (auto& [id, callback] : callbacks_)
    toRun.push_back(std::move(callback));
  callbacks_.clear();
  running_ = true;
  lock.unlock();
  for (auto& callback : toRun)
    callback();
  lock.lock();
  running_ = false;
  idle_.notify_all();
}

std::uint64_t CancelSignal::onCancel(std::function<void()> callback) {
  {
    std::lock_guard lock(mutex_);
    if (!cancelled_.load(std::memory_order_acquire)) {
      const std::uint64_t id = nextId_++;
      callbacks_.emplace(id, std::move(callback));
      return id;
    }
  }
  callback();
  return 0;
}

void CancelSignal::removeOnCancel(std::uint64_t id) {
  std::unique_lock lock(mutex_);
  callbacks_.erase(id);
  // cancel() may have taken this callback already and be running it on its own thread: the
  // caller is about to destroy what it captures (a stream's cancellation source).
  idle_.wait(lock, [this] { return !running_; });
}

}  // namespace vnetipam::http
