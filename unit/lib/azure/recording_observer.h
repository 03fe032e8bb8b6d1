// An ArmObserver that remembers what it was told, for tests of the metrics hooks.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "lib/azure/metrics.h"

namespace vnetipam::azure::testing {

class RecordingObserver final : public ArmObserver {
 public:
  struct Request {
    std::string operation;
    int status;
  };
  struct Wait {
    std::string operation;
    WaitReason reason;
    std::chrono::nanoseconds duration;
  };

  void onRequest(std::string_view operation, int status, std::chrono::nanoseconds) override {
    std::lock_guard lock(mutex_);
    requests_.push_back({std::string(operation), status});
  }
  void onWait(std::string_view operation, WaitReason reason,
              std::chrono::nanoseconds duration) override {
    std::lock_guard lock(mutex_);
    waits_.push_back({std::string(operation), reason, duration});
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::vector<Wait> waits() const {
    std::lock_guard lock(mutex_);
    return waits_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  std::vector<Wait> waits_;
};

}  // namespace vnetipam::azure::testing
