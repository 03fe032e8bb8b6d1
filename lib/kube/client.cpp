#include "lib/kube/client.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <memory>
#include <mutex>
#include <random>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "lib/base/text.h"

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

bool parseNumber(std::string_view text, int& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::vector<std::string_view> splitOn(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(separator, start), text.size());
    if (end > start) parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::optional<unsigned> monthNumber(std::string_view name) {
  constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (std::size_t i = 0; i < kMonths.size(); ++i) {
    if (name == kMonths[i]) return static_cast<unsigned>(i + 1);
  }
  return std::nullopt;
}

// An HTTP date (RFC 9110 section 5.6.7), always GMT, in any of its three forms.
std::optional<std::chrono::sys_seconds> parseHttpDate(std::string_view text) {
  const std::vector<std::string_view> words = splitOn(text, ' ');
  std::string_view day, month, year, time;
  if (words.size() == 6 && words[0].ends_with(',') && words[5] == "GMT") {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    day = words[1], month = words[2], year = words[3], time = words[4];
  } else if (words.size() == 4 && words[0].ends_with(',') && words[3] == "GMT") {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    const std::vector<std::string_view> date = splitOn(words[1], '-');
    if (date.size() != 3) return std::nullopt;
    day = date[0], month = date[1], year = date[2], time = words[2];
  } else if (words.size() == 5) {
    // asctime: Sun Nov  6 08:49:37 1994
    month = words[1], day = words[2], time = words[3], year = words[4];
  } else {
    return std::nullopt;
  }
  const std::vector<std::string_view> clock = splitOn(time, ':');
  int d = 0, y = 0, h = 0, m = 0, s = 0;
  const auto mon = monthNumber(month);
  if (!mon || clock.size() != 3 || !parseNumber(day, d) || !parseNumber(year, y) ||
      !parseNumber(clock[0], h) || !parseNumber(clock[1], m) || !parseNumber(clock[2], s)) {
    return std::nullopt;
  }
  if (year.size() == 2) y += y < 70 ? 2000 : 1900;  // RFC 850's two-digit years
  const std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(*mon),
                                         std::chrono::day(static_cast<unsigned>(d))};
  if (d < 1 || !date.ok() || h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60) {
    return std::nullopt;
  }
  return std::chrono::sys_days(date) + std::chrono::hours(h) + std::chrono::minutes(m) +
         std::chrono::seconds(s);
}

std::optional<std::chrono::seconds> retryAfter(
    const http::HttpResponse& response,
    const std::function<std::chrono::system_clock::time_point()>& wallClock) {
  const auto header = response.headers.find("Retry-After");
  if (header == response.headers.end()) return std::nullopt;
  return parseRetryAfter(header->second, wallClock());
}

}  // namespace

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now) {
  const std::size_t first = value.find_first_not_of(" \t");
  if (first == std::string_view::npos) return std::nullopt;
  value = value.substr(first, value.find_last_not_of(" \t") - first + 1);
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    if (seconds < 0) return std::nullopt;
    return std::chrono::seconds(seconds);
  }
  const auto date = parseHttpDate(value);
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
  if (!options_.wallClock) options_.wallClock = [] { return std::chrono::system_clock::now(); };
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
    if (const auto after = retryAfter(*response, options_.wallClock)) {
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
