// The ARM operations the controller needs, typed: VNETs and subnets, VMs and their NICs, and IP
// prefixes on NICs. Built on ArmClient, which owns retries, budgets and long-running operations.
//
// Each typed resource keeps the JSON it was read from (`raw`), so a PUT writes back every field
// this code does not model: a NIC PUT replaces the whole NIC.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/azure/arm_client.h"
#include "lib/azure/error.h"
#include "lib/ipam/ip.h"

namespace vnetipam::azure {

// api-versions. Microsoft.Network 2024-05-01 is the first stable version with
// privateIPAddressPrefixLength that has a verified example (reference §2a). The Compute version
// is [R] (not in the reference): 2023-09-01 is a stable version that has the VM networkProfile.
inline constexpr std::string_view kNetworkApiVersion = "2024-05-01";
inline constexpr std::string_view kComputeApiVersion = "2023-09-01";

// The prefix of ipConfiguration names this project writes; others on a NIC are never touched.
inline constexpr std::string_view kIpConfigNamePrefix = "vnetipam-";

struct Subnet {
  std::string id;
  std::string name;
  std::vector<std::string> addressPrefixes;  // addressPrefix and addressPrefixes, merged
  std::string provisioningState;
  // properties.ipConfigurations: the ids of every ipConfiguration in the subnet, of any NIC (and of
  // anything else that takes an address in it: load balancers' frontends, private endpoints).
  std::vector<std::string> ipConfigurationIds;
  nlohmann::json raw;
};

struct VirtualNetwork {
  std::string id;
  std::string name;
  std::string location;
  std::vector<std::string> addressPrefixes;
  std::vector<Subnet> subnets;
  nlohmann::json raw;
};

struct VirtualMachine {
  struct NicRef {
    std::string id;
    bool primary = false;
  };
  std::string id;
  std::string name;
  std::string location;
  std::vector<NicRef> nics;
  nlohmann::json raw;
};

struct NicIpConfig {
  std::string id;
  std::string name;
  bool primary = false;
  std::string privateIPAddress;     // "10.0.0.4", or "10.0.0.16/28" for a prefix
  std::optional<int> prefixLength;  // privateIPAddressPrefixLength
  std::string allocationMethod;     // "Static" or "Dynamic"
  std::string subnetId;
  std::string provisioningState;
  // The block this ipConfiguration carries, host bits masked (Azure may return 10.0.0.21 for
  // 10.0.0.16/28); nullopt for a single address.
  std::optional<ipam::Prefix> prefix() const;
};

struct NetworkInterface {
  std::string id;
  std::string name;
  std::string location;
  std::string etag;  // W/"guid"; sent back in If-Match
  std::string provisioningState;
  std::string virtualMachineId;
  std::vector<NicIpConfig> ipConfigs;
  nlohmann::json raw;
};

// One subnet's line of VirtualNetworks_ListUsage (GET .../virtualNetworks/{name}/usages, a
// VirtualNetworkListUsageResult paged by nextLink): "SubnetSpace", the addresses used in the
// subnet and its size. Azure reports -1 for both where it does not count a subnet (its example
// shows this for GatewaySubnet); such a value, and a missing one, is nullopt here. The spec does
// not say how an ipConfiguration carrying a prefix counts: see docs/design.md.
struct SubnetUsage {
  std::string subnetId;
  std::optional<std::int64_t> used;   // currentValue: "number of IPs used from the Subnet"
  std::optional<std::int64_t> limit;  // limit: "the size of the subnet"
};

// A NIC of a resource group as the group's list shows it: the VM it is on and whether it is that
// VM's primary NIC (properties.primary, which Azure sets on a NIC attached to a VM; read-only).
struct NicAttachment {
  std::string nicId;
  std::string virtualMachineId;
  bool primary = false;
};

// What setNicPrefixes did.
struct NicPrefixChange {
  // As written (its etag the one the write was made against), or as found if none was needed: the
  // NIC is not read again after a write whose operation Succeeded.
  NetworkInterface nic;
  std::vector<ipam::Prefix> added;    // ipConfigurations created
  std::vector<ipam::Prefix> removed;  // ipConfigurations deleted
  bool written = false;               // a PUT was needed
  int conflicts = 0;                  // 412s re-read and re-applied
};

// Parses ARM JSON into the types above. kBadResponse names the missing field.
Result<Subnet> parseSubnet(const nlohmann::json& doc);
Result<VirtualNetwork> parseVirtualNetwork(const nlohmann::json& doc);
Result<VirtualMachine> parseVirtualMachine(const nlohmann::json& doc);
Result<NetworkInterface> parseNetworkInterface(const nlohmann::json& doc);
// One VirtualNetworkUsage; nullopt for a usage that is not "SubnetSpace" (the only kind the spec
// defines, but the name says which, so another kind is skipped rather than misread).
Result<std::optional<SubnetUsage>> parseVirtualNetworkUsage(const nlohmann::json& doc);

// "vnetipam-10-240-0-16-28" for 10.240.0.16/28 (IPv6: ':' also becomes '-').
std::string ipConfigName(const ipam::Prefix& prefix);
// The prefix an ipConfiguration name of this project stands for: the inverse of ipConfigName, and
// nullopt for any name ipConfigName does not make (another owner's, or one edited by hand). Lets
// a subnet's list of ipConfiguration ids say which of our prefixes are on some NIC without a GET
// of each NIC.
std::optional<ipam::Prefix> prefixOfIpConfigName(std::string_view name);

// An ipConfiguration id of a standalone NIC split in two: ".../providers/Microsoft.Network/
// networkInterfaces/<nic>/ipConfigurations/<name>" -> {the NIC's id, <name>}. nullopt for any
// other id (a scale set's NIC, a load balancer's frontend, a private endpoint). Case as given.
struct NicConfigRef {
  std::string nicId;
  std::string name;
};
std::optional<NicConfigRef> parseNicIpConfigurationId(std::string_view id);

// The new ipConfigurations array for `nic` holding exactly `desired` among this project's
// prefix configs: the primary and every other ipConfiguration are kept as they are; a desired
// prefix some ipConfiguration already carries is kept; the project's configs not desired are
// dropped; missing ones are added (Static, privateIPAddress in CIDR form, prefix length, the
// primary's subnet, since Azure wants every ipConfiguration of a NIC in one subnet; in the
// order of `desired`). Pure. kInvalidArgument when a config must be added and the NIC has no
// primary ipConfiguration with a subnet.
struct IpConfigDiff {
  nlohmann::json ipConfigurations;
  std::vector<ipam::Prefix> added;
  std::vector<ipam::Prefix> removed;
  bool changed() const { return !added.empty() || !removed.empty(); }
};
Result<IpConfigDiff> diffNicPrefixes(const NetworkInterface& nic,
                                     std::span<const ipam::Prefix> desired);

// The new ipConfigurations array for `nic` without the ipConfigurations this project named that
// carry one of `prefixes`; every other ipConfiguration, this project's others included, is kept
// as read. Pure. `added` is always empty.
IpConfigDiff dropNicPrefixes(const NetworkInterface& nic, std::span<const ipam::Prefix> prefixes);

class NetworkClient {
 public:
  // `arm` must outlive the client. maxConflicts bounds the 412 re-reads of setNicPrefixes.
  explicit NetworkClient(ArmClient& arm, int maxConflicts = 5);

  // Ids are ARM resource ids ("/subscriptions/.../virtualNetworks/v").
  Result<VirtualNetwork> getVirtualNetwork(std::string_view vnetId);
  Result<Subnet> getSubnet(std::string_view subnetId);
  Result<VirtualMachine> getVirtualMachine(std::string_view vmId);
  // The VM's NICs, primary first.
  Result<std::vector<NetworkInterface>> getVirtualMachineNics(const VirtualMachine& vm);
  Result<NetworkInterface> getNic(std::string_view nicId);
  // PUT the whole NIC (nic.raw with nic.ipConfigs' changes already applied by the caller), with
  // If-Match: nic.etag when it is set. Returns the NIC as read after the operation.
  Result<NetworkInterface> putNic(const NetworkInterface& nic);
  // The NICs of the resource group `resourceGroupId` ("/subscriptions/<id>/resourceGroups/<rg>")
  // that are attached to a VM, all pages, keeping only the fields above of each NIC as its page
  // arrives (a page of NICs is large; a group may hold thousands). `onPage` gets each page's
  // attachments as the page arrives (a page may have none); returns the pages (GETs) the list
  // took. An error may come after some pages were handed over.
  Result<int> listNicAttachments(
      std::string_view resourceGroupId,
      const std::function<void(std::vector<NicAttachment>& page)>& onPage);
  // The usage of every subnet of the VNET (all pages).
  Result<std::vector<SubnetUsage>> listVirtualNetworkUsage(std::string_view vnetId);

  // Makes the NIC carry exactly `desired` among this project's prefix ipConfigurations, in one
  // PUT (see diffNicPrefixes). Reads the NIC, writes with If-Match, and on 412 reads again and
  // re-applies, up to maxConflicts times. No PUT when nothing changes. Idempotent.
  Result<NicPrefixChange> setNicPrefixes(std::string_view nicId,
                                         std::span<const ipam::Prefix> desired);
  // The same, from `nic` as the caller has just read it (no GET first; a 412 reads again).
  Result<NicPrefixChange> setNicPrefixes(NetworkInterface nic,
                                         std::span<const ipam::Prefix> desired);

  // Takes exactly these prefixes off the NIC, and only from ipConfigurations this project named
  // (dropNicPrefixes): reads the NIC, writes it with If-Match, and on 412 reads again and drops
  // them from what it then finds, up to maxConflicts times. What the NIC carries otherwise is never
  // computed here, so a concurrent writer that adds prefixes loses nothing. No PUT when none of
  // them is there (`removed` says which were).
  Result<NicPrefixChange> removeNicPrefixes(std::string_view nicId,
                                            std::span<const ipam::Prefix> prefixes);

 private:
  // PUT of `nic` with If-Match, without reading it back once the operation Succeeded.
  Result<void> writeNic(const NetworkInterface& nic);

  ArmClient& arm_;
  int maxConflicts_;
};

}  // namespace vnetipam::azure
