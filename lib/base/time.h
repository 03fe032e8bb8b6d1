// RFC 3339 timestamps as Kubernetes writes them ("2024-05-01T12:00:00Z", and MicroTime's
// "2024-05-01T12:00:00.000000Z") and reads them (any offset, optional fractions).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace vnetipam::base {

// Whole seconds in UTC: "2024-05-01T12:00:00Z" (a fraction of a second is dropped).
std::string formatRfc3339(std::chrono::system_clock::time_point t);

// Kubernetes MicroTime: UTC with exactly six fractional digits, "2026-11-26T12:00:00.000000Z"
// (what is finer than a microsecond is dropped).
std::string formatRfc3339Micro(std::chrono::system_clock::time_point t);

// "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (a 't' or ' ' for the 'T', a 'z' for the 'Z'),
// to whole seconds: fractions are dropped. nullopt for anything else, or a date that does not
// exist.
std::optional<std::chrono::sys_seconds> parseRfc3339(std::string_view text);

// An HTTP date (RFC 9110 section 5.6.7), always GMT, in any of the three forms recipients must
// accept: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT"
// (a two-digit year below 70 is 20xx), asctime "Sun Nov  6 08:49:37 1994". Surrounding spaces
// and tabs are ignored. nullopt for anything else, or a date that does not exist.
std::optional<std::chrono::sys_seconds> parseHttpDate(std::string_view text);

}  // namespace vnetipam::base
