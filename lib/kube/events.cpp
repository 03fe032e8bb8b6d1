#include "lib/kube/events.h"

#include <algorithm>
#include <iostream>
#include <utility>

#include <fmt/format.h>

#include "lib/base/time.h"

namespace vnetipam::kube {

using nlohmann::json;

namespace {

constexpr std::string_view kEventsApi = "/apis/events.k8s.io/v1";
constexpr std::size_t kMaxNoteBytes = 1024;  // the API server refuses longer notes
constexpr std::size_t kMaxReasonChars = 128;

std::string_view typeName(EventType type) {
  return type == EventType::kWarning ? "Warning" : "Normal";
}

// Reasons are machine-readable CamelCase words ("BlockAllocated"), as Kubernetes asks.
bool isCamelCase(std::string_view text) {
  if (text.empty() || text.size() > kMaxReasonChars) return false;
  if (text.front() < 'A' || text.front() > 'Z') return false;
  return std::ranges::all_of(text, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

// Cuts at a UTF-8 character boundary so the result stays valid text.
std::string truncateUtf8(std::string_view text, std::size_t maxBytes) {
  if (text.size() <= maxBytes) return std::string(text);
  std::size_t end = maxBytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U)
    --end;
  return std::string(text.substr(0, end));
}

std::string eventNamespace(const ObjectReference& ref) {
  return ref.ns.empty() ? std::string("default") : ref.ns;
}

}  // namespace

EventRecorder::EventRecorder(Client& client, base::Clock& clock, EventRecorderOptions options)
    : client_(client), clock_(clock), options_(std::move(options)) {
  if (!options_.log) {
    options_.log = [](std::string_view line) { std::cerr << line << std::endl; };
  }
}

EventRecorder::~EventRecorder() { stop(); }

bool EventRecorder::record(const ObjectReference& regarding, EventType type,
                           std::string_view reason, std::string_view action,
                           std::string_view note) {
  if (!isCamelCase(reason)) {
    options_.log(
        fmt::format("event about {} {}: reason \"{}\" refused: must be CamelCase letters "
                    "and digits, at most {} characters",
                    regarding.kind, regarding.name, reason, kMaxReasonChars));
    return false;
  }
  if (action.empty() || action.size() > kMaxReasonChars) {
    options_.log(fmt::format("event about {} {} ({}): action must be 1 to {} characters",
                             regarding.kind, regarding.name, reason, kMaxReasonChars));
    return false;
  }
  Pending event{regarding,
                type,
                std::string(reason),
                std::string(action),
                truncateUtf8(note, kMaxNoteBytes),
                clock_.now(),
                clock_.wallNow()};
  {
    std::lock_guard lock(queueMutex_);
    if (queue_.size() >= options_.maxQueued) {
      options_.log(fmt::format("event about {} {} ({}) dropped: {} events already queued",
                               regarding.kind, regarding.name, reason, queue_.size()));
      return false;
    }
    queue_.push_back(std::move(event));
  }
  queueChanged_.notify_one();
  return true;
}

std::size_t EventRecorder::flush() {
  std::lock_guard writeLock(writeMutex_);
  std::deque<Pending> batch;
  {
    std::lock_guard lock(queueMutex_);
    batch.swap(queue_);
  }
  std::size_t written = 0;
  for (const Pending& event : batch) {
    if (write(event)) ++written;
  }
  return written;
}

EventRecorder::Key EventRecorder::keyOf(const Pending& event) {
  const ObjectReference& ref = event.regarding;
  return Key{fmt::format("{}/{}", ref.apiVersion, ref.kind),
             fmt::format("{}/{}", ref.ns, ref.name),
             ref.uid,
             std::string(typeName(event.type)),
             event.reason,
             event.action,
             event.note};
}

void EventRecorder::forgetStale(base::Clock::TimePoint now) {
  std::erase_if(tracked_, [&](const auto& entry) {
    return now - entry.second.lastSeen > options_.seriesWindow;
  });
  while (tracked_.size() >= options_.maxTracked && !tracked_.empty()) {
    auto oldest = std::ranges::min_element(tracked_, {},
                                           [](const auto& entry) { return entry.second.lastSeen; });
    tracked_.erase(oldest);
  }
}

bool EventRecorder::write(const Pending& event) {
  forgetStale(event.seen);
  const Key key = keyOf(event);
  const auto found = tracked_.find(key);
  if (found == tracked_.end()) return createEvent(event, key);

  // A repeat within the window: count it on the existing Event instead of adding one.
  Tracked& tracked = found->second;
  const std::int64_t count = tracked.count + 1;
  const json patch = {
      {"series",
       {{"count", count}, {"lastObservedTime", base::formatRfc3339Micro(event.seenWall)}}}};
  auto patched = client_.mergePatch(tracked.path, patch);
  if (patched) {
    tracked.count = count;
    tracked.lastSeen = event.seen;
    return true;
  }
  if (patched.error().code == ErrorCode::kNotFound) {
    // The Event expired (the API server keeps them an hour by default): start a new one.
    tracked_.erase(found);
    return createEvent(event, key);
  }
  options_.log(fmt::format("event {} {} ({}) not updated to count {}: {}", event.regarding.kind,
                           event.regarding.name, event.reason, count, patched.error().message));
  return false;
}

bool EventRecorder::createEvent(const Pending& event, const Key& key) {
  const ObjectReference& ref = event.regarding;
  const std::string ns = eventNamespace(ref);
  // Nanoseconds of the wall clock make names unique, as in client-go; bumped when two events of
  // this recorder would share one.
  std::int64_t nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(event.seenWall.time_since_epoch())
          .count();
  nanos = std::max(nanos, lastNameNanos_ + 1);
  lastNameNanos_ = nanos;
  const std::string name = fmt::format("{}.{:x}", ref.name, nanos);

  json regarding = {{"apiVersion", ref.apiVersion}, {"kind", ref.kind}, {"name", ref.name}};
  if (!ref.ns.empty()) regarding["namespace"] = ref.ns;
  if (!ref.uid.empty()) regarding["uid"] = ref.uid;
  const json body = {{"apiVersion", "events.k8s.io/v1"},
                     {"kind", "Event"},
                     {"metadata", {{"name", name}, {"namespace", ns}}},
                     {"eventTime", base::formatRfc3339Micro(event.seenWall)},
                     {"reportingController", options_.reportingController},
                     {"reportingInstance", options_.reportingInstance},
                     {"action", event.action},
                     {"reason", event.reason},
                     {"regarding", regarding},
                     {"note", event.note},
                     {"type", typeName(event.type)}};
  const std::string collection = fmt::format("{}/namespaces/{}/events", kEventsApi, ns);
  auto created = client_.create(collection, body);
  if (!created) {
    // Not retried: a create whose outcome is unknown may have happened, and a lost Event is
    // cheaper than a duplicate or a blocked caller.
    options_.log(fmt::format("event {} {} ({}) not created: {}", ref.kind, ref.name, event.reason,
                             created.error().message));
    return false;
  }
  tracked_.insert_or_assign(
      key,
      Tracked{.path = fmt::format("{}/{}", collection, name), .count = 1, .lastSeen = event.seen});
  return true;
}

void EventRecorder::start() {
  std::lock_guard lock(queueMutex_);
  if (worker_.joinable() || stopping_) return;
  worker_ = std::thread([this] { worker(); });
}

void EventRecorder::stop() {
  {
    std::lock_guard lock(queueMutex_);
    stopping_ = true;
  }
  queueChanged_.notify_all();
  if (worker_.joinable()) worker_.join();
  flush();
}

void EventRecorder::worker() {
  for (;;) {
    {
      std::unique_lock lock(queueMutex_);
      queueChanged_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
    }
    flush();
  }
}

}  // namespace vnetipam::kube
