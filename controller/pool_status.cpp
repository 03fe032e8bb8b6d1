#include "controller/pool_status.h"

#include <algorithm>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "api/conditions.h"
#include "lib/base/time.h"

namespace vnetipam::controller {

namespace {

// Why no IPv6 block is carved with a cloud (docs/design.md 3.3), for both messages below.
constexpr std::string_view kNoIPv6OnNic =
    "Azure takes only IPv4 (/28) prefixes on a NIC ipConfiguration, so --cloud=azure cannot "
    "program IPv6 blocks";

}  // namespace

std::optional<std::string> cloudCarveRefusal(const ipam::Prefix& cidr, bool fromAzure) {
  if (cidr.family() != ipam::Family::kV6) return std::nullopt;
  return fmt::format(
      "{} {} is IPv6: {}; use an IPv4 subnet, or --cloud=none where the network "
      "routes the blocks",
      fromAzure ? "the Azure subnet" : "spec.cidr", cidr.toString(), kNoIPv6OnNic);
}

std::optional<std::string> uncarvableReason(const ipam::Prefix& prefix, ipam::Family family,
                                            int blockLength) {
  if (prefix.family() == ipam::Family::kV6 && family != ipam::Family::kV6) {
    return fmt::format(
        "{} (a dual-stack pod network needs --cloud=none and an IPv6 PodSubnet with spec.cidr)",
        kNoIPv6OnNic);
  }
  if (prefix.family() != family) {
    return fmt::format("it is {}, the pool {}", ipam::toString(prefix.family()),
                       ipam::toString(family));
  }
  if (prefix.length() > blockLength) {
    return fmt::format("it is smaller than one /{} block (spec.blockPrefixLength)", blockLength);
  }
  return std::nullopt;
}

std::string uncarvedPrefixesNote(std::span<const UncarvedPrefix> uncarved) {
  std::string note;
  for (const UncarvedPrefix& u : uncarved) {
    if (!note.empty()) note += "; ";
    note += fmt::format("the Azure subnet's {} prefix {} is not carved: {}",
                        ipam::toString(u.prefix.family()), u.prefix.toString(), u.why);
  }
  return note;
}

std::int64_t poolAddresses(std::int64_t blocks, std::int64_t blockSize) {
  constexpr std::int64_t kMax = std::int64_t{1} << 62;
  if (blocks <= 0 || blockSize <= 0) return 0;
  return blocks > kMax / blockSize ? kMax : blocks * blockSize;
}

namespace {

constexpr std::size_t kNamed = 5;  // names a message lists before "and N more"

api::Condition condition(const api::PodSubnetStatus& previous, std::string_view type, bool status,
                         std::string_view reason, std::string message,
                         const PoolStatusInput& input) {
  const auto old = std::ranges::find(previous.conditions, type, &api::Condition::type);
  const api::Condition* last = old != previous.conditions.end() ? &*old : nullptr;
  return api::nextCondition(last,
                            api::Condition{.type = std::string(type),
                                           .status = status ? "True" : "False",
                                           .reason = std::string(reason),
                                           .message = std::move(message),
                                           .lastTransitionTime = {},
                                           .observedGeneration = input.generation,
                                           .extra = last ? last->extra : nlohmann::json::object()},
                            base::formatRfc3339(input.now));
}

std::string namesText(std::span<const std::string> names) {
  std::string text;
  for (std::size_t i = 0; i < names.size() && i < kNamed; ++i) {
    if (i > 0) text += ", ";
    text += names[i];
  }
  if (names.size() > kNamed) text += fmt::format(" and {} more", names.size() - kNamed);
  return text;
}

}  // namespace

api::PodSubnetStatus computePoolStatus(const api::PodSubnetStatus& previous,
                                       const PoolStatusInput& input) {
  api::PodSubnetStatus status;
  status.extra = previous.extra;
  status.foreignAddresses = input.foreignAddresses;
  for (const std::int64_t used : input.blockUsed)
    status.allocatedIPs += used;

  const ipam::BlockPool* set = input.blocks;
  if (set == nullptr) {
    status.cidr = previous.cidr;
    status.allocatedBlocks = static_cast<std::int64_t>(input.blockUsed.size());
    status.conditions.push_back(condition(
        previous, api::kConditionReady, false, kReasonNotCarved,
        input.notCarvedMessage.empty() ? "the subnet is not carved yet" : input.notCarvedMessage,
        input));
    status.conditions.push_back(condition(previous, api::kConditionExhausted, false,
                                          kReasonNotCarved, "the subnet is not carved yet", input));
    return status;
  }

  // The ranges blocks are carved from (an Azure subnet's prefix removed since is not one).
  const std::vector<ipam::Prefix> active = set->activeRanges();
  status.cidr = (active.empty() ? set->ranges().front() : active.front()).toString();
  for (const ipam::Prefix& range : active)
    status.cidrs.push_back(range.toString());
  // For the messages.
  const std::string ranges =
      active.empty() ? ipam::toString(set->ranges()) : ipam::toString(active);
  status.totalBlocks = static_cast<std::int64_t>(set->usableCount());
  status.allocatedBlocks = static_cast<std::int64_t>(set->allocatedCount());
  // Blocks held for others (a shared subnet) cannot be carved while held: not free.
  const std::uint64_t free_blocks = set->freeUnheldCount();
  const std::uint64_t heldFree = set->freeCount() - free_blocks;
  const std::string heldNote =
      heldFree == 0
          ? std::string()
          : fmt::format(", {} held while another Azure resource holds an address in it", heldFree);
  std::string carvedMessage =
      fmt::format("{} carved into {} usable /{} blocks ({} excluded)", ranges, set->usableCount(),
                  set->blockLength(), set->excludedCount());
  if (!input.reservedBlocks.empty()) {
    carvedMessage += fmt::format(
        "; {} block(s) in spec.reservedCIDRs take no new pods and are released as their pods go: "
        "{}",
        input.reservedBlocks.size(), namesText(input.reservedBlocks));
  }
  if (!input.reservedOutside.empty()) {
    carvedMessage += fmt::format("; spec.reservedCIDRs {} lie outside {}: they reserve nothing",
                                 ipam::toString(input.reservedOutside), ranges);
  }
  if (const std::string note = uncarvedPrefixesNote(input.uncarvedPrefixes); !note.empty()) {
    carvedMessage += "; " + note;
  }
  status.conditions.push_back(condition(previous, api::kConditionReady, true, kReasonCarved,
                                        std::move(carvedMessage), input));

  if (free_blocks == 0 && !input.shortNodes.empty()) {
    status.conditions.push_back(
        condition(previous, api::kConditionExhausted, true, kReasonNoFreeBlocks,
                  fmt::format("no free /{} block left in {} ({} of {} allocated{}); {} node(s) "
                              "below minFreeIPsPerNode: {}",
                              set->blockLength(), ranges, set->allocatedCount(), set->usableCount(),
                              heldNote, input.shortNodes.size(), namesText(input.shortNodes)),
                  input));
  } else if (free_blocks == 0) {
    status.conditions.push_back(
        condition(previous, api::kConditionExhausted, false, kReasonFullButNoNodeShort,
                  fmt::format("no free block in {} ({} of {} allocated{}), but every node has at "
                              "least minFreeIPsPerNode free",
                              ranges, set->allocatedCount(), set->usableCount(), heldNote),
                  input));
  } else {
    status.conditions.push_back(condition(
        previous, api::kConditionExhausted, false, kReasonBlocksAvailable,
        fmt::format("{} of {} blocks free{}", free_blocks, set->usableCount(), heldNote), input));
  }
  return status;
}

}  // namespace vnetipam::controller
