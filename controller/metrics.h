// Every metric of the controller, in one list (metrics.cpp registers them on one registry).
// Names follow the Prometheus rules: prefix vnetipam_, base units (seconds), counters end in
// _total. The Azure client reports through the ArmObserver interface implemented here.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "lib/azure/metrics.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

// The three reconcilers, as label values.
inline constexpr std::string_view kPodSubnetReconciler = "podsubnet";
inline constexpr std::string_view kNodeReconciler = "node";
inline constexpr std::string_view kNicReconciler = "nic";

struct PoolNumbers {
  std::int64_t totalBlocks = 0;
  std::int64_t allocatedBlocks = 0;
  std::int64_t totalIPs = 0;
  std::int64_t allocatedIPs = 0;  // agent-reported status.used, summed
  bool exhausted = false;
  // status.foreignAddresses; nullopt: the series is removed (not known).
  std::optional<std::int64_t> foreignAddresses;
};

class ControllerMetrics final : public azure::ArmObserver {
 public:
  // Registers every family on `registry`.
  explicit ControllerMetrics(std::shared_ptr<prometheus::Registry> registry);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  void setPool(const std::string& podSubnet, const PoolNumbers& numbers);
  void removePool(const std::string& podSubnet);
  // Blocks the node holds of one family, over all PodSubnets of it: a dual-stack node holds
  // blocks of two PodSubnets, one per family. 0 removes the series.
  void setNodeBlocks(const std::string& node, ipam::Family family, std::int64_t blocks);
  void blockAllocated(const std::string& podSubnet);
  void blockReleased(const std::string& podSubnet);
  // The orphan sweep took a prefix of this PodSubnet off a NIC of no Node (orphan_sweep.h).
  void orphanPrefixRemoved(const std::string& podSubnet);
  void reconciled(std::string_view reconciler, std::chrono::nanoseconds duration, bool failed);
  void setLeader(bool leader);
  void setQueueDepth(std::size_t depth);

  // azure::ArmObserver
  void onRequest(std::string_view operation, int status, std::chrono::nanoseconds latency) override;
  void onWait(std::string_view operation, azure::WaitReason reason,
              std::chrono::nanoseconds wait) override;
  void onRateLimitRemaining(bool read, std::string_view header, std::int64_t remaining) override;

 private:
  std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Family<prometheus::Gauge>& poolBlocks_;
  prometheus::Family<prometheus::Gauge>& poolAllocatedBlocks_;
  prometheus::Family<prometheus::Gauge>& poolIPs_;
  prometheus::Family<prometheus::Gauge>& poolAllocatedIPs_;
  prometheus::Family<prometheus::Gauge>& poolExhausted_;
  prometheus::Family<prometheus::Gauge>& poolForeign_;
  prometheus::Family<prometheus::Gauge>& nodeBlocks_;
  prometheus::Family<prometheus::Counter>& allocations_;
  prometheus::Family<prometheus::Counter>& releases_;
  prometheus::Family<prometheus::Counter>& orphansRemoved_;
  prometheus::Family<prometheus::Histogram>& reconcileDuration_;
  prometheus::Family<prometheus::Counter>& reconcileErrors_;
  prometheus::Family<prometheus::Counter>& azureRequests_;
  prometheus::Family<prometheus::Histogram>& azureDuration_;
  prometheus::Family<prometheus::Counter>& azureThrottled_;
  prometheus::Family<prometheus::Counter>& azureWaitSeconds_;
  prometheus::Family<prometheus::Gauge>& azureRemaining_;
  prometheus::Gauge& leader_;
  prometheus::Gauge& queueDepth_;

  std::mutex mutex_;  // guards the node map (prometheus-cpp families are thread-safe)
  std::map<std::pair<std::string, ipam::Family>, prometheus::Gauge*> nodeGauges_;
};

}  // namespace vnetipam::controller
