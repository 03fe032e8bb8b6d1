#include "api/conditions.h"

#include <utility>

namespace vnetipam::api {

std::string transitionTime(const Condition* previous, std::string_view status,
                           std::string_view now) {
  if (previous != nullptr && previous->status == status && !previous->lastTransitionTime.empty()) {
    return previous->lastTransitionTime;
  }
  return std::string(now);
}

std::string boundedMessage(std::string text, std::size_t maxBytes) {
  if (text.size() <= maxBytes) return text;
  constexpr std::string_view kCut = "...";
  std::size_t end = maxBytes - kCut.size();
  // Back off to the start of a UTF-8 character (continuation bytes are 10xxxxxx).
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  text.resize(end);
  text += kCut;
  return text;
}

Condition nextCondition(const Condition* previous, Condition next, std::string_view now,
                        std::size_t maxMessage) {
  if (maxMessage != kUnboundedMessage) {
    next.message = boundedMessage(std::move(next.message), maxMessage);
  }
  next.lastTransitionTime = transitionTime(previous, next.status, now);
  return next;
}

}  // namespace vnetipam::api
