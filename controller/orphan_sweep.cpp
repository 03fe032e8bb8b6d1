// The orphan sweep's decisions; the rules O1-O6 are in orphan_sweep.h and each branch below is
// marked with its rule.
#include "controller/orphan_sweep.h"

#include <algorithm>

#include "lib/base/text.h"

namespace vnetipam::controller {

std::string armIdKey(std::string_view id) { return text::asciiLower(id); }

OrphanSweepPlan planOrphanSweep(const OrphanSweepInput& input) {
  OrphanSweepPlan plan;
  const OrphanSweepView& view = input.view;
  for (const SweptNic& nic : input.nics) {
    const std::string nicKey = armIdKey(nic.id);
    // O1: the NIC pass's NIC, found since the subnets were read, or a current Node's VM's.
    if (view.nicPassNics.contains(nicKey)) continue;
    if (!nic.vmId.empty() && view.nodeVms.contains(armIdKey(nic.vmId))) continue;
    OrphanRemoval removal{.nicId = nic.id, .vmId = nic.vmId, .prefixes = {}};
    OrphanRemoval found{.nicId = nic.id, .vmId = nic.vmId, .prefixes = {}};
    for (const ipam::Prefix& prefix : nic.ours) {
      const auto range = std::ranges::find_if(view.podSubnets, [&](const SweptPodSubnet& s) {
        return std::ranges::any_of(s.ranges,
                                   [&](const ipam::Prefix& r) { return r.contains(prefix); });
      });
      if (range == view.podSubnets.end()) continue;  // O2
      if (std::ranges::any_of(view.owned,
                              [&](const ipam::Prefix& o) { return o.overlaps(prefix); })) {
        continue;  // O3
      }
      const OrphanKey key{nicKey, prefix};
      OrphanPrefix orphan{.prefix = prefix,
                          .podSubnet = range->name,
                          .podSubnetUid = range->uid,
                          .firstSeen = input.now};
      const auto seen = input.firstSeen.find(key);
      if (seen == input.firstSeen.end() && input.grace.count() > 0) {
        // O4
        plan.firstSeen.emplace(key, input.now);
        found.prefixes.push_back(orphan);
        const Time due = input.now + input.grace;
        if (!plan.recheckAt || due < *plan.recheckAt) plan.recheckAt = due;
        continue;
      }
      if (seen != input.firstSeen.end()) {
        orphan.firstSeen = seen->second;
        if (const Time due = seen->second + input.grace; due > input.now) {
          // O5
          plan.firstSeen.emplace(key, seen->second);
          if (!plan.recheckAt || due < *plan.recheckAt) plan.recheckAt = due;
          continue;
        }
      }
      // O6 (a zero grace comes here at first sight)
      removal.prefixes.push_back(orphan);
    }
    if (!removal.prefixes.empty()) plan.removals.push_back(std::move(removal));
    if (!found.prefixes.empty()) plan.found.push_back(std::move(found));
  }
  return plan;
}

}  // namespace vnetipam::controller
