// Every metric of the agent, in one list (metrics.cpp registers them on one registry). Prefix
// vnetipam_agent_, base units (seconds), counters end in _total.
//
// Thread-safe: every method may be called from any thread (prometheus-cpp metrics are atomic;
// the per-block series map has its own mutex).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "lib/ipam/ip.h"

namespace vnetipam::agent {

// Why an address was released, as label values of releases_total.
inline constexpr std::string_view kReasonCniDel = "cni_del";
// gc_pod_gone also covers a pod deleted and recreated under its name (another UID): the
// allocation's own pod is gone. The label set stays as it was.
inline constexpr std::string_view kReasonPodGone = "gc_pod_gone";
inline constexpr std::string_view kReasonCniGc = "gc_not_attached";
// An admin's `kubectl ipam release` that the agent honoured (release_request.h): not GC, so not
// counted in gc_releases_total.
inline constexpr std::string_view kReasonAdminRelease = "admin_release";

// A block's state as the agent sees it (label of vnetipam_agent_blocks).
enum class BlockUse { kUsable, kNotReady, kOrphaned };

class AgentMetrics {
 public:
  explicit AgentMetrics(std::shared_ptr<prometheus::Registry> registry);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // One allocate answered with new addresses: `families` counts them, one per family.
  void allocated(std::chrono::nanoseconds latency, std::span<const ipam::Family> families);
  // `cniCode`: the CNI error code answered (11 exhausted or not ready, 5 journal failure...).
  void allocationFailed(int cniCode, std::chrono::nanoseconds latency);
  void released(std::string_view reason);
  void journalSynced(std::chrono::nanoseconds latency);
  // Per block, labelled with the block's family ("ipv4", "ipv6"): a dual-stack node runs out when
  // either family does, so capacity is summed by family, never across them.
  void setBlockFreeIPs(const std::string& block, ipam::Family family, std::uint64_t free);
  void removeBlock(const std::string& block);
  // Blocks of one family ("ipv4", "ipv6") in one state. Every state of each family exists from
  // the start, at 0: an IPv4-only node reports its IPv6 blocks as 0.
  void setBlocks(BlockUse use, ipam::Family family, std::size_t count);
  void setOrphanedAllocations(std::size_t count);
  void usageReported(bool ok);
  void setReady(bool ready);
  // The confirmed findings of the last dataplane check, by kind.
  void setDataplaneDrift(std::size_t missingRoutes, std::size_t staleRoutes);
  void dataplaneCheckFailed();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& allocations_;
  prometheus::Counter& allocationsV4_;
  prometheus::Counter& allocationsV6_;
  prometheus::Family<prometheus::Counter>& allocationFailures_;
  prometheus::Family<prometheus::Counter>& releases_;
  prometheus::Family<prometheus::Counter>& gcReleases_;
  prometheus::Histogram& allocationDuration_;
  prometheus::Histogram& journalSyncDuration_;
  prometheus::Family<prometheus::Gauge>& blockFreeIPs_;
  prometheus::Family<prometheus::Gauge>& blocks_;
  prometheus::Gauge& orphanedAllocations_;
  prometheus::Counter& usageReports_;
  prometheus::Counter& usageReportFailures_;
  prometheus::Gauge& ready_;
  prometheus::Family<prometheus::Gauge>& drift_;
  prometheus::Gauge& driftMissingRoutes_;
  prometheus::Gauge& driftStaleRoutes_;
  prometheus::Counter& dataplaneCheckFailures_;

  std::mutex mutex_;  // guards the caches below
  std::map<std::string, prometheus::Gauge*, std::less<>> freeByBlock_;
  std::map<int, prometheus::Counter*> failuresByCode_;
  std::map<std::string, prometheus::Counter*, std::less<>> releasesByReason_;
};

}  // namespace vnetipam::agent
