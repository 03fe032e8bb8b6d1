// An in-memory Cloud for the controller's unit tests: VMs by providerID, NICs with prefixes,
// subnets; counts every call and fails the next one of a kind (or every NIC PUT) on request.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/cloud.h"

namespace vnetipam::controller::testing {

class FakeCloud final : public Cloud {
 public:
  void addNode(const std::string& providerID, const std::string& nicId) {
    std::lock_guard lock(mutex_);
    nicOfNode_[providerID] = nicId;
    nics_[nicId];
  }
  void setSubnet(const std::string& id, std::vector<ipam::Prefix> prefixes) {
    std::lock_guard lock(mutex_);
    subnets_[id] = std::move(prefixes);
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

  int puts = 0;
  int reads = 0;
  std::vector<std::string> usageReads;  // the VNET ids subnetUsages was asked for
  std::vector<std::vector<ipam::Prefix>> putBodies;

  azure::Result<std::vector<ipam::Prefix>> subnetPrefixes(std::string_view subnetId) override {
    std::lock_guard lock(mutex_);
    const auto found = subnets_.find(std::string(subnetId));
    if (found == subnets_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no subnet");
    return found->second;
  }
  azure::Result<std::string> primaryNicOfNode(std::string_view providerID) override {
    std::lock_guard lock(mutex_);
    const auto found = nicOfNode_.find(std::string(providerID));
    if (found == nicOfNode_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no VM");
    return found->second;
  }
  azure::Result<NicState> readNic(std::string_view nicId) override {
    std::lock_guard lock(mutex_);
    ++reads;
    const auto found = nics_.find(std::string(nicId));
    if (found == nics_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no NIC");
    return NicState{.id = std::string(nicId), .prefixes = found->second};
  }
  azure::Result<void> setNicPrefixes(std::string_view nicId,
                                     std::span<const ipam::Prefix> desired) override {
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

  azure::Result<std::vector<azure::SubnetUsage>> subnetUsages(std::string_view vnetId) override {
    std::lock_guard lock(mutex_);
    usageReads.emplace_back(vnetId);
    if (usageError_) return std::unexpected(*usageError_);
    const auto found = usages_.find(std::string(vnetId));
    if (found == usages_.end()) return azure::fail(azure::ErrorCode::kNotFound, "no VNET");
    return found->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<azure::SubnetUsage>> usages_;
  std::optional<azure::Error> usageError_;
  std::map<std::string, std::string> nicOfNode_;
  std::map<std::string, std::vector<ipam::Prefix>> nics_;
  std::map<std::string, std::vector<ipam::Prefix>> subnets_;
  bool failPut_ = false;
  std::optional<azure::Error> putError_;
  std::map<ipam::Prefix, azure::Error> refused_;
};

}  // namespace vnetipam::controller::testing
