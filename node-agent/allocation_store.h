// The agent's allocation core: one BlockAllocator per IPBlock of this node, the owner of every
// address, the durable journal behind them, and garbage-collection bookkeeping. No sockets and no
// API calls: the server feeds it requests, the informers feed it blocks and pods, and tests drive
// it directly with their own clock.
//
// What a caller may rely on:
// - handle() answers at once: an exhausted node is CNI code 11, never a wait for a new block.
// - An allocation is in the journal AND fsynced (group commit) before handle() returns it. Any
//   answer that shows an allocation (a retried allocate, check, list) first waits for the fsync
//   of everything journalled so far, so nobody sees an allocation a crash could lose.
// - A release is likewise in the journal AND fsynced before handle() answers, and so is a
//   repeated release of what is no longer held (it waits for everything journalled so far): a
//   runtime told that DEL succeeded never retries it. Releases share fsyncs with concurrent
//   allocations (group commit), so a pod's ADD+DEL costs two fsync waits but far fewer than two
//   fsyncs on a busy node. A failed release fsync leaves at worst a leak after a restart, which
//   GC returns, never an address handed out twice.
// - Per family: an allocate gets one address of each family the node serves and the client asks
//   for (servesLocked), from blocks of that family only, or none at all. The addresses are taken
//   in memory first and journalled only once every family has one, so a refused family leaves
//   nothing in the journal. Each address is its own journal record (the format of a single-stack
//   agent, which an older agent also reads); the records of one allocate are appended together
//   and share one fsync. A crash between the two appends leaves the first address held by its
//   owner, never free: its ADD was not answered, so the runtime's DEL, a retried ADD (which then
//   completes the pair) or GC returns it, and it is never handed to another owner meanwhile.
// - Only blocks in phase Ready (and not being deleted, nor marked Invalid by the controller) get
//   new allocations. A block that leaves the API while it still holds allocations is kept,
//   reported as orphaned, and allocates nothing.
// - Before the API server has been reached, the blocks persisted in served-blocks (see
//   served_blocks.h for why that is safe) may be served (servePersisted); the first API sync then
//   decides (apiSynced).
// - Released addresses cool down for `cooldown`, across restarts (the release time is recorded).
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lib/base/clock.h"
#include "lib/ipam/block_allocator.h"
#include "lib/ipam/journal.h"
#include "lib/ipam/owner.h"
#include "node-agent/journal_record.h"
#include "node-agent/metrics.h"
#include "node-agent/protocol.h"
#include "node-agent/release_request.h"
#include "node-agent/served_blocks.h"

namespace vnetipam::agent {

struct StoreOptions {
  std::string nodeName;  // for messages
  std::chrono::seconds cooldown{30};
  std::chrono::seconds gcGrace{60};
  // Compact the journal once it holds this many entries after its snapshot.
  std::uint64_t compactAfterEntries = 20'000;
};

// One IPBlock of this node as the API server shows it.
struct ApiBlock {
  std::string name;
  ipam::Prefix cidr;
  bool ready = false;     // phase Ready
  bool deleting = false;  // deletionTimestamp set or phase Releasing
  bool invalid = false;   // condition Invalid is True: the controller did not make it
};

struct BlockUsage {
  std::string name;
  std::int64_t used = 0;
  bool inApi = false;  // only blocks in the API can be reported
  ipam::Prefix cidr;
  std::vector<Allocation> allocations;  // the `used` addresses held in it, sorted by address
};

// An allocation GC released, for logs and tests.
struct GcRelease {
  Allocation allocation;
  std::string_view reason;  // kReasonPodGone or kReasonCniGc
  std::string why;          // for the log: which pod is gone, or which was recreated
};

// What the pod informer shows for an allocation's namespace/name: nullopt when no such pod is on
// this node, else its metadata.uid (empty if the object has none).
using LivePod = std::optional<std::string>;

// The pod side of GC for one allocation, a pure decision.
//   kKeep       its pod is there: the same UID, or no UID to compare (either side empty).
//   kGone       no pod of that namespace/name on this node.
//   kRecreated  a pod of that namespace/name is there but with another UID: the allocation's pod
//               was deleted and a new one (say a StatefulSet's) took its name. Only when the
//               allocation recorded a UID; without one an allocation behaves as before UIDs.
enum class PodVerdict : std::uint8_t { kKeep, kGone, kRecreated };
PodVerdict podVerdict(std::string_view recordedUID, const LivePod& live);

class AllocationStore {
 public:
  // Rebuilds the state the journal records (`recovered` is what Journal::open returned) and
  // serves from `journal`, which must outlive the store, as must `clock` (calendar time for
  // cooldowns and GC grace, monotonic time for the latency metrics). kCorruption when a record does
  // not decode. Allocations are restored before anything is allocated; addresses released less than
  // `cooldown` ago cool on.
  static base::Result<std::unique_ptr<AllocationStore>> recover(ipam::Journal& journal,
                                                                const ipam::Recovered& recovered,
                                                                StoreOptions options,
                                                                base::Clock& clock,
                                                                AgentMetrics* metrics = nullptr);

  // ---- blocks, from the IPBlock informer ----
  // Adds or updates a block. A CIDR different from the one the journal holds under that name
  // makes the block unusable (logged): the recorded allocations win.
  void upsertBlock(const ApiBlock& block);
  // The block left the API. Kept (orphaned, no new allocations) while it holds allocations.
  void removeBlock(const std::string& name);
  // Called once the informer has synced: blocks the journal knows but the API does not are
  // orphaned (kept and reported) or, when empty, dropped; so are persisted blocks the API did not
  // confirm. Returns the orphaned block names.
  std::vector<std::string> apiSynced();
  // Before the API server answers: serve these blocks (from the persisted served-blocks file) as
  // if the API showed them Ready. A block the API has already shown is left as the API says.
  // Their status.used is not reported until the API confirms them.
  void servePersisted(const std::vector<ServedBlock>& blocks);
  // The blocks new allocations may come from now: what the served-blocks file must hold.
  std::vector<ServedBlock> servedBlocks() const;
  // Whether the agent may give the block up: it allocates nothing from it (not usable) and holds
  // no address in it. True for a block the store does not know.
  bool drainable(std::string_view name) const;
  // Called (with the store's lock held: it must only wake someone) when a release leaves a block
  // that gets no new allocations without any allocation: it may be drainable now.
  void setOnBlockEmptied(std::function<void(const std::string& name)> hook);

  // Whether handle() allocates (false: allocate answers 11, the agent is not ready yet).
  void setReady(bool ready);
  bool ready() const;

  // ---- the socket protocol ----
  Response handle(const Request& request);

  // ---- garbage collection ----
  // One sweep at the store's now(): allocations whose pod `lookup` shows gone or recreated
  // (podVerdict; nullopt lookup: the pod list is not synced, skip that check) are marked; marks
  // (these and a CNI gc request's) older than the grace period are released. A mark is cleared
  // when the allocation's own pod shows up again, a later gc request lists the attachment, or the
  // owner retries its allocate. Also refreshes the per-block free-address gauges (cooling
  // addresses become free with time alone).
  using PodLookup = std::function<LivePod(const std::string& ns, const std::string& name)>;
  std::vector<GcRelease> collectGarbage(const std::optional<PodLookup>& lookup);

  // ---- an admin's release request (release_request.h) ----
  // The pod of an allocation as the Pod informer shows it; nullopt: no such pod on this node.
  using PodStateLookup =
      std::function<std::optional<PodState>(const std::string& ns, const std::string& name)>;
  // Decides `request` for its address in block `blockName` (decideRelease) and, when the owner is
  // provably dead, releases it as GC does: journal first (fsynced before this returns), metrics
  // (reason kReasonAdminRelease), a log line with the reason. `pods` must be synced. A decision
  // to release whose journal write fails comes back refused, the error as its why.
  ReleaseDecision releaseOnRequest(const std::string& blockName, const api::ReleaseRequest& request,
                                   const PodStateLookup& pods);

  // ---- reporting and upkeep ----
  std::vector<BlockUsage> usage() const;
  // Free addresses in usable blocks at now(), of the scarcest family the node serves (an ADD needs
  // one of each).
  std::uint64_t freeIPs() const;
  // Compacts the journal when it holds more than compactAfterEntries entries (or `force`).
  // Pauses every request for the duration (a snapshot write and two fsyncs).
  base::Result<bool> compactIfNeeded(bool force = false);

  // Invariants across the allocators and the owner index (tests call it after every step).
  std::optional<std::string> invariantViolation() const;

 private:
  struct BlockState {
    ipam::Prefix cidr;
    std::unique_ptr<ipam::BlockAllocator> allocator;
    bool inApi = false;
    bool ready = false;
    bool deleting = false;
    bool cidrConflict = false;
    bool invalid = false;
    bool provisional = false;  // from servePersisted, not yet confirmed by the API
    bool usable() const { return inApi && ready && !deleting && !invalid && !cidrConflict; }
  };
  struct Held {
    std::string block;
    ipam::IPAddress address;
    std::string network;  // the CNI network its allocate named; empty: none (protocol.h)
    std::string podNamespace;
    std::string podName;
    std::string podUID;
    ipam::Seq allocatedSeq = 0;  // its allocate entry's journal seq; 0: not known
    std::optional<ipam::TimePoint> podGoneSince;
    std::string podGoneWhy;  // set with podGoneSince, for the release's log
    std::optional<ipam::TimePoint> notAttachedSince;
  };

  // The owner index's key is the (container ID, interface, family) triple itself, never the parts
  // joined into one string: joined with a separator, ("a\0b", "c") and ("a", "b\0c") were one
  // owner and got one address. An attachment holds at most one address per family; the journal
  // records each address apart (its family is its block's), so its format does not depend on this.
  struct OwnerKey {
    ipam::Owner owner;
    ipam::Family family = ipam::Family::kV4;
    bool operator==(const OwnerKey&) const = default;
  };
  struct OwnerKeyHash {
    std::size_t operator()(const OwnerKey& key) const noexcept;
  };

  AllocationStore(ipam::Journal& journal, StoreOptions options, base::Clock& clock,
                  AgentMetrics* metrics);
  // Requires mu_. Whether the node serves `family`: an IPBlock of it is assigned (in the API, or
  // persisted before it answers) and neither being deleted nor Invalid. Ready or not: a family
  // whose block is not Ready yet is still one an ADD must get (it fails until the block is).
  bool servesLocked(ipam::Family family) const;

  // One address an allocate took in memory, not journalled yet.
  struct Taken {
    ipam::Family family;
    const std::string* name;
    BlockState* block;
    ipam::IPAddress address;
    ipam::Seq seq = 0;  // its journal record's, once recorded
  };

  Response allocate(const Request& request);
  // The steps of allocate, each requiring mu_. takeLocked takes one address of every family in
  // `missing` in memory (all or nothing: on failure nothing is taken and the answer says why;
  // `held` is how many families the owner holds already). recordLocked journals them, one record
  // each (the format of a single-stack agent); if an append fails it undoes them in memory and
  // journals the release of those already recorded, and answers the failure. publishLocked enters
  // them in the owner index and appends them to the answer.
  std::expected<std::vector<Taken>, Response> takeLocked(const Request& request,
                                                         const std::vector<ipam::Family>& missing,
                                                         std::size_t held, ipam::TimePoint now);
  std::expected<ipam::Seq, Response> recordLocked(const Request& request, std::vector<Taken>& taken,
                                                  ipam::TimePoint now);
  void publishLocked(const Request& request, const std::vector<Taken>& taken, ipam::TimePoint now,
                     Response& response);
  // Requires mu_. The keys of what the attachment holds for `network` (protocol.h: an allocation
  // or a request without a network matches any), IPv4 first.
  std::vector<OwnerKey> heldKeysLocked(const ipam::Owner& owner, std::string_view network) const;
  Response release(const Request& request, std::string_view reason);
  Response check(const Request& request);
  Response list();
  Response gc(const Request& request);
  Response status();

  // Requires mu_. Releases the held owner `key`, journals it; returns the journal seq.
  base::Result<ipam::Seq> releaseLocked(const OwnerKey& key, std::string_view reason,
                                        ipam::TimePoint now, Allocation& released);
  Allocation toAllocation(const OwnerKey& key, const Held& held) const;
  // Waits for the fsync of everything up to seq; an error answers code 5.
  std::optional<Response> syncOrFail(ipam::Seq seq, std::string_view what);
  BlockState& blockFor(const std::string& name, ipam::Prefix cidr);
  void refreshBlockMetricsLocked();
  RecordedState snapshotLocked(ipam::TimePoint now) const;

  ipam::Journal& journal_;
  const StoreOptions options_;
  base::Clock& clock_;
  AgentMetrics* metrics_;

  mutable std::mutex mu_;
  std::map<std::string, BlockState, std::less<>> blocks_;
  std::unordered_map<OwnerKey, Held, OwnerKeyHash> held_;
  bool ready_ = false;
  std::function<void(const std::string&)> onBlockEmptied_;
};

}  // namespace vnetipam::agent
