#include "lib/kube/leader_election.h"

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "lib/base/time.h"

namespace vnetipam::kube {

using nlohmann::json;

namespace {

constexpr std::string_view kLeasesApi = "/apis/coordination.k8s.io/v1";
// run() sleeps in slices this long so a cancel (SIGTERM) is seen quickly.
constexpr base::Clock::Duration kCancelCheck = std::chrono::milliseconds(50);

std::int64_t wholeSecondsUp(base::Clock::Duration d) {
  return std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(d).count());
}

std::string holderOf(const json& spec) {
  const auto holder = spec.find("holderIdentity");
  return holder != spec.end() && holder->is_string() ? holder->get<std::string>() : std::string();
}

std::int64_t transitionsOf(const json& spec) {
  const auto transitions = spec.find("leaseTransitions");
  return transitions != spec.end() && transitions->is_number_integer()
             ? transitions->get<std::int64_t>()
             : 0;
}

}  // namespace

LeaderElector::LeaderElector(Client& client, base::Clock& clock, LeaderElectionConfig config)
    : client_(client), clock_(clock), config_(std::move(config)) {
  if (!config_.log) config_.log = [](std::string_view line) { std::cerr << line << std::endl; };
  if (!config_.random01) {
    config_.random01 = [engine = std::make_shared<std::mt19937_64>(std::random_device{}())] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
    };
  }
}

std::optional<std::string> LeaderElector::validate(const LeaderElectionConfig& config) {
  if (config.leaseNamespace.empty() || config.leaseName.empty()) {
    return "leader election: the Lease namespace and name are required";
  }
  if (config.identity.empty()) return "leader election: identity is required";
  if (config.retryPeriod <= base::Clock::Duration::zero()) {
    return "leader election: retryPeriod must be > 0";
  }
  if (config.renewDeadline <= config.retryPeriod) {
    return "leader election: renewDeadline must be greater than retryPeriod";
  }
  if (config.leaseDuration <= config.renewDeadline) {
    return "leader election: leaseDuration must be greater than renewDeadline";
  }
  if (config.jitterFactor < 0) return "leader election: jitterFactor must be >= 0";
  return std::nullopt;
}

std::string LeaderElector::leaseCollection() const {
  return fmt::format("{}/namespaces/{}/leases", kLeasesApi, config_.leaseNamespace);
}

std::string LeaderElector::leasePath() const {
  return fmt::format("{}/{}", leaseCollection(), config_.leaseName);
}

json LeaderElector::observedLease() const {
  std::lock_guard lock(observedMutex_);
  return observedLease_;
}

// The spec we write to hold the lease. `keepTerm`: we already hold it (a renewal), so the
// acquireTime and transition count of our term stay; otherwise a new term starts.
json LeaderElector::leaseSpec(const json& previous, bool keepTerm) const {
  const std::string now = base::formatRfc3339Micro(clock_.wallNow());
  json spec = {{"holderIdentity", config_.identity},
               {"leaseDurationSeconds", wholeSecondsUp(config_.leaseDuration)},
               {"acquireTime", now},
               {"renewTime", now},
               {"leaseTransitions", transitionsOf(previous)}};
  if (keepTerm) {
    if (const auto acquired = previous.find("acquireTime");
        acquired != previous.end() && acquired->is_string()) {
      spec["acquireTime"] = *acquired;
    }
  } else if (previous.is_object() && !previous.empty()) {
    spec["leaseTransitions"] = transitionsOf(previous) + 1;
  }
  return spec;
}

void LeaderElector::observe(const json& lease) {
  const json spec = lease.contains("spec") && lease["spec"].is_object() ? lease["spec"] : json{};
  std::lock_guard lock(observedMutex_);
  // The expiry clock restarts only when the record changes: a holder that stopped renewing
  // leaves the same record, and it expires leaseDuration after we first saw that record.
  if (spec != observedSpec_ || observedLease_.is_null()) {
    observedSpec_ = spec;
    observedTime_ = clock_.now();
  }
  observedLease_ = lease;
}

void LeaderElector::reportHolder(const std::string& holder) {
  if (holder.empty() || holder == reportedLeader_) return;
  reportedLeader_ = holder;
  if (config_.onNewLeader) config_.onNewLeader(holder);
}

void LeaderElector::startLeading() {
  leading_.store(true, std::memory_order_release);
  if (config_.onStartedLeading) config_.onStartedLeading();
}

void LeaderElector::stopLeading() {
  if (!leading_.exchange(false, std::memory_order_acq_rel)) return;
  if (config_.onStoppedLeading) config_.onStoppedLeading();
}

ElectionRound LeaderElector::attempt() {
  auto got = client_.get(leasePath());
  if (!got) {
    if (got.error().code != ErrorCode::kNotFound) {
      return ElectionRound{.error = std::move(got.error())};
    }
    const json lease = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", config_.leaseName}, {"namespace", config_.leaseNamespace}}},
        {"spec", leaseSpec(json::object(), false)}};
    // Of two candidates creating at once, the second gets AlreadyExists: not leader this round.
    auto created = client_.create(leaseCollection(), lease);
    if (!created) return ElectionRound{.error = std::move(created.error())};
    observe(*created);
    reportHolder(config_.identity);
    return ElectionRound{.acquiredOrRenewed = true, .holder = config_.identity};
  }

  observe(*got);
  const json spec =
      (*got).contains("spec") && (*got)["spec"].is_object() ? (*got)["spec"] : json::object();
  const std::string holder = holderOf(spec);
  reportHolder(holder);
  if (!holder.empty() && holder != config_.identity) {
    base::Clock::TimePoint seenChange;
    {
      std::lock_guard lock(observedMutex_);
      seenChange = observedTime_;
    }
    // Held by another and its record changed less than leaseDuration ago (by our clock).
    if (clock_.now() < seenChange + config_.leaseDuration) {
      return ElectionRound{.holder = holder};
    }
  }

  json lease = *got;
  lease["spec"] = leaseSpec(spec, holder == config_.identity);
  // The PUT carries the resourceVersion we read: if anyone wrote in between, kConflict.
  auto updated = client_.update(leasePath(), lease);
  if (!updated) return ElectionRound{.holder = holder, .error = std::move(updated.error())};
  observe(*updated);
  reportHolder(config_.identity);
  return ElectionRound{.acquiredOrRenewed = true, .holder = config_.identity};
}

ElectionRound LeaderElector::tryAcquireOrRenew() {
  if (isLeader() && clock_.now() - lastRenew_ >= config_.renewDeadline) {
    // Too late to renew: whatever this round would do, our term may already be someone else's.
    config_.log(fmt::format(
        "leader election {}/{}: {} stops leading: no renewal for {} ms", config_.leaseNamespace,
        config_.leaseName, config_.identity,
        std::chrono::duration_cast<std::chrono::milliseconds>(config_.renewDeadline).count()));
    stopLeading();
    return ElectionRound{};
  }
  ElectionRound round = attempt();
  const base::Clock::TimePoint now = clock_.now();
  if (round.acquiredOrRenewed) {
    lastRenew_ = now;
    if (!isLeader()) startLeading();
  } else if (isLeader()) {
    if (!round.holder.empty() && round.holder != config_.identity) {
      config_.log(fmt::format("leader election {}/{}: {} stops leading: the lease is held by {}",
                              config_.leaseNamespace, config_.leaseName, config_.identity,
                              round.holder));
      stopLeading();
    } else if (now - lastRenew_ >= config_.renewDeadline) {
      config_.log(fmt::format(
          "leader election {}/{}: {} stops leading: no renewal for {} ms", config_.leaseNamespace,
          config_.leaseName, config_.identity,
          std::chrono::duration_cast<std::chrono::milliseconds>(config_.renewDeadline).count()));
      stopLeading();
    }
  }
  if (round.error) {
    config_.log(fmt::format("leader election {}/{}: {}: {}", config_.leaseNamespace,
                            config_.leaseName, config_.identity, round.error->message));
  }
  round.leading = isLeader();
  return round;
}

Result<void> LeaderElector::release() {
  if (!isLeader()) return {};
  // The leader's work stops before the lease is free, so no standby can overlap it.
  stopLeading();
  json lease = observedLease();
  if (!lease.is_object()) return {};
  const std::string now = base::formatRfc3339Micro(clock_.wallNow());
  const json previous = lease.contains("spec") ? lease["spec"] : json::object();
  lease["spec"] = {{"holderIdentity", ""},
                   {"leaseDurationSeconds", 1},
                   {"acquireTime", now},
                   {"renewTime", now},
                   {"leaseTransitions", transitionsOf(previous)}};
  // With our last resourceVersion: if someone took the lease since, this conflicts and changes
  // nothing, as it should.
  auto updated = client_.update(leasePath(), lease);
  if (!updated) {
    config_.log(fmt::format("leader election {}/{}: {} could not release the lease: {}",
                            config_.leaseNamespace, config_.leaseName, config_.identity,
                            updated.error().message));
    return std::unexpected(std::move(updated.error()));
  }
  observe(*updated);
  return {};
}

void LeaderElector::sleepUnlessCancelled(base::Clock::Duration d, http::CancelSignal& cancel) {
  while (d > base::Clock::Duration::zero() && !cancel.cancelled()) {
    const base::Clock::Duration slice = std::min(d, kCancelCheck);
    clock_.sleepFor(slice);
    d -= slice;
  }
}

void LeaderElector::run(http::CancelSignal& cancel) {
  bool wasLeading = isLeader();
  while (!cancel.cancelled()) {
    const ElectionRound round = tryAcquireOrRenew();
    if (wasLeading && !round.leading) return;  // lost: onStoppedLeading has run
    wasLeading = round.leading;
    base::Clock::Duration wait = config_.retryPeriod;
    if (!round.leading) {
      const double factor = 1.0 + config_.jitterFactor * std::clamp(config_.random01(), 0.0, 1.0);
      wait = std::chrono::duration_cast<base::Clock::Duration>(config_.retryPeriod * factor);
    } else {
      // Wake by the renew deadline at the latest, so a leader that cannot renew stops in time.
      wait = std::min(wait, lastRenew_ + config_.renewDeadline - clock_.now());
    }
    sleepUnlessCancelled(wait, cancel);
  }
  if (!isLeader()) return;
  if (config_.releaseOnCancel) {
    (void)release();  // a failure is logged; the lease then expires after leaseDuration
  } else {
    stopLeading();
  }
}

}  // namespace vnetipam::kube
