#include "lib/kube/watch.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::kube {

using nlohmann::json;

Result<void> WatchDecoder::feed(std::string_view chunk,
                                const std::function<void(WatchEvent)>& onEvent) {
  pending_.append(chunk);
  std::size_t start = 0;
  for (std::size_t end; (end = pending_.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string_view line(pending_.data() + start, end - start);
    if (auto decoded = decodeLine(line, onEvent); !decoded) {
      pending_.clear();
      return decoded;
    }
  }
  pending_.erase(0, start);
  return {};
}

Result<void> WatchDecoder::decodeLine(std::string_view line,
                                      const std::function<void(WatchEvent)>& onEvent) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return {};
  json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!event.is_object() || !event.contains("type") || !event["type"].is_string() ||
      !event.contains("object") || !event["object"].is_object()) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("watch: not an event: {}", line.substr(0, 200)));
  }
  const std::string type = event["type"];
  json& object = event["object"];
  if (type == "ERROR") {
    const int code = object.value("code", 0);
    const std::string reason = object.value("reason", "");
    const std::string message = object.value("message", "");
    const ErrorCode errorCode = code == 410 ? ErrorCode::kGone : ErrorCode::kHttp;
    return fail(errorCode, fmt::format("watch: ERROR {} {}: {}", code, reason, message), code,
                reason);
  }
  WatchEventType eventType;
  if (type == "ADDED") {
    eventType = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    eventType = WatchEventType::kModified;
  } else if (type == "DELETED") {
    eventType = WatchEventType::kDeleted;
  } else if (type == "BOOKMARK") {
    eventType = WatchEventType::kBookmark;
  } else {
    return fail(ErrorCode::kBadResponse, fmt::format("watch: unknown event type \"{}\"", type));
  }
  if (const auto metadata = object.find("metadata");
      metadata != object.end() && metadata->is_object()) {
    const std::string rv = metadata->value("resourceVersion", "");
    if (!rv.empty()) resourceVersion_ = rv;
  }
  onEvent(WatchEvent{eventType, std::move(object)});
  return {};
}

namespace {

// One watch call. `decodeFailed` tells an ERROR event or a garbled body (the stream's content)
// from a failure to get a stream at all.
Result<void> watchCall(WatchDecoder& decoder, http::HttpTransport& transport,
                       const TokenProvider& token, std::string_view collectionPath,
                       const WatchOptions& options, const std::function<void(WatchEvent)>& onEvent,
                       http::CancelSignal& cancel, bool& decodeFailed) {
  decodeFailed = false;
  std::string query = "watch=1";
  auto add = [&query](std::string_view name, std::string_view value) {
    query += fmt::format("&{}={}", name, text::percentEncode(value));
  };
  if (options.allowBookmarks) add("allowWatchBookmarks", "true");
  if (!options.resourceVersion.empty()) add("resourceVersion", options.resourceVersion);
  if (!options.labelSelector.empty()) add("labelSelector", options.labelSelector);
  if (!options.fieldSelector.empty()) add("fieldSelector", options.fieldSelector);
  add("timeoutSeconds", std::to_string(options.timeoutSeconds));
  const char separator = collectionPath.find('?') == std::string_view::npos ? '?' : '&';
  http::HttpRequest request{.method = "GET",
                            .target = fmt::format("{}{}{}", collectionPath, separator, query)};
  request.headers.emplace("Accept", "application/json");
  if (token) {
    auto value = token();
    if (!value) return std::unexpected(value.error());
    if (!value->empty()) request.headers.emplace("Authorization", "Bearer " + *value);
  }

  Result<void> decodeResult;
  auto response = transport.stream(
      request,
      [&](std::string_view chunk) {
        decodeResult = decoder.feed(chunk, onEvent);
        return decodeResult.has_value();
      },
      cancel);
  if (!response) return std::unexpected(fromTransport(std::move(response.error())));
  if (response->status < 200 || response->status > 299) {
    return std::unexpected(errorFromResponse(request, *response));
  }
  if (!decodeResult) {
    decodeFailed = true;
    return std::unexpected(std::move(decodeResult.error()));
  }
  if (decoder.hasPartialLine()) {
    return fail(
        ErrorCode::kTransport,
        fmt::format("GET {}: the watch stream ended in the middle of an event", request.target));
  }
  return {};
}

}  // namespace

Result<void> watchInto(WatchDecoder& decoder, http::HttpTransport& transport,
                       const TokenProvider& token, std::string_view collectionPath,
                       const WatchOptions& options, const std::function<void(WatchEvent)>& onEvent,
                       http::CancelSignal& cancel) {
  bool decodeFailed = false;
  return watchCall(decoder, transport, token, collectionPath, options, onEvent, cancel,
                   decodeFailed);
}

Result<std::string> watch(http::HttpTransport& transport, const TokenProvider& token,
                          std::string_view collectionPath, const WatchOptions& options,
                          const std::function<void(WatchEvent)>& onEvent,
                          http::CancelSignal& cancel) {
  WatchDecoder decoder;
  decoder.setResourceVersion(options.resourceVersion);
  auto result = watchInto(decoder, transport, token, collectionPath, options, onEvent, cancel);
  if (!result) return std::unexpected(std::move(result.error()));
  return decoder.resourceVersion();
}

base::Clock::Duration reconnectDelay(const ReconnectOptions& options, int attempt) {
  const auto step = std::min<std::chrono::milliseconds>(
      options.maxBackoff, options.initialBackoff * (std::int64_t{1} << std::clamp(attempt, 0, 20)));
  const double jitter = options.random01 ? std::clamp(options.random01(), 0.0, 1.0) : 0.5;
  const auto half = std::chrono::duration<double>(step) / 2;
  return std::chrono::ceil<base::Clock::Duration>(half + half * jitter);
}

bool sleepUnlessCancelled(base::Clock& clock, base::Clock::Duration delay,
                          http::CancelSignal& cancel) {
  constexpr base::Clock::Duration kSlice = std::chrono::milliseconds(100);
  while (delay > base::Clock::Duration::zero()) {
    if (cancel.cancelled()) return false;
    const base::Clock::Duration slice = std::min(delay, kSlice);
    clock.sleepFor(slice);
    delay -= slice;
  }
  return !cancel.cancelled();
}

ResumableWatch::ResumableWatch(http::HttpTransport& transport, base::Clock& clock,
                               TokenProvider token, std::string collectionPath,
                               WatchOptions options, ReconnectOptions reconnect)
    : transport_(transport),
      clock_(clock),
      token_(std::move(token)),
      collectionPath_(std::move(collectionPath)),
      options_(std::move(options)),
      reconnect_(std::move(reconnect)),
      resourceVersion_(options_.resourceVersion) {
  if (!reconnect_.random01) {
    reconnect_.random01 = [engine = std::mt19937_64{std::random_device{}()}]() mutable {
      return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    };
  }
}

void ResumableWatch::restart(std::string resourceVersion) {
  resourceVersion_ = std::move(resourceVersion);
  failures_ = 0;
}

WatchStep ResumableWatch::next(const std::function<void(WatchEvent)>& onEvent,
                               http::CancelSignal& cancel) {
  if (failures_ > 0 &&
      !sleepUnlessCancelled(clock_, reconnectDelay(reconnect_, failures_ - 1), cancel)) {
    return {WatchOutcome::kCancelled, std::nullopt};
  }
  if (cancel.cancelled()) return {WatchOutcome::kCancelled, std::nullopt};

  WatchDecoder decoder;
  decoder.setResourceVersion(resourceVersion_);
  WatchOptions options = options_;
  options.resourceVersion = resourceVersion_;
  bool delivered = false;
  bool decodeFailed = false;
  const base::Clock::TimePoint started = clock_.now();
  auto result = watchCall(
      decoder, transport_, token_, collectionPath_, options,
      [&](WatchEvent event) {
        delivered = true;
        onEvent(std::move(event));
      },
      cancel, decodeFailed);
  // Every event handed out moved the resume point, whatever happened after it.
  resourceVersion_ = decoder.resourceVersion();
  if (delivered) failures_ = 0;

  if (result) {
    if (delivered || clock_.now() - started >= std::chrono::seconds(1)) {
      failures_ = 0;
    } else {
      ++failures_;  // an empty stream ended at once: do not spin on a server that does that
    }
    return {WatchOutcome::kResume, std::nullopt};
  }
  Error error = std::move(result.error());
  if (error.code == ErrorCode::kCancelled || cancel.cancelled()) {
    return {WatchOutcome::kCancelled, std::move(error)};
  }
  const bool retriable =
      !decodeFailed &&
      (error.code == ErrorCode::kConnectFailed || error.code == ErrorCode::kTransport ||
       error.code == ErrorCode::kServerError || error.code == ErrorCode::kTooManyRequests);
  if (retriable) {
    ++failures_;
    return {WatchOutcome::kResume, std::move(error)};
  }
  failures_ = 0;
  return {WatchOutcome::kRelist, std::move(error)};
}

WatchStep ResumableWatch::runUntilRelist(const std::function<void(WatchEvent)>& onEvent,
                                         http::CancelSignal& cancel) {
  for (;;) {
    WatchStep step = next(onEvent, cancel);
    if (step.outcome != WatchOutcome::kResume) return step;
  }
}

}  // namespace vnetipam::kube
