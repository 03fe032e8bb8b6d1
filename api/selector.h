// Matching a LabelSelector (metav1.LabelSelector) against an object's labels, with Kubernetes'
// semantics: every matchLabels entry and every matchExpressions requirement must hold.
//   In           the key is present and its value is one of values
//   NotIn        the key is absent, or its value is none of values
//   Exists       the key is present (any value)
//   DoesNotExist the key is absent
// A matchLabels entry k: v is the requirement k In (v).
//
// A selector with no requirements matches everything, as in Kubernetes. An absent PodSubnet
// nodeSelector (std::nullopt) selects every node too; Kubernetes' LabelSelectorAsSelector would
// select nothing for a nil selector, but a PodSubnet has always meant "every node" without one.
// Preconditions: the selector passed validate() (api/validation.h); an unknown operator, which
// validation refuses, matches nothing rather than everything.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "api/types.h"

namespace vnetipam::api {

using Labels = std::map<std::string, std::string>;

bool matches(const LabelSelectorRequirement& requirement, const Labels& labels);
bool matches(const LabelSelector& selector, const Labels& labels);
// std::nullopt (no selector) matches every set of labels.
bool matches(const std::optional<LabelSelector>& selector, const Labels& labels);

// The selector for messages, in kubectl's words: "pool=a,zone In (1,2),drain DoesNotExist";
// "every node" for no selector.
std::string describe(const std::optional<LabelSelector>& selector);

}  // namespace vnetipam::api
