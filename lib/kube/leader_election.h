// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics
// (k8s.io/client-go/tools/leaderelection), so our replicas and client-go based tools read the
// same Lease the same way.
//
// The Lease spec: holderIdentity, leaseDurationSeconds, acquireTime and renewTime (MicroTime),
// leaseTransitions. Every write is a PUT carrying the resourceVersion that was read, so of two
// candidates writing the same version exactly one succeeds; the other gets a conflict and is not
// leader this round.
//
// What a caller may rely on:
// - Expiry is judged as client-go does, by *our* monotonic clock: a lease held by another is
//   taken only when its record has not changed for leaseDuration since we last saw it change.
//   The remote renewTime is never compared with our clock, so clock skew between machines does not
//   matter (only their rates must agree).
// - A leader that has not renewed successfully for renewDeadline stops leading (onStoppedLeading)
//   at the first round that notices, and at once when it sees another holder in the Lease.
//   renewDeadline < leaseDuration leaves the difference as margin against a standby that
//   takes over as soon as the lease expires. The check runs between API calls, so the HTTP
//   transport's request timeout must be well below renewDeadline - retryPeriod.
// - Callbacks run on the thread calling tryAcquireOrRenew()/run()/release(), one at a time; they
//   must not block (start leader work on its own thread and stop it in onStoppedLeading).
//   onStoppedLeading is called only after onStartedLeading, once per term, and always *before*
//   the lease is released: unlike client-go (which releases first) the leader's work is over
//   before a standby may start, so two leaders never overlap.
// - onNewLeader(identity) is called whenever the holder we observe changes to a non-empty
//   identity, ours included.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"
#include "lib/http/transport.h"
#include "lib/kube/client.h"
#include "lib/kube/error.h"
#include "lib/kube/events.h"

namespace vnetipam::kube {

struct LeaderElectionConfig {
  std::string leaseNamespace;
  std::string leaseName;
  std::string identity;  // unique per candidate, e.g. the pod name; required
  base::Clock::Duration leaseDuration = std::chrono::seconds(15);
  base::Clock::Duration renewDeadline = std::chrono::seconds(10);  // < leaseDuration
  base::Clock::Duration retryPeriod = std::chrono::seconds(2);     // < renewDeadline
  // While not leading, each wait is retryPeriod * (1 + jitterFactor * random01()), as client-go's
  // acquire loop (JitterFactor 1.2), so candidates that start together do not poll together.
  double jitterFactor = 1.2;
  std::function<double()> random01;  // default: a seeded PRNG
  bool releaseOnCancel = true;       // run(): clear the Lease when cancelled while leading
  std::function<void()> onStartedLeading;
  std::function<void()> onStoppedLeading;
  std::function<void(const std::string& identity)> onNewLeader;
  LogSink log;  // one line per failed round; default: stderr
};

// The outcome of one tryAcquireOrRenew() round.
struct ElectionRound {
  bool acquiredOrRenewed = false;  // this round's write succeeded: we hold the lease now
  bool leading = false;  // after this round (still true after a failed renew within renewDeadline)
  std::string holder;    // the holder seen in the Lease ("" when none or unknown)
  std::optional<Error> error;  // set when the round failed for an API reason
};

class LeaderElector {
 public:
  // `client` and `clock` must outlive the elector. The config is checked by validate().
  LeaderElector(Client& client, base::Clock& clock, LeaderElectionConfig config);

  // Empty when the config is usable; otherwise what is wrong with it.
  static std::optional<std::string> validate(const LeaderElectionConfig& config);

  // One round of client-go's tryAcquireOrRenew, plus the bookkeeping of leadership: read the
  // Lease; create it when absent; take it when it is free, expired or ours; write it with the
  // read resourceVersion. Fires the callbacks described above. Not thread-safe: one caller.
  ElectionRound tryAcquireOrRenew();

  // Stops leading (onStoppedLeading) and clears the Lease (holderIdentity "", leaseDurationSeconds
  // 1) so a standby takes over at its next round instead of after leaseDuration. A no-op when not
  // leading. A failed write is returned; leadership has ended anyway.
  Result<void> release();

  // Rounds every retryPeriod (jittered while not leading) until leadership is lost or `cancel`
  // fires; then stops leading, releasing the Lease when cancelled and releaseOnCancel. Like
  // client-go's Run, it returns after a loss rather than competing again: a process that lost
  // its lease should exit (or call run() again once its leader work is known to be stopped).
  void run(http::CancelSignal& cancel);

  // Thread-safe.
  bool isLeader() const { return leading_.load(std::memory_order_acquire); }
  // The Lease as last read or written (null before the first successful read). Thread-safe.
  nlohmann::json observedLease() const;

 private:
  std::string leasePath() const;
  std::string leaseCollection() const;
  nlohmann::json leaseSpec(const nlohmann::json& previous, bool keepTerm) const;
  void observe(const nlohmann::json& lease);
  void reportHolder(const std::string& holder);
  void startLeading();
  void stopLeading();
  void sleepUnlessCancelled(base::Clock::Duration d, http::CancelSignal& cancel);
  ElectionRound attempt();

  Client& client_;
  base::Clock& clock_;
  LeaderElectionConfig config_;

  mutable std::mutex observedMutex_;
  nlohmann::json observedLease_;  // the whole object, for its resourceVersion and uid
  nlohmann::json observedSpec_;   // what a change of the record is judged on
  base::Clock::TimePoint observedTime_{};
  std::string reportedLeader_;

  std::atomic<bool> leading_{false};
  base::Clock::TimePoint lastRenew_{};
};

}  // namespace vnetipam::kube
