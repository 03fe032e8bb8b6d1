#include "node-agent/metrics.h"

#include <utility>

namespace vnetipam::agent {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// 50 us .. ~1.6 s: an allocation answered from memory takes microseconds, one waiting for a
// journal fsync a few milliseconds (more on a busy disk).
prometheus::Histogram::BucketBoundaries latencyBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 50e-6; v < 2.0; v *= 2)
    b.push_back(v);
  return b;
}

}  // namespace

AgentMetrics::AgentMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      allocations_(BuildCounter()
                       .Name("vnetipam_agent_allocations_total")
                       .Help("Addresses handed out to pods, by family (ipv4, ipv6; a dual-stack "
                             "ADD counts one of each; a retried ADD of a held address is not "
                             "counted).")
                       .Register(*registry_)),
      allocationsV4_(allocations_.Add({{"family", ipam::labelOf(ipam::Family::kV4)}})),
      allocationsV6_(allocations_.Add({{"family", ipam::labelOf(ipam::Family::kV6)}})),
      allocationFailures_(BuildCounter()
                              .Name("vnetipam_agent_allocation_failures_total")
                              .Help("Allocate requests refused, by the CNI error code answered "
                                    "(11: no free address or not ready).")
                              .Register(*registry_)),
      releases_(BuildCounter()
                    .Name("vnetipam_agent_releases_total")
                    .Help("Addresses released, by reason (cni_del, gc_pod_gone, gc_not_attached, "
                          "admin_release).")
                    .Register(*registry_)),
      gcReleases_(BuildCounter()
                      .Name("vnetipam_agent_gc_releases_total")
                      .Help("Addresses released by garbage collection, by reason.")
                      .Register(*registry_)),
      allocationDuration_(BuildHistogram()
                              .Name("vnetipam_agent_allocation_duration_seconds")
                              .Help("Time to answer an allocate request, journal fsync included.")
                              .Register(*registry_)
                              .Add({}, latencyBuckets())),
      journalSyncDuration_(BuildHistogram()
                               .Name("vnetipam_agent_journal_fsync_duration_seconds")
                               .Help("Time a request waited for the journal fsync covering its "
                                     "record (group commit).")
                               .Register(*registry_)
                               .Add({}, latencyBuckets())),
      blockFreeIPs_(BuildGauge()
                        .Name("vnetipam_agent_block_free_ips")
                        .Help("Addresses free to allocate in each block of this node, labelled "
                              "with the block's family (ipv4, ipv6: sum by family, a dual-stack "
                              "node needs both); cooling addresses are not free.")
                        .Register(*registry_)),
      blocks_(BuildGauge()
                  .Name("vnetipam_agent_blocks")
                  .Help("Blocks this agent holds, by state: usable (Ready), not_ready (no new "
                        "allocations), orphaned (gone from the API but still holding "
                        "allocations); and by family (ipv4, ipv6: a dual-stack node needs a "
                        "usable block of each).")
                  .Register(*registry_)),
      orphanedAllocations_(BuildGauge()
                               .Name("vnetipam_agent_orphaned_allocations")
                               .Help("Allocations held in blocks that no longer exist in the API.")
                               .Register(*registry_)
                               .Add({})),
      usageReports_(BuildCounter()
                        .Name("vnetipam_agent_usage_reports_total")
                        .Help("status.used updates written to IPBlocks.")
                        .Register(*registry_)
                        .Add({})),
      usageReportFailures_(BuildCounter()
                               .Name("vnetipam_agent_usage_report_failures_total")
                               .Help("status.used updates that failed (retried next interval).")
                               .Register(*registry_)
                               .Add({})),
      ready_(BuildGauge()
                 .Name("vnetipam_agent_ready")
                 .Help("1 while the agent serves allocations (caches synced, journal recovered, "
                       "socket listening).")
                 .Register(*registry_)
                 .Add({})),
      drift_(BuildGauge()
                 .Name("vnetipam_agent_dataplane_drift")
                 .Help("Dataplane problems the last check confirmed, by kind: missing_route (an "
                       "allocated address without a /32 host route through an up host veth), "
                       "stale_route (a /32 host route to an address of this node's blocks that "
                       "nobody holds).")
                 .Register(*registry_)),
      driftMissingRoutes_(drift_.Add({{"kind", "missing_route"}})),
      driftStaleRoutes_(drift_.Add({{"kind", "stale_route"}})),
      dataplaneCheckFailures_(BuildCounter()
                                  .Name("vnetipam_agent_dataplane_check_failures_total")
                                  .Help("Dataplane checks that could not read the host's links "
                                        "or routes (the gauge keeps its last value).")
                                  .Register(*registry_)
                                  .Add({})) {
  // Every reason exists from the start, at 0, so rate() and absent-series alerts work.
  for (std::string_view reason :
       {kReasonCniDel, kReasonPodGone, kReasonCniGc, kReasonAdminRelease}) {
    releasesByReason_.emplace(std::string(reason),
                              &releases_.Add({{"reason", std::string(reason)}}));
    if (reason == kReasonPodGone || reason == kReasonCniGc) {
      gcReleases_.Add({{"reason", std::string(reason)}});
    }
  }
  failuresByCode_.emplace(11, &allocationFailures_.Add({{"code", "11"}}));
  for (BlockUse use : {BlockUse::kUsable, BlockUse::kNotReady, BlockUse::kOrphaned}) {
    for (ipam::Family family : {ipam::Family::kV4, ipam::Family::kV6})
      setBlocks(use, family, 0);
  }
}

void AgentMetrics::allocated(std::chrono::nanoseconds latency,
                             std::span<const ipam::Family> families) {
  for (ipam::Family f : families)
    (f == ipam::Family::kV4 ? allocationsV4_ : allocationsV6_).Increment();
  allocationDuration_.Observe(seconds(latency));
}

void AgentMetrics::allocationFailed(int cniCode, std::chrono::nanoseconds latency) {
  allocationDuration_.Observe(seconds(latency));
  std::lock_guard lock(mutex_);
  auto [it, inserted] = failuresByCode_.try_emplace(cniCode, nullptr);
  if (inserted) it->second = &allocationFailures_.Add({{"code", std::to_string(cniCode)}});
  it->second->Increment();
}

void AgentMetrics::released(std::string_view reason) {
  prometheus::Counter* counter = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto it = releasesByReason_.find(reason);
    if (it == releasesByReason_.end()) {
      it = releasesByReason_
               .emplace(std::string(reason), &releases_.Add({{"reason", std::string(reason)}}))
               .first;
    }
    counter = it->second;
  }
  counter->Increment();
  if (reason == kReasonPodGone || reason == kReasonCniGc) {
    gcReleases_.Add({{"reason", std::string(reason)}}).Increment();
  }
}

void AgentMetrics::journalSynced(std::chrono::nanoseconds latency) {
  journalSyncDuration_.Observe(seconds(latency));
}

void AgentMetrics::setBlockFreeIPs(const std::string& block, ipam::Family family,
                                   std::uint64_t free) {
  std::lock_guard lock(mutex_);
  auto it = freeByBlock_.find(block);
  if (it == freeByBlock_.end()) {
    it = freeByBlock_
             .emplace(block,
                      &blockFreeIPs_.Add({{"block", block}, {"family", ipam::labelOf(family)}}))
             .first;
  }
  it->second->Set(static_cast<double>(free));
}

void AgentMetrics::removeBlock(const std::string& block) {
  std::lock_guard lock(mutex_);
  auto it = freeByBlock_.find(block);
  if (it == freeByBlock_.end()) return;
  blockFreeIPs_.Remove(it->second);
  freeByBlock_.erase(it);
}

void AgentMetrics::setBlocks(BlockUse use, ipam::Family family, std::size_t count) {
  const char* state = use == BlockUse::kUsable     ? "usable"
                      : use == BlockUse::kNotReady ? "not_ready"
                                                   : "orphaned";
  blocks_.Add({{"state", state}, {"family", ipam::labelOf(family)}})
      .Set(static_cast<double>(count));
}

void AgentMetrics::setOrphanedAllocations(std::size_t count) {
  orphanedAllocations_.Set(static_cast<double>(count));
}

void AgentMetrics::usageReported(bool ok) {
  (ok ? usageReports_ : usageReportFailures_).Increment();
}

void AgentMetrics::setReady(bool ready) { ready_.Set(ready ? 1 : 0); }

void AgentMetrics::setDataplaneDrift(std::size_t missingRoutes, std::size_t staleRoutes) {
  driftMissingRoutes_.Set(static_cast<double>(missingRoutes));
  driftStaleRoutes_.Set(static_cast<double>(staleRoutes));
}

void AgentMetrics::dataplaneCheckFailed() { dataplaneCheckFailures_.Increment(); }

}  // namespace vnetipam::agent
