#include "kubectl-ipam/report.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "lib/ipam/ip.h"

namespace vnetipam::kubectl_ipam {

using nlohmann::json;

namespace {

bool isTrue(const std::vector<api::Condition>& conditions, std::string_view type) {
  const auto* c = findCondition(conditions, type);
  return c != nullptr && c->status == "True";
}

bool invalid(const api::IPBlock& b) { return isTrue(b.status.conditions, api::kConditionInvalid); }

// What the agent serves from: Ready and not refused.
bool usable(const api::IPBlock& b) {
  return b.status.phase == api::BlockPhase::kReady && !invalid(b);
}

std::string describe(const api::Condition& c) {
  std::string out = fmt::format("{}={}", c.type, c.status);
  if (!c.reason.empty()) out += fmt::format(" ({})", c.reason);
  if (!c.message.empty()) out += ": " + c.message;
  return out;
}

std::string podKey(const PodInfo& p) { return p.ns + "/" + p.name; }

// The blocks with their parsed CIDRs (a block whose CIDR does not parse holds no address), and
// which block each address of a pod falls in.
class BlockIndex {
 public:
  explicit BlockIndex(const std::vector<api::IPBlock>& blocks) : blocks_(blocks) {
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (auto p = ipam::Prefix::parse(blocks[i].spec.cidr)) prefixes_.emplace_back(i, *p);
    }
  }

  // The blocks holding `ip`, those of `node` first (blocks may overlap only when one is Invalid).
  std::vector<const api::IPBlock*> holding(const std::string& ip, const std::string& node) const {
    std::vector<const api::IPBlock*> out;
    const auto address = ipam::IPAddress::parse(ip);
    if (!address) return out;
    for (const auto& [i, prefix] : prefixes_) {
      if (prefix.contains(*address)) out.push_back(&blocks_[i]);
    }
    std::stable_partition(out.begin(), out.end(),
                          [&](const api::IPBlock* b) { return b->spec.nodeName == node; });
    return out;
  }

 private:
  const std::vector<api::IPBlock>& blocks_;
  std::vector<std::pair<std::size_t, ipam::Prefix>> prefixes_;
};

// Pods that hold addresses from our blocks: not hostNetwork (those show the node's address),
// not terminated.
bool holdsAddresses(const PodInfo& p) { return !p.hostNetwork && !p.terminated(); }

struct BlockCount {
  std::int64_t all = 0;      // pod addresses in the block (pods not terminated)
  std::int64_t running = 0;  // of them, pods Running and not being deleted
};

std::map<std::string, BlockCount> countPods(const Snapshot& s, const BlockIndex& index) {
  std::map<std::string, BlockCount> counts;
  for (const auto& pod : s.pods) {
    if (!holdsAddresses(pod)) continue;
    for (const auto& ip : pod.ips) {
      const auto holders = index.holding(ip, pod.nodeName);
      if (holders.empty()) continue;
      auto& c = counts[holders.front()->metadata.name];
      ++c.all;
      if (pod.phase == "Running" && !pod.deleting) ++c.running;
    }
  }
  return counts;
}

const NodeInfo* findNode(const Snapshot& s, const std::string& name) {
  for (const auto& n : s.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

std::string joined(const std::vector<std::string>& items, std::string_view sep = ",") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

std::string orDash(const std::string& s) { return s.empty() ? "-" : s; }

}  // namespace

// ---- show ----------------------------------------------------------------------------------

std::vector<PoolSummary> showPools(const Snapshot& s) {
  const BlockIndex index(s.blocks);
  const auto counts = countPods(s, index);
  std::vector<PoolSummary> out;
  for (const auto& subnet : s.subnets) {
    PoolSummary pool{.name = subnet.name,
                     .cidr = subnet.cidr,
                     .statusTotalBlocks = subnet.totalBlocks,
                     .statusAllocatedBlocks = subnet.allocatedBlocks,
                     .exhausted = isTrue(subnet.conditions, api::kConditionExhausted)};
    std::set<std::string> nodes;
    for (const auto& b : s.blocks) {
      if (b.spec.podSubnet != pool.name) continue;
      ++pool.blocks;
      if (usable(b)) ++pool.readyBlocks;
      pool.capacity += b.status.capacity;
      pool.used += b.status.used;
      if (const auto it = counts.find(b.metadata.name); it != counts.end()) {
        pool.pods += it->second.all;
      }
      nodes.insert(b.spec.nodeName);
    }
    pool.free = std::max<std::int64_t>(0, pool.capacity - pool.used);
    pool.foreign = subnet.foreignAddresses;
    pool.nodes.assign(nodes.begin(), nodes.end());
    out.push_back(std::move(pool));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

NodeReport showNode(const Snapshot& s, const std::string& node) {
  NodeReport report{.node = node};
  if (const auto* n = findNode(s, node)) {
    report.nodeExists = true;
    if (const auto* c = findCondition(n->conditions, api::kNodeConditionNicProgrammed);
        c != nullptr && c->status != "True") {
      report.nodeNotes.push_back(describe(*c));
    }
  }
  const BlockIndex index(s.blocks);
  const auto counts = countPods(s, index);
  for (const auto& b : s.blocks) {
    if (b.spec.nodeName != node) continue;
    BlockView view{.name = b.metadata.name,
                   .podSubnet = b.spec.podSubnet,
                   .cidr = b.spec.cidr,
                   .phase = std::string(api::toString(b.status.phase)),
                   .capacity = b.status.capacity,
                   .used = b.status.used,
                   .headroom = std::max<std::int64_t>(0, b.status.capacity - b.status.used),
                   .nic = b.status.nic ? b.status.nic->id : ""};
    if (b.metadata.deletionTimestamp) view.notes.push_back("being deleted");
    if (const auto it = counts.find(b.metadata.name); it != counts.end()) {
      view.pods = it->second.all;
    }
    for (const auto& c : b.status.conditions) {
      const bool healthy =
          c.type == api::kConditionInvalid ? c.status == "False" : c.status == "True";
      if (!healthy) view.notes.push_back(describe(c));
    }
    report.blocks.push_back(std::move(view));
  }
  std::sort(report.blocks.begin(), report.blocks.end(),
            [](const auto& a, const auto& b) { return a.cidr < b.cidr; });
  for (const auto& pod : s.pods) {
    if (pod.nodeName != node || pod.hostNetwork || pod.ips.empty()) continue;
    Allocation a{
        .ns = pod.ns, .name = pod.name, .ips = pod.ips, .since = pod.startTime, .phase = pod.phase};
    const auto holders = index.holding(pod.ips.front(), node);
    if (!holders.empty()) a.block = holders.front()->metadata.name;
    report.allocations.push_back(std::move(a));
  }
  std::sort(report.allocations.begin(), report.allocations.end(), [](const auto& a, const auto& b) {
    return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
  });
  return report;
}

// ---- check ---------------------------------------------------------------------------------

namespace {

// Adds a finding that names no leak.
void addFinding(std::vector<Finding>& findings, std::string id, std::string object,
                std::string message) {
  findings.push_back({std::move(id), std::move(object), std::move(message)});
}

// The nodes vnet-ipam serves: selected by a PodSubnet or holding a block. A pod elsewhere got
// its address from another IPAM (a cluster may mix node pools): not ours to check.
std::set<std::string> servedNodes(const Snapshot& s) {
  std::set<std::string> served;
  for (const auto& n : s.nodes) {
    for (const auto& subnet : s.subnets) {
      if (subnet.selects(n.labels)) served.insert(n.name);
    }
  }
  for (const auto& b : s.blocks)
    served.insert(b.spec.nodeName);
  return served;
}

// The block of `node` among `holders` (BlockIndex::holding) for an address: the first usable
// one, else the node's last; null when no block of the node holds it.
const api::IPBlock* ownBlock(const std::vector<const api::IPBlock*>& holders,
                             const std::string& node) {
  const api::IPBlock* own = nullptr;
  for (const auto* b : holders) {
    if (b->spec.nodeName == node) {
      own = b;
      if (usable(*b)) break;
    }
  }
  return own;
}

// One address of a pod: pod-ip-outside-blocks or pod-ip-in-unusable-block when it is not in a
// usable block of the pod's own node.
void checkPodAddress(const PodInfo& pod, const std::string& ip, const BlockIndex& index,
                     std::vector<Finding>& findings) {
  const auto holders = index.holding(ip, pod.nodeName);
  const api::IPBlock* own = ownBlock(holders, pod.nodeName);
  if (own == nullptr) {
    std::string where = "no block holds it";
    if (!holders.empty()) {
      where = fmt::format("it lies in block {} of node {}", holders.front()->metadata.name,
                          holders.front()->spec.nodeName);
    }
    addFinding(findings, "pod-ip-outside-blocks", "Pod " + podKey(pod),
               fmt::format("address {} is in no block of its node {}: {}", ip, orDash(pod.nodeName),
                           where));
  } else if (!usable(*own)) {
    addFinding(findings, "pod-ip-in-unusable-block", "Pod " + podKey(pod),
               fmt::format("address {} is in block {} which is {}", ip, own->metadata.name,
                           invalid(*own) ? "Invalid" : api::toString(own->status.phase)));
  }
}

// duplicate-ip for each address held by two pods or more (`owners`: address -> pods).
void checkDuplicates(std::map<std::string, std::vector<std::string>>& owners,
                     std::vector<Finding>& findings) {
  for (auto& [ip, pods] : owners) {
    if (pods.size() < 2) continue;
    std::sort(pods.begin(), pods.end());
    addFinding(findings, "duplicate-ip", "Address " + ip,
               fmt::format("held by {} pods: {}", pods.size(), joined(pods, ", ")));
  }
}

// The addresses of the pods on the `served` nodes, counted in `report`: each in a usable block
// of the pod's own node, and on one pod only.
void checkPodAddresses(const Snapshot& s, const BlockIndex& index,
                       const std::set<std::string>& served, CheckReport& report) {
  std::map<std::string, std::vector<std::string>> owners;  // address -> pods
  for (const auto& pod : s.pods) {
    if (!holdsAddresses(pod) || pod.ips.empty()) continue;
    if (!served.contains(pod.nodeName)) {
      ++report.podsSkipped;
      continue;
    }
    ++report.podsChecked;
    for (const auto& ip : pod.ips) {
      ++report.addressesChecked;
      owners[ip].push_back(podKey(pod));
      checkPodAddress(pod, ip, index, report.findings);
    }
  }
  checkDuplicates(owners, report.findings);
}

// block-not-programmed: Programmed=False; or, the condition not reported, the phase and
// status.nic (`anyNic`: some block of the cluster has one).
void checkProgrammed(const api::IPBlock& b, bool anyNic, std::int64_t now,
                     std::vector<Finding>& findings) {
  const std::string object = "IPBlock " + b.metadata.name;
  const bool leaving =
      b.metadata.deletionTimestamp.has_value() || b.status.phase == api::BlockPhase::kReleasing;
  if (const auto* c = findCondition(b.status.conditions, api::kConditionProgrammed)) {
    if (c->status == "False") {
      addFinding(findings, "block-not-programmed", object,
                 fmt::format("not on the NIC of node {}: {}", b.spec.nodeName, describe(*c)));
    }
  } else if (!leaving && !invalid(b)) {
    // Programmed not reported: fall back to what the phase says (the controller writes Ready
    // once a NIC read shows the prefix), and to status.nic when the cluster has a cloud.
    const auto created =
        b.metadata.creationTimestamp ? parseTime(*b.metadata.creationTimestamp) : std::nullopt;
    const std::int64_t age = created && now != 0 ? now - *created : kPendingGraceSeconds;
    if (b.status.phase != api::BlockPhase::kReady && age >= kPendingGraceSeconds) {
      addFinding(
          findings, "block-not-programmed", object,
          fmt::format("{} for {}s (Programmed not reported)", api::toString(b.status.phase), age));
    } else if (b.status.phase == api::BlockPhase::kReady && anyNic && !b.status.nic) {
      addFinding(findings, "block-not-programmed", object, "Ready but status.nic names no NIC");
    }
  }
}

// used-mismatch: status.used above the pod addresses counted in the block, or below the
// Running ones.
void checkUsed(const api::IPBlock& b, const BlockCount& count, std::vector<Finding>& findings) {
  const std::string object = "IPBlock " + b.metadata.name;
  if (b.status.used > count.all) {
    addFinding(
        findings, "used-mismatch", object,
        fmt::format("status.used is {} but {} pod address(es) lie in it: {} suspected leaked",
                    b.status.used, count.all, b.status.used - count.all));
  } else if (b.status.used < count.running) {
    addFinding(findings, "used-mismatch", object,
               fmt::format("status.used is {} but {} running pod address(es) lie in it: undercount",
                           b.status.used, count.running));
  }
}

// One block's findings: block-invalid, block-orphaned (its node not in `nodes`),
// block-not-programmed, dataplane-drift and used-mismatch, in that order.
void checkBlock(const api::IPBlock& b, const std::set<std::string>& nodes, bool anyNic,
                std::int64_t now, const BlockCount& count, std::vector<Finding>& findings) {
  const std::string object = "IPBlock " + b.metadata.name;
  const auto& conditions = b.status.conditions;
  if (const auto* c = findCondition(conditions, api::kConditionInvalid);
      c != nullptr && c->status == "True") {
    addFinding(findings, "block-invalid", object,
               fmt::format("refused by the controller: {}", describe(*c)));
  }
  if (!nodes.contains(b.spec.nodeName)) {
    addFinding(findings, "block-orphaned", object,
               fmt::format("its node {} does not exist", orDash(b.spec.nodeName)));
  }
  checkProgrammed(b, anyNic, now, findings);
  if (const auto* c = findCondition(conditions, api::kConditionDataplaneSynced);
      c != nullptr && c->status == "False") {
    addFinding(findings, "dataplane-drift", object,
               fmt::format("the agent on {} reports {}", b.spec.nodeName, describe(*c)));
  }
  checkUsed(b, count, findings);
}

// Each block of the snapshot (checkBlock).
void checkBlocks(const Snapshot& s, const BlockIndex& index, std::vector<Finding>& findings) {
  std::set<std::string> nodes;
  for (const auto& n : s.nodes)
    nodes.insert(n.name);
  bool anyNic = false;
  for (const auto& b : s.blocks)
    anyNic = anyNic || b.status.nic.has_value();
  const auto counts = countPods(s, index);
  for (const auto& b : s.blocks) {
    const BlockCount count =
        counts.contains(b.metadata.name) ? counts.at(b.metadata.name) : BlockCount{};
    checkBlock(b, nodes, anyNic, s.now, count, findings);
  }
}

// The finding for an allocation the agent of `b` publishes when it is a leak
// (allocation-pod-gone, allocation-stale-sandbox); nullopt when its pod may hold it.
std::optional<Finding> allocationLeak(const api::IPBlock& b, const api::IPAllocation& a,
                                      const std::map<std::string, const PodInfo*>& podsByKey) {
  if (a.podName.empty()) return std::nullopt;  // no pod recorded: nothing to compare with
  const std::string key = a.podNamespace + "/" + a.podName;
  const auto it = podsByKey.find(key);
  const PodInfo* pod = it == podsByKey.end() ? nullptr : it->second;
  // The agent sees only its node's pods: one of that name elsewhere is gone for it.
  if (pod != nullptr && pod->nodeName != b.spec.nodeName) pod = nullptr;
  LeakedAllocation leak{.block = b.metadata.name,
                        .node = b.spec.nodeName,
                        .address = a.address,
                        .owner = a.owner,
                        .podNamespace = a.podNamespace,
                        .podName = a.podName,
                        .podUID = a.podUID};
  const std::string owner = fmt::format("{} ({})", a.address, ipam::toString(a.owner));
  std::string id, message;
  if (pod == nullptr) {
    id = "allocation-pod-gone";
    message = fmt::format("the agent on {} holds {} for pod {}, which no longer exists on it",
                          orDash(b.spec.nodeName), owner, key);
  } else if (!a.podUID.empty() && !pod->uid.empty() && pod->uid != a.podUID) {
    id = "allocation-pod-gone";
    message = fmt::format(
        "the agent on {} holds {} for pod {} uid {}, but the pod of that name is uid {} "
        "(recreated)",
        orDash(b.spec.nodeName), owner, key, a.podUID, pod->uid);
  } else if (holdsAddresses(*pod) && !pod->ips.empty() &&
             std::ranges::find(pod->ips, a.address) == pod->ips.end()) {
    id = "allocation-stale-sandbox";
    message = fmt::format(
        "the agent on {} holds {} for pod {}, whose addresses are {}: a sandbox whose CNI "
        "DEL was lost",
        orDash(b.spec.nodeName), owner, key, joined(pod->ips, ", "));
  } else {
    return std::nullopt;
  }
  return Finding{std::move(id), "IPBlock " + b.metadata.name, std::move(message), std::move(leak)};
}

// pod-ip-without-allocation: the addresses of the Running pods of `b`'s node that lie in `b`
// but are not among those its agent holds (`held`).
void checkUnheldAddresses(const Snapshot& s, const api::IPBlock& b,
                          const std::set<std::string>& held, std::vector<Finding>& findings) {
  const auto prefix = ipam::Prefix::parse(b.spec.cidr);
  if (!prefix) return;
  for (const auto& pod : s.pods) {
    if (pod.nodeName != b.spec.nodeName || !holdsAddresses(pod) || pod.phase != "Running" ||
        pod.deleting) {
      continue;
    }
    for (const auto& ip : pod.ips) {
      const auto address = ipam::IPAddress::parse(ip);
      if (!address || !prefix->contains(*address) || held.contains(ip)) continue;
      addFinding(findings, "pod-ip-without-allocation", "Pod " + podKey(pod),
                 fmt::format("address {} lies in block {} but the agent on {} does not hold it: "
                             "it may hand it out again",
                             ip, b.metadata.name, b.spec.nodeName));
    }
  }
}

// The allocations the agent of `b` publishes against the pods: the leaks, then, when it
// publishes all of them and `b` is usable, the pod addresses it does not hold.
void checkBlockAllocations(const Snapshot& s, const api::IPBlock& b,
                           const std::map<std::string, const PodInfo*>& podsByKey,
                           std::vector<Finding>& findings) {
  // An agent that publishes allocations publishes all of them: as many as status.used. An
  // empty list with used 0 says nothing (an older agent writes the same), and a pod address in
  // such a block is an undercount already.
  const bool published = !b.status.allocations.empty() &&
                         static_cast<std::int64_t>(b.status.allocations.size()) == b.status.used;
  std::set<std::string> held;
  for (const auto& a : b.status.allocations) {
    held.insert(a.address);
    if (auto finding = allocationLeak(b, a, podsByKey)) findings.push_back(std::move(*finding));
  }
  if (!published || !usable(b)) return;
  checkUnheldAddresses(s, b, held, findings);
}

// The allocations of every block (checkBlockAllocations).
void checkAllocations(const Snapshot& s, std::vector<Finding>& findings) {
  std::map<std::string, const PodInfo*> podsByKey;
  for (const auto& pod : s.pods)
    podsByKey[podKey(pod)] = &pod;
  for (const auto& b : s.blocks)
    checkBlockAllocations(s, b, podsByKey, findings);
}

// nic-programming-failed: a Node whose VnetIpamNICProgrammed is False.
void checkNodes(const Snapshot& s, std::vector<Finding>& findings) {
  for (const auto& n : s.nodes) {
    if (const auto* c = findCondition(n.conditions, api::kNodeConditionNicProgrammed);
        c != nullptr && c->status == "False") {
      addFinding(findings, "nic-programming-failed", "Node " + n.name, describe(*c));
    }
  }
}

}  // namespace

CheckReport check(const Snapshot& s) {
  CheckReport report;
  const BlockIndex index(s.blocks);
  report.nodesChecked = static_cast<std::int64_t>(s.nodes.size());
  report.blocksChecked = static_cast<std::int64_t>(s.blocks.size());

  const auto served = servedNodes(s);
  // Pod addresses: in a usable block of the pod's own node, and on one pod only.
  checkPodAddresses(s, index, served, report);
  // Blocks.
  checkBlocks(s, index, report.findings);
  // The agents' allocations against the pods.
  checkAllocations(s, report.findings);
  // Nodes.
  checkNodes(s, report.findings);
  std::sort(report.findings.begin(), report.findings.end(), [](const auto& a, const auto& b) {
    return std::tie(a.check, a.object, a.message) < std::tie(b.check, b.object, b.message);
  });
  return report;
}

// ---- why -----------------------------------------------------------------------------------

namespace {

// Adds a cause, after those found before it (the most likely first).
void addCause(std::vector<Cause>& causes, std::string id, std::string summary,
              std::vector<std::string> details = {}) {
  causes.push_back({std::move(id), std::move(summary), std::move(details)});
}

// Sorts events newest first; an event whose time does not parse is the oldest.
void newestFirst(std::vector<EventInfo>& events) {
  std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    return parseTime(a.time).value_or(0) > parseTime(b.time).value_or(0);
  });
}

// The Warning events of `pod` (report.podEvents) and of its node and the node's blocks
// (report.nodeEvents), each newest first.
void warningEvents(const Snapshot& s, const PodInfo& pod, WhyReport& report) {
  std::set<std::string> nodeBlocks;
  for (const auto& b : s.blocks) {
    if (b.spec.nodeName == pod.nodeName) nodeBlocks.insert(b.metadata.name);
  }
  for (const auto& e : s.events) {
    if (e.type != "Warning") continue;
    if (e.objectKind == "Pod" && e.objectName == pod.name &&
        (e.objectNamespace == pod.ns || e.objectNamespace.empty())) {
      report.podEvents.push_back(e);
    } else if ((e.objectKind == "Node" && e.objectName == pod.nodeName && !pod.nodeName.empty()) ||
               (e.objectKind == "IPBlock" && nodeBlocks.contains(e.objectName))) {
      report.nodeEvents.push_back(e);
    }
  }
  newestFirst(report.podEvents);
  newestFirst(report.nodeEvents);
}

// The causes that leave nothing else to look at: not-scheduled, host-network, has-address.
// True when one was added.
bool addLoneCause(const Snapshot& s, const PodInfo& pod, std::vector<Cause>& causes) {
  if (pod.nodeName.empty()) {
    addCause(causes, "not-scheduled", "the pod is not scheduled to a node yet: no node, no address",
             {"the scheduler has not bound it; see its events (FailedScheduling)"});
    return true;
  }
  if (pod.hostNetwork) {
    addCause(causes, "host-network",
             "the pod uses the node's network (hostNetwork): it gets no pod address");
    return true;
  }
  if (!pod.ips.empty() && !pod.terminated()) {
    const BlockIndex index(s.blocks);
    std::vector<std::string> details;
    for (const auto& ip : pod.ips) {
      const auto holders = index.holding(ip, pod.nodeName);
      details.push_back(holders.empty()
                            ? fmt::format("{}: in no block", ip)
                            : fmt::format("{}: block {} ({})", ip, holders.front()->metadata.name,
                                          holders.front()->spec.cidr));
    }
    addCause(causes, "has-address",
             fmt::format("the pod has an address: {}", joined(pod.ips, ", ")), std::move(details));
    return true;
  }
  return false;
}

// What the API holds for the pod's node.
struct NodeState {
  const NodeInfo* node = nullptr;            // null: the node does not exist
  std::vector<const api::IPBlock*> blocks;   // the node's blocks
  bool anyUsable = false;                    // one of them usable and not being deleted
  std::vector<const SubnetInfo*> selecting;  // the PodSubnets selecting the node
};

// The NodeState of node `name`.
NodeState nodeState(const Snapshot& s, const std::string& name) {
  NodeState state{.node = findNode(s, name)};
  for (const auto& b : s.blocks) {
    if (b.spec.nodeName != name) continue;
    state.blocks.push_back(&b);
    state.anyUsable = state.anyUsable || (usable(b) && !b.metadata.deletionTimestamp);
  }
  if (state.node != nullptr) {
    for (const auto& subnet : s.subnets) {
      if (subnet.selects(state.node->labels)) state.selecting.push_back(&subnet);
    }
  }
  return state;
}

// no-podsubnet: what each PodSubnet selects instead of node `name`.
void addNoPodSubnet(const Snapshot& s, const std::string& name, std::vector<Cause>& causes) {
  std::vector<std::string> details;
  for (const auto& subnet : s.subnets) {
    details.push_back(fmt::format("PodSubnet {} selects {}", subnet.name, subnet.selectorText()));
  }
  if (s.subnets.empty()) details.push_back("there is no PodSubnet at all");
  addCause(causes, "no-podsubnet",
           fmt::format("no PodSubnet selects node {}: it gets no block", name), std::move(details));
}

// block-invalid and nic-programming-failed: the node's blocks the controller refuses, those it
// fails to put on the NIC, and the node's own VnetIpamNICProgrammed=False.
void addRefusedOrUnprogrammed(const NodeState& state, std::vector<Cause>& causes) {
  std::vector<std::string> invalidDetails;
  std::vector<std::string> nicDetails;
  for (const auto* b : state.blocks) {
    if (const auto* c = findCondition(b->status.conditions, api::kConditionInvalid);
        c != nullptr && c->status == "True") {
      invalidDetails.push_back(
          fmt::format("{} {}: {}", b->metadata.name, b->spec.cidr, describe(*c)));
    }
    if (const auto* c = findCondition(b->status.conditions, api::kConditionProgrammed);
        c != nullptr && c->status == "False" && b->status.phase != api::BlockPhase::kReady) {
      nicDetails.push_back(fmt::format("{} {} ({}): {}", b->metadata.name, b->spec.cidr,
                                       api::toString(b->status.phase), describe(*c)));
    }
  }
  if (state.node != nullptr) {
    if (const auto* c = findCondition(state.node->conditions, api::kNodeConditionNicProgrammed);
        c != nullptr && c->status == "False") {
      nicDetails.push_back(fmt::format("Node {}: {}", state.node->name, describe(*c)));
    }
  }
  if (!invalidDetails.empty()) {
    addCause(causes, "block-invalid", "the node's blocks are refused by the controller (Invalid)",
             std::move(invalidDetails));
  }
  if (!nicDetails.empty()) {
    addCause(causes, "nic-programming-failed",
             "the node's blocks are not on its NIC: programming fails", std::move(nicDetails));
  }
}

// The node has no usable block: block-invalid, nic-programming-failed, podsubnet-exhausted
// for each exhausted PodSubnet selecting it, then no-ready-block with the node's blocks.
void addNoUsableBlock(const NodeState& state, const std::string& name, std::vector<Cause>& causes) {
  addRefusedOrUnprogrammed(state, causes);
  for (const auto* subnet : state.selecting) {
    if (const auto* c = findCondition(subnet->conditions, api::kConditionExhausted);
        c != nullptr && c->status == "True") {
      addCause(
          causes, "podsubnet-exhausted",
          fmt::format("PodSubnet {} is exhausted: no free block for node {}", subnet->name, name),
          {describe(*c)});
    }
  }
  std::vector<std::string> details;
  for (const auto* b : state.blocks) {
    details.push_back(fmt::format("{} {}: {}{}", b->metadata.name, b->spec.cidr,
                                  api::toString(b->status.phase),
                                  b->metadata.deletionTimestamp ? ", being deleted" : ""));
  }
  if (state.blocks.empty()) details.push_back("the node holds no IPBlock");
  addCause(causes, "no-ready-block", fmt::format("node {} has no Ready block", name),
           std::move(details));
}

// blocks-full when every usable block of the node has no free address.
void addBlocksFull(const NodeState& state, const std::string& name, std::vector<Cause>& causes) {
  // Ready blocks with no free address: the pod waits for the controller's next block, which
  // an exhausted PodSubnet or maxBlocksPerNode holds back.
  std::vector<std::string> details;
  bool full = true;
  for (const auto* b : state.blocks) {
    if (!usable(*b) || b->metadata.deletionTimestamp) continue;
    full = full && b->status.capacity > 0 && b->status.used >= b->status.capacity;
    details.push_back(fmt::format("{} {}: {} of {} used", b->metadata.name, b->spec.cidr,
                                  b->status.used, b->status.capacity));
  }
  if (!full) return;
  for (const auto* subnet : state.selecting) {
    if (const auto* c = findCondition(subnet->conditions, api::kConditionExhausted);
        c != nullptr && c->status == "True") {
      details.push_back(fmt::format("PodSubnet {}: {}", subnet->name, describe(*c)));
    }
  }
  addCause(causes, "blocks-full",
           fmt::format("every Ready block of node {} is full: no free address", name),
           std::move(details));
}

// agent-not-ready when node `name` has no agent pod, or its agent pod is not Ready.
void addAgentNotReady(const Snapshot& s, const std::string& name, std::vector<Cause>& causes) {
  // The agent serves the node's blocks: without a Ready agent pod nothing answers the CNI.
  const PodInfo* agent = nullptr;
  for (const auto& a : s.agentPods) {
    if (a.nodeName == name && !a.terminated()) agent = &a;
  }
  if (agent == nullptr) {
    addCause(causes, "agent-not-ready", fmt::format("no vnet-ipam agent pod runs on node {}", name),
             {"looked for pods labelled app.kubernetes.io/name=vnet-ipam,"
              "app.kubernetes.io/component=agent"});
  } else if (!agent->ready) {
    addCause(causes, "agent-not-ready",
             fmt::format("the vnet-ipam agent {}/{} on node {} is not Ready ({})", agent->ns,
                         agent->name, name, orDash(agent->phase)));
  }
}

// cni-error from the pod's newest FailedCreatePodSandBox event (`podEvents`, newest first).
void addCniError(const std::vector<EventInfo>& podEvents, std::vector<Cause>& causes) {
  for (const auto& e : podEvents) {
    if (e.reason == "FailedCreatePodSandBox") {
      addCause(causes, "cni-error",
               "the runtime could not set up the pod's network (FailedCreatePodSandBox)",
               {e.message});
      break;
    }
  }
}

// dataplane-drift for each of the node's blocks its agent reports out of sync.
void addDataplaneDrift(const NodeState& state, std::vector<Cause>& causes) {
  for (const auto* b : state.blocks) {
    if (const auto* c = findCondition(b->status.conditions, api::kConditionDataplaneSynced);
        c != nullptr && c->status == "False") {
      addCause(causes, "dataplane-drift",
               fmt::format("the agent reports block {} out of sync with the dataplane",
                           b->metadata.name),
               {describe(*c)});
    }
  }
}

}  // namespace

WhyReport why(const Snapshot& s, const std::string& ns, const std::string& name) {
  WhyReport report{.pod = ns + "/" + name};
  const PodInfo* pod = nullptr;
  for (const auto& p : s.pods) {
    if (p.ns == ns && p.name == name) pod = &p;
  }
  if (pod == nullptr) {
    addCause(report.causes, "pod-not-found", fmt::format("pod {} not found", report.pod));
    return report;
  }
  report.found = true;
  report.node = pod->nodeName;
  warningEvents(s, *pod, report);
  if (addLoneCause(s, *pod, report.causes)) return report;

  const NodeState state = nodeState(s, pod->nodeName);
  if (state.node == nullptr) {
    addCause(report.causes, "node-not-found",
             fmt::format("the pod's node {} does not exist", pod->nodeName));
  } else if (state.selecting.empty()) {
    addNoPodSubnet(s, pod->nodeName, report.causes);
  }
  if (!state.anyUsable) {
    addNoUsableBlock(state, pod->nodeName, report.causes);
  } else {
    addBlocksFull(state, pod->nodeName, report.causes);
  }
  addAgentNotReady(s, pod->nodeName, report.causes);
  addCniError(report.podEvents, report.causes);
  addDataplaneDrift(state, report.causes);
  return report;
}

// ---- output --------------------------------------------------------------------------------

std::string renderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

json toJson(const std::vector<PoolSummary>& pools) {
  json items = json::array();
  for (const auto& p : pools) {
    items.push_back({{"name", p.name},
                     {"cidr", p.cidr},
                     {"statusTotalBlocks", p.statusTotalBlocks},
                     {"statusAllocatedBlocks", p.statusAllocatedBlocks},
                     {"blocks", p.blocks},
                     {"readyBlocks", p.readyBlocks},
                     {"capacity", p.capacity},
                     {"used", p.used},
                     {"free", p.free},
                     {"foreignAddresses", p.foreign ? json(*p.foreign) : json(nullptr)},
                     {"pods", p.pods},
                     {"exhausted", p.exhausted},
                     {"nodes", p.nodes}});
  }
  return {{"podSubnets", items}};
}

json toJson(const NodeReport& r) {
  json blocks = json::array();
  for (const auto& b : r.blocks) {
    blocks.push_back({{"name", b.name},
                      {"podSubnet", b.podSubnet},
                      {"cidr", b.cidr},
                      {"phase", b.phase},
                      {"capacity", b.capacity},
                      {"used", b.used},
                      {"headroom", b.headroom},
                      {"pods", b.pods},
                      {"nic", b.nic},
                      {"notes", b.notes}});
  }
  json allocations = json::array();
  for (const auto& a : r.allocations) {
    allocations.push_back({{"namespace", a.ns},
                           {"name", a.name},
                           {"ips", a.ips},
                           {"since", a.since},
                           {"phase", a.phase},
                           {"block", a.block}});
  }
  return {{"node", r.node},
          {"nodeExists", r.nodeExists},
          {"nodeNotes", r.nodeNotes},
          {"blocks", blocks},
          {"allocations", allocations}};
}

json leakToJson(const LeakedAllocation& a) {
  json j{{"block", a.block},         {"node", a.node},
         {"address", a.address},     {"containerID", a.owner.containerID},
         {"ifName", a.owner.ifName}, {"podNamespace", a.podNamespace},
         {"podName", a.podName}};
  if (!a.podUID.empty()) j["podUID"] = a.podUID;
  return j;
}

json toJson(const CheckReport& r) {
  json findings = json::array();
  for (const auto& f : r.findings) {
    json finding{{"check", f.check}, {"object", f.object}, {"message", f.message}};
    if (f.leak) finding["allocation"] = leakToJson(*f.leak);
    findings.push_back(std::move(finding));
  }
  return {{"clean", r.clean()},
          {"podsChecked", r.podsChecked},
          {"podsSkipped", r.podsSkipped},
          {"addressesChecked", r.addressesChecked},
          {"blocksChecked", r.blocksChecked},
          {"nodesChecked", r.nodesChecked},
          {"findings", findings}};
}

namespace {
json eventsJson(const std::vector<EventInfo>& events) {
  json out = json::array();
  for (const auto& e : events) {
    out.push_back({{"kind", e.objectKind},
                   {"name", e.objectName},
                   {"reason", e.reason},
                   {"message", e.message},
                   {"time", e.time},
                   {"count", e.count}});
  }
  return out;
}

std::string renderEvents(const std::vector<EventInfo>& events) {
  std::vector<std::vector<std::string>> rows{
      {"  LAST SEEN", "OBJECT", "REASON", "COUNT", "MESSAGE"}};
  for (const auto& e : events) {
    rows.push_back({"  " + orDash(e.time), e.objectKind + "/" + e.objectName, e.reason,
                    std::to_string(e.count), e.message});
  }
  return renderTable(rows);
}
}  // namespace

json toJson(const WhyReport& r) {
  json causes = json::array();
  for (const auto& c : r.causes) {
    causes.push_back({{"cause", c.cause}, {"summary", c.summary}, {"details", c.details}});
  }
  return {{"pod", r.pod},
          {"node", r.node},
          {"found", r.found},
          {"causes", causes},
          {"podEvents", eventsJson(r.podEvents)},
          {"nodeEvents", eventsJson(r.nodeEvents)}};
}

std::string renderPools(const std::vector<PoolSummary>& pools) {
  if (pools.empty()) return "No PodSubnets.\n";
  std::vector<std::vector<std::string>> rows{{"PODSUBNET", "CIDR", "BLOCKS(STATUS)",
                                              "BLOCKS(COUNTED)", "READY", "CAPACITY", "USED",
                                              "FREE", "FOREIGN", "PODS", "NODES"}};
  for (const auto& p : pools) {
    std::string nodes = p.nodes.empty() ? "-" : joined(p.nodes);
    if (p.nodes.size() > 5) {
      nodes = joined(std::vector<std::string>(p.nodes.begin(), p.nodes.begin() + 5)) +
              fmt::format(",+{}", p.nodes.size() - 5);
    }
    rows.push_back({p.name + (p.exhausted ? " (Exhausted)" : ""), orDash(p.cidr),
                    fmt::format("{}/{}", p.statusAllocatedBlocks, p.statusTotalBlocks),
                    std::to_string(p.blocks), std::to_string(p.readyBlocks),
                    std::to_string(p.capacity), std::to_string(p.used), std::to_string(p.free),
                    p.foreign ? std::to_string(*p.foreign) : "-", std::to_string(p.pods), nodes});
  }
  return renderTable(rows);
}

std::string renderNode(const NodeReport& r) {
  std::string out = fmt::format("Node {}{}\n", r.node, r.nodeExists ? "" : " (does not exist)");
  for (const auto& note : r.nodeNotes)
    out += "  " + note + "\n";
  out += "\nBlocks:\n";
  if (r.blocks.empty()) {
    out += "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows{
        {"  NAME", "PODSUBNET", "CIDR", "PHASE", "CAPACITY", "USED", "HEADROOM", "PODS", "NOTES"}};
    for (const auto& b : r.blocks) {
      rows.push_back({"  " + b.name, b.podSubnet, b.cidr, b.phase, std::to_string(b.capacity),
                      std::to_string(b.used), std::to_string(b.headroom), std::to_string(b.pods),
                      b.notes.empty() ? "-" : joined(b.notes, "; ")});
    }
    out += renderTable(rows);
  }
  out += "\nAllocations:\n";
  if (r.allocations.empty()) {
    out += "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows{
        {"  NAMESPACE", "POD", "ADDRESSES", "SINCE", "PHASE", "BLOCK"}};
    for (const auto& a : r.allocations) {
      rows.push_back({"  " + a.ns, a.name, joined(a.ips), orDash(a.since), orDash(a.phase),
                      a.block.empty() ? "(none)" : a.block});
    }
    out += renderTable(rows);
  }
  return out;
}

std::string renderCheck(const CheckReport& r) {
  std::string out = fmt::format("Checked {} pod(s) with {} address(es), {} block(s), {} node(s).\n",
                                r.podsChecked, r.addressesChecked, r.blocksChecked, r.nodesChecked);
  if (r.podsSkipped > 0) {
    out += fmt::format("Skipped {} pod(s) on nodes no PodSubnet selects and holding no block.\n",
                       r.podsSkipped);
  }
  if (r.clean()) return out + "No problems found.\n";
  out += fmt::format("{} problem(s):\n", r.findings.size());
  std::vector<std::vector<std::string>> rows{{"  CHECK", "OBJECT", "PROBLEM"}};
  for (const auto& f : r.findings)
    rows.push_back({"  " + f.check, f.object, f.message});
  return out + renderTable(rows);
}

std::string renderWhy(const WhyReport& r) {
  std::string out = fmt::format("Pod {}", r.pod);
  if (!r.node.empty()) out += fmt::format(" on node {}", r.node);
  out += "\n";
  if (r.causes.empty()) {
    out += "No cause found in the API: the node has a Ready block and a Ready agent.\n";
  } else {
    out += r.causes.size() == 1 ? "Cause:\n" : "Causes, most likely first:\n";
    int i = 0;
    for (const auto& c : r.causes) {
      out += fmt::format("  {}. [{}] {}\n", ++i, c.cause, c.summary);
      for (const auto& d : c.details)
        out += "       " + d + "\n";
    }
  }
  if (!r.podEvents.empty()) out += "\nWarning events of the pod:\n" + renderEvents(r.podEvents);
  if (!r.nodeEvents.empty()) {
    out += "\nWarning events of the node and its blocks:\n" + renderEvents(r.nodeEvents);
  }
  return out;
}

}  // namespace vnetipam::kubectl_ipam
