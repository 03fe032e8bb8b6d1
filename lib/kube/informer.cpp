#include "lib/kube/informer.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>

#include <fmt/format.h>

namespace vnetipam::kube {

using nlohmann::json;

namespace {

std::string metadataString(const json& object, const char* field) {
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return {};
  const auto value = metadata->find(field);
  return value != metadata->end() && value->is_string() ? value->get<std::string>() : std::string();
}

}  // namespace

std::string Informer::keyOf(const json& object) {
  const std::string name = metadataString(object, "name");
  const std::string ns = metadataString(object, "namespace");
  return ns.empty() ? name : fmt::format("{}/{}", ns, name);
}

Informer::Informer(Client& client, std::string collectionPath, InformerOptions options,
                   InformerHandlers handlers)
    : client_(client),
      clock_(client.clock()),
      collectionPath_(std::move(collectionPath)),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      watch_(client.transport(), client.clock(), client.token(), collectionPath_,
             WatchOptions{.labelSelector = options_.list.labelSelector,
                          .fieldSelector = options_.list.fieldSelector,
                          .timeoutSeconds = options_.watchTimeoutSeconds,
                          .allowBookmarks = true},
             options_.reconnect) {
  if (!options_.reconnect.random01) {
    // Only the stepping thread draws from it (list backoff).
    options_.reconnect.random01 = [engine = std::mt19937_64{std::random_device{}()}]() mutable {
      return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    };
  }
}

Informer::~Informer() { stop(); }

void Informer::start() {
  if (thread_.joinable() || stop_.cancelled()) return;
  thread_ = std::thread([this] {
    while (!stop_.cancelled()) {
      (void)step(stop_);  // failures went to onError; the next step retries
    }
  });
}

void Informer::stop() {
  stop_.cancel();
  if (thread_.joinable()) thread_.join();
}

std::optional<json> Informer::get(std::string_view key) const {
  std::lock_guard lock(mutex_);
  const auto found = cache_.find(key);
  if (found == cache_.end()) return std::nullopt;
  return found->second;
}

std::vector<json> Informer::list() const {
  std::lock_guard lock(mutex_);
  std::vector<json> out;
  out.reserve(cache_.size());
  for (const auto& [key, object] : cache_)
    out.push_back(object);
  return out;
}

void Informer::report(const Error& error) {
  if (options_.onError) options_.onError(error);
}

Result<void> Informer::step(http::CancelSignal& cancel) {
  if (cancel.cancelled()) return fail(ErrorCode::kCancelled, "informer: stopped");
  if (needList_) return listAndReplace(cancel);

  resyncIfDue();
  watch_.options().timeoutSeconds = watchTimeoutSeconds();
  bool sawEvent = false;
  WatchStep result = watch_.next(
      [this, &sawEvent](WatchEvent event) {
        sawEvent = true;
        applyEvent(std::move(event));
        resyncIfDue();
      },
      cancel);
  if (sawEvent || result.outcome == WatchOutcome::kResume) relistsInARow_ = 0;
  switch (result.outcome) {
    case WatchOutcome::kResume:
      if (!result.error) return {};
      report(*result.error);
      return std::unexpected(std::move(*result.error));
    case WatchOutcome::kRelist: {
      needList_ = true;
      ++relistsInARow_;
      Error error = result.error.value_or(Error{ErrorCode::kGone, "watch: relist"});
      report(error);
      return std::unexpected(std::move(error));
    }
    case WatchOutcome::kCancelled: break;
  }
  return fail(ErrorCode::kCancelled, fmt::format("informer {}: stopped", collectionPath_));
}

Result<void> Informer::listAndReplace(http::CancelSignal& cancel) {
  // The first relist after a healthy watch is immediate; a list that keeps failing, or a watch
  // that sends us back to list again and again, backs off.
  const int attempt = listFailures_ + std::max(0, relistsInARow_ - 1);
  if (attempt > 0 &&
      !sleepUnlessCancelled(clock_, reconnectDelay(options_.reconnect, attempt - 1), cancel)) {
    return fail(ErrorCode::kCancelled, fmt::format("informer {}: stopped", collectionPath_));
  }
  auto listed = client_.list(collectionPath_, options_.list);
  if (listed && !(*listed)["items"].is_array()) {
    listed = fail(ErrorCode::kBadResponse,
                  fmt::format("GET {}: the list has no items array", collectionPath_));
  }
  if (!listed) {
    ++listFailures_;
    report(listed.error());
    return std::unexpected(std::move(listed.error()));
  }
  listFailures_ = 0;

  std::map<std::string, json, std::less<>> fresh;
  for (auto& item : (*listed)["items"]) {
    std::string key = keyOf(item);
    fresh.insert_or_assign(std::move(key), std::move(item));
  }
  std::vector<Change> changes;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, old] : cache_) {
      const auto now = fresh.find(key);
      if (now == fresh.end()) {
        changes.push_back({Change::kDelete, old, json()});
      } else if (metadataString(old, "uid") != metadataString(now->second, "uid")) {
        changes.push_back({Change::kDelete, old, json()});
        changes.push_back({Change::kAdd, json(), now->second});
      } else if (metadataString(old, "resourceVersion") !=
                 metadataString(now->second, "resourceVersion")) {
        changes.push_back({Change::kUpdate, old, now->second});
      }
    }
    for (const auto& [key, object] : fresh) {
      if (!cache_.contains(key)) changes.push_back({Change::kAdd, json(), object});
    }
    cache_ = std::move(fresh);
  }
  watch_.restart(metadataString(*listed, "resourceVersion"));
  needList_ = false;
  const bool first = !synced_.load(std::memory_order_acquire);
  if (first) nextResync_ = clock_.now() + options_.resyncPeriod;
  deliver(changes);
  synced_.store(true, std::memory_order_release);
  return {};
}

void Informer::applyEvent(WatchEvent event) {
  if (event.type == WatchEventType::kBookmark) return;  // only moves the resume point
  std::string key = keyOf(event.object);
  std::vector<Change> changes;
  {
    std::lock_guard lock(mutex_);
    const auto found = cache_.find(key);
    if (event.type == WatchEventType::kDeleted) {
      if (found == cache_.end()) return;
      cache_.erase(found);
      changes.push_back({Change::kDelete, json(), std::move(event.object)});
    } else if (found == cache_.end()) {
      changes.push_back({Change::kAdd, json(), event.object});
      cache_.emplace(std::move(key), std::move(event.object));
    } else if (metadataString(found->second, "uid") != metadataString(event.object, "uid")) {
      // The DELETED of the old incarnation never reached us: say both.
      changes.push_back({Change::kDelete, found->second, json()});
      changes.push_back({Change::kAdd, json(), event.object});
      found->second = std::move(event.object);
    } else if (metadataString(found->second, "resourceVersion") !=
               metadataString(event.object, "resourceVersion")) {
      changes.push_back({Change::kUpdate, found->second, event.object});
      found->second = std::move(event.object);
    }
  }
  deliver(changes);
}

void Informer::deliver(const std::vector<Change>& changes) {
  for (const Change& change : changes) {
    switch (change.kind) {
      case Change::kAdd:
        if (handlers_.onAdd) handlers_.onAdd(change.newObject);
        break;
      case Change::kUpdate:
        if (handlers_.onUpdate) handlers_.onUpdate(change.oldObject, change.newObject);
        break;
      case Change::kDelete:
        if (handlers_.onDelete) {
          handlers_.onDelete(change.newObject.is_null() ? change.oldObject : change.newObject);
        }
        break;
    }
  }
}

void Informer::resyncIfDue() {
  if (options_.resyncPeriod <= base::Clock::Duration::zero() || !hasSynced()) return;
  const base::Clock::TimePoint now = clock_.now();
  if (now < nextResync_) return;
  nextResync_ = now + options_.resyncPeriod;
  if (!handlers_.onUpdate) return;
  for (const json& object : list())
    handlers_.onUpdate(object, object);
}

int Informer::watchTimeoutSeconds() {
  int seconds = options_.watchTimeoutSeconds;
  if (options_.resyncPeriod > base::Clock::Duration::zero()) {
    // End the watch by the next resync so a quiet collection is still resynced on time.
    const auto left = std::chrono::ceil<std::chrono::seconds>(nextResync_ - clock_.now());
    seconds = std::clamp(static_cast<int>(std::min<std::int64_t>(left.count(), seconds)), 1,
                         std::max(seconds, 1));
  }
  return seconds;
}

}  // namespace vnetipam::kube
