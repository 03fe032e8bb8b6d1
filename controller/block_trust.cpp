#include "controller/block_trust.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace vnetipam::controller {

std::string_view toString(TrustRule rule) {
  switch (rule) {
    case TrustRule::kSubnetLabelMismatch: return "SubnetLabelMismatch";
    case TrustRule::kUnknownPodSubnet: return "UnknownPodSubnet";
    case TrustRule::kOutsidePodSubnet: return "OutsidePodSubnet";
    case TrustRule::kReservedRange: return "ReservedRange";
    case TrustRule::kOverlap: return "Overlap";
    case TrustRule::kWrongPrefixLength: return "WrongPrefixLength";
  }
  return "Unknown";
}

namespace {

TrustVerdict invalid(TrustRule rule, std::string message) {
  return {.trust = Trust::kInvalid, .rule = rule, .message = std::move(message)};
}

// The addresses Azure keeps in every subnet: the first four and the last.
bool touchesAzureReserved(const ipam::Prefix& block, const ipam::Prefix& range) {
  const ipam::U128 head = std::min<ipam::U128>(4, range.size());
  const ipam::U128 first = range.first().bits();
  for (ipam::U128 i = 0; i < head; ++i) {
    if (block.contains(ipam::IPAddress::fromBits(range.family(), first + i))) return true;
  }
  return block.contains(range.last());
}

}  // namespace

TrustVerdict judgeBlock(const TrustCandidate& block, SubnetView subnet, const TrustPool* pool,
                        const std::map<ipam::Prefix, std::string>& held) {
  const std::string cidr = block.cidr.toString();
  if (block.subnetLabel && *block.subnetLabel != block.podSubnet) {
    return invalid(TrustRule::kSubnetLabelMismatch,
                   fmt::format("metadata.labels[vnetipam.io/subnet] is \"{}\" but spec.podSubnet "
                               "is \"{}\": a block names one PodSubnet",
                               *block.subnetLabel, block.podSubnet));
  }
  switch (subnet) {
    case SubnetView::kNotSeen:
    case SubnetView::kNotCarved: return {};
    case SubnetView::kAbsent:
      return invalid(TrustRule::kUnknownPodSubnet,
                     fmt::format("spec.podSubnet: no PodSubnet \"{}\" exists", block.podSubnet));
    case SubnetView::kCarved: break;
  }
  if (pool == nullptr) return {};
  const auto inside = std::ranges::find_if(
      pool->ranges, [&](const ipam::Prefix& r) { return r.contains(block.cidr); });
  if (inside == pool->ranges.end()) {
    return invalid(TrustRule::kOutsidePodSubnet,
                   fmt::format("spec.cidr {} is outside PodSubnet \"{}\" ({})", cidr,
                               block.podSubnet, ipam::toString(pool->ranges)));
  }
  const ipam::Prefix& range = *inside;
  for (const ipam::Prefix& reserved : pool->reserved) {
    if (reserved.overlaps(block.cidr)) {
      return invalid(TrustRule::kReservedRange,
                     fmt::format("spec.cidr {} overlaps {} in spec.reservedCIDRs of PodSubnet "
                                 "\"{}\"",
                                 cidr, reserved.toString(), block.podSubnet));
    }
  }
  if (pool->azure && touchesAzureReserved(block.cidr, range)) {
    return invalid(TrustRule::kReservedRange,
                   fmt::format("spec.cidr {} holds an address Azure keeps in the subnet {} of "
                               "PodSubnet \"{}\" (its first four and its last)",
                               cidr, range.toString(), block.podSubnet));
  }
  // Every held key is a /blockPrefixLength: the one that could contain the block starts at the
  // block's first address masked to that length; those inside the block follow it in order.
  const int length = std::min(pool->blockPrefixLength, block.cidr.length());
  for (auto it = held.lower_bound(ipam::Prefix::masked(block.cidr.first(), length));
       it != held.end() && it->first.first() <= block.cidr.last(); ++it) {
    if (!it->first.overlaps(block.cidr)) continue;
    if (it->second == block.name) return {.trust = Trust::kAccepted, .rule = {}, .message = {}};
    return invalid(TrustRule::kOverlap,
                   fmt::format("spec.cidr {} overlaps IPBlock \"{}\" ({}), which PodSubnet \"{}\" "
                               "already holds",
                               cidr, it->second, it->first.toString(), block.podSubnet));
  }
  if (block.cidr.length() != pool->blockPrefixLength) {
    return invalid(
        TrustRule::kWrongPrefixLength,
        fmt::format("spec.cidr {} is a /{}, but PodSubnet \"{}\" has "
                    "spec.blockPrefixLength {}",
                    cidr, block.cidr.length(), block.podSubnet, pool->blockPrefixLength));
  }
  return {.trust = Trust::kAccepted, .rule = {}, .message = {}};
}

void sortForAdmission(std::vector<TrustCandidate>& blocks) {
  std::ranges::sort(blocks, [](const TrustCandidate& a, const TrustCandidate& b) {
    return std::tie(a.created, a.name) < std::tie(b.created, b.name);
  });
}

}  // namespace vnetipam::controller
