// Kubernetes Events (events.k8s.io/v1): what a controller tells a human about an object, shown by
// `kubectl describe` and `kubectl get events`.
//
// What a caller may rely on:
// - record() never blocks on the API server and never throws: it validates and queues. A worker
//   (start()) or an explicit flush() writes the queue. A failed write is logged and dropped —
//   Events are best-effort, never a reason to stop the work they describe.
// - Repeats are aggregated like client-go's events.k8s.io recorder: a second occurrence of the same
//   event (same object, type, reason, action and note) within `seriesWindow` of the last one does
//   not create a new Event; it updates the existing one's series {count, lastObservedTime}. Unlike
//   client-go the note is part of the key, so two different messages never fold into one.
// - Events about cluster-scoped objects (an empty namespace in the reference) are written to the
//   "default" namespace, as client-go does.
// - The Event name is "<object name>.<hex nanoseconds>", unique per recorder.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"
#include "lib/kube/client.h"

namespace vnetipam::kube {

// Receives one readable line per failure. Must be thread-safe.
using LogSink = std::function<void(std::string_view)>;

struct ObjectReference {
  std::string apiVersion;  // "vnetipam.io/v1alpha1"
  std::string kind;        // "IPBlock"
  std::string name;
  std::string ns;  // empty: cluster-scoped
  std::string uid;
};

enum class EventType { kNormal, kWarning };

struct EventRecorderOptions {
  std::string reportingController;  // required, e.g. "vnetipam.io/controller"
  std::string reportingInstance;    // required, e.g. the pod name
  base::Clock::Duration seriesWindow = std::chrono::minutes(6);  // client-go's series window
  std::size_t maxQueued = 1000;   // record() drops (and logs) beyond this many unwritten events
  std::size_t maxTracked = 4096;  // events remembered for aggregation; the oldest go first
  LogSink log;                    // default: stderr
};

class EventRecorder {
 public:
  // `client` and `clock` must outlive the recorder. The clock's calendar time is written as
  // eventTime and lastObservedTime.
  EventRecorder(Client& client, base::Clock& clock, EventRecorderOptions options);
  ~EventRecorder();  // stop()
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // Queues an event about `regarding`. `reason` is CamelCase ("BlockAllocated", at most 128
  // characters), `action` what was done or failed ("Allocate", at most 128), `note` a readable
  // sentence (cut to 1024 bytes, the API's limit). Returns false, logging why, when the event is
  // refused (bad reason or action, queue full). Thread-safe; never waits on the API server.
  bool record(const ObjectReference& regarding, EventType type, std::string_view reason,
              std::string_view action, std::string_view note);

  // Writes everything queued so far on the calling thread; returns how many API writes succeeded.
  // Thread-safe (writes are serialised).
  std::size_t flush();

  // A background thread that flushes whenever something is queued. stop() writes what is left,
  // then joins. Both idempotent.
  void start();
  void stop();

 private:
  struct Pending {
    ObjectReference regarding;
    EventType type;
    std::string reason;
    std::string action;
    std::string note;
    base::Clock::TimePoint seen;
    std::chrono::system_clock::time_point seenWall;
  };
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string,
                         std::string, std::string>;
  struct Tracked {
    std::string path;  // the Event's object path
    std::int64_t count = 1;
    base::Clock::TimePoint lastSeen;
  };

  static Key keyOf(const Pending& event);
  bool write(const Pending& event);
  bool createEvent(const Pending& event, const Key& key);
  void forgetStale(base::Clock::TimePoint now);
  void worker();

  Client& client_;
  base::Clock& clock_;
  EventRecorderOptions options_;

  std::mutex queueMutex_;
  std::condition_variable queueChanged_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread worker_;

  std::mutex writeMutex_;  // serialises flush(); guards tracked_ and lastNameNanos_
  std::map<Key, Tracked> tracked_;
  std::int64_t lastNameNanos_ = 0;
};

}  // namespace vnetipam::kube
