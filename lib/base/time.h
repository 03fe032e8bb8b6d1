// RFC 3339 timestamps as Kubernetes writes them ("2024-05-01T12:00:00Z") and reads them (any
// offset, optional fractions).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace vnetipam::base {

// Whole seconds in UTC: "2024-05-01T12:00:00Z" (a fraction of a second is dropped).
std::string formatRfc3339(std::chrono::system_clock::time_point t);

// "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (a 't' or ' ' for the 'T', a 'z' for the 'Z'),
// to whole seconds: fractions are dropped. nullopt for anything else, or a date that does not
// exist.
std::optional<std::chrono::sys_seconds> parseRfc3339(std::string_view text);

}  // namespace vnetipam::base
