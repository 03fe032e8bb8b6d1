// An informer: a local copy of one collection (optionally narrowed by label and field selectors),
// kept current by list + watch, with add/update/delete handlers and a periodic resync — what
// client-go calls a shared informer, for one consumer.
//
// What a caller may rely on:
// - Handlers see each change exactly once: onAdd for an object new to the cache, onUpdate when its
//   resourceVersion changed, onDelete when it left. Watch events that repeat what the cache holds
//   (same resourceVersion) are dropped. A relist (at start, after 410 Gone, an ERROR event or any
//   other non-resumable watch failure) compares the fresh list with the cache and emits exactly
//   the differences: onDelete (with the last state the cache held) for an object gone, onUpdate
//   for one changed, onAdd for one new; an object recreated under the same name (new uid) is
//   onDelete of the old then onAdd of the new.
// - A broken connection (API server restart, timeout, 5xx, 429) resumes the watch from the last
//   resourceVersion seen, BOOKMARKs included, after a jittered exponential backoff: nothing is
//   missed and nothing is repeated.
// - Every resyncPeriod (0: never) onUpdate(obj, obj) is called for every cached object, so
//   handlers can re-drive work that failed earlier.
// - The cache is updated before the handler runs, so a handler sees its change in get()/list().
//   Handlers run on the informer's thread (or the caller of step()), one at a time, without any
//   informer lock held: they may call get() and list().
// - get(), list(), hasSynced() are thread-safe. step() must not run concurrently with itself or
//   with the thread start() begins.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"
#include "lib/http/transport.h"
#include "lib/kube/client.h"
#include "lib/kube/error.h"
#include "lib/kube/watch.h"

namespace vnetipam::kube {

struct InformerHandlers {
  std::function<void(const nlohmann::json& object)> onAdd;
  std::function<void(const nlohmann::json& oldObject, const nlohmann::json& newObject)> onUpdate;
  std::function<void(const nlohmann::json& lastKnown)> onDelete;
};

struct InformerOptions {
  ListOptions list;  // labelSelector / fieldSelector apply to the list and the watch alike
  base::Clock::Duration resyncPeriod{0};
  int watchTimeoutSeconds = 300;  // the transport's stream timeout must be longer
  ReconnectOptions reconnect;     // backoff of watch reconnects and failed lists
  // Every failure (a list, a watch connection, a watch that needs a relist), for logs and tests.
  // Runs on the informer's thread.
  std::function<void(const Error&)> onError;
};

class Informer {
 public:
  // `client` must outlive the informer; its transport, clock and token are used for the watch.
  Informer(Client& client, std::string collectionPath, InformerOptions options,
           InformerHandlers handlers);
  ~Informer();  // stop()s
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // One unit of work, the loop start() runs: a list (waiting first for the backoff owed when
  // lists or relists keep failing) when the cache needs one, else one watch call (after any
  // reconnect backoff) with a resync whenever it is due. Returns the failure that ended the
  // step, if any; the next step knows what to do about it. kCancelled once `cancel` fires.
  Result<void> step(http::CancelSignal& cancel);

  // Runs step() on a thread of its own until stop(). At most once per informer.
  void start();
  // Cancels the in-flight watch or backoff wait and joins the thread. An in-flight list (with
  // the client's own retries) finishes first. Idempotent.
  void stop();

  // True once the first list has been loaded into the cache (and its onAdds delivered).
  bool hasSynced() const { return synced_.load(std::memory_order_acquire); }
  // The cached object by key: "namespace/name", or "name" for a cluster-scoped object.
  std::optional<nlohmann::json> get(std::string_view key) const;
  // Every cached object, ordered by key.
  std::vector<nlohmann::json> list() const;
  // The key the cache files `object` under.
  static std::string keyOf(const nlohmann::json& object);

 private:
  struct Change {
    enum Kind { kAdd, kUpdate, kDelete } kind;
    nlohmann::json oldObject;
    nlohmann::json newObject;
  };

  Result<void> listAndReplace(http::CancelSignal& cancel);
  void applyEvent(WatchEvent event);
  void resyncIfDue();
  int watchTimeoutSeconds();
  void deliver(const std::vector<Change>& changes);
  void report(const Error& error);

  Client& client_;
  base::Clock& clock_;
  std::string collectionPath_;
  InformerOptions options_;
  InformerHandlers handlers_;
  ResumableWatch watch_;

  // Only the stepping thread touches these.
  bool needList_ = true;
  int listFailures_ = 0;
  int relistsInARow_ = 0;
  base::Clock::TimePoint nextResync_{};

  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json, std::less<>> cache_;  // guarded by mutex_
  std::atomic<bool> synced_{false};

  http::CancelSignal stop_;
  std::thread thread_;
};

}  // namespace vnetipam::kube
