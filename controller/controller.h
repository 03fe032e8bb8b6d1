// The controller: its state (state.h) and its three reconcilers, PodSubnet
// (podsubnet_reconciler.h), Node (node_reconciler.h) and NIC (nic_reconciler.h), level-triggered
// over one WorkQueue of typed keys (work_key.h: a PodSubnet, a Node, or a Node's NIC). This class
// wires them: it feeds the state from the watches, dispatches each key to its reconciler and
// records how that went. Only the leader writes (setWritable).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/nic_reconciler.h"
#include "controller/node_reconciler.h"
#include "controller/orphan_sweep.h"
#include "controller/podsubnet_reconciler.h"
#include "controller/state.h"
#include "controller/work_queue.h"

namespace vnetipam::controller {

class SubnetUsageStore;

class Controller {
 public:
  // As ControllerState's constructor (state.h).
  Controller(kube::Client& client, Cloud* cloud, WorkQueue& queue, EventSink* events,
             ControllerMetrics* metrics, ControllerConfig config,
             base::Clock& clock = base::systemClock(), WorkQueue* nicQueue = nullptr);

  // Feeding the state (from CollectionWatch; tests call them directly). A list comes page by
  // page between beginList and endList; endList drops what the list did not show.
  using Collection = ControllerState::Collection;
  void beginList(Collection collection) { state_.beginList(collection); }
  void applyListPage(Collection collection, nlohmann::json& items) {
    state_.applyListPage(collection, items);
  }
  void endList(Collection collection) { state_.endList(collection); }
  void applyBlockList(nlohmann::json& items) { state_.applyBlockList(items); }
  void applyNodeEvent(kube::WatchEventType type, const nlohmann::json& object) {
    state_.applyNodeEvent(type, object);
  }
  void applyBlockEvent(kube::WatchEventType type, const nlohmann::json& object) {
    state_.applyBlockEvent(type, object);
  }
  void applySubnetEvent(kube::WatchEventType type, const nlohmann::json& object) {
    state_.applySubnetEvent(type, object);
  }
  // One watch event of `collection`: applyNodeEvent, applyBlockEvent or applySubnetEvent.
  void applyEvent(Collection collection, kube::WatchEventType type, const nlohmann::json& object);

  // Queues every object once (when this replica starts leading).
  void enqueueAll() { state_.enqueueAll(); }

  // Processes one key: dispatches to the reconciler, records metrics, requeues on failure.
  void process(const WorkKey& key);
  // Processes keys of `queue` until it shuts down: call from each worker thread.
  void runWorker(WorkQueue& queue);

  // The reconcilers. An error string means "retry with backoff".
  std::optional<std::string> reconcileSubnet(const std::string& name) {
    return subnetReconciler_.reconcile(name);
  }
  std::optional<std::string> reconcileNode(const std::string& name) {
    return nodeReconciler_.reconcile(name);
  }
  std::optional<std::string> reconcileNic(const std::string& node) {
    return nicReconciler_.reconcile(node);
  }

  // Writes are allowed (this replica leads). Set false on losing the lease: no write after that.
  void setWritable(bool writable) { state_.writable.store(writable, std::memory_order_release); }
  bool canWrite() const { return state_.canWrite(); }

  // The foreign addresses of PodSubnets on Azure subnets (subnet_usage.h, defined there): the
  // store the poller fills (null: none, status.foreignAddresses stays unset), the subnet ids it
  // reads, and its word that a subnet's usage changed.
  void setSubnetUsageStore(const SubnetUsageStore* store) {
    subnetReconciler_.setSubnetUsageStore(store);
  }
  std::vector<std::string> azureSubnetIds() const;
  void subnetUsageChanged(const std::string& subnetId);

  // Called (under the controller's lock: it must only signal) when a carve found prefixes of ours
  // on NICs that no IPBlock holds, so that the orphan sweep looks at them now rather than a period
  // later (OrphanSweeper::wake).
  void setOrphanSweepTrigger(std::function<void()> trigger) {
    subnetReconciler_.setOrphanSweepTrigger(std::move(trigger));
  }

  // The orphan sweep's view (orphan_sweep.h, defined in orphan_sweeper.cpp): the PodSubnets, the
  // NICs the NIC pass writes, the Nodes' VMs, and which of `prefixes` the controller owns.
  OrphanSweepView orphanSweepView(std::span<const ipam::Prefix> prefixes) const;

  // For tests and /readyz.
  std::optional<BlockInfo> block(const std::string& name) const { return state_.block(name); }
  std::size_t blockCount() const { return state_.blockCount(); }
  std::optional<std::uint64_t> poolFree(const std::string& podSubnet) const {
    return state_.poolFree(podSubnet);
  }

 private:
  ControllerState state_;
  PodSubnetReconciler subnetReconciler_;
  NodeReconciler nodeReconciler_;
  NicReconciler nicReconciler_;
};

}  // namespace vnetipam::controller
