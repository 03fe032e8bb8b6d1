#include "lib/kube/client.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <mutex>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "lib/base/text.h"
#include "lib/base/time.h"

namespace vnetipam::kube {

using nlohmann::json;

namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kMergePatch = "application/merge-patch+json";
constexpr std::string_view kApplyPatch = "application/apply-patch+yaml";

bool isSuccess(int status) { return status >= 200 && status <= 299; }

std::string withQuery(std::string_view path, std::string_view query) {
  if (query.empty()) return std::string(path);
  const char separator = path.find('?') == std::string_view::npos ? '?' : '&';
  return fmt::format("{}{}{}", path, separator, query);
}

void addQuery(std::string& query, std::string_view name, std::string_view value) {
  if (!query.empty()) query += '&';
  query += name;
  query += '=';
  query += text::percentEncode(value);
}

bool hasResourceVersion(const json& object) {
  if (!object.is_object()) return false;
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return false;
  const auto rv = metadata->find("resourceVersion");
  return rv != metadata->end() && rv->is_string() && !rv->get_ref<const std::string&>().empty();
}

std::string statusPath(std::string_view objectPath) { return fmt::format("{}/status", objectPath); }

http::HttpRequest makeRequest(std::string method, std::string target,
                              std::string_view contentType = {}, std::string body = {}) {
  http::HttpRequest request{.method = std::move(method), .target = std::move(target)};
  if (!contentType.empty()) request.headers.emplace("Content-Type", contentType);
  request.body = std::move(body);
  return request;
}

std::optional<std::chrono::seconds> retryAfter(const http::HttpResponse& response,
                                               base::Clock& clock) {
  const auto header = response.headers.find("Retry-After");
  if (header == response.headers.end()) return std::nullopt;
  return parseRetryAfter(header->second, clock.wallNow());
}

}  // namespace

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now) {
  value = text::trimOws(value);
  if (value.empty()) return std::nullopt;
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    if (seconds < 0) return std::nullopt;
    return std::chrono::seconds(seconds);
  }
  const auto date = base::parseHttpDate(value);
  if (!date) return std::nullopt;
  if (*date <= now) return std::chrono::seconds(0);
  return std::chrono::ceil<std::chrono::seconds>(*date - now);
}

Error errorFromResponse(const http::HttpRequest& request, const http::HttpResponse& response) {
  std::string reason;
  std::string message;
  const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.value("kind", "") == "Status") {
    if (const auto r = body.find("reason"); r != body.end() && r->is_string()) reason = *r;
    if (const auto m = body.find("message"); m != body.end() && m->is_string()) message = *m;
  }
  if (message.empty()) message = response.body.substr(0, 200);
  ErrorCode code = ErrorCode::kHttp;
  const int status = response.status;
  switch (status) {
    case 400: code = ErrorCode::kBadRequest; break;
    case 401: code = ErrorCode::kUnauthorized; break;
    case 403: code = ErrorCode::kForbidden; break;
    case 404: code = ErrorCode::kNotFound; break;
    case 409:
      code = reason == "AlreadyExists" ? ErrorCode::kAlreadyExists : ErrorCode::kConflict;
      break;
    case 410: code = ErrorCode::kGone; break;
    case 422: code = ErrorCode::kInvalid; break;
    case 429: code = ErrorCode::kTooManyRequests; break;
    default:
      if (status >= 500) code = ErrorCode::kServerError;
  }
  return Error{code,
               fmt::format("{} {}: {} {}: {}", request.method, request.target, status,
                           reason.empty() ? std::string(toString(code)) : reason, message),
               status, reason};
}

Client::Client(http::HttpTransport& transport, base::Clock& clock, ClientOptions options)
    : transport_(transport),
      clock_(clock),
      options_(std::move(options)),
      bucket_(clock, options_.qps, options_.burst) {
  if (!options_.random01) {
    struct Source {
      std::mutex mutex;
      std::mt19937_64 engine{std::random_device{}()};
    };
    options_.random01 = [source = std::make_shared<Source>()] {
      std::lock_guard lock(source->mutex);
      return std::uniform_real_distribution<double>(0.0, 1.0)(source->engine);
    };
  }
}

base::Clock::Duration Client::backoff(int attempt) {
  // Equal jitter: half the exponential step for sure, half at random, so clients that failed
  // together do not retry together.
  const auto step = std::min<std::chrono::milliseconds>(
      options_.maxBackoff, options_.initialBackoff * (std::int64_t{1} << std::min(attempt, 20)));
  const double jitter = std::clamp(options_.random01(), 0.0, 1.0);
  const auto half = std::chrono::duration<double>(step) / 2;
  return std::chrono::ceil<base::Clock::Duration>(half + half * jitter);
}

Result<http::HttpResponse> Client::call(http::HttpRequest request, bool idempotent) {
  request.headers.try_emplace("Accept", kJson);
  request.headers.try_emplace("User-Agent", options_.userAgent);
  for (int attempt = 0;; ++attempt) {
    bucket_.acquire();
    if (options_.token) {
      // Asked per attempt: a rotated service account token is picked up by the next request.
      auto token = options_.token();
      if (!token) return std::unexpected(token.error());
      if (!token->empty()) request.headers.insert_or_assign("Authorization", "Bearer " + *token);
    }
    const bool lastAttempt = attempt >= options_.maxRetries;
    auto response = transport_.send(request);
    if (!response) {
      Error error = fromTransport(std::move(response.error()));
      const bool retriable = error.code == ErrorCode::kConnectFailed ||
                             (idempotent && error.code == ErrorCode::kTransport);
      if (!retriable || lastAttempt) {
        if (error.code == ErrorCode::kTransport && !idempotent) {
          // The server may have acted: repeating could, e.g., create twice. The caller reads.
          error.message += " (outcome unknown; not retried)";
        }
        return std::unexpected(std::move(error));
      }
      clock_.sleepFor(backoff(attempt));
      continue;
    }
    const int status = response->status;
    // 429 means the server refused before acting, so any request may be repeated; a 5xx may
    // come after the write happened, so only requests safe to repeat are.
    const bool retriable = status == 429 || (status >= 500 && idempotent);
    if (!retriable || lastAttempt) return std::move(*response);
    if (const auto after = retryAfter(*response, clock_)) {
      clock_.sleepFor(std::min<base::Clock::Duration>(*after, options_.maxRetryAfter));
    } else {
      clock_.sleepFor(backoff(attempt));
    }
  }
}

Result<json> Client::callJson(http::HttpRequest request, bool idempotent) {
  auto response = call(request, idempotent);
  if (!response) return std::unexpected(std::move(response.error()));
  if (!isSuccess(response->status)) {
    return std::unexpected(errorFromResponse(request, *response));
  }
  if (response->body.empty()) return json();
  json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{} {}: {} with a body that is not JSON", request.method,
                            request.target, response->status),
                response->status);
  }
  return body;
}

Result<json> Client::get(std::string_view objectPath) {
  return callJson(makeRequest("GET", std::string(objectPath)), true);
}

Result<json> Client::list(std::string_view collectionPath, const ListOptions& options) {
  json merged;
  json items = json::array();
  std::string continueToken;
  do {
    std::string query;
    if (!options.labelSelector.empty()) addQuery(query, "labelSelector", options.labelSelector);
    if (!options.fieldSelector.empty()) addQuery(query, "fieldSelector", options.fieldSelector);
    if (options.limit > 0) addQuery(query, "limit", std::to_string(options.limit));
    if (!continueToken.empty()) addQuery(query, "continue", continueToken);
    auto page = callJson(makeRequest("GET", withQuery(collectionPath, query)), true);
    if (!page) return page;
    if (!page->is_object()) {
      return fail(ErrorCode::kBadResponse,
                  fmt::format("GET {}: the list is not a JSON object", collectionPath));
    }
    if (const auto pageItems = page->find("items"); pageItems != page->end()) {
      if (!pageItems->is_array() && !pageItems->is_null()) {
        return fail(ErrorCode::kBadResponse,
                    fmt::format("GET {}: items is not an array", collectionPath));
      }
      if (pageItems->is_array()) {
        for (auto& item : *pageItems)
          items.push_back(std::move(item));
      }
    }
    continueToken.clear();
    if (const auto metadata = page->find("metadata");
        metadata != page->end() && metadata->is_object()) {
      continueToken = metadata->value("continue", "");
    }
    merged = std::move(*page);
  } while (!continueToken.empty());
  merged["items"] = std::move(items);
  if (merged.contains("metadata") && merged["metadata"].is_object()) {
    merged["metadata"].erase("continue");
  }
  return merged;
}

Result<json> Client::create(std::string_view collectionPath, const json& object) {
  // Not idempotent: after a timeout or a 5xx the object may exist; see call().
  return callJson(makeRequest("POST", std::string(collectionPath), kJson, object.dump()), false);
}

Result<json> Client::update(std::string_view objectPath, const json& object) {
  return callJson(makeRequest("PUT", std::string(objectPath), kJson, object.dump()),
                  hasResourceVersion(object));
}

Result<json> Client::updateStatus(std::string_view objectPath, const json& object) {
  return update(statusPath(objectPath), object);
}

Result<json> Client::mergePatch(std::string_view objectPath, const json& patch) {
  return callJson(makeRequest("PATCH", std::string(objectPath), kMergePatch, patch.dump()),
                  hasResourceVersion(patch));
}

Result<json> Client::mergePatchStatus(std::string_view objectPath, const json& patch) {
  return mergePatch(statusPath(objectPath), patch);
}

Result<json> Client::apply(std::string_view objectPath, const json& object,
                           const ApplyOptions& options) {
  if (options.fieldManager.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("apply {}: a fieldManager is required", objectPath));
  }
  std::string query;
  addQuery(query, "fieldManager", options.fieldManager);
  if (options.force) addQuery(query, "force", "true");
  // Apply states the desired fields, so repeating it after an unknown outcome is harmless.
  return callJson(makeRequest("PATCH", withQuery(objectPath, query), kApplyPatch, object.dump()),
                  true);
}

Result<json> Client::applyStatus(std::string_view objectPath, const json& object,
                                 const ApplyOptions& options) {
  return apply(statusPath(objectPath), object, options);
}

Result<json> Client::remove(std::string_view objectPath, const DeleteOptions& options) {
  json body = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
  if (options.uid) body["preconditions"]["uid"] = *options.uid;
  if (options.resourceVersion) body["preconditions"]["resourceVersion"] = *options.resourceVersion;
  if (options.propagationPolicy) body["propagationPolicy"] = *options.propagationPolicy;
  const bool precondition = options.uid.has_value() || options.resourceVersion.has_value();
  return callJson(makeRequest("DELETE", std::string(objectPath), kJson, body.dump()), precondition);
}

}  // namespace vnetipam::kube
