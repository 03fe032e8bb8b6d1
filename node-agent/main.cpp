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
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>

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

int run(const AgentOptions& options) {
  base::Clock& clock = base::systemClock();
  const std::filesystem::path stateDir(options.stateDir);
  std::error_code ec;
  std::filesystem::create_directories(stateDir, ec);
  if (ec) {
    spdlog::error("--state-dir {}: {}", options.stateDir, ec.message());
    return 1;
  }
  auto opened = ipam::Journal::open(stateDir / "allocations.journal");
  if (!opened) {
    spdlog::error("opening the journal in --state-dir {}: {}", options.stateDir,
                  opened.error().message);
    return 1;
  }
  auto& [journal, recovered] = *opened;
  if (recovered.dropped) {
    spdlog::warn(
        "journal {}: cut a torn tail of {} bytes at offset {} ({}); it held no "
        "acknowledged records",
        journal->path().string(), recovered.dropped->bytes, recovered.dropped->offset,
        recovered.dropped->reason);
  }

  // A config left by a killed agent says the node can serve; until this run can, it cannot.
  const std::filesystem::path confFile =
      std::filesystem::path(options.cniConfDir) / options.cniConfName;
  if (std::filesystem::remove(confFile, ec)) {
    spdlog::info("removed {} left by an earlier run until this one can serve", confFile.string());
  }

  auto registry = std::make_shared<prometheus::Registry>();
  AgentMetrics metrics(registry);
  auto store = AllocationStore::recover(
      *journal, recovered,
      StoreOptions{.nodeName = options.nodeName,
                   .cooldown = std::chrono::seconds(options.releaseCooldownSeconds),
                   .gcGrace = std::chrono::seconds(options.gcGraceSeconds)},
      clock, &metrics);
  if (!store) {
    spdlog::error("recovering from the journal in --state-dir {}: {}", options.stateDir,
                  store.error().message);
    return 1;
  }
  AllocationStore& allocations = **store;

  auto persisted = loadServedBlocks(stateDir, options.nodeName);
  if (persisted) {
    spdlog::info("{} blocks persisted as served by the last run", persisted->size());
  } else {
    // Missing (a first start) or damaged: nothing is served before the API server answers.
    spdlog::info("no persisted served blocks ({}): serving waits for the API server",
                 persisted.error());
  }

  observe::HttpServer http(options.metricsAddress, registry);
  http.addCheck("journal", observe::Probe::kLiveness, [&]() -> std::expected<void, std::string> {
    if (auto ok = journal->sync(0); !ok) return std::unexpected(ok.error().message);
    return {};
  });
  http.addCheck("serving", observe::Probe::kReadiness, [&]() -> std::expected<void, std::string> {
    if (!allocations.ready()) {
      return std::unexpected(std::string("not serving allocations yet"));
    }
    return {};
  });
  if (auto started = http.start(); !started) {
    spdlog::error("--metrics-address: {}", started.error());
    return 1;
  }

  auto config = loadKubeConfig(options);
  if (!config) {
    spdlog::error("{}{}", options.kubeconfig.empty() ? "in-cluster config: " : "--kubeconfig: ",
                  config.error().message);
    return 1;
  }
  auto transport = http::CpprestTransportImpl::create(kube::transportOptions(*config));
  if (!transport) {
    spdlog::error("kube client: {}", transport.error().message);
    return 1;
  }
  // Retries of one request stay short too: a list that fails while the API server is away must
  // not sleep for long after it is back.
  kube::Client client(**transport, clock,
                      {.token = config->token,
                       .maxBackoff = std::chrono::milliseconds(1000),
                       .userAgent = "vnet-ipam-agent/" + options.nodeName});

  // Events are best-effort and written by the recorder's own thread: nothing here waits on them.
  kube::EventRecorder recorder(
      client, clock,
      {.reportingController = "vnetipam.io/agent",
       .reportingInstance = options.nodeName,
       .log = [](std::string_view line) { spdlog::warn("event: {}", line); }});
  recorder.start();
  AgentEvents events(recorder, options.nodeName);
  // The namespace the agent runs in is the host's (hostNetwork): the one its routes are read from.
  auto hostNs = net::Netns::current();
  if (!hostNs) {
    spdlog::error("opening the host network namespace: {}", hostNs.error().message);
    return 1;
  }

  const std::string nodeSelector = fmt::format("spec.nodeName={}", options.nodeName);
  kube::Informer* blocksForKeeper = nullptr;  // set below; the keeper starts after that
  BlockKeeper keeper(
      allocations, client, {.stateDir = stateDir, .nodeName = options.nodeName},
      [&] { return blocksForKeeper->list(); },
      persisted ? std::optional<std::vector<ServedBlock>>(*persisted) : std::nullopt);
  // A release that empties a block nothing new comes from may let the keeper give it up.
  allocations.setOnBlockEmptied([&](const std::string&) { keeper.kick(); });
  auto onBlock = [&](const nlohmann::json& object) {
    auto block = apiBlockFromJson(object, options.nodeName);
    if (!block) {
      spdlog::warn("not serving an IPBlock: {}", block.error());
      // A block the agent cannot read is served no longer (kept while it holds allocations).
      const std::string name = object.value("/metadata/name"_json_pointer, std::string());
      if (!name.empty()) allocations.removeBlock(name);
    } else {
      allocations.upsertBlock(*block);
      events.blockSeen(block->name, block->invalid);
    }
    keeper.kick();  // the served set may have changed, or the block started deleting
  };
  kube::Informer blocks(
      client, std::string(kIPBlocksPath),
      kube::InformerOptions{
          .list = {.fieldSelector = nodeSelector},
          .reconnect = kReconnect,
          .onError = [](const kube::Error& e) { spdlog::warn("IPBlock watch: {}", e.message); }},
      kube::InformerHandlers{
          .onAdd = onBlock,
          .onUpdate = [&](const nlohmann::json&, const nlohmann::json& object) { onBlock(object); },
          .onDelete =
              [&](const nlohmann::json& object) {
                const std::string name = object.value("/metadata/name"_json_pointer, std::string());
                allocations.removeBlock(name);
                events.blockGone(name);
                keeper.kick();
              }});
  blocksForKeeper = &blocks;
  // On every way out, the keeper's thread (which reads the informer) stops before the informers
  // are destroyed, and releases no longer wake it.
  struct KeeperStop {
    BlockKeeper& keeper;
    AllocationStore& store;
    ~KeeperStop() {
      keeper.stop();
      store.setOnBlockEmptied({});
    }
  } keeperStop{keeper, allocations};
  kube::Informer pods(
      client, std::string(kPodsPath),
      {.list = {.fieldSelector = nodeSelector},
       .reconnect = kReconnect,
       .onError = [](const kube::Error& e) { spdlog::warn("Pod watch: {}", e.message); }},
      {});
  blocks.start();
  pods.start();

  spdlog::info("vnet-ipam-agent on node {}: waiting for the IPBlock and Pod caches to sync",
               options.nodeName);
  const auto waitStart = clock.now();
  StartMode mode = StartMode::kWait;
  while ((mode = startMode(blocks.hasSynced() && pods.hasSynced(), clock.now() - waitStart,
                           std::chrono::seconds(options.apiWaitSeconds), persisted.has_value())) ==
         StartMode::kWait) {
    if (waitForSignal(std::chrono::milliseconds(50))) {
      spdlog::info("stopping before the caches synced");
      return 0;
    }
  }
  // Until the IPBlock cache syncs, the persisted blocks are served and apiSynced() is owed.
  bool apiSyncOwed = mode == StartMode::kFromPersisted;
  if (apiSyncOwed) {
    spdlog::warn(
        "the API server did not answer within {} s: serving the {} persisted blocks "
        "and the journal's allocations until it does",
        options.apiWaitSeconds, persisted->size());
    allocations.servePersisted(*persisted);
  } else {
    for (const auto& name : allocations.apiSynced()) {
      spdlog::warn("block {} is orphaned: its allocations stay held until released or collected",
                   name);
    }
  }
  keeper.start();

  SocketServer server(options.socket, [&](const Request& request) {
    Response response = allocations.handle(request);
    // Only a failed allocate of a serving agent is news; recording only queues.
    if (request.op == Op::kAllocate && !response.ok && allocations.ready()) {
      events.allocateAnswered(request, response, allocations.servedBlocks().empty());
    }
    return response;
  });
  if (auto started = server.start(); !started) {
    spdlog::error("--socket: {}", started.error().message);
    return 1;
  }
  allocations.setReady(true);
  const std::filesystem::path confDir(options.cniConfDir);
  if (auto written = base::writeFileAtomically(
          confDir, options.cniConfName,
          cniConfigList(options.hostVethPrefix, options.mtu, options.socket, options.chainPortmap));
      !written) {
    spdlog::error("--cni-conf-dir: {}", written.error().message);
    return 1;
  }
  spdlog::info("serving on {} with {} free addresses; CNI config {} written", options.socket,
               allocations.freeIPs(), (confDir / options.cniConfName).string());

  // status.used in batches, on a thread of its own: a slow API server must not delay GC.
  std::mutex stopMutex;
  std::condition_variable stopChanged;
  bool stopping = false;  // guarded by stopMutex
  // status.used and DataplaneSynced on a thread of its own: a slow API server must not delay GC,
  // nor a slow netlink read an allocation. The first dataplane check runs before the first write,
  // so the first apply already carries the condition.
  std::thread reporter([&] {
    UsageReporter usage(client, &metrics, [&](const std::string& name) {
      return blocks.get(name).value_or(nlohmann::json());
    });
    DriftTracker tracker(std::chrono::seconds(options.dataplaneGraceSeconds));
    const auto interval = std::chrono::milliseconds(options.usageReportIntervalMs);
    const auto checkInterval = std::chrono::seconds(options.dataplaneCheckIntervalSeconds);
    auto nextCheck = clock.now();
    // Blocks that have had a condition decided: a block the API confirms later (after a start
    // from served-blocks, or a new one) is checked at once rather than written without it.
    std::set<std::string, std::less<>> decided;
    std::unique_lock lock(stopMutex);
    while (!stopping) {
      lock.unlock();
      std::map<std::string, DataplaneCondition> checked;
      const bool undecided = std::ranges::any_of(allocations.usage(), [&](const BlockUsage& b) {
        return b.inApi && !decided.contains(b.name);
      });
      if (undecided || clock.now() >= nextCheck) {
        if (auto c = checkDataplane(allocations, *hostNs, options, tracker, metrics, events)) {
          checked = std::move(*c);
          for (const auto& entry : checked)
            decided.insert(entry.first);
        }
        nextCheck = clock.now() + checkInterval;
      }
      usage.report(allocations.usage(), checked);
      lock.lock();
      stopChanged.wait_for(lock, std::min<std::chrono::nanoseconds>(interval, checkInterval),
                           [&] { return stopping; });
    }
    lock.unlock();
    usage.report(allocations.usage());  // the last word before exit
  });

  ReleaseRequestHandler releaseRequests;
  // GC every second (the grace period is counted in seconds), compaction when due; while the
  // first API sync is owed, a check for it every 50 ms.
  auto nextGc = clock.now();
  // A compaction that fails (no descriptor, no space) is retried after a delay that doubles from
  // 1 s to 60 s and logged once per episode: retrying every second would rebuild the snapshot and
  // log a line each time. Nothing is lost meanwhile: the journal only grows until it works again.
  auto nextCompaction = nextGc;
  std::chrono::seconds compactionBackoff{0};
  while (!waitForSignal(apiSyncOwed ? std::chrono::milliseconds(50) : std::chrono::seconds(1))) {
    if (apiSyncOwed && blocks.hasSynced()) {
      apiSyncOwed = false;
      spdlog::info("the API server answered: IPBlocks resynchronised");
      for (const auto& name : allocations.apiSynced()) {
        spdlog::warn(
            "block {} is orphaned: its allocations stay held until released or "
            "collected",
            name);
      }
      keeper.kick();
    }
    if (clock.now() < nextGc) continue;
    nextGc = clock.now() + std::chrono::seconds(1);
    // The live pod's UID as well as its presence: a pod recreated under the same name (a
    // StatefulSet's) must not shield the allocation of the one it replaced.
    const auto podLookup =
        pods.hasSynced() ? std::optional<AllocationStore::PodLookup>(
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
          blocks.list(),
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
    const auto now = clock.now();
    if (now < nextCompaction) continue;
    if (auto compacted = allocations.compactIfNeeded(); !compacted) {
      if (compactionBackoff.count() == 0) {
        spdlog::error("journal compaction: {} (retrying, at most once a minute)",
                      compacted.error().message);
      }
      compactionBackoff = std::min(std::max(compactionBackoff * 2, std::chrono::seconds(1)),
                                   std::chrono::seconds(60));
      nextCompaction = now + compactionBackoff;
    } else if (*compacted && compactionBackoff.count() != 0) {
      spdlog::info("journal compaction works again");
      compactionBackoff = std::chrono::seconds(0);
    }
  }

  spdlog::info("stopping: removing the CNI config, then the socket");
  std::filesystem::remove(confDir / options.cniConfName, ec);
  allocations.setReady(false);
  server.stop();
  {
    std::lock_guard lock(stopMutex);
    stopping = true;
  }
  stopChanged.notify_all();
  reporter.join();
  keeper.stop();
  blocks.stop();
  pods.stop();
  recorder.stop();
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
