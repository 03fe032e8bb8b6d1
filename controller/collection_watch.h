// List + watch of one collection that hands every object to the caller and keeps nothing itself.
//
// lib/kube's Informer caches whole JSON objects; at 5,000 nodes (managedFields and all) that alone
// is far above the controller's memory budget. The controller instead keeps a few fields per
// object (controller/controller.h), so it needs the events, not a cache: the onList* handlers get
// every item of each (re)list (the caller replaces what it holds, dropping what is not in the
// list), onEvent() every ADDED/MODIFIED/DELETED after it. Resumes from the last resourceVersion
// across broken connections (ResumableWatch); relists on 410 or a broken stream.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "lib/http/transport.h"
#include "lib/kube/client.h"
#include "lib/kube/watch.h"

namespace vnetipam::controller {

// Reconnects and relists back off from 0.5 s to at most 4 s (lib/kube's default cap is 30 s): after
// an API-server outage of any length, the controller's view is current again within a few seconds
// of the server's return, and a reconnect every 2-4 s per collection (three of them) costs a
// server that is down nothing.
inline const kube::ReconnectOptions kCollectionReconnect{
    .initialBackoff = std::chrono::milliseconds(500),
    .maxBackoff = std::chrono::seconds(4),
    .random01 = {}};

struct CollectionHandlers {
  // A fresh list, page by page (so a 5,000-object list is never in memory at once): begin, the
  // items of each page, end. Only onListEnd may conclude that an object not listed is gone; a
  // list that fails part-way starts again with onListBegin.
  std::function<void()> onListBegin;
  std::function<void(nlohmann::json& items)> onListPage;
  std::function<void()> onListEnd;
  std::function<void(kube::WatchEventType type, nlohmann::json& object)> onEvent;
  std::function<void(const kube::Error&)> onError;
};

class CollectionWatch {
 public:
  // `client` must outlive this.
  CollectionWatch(kube::Client& client, std::string collectionPath, CollectionHandlers handlers,
                  kube::ListOptions list = {});
  ~CollectionWatch();
  CollectionWatch(const CollectionWatch&) = delete;
  CollectionWatch& operator=(const CollectionWatch&) = delete;

  void start();
  void stop();
  // True once the first list was handed to onList.
  bool hasSynced() const { return synced_.load(std::memory_order_acquire); }

 private:
  void run();
  // One paginated list through the handlers; returns the list's resourceVersion.
  kube::Result<std::string> listPages();

  kube::Client& client_;
  std::string collectionPath_;
  CollectionHandlers handlers_;
  kube::ListOptions list_;
  kube::ResumableWatch watch_;
  http::CancelSignal stop_;
  std::atomic<bool> synced_{false};
  std::thread thread_;
};

}  // namespace vnetipam::controller
