#include "controller/cloud.h"

#include <algorithm>

#include <fmt/format.h>

#include "lib/azure/provider_id.h"

namespace vnetipam::controller {

namespace {

NodeRefusal uniformRefusal(std::string_view providerID, const azure::AzureVmRef& vm) {
  return NodeRefusal{
      .reason = std::string(kReasonUniformScaleSetUnsupported),
      .message = fmt::format(
          "providerID {} is instance {} of the Uniform scale set {}: Azure has no API that puts an "
          "IP prefix on the NIC of a Uniform scale set's VM, so vnet-ipam gives this node no "
          "block and pods on it get no address. Run the node pool as a scale set in Flexible "
          "orchestration, or as standalone VMs",
          providerID, vm.instanceId, vm.name)};
}

}  // namespace

std::optional<NodeRefusal> Cloud::refuseNode(std::string_view providerID) const {
  auto vm = azure::parseProviderId(providerID);
  if (!vm || !vm->uniformScaleSet()) return std::nullopt;
  return uniformRefusal(providerID, *vm);
}

azure::Result<CloudSubnet> AzureCloud::readSubnet(std::string_view subnetId) {
  auto subnet = network_.getSubnet(subnetId);
  if (!subnet) return std::unexpected(std::move(subnet.error()));
  CloudSubnet read;
  for (const std::string& id : subnet->ipConfigurationIds) {
    const auto ref = azure::parseNicIpConfigurationId(id);
    if (!ref || !ref->name.starts_with(azure::kIpConfigNamePrefix)) continue;
    read.ours.push_back(
        {.nicId = std::move(ref->nicId), .prefix = azure::prefixOfIpConfigName(ref->name)});
  }
  std::vector<ipam::Prefix>& prefixes = read.prefixes;
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
  return read;
}

azure::Result<std::string> AzureCloud::primaryNicOfNode(std::string_view providerID) {
  auto ref = azure::parseProviderId(providerID);
  if (!ref) return std::unexpected(std::move(ref.error()));
  if (ref->uniformScaleSet()) {
    // The controller does not ask (refuseNode); nothing is read for such a node either way.
    return azure::fail(azure::ErrorCode::kInvalidArgument,
                       uniformRefusal(providerID, *ref).message);
  }
  // A standalone VM or one of a Flexible scale set: an ordinary VM with ordinary NICs.
  auto vm = network_.getVirtualMachine(ref->resourceId());
  if (!vm) return std::unexpected(std::move(vm.error()));
  if (vm->nics.empty()) {
    return azure::fail(azure::ErrorCode::kNotFound, fmt::format("VM {} has no NIC", vm->id));
  }
  const auto primary = std::ranges::find_if(vm->nics, [](const auto& nic) { return nic.primary; });
  // A VM with one NIC may not mark it primary.
  return primary != vm->nics.end() ? primary->id : vm->nics.front().id;
}

azure::Result<int> AzureCloud::listPrimaryNics(
    std::string_view resourceGroupId,
    const std::function<void(std::span<const VmNic> page)>& onPage) {
  return network_.listNicAttachments(resourceGroupId, [&onPage](
                                                          std::vector<azure::NicAttachment>& nics) {
    // Only a NIC Azure marks primary: a VM's one NIC in this group may be its secondary one,
    // with the primary in another group (the VM GET answers for such a VM).
    std::vector<VmNic> primary;
    for (azure::NicAttachment& nic : nics) {
      if (nic.primary)
        primary.push_back({.vmId = std::move(nic.virtualMachineId), .nicId = std::move(nic.nicId)});
    }
    onPage(primary);
  });
}

azure::Result<NicState> AzureCloud::readNic(std::string_view nicId) {
  auto nic = network_.getNic(nicId);
  if (!nic) return std::unexpected(std::move(nic.error()));
  NicState state{.id = nic->id.empty() ? std::string(nicId) : nic->id,
                 .prefixes = {},
                 .ours = {},
                 .vmId = nic->virtualMachineId,
                 .read = std::nullopt};
  for (const azure::NicIpConfig& config : nic->ipConfigs) {
    auto prefix = config.prefix();
    if (!prefix) continue;
    state.prefixes.push_back(*prefix);
    if (config.name.starts_with(azure::kIpConfigNamePrefix)) state.ours.push_back(*prefix);
  }
  state.read = std::move(*nic);
  return state;
}

azure::Result<void> AzureCloud::setNicPrefixes(const NicState& nic,
                                               std::span<const ipam::Prefix> desired) {
  auto change = nic.read ? network_.setNicPrefixes(*nic.read, desired)
                         : network_.setNicPrefixes(nic.id, desired);
  if (!change) return std::unexpected(std::move(change.error()));
  return {};
}

azure::Result<std::vector<azure::SubnetUsage>> AzureCloud::subnetUsages(std::string_view vnetId) {
  return network_.listVirtualNetworkUsage(vnetId);
}

azure::Result<std::vector<ipam::Prefix>> AzureCloud::removeNicPrefixes(
    std::string_view nicId, std::span<const ipam::Prefix> prefixes) {
  auto change = network_.removeNicPrefixes(nicId, prefixes);
  if (!change) return std::unexpected(std::move(change.error()));
  return std::move(change->removed);
}

}  // namespace vnetipam::controller
