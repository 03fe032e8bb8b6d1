// What the agent tells users through Kubernetes Events (events.k8s.io/v1, kube::EventRecorder):
//   on the Node   Warning NoReadyBlock     an allocation failed and no block is Ready to serve
//                 Warning BlockInvalid     the agent refuses a block the controller marked Invalid
//                 Warning DataplaneDrift   the drift check confirmed missing or stale host routes
//                 Normal  DataplaneInSync  the drift it reported is gone
//   on the Pod    Warning NoFreeAddress    its allocation failed: the node has no free address
//   on an IPBlock Normal  AddressReleased  an admin's release request was honoured
//                 Warning ReleaseRefused   ... refused (release_request.h); one per request
// Every method only queues (EventRecorder::record never waits on the API server), so calling it on
// the request path never delays an allocation; the recorder's worker writes, and aggregates
// repeats into series. Thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lib/kube/events.h"
#include "node-agent/dataplane_drift.h"
#include "node-agent/protocol.h"
#include "node-agent/release_request.h"

namespace vnetipam::agent {

inline constexpr std::string_view kEventNoReadyBlock = "NoReadyBlock";
inline constexpr std::string_view kEventBlockInvalid = "BlockInvalid";
inline constexpr std::string_view kEventDataplaneDrift = "DataplaneDrift";
inline constexpr std::string_view kEventDataplaneInSync = "DataplaneInSync";
inline constexpr std::string_view kEventNoFreeAddress = "NoFreeAddress";
inline constexpr std::string_view kEventAddressReleased = "AddressReleased";
inline constexpr std::string_view kEventReleaseRefused = "ReleaseRefused";

class AgentEvents {
 public:
  // `recorder` must outlive this object.
  AgentEvents(kube::EventRecorder& recorder, std::string nodeName);

  // An allocate request the store answered with `response` (code 11 while ready). `noReadyBlock`:
  // the node has no block that gets new allocations. Other answers record nothing.
  void allocateAnswered(const Request& request, const Response& response, bool noReadyBlock);
  // The block as the informer shows it now: an Event when it becomes refused (Invalid), none while
  // it stays so.
  void blockSeen(const std::string& name, bool invalid);
  void blockGone(const std::string& name);
  // The confirmed findings of one drift check: a Warning when drift appears or its description
  // changes, a Normal once it is gone.
  void dataplaneChecked(const std::vector<DriftFinding>& confirmed);

  // The answer to one release request of the block: the note starts with api::describe(request)
  // and a colon (what `kubectl ipam release` matches), then says why and the reason word.
  void releaseAnswered(const std::string& block, const std::string& blockUID,
                       const api::ReleaseRequest& request, const ReleaseDecision& decision);

  kube::ObjectReference node() const;

 private:
  kube::EventRecorder& recorder_;
  const std::string nodeName_;
  std::mutex mutex_;
  std::set<std::string, std::less<>> refused_;
  std::string drift_;  // the description last reported; empty: in sync
};

}  // namespace vnetipam::agent
