// The words the controller uses to explain cloud programming: the IPBlock condition Programmed,
// the Node condition VnetIpamNICProgrammed (api/types.h) and the Events that go with them. Pure:
// reasons, bounded messages, the lastTransitionTime rule and which writes one NIC pass makes
// (planNicStatus); the writes themselves are nic_reconciler.cpp's.
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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.h"
#include "controller/nic_reconcile.h"
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

// ---- The status writes of one NIC pass: a pure decision over what the pass saw and did ----

// One status apply of an accepted block: a new phase and/or a new Programmed condition.
struct BlockStatusChange {
  std::string name;
  std::optional<api::BlockPhase> phase;      // nullopt: the phase stays
  std::optional<api::Condition> programmed;  // nullopt: the condition stays as it is

  bool operator==(const BlockStatusChange&) const = default;
};

// What the status decision needs of one block of the node.
struct NicStatusBlock {
  NicBlock block;
  std::optional<api::Condition> programmed;  // status.conditions[Programmed] as the cache has it
  std::string ipConfiguration;               // the NIC ipConfiguration that carries its prefix
};

// A failed NIC PUT, in the words of the conditions (nicFailureReason, and the message quoting the
// cloud's error).
struct NicPutFailure {
  std::string reason;
  std::string message;
};

// A block left out of the PUT because another resource holds an address in its CIDR
// (NicPlan::quarantined), with the refusal that taught it (reason: the cloud's code).
struct QuarantinedBlock {
  std::string name;
  NicPutFailure why;
};

struct NicStatusInput {
  std::span<const NicStatusBlock> blocks;
  std::span<const PhaseChange> phaseChanges;  // NicPlan::phaseChanges
  std::span<const ipam::Prefix> nicPrefixes;  // the NIC as the pass's GET read it
  std::string nicId;
  std::optional<NicPutFailure> putFailure;  // the pass's PUT failed
  // Programmed=False with their own reason and message (once per reason, with a Warning Event);
  // not among the blocks a failed PUT was to add.
  std::span<const QuarantinedBlock> quarantined;
  bool nodeExists = true;
  std::optional<api::Condition> nodeCondition;  // the Node's VnetIpamNICProgrammed
  Time now{};
};

struct NicStatusPlan {
  // The phase changes of the table, each with its Programmed condition in the same apply (so the
  // happy path costs no write more than the phase), and, when the PUT failed, Programmed=False on
  // the blocks it was to add, once per distinct reason; Programmed=False on quarantined blocks,
  // the same way. Sorted by name.
  std::vector<BlockStatusChange> writes;
  // Blocks whose Programmed turns False for this failure (or their quarantine): each gets a
  // Warning Event, once.
  std::vector<std::string> newlyFailing;
  // The Node condition to write: only when a PUT fails, and True again when the NIC takes one (or
  // needs none) afterwards, so a node whose NIC never failed costs no write.
  std::optional<api::Condition> nodeCondition;
  // nodeCondition is the return to True: a Normal Event goes with it once it is written.
  bool nodeRecovered = false;
};

NicStatusPlan planNicStatus(const NicStatusInput& input);

}  // namespace vnetipam::controller
