#include "node-agent/api_sync.h"

#include <algorithm>
#include <set>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/codec.h"
#include "api/conditions.h"
#include "api/constants.h"
#include "lib/base/time.h"

namespace vnetipam::agent {

using nlohmann::json;

std::expected<ApiBlock, std::string> apiBlockFromJson(const json& object,
                                                      const std::string& nodeName) {
  auto decoded = api::ipBlockFromJson(object);
  if (!decoded) return std::unexpected(decoded.error().message);
  const api::IPBlock& block = *decoded;
  const std::string& name = block.metadata.name;
  if (name.empty()) return std::unexpected(std::string("IPBlock without metadata.name"));
  if (block.spec.nodeName != nodeName) {
    return std::unexpected(fmt::format("IPBlock {}: spec.nodeName is \"{}\", not this node {}",
                                       name, block.spec.nodeName, nodeName));
  }
  auto cidr = ipam::Prefix::parse(block.spec.cidr);
  if (!cidr) {
    return std::unexpected(fmt::format("IPBlock {}: spec.cidr: {}", name, cidr.error().message));
  }
  const bool invalid = std::ranges::any_of(block.status.conditions, [](const api::Condition& c) {
    return c.type == api::kConditionInvalid && c.status == "True";
  });
  return ApiBlock{.name = name,
                  .cidr = *cidr,
                  .ready = block.status.phase == api::BlockPhase::kReady,
                  .deleting = block.metadata.deletionTimestamp.has_value() ||
                              block.status.phase == api::BlockPhase::kReleasing,
                  .invalid = invalid};
}

std::optional<DrainTarget> drainTargetFromJson(const json& object, const std::string& nodeName) {
  auto decoded = api::ipBlockFromJson(object);
  if (!decoded) return std::nullopt;
  const api::ObjectMeta& meta = decoded->metadata;
  if (meta.name.empty() || decoded->spec.nodeName != nodeName || !meta.deletionTimestamp) {
    return std::nullopt;
  }
  const auto it = std::ranges::find(meta.finalizers, api::kAgentDrainFinalizer);
  if (it == meta.finalizers.end()) return std::nullopt;
  return DrainTarget{.name = meta.name,
                     .uid = meta.uid,
                     .finalizerIndex = static_cast<std::size_t>(it - meta.finalizers.begin())};
}

json removeAgentDrainPatch(const DrainTarget& target) {
  const std::string entry = fmt::format("/metadata/finalizers/{}", target.finalizerIndex);
  json patch = json::array();
  if (!target.uid.empty()) {
    patch.push_back({{"op", "test"}, {"path", "/metadata/uid"}, {"value", target.uid}});
  }
  patch.push_back({{"op", "test"}, {"path", entry}, {"value", api::kAgentDrainFinalizer}});
  patch.push_back({{"op", "remove"}, {"path", entry}});
  return patch;
}

kube::Result<void> removeAgentDrain(kube::Client& client, const DrainTarget& target) {
  http::HttpRequest request{
      .method = "PATCH",
      .target = fmt::format("{}/{}", kIPBlocksPath, target.name),
      .headers = {{"Content-Type", "application/json-patch+json"}, {"Accept", "application/json"}},
      .body = removeAgentDrainPatch(target).dump()};
  // Safe to repeat after an unknown outcome: a repeat of a patch that was applied fails its test.
  auto response = client.call(request, /*idempotent=*/true);
  if (!response) return std::unexpected(std::move(response.error()));
  if (response->status < 200 || response->status > 299) {
    return std::unexpected(kube::errorFromResponse(request, *response));
  }
  return {};
}

// The agent publishes what its socket protocol accepted: the CRD's bounds are the protocol's.
static_assert(api::kMaxContainerIDLength == kMaxContainerIDBytes);
static_assert(api::kMaxIfNameLength == kMaxIfNameBytes);
static_assert(api::kMaxPodNamespaceLength == kMaxPodNamespaceBytes);
static_assert(api::kMaxPodNameLength == kMaxPodNameBytes);
static_assert(api::kMaxPodUIDLength == kMaxPodUIDBytes);
static_assert(api::kMaxNetworkNameLength == kMaxNetworkBytes);

json blockStatusApply(const std::string& name, std::int64_t used,
                      const std::vector<Allocation>& allocations,
                      const std::optional<DataplaneCondition>& dataplane,
                      const std::string& lastTransitionTime) {
  json status{{"used", used}};
  if (!allocations.empty()) {
    json list = json::array();
    for (const Allocation& a : allocations) {
      list.push_back(api::toJson(api::IPAllocation{.address = a.address.toString(),
                                                   .owner = a.owner,
                                                   .podNamespace = a.podNamespace,
                                                   .podName = a.podName,
                                                   .podUID = a.podUID,
                                                   .network = a.network}));
    }
    status["allocations"] = std::move(list);
  }
  if (dataplane) {
    status["conditions"] = json::array({{{"type", api::kConditionDataplaneSynced},
                                         {"status", dataplane->status},
                                         {"reason", dataplane->reason},
                                         {"message", dataplane->message},
                                         {"lastTransitionTime", lastTransitionTime}}});
  }
  return json{{"apiVersion", api::kApiVersion},
              {"kind", api::kIPBlockKind},
              {"metadata", {{"name", name}}},
              {"status", std::move(status)}};
}

UsageReporter::UsageReporter(kube::Client& client, AgentMetrics* metrics, BlockLookup existing)
    : client_(client), metrics_(metrics), existing_(std::move(existing)) {}

std::size_t UsageReporter::report(const std::vector<BlockUsage>& usage,
                                  const std::map<std::string, DataplaneCondition>& dataplane) {
  std::size_t written = 0;
  std::set<std::string, std::less<>> seen;
  for (const BlockUsage& block : usage) {
    if (!block.inApi) continue;
    seen.insert(block.name);
    Written& want = wanted_[block.name];
    want.used = block.used;
    want.allocations = block.allocations;
    if (auto it = dataplane.find(block.name); it != dataplane.end()) {
      // The condition as last decided by this run; before its first decision, as an earlier run
      // wrote it (decoded with the codec, as every block the agent serves was).
      std::optional<api::Condition> previous;
      if (want.dataplane) {
        previous = api::Condition{.type = std::string(api::kConditionDataplaneSynced),
                                  .status = want.dataplane->status,
                                  .reason = {},
                                  .message = {},
                                  .lastTransitionTime = want.lastTransitionTime,
                                  .observedGeneration = 0,
                                  .extra = json::object()};
      } else if (existing_) {
        if (auto stored = api::ipBlockFromJson(existing_(block.name))) {
          const auto& conditions = stored->status.conditions;
          const auto c =
              std::ranges::find(conditions, api::kConditionDataplaneSynced, &api::Condition::type);
          if (c != conditions.end()) previous = *c;
        }
      }
      want.lastTransitionTime =
          api::transitionTime(previous ? &*previous : nullptr, it->second.status,
                              base::formatRfc3339(client_.clock().wallNow()));
      want.dataplane = it->second;
    }
    auto last = written_.find(block.name);
    if (last != written_.end() && last->second == want) continue;
    auto applied =
        client_.applyStatus(fmt::format("{}/{}", kIPBlocksPath, block.name),
                            blockStatusApply(block.name, want.used, want.allocations,
                                             want.dataplane, want.lastTransitionTime),
                            {.fieldManager = std::string(api::kAgentFieldManager), .force = true});
    if (metrics_) metrics_->usageReported(applied.has_value());
    if (!applied) {
      // Forget what we wrote so the next batch tries again.
      written_.erase(block.name);
      if (applied.error().code != kube::ErrorCode::kNotFound) {
        spdlog::warn("IPBlock {}: writing status.used={}: {}{}", block.name, block.used,
                     applied.error().message,
                     want.dataplane ? fmt::format(" (with {}={})", api::kConditionDataplaneSynced,
                                                  want.dataplane->status)
                                    : std::string());
      }
      continue;
    }
    written_[block.name] = want;
    ++written;
  }
  // Blocks that left: forget them, so a block recreated under the same name is written again.
  std::erase_if(written_, [&](const auto& entry) { return !seen.contains(entry.first); });
  std::erase_if(wanted_, [&](const auto& entry) { return !seen.contains(entry.first); });
  return written;
}

}  // namespace vnetipam::agent
