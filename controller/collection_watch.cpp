#include "controller/collection_watch.h"

#include <utility>

#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::controller {

CollectionWatch::CollectionWatch(kube::Client& client, std::string collectionPath,
                                 CollectionHandlers handlers, kube::ListOptions list)
    : client_(client),
      collectionPath_(std::move(collectionPath)),
      handlers_(std::move(handlers)),
      list_(std::move(list)),
      watch_(client.transport(), client.clock(), client.token(), collectionPath_,
             kube::WatchOptions{.labelSelector = list_.labelSelector,
                                .fieldSelector = list_.fieldSelector,
                                .timeoutSeconds = 300,
                                .allowBookmarks = true},
             kCollectionReconnect) {}

CollectionWatch::~CollectionWatch() { stop(); }

void CollectionWatch::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void CollectionWatch::stop() {
  stop_.cancel();
  if (thread_.joinable()) thread_.join();
}

kube::Result<std::string> CollectionWatch::listPages() {
  handlers_.onListBegin();
  std::string continueToken;
  std::string version;
  do {
    std::string query = fmt::format("?limit={}", list_.limit > 0 ? list_.limit : 500);
    if (!list_.labelSelector.empty()) {
      query += "&labelSelector=" + text::percentEncode(list_.labelSelector);
    }
    if (!list_.fieldSelector.empty()) {
      query += "&fieldSelector=" + text::percentEncode(list_.fieldSelector);
    }
    if (!continueToken.empty()) query += "&continue=" + text::percentEncode(continueToken);
    auto page = client_.get(collectionPath_ + query);
    if (!page) return std::unexpected(std::move(page.error()));
    auto items = page->find("items");
    if (!page->is_object() || (items != page->end() && !items->is_array() && !items->is_null())) {
      return kube::fail(kube::ErrorCode::kBadResponse,
                        fmt::format("GET {}: not a list", collectionPath_));
    }
    const nlohmann::json& metadata = (*page)["metadata"];
    continueToken = metadata.is_object() ? metadata.value("continue", "") : "";
    version = metadata.is_object() ? metadata.value("resourceVersion", "") : "";
    if (items != page->end() && items->is_array()) handlers_.onListPage(*items);
  } while (!continueToken.empty());
  handlers_.onListEnd();
  return version;
}

void CollectionWatch::run() {
  int failures = 0;
  const kube::ReconnectOptions& backoff = kCollectionReconnect;
  while (!stop_.cancelled()) {
    if (failures > 0 && !kube::sleepUnlessCancelled(
                            client_.clock(), kube::reconnectDelay(backoff, failures - 1), stop_)) {
      return;
    }
    auto listed = listPages();
    if (!listed) {
      ++failures;
      if (handlers_.onError) handlers_.onError(listed.error());
      continue;
    }
    std::string version = std::move(*listed);
    synced_.store(true, std::memory_order_release);
    watch_.restart(std::move(version));
    const kube::WatchStep step = watch_.runUntilRelist(
        [this](kube::WatchEvent event) {
          if (event.type == kube::WatchEventType::kBookmark) return;
          handlers_.onEvent(event.type, event.object);
        },
        stop_);
    if (step.outcome == kube::WatchOutcome::kCancelled) return;
    failures = 1;  // a relist right after a relist backs off a little
    if (step.error && handlers_.onError) handlers_.onError(*step.error);
  }
}

}  // namespace vnetipam::controller
