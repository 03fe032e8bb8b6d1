// The mock's model of the Azure resources the controller uses: virtual networks and subnets,
// virtual machines, NICs with their ipConfigurations, and NIC PUT and DELETE long-running
// operations.
//
// Pure: no sockets, no files, no global clock or randomness. Time comes from an injected Clock
// (async operations complete when it passes their due time) and etags/ids from a RandomSource.
// Resources are keyed by their ARM id compared case-insensitively, as ARM does. Not thread-safe:
// ArmHandler serialises every call.
//
// Scale: every lookup is by lower-cased id, the addresses each subnet's NICs hold are in an
// AddressIndex kept in step on every change (PUT, an operation's completion or rollback, load),
// and running operations are queued by due time. So loading a topology is O(n log n) and a NIC
// PUT costs the same whatever the number of NICs; only a new Dynamic configuration walks the
// holders below the first free slot of its subnet.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "azure-mock/address_index.h"
#include "azure-mock/random.h"
#include "azure-mock/route_programmer.h"
#include "lib/base/clock.h"
#include "lib/ipam/ip.h"

namespace vnetipam::azuremock {

// An ARM failure: HTTP status plus the CloudError fields.
struct CloudError {
  int status = 400;
  std::string code;
  std::string message;
  std::string target;
  nlohmann::json details = nlohmann::json::array();

  nlohmann::json toJson() const;
};

struct StateOptions {
  // The only prefix length a NIC ipConfiguration may carry (Azure takes /28 only).
  int prefixLength = 28;
  // How long a NIC PUT's async operation stays InProgress.
  std::chrono::milliseconds asyncDelay{1000};
  // Azure documents 256 private IPs per NIC; a prefix configuration counts as one here (unverified
  // whether Azure counts it as 1 or 16).
  std::size_t maxIpConfigsPerNic = 256;
};

struct Subnet {
  std::string id;
  std::string name;
  std::string vnetId;
  // Its address prefixes, in the order given (addressPrefix, or addressPrefixes); never empty.
  std::vector<ipam::Prefix> prefixes;

  bool contains(const ipam::Prefix& p) const;
};

struct VirtualNetwork {
  std::string id;
  std::string name;
  std::string location;
  std::string etag;
  std::string resourceGuid;
  std::vector<ipam::Prefix> addressSpace;
  std::vector<std::string> subnetIds;
};

// A scale set (virtualMachineScaleSet.json, Microsoft.Compute 2023-09-01). Its orchestrationMode
// decides what its VMs are: "Uniform" VMs are children of the scale set
// (.../virtualMachineScaleSets/{name}/virtualMachines/{instanceId}) whose NICs live under them
// and are read through Microsoft.Compute paths only; "Flexible" VMs are ordinary VMs with
// ordinary NICs that name the scale set in properties.virtualMachineScaleSet.
struct VirtualMachineScaleSet {
  std::string id;
  std::string name;
  std::string location;
  std::string orchestrationMode;  // "Uniform" or "Flexible"
};

struct VirtualMachine {
  std::string id;
  std::string name;
  std::string location;
  std::string vmId;
  std::vector<std::string> nicIds;
  std::string scaleSetId;  // the scale set it is in, or empty
  std::string instanceId;  // set for a uniform scale set's VM only
};

struct IpConfiguration {
  std::string name;
  bool primary = false;
  bool dynamic = true;
  std::string subnetId;
  // Set on a prefix configuration; then `address` is unused.
  std::optional<ipam::Prefix> prefix;
  ipam::IPAddress address;
  std::string etag;
};

struct NetworkInterface {
  std::string id;
  std::string name;
  std::string location;
  std::string etag;
  std::string resourceGuid;
  std::string macAddress;
  std::string virtualMachineId;
  bool primaryOnVm = false;  // the primary NIC of virtualMachineId (properties.primary)
  std::string provisioningState = "Succeeded";
  bool enableIPForwarding = false;
  bool enableAcceleratedNetworking = false;
  nlohmann::json tags = nlohmann::json::object();
  std::vector<IpConfiguration> ipConfigurations;
  // The id of the operation still InProgress on this NIC, or empty.
  std::string pendingOperationId;

  const IpConfiguration* primaryConfiguration() const;
};

enum class OperationStatus { kInProgress, kSucceeded, kFailed };
std::string_view toString(OperationStatus s);

struct AsyncOperation {
  std::string id;
  std::string subscriptionId;
  std::string location;
  std::string nicId;
  OperationStatus status = OperationStatus::kInProgress;
  base::Clock::TimePoint due;
  bool willFail = false;
  // A DELETE: the NIC reads as Deleting until the operation completes, then it is gone.
  bool deletes = false;
  std::optional<CloudError> error;
  // The NIC as it was before the PUT (nullopt when the PUT created it): restored if it fails, and
  // what the SDN routes while the operation runs.
  std::optional<NetworkInterface> previous;
};

// What VirtualNetworks_ListUsage reports for one subnet ("SubnetSpace": "Indicates number of
// IPs used from the Subnet" and "the size of the subnet", in the 2024-05-01 spec). Neither the
// spec nor the docs say how a prefix ipConfiguration counts; the mock counts every address of
// the prefix, since no other resource can take any of them (docs/design.md). Whether Azure's
// limit leaves out the 5 reserved addresses is not documented either; the mock leaves them out
// (the spec's example shows a limit of 3, what a /29 has left after them).
struct SubnetUsage {
  std::string subnetId;
  ipam::U128 used = 0;   // addresses held by ipConfigurations of any NIC
  ipam::U128 limit = 0;  // the subnet's addresses less Azure's reserved ones
};

struct NicPutPreconditions {
  std::optional<std::string> ifMatch;
  std::optional<std::string> ifNoneMatch;
};

struct NicPutResult {
  bool created = false;
  std::string operationId;
};

struct NicDeleteResult {
  bool found = false;  // false: there was no such NIC, nothing to do
  std::string operationId;
};

class MockState {
 public:
  MockState(StateOptions options, base::Clock& clock, RandomSource& random);

  // Replaces everything with a topology document (see testdata/topology.example.json) or a state
  // document written by toJson(). On error nothing is kept and the message names the entry.
  std::expected<void, std::string> load(const nlohmann::json& doc);
  // The whole state, loadable by load(): what --state-file persists and /mock/state shows.
  nlohmann::json toJson() const;

  // Completes every operation whose due time has passed. Returns true if anything changed.
  bool advance();
  // Bumped by every change; the server persists when it moves.
  std::uint64_t revision() const { return revision_; }

  const VirtualNetwork* findVirtualNetwork(std::string_view id) const;
  const Subnet* findSubnet(std::string_view id) const;
  const VirtualMachine* findVirtualMachine(std::string_view id) const;
  const VirtualMachineScaleSet* findScaleSet(std::string_view id) const;
  const NetworkInterface* findNic(std::string_view id) const;
  const AsyncOperation* findOperation(std::string_view id) const;
  // NICs whose id starts with the given resource group id, in id order.
  std::vector<const NetworkInterface*> nicsInResourceGroup(std::string_view resourceGroupId) const;
  // One entry per subnet of the VNET, in the VNET's subnet order.
  std::vector<SubnetUsage> subnetUsages(const VirtualNetwork& vnet) const;
  // ipConfiguration ids that reference the subnet, in NIC id order.
  std::vector<std::string> ipConfigurationIdsInSubnet(std::string_view subnetId) const;
  bool resourceGroupExists(std::string_view resourceGroupId) const;
  template <typename F>
  void forEachNic(F&& f) const {
    for (const auto& [_, nic] : nics_)
      f(nic);
  }
  bool subscriptionExists(std::string_view subscriptionId) const;

  // Creates or replaces the NIC at `nicId` from an ARM NIC body (the whole resource: client read
  // fields are ignored). Applies every rule (see state.cpp) and starts an async operation with
  // the given id that completes after options.asyncDelay, failing then if `failOperation`.
  std::expected<NicPutResult, CloudError> putNic(std::string_view nicId, const nlohmann::json& body,
                                                 const NicPutPreconditions& preconditions,
                                                 std::string operationId, bool failOperation);

  // Starts deleting the NIC at `nicId`: it reads as provisioningState Deleting and keeps its
  // addresses and routes until the operation with the given id completes (after
  // options.asyncDelay), then it is gone. Refused (400 NicInUse) while a VM holds the NIC and
  // (409) while another operation runs on it; an unknown NIC is no error (found = false).
  std::expected<NicDeleteResult, CloudError> deleteNic(std::string_view nicId,
                                                       std::string operationId);

  // Sets the address prefixes of an existing subnet from a subnet body's properties
  // (addressPrefix, or addressPrefixes; other properties are ignored), as
  // Subnets_CreateOrUpdate does: each IPv4, /29 or shorter, inside the VNET's address space and
  // overlapping no other prefix of the VNET's subnets (400 NetcfgSubnetRangeOutsideVnet,
  // NetcfgSubnetRangesOverlap); a prefix may go only while no ipConfiguration holds an address in
  // it (400 InUseSubnetCannotBeUpdated). kNotFound-like 404 when the subnet is not there.
  std::expected<const Subnet*, CloudError> setSubnetPrefixes(std::string_view subnetId,
                                                             const nlohmann::json& body);

  // Every prefix block whose NIC configuration has been committed -> that NIC's primary IP.
  Routes routes() const;

  // Who holds which addresses of each subnet, kept in step with the NICs.
  const AddressIndex& addressIndex() const { return index_; }
  // For tests: rebuilds the indexes from the resources and compares; the message names the
  // first difference.
  std::expected<void, std::string> checkIndexes() const;

  const StateOptions& options() const { return options_; }

 private:
  // Reads a document for load(), section by section (state.cpp).
  class Loader;

  std::string newEtag();
  // Stores a new operation; it completes at once without an async delay, else when due.
  void startOperation(AsyncOperation op);
  void complete(AsyncOperation& op);
  // Every change to nics_ goes through these two, which keep index_ in step.
  void storeNic(const std::string& key, NetworkInterface nic);
  void eraseNic(const std::string& key);

  StateOptions options_;
  base::Clock& clock_;
  RandomSource& random_;
  std::uint64_t revision_ = 0;
  // Keys are lower-cased ARM ids.
  std::map<std::string, VirtualNetwork> vnets_;
  std::map<std::string, Subnet> subnets_;
  // The prefixes `texts` (a JSON array) of a subnet of `vnet`, checked as setSubnetPrefixes
  // says; `selfId`, the subnet itself, is skipped in the overlap check.
  std::expected<std::vector<ipam::Prefix>, CloudError> checkSubnetPrefixes(
      const nlohmann::json& texts, const VirtualNetwork& vnet, std::string_view where,
      std::string_view selfId) const;
  std::map<std::string, VirtualMachine> vms_;  // uniform scale-set VMs too, by their id
  std::map<std::string, VirtualMachineScaleSet> scaleSets_;
  std::map<std::string, NetworkInterface> nics_;
  std::map<std::string, AsyncOperation> operations_;
  std::map<std::string, std::string> resourceGroups_;  // lower-cased id -> id
  AddressIndex index_;
  // The operations still InProgress: (due, lower-cased id).
  std::set<std::pair<base::Clock::TimePoint, std::string>> pendingOperations_;
};

std::string toLower(std::string_view s);

}  // namespace vnetipam::azuremock
