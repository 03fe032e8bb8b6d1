// What the controller needs of the cloud, as a small interface so the reconcilers are tested
// against an in-memory fake (unit/controller/fake_cloud.h). AzureCloud (cloud.cpp) implements it
// on lib/azure's NetworkClient. With --cloud=none there is no cloud at all (a null pointer).
//
// A node's VM comes from its spec.providerID, read by lib/azure's parseProviderId (the one
// parser): a standalone VM or a VM of a Flexible scale set is programmed like any other; a VM of
// a Uniform scale set never is (refuseNode, docs/design.md 3.3).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/azure/error.h"
#include "lib/azure/network.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

// Why the cloud can never put a prefix on a node's NIC, decided from its providerID alone (no
// call to the cloud). Terminal: nothing about the node but its providerID can change it.
struct NodeRefusal {
  std::string reason;   // a condition reason (CamelCase, kReasonUniformScaleSetUnsupported)
  std::string message;  // what the node is, why it is refused, and what to run instead
};

// A Node whose providerID names a VM of a Uniform scale set: the published API has no way to put
// a prefix on its NIC. The Node's VnetIpamNICProgrammed condition and its Warning Event say so.
inline constexpr std::string_view kReasonUniformScaleSetUnsupported = "UniformScaleSetUnsupported";

struct NicState {
  std::string id;                      // ARM id of the NIC
  std::vector<ipam::Prefix> prefixes;  // prefixes on its ipConfigurations, as read
  // The prefixes of `prefixes` on ipConfigurations this project named (azure::kIpConfigNamePrefix):
  // the only ones the orphan sweep (orphan_sweep.h) may take off.
  std::vector<ipam::Prefix> ours;
  std::string vmId;  // properties.virtualMachine.id; empty for a NIC attached to no VM
  // The NIC as the cloud returned it (AzureCloud; a fake leaves it empty), so that a write can
  // build on this read instead of reading the NIC again.
  std::optional<azure::NetworkInterface> read;
};

// An ipConfiguration in a subnet that this project named (on a standalone NIC; a scale-set VM's
// NIC, a load balancer's frontend or anything else that takes an address in the subnet is not
// one): the NIC it is on, and the prefix its name stands for (nullopt when the name, though of
// our form, stands for none).
struct OwnIpConfiguration {
  std::string nicId;
  std::optional<ipam::Prefix> prefix;
  bool operator==(const OwnIpConfiguration&) const = default;
};

// A VNET subnet as one GET reads it.
struct CloudSubnet {
  std::vector<ipam::Prefix> prefixes;  // its address prefixes, IPv4 first when it has both
  // The ipConfigurations in it that this project named, of any NIC, in the subnet's order: the
  // carve and the orphan sweep (orphan_sweep.h) find our prefixes on NICs by them.
  std::vector<OwnIpConfiguration> ours;
};

// A VM and its primary NIC, as a list of the resource group's NICs shows them.
struct VmNic {
  std::string vmId;
  std::string nicId;
};

class Cloud {
 public:
  virtual ~Cloud() = default;

  // Reads a VNET subnet (one GET). kNotFound when it is gone.
  virtual azure::Result<CloudSubnet> readSubnet(std::string_view subnetId) = 0;
  // The ARM id of the primary NIC of the VM named by a node's spec.providerID. kInvalidArgument,
  // with no call made, for a providerID that names no VM or names one refuseNode refuses.
  virtual azure::Result<std::string> primaryNicOfNode(std::string_view providerID) = 0;
  // The refusal of a node this cloud can never program (a VM of a Uniform scale set), nullopt for
  // any other providerID (one that does not parse included: finding its NIC reports that). The
  // controller carves such a node no block and makes no call to the cloud for it. Pure: the rule
  // is the providerID's, so it is defined here once, for AzureCloud and the tests' fake alike.
  virtual std::optional<NodeRefusal> refuseNode(std::string_view providerID) const;
  // The primary NIC of every VM whose NICs are in resource group `resourceGroupId`
  // ("/subscriptions/<id>/resourceGroups/<rg>"): a list of its NICs, one GET per page
  // (NicDirectory decides when that is cheaper than a VM GET per node). `onPage` gets each page's
  // primary NICs as the page arrives; returns the pages the list took. An error may come after
  // some pages were handed over.
  virtual azure::Result<int> listPrimaryNics(
      std::string_view resourceGroupId,
      const std::function<void(std::span<const VmNic> page)>& onPage) = 0;
  // Reads a NIC (a GET). kNotFound when it is gone.
  virtual azure::Result<NicState> readNic(std::string_view nicId) = 0;
  // Makes the NIC `nic` (as readNic returned it) carry exactly `desired` among this project's
  // prefixes, in one PUT built on that read: no read before it (unless the NIC changed since, a
  // 412), and none after an operation that Succeeded. Success means the cloud said the write took.
  // An error may mean the outcome is unknown; the caller reads again.
  virtual azure::Result<void> setNicPrefixes(const NicState& nic,
                                             std::span<const ipam::Prefix> desired) = 0;
  // The usage list of a VNET: per subnet, the addresses in use (any holder, ours included).
  // Read on a slow period by SubnetUsagePoller (subnet_usage.h), never on a node's path.
  virtual azure::Result<std::vector<azure::SubnetUsage>> subnetUsages(std::string_view vnetId) = 0;
  // Takes exactly `prefixes` off the NIC, only from ipConfigurations this project named, and
  // nothing else: a GET, then a PUT with If-Match of what it read less those (a 412 reads again).
  // Returns the prefixes it took off (none when none was there; no PUT then). An error may mean
  // the outcome is unknown.
  virtual azure::Result<std::vector<ipam::Prefix>> removeNicPrefixes(
      std::string_view nicId, std::span<const ipam::Prefix> prefixes) = 0;
};

class AzureCloud final : public Cloud {
 public:
  // `network` must outlive this. Thread-safe as NetworkClient is.
  explicit AzureCloud(azure::NetworkClient& network) : network_(network) {}

  azure::Result<CloudSubnet> readSubnet(std::string_view subnetId) override;
  azure::Result<std::string> primaryNicOfNode(std::string_view providerID) override;
  azure::Result<int> listPrimaryNics(
      std::string_view resourceGroupId,
      const std::function<void(std::span<const VmNic> page)>& onPage) override;
  azure::Result<NicState> readNic(std::string_view nicId) override;
  azure::Result<void> setNicPrefixes(const NicState& nic,
                                     std::span<const ipam::Prefix> desired) override;
  azure::Result<std::vector<azure::SubnetUsage>> subnetUsages(std::string_view vnetId) override;
  azure::Result<std::vector<ipam::Prefix>> removeNicPrefixes(
      std::string_view nicId, std::span<const ipam::Prefix> prefixes) override;

 private:
  azure::NetworkClient& network_;
};

}  // namespace vnetipam::controller
