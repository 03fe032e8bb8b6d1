// Watch streams: one JSON event per line, `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
// "object": ...}`. WatchDecoder is the pure part (lines split anywhere across chunks, the
// resourceVersion to resume from, ERROR 410 meaning "relist"); watch() runs one watch call;
// ResumableWatch chains watch calls into one watch that survives broken connections.
//
// A body is decoded as it arrives, never buffered whole. With cpprestsdk the stream's timeout is
// an inactivity timer, so the transport's stream timeout must exceed timeoutSeconds (see
// cpprest_transport.h) or a quiet watch is cut and reconnected every time it fires.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"
#include "lib/http/transport.h"
#include "lib/kube/client.h"
#include "lib/kube/error.h"

namespace vnetipam::kube {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark };

struct WatchEvent {
  WatchEventType type;
  nlohmann::json object;
};

// Not thread-safe: one decoder per stream.
class WatchDecoder {
 public:
  // Feeds a piece of the body. Calls onEvent for every complete line (BOOKMARKs included, so a
  // caller may persist the version). Stops at the first error: a line that is not an event
  // (kBadResponse), or an ERROR event (its Status code and reason; 410 is kGone: relist).
  Result<void> feed(std::string_view chunk, const std::function<void(WatchEvent)>& onEvent);

  // The resourceVersion of the last event seen (ADDED/MODIFIED/DELETED/BOOKMARK): where to resume.
  const std::string& resourceVersion() const { return resourceVersion_; }
  void setResourceVersion(std::string rv) { resourceVersion_ = std::move(rv); }
  // True when part of a line is buffered (the stream ended mid-event).
  bool hasPartialLine() const { return !pending_.empty(); }

 private:
  Result<void> decodeLine(std::string_view line, const std::function<void(WatchEvent)>& onEvent);

  std::string pending_;
  std::string resourceVersion_;
};

struct WatchOptions {
  std::string resourceVersion;  // resume point; "" starts from "now" (and sends initial ADDEDs)
  std::string labelSelector;
  std::string fieldSelector;
  int timeoutSeconds = 300;  // the transport's stream timeout must be longer
  bool allowBookmarks = true;
};

// One watch call: returns the resourceVersion to resume from when the server ends the stream
// normally (timeoutSeconds), kGone when the caller must relist, kCancelled on cancel. The caller
// loops, reconnecting from the returned version. Rate limiting and retries are the caller's.
Result<std::string> watch(http::HttpTransport& transport, const TokenProvider& token,
                          std::string_view collectionPath, const WatchOptions& options,
                          const std::function<void(WatchEvent)>& onEvent,
                          http::CancelSignal& cancel);

// Like watch(), but the decoder is the caller's, so the resourceVersion of the last event is
// known even when the stream breaks part-way. Returns {} when the server ends the stream.
Result<void> watchInto(WatchDecoder& decoder, http::HttpTransport& transport,
                       const TokenProvider& token, std::string_view collectionPath,
                       const WatchOptions& options, const std::function<void(WatchEvent)>& onEvent,
                       http::CancelSignal& cancel);

struct ReconnectOptions {
  std::chrono::milliseconds initialBackoff{500};
  std::chrono::milliseconds maxBackoff{30'000};
  std::function<double()> random01;  // jitter source in [0, 1); default: a seeded PRNG
};

// Equal-jitter exponential backoff: the delay before retry number `attempt` (0-based) is
// min(max, initial * 2^attempt) times a factor in [0.5, 1).
base::Clock::Duration reconnectDelay(const ReconnectOptions& options, int attempt);

// Waits `delay` on `clock` in slices of at most 100 ms, so that a real clock notices `cancel`
// promptly. Returns false when cancelled.
bool sleepUnlessCancelled(base::Clock& clock, base::Clock::Duration delay,
                          http::CancelSignal& cancel);

// What the caller of ResumableWatch::next() does next.
enum class WatchOutcome {
  kResume,     // call next() again: it resumes from resourceVersion() (after a backoff if failing)
  kRelist,     // the resume point is unusable: list again, then restart() from the list's version
  kCancelled,  // the http::CancelSignal fired
};

struct WatchStep {
  WatchOutcome outcome;
  std::optional<Error> error;  // why the connection ended, unless the server ended it normally
};

// One long watch made of watch calls, each resuming from the resourceVersion of the last event
// (BOOKMARKs included) seen by any previous one, so no event is lost or repeated between them.
//
// - A transport failure (connection refused or broken, stream timeout), a 5xx or a 429 is
//   kResume: the next call first waits reconnectDelay(failures in a row). A call that delivered
//   an event, or that the server ended after at least a second, resets the count.
// - 410 Gone, an ERROR event of any code, any other non-2xx status, or a body that is not a
//   watch stream is kRelist: the resume point cannot be trusted, so the caller lists.
// Not thread-safe; onEvent runs on the calling thread.
class ResumableWatch {
 public:
  // `transport` and `clock` must outlive the watch. options.resourceVersion is the start point.
  ResumableWatch(http::HttpTransport& transport, base::Clock& clock, TokenProvider token,
                 std::string collectionPath, WatchOptions options, ReconnectOptions reconnect = {});

  // Waits any backoff owed, then runs one watch call until it ends. Cancelling `cancel` ends the
  // wait and the call promptly.
  WatchStep next(const std::function<void(WatchEvent)>& onEvent, http::CancelSignal& cancel);

  // Calls next() until it says kRelist or kCancelled, and returns that step.
  WatchStep runUntilRelist(const std::function<void(WatchEvent)>& onEvent,
                           http::CancelSignal& cancel);

  // Starts over from `resourceVersion` (a fresh list's) with no backoff owed.
  void restart(std::string resourceVersion);

  const std::string& resourceVersion() const { return resourceVersion_; }
  int failuresInARow() const { return failures_; }
  // The options of the next call; timeoutSeconds may be changed between calls.
  WatchOptions& options() { return options_; }

 private:
  http::HttpTransport& transport_;
  base::Clock& clock_;
  TokenProvider token_;
  std::string collectionPath_;
  WatchOptions options_;
  ReconnectOptions reconnect_;
  std::string resourceVersion_;
  int failures_ = 0;
};

}  // namespace vnetipam::kube
