#include "controller/cloud.h"

#include <algorithm>

#include <fmt/format.h>

namespace vnetipam::controller {

azure::Result<std::vector<ipam::Prefix>> AzureCloud::subnetPrefixes(std::string_view subnetId) {
  auto subnet = network_.getSubnet(subnetId);
  if (!subnet) return std::unexpected(std::move(subnet.error()));
  std::vector<ipam::Prefix> prefixes;
  for (const std::string& text : subnet->addressPrefixes) {
    auto prefix = ipam::Prefix::parse(text);
    if (!prefix) {
      return azure::fail(azure::ErrorCode::kBadResponse,
                         fmt::format("subnet {}: addressPrefix \"{}\": {}", subnetId, text,
                                     prefix.error().message));
    }
    prefixes.push_back(*prefix);
  }
  std::ranges::stable_sort(prefixes, [](const ipam::Prefix& a, const ipam::Prefix& b) {
    return a.family() == ipam::Family::kV4 && b.family() != ipam::Family::kV4;
  });
  return prefixes;
}

azure::Result<std::string> AzureCloud::primaryNicOfNode(std::string_view providerID) {
  auto vm = network_.getVirtualMachineOfNode(providerID);
  if (!vm) return std::unexpected(std::move(vm.error()));
  if (vm->nics.empty()) {
    return azure::fail(azure::ErrorCode::kNotFound, fmt::format("VM {} has no NIC", vm->id));
  }
  const auto primary = std::ranges::find_if(vm->nics, [](const auto& nic) { return nic.primary; });
  // A VM with one NIC may not mark it primary.
  return primary != vm->nics.end() ? primary->id : vm->nics.front().id;
}

namespace {

NicState nicState(azure::NetworkInterface nic, std::string_view fallbackId) {
  NicState state{.id = nic.id.empty() ? std::string(fallbackId) : nic.id, .prefixes = {}};
  for (const azure::NicIpConfig& config : nic.ipConfigs) {
    if (auto prefix = config.prefix()) state.prefixes.push_back(*prefix);
  }
  state.resource = std::make_shared<const azure::NetworkInterface>(std::move(nic));
  return state;
}

}  // namespace

azure::Result<NicState> AzureCloud::readNic(std::string_view nicId) {
  auto nic = network_.getNic(nicId);
  if (!nic) return std::unexpected(std::move(nic.error()));
  return nicState(std::move(*nic), nicId);
}

azure::Result<NicState> AzureCloud::setNicPrefixes(const NicState& read,
                                                   std::span<const ipam::Prefix> desired) {
  azure::NetworkInterface base;
  if (read.resource) {
    base = *read.resource;
  } else {
    auto nic = network_.getNic(read.id);
    if (!nic) return std::unexpected(std::move(nic.error()));
    base = std::move(*nic);
  }
  auto change = network_.setNicPrefixes(std::move(base), desired);
  if (!change) return std::unexpected(std::move(change.error()));
  return nicState(std::move(change->nic), read.id);
}

azure::Result<std::vector<azure::SubnetUsage>> AzureCloud::subnetUsages(std::string_view vnetId) {
  return network_.listVirtualNetworkUsage(vnetId);
}

}  // namespace vnetipam::controller
