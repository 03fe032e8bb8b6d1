#include "node-agent/agent_events.h"

#include <fmt/format.h>

#include "api/codec.h"
#include "api/constants.h"

namespace vnetipam::agent {

AgentEvents::AgentEvents(kube::EventRecorder& recorder, std::string nodeName)
    : recorder_(recorder), nodeName_(std::move(nodeName)) {}

kube::ObjectReference AgentEvents::node() const {
  return {.apiVersion = "v1", .kind = "Node", .name = nodeName_};
}

void AgentEvents::allocateAnswered(const Request& request, const Response& response,
                                   bool noReadyBlock) {
  if (request.op != Op::kAllocate || response.ok || response.code != ErrorCode::kTryAgainLater) {
    return;
  }
  if (noReadyBlock) {
    recorder_.record(node(), kube::EventType::kWarning, kEventNoReadyBlock, "Allocate",
                     fmt::format("no Ready IPBlock to allocate pod addresses from on node {}: "
                                 "allocations fail until the controller provides one",
                                 nodeName_));
  }
  if (request.podName.empty() || request.podNamespace.empty()) return;
  // Only the lack of an address is the pod's news; "not ready yet" is the node's.
  if (!noReadyBlock && response.message.find("no free address") == std::string::npos) return;
  recorder_.record({.apiVersion = "v1",
                    .kind = "Pod",
                    .name = request.podName,
                    .ns = request.podNamespace,
                    .uid = request.podUID},
                   kube::EventType::kWarning, kEventNoFreeAddress, "Allocate",
                   fmt::format("no free pod address on node {}{}; the runtime retries", nodeName_,
                               response.details.empty() ? "" : " (" + response.details + ")"));
}

void AgentEvents::releaseAnswered(const std::string& block, const std::string& blockUID,
                                  const api::ReleaseRequest& request,
                                  const ReleaseDecision& decision) {
  recorder_.record(
      {.apiVersion = std::string(api::kApiVersion),
       .kind = std::string(api::kIPBlockKind),
       .name = block,
       .uid = blockUID},
      decision.release ? kube::EventType::kNormal : kube::EventType::kWarning,
      decision.release ? kEventAddressReleased : kEventReleaseRefused, "Release",
      fmt::format("{}: {} ({})", api::describe(request), decision.why, decision.reason));
}

void AgentEvents::blockSeen(const std::string& name, bool invalid) {
  std::lock_guard lock(mutex_);
  if (!invalid) {
    refused_.erase(name);
    return;
  }
  if (!refused_.insert(name).second) return;
  recorder_.record(node(), kube::EventType::kWarning, kEventBlockInvalid, "Serve",
                   fmt::format("not serving IPBlock {}: the controller marked it Invalid (see its "
                               "Invalid condition)",
                               name));
}

void AgentEvents::blockGone(const std::string& name) {
  std::lock_guard lock(mutex_);
  refused_.erase(name);
}

void AgentEvents::dataplaneChecked(const std::vector<DriftFinding>& confirmed) {
  std::lock_guard lock(mutex_);
  if (confirmed.empty()) {
    if (drift_.empty()) return;
    drift_.clear();
    recorder_.record(node(), kube::EventType::kNormal, kEventDataplaneInSync, "CheckDataplane",
                     "every pod address on the node has its host route again, and no stale "
                     "host route is left");
    return;
  }
  std::string text = describeDrift(confirmed);
  if (text == drift_) return;
  drift_ = text;
  recorder_.record(node(), kube::EventType::kWarning, kEventDataplaneDrift, "CheckDataplane",
                   fmt::format("{} dataplane problem{} on the node: {}", confirmed.size(),
                               confirmed.size() == 1 ? "" : "s", text));
}

}  // namespace vnetipam::agent
