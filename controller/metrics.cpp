#include "controller/metrics.h"

#include <string>

namespace vnetipam::controller {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

const prometheus::Histogram::BucketBoundaries& latencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return buckets;
}

}  // namespace

ControllerMetrics::ControllerMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      poolBlocks_(BuildGauge()
                      .Name("vnetipam_podsubnet_blocks")
                      .Help("Usable blocks carved from the PodSubnet.")
                      .Register(*registry_)),
      poolAllocatedBlocks_(BuildGauge()
                               .Name("vnetipam_podsubnet_allocated_blocks")
                               .Help("Blocks of the PodSubnet held by nodes.")
                               .Register(*registry_)),
      poolIPs_(BuildGauge()
                   .Name("vnetipam_podsubnet_ips")
                   .Help("Addresses in the usable blocks of the PodSubnet.")
                   .Register(*registry_)),
      poolAllocatedIPs_(BuildGauge()
                            .Name("vnetipam_podsubnet_allocated_ips")
                            .Help("Addresses of the PodSubnet given to pods, as the agents report.")
                            .Register(*registry_)),
      poolExhausted_(BuildGauge()
                         .Name("vnetipam_podsubnet_exhausted")
                         .Help("1 when a node wanted a block of the PodSubnet and none was left.")
                         .Register(*registry_)),
      poolForeign_(BuildGauge()
                       .Name("vnetipam_podsubnet_foreign_addresses")
                       .Help("Addresses of the PodSubnet's Azure subnet that other resources hold "
                             "(the VNET's usage list less the PodSubnet's blocks on NICs); no "
                             "series while not known.")
                       .Register(*registry_)),
      nodeBlocks_(BuildGauge()
                      .Name("vnetipam_node_blocks")
                      .Help("Blocks held by the node, by family (ipv4, ipv6), over all "
                            "PodSubnets of it.")
                      .Register(*registry_)),
      allocations_(BuildCounter()
                       .Name("vnetipam_block_allocations_total")
                       .Help("IPBlocks created.")
                       .Register(*registry_)),
      releases_(BuildCounter()
                    .Name("vnetipam_block_releases_total")
                    .Help("IPBlocks whose CIDR went back to the pool.")
                    .Register(*registry_)),
      orphansRemoved_(BuildCounter()
                          .Name("vnetipam_orphan_prefixes_removed_total")
                          .Help("Prefixes of the PodSubnet the orphan sweep took off a NIC that "
                                "belongs to no Node, after no IPBlock had owned them for the "
                                "grace period.")
                          .Register(*registry_)),
      reconcileDuration_(BuildHistogram()
                             .Name("vnetipam_reconcile_duration_seconds")
                             .Help("Time of one reconcile, per reconciler.")
                             .Register(*registry_)),
      reconcileErrors_(BuildCounter()
                           .Name("vnetipam_reconcile_errors_total")
                           .Help("Reconciles that failed and were retried, per reconciler.")
                           .Register(*registry_)),
      azureRequests_(BuildCounter()
                         .Name("vnetipam_azure_requests_total")
                         .Help("Azure HTTP attempts, per operation and status code (0: none).")
                         .Register(*registry_)),
      azureDuration_(BuildHistogram()
                         .Name("vnetipam_azure_request_duration_seconds")
                         .Help("Latency of Azure HTTP attempts, per operation.")
                         .Register(*registry_)),
      azureThrottled_(BuildCounter()
                          .Name("vnetipam_azure_throttled_total")
                          .Help("Azure requests answered 429 (throttled), per operation.")
                          .Register(*registry_)),
      azureWaitSeconds_(BuildCounter()
                            .Name("vnetipam_azure_wait_seconds_total")
                            .Help("Time the Azure client waited before requests, per reason: "
                                  "read_budget and write_budget are the ARM pacer keeping to "
                                  "--azure-read/write-budget-per-5min, reserve is a remaining "
                                  "count under --azure-read/write-reserve, throttled a 429.")
                            .Register(*registry_)),
      azureRemaining_(BuildGauge()
                          .Name("vnetipam_azure_ratelimit_remaining")
                          .Help("Requests the subscription has left as the last ARM response "
                                "said, per header (x-ms-ratelimit-remaining-...) and request "
                                "class (read, write); the ARM pacer holds a class while one is "
                                "under its reserve.")
                          .Register(*registry_)),
      leader_(BuildGauge()
                  .Name("vnetipam_controller_leader")
                  .Help("1 while this replica holds the leader lease.")
                  .Register(*registry_)
                  .Add({})),
      queueDepth_(BuildGauge()
                      .Name("vnetipam_workqueue_depth")
                      .Help("Keys waiting in the controller's work queue.")
                      .Register(*registry_)
                      .Add({})) {
  for (std::string_view reconciler : {kPodSubnetReconciler, kNodeReconciler, kNicReconciler}) {
    const prometheus::Labels labels{{"reconciler", std::string(reconciler)}};
    reconcileErrors_.Add(labels);
    reconcileDuration_.Add(labels, latencyBuckets());
  }
}

void ControllerMetrics::setPool(const std::string& podSubnet, const PoolNumbers& numbers) {
  const prometheus::Labels labels{{"podsubnet", podSubnet}};
  poolBlocks_.Add(labels).Set(static_cast<double>(numbers.totalBlocks));
  poolAllocatedBlocks_.Add(labels).Set(static_cast<double>(numbers.allocatedBlocks));
  poolIPs_.Add(labels).Set(static_cast<double>(numbers.totalIPs));
  poolAllocatedIPs_.Add(labels).Set(static_cast<double>(numbers.allocatedIPs));
  poolExhausted_.Add(labels).Set(numbers.exhausted ? 1 : 0);
  if (numbers.foreignAddresses) {
    poolForeign_.Add(labels).Set(static_cast<double>(*numbers.foreignAddresses));
  } else {
    poolForeign_.Remove(&poolForeign_.Add(labels));
  }
  allocations_.Add(labels);
  releases_.Add(labels);
  orphansRemoved_.Add(labels);
}

void ControllerMetrics::removePool(const std::string& podSubnet) {
  const prometheus::Labels labels{{"podsubnet", podSubnet}};
  for (auto* family : {&poolBlocks_, &poolAllocatedBlocks_, &poolIPs_, &poolAllocatedIPs_,
                       &poolExhausted_, &poolForeign_}) {
    family->Remove(&family->Add(labels));
  }
}

void ControllerMetrics::setNodeBlocks(const std::string& node, ipam::Family family,
                                      std::int64_t blocks) {
  std::lock_guard lock(mutex_);
  const auto key = std::pair{node, family};
  const auto found = nodeGauges_.find(key);
  if (blocks == 0) {
    if (found != nodeGauges_.end()) {
      nodeBlocks_.Remove(found->second);
      nodeGauges_.erase(found);
    }
    return;
  }
  prometheus::Gauge* gauge = found != nodeGauges_.end()
                                 ? found->second
                                 : (nodeGauges_[key] = &nodeBlocks_.Add(
                                        {{"node", node}, {"family", ipam::labelOf(family)}}));
  gauge->Set(static_cast<double>(blocks));
}

void ControllerMetrics::blockAllocated(const std::string& podSubnet) {
  allocations_.Add({{"podsubnet", podSubnet}}).Increment();
}

void ControllerMetrics::blockReleased(const std::string& podSubnet) {
  releases_.Add({{"podsubnet", podSubnet}}).Increment();
}

void ControllerMetrics::orphanPrefixRemoved(const std::string& podSubnet) {
  orphansRemoved_.Add({{"podsubnet", podSubnet}}).Increment();
}

void ControllerMetrics::reconciled(std::string_view reconciler, std::chrono::nanoseconds duration,
                                   bool failed) {
  const prometheus::Labels labels{{"reconciler", std::string(reconciler)}};
  reconcileDuration_.Add(labels, latencyBuckets()).Observe(seconds(duration));
  if (failed) reconcileErrors_.Add(labels).Increment();
}

void ControllerMetrics::setLeader(bool leader) { leader_.Set(leader ? 1 : 0); }

void ControllerMetrics::setQueueDepth(std::size_t depth) {
  queueDepth_.Set(static_cast<double>(depth));
}

void ControllerMetrics::onRequest(std::string_view operation, int status,
                                  std::chrono::nanoseconds latency) {
  const std::string op(operation);
  azureRequests_.Add({{"operation", op}, {"code", std::to_string(status)}}).Increment();
  azureDuration_.Add({{"operation", op}}, latencyBuckets()).Observe(seconds(latency));
  if (status == 429) azureThrottled_.Add({{"operation", op}}).Increment();
}

void ControllerMetrics::onWait(std::string_view, azure::WaitReason reason,
                               std::chrono::nanoseconds wait) {
  azureWaitSeconds_.Add({{"reason", std::string(azure::toString(reason))}})
      .Increment(seconds(wait));
}

void ControllerMetrics::onRateLimitRemaining(bool read, std::string_view header,
                                             std::int64_t remaining) {
  constexpr std::string_view kPrefix = "x-ms-ratelimit-remaining-";
  const std::string_view name =
      header.starts_with(kPrefix) ? header.substr(kPrefix.size()) : header;
  azureRemaining_.Add({{"class", read ? "read" : "write"}, {"header", std::string(name)}})
      .Set(static_cast<double>(remaining));
}

}  // namespace vnetipam::controller
