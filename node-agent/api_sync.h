// Where the agent meets the API server: reading this node's IPBlocks, writing their status.used
// and DataplaneSynced condition, and giving up a block being deleted (removing the agent-drain
// finalizer). Everything here is a thin adapter; decisions live in AllocationStore and BlockKeeper.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/constants.h"
#include "lib/base/clock.h"
#include "lib/kube/client.h"
#include "lib/kube/paths.h"
#include "node-agent/allocation_store.h"
#include "node-agent/dataplane_drift.h"
#include "node-agent/metrics.h"

namespace vnetipam::agent {

using api::kIPBlocksPath;
using kube::kPodsPath;

// The fields of an IPBlock the agent acts on (decoded with api/codec); the error says why for an
// object that does not decode or is not a block of `nodeName` with a valid CIDR.
std::expected<ApiBlock, std::string> apiBlockFromJson(const nlohmann::json& object,
                                                      const std::string& nodeName);

// A block of this node that waits for its agent to give it up: being deleted (deletionTimestamp
// set) and still carrying api::kAgentDrainFinalizer, at index finalizerIndex of its finalizers.
struct DrainTarget {
  std::string name;
  std::string uid;
  std::size_t finalizerIndex = 0;
  bool operator==(const DrainTarget&) const = default;
};
// nullopt for an object that is not such a block (or is not this node's).
std::optional<DrainTarget> drainTargetFromJson(const nlohmann::json& object,
                                               const std::string& nodeName);

// The JSON patch (RFC 6902) that removes agent-drain and nothing else: it first tests that the
// object is the same incarnation (uid) and that the finalizer at the index is agent-drain, so a
// reordered or changed finalizer list, or a block recreated under the name, fails the test (422)
// instead of losing another finalizer.
nlohmann::json removeAgentDrainPatch(const DrainTarget& target);

// Sends removeAgentDrainPatch. A failed test (the object changed) comes back as an error: the
// caller decides again from a fresher object.
kube::Result<void> removeAgentDrain(kube::Client& client, const DrainTarget& target);

// The server-side apply body for one block's status under the agent's field manager: status.used,
// status.allocations (the addresses held, so `kubectl ipam check` can name a leak's owner) and,
// once the agent has checked the block's dataplane, its DataplaneSynced condition. Every apply
// carries all three: with server-side apply a field (or list-map item) the manager owned and
// omits is removed, which is also how an allocation released since the last apply leaves the
// list, and an empty list is left out.
nlohmann::json blockStatusApply(const std::string& name, std::int64_t used,
                                const std::vector<Allocation>& allocations,
                                const std::optional<DataplaneCondition>& dataplane,
                                const std::string& lastTransitionTime);

// Writes status.used, status.allocations and the DataplaneSynced condition of this node's blocks
// with server-side apply under the agent's own field manager (api::kAgentFieldManager), which
// owns only those:
// the controller's phase, nic, capacity and other conditions are untouched (conditions are a list
// map keyed by type). Only blocks whose allocations or condition changed since the last
// successful write are sent, so an idle node makes no API calls. The condition's lastTransitionTime
// is the time its status last changed as this reporter saw it, by the client's clock. Not
// thread-safe: one caller.
class UsageReporter {
 public:
  // The block object as the informer shows it (null when unknown): a DataplaneSynced condition an
  // earlier run wrote keeps its lastTransitionTime when this run finds the same status.
  using BlockLookup = std::function<nlohmann::json(const std::string& name)>;

  UsageReporter(kube::Client& client, AgentMetrics* metrics, BlockLookup existing = {});

  // One batch. `dataplane` holds the latest condition of each block the drift check has looked
  // at; a block it does not hold keeps the condition last written (or none yet). Returns the
  // number of blocks written successfully; failures are logged and retried on the next call.
  std::size_t report(const std::vector<BlockUsage>& usage,
                     const std::map<std::string, DataplaneCondition>& dataplane = {});

 private:
  struct Written {
    std::int64_t used = 0;
    std::vector<Allocation> allocations;
    std::optional<DataplaneCondition> dataplane;
    std::string lastTransitionTime;
    bool operator==(const Written&) const = default;
  };

  kube::Client& client_;
  AgentMetrics* metrics_;
  BlockLookup existing_;
  std::map<std::string, Written, std::less<>> written_;
  // The condition of each block as last decided, kept across failed writes so a retry carries it.
  std::map<std::string, Written, std::less<>> wanted_;
};

}  // namespace vnetipam::agent
