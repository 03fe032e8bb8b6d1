#include "api/validation.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <optional>

#include <fmt/format.h>

#include "api/constants.h"
#include "api/naming.h"
#include "lib/ipam/ip.h"

namespace vnetipam::api {
namespace {

using Errors = std::vector<FieldError>;

void add(Errors& errors, std::string path, std::string message) {
  errors.push_back({std::move(path), std::move(message)});
}

std::string indexed(std::string_view path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

// A CIDR as the CRD's isCIDR() and alignment rules accept it: ipam::Prefix syntax (strict, aligned)
// and, like Kubernetes' cidr(), no IPv4-mapped IPv6 (::ffff:0:0/96) address.
std::optional<ipam::Prefix> checkCidr(Errors& errors, const std::string& path,
                                      std::string_view text) {
  if (text.empty()) {
    add(errors, path, "required: expected a CIDR prefix like 10.240.0.0/16");
    return std::nullopt;
  }
  if (text.size() > static_cast<std::size_t>(kMaxCidrLength)) {
    add(errors, path,
        fmt::format("is {} characters long: a CIDR prefix is at most {}", text.size(),
                    kMaxCidrLength));
    return std::nullopt;
  }
  auto prefix = ipam::Prefix::parse(text);
  if (!prefix) {
    add(errors, path, prefix.error().message);
    return std::nullopt;
  }
  if (prefix->family() == ipam::Family::kV6 && (prefix->address().bits() >> 32) == 0xffff) {
    add(errors, path,
        fmt::format("\"{}\" is not a CIDR prefix: IPv4-mapped IPv6 addresses are not allowed, "
                    "write the IPv4 prefix",
                    text));
    return std::nullopt;
  }
  return *prefix;
}

struct LengthRange {
  int min;
  int max;
};

LengthRange blockLengthRange(ipam::Family family) {
  return family == ipam::Family::kV4
             ? LengthRange{kMinBlockPrefixLengthV4, kMaxBlockPrefixLengthV4}
             : LengthRange{kMinBlockPrefixLengthV6, kMaxBlockPrefixLengthV6};
}

// The block length range for a subnet of the given family, or of unknown family (azureSubnetID:
// the controller checks the family once it has read the subnet's prefix from Azure).
void checkBlockPrefixLength(Errors& errors, int length, const std::optional<ipam::Prefix>& subnet) {
  const std::string path = "spec.blockPrefixLength";
  if (!subnet) {
    if (length < kMinBlockPrefixLengthV4 || length > kMaxBlockPrefixLengthV6) {
      add(errors, path,
          fmt::format("{} is out of range: expected {}-{} for IPv4 or {}-{} for IPv6", length,
                      kMinBlockPrefixLengthV4, kMaxBlockPrefixLengthV4, kMinBlockPrefixLengthV6,
                      kMaxBlockPrefixLengthV6));
    }
    return;
  }
  const LengthRange range = blockLengthRange(subnet->family());
  if (length < range.min || length > range.max) {
    add(errors, path,
        fmt::format("{} is out of range for an {} subnet: expected {}-{}", length,
                    ipam::toString(subnet->family()), range.min, range.max));
  }
  if (length < subnet->length()) {
    add(errors, path,
        fmt::format("{} is shorter than the subnet {}: a block must fit inside it, expected at "
                    "least {}",
                    length, subnet->toString(), subnet->length()));
  }
}

void checkName(Errors& errors, const std::string& path, std::string_view name,
               std::string_view what) {
  if (name.empty()) {
    add(errors, path, fmt::format("required: expected the name of a {}", what));
  } else if (!isDns1123Subdomain(name)) {
    add(errors, path,
        fmt::format("\"{}\" is not a valid {} name: expected lower-case letters, digits, \"-\" "
                    "and \".\", starting and ending with a letter or digit, at most 253 in all",
                    name, what));
  }
}

void checkConditions(Errors& errors, std::string_view path,
                     const std::vector<Condition>& conditions) {
  if (conditions.size() > static_cast<std::size_t>(kMaxConditions)) {
    add(errors, std::string(path),
        fmt::format("has {} items: at most {} are allowed", conditions.size(), kMaxConditions));
  }
  for (std::size_t i = 0; i < conditions.size(); ++i) {
    const Condition& c = conditions[i];
    const std::string item = indexed(path, i);
    if (!isLabelKey(c.type)) {
      add(errors, item + ".type",
          fmt::format("\"{}\" is not a condition type: expected a CamelCase name like Ready, "
                      "optionally with a domain prefix",
                      c.type));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (!c.type.empty() && conditions[j].type == c.type) {
        add(errors, item + ".type", fmt::format("duplicate condition type \"{}\"", c.type));
      }
    }
    if (c.status != "True" && c.status != "False" && c.status != "Unknown") {
      add(errors, item + ".status",
          fmt::format("\"{}\" is not a condition status: expected True, False or Unknown",
                      c.status));
    }
    const bool reason_ok = !c.reason.empty() && c.reason.size() <= 1024 &&
                           ((c.reason.front() >= 'A' && c.reason.front() <= 'Z') ||
                            (c.reason.front() >= 'a' && c.reason.front() <= 'z')) &&
                           std::ranges::all_of(c.reason,
                                               [](char ch) {
                                                 return (ch >= 'A' && ch <= 'Z') ||
                                                        (ch >= 'a' && ch <= 'z') ||
                                                        (ch >= '0' && ch <= '9') || ch == '_' ||
                                                        ch == ',' || ch == ':';
                                               }) &&
                           c.reason.back() != ',' && c.reason.back() != ':';
    if (!reason_ok) {
      add(errors, item + ".reason",
          fmt::format("\"{}\" is not a reason: expected a CamelCase word like NicProgrammed",
                      c.reason));
    }
    if (c.lastTransitionTime.empty()) add(errors, item + ".lastTransitionTime", "required");
    if (c.observedGeneration < 0) add(errors, item + ".observedGeneration", "must be >= 0");
  }
}

void checkLabelKey(Errors& errors, const std::string& path, std::string_view key) {
  if (!isLabelKey(key)) {
    add(errors, path,
        fmt::format("\"{}\" is not a label key: expected [prefix/]name, the name at most 63 "
                    "letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
                    key));
  }
}

void checkLabelValue(Errors& errors, const std::string& path, std::string_view value) {
  if (!isLabelValue(value)) {
    add(errors, path,
        fmt::format("\"{}\" is not a label value: expected at most 63 letters, digits, '-', '_' "
                    "and '.', starting and ending with a letter or digit",
                    value));
  }
}

// spec.nodeSelector, a metav1.LabelSelector, with Kubernetes' rules (ValidateLabelSelector), and
// one of ours: a present selector holds at least one requirement. The API server prunes a
// selector in the map form of earlier versions ({zone: a}) to {}, and {} must not quietly select
// every node: leaving nodeSelector out is how to select every node.
void checkNodeSelector(Errors& errors, const LabelSelector& sel) {
  const std::string path = "spec.nodeSelector";
  if (sel.matchLabels.empty() && sel.matchExpressions.empty()) {
    add(errors, path,
        "spec.nodeSelector has no matchLabels or matchExpressions: it is a label selector, so "
        "write the labels a node must carry under matchLabels (a {key: value} map directly under "
        "nodeSelector is the old form, which the API server drops), or leave nodeSelector out "
        "to select every node");
  }
  const std::string labels_path = path + ".matchLabels";
  if (sel.matchLabels.size() > static_cast<std::size_t>(kMaxNodeSelectorLabels)) {
    add(errors, labels_path,
        fmt::format("has {} labels: at most {} are allowed", sel.matchLabels.size(),
                    kMaxNodeSelectorLabels));
  }
  for (const auto& [key, value] : sel.matchLabels) {
    const std::string item = fmt::format("{}[{}]", labels_path, key);
    checkLabelKey(errors, item, key);
    checkLabelValue(errors, item, value);
  }
  const std::string exprs_path = path + ".matchExpressions";
  if (sel.matchExpressions.size() > static_cast<std::size_t>(kMaxNodeSelectorExpressions)) {
    add(errors, exprs_path,
        fmt::format("has {} items: at most {} are allowed", sel.matchExpressions.size(),
                    kMaxNodeSelectorExpressions));
  }
  for (std::size_t i = 0; i < sel.matchExpressions.size(); ++i) {
    const LabelSelectorRequirement& req = sel.matchExpressions[i];
    const std::string item = indexed(exprs_path, i);
    checkLabelKey(errors, item + ".key", req.key);
    const bool with_values = req.op == kSelectorOpIn || req.op == kSelectorOpNotIn;
    const bool without_values = req.op == kSelectorOpExists || req.op == kSelectorOpDoesNotExist;
    if (!with_values && !without_values) {
      add(errors, item + ".operator",
          fmt::format("Unsupported value: \"{}\": supported values: \"In\", \"NotIn\", "
                      "\"Exists\", \"DoesNotExist\"",
                      req.op));
    }
    const std::string values_path = item + ".values";
    if (with_values && req.values.empty()) {
      add(errors, values_path,
          fmt::format("must be specified when operator is {}: the values the label may (In) or "
                      "may not (NotIn) have",
                      req.op));
    }
    if (without_values && !req.values.empty()) {
      add(errors, values_path,
          fmt::format("may not be specified when operator is {}: it tests only whether the "
                      "node has the label",
                      req.op));
    }
    if (req.values.size() > static_cast<std::size_t>(kMaxNodeSelectorValues)) {
      add(errors, values_path,
          fmt::format("has {} items: at most {} are allowed", req.values.size(),
                      kMaxNodeSelectorValues));
    }
    for (std::size_t j = 0; j < req.values.size(); ++j) {
      checkLabelValue(errors, indexed(values_path, j), req.values[j]);
    }
  }
}

void checkNonNegative(Errors& errors, const char* path, std::int64_t value) {
  if (value < 0) add(errors, path, fmt::format("{} is negative: expected >= 0", value));
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return lower(x) == lower(y);
  });
}

}  // namespace

std::string toString(const FieldError& error) {
  return fmt::format("{}: {}", error.path, error.message);
}

std::string describe(std::string_view kind, std::string_view name,
                     std::span<const FieldError> errors) {
  std::string out = fmt::format("{} \"{}\": ", kind, name);
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) out += "; ";
    out += toString(errors[i]);
  }
  return out;
}

bool isAzureSubnetID(std::string_view text) {
  // The segments after the leading '/': a fixed word, or "" where a name goes. The subnet's name
  // is one more segment after the last.
  static constexpr std::array<std::string_view, 9> kShape = {
      "subscriptions",   "", "resourceGroups", "", "providers", "Microsoft.Network",
      "virtualNetworks", "", "subnets"};
  if (text.empty() || text.front() != '/') return false;
  text.remove_prefix(1);
  std::size_t index = 0;
  while (true) {
    const std::size_t slash = text.find('/');
    const std::string_view segment = text.substr(0, slash);
    if (segment.empty()) return false;
    if (index < kShape.size() && !kShape[index].empty() &&
        !equalsIgnoreCase(segment, kShape[index])) {
      return false;
    }
    ++index;
    if (slash == std::string_view::npos) break;
    text.remove_prefix(slash + 1);
  }
  return index == kShape.size() + 1;
}

std::vector<FieldError> validate(const PodSubnetSpec& spec) {
  Errors errors;
  if (spec.azureSubnetID.has_value() == spec.cidr.has_value()) {
    add(errors, "spec",
        "exactly one of spec.azureSubnetID and spec.cidr must be set: azureSubnetID to carve an "
        "Azure VNET subnet, cidr to carve a plain prefix");
  }
  if (spec.azureSubnetID) {
    const std::string& id = *spec.azureSubnetID;
    if (id.size() > static_cast<std::size_t>(kMaxAzureSubnetIDLength) || !isAzureSubnetID(id)) {
      add(errors, "spec.azureSubnetID",
          fmt::format("\"{}\" is not an Azure subnet id: expected /subscriptions/<subscription>/"
                      "resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<vnet>/"
                      "subnets/<subnet>",
                      id));
    }
  }
  std::optional<ipam::Prefix> subnet;
  if (spec.cidr) subnet = checkCidr(errors, "spec.cidr", *spec.cidr);
  // With an invalid cidr the family is unknown: check the length as for an Azure subnet.
  checkBlockPrefixLength(errors, spec.blockPrefixLength, subnet);

  if (spec.nodeSelector) checkNodeSelector(errors, *spec.nodeSelector);
  checkNonNegative(errors, "spec.minFreeIPsPerNode", spec.minFreeIPsPerNode);
  if (spec.maxBlocksPerNode < 1 || spec.maxBlocksPerNode > kMaxMaxBlocksPerNode) {
    add(errors, "spec.maxBlocksPerNode",
        fmt::format("{} is out of range: expected 1-{} (a block takes one NIC ipConfiguration)",
                    spec.maxBlocksPerNode, kMaxMaxBlocksPerNode));
  }
  checkNonNegative(errors, "spec.releaseDelaySeconds", spec.releaseDelaySeconds);

  if (spec.reservedCIDRs.size() > static_cast<std::size_t>(kMaxReservedCIDRs)) {
    add(errors, "spec.reservedCIDRs",
        fmt::format("has {} items: at most {} are allowed", spec.reservedCIDRs.size(),
                    kMaxReservedCIDRs));
  }
  for (std::size_t i = 0; i < spec.reservedCIDRs.size(); ++i) {
    const std::string path = indexed("spec.reservedCIDRs", i);
    const auto reserved = checkCidr(errors, path, spec.reservedCIDRs[i]);
    if (reserved && subnet && !subnet->contains(*reserved)) {
      add(errors, path,
          fmt::format("{} is not inside the subnet {}", reserved->toString(), subnet->toString()));
    }
  }
  return errors;
}

std::vector<FieldError> validate(const IPBlockSpec& spec) {
  Errors errors;
  checkName(errors, "spec.podSubnet", spec.podSubnet, "PodSubnet");
  if (const auto block = checkCidr(errors, "spec.cidr", spec.cidr)) {
    // The name is derived from the text, so one prefix must have one text.
    if (block->toString() != spec.cidr) {
      add(errors, "spec.cidr",
          fmt::format("\"{}\" is not in canonical form (lower case, shortest IPv6 text): write {}",
                      spec.cidr, block->toString()));
    }
    const LengthRange range = blockLengthRange(block->family());
    if (block->length() < range.min || block->length() > range.max) {
      add(errors, "spec.cidr",
          fmt::format("{} has prefix length {}: an {} block is /{} to /{}", block->toString(),
                      block->length(), ipam::toString(block->family()), range.min, range.max));
    }
  }
  checkName(errors, "spec.nodeName", spec.nodeName, "Node");
  return errors;
}

std::vector<FieldError> validate(const PodSubnetStatus& status) {
  Errors errors;
  if (!status.cidr.empty()) checkCidr(errors, "status.cidr", status.cidr);
  checkNonNegative(errors, "status.totalBlocks", status.totalBlocks);
  checkNonNegative(errors, "status.allocatedBlocks", status.allocatedBlocks);
  checkNonNegative(errors, "status.allocatedIPs", status.allocatedIPs);
  if (status.foreignAddresses)
    checkNonNegative(errors, "status.foreignAddresses", *status.foreignAddresses);
  checkConditions(errors, "status.conditions", status.conditions);
  return errors;
}

std::vector<FieldError> validate(const IPBlockStatus& status) {
  Errors errors;
  checkNonNegative(errors, "status.used", status.used);
  checkNonNegative(errors, "status.capacity", status.capacity);
  if (status.nic) {
    if (status.nic->id.empty()) add(errors, "status.nic.id", "required");
    if (status.nic->ipConfiguration.empty()) add(errors, "status.nic.ipConfiguration", "required");
  }
  checkConditions(errors, "status.conditions", status.conditions);
  return errors;
}

std::vector<FieldError> validate(const PodSubnet& subnet) {
  Errors errors;
  if (subnet.metadata.name.size() > static_cast<std::size_t>(kMaxPodSubnetNameLength)) {
    add(errors, "metadata.name",
        fmt::format("metadata.name must be at most {} characters, so that the names of its "
                    "IPBlocks (<name>-<address>-<length>) fit in 253 (it has {})",
                    kMaxPodSubnetNameLength, subnet.metadata.name.size()));
  }
  std::ranges::move(validate(subnet.spec), std::back_inserter(errors));
  std::ranges::move(validate(subnet.status), std::back_inserter(errors));
  return errors;
}

std::vector<FieldError> validate(const IPBlock& block) {
  Errors errors = validate(block.spec);
  if (errors.empty()) {
    // Both inputs are valid here, so neither can fail.
    const auto prefix = ipam::Prefix::parse(block.spec.cidr);
    const auto expected = blockName(block.spec.podSubnet, *prefix);
    if (!expected) {
      add(errors, "metadata.name", expected.error().message);
    } else if (block.metadata.name != *expected) {
      add(errors, "metadata.name",
          fmt::format("metadata.name must be \"{}\", the name derived from spec.podSubnet and "
                      "spec.cidr (it is \"{}\")",
                      *expected, block.metadata.name));
    }
  }
  std::ranges::move(validate(block.status), std::back_inserter(errors));
  return errors;
}

std::vector<FieldError> validateUpdate(const PodSubnetSpec& old, const PodSubnetSpec& updated) {
  Errors errors = validate(updated);
  const auto immutable = [&](const char* path, bool same) {
    if (!same) {
      add(errors, path,
          "is immutable: blocks were carved from the old value; create a new PodSubnet instead");
    }
  };
  immutable("spec.azureSubnetID", old.azureSubnetID == updated.azureSubnetID);
  immutable("spec.cidr", old.cidr == updated.cidr);
  immutable("spec.blockPrefixLength", old.blockPrefixLength == updated.blockPrefixLength);
  return errors;
}

std::vector<FieldError> validateUpdate(const IPBlockSpec& old, const IPBlockSpec& updated) {
  Errors errors = validate(updated);
  const auto immutable = [&](const char* path, bool same) {
    if (!same) add(errors, path, "is immutable: delete the block and create a new one instead");
  };
  immutable("spec.podSubnet", old.podSubnet == updated.podSubnet);
  immutable("spec.cidr", old.cidr == updated.cidr);
  immutable("spec.nodeName", old.nodeName == updated.nodeName);
  return errors;
}

}  // namespace vnetipam::api
