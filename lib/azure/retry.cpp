#include "lib/azure/retry.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "lib/azure/metrics.h"
#include "lib/base/text.h"
#include "lib/base/time.h"

namespace vnetipam::azure {

std::string_view toString(WaitReason reason) {
  switch (reason) {
    case WaitReason::kThrottled: return "throttled";
    case WaitReason::kOperationInProgress: return "operation_in_progress";
    case WaitReason::kWriteBudget: return "write_budget";
    case WaitReason::kReadBudget: return "read_budget";
    case WaitReason::kRetryBackoff: return "retry_backoff";
    case WaitReason::kOperationPoll: return "operation_poll";
    case WaitReason::kReserve: return "reserve";
  }
  return "unknown";
}

std::function<double()> defaultRandom01() {
  struct Source {
    std::mutex mutex;
    std::mt19937_64 engine{std::random_device{}()};
  };
  return [source = std::make_shared<Source>()] {
    std::lock_guard lock(source->mutex);
    return std::uniform_real_distribution<double>(0.0, 1.0)(source->engine);
  };
}

Clock::Duration jitteredBackoff(int attempt, std::chrono::milliseconds initial,
                                std::chrono::milliseconds max, double random01) {
  const auto step = std::min<std::chrono::milliseconds>(
      max, initial * (std::int64_t{1} << std::clamp(attempt, 0, 20)));
  const double jitter = std::clamp(random01, 0.0, 1.0);
  const auto half = std::chrono::duration<double>(step) / 2;
  return std::chrono::ceil<Clock::Duration>(half + half * jitter);
}

namespace {

std::optional<int> number(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<Clock::Duration> retryAfter(const http::Headers& headers,
                                          Clock::WallTimePoint wallNow) {
  const auto header = headers.find("Retry-After");
  if (header == headers.end()) return std::nullopt;
  const std::string_view value = text::trimOws(header->second);
  if (const auto seconds = number(value)) {
    if (*seconds < 0) return std::nullopt;
    return std::chrono::seconds{*seconds};
  }
  const auto at = base::parseHttpDate(value);
  if (!at) return std::nullopt;
  std::optional<std::chrono::system_clock::time_point> now;
  if (const auto date = headers.find("Date"); date != headers.end())
    now = base::parseHttpDate(date->second);
  if (!now) now = wallNow;
  if (*at <= *now) return Clock::Duration::zero();
  return std::chrono::ceil<Clock::Duration>(*at - *now);
}

}  // namespace vnetipam::azure
