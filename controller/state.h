// The controller's state, shared by its three reconcilers (podsubnet_reconciler.h,
// node_reconciler.h, nic_reconciler.h): the objects as the list/watch shows them (a few fields
// each: NodeInfo, BlockInfo), each PodSubnet's pool, and the joins in flight, under one mutex; the
// clients, queues and clock the reconcilers use; and the writes of an IPBlock or a Node that more
// than one reconciler makes.
//
// The state is fed by list/watch events through applyListPage()/apply*Event(). Reconcilers read it
// under `mutex`, do their I/O without it, and write what they learn from their own writes back
// into it (a created block is counted at once, not when the watch brings it). The wiring rules:
//  - nodes are decided one at a time against the live free count of the pool (under the mutex);
//  - a block counts, is programmed or set Ready only once its PodSubnet's pool has accepted it
//    (block_trust.h); an Invalid block is never occupied, programmed or deleted by the controller;
//  - a CIDR goes back to the pool only when the watch reports its IPBlock deleted, and only if the
//    pool held it for that block (a refused block that shared it frees nothing);
//  - a create whose outcome is unknown leaks its CIDR (it stays taken); the PodSubnet reconciler
//    frees it after leakGrace if no IPBlock with that CIDR has shown up by then;
//  - block phases change only from what a GET of the NIC showed.
// Only the leader writes: every write first checks canWrite().
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/types.h"
#include "controller/block_trust.h"
#include "controller/cloud.h"
#include "controller/metrics.h"
#include "controller/pool_status.h"
#include "controller/work_queue.h"
#include "lib/base/clock.h"
#include "lib/ipam/block_pool.h"
#include "lib/kube/client.h"
#include "lib/kube/events.h"
#include "lib/kube/paths.h"
#include "lib/kube/watch.h"

namespace vnetipam::controller {

using api::kIPBlocksPath;
using api::kPodSubnetsPath;
using kube::kNodesPath;

// Where events go; EventRecorder in the binary, a list in tests.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void record(const kube::ObjectReference& regarding, kube::EventType type,
                      std::string_view reason, std::string_view action, std::string_view note) = 0;
};

class RecorderEventSink final : public EventSink {
 public:
  explicit RecorderEventSink(kube::EventRecorder& recorder) : recorder_(recorder) {}
  void record(const kube::ObjectReference& regarding, kube::EventType type, std::string_view reason,
              std::string_view action, std::string_view note) override {
    recorder_.record(regarding, type, reason, action, note);
  }

 private:
  kube::EventRecorder& recorder_;
};

struct NodeInfo {
  std::string uid;
  std::string providerID;
  std::map<std::string, std::string> labels;
  // status.conditions[VnetIpamNICProgrammed], the controller's own: written only once a NIC PUT
  // of the node has failed (and True again when one succeeds), so most nodes never have it.
  std::optional<api::Condition> nicCondition;
  bool operator==(const NodeInfo&) const = default;
};

struct BlockInfo {
  std::string uid;
  std::string resourceVersion;
  std::string podSubnet;
  std::string node;
  ipam::Prefix cidr;
  api::BlockPhase phase = api::BlockPhase::kPending;
  bool deleting = false;
  bool hasFinalizer = false;  // kNicReleaseFinalizer
  bool agentDrain = false;    // kAgentDrainFinalizer: the agent has not given the block up yet
  // Every finalizer but kNicReleaseFinalizer (kAgentDrainFinalizer included), in order.
  std::vector<std::string> otherFinalizers;
  std::optional<std::string> subnetLabel;  // metadata.labels[kSubnetLabel]
  // The controller's verdict (block_trust.h). Kept across watch updates: only the controller's
  // memory and, at first sight, an Invalid condition in the status set it.
  Trust trust = Trust::kUndecided;
  TrustRule invalidRule = TrustRule::kUnknownPodSubnet;
  std::string invalidMessage;
  bool invalidInStatus = false;  // status.conditions has Invalid=True
  std::int64_t used = 0;
  std::int64_t capacity = 0;
  std::optional<std::string> phaseTime;      // status.lastTransitionTime
  std::optional<api::Condition> programmed;  // status.conditions[Programmed]
  Time created{};
  // status.nic.id: where the prefix was programmed. Lets a restarted controller remove the prefix
  // of a block whose node (and so providerID) is already gone.
  std::string nicId;
  // The node's spec.providerID when the block was created (annotation kProviderIDAnnotation), for
  // the same reason, when the controller died between the NIC PUT and the status write.
  std::string providerID;
};

inline constexpr std::string_view kProviderIDAnnotation = "vnetipam.io/provider-id";

struct ControllerConfig {
  std::chrono::seconds nicOrphanGrace{120};
  // A CIDR whose create had an unknown outcome and for which no IPBlock appeared is freed after
  // this long.
  std::chrono::seconds leakGrace{60};
  // PodSubnet status is written at most this often per subnet.
  std::chrono::milliseconds statusInterval{1000};
  // How long a block's CIDR is not carved again after Azure refused its prefix because another
  // resource holds an address in it (nic_reconcile.h, N16). After it, the CIDR may be carved again;
  // if the address is still held, the next PUT is refused once more and the hold starts again.
  std::chrono::seconds foreignHold{600};
};

// What the controller keeps of a PodSubnet besides its object: its pool and what waits on it.
struct SubnetState {
  std::optional<ipam::BlockPool> blocks;  // carved
  // The addresses the PodSubnet claims, carved or not: spec.cidr or the Azure subnet's
  // prefixes of the carved family until carved, then the pool's ranges (two PodSubnets over the
  // same addresses are refused, podsubnet_reconciler.cpp).
  std::vector<ipam::Prefix> ranges;
  std::vector<UncarvedPrefix> uncarvedPrefixes;  // the Azure subnet's prefixes not carved
  // The ticket (SubnetUsageStore::beginRead) of the carve's own read of the Azure subnet: the
  // poller's reads that started before it may show prefixes since gone, or miss new ones.
  std::uint64_t prefixesTicket = 0;
  std::string notCarvedMessage;
  std::set<std::string> shortNodes;
  // CIDRs kept taken until an IPBlock shows up with them or leakGrace passes from `since`.
  struct Leak {
    Time since{};
    // Taken by the carve for a prefix of ours it found on a NIC (the Azure subnet's
    // ipConfigurations) with no IPBlock, not by a create of unknown outcome: the orphan sweep
    // does not count it as owned (orphan_sweeper.cpp).
    bool foundOnNic = false;
  };
  std::map<ipam::Prefix, Leak> leaks;
  std::optional<TrustPool> trust;  // what the trust rules judge against, set when carved
  std::map<ipam::Prefix, std::string> holders;  // cidr -> the accepted IPBlock the pool holds
  bool exhaustedReported = false;
  // CIDRs another Azure resource holds an address in, as a refused NIC PUT said (nic_reconcile.h,
  // N16): not carved (BlockPool::holdForOthers) until `until`. nic_reconciler.cpp.
  struct ForeignHold {
    Time until{};
    std::string reason;   // the cloud's error code, as a condition reason
    std::string message;  // the cloud's refusal, naming the other holder
  };
  std::map<ipam::Prefix, ForeignHold> heldByOthers;
};

// A block the Node reconciler has carved for a node that has a cloud to program (its CIDR taken
// from the pool), not yet an IPBlock: the node's NIC pass puts its prefix on the NIC and only
// then creates the IPBlock, in its final state (kProgrammedOnAnnotation: Ready), so a node join
// costs one API write. The Node reconciler counts joins as the node's Pending blocks and never
// releases one; only the NIC pass ends a join (nic_reconciler.cpp).
struct Join {
  std::string subnet;
  ipam::Prefix cidr;
  Time since{};
  bool putSent = false;  // a PUT that carried its prefix was sent: it may be on the NIC
};

class ControllerState {
 public:
  // `client`, `queue` and `clock` must outlive this; `cloud` null means --cloud=none; `events`
  // and `metrics` may be null. Calendar time (what is written into objects) is clock.wallNow().
  // `nicQueue`, when given, takes the WorkKind::kNic keys (NIC work waits on Azure's long-running
  // operations, so it gets a pool of its own); null: one queue for everything.
  ControllerState(kube::Client& apiClient, Cloud* cloudOrNone, WorkQueue& mainQueue,
                  EventSink* eventSink, ControllerMetrics* controllerMetrics,
                  ControllerConfig controllerConfig, base::Clock& wallClock,
                  WorkQueue* nicQueueOrNone);

  // ---- feeding (from CollectionWatch, through Controller) ----
  // A list comes page by page between beginList and endList; endList drops what the list did not
  // show.
  enum class Collection { kNodes = 0, kBlocks = 1, kSubnets = 2 };
  void beginList(Collection collection);
  void applyListPage(Collection collection, nlohmann::json& items);
  void endList(Collection collection);
  void applyNodeEvent(kube::WatchEventType type, const nlohmann::json& object);
  void applyBlockEvent(kube::WatchEventType type, const nlohmann::json& object);
  void applySubnetEvent(kube::WatchEventType type, const nlohmann::json& object);
  void applyBlockList(nlohmann::json& items);  // one-page list of IPBlocks
  void enqueueAll();

  static std::optional<BlockInfo> decodeBlock(const nlohmann::json& object);
  static std::optional<NodeInfo> decodeNode(const nlohmann::json& object);

  // Under mutex. `fromWatch`: the object came from the watch (else from a write's answer, taken
  // only when not older than what the state has). The block of a join ends the join; a new Ready
  // one wakes no NIC pass (the pass that created it planned with it).
  void upsertBlockLocked(const std::string& name, BlockInfo info, bool fromWatch);
  // Folds the IPBlock a write of ours answered with into the state (takes mutex): known at once,
  // not when the watch brings it. An answer that does not decode changes nothing.
  void rememberBlock(const std::string& name, const nlohmann::json& answer);
  // Judges an undecided block against its pool (block_trust.h) and, when accepted, occupies its
  // CIDR for it. `subnetAbsent`: a GET has shown that its PodSubnet does not exist.
  void judgeBlockLocked(const std::string& name, BlockInfo& info, bool subnetAbsent = false);
  void eraseBlockLocked(const std::string& name);
  void upsertNodeLocked(const std::string& name, NodeInfo info);
  void upsertSubnetLocked(api::PodSubnet subnet);
  void eraseSubnetLocked(const std::string& name);
  void updateNodeMetricLocked(const std::string& node);
  // Keeps `cidr` taken until no IPBlock has shown up with it for `grace` (then the PodSubnet
  // reconciler frees it).
  void leakCidrLocked(const std::string& subnet, const ipam::Prefix& cidr,
                      std::chrono::seconds grace, bool foundOnNic = false);
  // How long a CIDR whose prefix may be on a NIC with no IPBlock stays taken: until the NIC pass
  // would have removed it as unowned (nicOrphanGrace), and at least leakGrace.
  std::chrono::seconds onNicLeakGrace() const {
    return std::max(config.leakGrace, config.nicOrphanGrace + std::chrono::seconds(30));
  }
  // The pool of a carved PodSubnet, or null. Under mutex.
  ipam::BlockPool* poolLocked(const std::string& subnet);

  // ---- reads ----
  Time now() const;
  bool canWrite() const { return writable.load(std::memory_order_acquire); }
  std::optional<BlockInfo> block(const std::string& name) const;              // takes mutex
  std::size_t blockCount() const;                                             // takes mutex
  std::optional<std::uint64_t> poolFree(const std::string& podSubnet) const;  // takes mutex
  bool nodeSelected(const NodeInfo& node, const api::PodSubnetSpec& spec) const;
  kube::ObjectReference nodeRef(const std::string& node) const;   // under mutex
  kube::ObjectReference blockRef(const std::string& name) const;  // takes mutex

  // ---- queueing and events ----
  WorkQueue& queueFor(const WorkKey& key);
  void enqueue(const WorkKey& key);
  void enqueueAfter(const WorkKey& key, WorkQueue::Clock::duration delay);
  void enqueueSubnetStatus(const std::string& name);
  void event(const kube::ObjectReference& ref, bool warning, std::string_view reason,
             std::string_view action, std::string_view note);

  // ---- writes more than one reconciler makes (state_writes.cpp) ----
  // Creates IPBlock `name` for a join or, with no cloud, for a new block, annotated with where it
  // is programmed; `again`: the node should be reconciled again (the name was taken). Under no
  // lock. On success the block is in the state at once; a create of unknown outcome, or one refused
  // after the prefix may be on a NIC, leaks the CIDR (leakCidrLocked).
  std::optional<std::string> createBlock(const std::string& node, const std::string& name,
                                         const Join& join, const std::string& providerID,
                                         const std::string& programmedOn, bool& again);
  // Deletes IPBlock `name` while it is still the object `uid` (a precondition: never another
  // object that has taken the name since) and folds the answer into the state at once, so the
  // block is known as deleting before the watch says so. Returns the block as the answer left it,
  // or nullopt when the object meant is gone already (NotFound, or the precondition failed).
  // Under no lock.
  kube::Result<std::optional<BlockInfo>> deleteBlock(const std::string& name,
                                                     const std::string& uid);
  // The node's VnetIpamNICProgrammed condition (server-side apply of nodes/<node>/status).
  std::optional<std::string> writeNodeNicCondition(const std::string& node,
                                                   const api::Condition& condition);

  // ---- what the state is made of ----
  kube::Client& client;
  Cloud* const cloud;
  WorkQueue& queue;
  WorkQueue& nicQueue;
  EventSink* const events;
  ControllerMetrics* const metrics;
  const ControllerConfig config;
  base::Clock& clock;
  std::atomic<bool> writable{false};

  mutable std::mutex mutex;  // guards everything below
  std::unordered_map<std::string, NodeInfo> nodes;
  std::unordered_map<std::string, BlockInfo> blocks;
  std::unordered_map<std::string, std::set<std::string>> nodeBlocks;  // node -> block names
  std::map<std::string, api::PodSubnet> subnets;
  std::map<std::string, SubnetState> subnetStates;
  std::unordered_map<std::string, Time> emptySince;                    // block name -> since
  std::unordered_map<std::string, std::string> nicIds;                 // node -> NIC id
  std::unordered_map<std::string, std::map<std::string, Join>> joins;  // node -> block -> join
  // New nodes whose first NIC pass the Node reconciler queues, once a carved pool selects them.
  std::set<std::string> nicPassAfterCarve;

 private:
  std::set<std::string> listSeen_[3];  // names seen by the list in progress, per Collection
};

}  // namespace vnetipam::controller
