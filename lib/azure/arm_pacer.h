// The pace of one process's calls to Azure Resource Manager, shared by every ARM request the
// process sends (reads and writes apart), so that it keeps to a configured share of the
// subscription's limits instead of finding them through 429s. The subscription is shared with
// other tools (the cloud provider, autoscalers, pipelines): a 429 pauses them all, and ARM
// counts the refused requests too.
//
// Two rules, both per class (reads: GET; writes: everything else, DELETE included, as the
// Network RP counts them together):
// - A budget per 5 minutes, spent at an even pace: a token bucket of `burst` = max(1, budget/100)
//   tokens refilled at (budget - burst) per 5 minutes, so no 5-minute span ever holds more than
//   the budget, and a join of many nodes runs at the budget's rate instead of bursting into a
//   429. Reservations queue in call order.
// - A reserve: every response says what the subscription has left (x-ms-ratelimit-remaining-*).
//   When one of those counts is below the class's reserve, the class is held until that count
//   has had time to come back: for ARM's token buckets (-subscription-reads/-writes/-deletes and
//   their -global- twins) the time they take to refill to the reserve at ARM's documented rate
//   (reads 25 a second, writes and deletes 10; the global buckets 15 times that); for the
//   resource provider's own count (-subscription-resource-requests, 5-minute windows) the whole
//   window. Other tools' traffic is what drives a count that low; we leave them the rest.
// A 429 holds its class for its Retry-After (ArmClient reports it through hold()).
// `timeScale` N runs all of this N times faster (the window lasts 5 min / N), to match
// azure-vnet-mock --time-scale N in benchmarks.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "lib/azure/metrics.h"
#include "lib/azure/retry.h"
#include "lib/http/transport.h"

namespace vnetipam::azure {

struct ArmPacerOptions {
  int readsPer5Min = 5000;  // half the Network RP's 10,000; 0: reads are not paced
  int writesPer5Min = 500;  // half the Network RP's 1,000; 0: writes are not paced
  int readReserve = 50;     // never spend a read when fewer than this remain; 0: no reserve
  int writeReserve = 20;    // the same for writes and deletes
  double timeScale = 1;     // > 0
};

class ArmPacer {
 public:
  // `observer` (may be null) hears every remaining count seen; it must outlive the pacer.
  ArmPacer(Clock& clock, ArmPacerOptions options, ArmObserver* observer = nullptr);

  // Takes one request's place in its class's budget: how long the caller waits before it may
  // send (zero when the budget has room).
  Clock::Duration reserve(bool read);

  // How long the class is still held (a 429's Retry-After, or a count under the reserve), and
  // why; zero when it is not.
  struct Hold {
    Clock::Duration left{};
    WaitReason reason = WaitReason::kThrottled;
  };
  Hold holdLeft(bool read);

  // Holds the class for `pause` from now (a 429's Retry-After); a longer hold stays.
  void hold(bool read, Clock::Duration pause, WaitReason reason = WaitReason::kThrottled);

  // Reads the remaining counts of a response to a request of that class.
  void observe(bool read, const http::Headers& headers);

 private:
  struct Budget {
    double rate = 0;  // tokens per second; 0: unlimited
    double burst = 1;
    double tokens = 1;  // may go negative: tokens promised to waiting callers
    Clock::TimePoint last{};
    Clock::TimePoint heldUntil{};
    WaitReason heldFor = WaitReason::kThrottled;
    int reserve = 0;
  };
  Budget makeBudget(int per5Min, int reserve) const;

  Clock& clock_;
  ArmPacerOptions options_;
  ArmObserver* observer_;
  Clock::Duration window_;
  std::mutex mutex_;
  Budget reads_;
  Budget writes_;
};

}  // namespace vnetipam::azure
