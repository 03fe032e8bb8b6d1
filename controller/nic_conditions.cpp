#include "controller/nic_conditions.h"

#include <cctype>
#include <map>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "api/conditions.h"
#include "controller/pool_status.h"
#include "lib/base/time.h"

namespace vnetipam::controller {

std::string conditionReason(std::string_view text, std::string_view fallback) {
  std::string out;
  bool upper = false;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool keep = std::isalnum(u) != 0 || c == '_';
    if (!keep || u >= 0x80) {
      upper = !out.empty();
      continue;
    }
    if (out.empty() && std::isalpha(u) == 0) continue;  // must start with a letter
    out.push_back(upper || out.empty() ? static_cast<char>(std::toupper(u)) : c);
    upper = false;
    if (out.size() == kMaxReasonLength) break;
  }
  // Kept characters are all [A-Za-z0-9_], which the pattern allows at the end too.
  return out.empty() ? std::string(fallback) : out;
}

std::string nicFailureReason(azure::ErrorCode code, std::string_view azureCode) {
  std::string_view fallback;
  switch (code) {
    case azure::ErrorCode::kConnectFailed: fallback = "ConnectFailed"; break;
    case azure::ErrorCode::kTransport: fallback = "TransportError"; break;
    case azure::ErrorCode::kThrottled: fallback = "Throttled"; break;
    case azure::ErrorCode::kServerError: fallback = "ServerError"; break;
    case azure::ErrorCode::kOperationFailed: fallback = "OperationFailed"; break;
    case azure::ErrorCode::kTimeout: fallback = "OperationTimedOut"; break;
    case azure::ErrorCode::kPreconditionFailed: fallback = "PreconditionFailed"; break;
    case azure::ErrorCode::kAuth: fallback = "AuthenticationFailed"; break;
    case azure::ErrorCode::kUnauthorized: fallback = "Unauthorized"; break;
    case azure::ErrorCode::kForbidden: fallback = "Forbidden"; break;
    case azure::ErrorCode::kNotFound: fallback = "NotFound"; break;
    case azure::ErrorCode::kConflict: fallback = "Conflict"; break;
    case azure::ErrorCode::kBadRequest: fallback = "BadRequest"; break;
    default: fallback = "NICProgrammingFailed"; break;
  }
  return conditionReason(azureCode, fallback);
}

std::string boundedMessage(std::string text) {
  return api::boundedMessage(std::move(text), kMaxConditionMessage);
}

api::Condition nextCondition(const std::optional<api::Condition>& previous, std::string_view type,
                             bool status, std::string reason, std::string message, Time now) {
  return api::nextCondition(previous ? &*previous : nullptr,
                            api::Condition{.type = std::string(type),
                                           .status = status ? "True" : "False",
                                           .reason = std::move(reason),
                                           .message = std::move(message),
                                           .lastTransitionTime = {},
                                           .observedGeneration = 0,
                                           .extra = nlohmann::json::object()},
                            base::formatRfc3339(now), kMaxConditionMessage);
}

bool alreadyFailing(const std::optional<api::Condition>& current, std::string_view reason) {
  return current && current->status == "False" && current->reason == reason;
}

NicStatusPlan planNicStatus(const NicStatusInput& input) {
  NicStatusPlan out;
  std::map<std::string, const NicStatusBlock*> byName;
  for (const NicStatusBlock& b : input.blocks)
    byName.emplace(b.block.name, &b);
  const std::optional<NicPutFailure>& failure = input.putFailure;
  std::map<std::string, const NicPutFailure*> quarantined;
  for (const QuarantinedBlock& q : input.quarantined)
    quarantined.emplace(q.name, &q.why);
  std::map<std::string, BlockStatusChange> writes;
  for (const PhaseChange& change : input.phaseChanges) {
    const auto found = byName.find(change.name);
    if (found == byName.end()) continue;
    const NicStatusBlock& b = *found->second;
    BlockStatusChange write{.name = change.name, .phase = change.to, .programmed = {}};
    const ipam::Prefix& cidr = b.block.cidr;
    if (change.to == api::BlockPhase::kReady) {
      write.programmed = nextCondition(b.programmed, api::kConditionProgrammed, true,
                                       std::string(kReasonPrefixOnNic),
                                       fmt::format("prefix {} is on NIC {} as ipConfiguration {}",
                                                   cidr.toString(), input.nicId, b.ipConfiguration),
                                       input.now);
    } else if (change.to == api::BlockPhase::kPending && quarantined.contains(change.name)) {
      const NicPutFailure& why = *quarantined.at(change.name);
      write.programmed = nextCondition(b.programmed, api::kConditionProgrammed, false, why.reason,
                                       why.message, input.now);
      if (!alreadyFailing(b.programmed, why.reason)) out.newlyFailing.push_back(change.name);
    } else if (change.to == api::BlockPhase::kPending) {
      write.programmed =
          failure ? nextCondition(b.programmed, api::kConditionProgrammed, false, failure->reason,
                                  failure->message, input.now)
                  : nextCondition(b.programmed, api::kConditionProgrammed, false,
                                  std::string(kReasonPrefixVanished),
                                  fmt::format("prefix {} is no longer on NIC {}; programming it "
                                              "again",
                                              cidr.toString(), input.nicId),
                                  input.now);
    }
    writes.emplace(change.name, std::move(write));
  }
  for (const auto& [name, why] : quarantined) {
    const auto found = byName.find(name);
    if (found == byName.end() || writes.contains(name)) continue;  // its phase change says it
    const NicStatusBlock& b = *found->second;
    if (b.block.trust != Trust::kAccepted || alreadyFailing(b.programmed, why->reason)) continue;
    out.newlyFailing.push_back(name);
    writes.emplace(name, BlockStatusChange{.name = name,
                                           .phase = std::nullopt,
                                           .programmed = nextCondition(
                                               b.programmed, api::kConditionProgrammed, false,
                                               why->reason, why->message, input.now)});
  }
  if (failure) {
    const std::set<ipam::Prefix> onNic(input.nicPrefixes.begin(), input.nicPrefixes.end());
    for (const NicStatusBlock& b : input.blocks) {
      // The blocks this PUT was to add; a leaving block is never added (N8), nor a quarantined one.
      if (b.block.trust != Trust::kAccepted || b.block.leaving() || onNic.contains(b.block.cidr) ||
          quarantined.contains(b.block.name)) {
        continue;
      }
      if (alreadyFailing(b.programmed, failure->reason)) continue;
      out.newlyFailing.push_back(b.block.name);
      if (writes.contains(b.block.name)) continue;  // a vanished prefix: its write says it already
      writes.emplace(b.block.name,
                     BlockStatusChange{.name = b.block.name,
                                       .phase = std::nullopt,
                                       .programmed = nextCondition(
                                           b.programmed, api::kConditionProgrammed, false,
                                           failure->reason, failure->message, input.now)});
    }
  }
  for (auto& [name, write] : writes)
    out.writes.push_back(std::move(write));
  const std::optional<api::Condition>& node = input.nodeCondition;
  if (input.nodeExists && failure && !alreadyFailing(node, failure->reason)) {
    out.nodeCondition = nextCondition(node, api::kNodeConditionNicProgrammed, false,
                                      failure->reason, failure->message, input.now);
  } else if (input.nodeExists && !failure && node && node->status != "True") {
    out.nodeCondition = nextCondition(
        node, api::kNodeConditionNicProgrammed, true, std::string(kReasonNicProgrammed),
        fmt::format("NIC {} carries the prefixes of the node's blocks again", input.nicId),
        input.now);
    out.nodeRecovered = true;
  }
  return out;
}

}  // namespace vnetipam::controller
