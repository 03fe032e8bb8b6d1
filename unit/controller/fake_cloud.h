// An in-memory Cloud for the controller's unit tests: VMs by providerID, NICs with prefixes,
// subnets; counts every call and fails the next one of a kind (or every NIC PUT) on request.
// Every prefix on a NIC is on an ipConfiguration named as this project names them
// (azure::ipConfigName) unless setForeign says otherwise; placeNic puts a NIC in a subnet, so the
// subnet lists its ipConfigurations, and ties it to a VM.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "controller/cloud.h"
#include "controller/orphan_sweep.h"
#include "lib/azure/network.h"
#include "lib/azure/provider_id.h"

namespace vnetipam::controller::testing {

class FakeCloud final : public Cloud {
 public:
  // The VM `providerID` names has NIC `nicId` (its primary), attached to it.
  void addNode(const std::string& providerID, const std::string& nicId) {
    std::lock_guard lock(mutex_);
    nicOfNode_[providerID] = nicId;
    nics_[nicId];
    if (auto vm = azure::parseProviderId(providerID)) vmOfNic_[nicId] = vm->resourceId();
  }
  void setSubnet(const std::string& id, std::vector<ipam::Prefix> prefixes) {
    std::lock_guard lock(mutex_);
    subnets_[id] = std::move(prefixes);
  }
  // The VM is deleted (its NIC stays): no VM GET or list finds it.
  void removeVm(const std::string& providerID) {
    std::lock_guard lock(mutex_);
    nicOfNode_.erase(providerID);
  }
  // The NIC is deleted: reading it is kNotFound.
  void removeNic(const std::string& nicId) {
    std::lock_guard lock(mutex_);
    nics_.erase(nicId);
  }
  void setNic(const std::string& nicId, std::vector<ipam::Prefix> prefixes) {
    std::lock_guard lock(mutex_);
    nics_[nicId] = std::move(prefixes);
  }
  std::vector<ipam::Prefix> nic(const std::string& nicId) {
    std::lock_guard lock(mutex_);
    auto prefixes = nics_[nicId];
    std::ranges::sort(prefixes);
    return prefixes;
  }
  // The VNET's usage list, as subnetUsages answers it; an error instead with failUsages.
  void setUsages(const std::string& vnetId, std::vector<azure::SubnetUsage> usages) {
    std::lock_guard lock(mutex_);
    usages_[vnetId] = std::move(usages);
  }
  void failUsages(std::optional<azure::Error> error) {
    std::lock_guard lock(mutex_);
    usageError_ = std::move(error);
  }
  void failNextPut() {
    std::lock_guard lock(mutex_);
    failPut_ = true;
  }
  // Every PUT fails with `error` (as Azure's answer would make the client fail) until
  // stopFailingPuts().
  void failPuts(azure::Error error) {
    std::lock_guard lock(mutex_);
    putError_ = std::move(error);
  }
  void stopFailingPuts() {
    std::lock_guard lock(mutex_);
    putError_.reset();
  }
  // A PUT that would add `prefix` to a NIC fails with `error`, as Azure refuses a prefix another
  // resource holds an address in (nullopt: accepted again).
  void refuseAdding(const ipam::Prefix& prefix, std::optional<azure::Error> error) {
    std::lock_guard lock(mutex_);
    if (error) {
      refused_[prefix] = std::move(*error);
    } else {
      refused_.erase(prefix);
    }
  }

  // The NIC's ipConfigurations are in `subnetId` (readSubnet lists them) and it is
  // attached to `vmId` ("" for none).
  void placeNic(const std::string& nicId, const std::string& subnetId, const std::string& vmId) {
    std::lock_guard lock(mutex_);
    nics_[nicId];
    subnetOfNic_[nicId] = subnetId;
    vmOfNic_[nicId] = vmId;
  }
  // These prefixes of the NIC are on ipConfigurations someone else named.
  void setForeign(const std::string& nicId, std::vector<ipam::Prefix> prefixes) {
    std::lock_guard lock(mutex_);
    foreign_[nicId] = std::move(prefixes);
  }
  // The next removeNicPrefixes fails (its outcome unknown).
  void failNextRemove() {
    std::lock_guard lock(mutex_);
    failRemove_ = true;
  }

  int puts = 0;
  int reads = 0;
  int vmReads = 0;                           // primaryNicOfNode calls (a GET of the VM each)
  int lists = 0;                             // listPrimaryNics calls
  int listPages = 1;                         // what each list says it took
  std::optional<azure::Error> listError;     // every list fails with it
  std::function<void(int page)> beforePage;  // see listPrimaryNics
  int subnetReads = 0;
  // removeNicPrefixes calls: the NIC and the prefixes asked for.
  std::vector<std::pair<std::string, std::vector<ipam::Prefix>>> removes;
  std::vector<std::string> usageReads;  // the VNET ids subnetUsages was asked for
  std::vector<std::vector<ipam::Prefix>> putBodies;

  azure::Result<std::string> primaryNicOfNode(std::string_view providerID) override {
    std::lock_guard lock(mutex_);
    ++vmReads;
    const auto found = nicOfNode_.find(std::string(providerID));
    if (found == nicOfNode_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no VM");
    return found->second;
  }
  // The VMs addNode made in the group, each with its NIC as it is now, handed over in `listPages`
  // pages (the VMs in the order of their providerIDs, split as evenly as they go; the last pages
  // may be empty). `beforePage`, when set, is called (without the fake's lock) before each page
  // is handed over, with the page's index.
  azure::Result<int> listPrimaryNics(
      std::string_view resourceGroupId,
      const std::function<void(std::span<const VmNic> page)>& onPage) override {
    std::vector<VmNic> vms;
    int pages = 0;
    {
      std::lock_guard lock(mutex_);
      ++lists;
      if (listError) return std::unexpected(*listError);
      pages = std::max(1, listPages);
      for (const auto& [providerID, nicId] : nicOfNode_) {
        auto vm = azure::parseProviderId(providerID);
        if (vm && !vm->uniformScaleSet() &&
            armIdKey(vm->resourceGroupId()) == armIdKey(resourceGroupId)) {
          vms.push_back({.vmId = vm->resourceId(), .nicId = nicId});
        }
      }
    }
    const std::size_t perPage =
        (vms.size() + static_cast<std::size_t>(pages) - 1) / static_cast<std::size_t>(pages);
    for (int page = 0; page < pages; ++page) {
      if (beforePage) beforePage(page);
      const std::size_t from = std::min(vms.size(), static_cast<std::size_t>(page) * perPage);
      const std::size_t to = std::min(vms.size(), from + perPage);
      onPage(std::span<const VmNic>(vms).subspan(from, to - from));
    }
    return pages;
  }
  azure::Result<NicState> readNic(std::string_view nicId) override {
    std::lock_guard lock(mutex_);
    ++reads;
    const auto found = nics_.find(std::string(nicId));
    if (found == nics_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no NIC");
    NicState state{.id = std::string(nicId),
                   .prefixes = found->second,
                   .ours = {},
                   .vmId = {},
                   .read = std::nullopt};
    for (const ipam::Prefix& p : found->second) {
      if (!isForeign(found->first, p)) state.ours.push_back(p);
    }
    if (auto vm = vmOfNic_.find(found->first); vm != vmOfNic_.end()) state.vmId = vm->second;
    return state;
  }
  // Runs (once, then cleared) at the start of the next PUT, with no lock held: what happens
  // elsewhere while a PUT is on its way.
  std::function<void()> duringNextPut;

  azure::Result<void> setNicPrefixes(const NicState& read,
                                     std::span<const ipam::Prefix> desired) override {
    if (auto hook = std::exchange(duringNextPut, nullptr)) hook();
    const std::string& nicId = read.id;
    std::lock_guard lock(mutex_);
    ++puts;
    putBodies.emplace_back(desired.begin(), desired.end());
    if (failPut_) {
      failPut_ = false;
      return azure::fail(azure::ErrorCode::kTransport, "injected: connection reset");
    }
    if (putError_) return std::unexpected(*putError_);
    for (const ipam::Prefix& p : desired) {
      const auto& now = nics_[std::string(nicId)];
      if (refused_.contains(p) && std::ranges::find(now, p) == now.end()) {
        return std::unexpected(refused_.at(p));
      }
    }
    nics_[std::string(nicId)] = std::vector<ipam::Prefix>(desired.begin(), desired.end());
    return {};
  }

  // The subnet's prefixes (setSubnet) and the prefixes of ours on the NICs placed in it (a
  // foreign one, setForeign, is not ours).
  azure::Result<CloudSubnet> readSubnet(std::string_view subnetId) override {
    std::lock_guard lock(mutex_);
    ++subnetReads;
    CloudSubnet read;
    const auto prefixes = subnets_.find(std::string(subnetId));
    bool known = prefixes != subnets_.end();
    if (known) read.prefixes = prefixes->second;
    for (const auto& [nicId, subnet] : subnetOfNic_) {
      if (subnet != subnetId) continue;
      known = true;
      for (const ipam::Prefix& p : nics_[nicId]) {
        if (!isForeign(nicId, p)) read.ours.push_back({.nicId = nicId, .prefix = p});
      }
    }
    if (!known) return azure::fail(azure::ErrorCode::kNotFound, "no subnet");
    return read;
  }
  azure::Result<std::vector<ipam::Prefix>> removeNicPrefixes(
      std::string_view nicId, std::span<const ipam::Prefix> prefixes) override {
    std::lock_guard lock(mutex_);
    removes.emplace_back(std::string(nicId),
                         std::vector<ipam::Prefix>(prefixes.begin(), prefixes.end()));
    if (failRemove_) {
      failRemove_ = false;
      return azure::fail(azure::ErrorCode::kTransport, "injected: connection reset");
    }
    const auto found = nics_.find(std::string(nicId));
    if (found == nics_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no NIC");
    std::vector<ipam::Prefix> removed;
    std::erase_if(found->second, [&](const ipam::Prefix& p) {
      const bool drop =
          std::ranges::find(prefixes, p) != prefixes.end() && !isForeign(found->first, p);
      if (drop) removed.push_back(p);
      return drop;
    });
    return removed;
  }

  azure::Result<std::vector<azure::SubnetUsage>> subnetUsages(std::string_view vnetId) override {
    std::lock_guard lock(mutex_);
    usageReads.emplace_back(vnetId);
    if (usageError_) return std::unexpected(*usageError_);
    const auto found = usages_.find(std::string(vnetId));
    if (found == usages_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no VNET");
    return found->second;
  }

 private:
  bool isForeign(const std::string& nicId, const ipam::Prefix& p) const {
    const auto found = foreign_.find(nicId);
    return found != foreign_.end() && std::ranges::find(found->second, p) != found->second.end();
  }

  std::mutex mutex_;
  std::map<std::string, std::vector<azure::SubnetUsage>> usages_;
  std::optional<azure::Error> usageError_;
  std::map<std::string, std::string> nicOfNode_;
  std::map<std::string, std::vector<ipam::Prefix>> nics_;
  std::map<std::string, std::vector<ipam::Prefix>> subnets_;
  bool failPut_ = false;
  std::optional<azure::Error> putError_;
  std::map<ipam::Prefix, azure::Error> refused_;
  std::map<std::string, std::string> subnetOfNic_;
  std::map<std::string, std::string> vmOfNic_;
  std::map<std::string, std::vector<ipam::Prefix>> foreign_;
  bool failRemove_ = false;
};

}  // namespace vnetipam::controller::testing
