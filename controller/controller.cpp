#include "controller/controller.h"

#include <chrono>

#include <spdlog/spdlog.h>

namespace vnetipam::controller {

Controller::Controller(kube::Client& client, Cloud* cloud, WorkQueue& queue, EventSink* events,
                       ControllerMetrics* metrics, ControllerConfig config, base::Clock& clock,
                       WorkQueue* nicQueue)
    : state_(client, cloud, queue, events, metrics, config, clock, nicQueue),
      subnetReconciler_(state_),
      nodeReconciler_(state_),
      nicReconciler_(state_) {}

void Controller::applyEvent(Collection collection, kube::WatchEventType type,
                            const nlohmann::json& object) {
  switch (collection) {
    case Collection::kNodes: state_.applyNodeEvent(type, object); return;
    case Collection::kBlocks: state_.applyBlockEvent(type, object); return;
    case Collection::kSubnets: state_.applySubnetEvent(type, object); return;
  }
}

void Controller::process(const WorkKey& key) {
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::string> error;
  std::string_view reconciler;
  switch (key.kind) {
    case WorkKind::kPodSubnet:
      reconciler = kPodSubnetReconciler;
      error = subnetReconciler_.reconcile(key.name);
      break;
    case WorkKind::kNode:
      reconciler = kNodeReconciler;
      error = nodeReconciler_.reconcile(key.name);
      break;
    case WorkKind::kNic:
      reconciler = kNicReconciler;
      error = nicReconciler_.reconcile(key.name);
      break;
  }
  if (state_.metrics) {
    state_.metrics->reconciled(reconciler, std::chrono::steady_clock::now() - start,
                               error.has_value());
  }
  WorkQueue& queue = state_.queueFor(key);
  if (error) {
    spdlog::warn("{} reconcile of {} failed (retry {}): {}", reconciler, key.name,
                 queue.failures(key) + 1, *error);
    queue.addRateLimited(key);
  } else {
    queue.forget(key);
  }
}

void Controller::runWorker(WorkQueue& queue) {
  while (auto key = queue.get()) {
    process(*key);
    queue.done(*key);
    if (state_.metrics) {
      const std::size_t depth =
          state_.queue.depth() +
          (&state_.nicQueue != &state_.queue ? state_.nicQueue.depth() : std::size_t{0});
      state_.metrics->setQueueDepth(depth);
    }
  }
}

}  // namespace vnetipam::controller
