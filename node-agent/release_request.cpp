#include "node-agent/release_request.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/constants.h"

namespace vnetipam::agent {

PodState podStateFromJson(const nlohmann::json& pod) {
  PodState state;
  state.uid = pod.value("/metadata/uid"_json_pointer, std::string());
  const auto status = pod.find("status");
  if (status == pod.end() || !status->is_object()) return state;
  if (const auto ips = status->find("podIPs"); ips != status->end() && ips->is_array()) {
    for (const auto& ip : *ips) {
      if (ip.is_object() && ip.contains("ip") && ip["ip"].is_string()) {
        state.ips.push_back(ip["ip"].get<std::string>());
      }
    }
  }
  if (state.ips.empty()) {
    if (const auto ip = status->find("podIP"); ip != status->end() && ip->is_string()) {
      state.ips.push_back(ip->get<std::string>());
    }
  }
  return state;
}

ReleaseDecision decideRelease(const api::ReleaseRequest& request, const ReleaseFacts& facts) {
  auto refuse = [](std::string_view reason, std::string why) {
    return ReleaseDecision{.release = false, .reason = reason, .why = std::move(why)};
  };
  auto release = [](std::string_view reason, std::string why) {
    return ReleaseDecision{.release = true, .reason = reason, .why = std::move(why)};
  };
  if (!facts.held) return refuse(kRefuseNotHeld, "the agent holds no allocation of the address");
  const HeldAllocation& held = *facts.held;
  if (held.owner != request.owner) {
    return refuse(kRefuseOtherOwner,
                  fmt::format("the address is held by {}, not the requested owner",
                              ipam::toString(held.owner)));
  }
  if (held.podName.empty()) {
    return refuse(kRefuseNoPodRecorded,
                  "the allocation names no pod, so the agent cannot tell whether its owner lives");
  }
  const std::string pod = fmt::format("{}/{}", held.podNamespace, held.podName);
  if (!facts.pod) {
    return release(kReleasePodGone, fmt::format("pod {} no longer exists on this node", pod));
  }
  if (!held.podUID.empty() && !facts.pod->uid.empty() && facts.pod->uid != held.podUID) {
    return release(kReleasePodRecreated,
                   fmt::format("pod {} was recreated (uid {}, the allocation's {})", pod,
                               facts.pod->uid, held.podUID));
  }
  const auto& ips = facts.pod->ips;
  if (std::ranges::find(ips, request.address) != ips.end()) {
    return refuse(kRefusePodUsesAddress,
                  fmt::format("pod {} lives and its status shows the address", pod));
  }
  if (facts.currentAllocationSeq && held.allocatedSeq != 0 &&
      *facts.currentAllocationSeq > held.allocatedSeq) {
    return release(kReleaseStaleSandbox,
                   fmt::format("pod {} lives on a newer sandbox: its addresses are {}", pod,
                               fmt::join(ips, ", ")));
  }
  return refuse(
      kRefuseNotSuperseded,
      fmt::format("pod {} lives and none of its addresses ({}) was allocated after this "
                  "one: its sandbox's ADD may be in flight",
                  pod,
                  ips.empty() ? std::string("none yet") : fmt::format("{}", fmt::join(ips, ", "))));
}

std::size_t ReleaseRequestHandler::sweep(const std::vector<nlohmann::json>& blocks,
                                         const Decide& decide, const Answered& answered) {
  std::set<Key> listed;
  std::size_t decided = 0;
  for (const nlohmann::json& object : blocks) {
    auto block = api::ipBlockFromJson(object);
    if (!block) continue;  // the informer's handler already said why it does not serve it
    const auto& meta = block->metadata;
    const auto annotation = meta.annotations.find(std::string(api::kReleaseAnnotation));
    if (annotation == meta.annotations.end()) continue;
    auto requests = api::releaseRequestsFromAnnotation(annotation->second);
    if (!requests) {
      if (malformed_.insert(meta.name + "\n" + annotation->second).second) {
        spdlog::warn("IPBlock {}: ignoring its release requests: {}", meta.name,
                     requests.error().message);
      }
      continue;
    }
    for (const api::ReleaseRequest& request : *requests) {
      Key key{meta.name, meta.uid, request.address, request.owner};
      listed.insert(key);
      if (answered_.contains(key)) continue;
      const ReleaseDecision decision = decide(meta.name, request);
      answered_.insert(std::move(key));
      ++decided;
      if (!decision.release) {
        spdlog::info("IPBlock {}: refused the release request for {}: {} ({})", meta.name,
                     api::describe(request), decision.why, decision.reason);
      }
      answered(meta.name, meta.uid, request, decision);
    }
  }
  std::erase_if(answered_, [&](const Key& key) { return !listed.contains(key); });
  if (malformed_.size() > 1024) malformed_.clear();  // a bound, not a policy: it only logs
  return decided;
}

}  // namespace vnetipam::agent
