// Hooks for the controller's metrics: lib/azure reports what it did, the controller turns it into
// Prometheus series. No metrics library here.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace vnetipam::azure {

// Why the client waited before sending a request.
enum class WaitReason {
  kThrottled,            // a 429 from Azure (Retry-After honoured)
  kOperationInProgress,  // a 409 AnotherOperationInProgress: another write holds the resource
  kWriteBudget,          // the client-side write budget was spent
  kReadBudget,           // the client-side read budget was spent
  kRetryBackoff,         // a 408, 5xx or broken connection is being retried
  kOperationPoll,        // waiting between polls of a long-running operation
  kReserve,  // a remaining count Azure sent is under the reserve (ArmPacer): left to others
};
std::string_view toString(WaitReason reason);

class ArmObserver {
 public:
  virtual ~ArmObserver() = default;

  // One call per HTTP attempt. `operation` is a fixed name such as "PutNetworkInterface" or
  // "AcquireToken" (a small, bounded set: safe as a label). `status` is the HTTP status, or 0
  // when no response arrived. Called on the requesting thread: must be thread-safe and quick.
  virtual void onRequest(std::string_view operation, int status,
                         std::chrono::nanoseconds latency) = 0;

  // One call per wait (measured on the injected clock), before the wait happens.
  virtual void onWait(std::string_view operation, WaitReason reason,
                      std::chrono::nanoseconds wait) = 0;

  // What the subscription has left, as a response's x-ms-ratelimit-remaining-* `header` says
  // (ArmPacer), for a request of the read class or the write class. Thread-safe and quick.
  virtual void onRateLimitRemaining(bool read, std::string_view header, std::int64_t remaining) {
    (void)read, (void)header, (void)remaining;
  }
};

// Reports nothing; the default.
class NullArmObserver final : public ArmObserver {
 public:
  void onRequest(std::string_view, int, std::chrono::nanoseconds) override {}
  void onWait(std::string_view, WaitReason, std::chrono::nanoseconds) override {}
};

}  // namespace vnetipam::azure
