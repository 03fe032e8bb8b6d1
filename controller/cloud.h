// What the controller needs of the cloud, as a small interface so the reconcilers are tested
// against an in-memory fake (unit/controller/fake_cloud.h). AzureCloud (cloud.cpp) implements it
// on lib/azure's NetworkClient. With --cloud=none there is no cloud at all (a null pointer).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/azure/error.h"
#include "lib/azure/network.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

struct NicState {
  std::string id;                      // ARM id of the NIC
  std::vector<ipam::Prefix> prefixes;  // prefixes on its ipConfigurations, as read
};

class Cloud {
 public:
  virtual ~Cloud() = default;

  // The address prefixes of a VNET subnet (IPv4 first when it has both). kNotFound when gone.
  virtual azure::Result<std::vector<ipam::Prefix>> subnetPrefixes(std::string_view subnetId) = 0;
  // The ARM id of the primary NIC of the VM named by a node's spec.providerID.
  virtual azure::Result<std::string> primaryNicOfNode(std::string_view providerID) = 0;
  // Reads a NIC (a GET). kNotFound when it is gone.
  virtual azure::Result<NicState> readNic(std::string_view nicId) = 0;
  // Makes the NIC carry exactly `desired` among this project's prefixes, in one PUT. An error
  // may mean the outcome is unknown; the caller reads again.
  virtual azure::Result<void> setNicPrefixes(std::string_view nicId,
                                             std::span<const ipam::Prefix> desired) = 0;
  // The usage list of a VNET: per subnet, the addresses in use (any holder, ours included).
  // Read on a slow period by SubnetUsagePoller (subnet_usage.h), never on a node's path.
  virtual azure::Result<std::vector<azure::SubnetUsage>> subnetUsages(std::string_view vnetId) = 0;
};

class AzureCloud final : public Cloud {
 public:
  // `network` must outlive this. Thread-safe as NetworkClient is.
  explicit AzureCloud(azure::NetworkClient& network) : network_(network) {}

  azure::Result<std::vector<ipam::Prefix>> subnetPrefixes(std::string_view subnetId) override;
  azure::Result<std::string> primaryNicOfNode(std::string_view providerID) override;
  azure::Result<NicState> readNic(std::string_view nicId) override;
  azure::Result<void> setNicPrefixes(std::string_view nicId,
                                     std::span<const ipam::Prefix> desired) override;
  azure::Result<std::vector<azure::SubnetUsage>> subnetUsages(std::string_view vnetId) override;

 private:
  azure::NetworkClient& network_;
};

}  // namespace vnetipam::controller
