#include "api/selector.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vnetipam::api {

bool matches(const LabelSelectorRequirement& requirement, const Labels& labels) {
  const auto found = labels.find(requirement.key);
  const bool present = found != labels.end();
  const auto in_values = [&] {
    return present &&
           std::ranges::find(requirement.values, found->second) != requirement.values.end();
  };
  if (requirement.op == kSelectorOpIn) return in_values();
  if (requirement.op == kSelectorOpNotIn) return !in_values();
  if (requirement.op == kSelectorOpExists) return present;
  if (requirement.op == kSelectorOpDoesNotExist) return !present;
  return false;
}

bool matches(const LabelSelector& selector, const Labels& labels) {
  const bool labels_match = std::ranges::all_of(selector.matchLabels, [&](const auto& kv) {
    const auto found = labels.find(kv.first);
    return found != labels.end() && found->second == kv.second;
  });
  return labels_match &&
         std::ranges::all_of(selector.matchExpressions,
                             [&](const LabelSelectorRequirement& r) { return matches(r, labels); });
}

bool matches(const std::optional<LabelSelector>& selector, const Labels& labels) {
  return !selector || matches(*selector, labels);
}

std::string describe(const std::optional<LabelSelector>& selector) {
  if (!selector) return "every node";
  std::vector<std::string> parts;
  for (const auto& [key, value] : selector->matchLabels)
    parts.push_back(fmt::format("{}={}", key, value));
  for (const auto& r : selector->matchExpressions) {
    parts.push_back(r.values.empty()
                        ? fmt::format("{} {}", r.key, r.op)
                        : fmt::format("{} {} ({})", r.key, r.op, fmt::join(r.values, ",")));
  }
  return parts.empty() ? "every node" : fmt::format("{}", fmt::join(parts, ","));
}

}  // namespace vnetipam::api
