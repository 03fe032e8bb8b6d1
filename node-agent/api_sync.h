// Where the agent meets the API server: reading this node's IPBlocks, writing their status.used,
// and giving up a block being deleted (removing the agent-drain finalizer). Everything here is a
// thin adapter; decisions live in AllocationStore and BlockKeeper.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/kube/client.h"
#include "node-agent/allocation_store.h"
#include "node-agent/metrics.h"

namespace vnetipam::agent {

inline constexpr std::string_view kIPBlocksPath = "/apis/vnetipam.io/v1alpha1/ipblocks";
inline constexpr std::string_view kPodsPath = "/api/v1/pods";

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

// Writes status.used of this node's blocks with server-side apply under the agent's own field
// manager (api::kAgentFieldManager), which owns only that field: the controller's phase, nic,
// capacity and conditions are untouched. Only blocks whose count changed since the last
// successful write are sent, so an idle node makes no API calls. Not thread-safe: one caller.
class UsageReporter {
 public:
  UsageReporter(kube::Client& client, AgentMetrics* metrics) : client_(client), metrics_(metrics) {}

  // One batch. Returns the number of blocks written successfully; failures are logged and
  // retried on the next call.
  std::size_t report(const std::vector<BlockUsage>& usage);

 private:
  kube::Client& client_;
  AgentMetrics* metrics_;
  std::map<std::string, std::int64_t, std::less<>> written_;
};

}  // namespace vnetipam::agent
