#include "azure-mock/address_index.h"

#include <tuple>

#include <fmt/format.h>

#include "azure-mock/state.h"

namespace vnetipam::azuremock {

void AddressIndex::hold(SubnetSlots& slots, Holder holder) {
  slots.longest = std::max(slots.longest, holder.last - holder.first + 1);
  const ipam::U128 first = holder.first;
  auto at = slots.byFirst.emplace(first, std::move(holder));
  if (!at->second.nicKey.empty()) byNic_[at->second.nicKey].push_back(Held{&slots, at});
}

void AddressIndex::addSubnet(const Subnet& subnet) {
  for (const ipam::Prefix& prefix : subnet.prefixes)
    addSubnetPrefix(subnet, prefix);
}

void AddressIndex::addSubnetPrefix(const Subnet& subnet, const ipam::Prefix& prefix) {
  auto& slots = subnets_[toLower(subnet.id)];
  const ipam::U128 first = prefix.first().bits();
  const ipam::U128 last = prefix.last().bits();
  const std::string owner = fmt::format("the reserved addresses of subnet {}", subnet.name);
  hold(slots, Holder{.first = first, .last = first + 3, .owner = owner, .reserved = true});
  hold(slots, Holder{.first = last, .last = last, .owner = owner, .reserved = true});
}

bool AddressIndex::onlyReservedIn(std::string_view subnetKey, const ipam::Prefix& prefix) const {
  const auto slots = subnets_.find(subnetKey);
  if (slots == subnets_.end()) return true;
  const auto& byFirst = slots->second.byFirst;
  // A holder that starts before the prefix cannot reach into it: holders lie inside one prefix.
  for (auto it = byFirst.lower_bound(prefix.first().bits());
       it != byFirst.end() && it->first <= prefix.last().bits(); ++it) {
    if (!it->second.reserved) return false;
  }
  return true;
}

void AddressIndex::removeSubnetPrefix(std::string_view subnetKey, const ipam::Prefix& prefix) {
  const auto slots = subnets_.find(subnetKey);
  if (slots == subnets_.end()) return;
  auto& byFirst = slots->second.byFirst;
  byFirst.erase(byFirst.lower_bound(prefix.first().bits()),
                byFirst.upper_bound(prefix.last().bits()));
}

void AddressIndex::addNic(const std::string& nicKey, const NetworkInterface& nic) {
  for (std::size_t i = 0; i < nic.ipConfigurations.size(); ++i) {
    const auto& c = nic.ipConfigurations[i];
    const auto p = c.prefix.value_or(ipam::Prefix::masked(c.address, 32));
    hold(subnets_[toLower(c.subnetId)],
         Holder{.first = p.first().bits(),
                .last = p.last().bits(),
                .owner = fmt::format("{}/ipConfigurations/{}", nic.id, c.name),
                .nicKey = nicKey,
                .configIndex = i});
  }
}

void AddressIndex::removeNic(std::string_view nicKey) {
  auto it = byNic_.find(nicKey);
  if (it == byNic_.end()) return;
  for (const auto& held : it->second)
    held.slots->byFirst.erase(held.at);
  byNic_.erase(it);
}

const AddressIndex::Holder* AddressIndex::findOverlap(std::string_view subnetKey, ipam::U128 first,
                                                      ipam::U128 last,
                                                      std::string_view ignoreNicKey) const {
  auto s = subnets_.find(subnetKey);
  if (s == subnets_.end()) return nullptr;
  const auto& slots = s->second;
  // Anything overlapping [first, last] starts in [first - (longest - 1), last].
  const ipam::U128 from = first >= slots.longest - 1 ? first - (slots.longest - 1) : 0;
  const Holder* best = nullptr;
  const auto rank = [](const Holder& h) {
    return std::tuple(!h.reserved, std::string_view(h.nicKey), h.configIndex);
  };
  for (auto it = slots.byFirst.lower_bound(from); it != slots.byFirst.end() && it->first <= last;
       ++it) {
    const Holder& h = it->second;
    if (h.last < first || (!h.reserved && h.nicKey == ignoreNicKey)) continue;
    if (best == nullptr || rank(h) < rank(*best)) best = &h;
  }
  return best;
}

AddressIndex::HeldCount AddressIndex::heldCount(std::string_view subnetKey) const {
  HeldCount count;
  const auto s = subnets_.find(subnetKey);
  if (s == subnets_.end()) return count;
  // NIC PUTs never let two holders overlap, so the sizes add up without double counting.
  for (const auto& [_, h] : s->second.byFirst)
    (h.reserved ? count.reserved : count.byConfigurations) += h.last - h.first + 1;
  return count;
}

std::vector<const AddressIndex::Holder*> AddressIndex::all() const {
  std::vector<const Holder*> out;
  for (const auto& [_, slots] : subnets_) {
    for (const auto& [__, h] : slots.byFirst)
      out.push_back(&h);
  }
  return out;
}

}  // namespace vnetipam::azuremock
