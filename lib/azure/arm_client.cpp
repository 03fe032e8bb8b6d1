#include "lib/azure/arm_client.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "lib/azure/bounded_json.h"
#include "lib/base/text.h"

namespace vnetipam::azure {

namespace {

using nlohmann::json;

constexpr std::string_view kPollOperation = "PollOperation";

bool isSuccess(int status) { return status >= 200 && status <= 299; }

// The CloudError code, or "" when the body is not one (or not within the limits).
std::string cloudErrorCode(const std::string& body) {
  const auto doc = parseBoundedJson(body, kMaxArmBodyBytes, "CloudError");
  if (!doc) return {};
  const auto error = doc->is_object() ? doc->find("error") : doc->end();
  if (error == doc->end()) return {};
  return clipText(stringField(*error, "code"), 256);
}

ErrorCode codeForStatus(int status) {
  switch (status) {
    case 400: return ErrorCode::kBadRequest;
    case 401: return ErrorCode::kUnauthorized;
    case 403: return ErrorCode::kForbidden;
    case 404: return ErrorCode::kNotFound;
    case 409: return ErrorCode::kConflict;
    case 412: return ErrorCode::kPreconditionFailed;
    case 429: return ErrorCode::kThrottled;
    case 408: return ErrorCode::kServerError;
    default: return status >= 500 ? ErrorCode::kServerError : ErrorCode::kHttp;
  }
}

// "code: message" of a CloudError-shaped object ({"code","message","details":[...]}), with the
// first detail, which often says more than the outer message (PreconditionFailedEtagMismatch).
// Each string is cut to kMaxQuotedBytes: a message quotes Azure, not its whole answer.
std::string describe(const json& error, std::string& code) {
  code = clipText(stringField(error, "code"), 256);
  const std::string message = clipText(stringField(error, "message"));
  std::string text = code.empty() ? message : code + ": " + message;
  const auto details = error.find("details");
  if (details != error.end() && details->is_array() && !details->empty() &&
      details->front().is_object()) {
    std::string detailCode;
    text += " (" + describe(details->front(), detailCode) + ")";
  }
  return text;
}

}  // namespace

Error armError(std::string_view operation, std::string_view target,
               const http::HttpResponse& response) {
  const auto doc = parseBoundedJson(response.body, kMaxArmBodyBytes, "CloudError");
  std::string code;
  std::string text;
  if (doc && doc->is_object() && doc->contains("error") && (*doc)["error"].is_object()) {
    text = describe((*doc)["error"], code);
  } else {
    text = clipText(response.body, 300);
  }
  return Error{codeForStatus(response.status),
               redactSecrets(fmt::format("{} {}: HTTP {}: {}", operation, target, response.status,
                                         text.empty() ? "(no error body)" : text)),
               response.status, code};
}

ArmClient::ArmClient(http::HttpTransport& transport, std::string endpoint,
                     TokenCredential& credential, Clock& clock, ArmClientOptions options)
    : transport_(transport),
      endpoint_(std::move(endpoint)),
      credential_(credential),
      clock_(clock),
      options_(std::move(options)),
      reads_(clock, options_.readQps, options_.readBurst),
      writes_(clock, options_.writeQps, options_.writeBurst) {
  while (endpoint_.ends_with('/'))
    endpoint_.pop_back();
  if (!options_.random01) options_.random01 = defaultRandom01();
}

Result<std::string> ArmClient::targetOf(std::string_view url) const {
  // A URL Azure handed back (nextLink, Azure-AsyncOperation, Location) becomes a request line:
  // white space or a control character in it would split or end that line.
  constexpr std::size_t kMaxUrlBytes = 16 * 1024;
  const bool printable = std::ranges::all_of(url, [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F;
  });
  if (url.empty() || url.size() > kMaxUrlBytes || !printable) {
    const std::string_view why = url.size() > kMaxUrlBytes ? ", more than the limit"
                                 : url.empty()             ? ""
                                               : ", with white space or control characters";
    return fail(ErrorCode::kBadResponse,
                fmt::format("Azure returned a URL that cannot be requested ({} bytes{}); not "
                            "following it",
                            url.size(), why));
  }
  if (url.starts_with('/')) return std::string(url);
  // Scheme and host compare case-insensitively; so does the rest here, which is at worst more
  // lenient about a path prefix's case.
  if (url.size() > endpoint_.size() && text::iequals(url.substr(0, endpoint_.size()), endpoint_) &&
      (url[endpoint_.size()] == '/' || url[endpoint_.size()] == '?')) {
    std::string target(url.substr(endpoint_.size()));
    if (target.front() == '?') target.insert(0, "/");
    return target;
  }
  return fail(ErrorCode::kBadResponse,
              fmt::format("Azure returned the URL \"{}\", which is not under the ARM endpoint "
                          "\"{}\"; not following it (the token is only sent to the endpoint)",
                          url, endpoint_));
}

void ArmClient::wait(std::string_view operation, WaitReason reason, Clock::Duration duration) {
  if (duration <= Clock::Duration::zero()) return;
  if (options_.observer) options_.observer->onWait(operation, reason, duration);
  clock_.sleepFor(duration);
}

void ArmClient::pauseForThrottling(bool read, Clock::Duration pause) {
  if (options_.pacer) return options_.pacer->hold(read, pause);
  const Clock::TimePoint until = clock_.now() + pause;
  std::lock_guard lock(throttleMutex_);
  Clock::TimePoint& current = read ? readsPausedUntil_ : writesPausedUntil_;
  current = std::max(current, until);
}

Clock::Duration ArmClient::throttlePauseLeft(bool read) {
  Clock::TimePoint until;
  {
    std::lock_guard lock(throttleMutex_);
    until = read ? readsPausedUntil_ : writesPausedUntil_;
  }
  return std::max(Clock::Duration::zero(), until - clock_.now());
}

Result<http::HttpResponse> ArmClient::send(std::string_view operation, std::string_view method,
                                           std::string_view target, std::string body,
                                           http::Headers headers) {
  auto path = targetOf(target);
  if (!path) return std::unexpected(path.error());
  http::HttpRequest request{.method = std::string(method),
                            .target = std::move(*path),
                            .headers = std::move(headers),
                            .body = std::move(body)};
  request.headers.try_emplace("Accept", "application/json");
  request.headers.try_emplace("User-Agent", options_.userAgent);
  if (!request.body.empty()) request.headers.try_emplace("Content-Type", "application/json");
  const bool read = method == "GET";

  int retries = 0;
  int throttleWaits = 0;
  bool refreshedToken = false;
  for (;;) {
    const WaitReason budgetWait = read ? WaitReason::kReadBudget : WaitReason::kWriteBudget;
    if (options_.pacer) {
      wait(operation, budgetWait, options_.pacer->reserve(read));
      const auto held = options_.pacer->holdLeft(read);
      wait(operation, held.reason, held.left);
    } else {
      wait(operation, budgetWait, (read ? reads_ : writes_).reserve());
      wait(operation, WaitReason::kThrottled, throttlePauseLeft(read));
    }
    auto token = credential_.token();
    if (!token) return std::unexpected(token.error());
    request.headers.insert_or_assign("Authorization", "Bearer " + *token);

    const Clock::TimePoint start = clock_.now();
    auto response = transport_.send(request);
    if (options_.observer) {
      options_.observer->onRequest(operation, response ? response->status : 0,
                                   clock_.now() - start);
    }
    if (!response) {
      const http::Error& error = response.error();
      if (retries >= options_.maxRetries) {
        return fail(error.code == http::ErrorCode::kConnectFailed ? ErrorCode::kConnectFailed
                                                                  : ErrorCode::kTransport,
                    redactSecrets(fmt::format("{} {} {}: {} (after {} retries)", operation, method,
                                              request.target, error.message, retries)));
      }
      wait(operation, WaitReason::kRetryBackoff,
           jitteredBackoff(retries++, options_.initialBackoff, options_.maxBackoff,
                           options_.random01()));
      continue;
    }

    if (options_.pacer) options_.pacer->observe(read, response->headers);
    const int status = response->status;
    if (status == 401 && !refreshedToken) {
      // The token may have been revoked or rotated early: one more try with a fresh one.
      refreshedToken = true;
      credential_.invalidate();
      continue;
    }
    const bool throttled = status == 429;
    const bool inProgress =
        status == 409 && cloudErrorCode(response->body) == "AnotherOperationInProgress";
    if (throttled || inProgress) {
      const auto after = retryAfter(response->headers, clock_.wallNow());
      const Clock::Duration pause =
          after ? std::min<Clock::Duration>(*after, options_.maxRetryAfter)
                : jitteredBackoff(throttleWaits,
                                  throttled ? options_.initialBackoff : options_.inProgressBackoff,
                                  options_.maxBackoff, options_.random01());
      // ARM throttles the subscription, not the request: every request of this class (reads or
      // writes) from this client waits the pause out, not only the one that was refused, and
      // also when this one gives up. The wait happens at the top of the loop, with everyone's.
      if (throttled) pauseForThrottling(read, pause);
      if (throttleWaits >= options_.maxThrottleRetries) return std::move(*response);
      ++throttleWaits;
      if (!throttled) wait(operation, WaitReason::kOperationInProgress, pause);
      continue;
    }
    if ((status == 408 || status >= 500) && retries < options_.maxRetries) {
      const auto after = retryAfter(response->headers, clock_.wallNow());
      wait(operation, WaitReason::kRetryBackoff,
           after ? std::min<Clock::Duration>(*after, options_.maxRetryAfter)
                 : jitteredBackoff(retries, options_.initialBackoff, options_.maxBackoff,
                                   options_.random01()));
      ++retries;
      continue;
    }
    return std::move(*response);
  }
}

Result<json> ArmClient::get(std::string_view operation, std::string_view target,
                            std::span<const std::string_view> keepKeys) {
  auto response = send(operation, "GET", target);
  if (!response) return std::unexpected(response.error());
  if (!isSuccess(response->status)) return std::unexpected(armError(operation, target, *response));
  auto doc = parseBoundedJson(response->body, kMaxArmBodyBytes,
                              fmt::format("{} {}", operation, target), keepKeys);
  if (!doc) return std::unexpected(std::move(doc.error()));
  if (!doc->is_object()) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{} {}: the response is not a JSON object", operation, target));
  }
  return doc;
}

Result<std::vector<json>> ArmClient::list(std::string_view operation, std::string_view target) {
  std::vector<json> items;
  auto pages = forEachPage(operation, target, [&items](json& page) -> Result<void> {
    for (auto& item : page)
      items.push_back(std::move(item));
    return {};
  });
  if (!pages) return std::unexpected(pages.error());
  return items;
}

Result<int> ArmClient::forEachPage(std::string_view operation, std::string_view target,
                                   const std::function<Result<void>(json& items)>& visit,
                                   std::span<const std::string_view> itemKeys) {
  std::vector<std::string_view> keep;
  if (!itemKeys.empty()) {
    keep.assign(itemKeys.begin(), itemKeys.end());
    keep.insert(keep.end(), {"value", "nextLink"});
  }
  std::string next(target);
  int page = 0;
  // A server that keeps handing out the same nextLink would loop forever; pages are finite.
  for (; !next.empty(); ++page) {
    if (page >= 10'000) {
      return fail(ErrorCode::kBadResponse,
                  fmt::format("{} {}: more than 10000 pages; giving up", operation, target));
    }
    auto doc = get(operation, next, keep);
    if (!doc) return std::unexpected(doc.error());
    const auto value = doc->find("value");
    if (value == doc->end() || !value->is_array()) {
      return fail(ErrorCode::kBadResponse,
                  fmt::format("{} {}: the page has no \"value\" array", operation, next));
    }
    if (auto visited = visit(*value); !visited) return std::unexpected(visited.error());
    const auto link = doc->find("nextLink");
    if (link != doc->end() && !link->is_null() && !link->is_string()) {
      return fail(ErrorCode::kBadResponse,
                  fmt::format("{} {}: the page's \"nextLink\" is not a string", operation, next));
    }
    next = link != doc->end() && link->is_string() ? link->get<std::string>() : std::string();
  }
  return page;
}

Result<json> ArmClient::put(std::string_view operation, std::string_view target, const json& body,
                            const std::optional<std::string>& ifMatch, ReadBack readBack) {
  http::Headers headers;
  if (ifMatch) headers["If-Match"] = *ifMatch;
  auto response = send(operation, "PUT", target, body.dump(), std::move(headers));
  if (!response) return std::unexpected(response.error());
  if (!isSuccess(response->status)) return std::unexpected(armError(operation, target, *response));
  return followOperation(operation, target, readBack, *response);
}

Result<json> ArmClient::followOperation(std::string_view operation, std::string_view target,
                                        ReadBack readBack, const http::HttpResponse& initial) {
  const auto header = [&initial](std::string_view name) {
    const auto it = initial.headers.find(name);
    return it == initial.headers.end() ? std::string() : it->second;
  };
  const std::string asyncUrl = header("Azure-AsyncOperation");
  const std::string locationUrl = header("Location");
  if (initial.status == 200 || initial.status == 201) {
    // A PUT that finished while it was being answered carries a terminal provisioningState in
    // its body; ARM's clients (e.g. azcore's async poller) then skip the polls, and so do we.
    // A body that does not parse (or is over the limits) is no shortcut: the operation is
    // followed, or the resource read, as below.
    auto doc = parseBoundedJson(initial.body, kMaxArmBodyBytes, operation);
    if (doc && doc->is_object()) {
      const auto props = doc->find("properties");
      if (props != doc->end() && stringField(*props, "provisioningState") == "Succeeded")
        return std::move(*doc);
    }
  }
  if (asyncUrl.empty() && locationUrl.empty()) {
    // Done at once: the body is the resource; without a usable one, it is read.
    auto doc = parseBoundedJson(initial.body, kMaxArmBodyBytes, operation);
    if (initial.status == 202 || !doc || !doc->is_object()) return get(operation, target);
    return std::move(*doc);
  }

  const Clock::TimePoint deadline = clock_.now() + options_.operationTimeout;
  const http::HttpResponse* last = &initial;
  http::HttpResponse poll;
  const std::string& url = asyncUrl.empty() ? locationUrl : asyncUrl;
  for (;;) {
    const auto after = retryAfter(last->headers, clock_.wallNow());
    wait(operation, WaitReason::kOperationPoll,
         std::clamp<Clock::Duration>(after.value_or(options_.defaultPollInterval),
                                     Clock::Duration::zero(), options_.maxPollInterval));
    if (clock_.now() > deadline) {
      return fail(ErrorCode::kTimeout,
                  fmt::format("{} {}: the operation {} did not finish within {} s", operation,
                              target, url, options_.operationTimeout.count()));
    }
    auto response = send(kPollOperation, "GET", url);
    if (!response) return std::unexpected(response.error());
    poll = std::move(*response);
    last = &poll;
    if (!asyncUrl.empty()) {
      // A failed read of the status is not a failed operation, but we cannot go on.
      if (poll.status != 200) return std::unexpected(armError(kPollOperation, url, poll));
      const auto parsed =
          parseBoundedJson(poll.body, kMaxArmBodyBytes, fmt::format("{} {}", operation, url));
      if (!parsed) return std::unexpected(parsed.error());
      const json& doc = *parsed;
      const std::string status = stringField(doc, "status");
      if (status.empty()) {
        return fail(ErrorCode::kBadResponse,
                    fmt::format("{} {}: the operation status from {} has no \"status\"", operation,
                                target, url));
      }
      if (text::iequals(status, "Succeeded")) {
        if (readBack == ReadBack::kNo) return json::object();
        return get(operation, target);
      }
      if (text::iequals(status, "Failed") || text::iequals(status, "Canceled")) {
        std::string code;
        const std::string text =
            doc.contains("error") && doc["error"].is_object() ? describe(doc["error"], code) : "";
        return fail(ErrorCode::kOperationFailed,
                    redactSecrets(fmt::format("{} {}: the operation ended {}{}", operation, target,
                                              status, text.empty() ? "" : ": " + text)),
                    poll.status, code);
      }
      continue;  // InProgress, or any other non-terminal state
    }
    // The Location protocol: 202 while running, then the result.
    if (poll.status == 202) continue;
    if (!isSuccess(poll.status)) return std::unexpected(armError(kPollOperation, url, poll));
    // The result is the resource; without a usable one, it is read.
    auto doc = parseBoundedJson(poll.body, kMaxArmBodyBytes, kPollOperation);
    if (doc && doc->is_object() && !doc->empty()) return std::move(*doc);
    if (readBack == ReadBack::kNo) return json::object();
    return get(operation, target);
  }
}

}  // namespace vnetipam::azure
