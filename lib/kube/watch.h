// Watch streams: one JSON event per line, `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
// "object": ...}`. WatchDecoder is the pure part (lines split anywhere across chunks, the
// resourceVersion to resume from, ERROR 410 meaning "relist"); watch() runs one watch call.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lib/kube/client.h"
#include "lib/kube/error.h"
#include "lib/kube/http_transport.h"

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
Result<std::string> watch(HttpTransport& transport, const TokenProvider& token,
                          std::string_view collectionPath, const WatchOptions& options,
                          const std::function<void(WatchEvent)>& onEvent, CancelSignal& cancel);

}  // namespace vnetipam::kube
