// An admin's request to release a leaked address (`kubectl ipam release`), and the agent's
// decision on it. The request arrives as an entry of the IPBlock annotation
// api::kReleaseAnnotation; the agent honours it only when it can prove the owner dead, because
// the admin's report is a snapshot of the past: by the time the agent reads the entry, the
// address may have been released and handed to a new pod, or the "leak" may be a sandbox whose
// ADD is still in flight (its pod's status does not show the address yet).
//
// decideRelease is pure: the store gathers the facts under its lock (AllocationStore::
// releaseOnRequest) and releases through the same path as GC when the answer is kRelease.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/types.h"
#include "lib/ipam/journal.h"
#include "lib/ipam/owner.h"

namespace vnetipam::agent {

// Why a request was honoured or refused: stable words, in the Event's note and the log.
inline constexpr std::string_view kReleasePodGone = "PodGone";
inline constexpr std::string_view kReleasePodRecreated = "PodRecreated";
inline constexpr std::string_view kReleaseStaleSandbox = "StaleSandbox";
inline constexpr std::string_view kRefuseNotHeld = "NotHeld";
inline constexpr std::string_view kRefuseOtherOwner = "OtherOwner";
inline constexpr std::string_view kRefuseNoPodRecorded = "NoPodRecorded";
inline constexpr std::string_view kRefusePodUsesAddress = "PodUsesAddress";
inline constexpr std::string_view kRefuseNotSuperseded = "NotSuperseded";
inline constexpr std::string_view kRefuseBadRequest = "BadRequest";
inline constexpr std::string_view kRefuseJournalFailed = "JournalFailed";

// The allocation of the requested address, as the store holds it.
struct HeldAllocation {
  ipam::Owner owner;
  std::string podNamespace;
  std::string podName;
  std::string podUID;
  ipam::Seq allocatedSeq = 0;  // 0: not known
};

// A pod as the agent's Pod informer (this node's pods) shows it.
struct PodState {
  std::string uid;               // metadata.uid
  std::vector<std::string> ips;  // status.podIPs (status.podIP when podIPs is absent)
};

// A Pod object's uid and addresses (status.podIPs, else status.podIP); missing fields read empty.
PodState podStateFromJson(const nlohmann::json& pod);

struct ReleaseFacts {
  std::optional<HeldAllocation> held;  // nullopt: nobody holds the address
  // The held allocation's pod on this node; nullopt: no such pod (gone).
  std::optional<PodState> pod;
  // The latest journal seq among the other allocations of the same pod (namespace, name and, when
  // both recorded one, UID) whose address the pod's status shows; nullopt when there is none.
  std::optional<ipam::Seq> currentAllocationSeq;
};

struct ReleaseDecision {
  bool release = false;
  std::string_view reason;  // one of the kRelease* / kRefuse* words above
  std::string why;          // one sentence for the Event and the log
};

// Release only when the address is held by exactly the requested owner (container ID and
// interface: a stale or repeated request names an owner that no longer holds it) and that owner is
// provably dead:
//   - its pod is not on this node any more (PodGone), or a pod of its name has another UID
//     (PodRecreated; only when the allocation recorded a UID);
//   - or its pod lives, its status does not show this address, and one of its addresses it does
//     show was allocated after this one (StaleSandbox): the pod moved on to a newer sandbox, so
//     this one's CNI DEL was lost. A newer allocation that the pod's status does not show yet is a
//     sandbox whose ADD is in flight, never released (NotSuperseded).
// An allocation with no pod recorded is never released this way (NoPodRecorded).
ReleaseDecision decideRelease(const api::ReleaseRequest& request, const ReleaseFacts& facts);

// Finds the release requests in this node's blocks and answers each entry once: the agent cannot
// remove an entry (it may not write the annotation), so an entry it has answered stays until the
// admin's tool removes it, and must not be decided (nor its Event recorded) again meanwhile. An
// entry that leaves the annotation is forgotten, so the same request written again later is
// decided afresh. A malformed annotation is logged once per value and otherwise ignored.
// Not thread-safe: one caller (the agent's GC loop).
class ReleaseRequestHandler {
 public:
  using Decide =
      std::function<ReleaseDecision(const std::string& block, const api::ReleaseRequest& request)>;
  using Answered =
      std::function<void(const std::string& block, const std::string& blockUID,
                         const api::ReleaseRequest& request, const ReleaseDecision& decision)>;

  // One pass over the blocks as the informer shows them (IPBlock JSON objects). Returns how many
  // requests were decided.
  std::size_t sweep(const std::vector<nlohmann::json>& blocks, const Decide& decide,
                    const Answered& answered);

 private:
  // (block name, block uid, address, owner)
  using Key = std::tuple<std::string, std::string, std::string, ipam::Owner>;
  std::set<Key> answered_;
  std::set<std::string> malformed_;  // annotation values already logged
};

}  // namespace vnetipam::agent
