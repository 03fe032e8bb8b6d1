#include "controller/nic_directory.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "controller/orphan_sweep.h"

namespace vnetipam::controller {

std::optional<std::string> NicDirectory::takeFrom(Group& group, const std::string& vmKey) {
  const auto found = group.primaryNic.find(vmKey);
  if (found == group.primaryNic.end()) return std::nullopt;
  std::string nicId = std::move(found->second.nicId);
  group.primaryNic.erase(found);
  return nicId;
}

std::optional<std::string> NicDirectory::take(std::string_view resourceGroupId,
                                              std::string_view vmId,
                                              const std::function<bool(std::size_t n)>& waiting) {
  const std::string vmKey = armIdKey(vmId);
  std::unique_lock lock(mutex_);
  Group& group = groups_[armIdKey(resourceGroupId)];  // a std::map node: stays where it is
  if (auto hit = takeFrom(group, vmKey)) return hit;
  const auto joinRunningList = [&] {
    ++joined_;
    listed_.wait(lock, [&] { return !group.listing || group.primaryNic.contains(vmKey); });
    --joined_;
    return takeFrom(group, vmKey);
  };
  if (group.listing) return joinRunningList();
  const auto lastPages = static_cast<std::size_t>(group.pages);
  lock.unlock();
  const bool enough = waiting(lastPages);  // takes the controller's lock: not under ours
  lock.lock();
  if (group.listing) return joinRunningList();
  if (!enough) return std::nullopt;  // their VM GETs cost less than the list
  group.listing = true;
  const int list = ++group.lists;
  lock.unlock();
  auto listed = cloud_.listPrimaryNics(resourceGroupId, [&](std::span<const VmNic> page) {
    std::lock_guard pageLock(mutex_);
    for (const VmNic& vm : page)
      group.primaryNic.insert_or_assign(armIdKey(vm.vmId), Listed{.nicId = vm.nicId, .list = list});
    listed_.notify_all();  // the nodes whose VM this page names go on
  });
  lock.lock();
  group.listing = false;
  if (listed) {
    group.pages = std::max(1, *listed);
    std::erase_if(group.primaryNic,
                  [list](const auto& entry) { return entry.second.list != list; });
    spdlog::debug("resource group {}: its VMs' primary NICs listed in {} pages", resourceGroupId,
                  group.pages);
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
  int lists = 0;
  for (const auto& [key, group] : groups_)
    lists += group.lists;
  return lists;
}

int NicDirectory::joined() const {
  std::lock_guard lock(mutex_);
  return joined_;
}

}  // namespace vnetipam::controller
