// What a Node's spec.providerID says about the Azure VM behind it. The cloud provider writes one
// of two forms:
//   azure:///subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<n>
//     a standalone VM, or a VM of a scale set in Flexible orchestration (those are ordinary VMs
//     with ordinary NICs; only a GET of the VM tells, by properties.virtualMachineScaleSet);
//   azure:///subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/
//       virtualMachineScaleSets/<ss>/virtualMachines/<instanceId>
//     a VM of a scale set in Uniform orchestration. Its NICs live under it
//     (.../virtualMachines/<instanceId>/networkInterfaces/<nic>) and the published API reads them
//     only (vmssNetworkInterface.json); the scale set's network configuration has no prefix
//     length (virtualMachineScaleSet.json). See docs/design.md.
// Pure: parses text, calls nothing.
#pragma once

#include <string>
#include <string_view>

#include "lib/azure/error.h"

namespace vnetipam::azure {

struct AzureVmRef {
  enum class Kind {
    kVirtualMachine,          // .../virtualMachines/<name>: standalone or Flexible
    kUniformScaleSetMachine,  // .../virtualMachineScaleSets/<ss>/virtualMachines/<instanceId>
  };
  Kind kind = Kind::kVirtualMachine;
  std::string subscriptionId;
  std::string resourceGroup;
  std::string name;        // the VM's name; for a uniform scale-set VM, its scale set's
  std::string instanceId;  // uniform scale-set VMs only: decimal digits

  // The VM's ARM resource id (without the "azure://" scheme), as written in the providerID.
  std::string resourceId() const;
  // "/subscriptions/<id>/resourceGroups/<rg>": the group the VM is in.
  std::string resourceGroupId() const;
  bool uniformScaleSet() const { return kind == Kind::kUniformScaleSetMachine; }
};

// kInvalidArgument, naming what is wrong, for anything but the two forms above: another scheme,
// segments missing, empty, . or .., or out of place, a query, fragment, percent-escape, whitespace
// or control character, or a non-numeric instance id. Segment keywords compare case-insensitively,
// as ARM ids do; names are kept as written.
Result<AzureVmRef> parseProviderId(std::string_view providerID);

}  // namespace vnetipam::azure
