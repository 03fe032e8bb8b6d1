#include "node-agent/dataplane_drift.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

namespace vnetipam::agent {

std::string_view toString(DriftKind kind) {
  return kind == DriftKind::kMissingRoute ? "missing_route" : "stale_route";
}

namespace {

// What is wrong with `route` as the host route of an allocation; nullopt when it is right.
std::optional<std::string> routeProblem(const ObservedRoute& route,
                                        const std::unordered_map<int, const ObservedLink*>& links,
                                        std::string_view prefix) {
  if (route.oif == 0) return std::string("the host route has no output device");
  const auto it = links.find(route.oif);
  if (it == links.end()) {
    return fmt::format("the host route's device (ifindex {}) does not exist", route.oif);
  }
  const ObservedLink& link = *it->second;
  if (!link.name.starts_with(prefix)) {
    return fmt::format("the host route goes out of {}, not a host veth ({}*)", link.name, prefix);
  }
  if (!link.up) return fmt::format("host veth {} is down", link.name);
  return std::nullopt;
}

std::string deviceName(int oif, const std::unordered_map<int, const ObservedLink*>& links) {
  const auto it = links.find(oif);
  return it == links.end() ? fmt::format("ifindex {}", oif) : it->second->name;
}

}  // namespace

std::vector<DriftFinding> findDrift(const std::vector<DriftBlock>& blocks,
                                    const std::vector<HeldAddress>& held,
                                    const ObservedDataplane& observed,
                                    std::string_view hostVethPrefix) {
  std::unordered_map<int, const ObservedLink*> links;
  for (const ObservedLink& link : observed.links)
    links.emplace(link.ifindex, &link);
  // Host routes by address: the /32s and /128s, whole addresses of either family.
  std::map<ipam::IPAddress, std::vector<const ObservedRoute*>> routes;
  for (const ObservedRoute& route : observed.routes) {
    if (route.dst.hostBits() != 0) continue;
    routes[route.dst.address()].push_back(&route);
  }

  std::vector<DriftFinding> out;
  std::set<ipam::IPAddress> heldAddresses;
  for (const HeldAddress& h : held) {
    heldAddresses.insert(h.address);
    const std::string pod =
        h.podName.empty() ? std::string() : fmt::format("{}/{}", h.podNamespace, h.podName);
    const auto found = routes.find(h.address);
    if (found == routes.end()) {
      out.push_back({.kind = DriftKind::kMissingRoute,
                     .block = h.block,
                     .address = h.address,
                     .pod = pod,
                     .what = "no host route"});
      continue;
    }
    std::optional<std::string> problem;
    for (const ObservedRoute* route : found->second) {
      problem = routeProblem(*route, links, hostVethPrefix);
      if (!problem) break;
    }
    if (problem) {
      out.push_back({.kind = DriftKind::kMissingRoute,
                     .block = h.block,
                     .address = h.address,
                     .pod = pod,
                     .what = std::move(*problem)});
    }
  }
  for (const auto& [address, rs] : routes) {
    if (heldAddresses.contains(address)) continue;
    const auto block =
        std::ranges::find_if(blocks, [&](const DriftBlock& b) { return b.cidr.contains(address); });
    if (block == blocks.end()) continue;
    out.push_back({.kind = DriftKind::kStaleRoute,
                   .block = block->name,
                   .address = address,
                   .what = fmt::format("stale host route via {} (no allocation holds it)",
                                       deviceName(rs.front()->oif, links))});
  }
  std::ranges::sort(out, [](const DriftFinding& a, const DriftFinding& b) {
    return std::tie(a.block, a.address, a.kind) < std::tie(b.block, b.address, b.kind);
  });
  return out;
}

std::vector<DriftFinding> DriftTracker::confirm(const std::vector<HeldAddress>& held,
                                                const std::vector<DriftFinding>& found,
                                                TimePoint now) {
  std::map<HeldKey, TimePoint> seen;
  std::map<ipam::IPAddress, TimePoint> since;  // by address, for the findings below
  for (const HeldAddress& h : held) {
    HeldKey key{h.owner, h.address};
    const auto it = firstSeen_.find(key);
    const TimePoint first = it == firstSeen_.end() ? now : it->second;
    seen.emplace(std::move(key), first);
    since[h.address] = first;
  }
  firstSeen_ = std::move(seen);

  std::vector<DriftFinding> confirmed;
  std::set<FindingKey> current;
  for (const DriftFinding& f : found) {
    FindingKey key{f.kind, f.block, f.address};
    bool old = false;
    if (f.kind == DriftKind::kMissingRoute) {
      const auto it = since.find(f.address);
      old = it != since.end() && now - it->second >= grace_;
    }
    if (old || previous_.contains(key)) confirmed.push_back(f);
    current.insert(std::move(key));
  }
  previous_ = std::move(current);
  return confirmed;
}

std::string describeDrift(const std::vector<DriftFinding>& findings, std::size_t named) {
  std::string out;
  for (std::size_t i = 0; i < findings.size() && i < named; ++i) {
    const DriftFinding& f = findings[i];
    if (i > 0) out += "; ";
    out += f.address.toString();
    if (!f.pod.empty()) out += fmt::format(" (pod {})", f.pod);
    out += ": ";
    out += f.what;
  }
  if (findings.size() > named) out += fmt::format(", and {} more", findings.size() - named);
  return out;
}

std::map<std::string, DataplaneCondition> dataplaneConditions(
    const std::vector<DriftBlock>& blocks, const std::vector<DriftFinding>& confirmed) {
  std::map<std::string, DataplaneCondition> out;
  for (const DriftBlock& block : blocks) {
    std::vector<DriftFinding> mine;
    for (const DriftFinding& f : confirmed) {
      if (f.block == block.name) mine.push_back(f);
    }
    if (mine.empty()) {
      out.emplace(block.name,
                  DataplaneCondition{.status = "True",
                                     .reason = std::string(kReasonInSync),
                                     .message = "every address held in the block has its host "
                                                "route through an up host veth, and no host "
                                                "route points at an address nobody holds"});
      continue;
    }
    const auto missing = std::ranges::count_if(
        mine, [](const DriftFinding& f) { return f.kind == DriftKind::kMissingRoute; });
    const auto stale = static_cast<std::ptrdiff_t>(mine.size()) - missing;
    std::string counts;
    if (missing > 0) {
      counts = fmt::format("{} held address{} without a working host route", missing,
                           missing == 1 ? "" : "es");
    }
    if (stale > 0) {
      counts += fmt::format("{}{} stale host route{}", counts.empty() ? "" : ", ", stale,
                            stale == 1 ? "" : "s");
    }
    out.emplace(block.name,
                DataplaneCondition{.status = "False",
                                   .reason = std::string(kReasonDrift),
                                   .message = fmt::format("{}: {}", counts, describeDrift(mine))});
  }
  return out;
}

}  // namespace vnetipam::agent
