#include "kubectl-ipam/release.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "api/codec.h"
#include "api/constants.h"

namespace vnetipam::kubectl_ipam {

using nlohmann::json;

namespace {

// The agent's Event reasons (node-agent/agent_events.h).
constexpr std::string_view kEventAddressReleased = "AddressReleased";
constexpr std::string_view kEventReleaseRefused = "ReleaseRefused";

bool sameRequest(const api::ReleaseRequest& a, const api::ReleaseRequest& b) {
  return std::tie(a.address, a.owner) == std::tie(b.address, b.owner);
}

std::string text(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

base::Result<std::vector<LeakedAllocation>> leaksFromReport(const json& report) {
  auto refuse = [](std::string message) {
    return base::fail(base::ErrorCode::kInvalidArgument,
                      "not a `kubectl ipam check -o json` report: " + std::move(message));
  };
  if (!report.is_object()) return refuse("expected a JSON object");
  const auto findings = report.find("findings");
  if (findings == report.end() || !findings->is_array()) return refuse("no findings list");
  std::vector<LeakedAllocation> out;
  for (std::size_t i = 0; i < findings->size(); ++i) {
    const json& f = (*findings)[i];
    if (!f.is_object()) return refuse(fmt::format("findings[{}] is not an object", i));
    const auto a = f.find("allocation");
    if (a == f.end()) continue;
    if (!a->is_object()) return refuse(fmt::format("findings[{}].allocation is not an object", i));
    LeakedAllocation leak{
        .block = text(*a, "block"),
        .node = text(*a, "node"),
        .address = text(*a, "address"),
        .owner = {.containerID = text(*a, "containerID"), .ifName = text(*a, "ifName")},
        .podNamespace = text(*a, "podNamespace"),
        .podName = text(*a, "podName"),
        .podUID = text(*a, "podUID")};
    for (const auto& [field, value] :
         {std::pair{"block", &leak.block}, std::pair{"address", &leak.address},
          std::pair{"containerID", &leak.owner.containerID},
          std::pair{"ifName", &leak.owner.ifName}}) {
      if (value->empty())
        return refuse(fmt::format("findings[{}].allocation.{}: missing", i, field));
    }
    out.push_back(std::move(leak));
  }
  return out;
}

base::Result<std::vector<BlockRequests>> planRelease(const std::vector<LeakedAllocation>& leaks) {
  std::map<std::string, std::vector<const LeakedAllocation*>> byBlock;
  for (const auto& leak : leaks)
    byBlock[leak.block].push_back(&leak);
  std::vector<BlockRequests> plan;
  for (auto& [block, list] : byBlock) {
    std::ranges::sort(list, [](const LeakedAllocation* a, const LeakedAllocation* b) {
      return std::tie(a->address, a->owner) < std::tie(b->address, b->owner);
    });
    BlockRequests requests{.block = block, .node = list.front()->node};
    for (const LeakedAllocation* leak : list) {
      api::ReleaseRequest r{.address = leak->address, .owner = leak->owner};
      if (std::ranges::any_of(requests.requests,
                              [&](const auto& other) { return sameRequest(other, r); })) {
        continue;
      }
      requests.requests.push_back(std::move(r));
      requests.pods.push_back(leak->podNamespace + "/" + leak->podName);
    }
    if (requests.requests.size() > static_cast<std::size_t>(api::kMaxReleaseRequests)) {
      return base::fail(base::ErrorCode::kInvalidArgument,
                        fmt::format("block {}: {} leaked allocations, at most {} in one run", block,
                                    requests.requests.size(), api::kMaxReleaseRequests));
    }
    plan.push_back(std::move(requests));
  }
  return plan;
}

std::string renderPlan(const std::vector<BlockRequests>& plan) {
  std::string out;
  std::size_t count = 0;
  for (const auto& b : plan) {
    for (std::size_t i = 0; i < b.requests.size(); ++i) {
      out += fmt::format("would ask the agent on node {} to release {} of pod {} from block {}\n",
                         b.node, api::describe(b.requests[i]), b.pods[i], b.block);
      ++count;
    }
  }
  if (count == 0) return "The report names no leaked allocation: nothing to release.\n";
  return out + fmt::format("{} request(s) in {} block(s); --dry-run: nothing written.\n", count,
                           plan.size());
}

std::vector<api::ReleaseRequest> withRequests(std::vector<api::ReleaseRequest> existing,
                                              const std::vector<api::ReleaseRequest>& add) {
  for (const auto& r : add) {
    if (std::ranges::none_of(existing, [&](const auto& e) { return sameRequest(e, r); })) {
      existing.push_back(r);
    }
  }
  return existing;
}

std::vector<api::ReleaseRequest> withoutRequests(std::vector<api::ReleaseRequest> existing,
                                                 const std::vector<api::ReleaseRequest>& remove) {
  std::erase_if(existing, [&](const api::ReleaseRequest& e) {
    return std::ranges::any_of(remove, [&](const auto& r) { return sameRequest(e, r); });
  });
  return existing;
}

std::optional<bool> holds(const std::optional<api::IPBlock>& block,
                          const api::ReleaseRequest& request) {
  if (!block) return false;
  const auto& status = block->status;
  if (static_cast<std::int64_t>(status.allocations.size()) != status.used) return std::nullopt;
  return std::ranges::any_of(status.allocations, [&](const api::IPAllocation& a) {
    return a.address == request.address && a.owner == request.owner;
  });
}

Outcome judge(const std::optional<api::IPBlock>& block, const api::ReleaseRequest& request,
              bool heldAtStart, const std::vector<EventInfo>& blockEvents, std::int64_t since,
              std::string& why) {
  const std::string prefix = api::describe(request) + ":";
  auto said = [&](std::string_view reason) -> const EventInfo* {
    const EventInfo* latest = nullptr;
    for (const auto& e : blockEvents) {
      if (e.reason != reason || !e.message.starts_with(prefix)) continue;
      if (parseTime(e.time).value_or(0) < since) continue;  // an answer to an earlier run
      latest = &e;
    }
    return latest;
  };
  auto words = [&](const EventInfo& e) {
    std::string rest = e.message.substr(prefix.size());
    while (!rest.empty() && rest.front() == ' ')
      rest.erase(rest.begin());
    return rest;
  };
  const EventInfo* released = said(kEventAddressReleased);
  if (released != nullptr || (heldAtStart && holds(block, request) == false)) {
    if (released != nullptr) why = words(*released);
    return Outcome::kReleased;
  }
  if (const auto* e = said(kEventReleaseRefused)) {
    why = words(*e);
    return Outcome::kRefused;
  }
  return Outcome::kPending;
}

std::string renderOutcomes(const std::vector<RequestOutcome>& outcomes) {
  std::string out;
  std::size_t released = 0, refused = 0, timedOut = 0;
  for (const auto& o : outcomes) {
    std::string_view word = "pending";
    switch (o.outcome) {
      case Outcome::kReleased:
        word = "released";
        ++released;
        break;
      case Outcome::kRefused:
        word = "refused";
        ++refused;
        break;
      case Outcome::kTimedOut:
      case Outcome::kPending:
        word = "timed out";
        ++timedOut;
        break;
    }
    out += fmt::format("{} {} in block {} on node {}{}\n", word, api::describe(o.request), o.block,
                       o.node, o.why.empty() ? "" : ": " + o.why);
  }
  return out + fmt::format("{} released, {} refused, {} timed out.\n", released, refused, timedOut);
}

bool allReleased(const std::vector<RequestOutcome>& outcomes) {
  return std::ranges::all_of(outcomes,
                             [](const auto& o) { return o.outcome == Outcome::kReleased; });
}

}  // namespace vnetipam::kubectl_ipam
