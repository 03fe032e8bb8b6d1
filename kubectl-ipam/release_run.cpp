#include "kubectl-ipam/release_run.h"

#include <cstdio>
#include <functional>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "api/codec.h"
#include "api/constants.h"
#include "kubectl-ipam/fetch.h"
#include "kubectl-ipam/release.h"
#include "lib/kube/paths.h"

namespace vnetipam::kubectl_ipam {

using nlohmann::json;

namespace {

constexpr int kConflictRetries = 5;

int fail(const std::string& message) {
  std::fprintf(stderr, "kubectl-ipam: %s\n", message.c_str());
  return 2;
}

void print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

std::string blockPath(const std::string& block) {
  return fmt::format("{}/{}", api::kIPBlocksPath, block);
}

// The latest managedFields time of an object: the server's time of the write that returned it.
std::int64_t writeTime(const json& object) {
  std::int64_t latest = 0;
  const auto fields = object.find("metadata");
  if (fields == object.end() || !fields->contains("managedFields")) return latest;
  for (const auto& entry : (*fields)["managedFields"]) {
    if (!entry.is_object() || !entry.contains("time") || !entry["time"].is_string()) continue;
    latest = std::max(latest, parseTime(entry["time"].get<std::string>()).value_or(0));
  }
  return latest;
}

// Rewrites the block's annotation with `edit` applied to its requests; returns the block as the
// server answered, or nullopt when the block is gone. A conflict (someone wrote meanwhile)
// re-reads and tries again.
kube::Result<std::optional<json>> editAnnotation(
    kube::Client& client, const std::string& block,
    const std::function<std::vector<api::ReleaseRequest>(std::vector<api::ReleaseRequest>)>& edit) {
  for (int attempt = 0;; ++attempt) {
    auto current = client.get(blockPath(block));
    if (!current) {
      if (current.error().code == kube::ErrorCode::kNotFound) return std::optional<json>();
      return std::unexpected(std::move(current.error()));
    }
    auto decoded = api::ipBlockFromJson(*current);
    if (!decoded) {
      return std::unexpected(kube::Error{kube::ErrorCode::kBadResponse, decoded.error().message});
    }
    std::vector<api::ReleaseRequest> existing;
    const auto& annotations = decoded->metadata.annotations;
    if (auto it = annotations.find(std::string(api::kReleaseAnnotation)); it != annotations.end()) {
      // Entries that do not decode are another writer's mistake: the agent ignores the whole
      // value, and so would this run's entries; they are replaced.
      if (auto parsed = api::releaseRequestsFromAnnotation(it->second)) existing = *parsed;
    }
    const auto wanted = edit(existing);
    json value = wanted.empty() ? json(nullptr) : json(api::toAnnotation(wanted));
    const json patch{{"metadata",
                      {{"resourceVersion", decoded->metadata.resourceVersion},
                       {"annotations", {{api::kReleaseAnnotation, value}}}}}};
    auto patched = client.mergePatch(blockPath(block), patch);
    if (patched) return std::optional<json>(std::move(*patched));
    if (patched.error().code == kube::ErrorCode::kNotFound) return std::optional<json>();
    if (patched.error().code != kube::ErrorCode::kConflict || attempt >= kConflictRetries) {
      return std::unexpected(std::move(patched.error()));
    }
  }
}

}  // namespace

int runRelease(kube::Client& client, const Args& args, const ReleaseIo& io) {
  const json report = json::parse(io.reportText, nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded()) return fail(args.fromReport + ": not JSON");
  auto leaks = leaksFromReport(report);
  if (!leaks) return fail(args.fromReport + ": " + leaks.error().message);
  auto plan = planRelease(*leaks);
  if (!plan) return fail(args.fromReport + ": " + plan.error().message);
  if (args.dryRun) {
    print(renderPlan(*plan));
    return 0;
  }
  if (plan->empty()) {
    print(renderPlan(*plan));
    return 0;
  }

  std::vector<RequestOutcome> outcomes;
  std::map<std::string, std::int64_t> since;  // block -> server time of the annotation write
  for (const auto& b : *plan) {
    auto written = editAnnotation(client, b.block, [&](auto existing) {
      return withRequests(std::move(existing), b.requests);
    });
    if (!written) return fail(fmt::format("IPBlock {}: {}", b.block, written.error().message));
    since[b.block] = *written ? writeTime(**written) : 0;
    std::optional<api::IPBlock> asWritten;
    if (*written) {
      if (auto decoded = api::ipBlockFromJson(**written)) asWritten = std::move(*decoded);
    }
    for (const auto& r : b.requests) {
      outcomes.push_back({.block = b.block,
                          .node = b.node,
                          .request = r,
                          .heldAtStart = holds(asWritten, r).value_or(false)});
    }
    print(fmt::format("asked the agent on node {} to release {} address(es) of block {}\n", b.node,
                      b.requests.size(), b.block));
  }

  base::Clock& clock = client.clock();
  const auto deadline = clock.now() + std::chrono::seconds(args.timeoutSeconds);
  for (;;) {
    bool pending = false;
    for (const auto& b : *plan) {
      std::optional<api::IPBlock> block;
      auto got = client.get(blockPath(b.block));
      if (got) {
        auto decoded = api::ipBlockFromJson(*got);
        if (!decoded) return fail(decoded.error().message);
        block = std::move(*decoded);
      } else if (got.error().code != kube::ErrorCode::kNotFound) {
        return fail(fmt::format("IPBlock {}: {}", b.block, got.error().message));
      }
      // The agent's answers: Events about the block, in any namespace (cluster-scoped object).
      auto items =
          listBounded(client, kube::kEventsPath,
                      {.fieldSelector = fmt::format("involvedObject.kind={},involvedObject.name={}",
                                                    api::kIPBlockKind, b.block)});
      if (!items)
        return fail(fmt::format("Events of IPBlock {}: {}", b.block, items.error().message));
      std::vector<EventInfo> events;
      for (const auto& item : *items) {
        if (auto e = eventFromJson(item)) events.push_back(std::move(*e));
      }
      for (auto& o : outcomes) {
        if (o.block != b.block || o.outcome != Outcome::kPending) continue;
        o.outcome = judge(block, o.request, o.heldAtStart, events, since[b.block], o.why);
        pending = pending || o.outcome == Outcome::kPending;
      }
    }
    if (!pending || clock.now() >= deadline) break;
    clock.sleepFor(io.pollInterval);
  }
  for (auto& o : outcomes) {
    if (o.outcome == Outcome::kPending) o.outcome = Outcome::kTimedOut;
  }

  // The entries are this run's to remove: the agent answers each once and may not write them.
  int status = allReleased(outcomes) ? 0 : 1;
  for (const auto& b : *plan) {
    auto removed = editAnnotation(client, b.block, [&](auto existing) {
      return withoutRequests(std::move(existing), b.requests);
    });
    if (!removed) {
      std::fprintf(stderr, "kubectl-ipam: IPBlock %s: removing the release annotation: %s\n",
                   b.block.c_str(), removed.error().message.c_str());
      status = 2;
    }
  }
  print(renderOutcomes(outcomes));
  return status;
}

}  // namespace vnetipam::kubectl_ipam
