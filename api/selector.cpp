#include "api/selector.h"

#include <algorithm>

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

}  // namespace vnetipam::api
