// `kubectl ipam release --from-report FILE`: the pure half. A `check -o json` report names leaked
// allocations (Finding::leak, as "allocation"); each is asked of its node's agent through the
// block's annotation api::kReleaseAnnotation, and the agent answers by releasing (the address
// leaves status.allocations) or by a Warning Event ReleaseRefused on the block whose note starts
// with api::describe(request). Nothing here does I/O: release_run.h writes and waits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/types.h"
#include "kubectl-ipam/report.h"
#include "kubectl-ipam/snapshot.h"
#include "lib/base/error.h"

namespace vnetipam::kubectl_ipam {

// The leaked allocations of a `check -o json` report: every finding with an "allocation". An
// error for a text that is not such a report, or an allocation that lacks what release needs.
base::Result<std::vector<LeakedAllocation>> leaksFromReport(const nlohmann::json& report);

// The requests for one block, which its node's agent answers.
struct BlockRequests {
  std::string block;
  std::string node;
  std::vector<api::ReleaseRequest> requests;
  std::vector<std::string> pods;  // ns/name each request's allocation was made for (same order)
};

// By block (sorted by name), each request once, in address order. An error when one block would
// carry more than api::kMaxReleaseRequests requests (run check and release again after these).
base::Result<std::vector<BlockRequests>> planRelease(const std::vector<LeakedAllocation>& leaks);

// What --dry-run prints: one line per request, then a count.
std::string renderPlan(const std::vector<BlockRequests>& plan);

// The annotation's requests with `add` added (those not there yet, at the end) or `remove` taken
// out; other writers' entries stay as they are.
std::vector<api::ReleaseRequest> withRequests(std::vector<api::ReleaseRequest> existing,
                                              const std::vector<api::ReleaseRequest>& add);
std::vector<api::ReleaseRequest> withoutRequests(std::vector<api::ReleaseRequest> existing,
                                                 const std::vector<api::ReleaseRequest>& remove);

enum class Outcome { kPending, kReleased, kRefused, kTimedOut };

struct RequestOutcome {
  std::string block;
  std::string node;
  api::ReleaseRequest request;
  bool heldAtStart = false;  // the owner held the address when the annotation was written
  Outcome outcome = Outcome::kPending;
  std::string why;  // the agent's words, when it said any
};

// Whether the block (nullopt: deleted) shows the address held by exactly the request's owner in
// status.allocations; nullopt when its agent does not publish them (fewer than status.used).
std::optional<bool> holds(const std::optional<api::IPBlock>& block,
                          const api::ReleaseRequest& request);

// One look at a request: released once the owner that held the address when the annotation was
// written (`heldAtStart`) no longer holds it; refused when an Event ReleaseRefused about the
// block, seen at or after `since` (seconds since the epoch, the server's time of the annotation
// write), names the request (an owner that did not hold the address is always refused so); an
// AddressReleased Event naming it also counts as released, and its words become the why.
Outcome judge(const std::optional<api::IPBlock>& block, const api::ReleaseRequest& request,
              bool heldAtStart, const std::vector<EventInfo>& blockEvents, std::int64_t since,
              std::string& why);

// One line per request ("released", "refused", "timed out"), then a summary line.
std::string renderOutcomes(const std::vector<RequestOutcome>& outcomes);
// Every request released.
bool allReleased(const std::vector<RequestOutcome>& outcomes);

}  // namespace vnetipam::kubectl_ipam
