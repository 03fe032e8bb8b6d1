// The rules every writer of a condition follows: the controller (PodSubnet Ready and Exhausted,
// IPBlock Programmed, the Node's VnetIpamNICProgrammed) and the node agent (IPBlock
// DataplaneSynced). Pure: the caller passes the time, as RFC 3339 text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "api/types.h"

namespace vnetipam::api {

// Kubernetes' convention for lastTransitionTime: it moves only when the status changes. The time
// to write for a condition whose status is now `status`: that of `previous` (the condition as last
// written or read; nullptr when there is none) while it has the same status and a time, else
// `now`.
std::string transitionTime(const Condition* previous, std::string_view status,
                           std::string_view now);

// `text` cut to `maxBytes` bytes (ending in "..." when cut) at a UTF-8 character boundary.
// Precondition: maxBytes >= 3.
std::string boundedMessage(std::string text, std::size_t maxBytes);

inline constexpr std::size_t kUnboundedMessage = 0;

// The condition to write: `next` as given (type, status, reason, observedGeneration, extra), its
// message cut to `maxMessage` bytes (kUnboundedMessage: as is) and its lastTransitionTime set by
// transitionTime() from `previous`.
Condition nextCondition(const Condition* previous, Condition next, std::string_view now,
                        std::size_t maxMessage = kUnboundedMessage);

}  // namespace vnetipam::api
