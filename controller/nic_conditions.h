// The words the controller uses to explain cloud programming: the IPBlock condition Programmed,
// the Node condition VnetIpamNICProgrammed (api/types.h) and the Events that go with them. Pure:
// reasons, bounded messages and the lastTransitionTime rule; the writes are nic_reconciler.cpp's.
//
// What a caller may rely on:
// - every reason returned here matches metav1.Condition's reason pattern
//   (^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$) and is at most kMaxReasonLength characters, whatever
//   the cloud sent;
// - every message is at most kMaxConditionMessage bytes and never ends in a cut UTF-8 sequence;
// - nextCondition() keeps the previous lastTransitionTime while the status stays the same
//   (Kubernetes' convention, api::transitionTime: it moves only when the status changes).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "api/types.h"
#include "controller/node_blocks.h"
#include "lib/azure/error.h"

namespace vnetipam::controller {

// Programmed=True: a GET of the NIC shows the block's prefix.
inline constexpr std::string_view kReasonPrefixOnNic = "PrefixOnNIC";
// Programmed=True with --cloud=none: there is no NIC to program.
inline constexpr std::string_view kReasonNoCloud = "NoCloud";
// Programmed=False: the prefix of a programmed block is gone from the NIC (the Event of the same
// name says so too); it is being programmed again.
inline constexpr std::string_view kReasonPrefixVanished = "PrefixVanished";
// Programmed=False on a block the controller refuses (it has Invalid=True): never programmed.
inline constexpr std::string_view kReasonRefused = "Refused";
// The Node condition, True again after a failure.
inline constexpr std::string_view kReasonNicProgrammed = "NICProgrammed";
// Events: a NIC PUT failed (Warning, on the Node and on the blocks it carried); the node's NIC
// took a PUT again after failing (Normal, on the Node).
inline constexpr std::string_view kEventNicProgrammingFailed = "NICProgrammingFailed";
inline constexpr std::string_view kEventNicProgrammingRecovered = "NICProgrammingRecovered";

inline constexpr std::size_t kMaxReasonLength = 128;  // also an Event reason's limit
inline constexpr std::size_t kMaxConditionMessage = 1024;

// `text` made a valid CamelCase condition reason: characters outside [A-Za-z0-9_] dropped, the
// first letter and each one after a dropped character upper-cased ("private-ip in_use" ->
// "PrivateIpIn_use"), leading non-letters dropped, cut to kMaxReasonLength. `fallback` (itself
// valid) when nothing is left.
std::string conditionReason(std::string_view text, std::string_view fallback);

// The reason of a failed NIC PUT: the cloud's error code when it sent one
// ("PrivateIPAddressInUse", "TooManyRequests", "InternalServerError"), else one for the kind of
// failure ("TransportError" when the connection broke, "Throttled", "ServerError", ...).
std::string nicFailureReason(azure::ErrorCode code, std::string_view azureCode);

// `text` cut to kMaxConditionMessage bytes (with "..." when cut) at a UTF-8 character boundary.
std::string boundedMessage(std::string text);

// The condition to write: type, status, reason and message as given, observedGeneration unset,
// lastTransitionTime `now` unless `previous` has the same status (then its time is kept).
api::Condition nextCondition(const std::optional<api::Condition>& previous, std::string_view type,
                             bool status, std::string reason, std::string message, Time now);

// `current` already says False for this reason: writing it again would change nothing a reader
// needs (a new message for the same reason is not worth an API write per retry).
bool alreadyFailing(const std::optional<api::Condition>& current, std::string_view reason);

}  // namespace vnetipam::controller
