#include "lib/kube/watch.h"

#include <fmt/format.h>

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

Result<std::string> watch(HttpTransport& transport, const TokenProvider& token,
                          std::string_view collectionPath, const WatchOptions& options,
                          const std::function<void(WatchEvent)>& onEvent, CancelSignal& cancel) {
  std::string query = "watch=1";
  auto add = [&query](std::string_view name, std::string_view value) {
    query += fmt::format("&{}={}", name, encodeQueryValue(value));
  };
  if (options.allowBookmarks) add("allowWatchBookmarks", "true");
  if (!options.resourceVersion.empty()) add("resourceVersion", options.resourceVersion);
  if (!options.labelSelector.empty()) add("labelSelector", options.labelSelector);
  if (!options.fieldSelector.empty()) add("fieldSelector", options.fieldSelector);
  add("timeoutSeconds", std::to_string(options.timeoutSeconds));
  const char separator = collectionPath.find('?') == std::string_view::npos ? '?' : '&';
  HttpRequest request{.method = "GET",
                      .target = fmt::format("{}{}{}", collectionPath, separator, query)};
  request.headers.emplace("Accept", "application/json");
  if (token) {
    auto value = token();
    if (!value) return std::unexpected(value.error());
    if (!value->empty()) request.headers.emplace("Authorization", "Bearer " + *value);
  }

  WatchDecoder decoder;
  decoder.setResourceVersion(options.resourceVersion);
  Result<void> decodeResult;
  auto response = transport.stream(
      request,
      [&](std::string_view chunk) {
        decodeResult = decoder.feed(chunk, onEvent);
        return decodeResult.has_value();
      },
      cancel);
  if (!response) return std::unexpected(std::move(response.error()));
  if (response->status < 200 || response->status > 299) {
    return std::unexpected(errorFromResponse(request, *response));
  }
  if (!decodeResult) return std::unexpected(std::move(decodeResult.error()));
  return decoder.resourceVersion();
}

}  // namespace vnetipam::kube
