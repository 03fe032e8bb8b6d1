#include "controller/nic_directory.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "controller/orphan_sweep.h"

namespace vnetipam::controller {

std::optional<std::string> NicDirectory::takeFrom(Group& group, const std::string& vmKey) {
  const auto found = group.primaryNic.find(vmKey);
  if (found == group.primaryNic.end()) return std::nullopt;
  std::string nicId = std::move(found->second);
  group.primaryNic.erase(found);
  return nicId;
}

std::optional<std::string> NicDirectory::take(std::string_view resourceGroupId,
                                              std::string_view vmId,
                                              const std::function<std::size_t()>& waiting) {
  const std::string vmKey = armIdKey(vmId);
  std::unique_lock lock(mutex_);
  Group& group = groups_[armIdKey(resourceGroupId)];  // a std::map node: stays where it is
  if (auto hit = takeFrom(group, vmKey)) return hit;
  const auto joinRunningList = [&] {
    listed_.wait(lock, [&group] { return !group.listing; });
    return takeFrom(group, vmKey);
  };
  if (group.listing) return joinRunningList();
  const auto pages = static_cast<std::size_t>(group.pages);
  lock.unlock();
  const std::size_t nodes = waiting();  // takes the controller's lock: not under ours
  lock.lock();
  if (group.listing) return joinRunningList();
  if (nodes < pages) return std::nullopt;  // their VM GETs cost less than the list
  group.listing = true;
  ++lists_;
  lock.unlock();
  auto listed = cloud_.listPrimaryNics(resourceGroupId);
  lock.lock();
  group.listing = false;
  if (listed) {
    group.pages = std::max(1, listed->pages);
    group.primaryNic.clear();
    for (VmNic& vm : listed->primaryNics)
      group.primaryNic.insert_or_assign(armIdKey(vm.vmId), std::move(vm.nicId));
    spdlog::debug("resource group {}: {} VMs' primary NICs listed in {} pages for {} nodes",
                  resourceGroupId, group.primaryNic.size(), group.pages, nodes);
  } else {
    // Each failure doubles the nodes the next list must serve, so lists that keep failing (no
    // permission to list, say) cost a vanishing share of the reads.
    group.pages = std::min(group.pages * 2, 1 << 20);
    spdlog::warn("resource group {}: listing its NICs: {}; the nodes' VMs are read instead",
                 resourceGroupId, listed.error().message);
  }
  listed_.notify_all();
  return takeFrom(group, vmKey);
}

int NicDirectory::lists() const {
  std::lock_guard lock(mutex_);
  return lists_;
}

}  // namespace vnetipam::controller
