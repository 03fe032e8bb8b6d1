// vnet-ipam-agent: hands out pod addresses from this node's IPBlocks over a unix socket.
//
// Start-up order is what makes the node safe to use: recover the journal (every allocation a
// previous run acknowledged is held before anything is handed out), sync the IPBlock and Pod
// informers, then listen, and only then write the CNI config that tells the runtime the node's
// network is ready. A clean stop (SIGTERM/SIGINT) reverses it: the config goes first.
//
// A control-plane outage does not stop the node: when the API server does not answer within
// --api-wait-seconds, the agent serves the blocks it persisted (served_blocks.h says why that is
// safe: the controller takes a block back only after this agent removed agent-drain, which it
// does only after durably dropping the block from that file) and resynchronises as soon as the
// API server is back (informer reconnects back off at most kReconnect.maxBackoff).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <expected>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "api/constants.h"
#include "lib/base/clock.h"
#include "lib/base/file.h"
#include "lib/cli/logging.h"
#include "lib/http/cpprest_transport.h"
#include "lib/ipam/journal.h"
#include "lib/kube/client.h"
#include "lib/kube/config.h"
#include "lib/kube/connect.h"
#include "lib/kube/events.h"
#include "lib/kube/informer.h"
#include "lib/net/host_dataplane.h"
#include "lib/net/netns.h"
#include "lib/observe/http_server.h"
#include "node-agent/agent_events.h"
#include "node-agent/allocation_store.h"
#include "node-agent/api_sync.h"
#include "node-agent/block_keeper.h"
#include "node-agent/cni_config.h"
#include "node-agent/dataplane_drift.h"
#include "node-agent/install_cni.h"
#include "node-agent/metrics.h"
#include "node-agent/options.h"
#include "node-agent/release_request.h"
#include "node-agent/served_blocks.h"
#include "node-agent/socket_server.h"

namespace {

using namespace vnetipam;
using namespace vnetipam::agent;

int gSignalPipe[2] = {-1, -1};

// Watch reconnects and failed lists back off at most this much, so the agent is back in sync
// within seconds of the API server's return (the library default grows to 30 s).
const kube::ReconnectOptions kReconnect{.initialBackoff = std::chrono::milliseconds(200),
                                        .maxBackoff = std::chrono::milliseconds(2000)};

extern "C" void onSignal(int) {
  const char byte = 1;
  (void)!::write(gSignalPipe[1], &byte, 1);
}

// Waits up to `timeout` for SIGTERM/SIGINT; true when one arrived.
bool waitForSignal(std::chrono::milliseconds timeout) {
  pollfd p{.fd = gSignalPipe[0], .events = POLLIN, .revents = 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  return r > 0;
}

kube::Result<kube::KubeConfig> loadKubeConfig(const AgentOptions& options) {
  if (options.kubeconfig.empty()) return kube::loadInCluster();
  return kube::loadKubeconfig(options.kubeconfig);
}

// One dataplane check: the allocations and blocks the store holds against one read of the host
// namespace. Returns the DataplaneSynced condition of each block the API shows, or nullopt when
// the host could not be read (logged; the conditions stay as they were).
std::optional<std::map<std::string, DataplaneCondition>> checkDataplane(
    AllocationStore& store, const net::Netns& hostNs, const AgentOptions& options,
    DriftTracker& tracker, AgentMetrics& metrics, AgentEvents& events) {
  std::vector<DriftBlock> blocks;
  for (const BlockUsage& b : store.usage()) {
    if (b.inApi) blocks.push_back({.name = b.name, .cidr = b.cidr});
  }
  std::vector<HeldAddress> held;
  for (const Allocation& a : store.handle(Request{.op = Op::kList}).allocations) {
    held.push_back({.block = a.blockName,
                    .address = a.address,
                    .owner = a.owner,
                    .podNamespace = a.podNamespace,
                    .podName = a.podName});
  }
  // After the store's answer: a route the plugin adds meanwhile is seen, not reported stale.
  auto read = net::readHostDataplane(hostNs);
  if (!read) {
    metrics.dataplaneCheckFailed();
    spdlog::warn("dataplane check: {}", read.error().message);
    return std::nullopt;
  }
  ObservedDataplane observed;
  for (const auto& l : read->links)
    observed.links.push_back({.name = l.name, .ifindex = l.ifindex, .up = l.up});
  for (const auto& r : read->routes)
    observed.routes.push_back({.dst = r.dst, .oif = r.oif});
  const auto confirmed = tracker.confirm(
      held, findDrift(blocks, held, observed, options.hostVethPrefix), base::systemClock().now());
  std::size_t missing = 0;
  for (const DriftFinding& f : confirmed) {
    if (f.kind == DriftKind::kMissingRoute) ++missing;
    spdlog::warn("dataplane drift in block {}: {}: {}", f.block, f.address.toString(), f.what);
  }
  metrics.setDataplaneDrift(missing, confirmed.size() - missing);
  events.dataplaneChecked(confirmed);
  return dataplaneConditions(blocks, confirmed);
}

// The journal as Journal::open returns it: the journal and what it recovered from disk.
using OpenedJournal = std::pair<std::unique_ptr<ipam::Journal>, ipam::Recovered>;
// The served-blocks file as loadServedBlocks read it back.
using PersistedBlocks = std::expected<std::vector<ServedBlock>, std::string>;

// Creates --state-dir and opens the journal in it. nullopt when either fails (logged).
std::optional<OpenedJournal> openJournal(const AgentOptions& options) {
  const std::filesystem::path stateDir(options.stateDir);
  std::error_code ec;
  std::filesystem::create_directories(stateDir, ec);
  if (ec) {
    spdlog::error("--state-dir {}: {}", options.stateDir, ec.message());
    return std::nullopt;
  }
  auto opened = ipam::Journal::open(stateDir / "allocations.journal");
  if (!opened) {
    spdlog::error("opening the journal in --state-dir {}: {}", options.stateDir,
                  opened.error().message);
    return std::nullopt;
  }
  auto& [journal, recovered] = *opened;
  if (recovered.dropped) {
    spdlog::warn(
        "journal {}: cut a torn tail of {} bytes at offset {} ({}); it held no "
        "acknowledged records",
        journal->path().string(), recovered.dropped->bytes, recovered.dropped->offset,
        recovered.dropped->reason);
  }
  return std::move(*opened);
}

// A config left by a killed agent says the node can serve; until this run can, it cannot.
void removeStaleCniConfig(const AgentOptions& options) {
  const std::filesystem::path confFile =
      std::filesystem::path(options.cniConfDir) / options.cniConfName;
  std::error_code ec;
  if (std::filesystem::remove(confFile, ec)) {
    spdlog::info("removed {} left by an earlier run until this one can serve", confFile.string());
  }
}

// What the agent recovers from its state directory: the journal, the allocation store rebuilt
// from it (with the metrics it counts in) and the blocks the last run persisted as served.
// Members are in construction order; the store refers to the journal and the metrics.
struct LocalState {
  explicit LocalState(OpenedJournal opened)
      : journal(std::move(opened.first)), recovered(std::move(opened.second)) {}

  std::unique_ptr<ipam::Journal> journal;
  ipam::Recovered recovered;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  AgentMetrics metrics{registry};
  std::unique_ptr<AllocationStore> store;  // set by recoverState
  PersistedBlocks persisted;               // set by recoverState
};

// Rebuilds the allocation store from the opened journal (every allocation a previous run
// acknowledged is held again) and reads the persisted served blocks. nullptr when the journal's
// records cannot be recovered (logged).
std::unique_ptr<LocalState> recoverState(const AgentOptions& options, base::Clock& clock,
                                         OpenedJournal opened) {
  auto local = std::make_unique<LocalState>(std::move(opened));
  auto store = AllocationStore::recover(
      *local->journal, local->recovered,
      StoreOptions{.nodeName = options.nodeName,
                   .cooldown = std::chrono::seconds(options.releaseCooldownSeconds),
                   .gcGrace = std::chrono::seconds(options.gcGraceSeconds)},
      clock, &local->metrics);
  if (!store) {
    spdlog::error("recovering from the journal in --state-dir {}: {}", options.stateDir,
                  store.error().message);
    return nullptr;
  }
  local->store = std::move(*store);

  local->persisted = loadServedBlocks(options.stateDir, options.nodeName);
  if (local->persisted) {
    spdlog::info("{} blocks persisted as served by the last run", local->persisted->size());
  } else {
    // Missing (a first start) or damaged: nothing is served before the API server answers.
    spdlog::info("no persisted served blocks ({}): serving waits for the API server",
                 local->persisted.error());
  }
  return local;
}

// Registers the health checks (live while the journal syncs, ready while allocations are served)
// and starts serving metrics and health. false when --metrics-address cannot be served (logged).
bool startHealthServer(observe::HttpServer& http, ipam::Journal& journal,
                       AllocationStore& allocations) {
  http.addCheck("journal", observe::Probe::kLiveness,
                [&journal]() -> std::expected<void, std::string> {
                  if (auto ok = journal.sync(0); !ok) return std::unexpected(ok.error().message);
                  return {};
                });
  http.addCheck("serving", observe::Probe::kReadiness,
                [&allocations]() -> std::expected<void, std::string> {
                  if (!allocations.ready()) {
                    return std::unexpected(std::string("not serving allocations yet"));
                  }
                  return {};
                });
  if (auto started = http.start(); !started) {
    spdlog::error("--metrics-address: {}", started.error());
    return false;
  }
  return true;
}

// The API server's client and the event recorder that writes through it. Members are in
// construction order: each refers to the one before it.
struct ApiClients {
  ApiClients(kube::KubeConfig kubeConfig, std::unique_ptr<http::CpprestTransportImpl> httpTransport,
             base::Clock& clock, const std::string& nodeName)
      : config(std::move(kubeConfig)),
        transport(std::move(httpTransport)),
        // Retries of one request stay short too: a list that fails while the API server is away
        // must not sleep for long after it is back.
        client(*transport, clock,
               {.token = config.token,
                .maxBackoff = std::chrono::milliseconds(1000),
                .userAgent = "vnet-ipam-agent/" + nodeName}),
        // Events are best-effort and written by the recorder's own thread: nothing here waits on
        // them.
        recorder(client, clock,
                 {.reportingController = "vnetipam.io/agent",
                  .reportingInstance = nodeName,
                  .log = [](std::string_view line) { spdlog::warn("event: {}", line); }}) {}

  kube::KubeConfig config;
  std::unique_ptr<http::CpprestTransportImpl> transport;
  kube::Client client;
  kube::EventRecorder recorder;
};

// Loads the kube config (--kubeconfig or in-cluster), makes the client and starts the event
// recorder. nullptr when the config or the transport cannot be made (logged).
std::unique_ptr<ApiClients> connectToApi(const AgentOptions& options, base::Clock& clock) {
  auto config = loadKubeConfig(options);
  if (!config) {
    spdlog::error("{}{}", options.kubeconfig.empty() ? "in-cluster config: " : "--kubeconfig: ",
                  config.error().message);
    return nullptr;
  }
  auto transport = http::CpprestTransportImpl::create(kube::transportOptions(*config));
  if (!transport) {
    spdlog::error("kube client: {}", transport.error().message);
    return nullptr;
  }
  auto api = std::make_unique<ApiClients>(std::move(*config), std::move(*transport), clock,
                                          options.nodeName);
  api->recorder.start();
  return api;
}

// The namespace the agent runs in is the host's (hostNetwork): the one its routes are read from.
// An error is logged.
net::Result<net::Netns> openHostNetns() {
  auto hostNs = net::Netns::current();
  if (!hostNs) {
    spdlog::error("opening the host network namespace: {}", hostNs.error().message);
  }
  return hostNs;
}

// On every way out, the keeper's thread (which reads the informer) stops before the informers
// are destroyed, and releases no longer wake it.
struct KeeperStop {
  BlockKeeper& keeper;
  AllocationStore& store;
  ~KeeperStop() {
    keeper.stop();
    store.setOnBlockEmptied({});
  }
};

// This node's IPBlocks and Pods as the API server shows them (an informer each) and the keeper
// of the blocks it serves, which reads the IPBlock cache. Members are in construction order.
class NodeSync {
 public:
  // `allocations`, `client` and `events` must outlive this object.
  NodeSync(const AgentOptions& options, AllocationStore& allocations, kube::Client& client,
           AgentEvents& events, const PersistedBlocks& persisted);
  NodeSync(const NodeSync&) = delete;
  NodeSync& operator=(const NodeSync&) = delete;

  // Starts the IPBlock informer, then the Pod informer.
  void startInformers() {
    blocks_.start();
    pods_.start();
  }
  // Stops the keeper, then the IPBlock informer, then the Pod informer.
  void stop() {
    keeper_.stop();
    blocks_.stop();
    pods_.stop();
  }

  BlockKeeper& keeper() { return keeper_; }
  const kube::Informer& blocks() const { return blocks_; }
  const kube::Informer& pods() const { return pods_; }

 private:
  // An IPBlock added or updated.
  void onBlock(const nlohmann::json& object);
  // An IPBlock deleted.
  void onBlockDeleted(const nlohmann::json& object);

  const AgentOptions& options_;
  AllocationStore& allocations_;
  AgentEvents& events_;
  const std::string nodeSelector_;
  BlockKeeper keeper_;
  kube::Informer blocks_;
  KeeperStop keeperStop_;
  kube::Informer pods_;
};

NodeSync::NodeSync(const AgentOptions& options, AllocationStore& allocations, kube::Client& client,
                   AgentEvents& events, const PersistedBlocks& persisted)
    : options_(options),
      allocations_(allocations),
      events_(events),
      nodeSelector_(fmt::format("spec.nodeName={}", options.nodeName)),
      // blocks_ is made below; the keeper starts after that.
      keeper_(
          allocations, client, {.stateDir = options.stateDir, .nodeName = options.nodeName},
          [this] { return blocks_.list(); },
          persisted ? std::optional<std::vector<ServedBlock>>(*persisted) : std::nullopt),
      blocks_(client, std::string(kIPBlocksPath),
              kube::InformerOptions{
                  .list = {.fieldSelector = nodeSelector_},
                  .reconnect = kReconnect,
                  .onError =
                      [](const kube::Error& e) { spdlog::warn("IPBlock watch: {}", e.message); }},
              kube::InformerHandlers{
                  .onAdd = [this](const nlohmann::json& object) { onBlock(object); },
                  .onUpdate = [this](const nlohmann::json&,
                                     const nlohmann::json& object) { onBlock(object); },
                  .onDelete = [this](const nlohmann::json& object) { onBlockDeleted(object); }}),
      keeperStop_{keeper_, allocations},
      pods_(client, std::string(kPodsPath),
            {.list = {.fieldSelector = nodeSelector_},
             .reconnect = kReconnect,
             .onError = [](const kube::Error& e) { spdlog::warn("Pod watch: {}", e.message); }},
            {}) {
  // A release that empties a block nothing new comes from may let the keeper give it up.
  allocations_.setOnBlockEmptied([this](const std::string&) { keeper_.kick(); });
}

void NodeSync::onBlock(const nlohmann::json& object) {
  auto block = apiBlockFromJson(object, options_.nodeName);
  if (!block) {
    spdlog::warn("not serving an IPBlock: {}", block.error());
    // A block the agent cannot read is served no longer (kept while it holds allocations).
    const std::string name = object.value("/metadata/name"_json_pointer, std::string());
    if (!name.empty()) allocations_.removeBlock(name);
  } else {
    allocations_.upsertBlock(*block);
    events_.blockSeen(block->name, block->invalid);
  }
  keeper_.kick();  // the served set may have changed, or the block started deleting
}

void NodeSync::onBlockDeleted(const nlohmann::json& object) {
  const std::string name = object.value("/metadata/name"_json_pointer, std::string());
  allocations_.removeBlock(name);
  events_.blockGone(name);
  keeper_.kick();
}

// Waits for the IPBlock and Pod caches to sync, or for --api-wait-seconds to pass when blocks
// were persisted. nullopt when SIGTERM/SIGINT came first (logged).
std::optional<StartMode> waitForApi(const AgentOptions& options, base::Clock& clock,
                                    const NodeSync& sync, bool persistedValid) {
  spdlog::info("vnet-ipam-agent on node {}: waiting for the IPBlock and Pod caches to sync",
               options.nodeName);
  const auto waitStart = clock.now();
  StartMode mode = StartMode::kWait;
  while ((mode = startMode(sync.blocks().hasSynced() && sync.pods().hasSynced(),
                           clock.now() - waitStart, std::chrono::seconds(options.apiWaitSeconds),
                           persistedValid)) == StartMode::kWait) {
    if (waitForSignal(std::chrono::milliseconds(50))) {
      spdlog::info("stopping before the caches synced");
      return std::nullopt;
    }
  }
  return mode;
}

// Logs the blocks apiSynced() found orphaned.
void warnOrphaned(const std::vector<std::string>& names) {
  for (const auto& name : names) {
    spdlog::warn("block {} is orphaned: its allocations stay held until released or collected",
                 name);
  }
}

// Sets the store's blocks as `mode` says. Returns whether apiSynced() is still owed.
bool serveStartBlocks(const AgentOptions& options, StartMode mode, AllocationStore& allocations,
                      const PersistedBlocks& persisted) {
  // Until the IPBlock cache syncs, the persisted blocks are served and apiSynced() is owed.
  const bool apiSyncOwed = mode == StartMode::kFromPersisted;
  if (apiSyncOwed) {
    spdlog::warn(
        "the API server did not answer within {} s: serving the {} persisted blocks "
        "and the journal's allocations until it does",
        options.apiWaitSeconds, persisted->size());
    allocations.servePersisted(*persisted);
  } else {
    warnOrphaned(allocations.apiSynced());
  }
  return apiSyncOwed;
}

// The socket's handler: the store answers each request.
SocketServer::Handler answerRequests(AllocationStore& allocations, AgentEvents& events) {
  return [&allocations, &events](const Request& request) {
    Response response = allocations.handle(request);
    // Only a failed allocate of a serving agent is news; recording only queues.
    if (request.op == Op::kAllocate && !response.ok && allocations.ready()) {
      events.allocateAnswered(request, response, allocations.servedBlocks().empty());
    }
    return response;
  };
}

// Listens on the socket, makes the store ready and only then writes the CNI config that tells
// the runtime the node's network is ready. false when either fails (logged).
bool startServing(const AgentOptions& options, SocketServer& server, AllocationStore& allocations) {
  if (auto started = server.start(); !started) {
    spdlog::error("--socket: {}", started.error().message);
    return false;
  }
  allocations.setReady(true);
  const std::filesystem::path confDir(options.cniConfDir);
  if (auto written = base::writeFileAtomically(
          confDir, options.cniConfName,
          cniConfigList(options.hostVethPrefix, options.mtu, options.socket, options.chainPortmap));
      !written) {
    spdlog::error("--cni-conf-dir: {}", written.error().message);
    return false;
  }
  spdlog::info("serving on {} with {} free addresses; CNI config {} written", options.socket,
               allocations.freeIPs(), (confDir / options.cniConfName).string());
  return true;
}

// Tells the reporter thread to stop; it waits on `changed` between its rounds.
struct StopFlag {
  std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;  // guarded by mutex
};

// The reporter thread: status.used in batches and the dataplane checks, until `stop` is set;
// then status.used once more.
void reportUntilStopped(const AgentOptions& options, base::Clock& clock, LocalState& local,
                        kube::Client& client, AgentEvents& events, const kube::Informer& blocks,
                        const net::Netns& hostNs, StopFlag& stop) {
  AllocationStore& allocations = *local.store;
  UsageReporter usage(client, &local.metrics, [&blocks](const std::string& name) {
    return blocks.get(name).value_or(nlohmann::json());
  });
  DriftTracker tracker(std::chrono::seconds(options.dataplaneGraceSeconds));
  const auto interval = std::chrono::milliseconds(options.usageReportIntervalMs);
  const auto checkInterval = std::chrono::seconds(options.dataplaneCheckIntervalSeconds);
  auto nextCheck = clock.now();
  // Blocks that have had a condition decided: a block the API confirms later (after a start
  // from served-blocks, or a new one) is checked at once rather than written without it.
  std::set<std::string, std::less<>> decided;
  std::unique_lock lock(stop.mutex);
  while (!stop.stopping) {
    lock.unlock();
    std::map<std::string, DataplaneCondition> checked;
    const bool undecided = std::ranges::any_of(allocations.usage(), [&](const BlockUsage& b) {
      return b.inApi && !decided.contains(b.name);
    });
    if (undecided || clock.now() >= nextCheck) {
      if (auto c = checkDataplane(allocations, hostNs, options, tracker, local.metrics, events)) {
        checked = std::move(*c);
        for (const auto& entry : checked)
          decided.insert(entry.first);
      }
      nextCheck = clock.now() + checkInterval;
    }
    usage.report(allocations.usage(), checked);
    lock.lock();
    stop.changed.wait_for(lock, std::min<std::chrono::nanoseconds>(interval, checkInterval),
                          [&] { return stop.stopping; });
  }
  lock.unlock();
  usage.report(allocations.usage());  // the last word before exit
}

// Sets `stop` and waits for the reporter thread to end.
void stopReporter(StopFlag& stop, std::thread& reporter) {
  {
    std::lock_guard lock(stop.mutex);
    stop.stopping = true;
  }
  stop.changed.notify_all();
  reporter.join();
}

// The first API sync, owed since a start from the persisted blocks: the IPBlock cache decides.
void finishApiSync(AllocationStore& allocations, BlockKeeper& keeper) {
  spdlog::info("the API server answered: IPBlocks resynchronised");
  warnOrphaned(allocations.apiSynced());
  keeper.kick();
}

// One GC sweep, then the release requests, both against the Pod cache.
void gcSweep(AllocationStore& allocations, const NodeSync& sync,
             ReleaseRequestHandler& releaseRequests, AgentEvents& events) {
  const kube::Informer& pods = sync.pods();
  // The live pod's UID as well as its presence: a pod recreated under the same name (a
  // StatefulSet's) must not shield the allocation of the one it replaced.
  const auto podLookup = pods.hasSynced()
                             ? std::optional<AllocationStore::PodLookup>(
                                   [&](const std::string& ns, const std::string& name) -> LivePod {
                                     auto pod = pods.get(ns + "/" + name);
                                     if (!pod) return std::nullopt;
                                     return pod->value("/metadata/uid"_json_pointer, std::string());
                                   })
                             : std::nullopt;
  allocations.collectGarbage(podLookup);
  // An admin's release requests (kubectl ipam release), decided against the same Pod cache:
  // only once it has synced, since "no such pod" must mean gone.
  if (pods.hasSynced()) {
    releaseRequests.sweep(
        sync.blocks().list(),
        [&](const std::string& block, const api::ReleaseRequest& request) {
          return allocations.releaseOnRequest(
              block, request,
              [&](const std::string& ns, const std::string& name) -> std::optional<PodState> {
                auto pod = pods.get(ns + "/" + name);
                if (!pod) return std::nullopt;
                return podStateFromJson(*pod);
              });
        },
        [&](const std::string& block, const std::string& uid, const api::ReleaseRequest& request,
            const ReleaseDecision& decision) {
          events.releaseAnswered(block, uid, request, decision);
        });
  }
}

// A compaction that fails (no descriptor, no space) is retried after a delay that doubles from
// 1 s to 60 s and logged once per episode: retrying every second would rebuild the snapshot and
// log a line each time. Nothing is lost meanwhile: the journal only grows until it works again.
struct CompactionRetry {
  base::Clock::TimePoint next;
  std::chrono::seconds backoff{0};
};

// Compacts the journal when needed, unless a failed compaction's delay has not passed.
void compactWhenDue(AllocationStore& allocations, base::Clock& clock, CompactionRetry& retry) {
  const auto now = clock.now();
  if (now < retry.next) return;
  if (auto compacted = allocations.compactIfNeeded(); !compacted) {
    if (retry.backoff.count() == 0) {
      spdlog::error("journal compaction: {} (retrying, at most once a minute)",
                    compacted.error().message);
    }
    retry.backoff =
        std::min(std::max(retry.backoff * 2, std::chrono::seconds(1)), std::chrono::seconds(60));
    retry.next = now + retry.backoff;
  } else if (*compacted && retry.backoff.count() != 0) {
    spdlog::info("journal compaction works again");
    retry.backoff = std::chrono::seconds(0);
  }
}

// The agent's upkeep until SIGTERM/SIGINT: the owed first API sync, GC, release requests and
// journal compaction.
void serveUntilSignal(base::Clock& clock, AllocationStore& allocations, NodeSync& sync,
                      AgentEvents& events, bool apiSyncOwed) {
  ReleaseRequestHandler releaseRequests;
  // GC every second (the grace period is counted in seconds), compaction when due; while the
  // first API sync is owed, a check for it every 50 ms.
  auto nextGc = clock.now();
  CompactionRetry compaction{.next = nextGc};
  while (!waitForSignal(apiSyncOwed ? std::chrono::milliseconds(50) : std::chrono::seconds(1))) {
    if (apiSyncOwed && sync.blocks().hasSynced()) {
      apiSyncOwed = false;
      finishApiSync(allocations, sync.keeper());
    }
    if (clock.now() < nextGc) continue;
    nextGc = clock.now() + std::chrono::seconds(1);
    gcSweep(allocations, sync, releaseRequests, events);
    compactWhenDue(allocations, clock, compaction);
  }
}

// A clean stop's first steps: the CNI config goes first, then the store stops allocating and the
// socket closes.
void stopServing(const AgentOptions& options, AllocationStore& allocations, SocketServer& server) {
  spdlog::info("stopping: removing the CNI config, then the socket");
  std::error_code ec;
  std::filesystem::remove(std::filesystem::path(options.cniConfDir) / options.cniConfName, ec);
  allocations.setReady(false);
  server.stop();
}

// Start-up and orderly shutdown, in the order the file comment gives. Returns the exit code.
int run(const AgentOptions& options) {
  base::Clock& clock = base::systemClock();
  auto opened = openJournal(options);
  if (!opened) return 1;
  removeStaleCniConfig(options);
  auto local = recoverState(options, clock, std::move(*opened));
  if (!local) return 1;
  AllocationStore& allocations = *local->store;

  observe::HttpServer http(options.metricsAddress, local->registry);
  if (!startHealthServer(http, *local->journal, allocations)) return 1;

  auto api = connectToApi(options, clock);
  if (!api) return 1;
  AgentEvents events(api->recorder, options.nodeName);
  auto hostNs = openHostNetns();
  if (!hostNs) return 1;

  NodeSync sync(options, allocations, api->client, events, local->persisted);
  sync.startInformers();
  const auto mode = waitForApi(options, clock, sync, local->persisted.has_value());
  if (!mode) return 0;
  const bool apiSyncOwed = serveStartBlocks(options, *mode, allocations, local->persisted);
  sync.keeper().start();

  SocketServer server(options.socket, answerRequests(allocations, events));
  if (!startServing(options, server, allocations)) return 1;

  // status.used (in batches) and DataplaneSynced on a thread of its own: a slow API server must not
  // delay GC, nor a slow netlink read an allocation. The first dataplane check runs before the
  // first write, so the first apply already carries the condition.
  StopFlag reporterStop;
  std::thread reporter([&] {
    reportUntilStopped(options, clock, *local, api->client, events, sync.blocks(), *hostNs,
                       reporterStop);
  });

  serveUntilSignal(clock, allocations, sync, events, apiSyncOwed);

  stopServing(options, allocations, server);
  stopReporter(reporterStop, reporter);
  sync.stop();
  api->recorder.stop();
  if (auto compacted = allocations.compactIfNeeded(/*force=*/true); !compacted) {
    spdlog::warn("journal compaction at exit: {}", compacted.error().message);
  }
  http.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::span<const char* const> args(argv + 1, static_cast<std::size_t>(argc - 1));
  // The agent pod's init container: the image has no shell to copy the plugins with.
  if (!args.empty() && args[0] == kInstallCniCommand) return installCniMain(args.subspan(1));
  auto options = parseOptions(args);
  if (!options) {
    std::cerr << "vnet-ipam-agent: " << options.error() << "\n" << usageText();
    return 2;
  }
  if (options->help) {
    std::cout << usageText();
    return 0;
  }
  cli::setUpLogging({.name = "vnet-ipam-agent",
                     .format = options->logFormat,
                     .level = options->logLevel,
                     .flushOn = spdlog::level::info});
  if (::pipe2(gSignalPipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    spdlog::error("pipe2: {}", std::strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return run(*options);
}
