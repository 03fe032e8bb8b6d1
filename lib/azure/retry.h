// Shared pieces of the retry rules of the ARM client and the credentials: jittered backoff and
// Retry-After parsing. Pure functions of their inputs.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include "lib/base/clock.h"
#include "lib/http/transport.h"

namespace vnetipam::azure {

// The Azure client runs on the project's injected clock.
using base::Clock;

// A uniform random number in [0, 1), thread-safe, seeded from std::random_device.
std::function<double()> defaultRandom01();

// Equal-jitter exponential backoff: for attempt n (from 0) the step is initial·2^n capped at max;
// the wait is half the step plus up to half at random, so clients that failed together do not
// retry together.
Clock::Duration jitteredBackoff(int attempt, std::chrono::milliseconds initial,
                                std::chrono::milliseconds max, double random01);

// Retry-After as delta-seconds ("10") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", or
// another of base::parseHttpDate's forms). A date is measured against the response's own Date
// header when it has one (immune to our clock's skew), else against `wallNow` (our calendar time).
// A date in the past is zero. nullopt when the header is absent or unreadable.
std::optional<Clock::Duration> retryAfter(const http::Headers& headers,
                                          Clock::WallTimePoint wallNow);

}  // namespace vnetipam::azure
