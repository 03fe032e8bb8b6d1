// vnet-ipam-controller: carves PodSubnets into per-node IPBlocks and keeps every block programmed
// on its node's NIC. Flags: controller/options.h (and --help).
//
// Threads: one list/watch per collection (PodSubnets, Nodes, IPBlocks) feeding the controller's
// state; --workers reconcile workers (started only while leading); the leader elector; a signal
// thread; the metrics server. SIGTERM/SIGINT: stop writing, finish in-flight work, release the
// lease, exit 0. Losing the lease: stop writing at once and exit 1, so the Deployment restarts the
// process with clean state.
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <malloc.h>
#include <prometheus/registry.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "controller/cloud.h"
#include "controller/collection_watch.h"
#include "controller/controller.h"
#include "controller/metrics.h"
#include "controller/options.h"
#include "controller/orphan_sweeper.h"
#include "controller/subnet_usage.h"
#include "controller/work_queue.h"
#include "lib/azure/config.h"
#include "lib/azure/connect.h"
#include "lib/cli/logging.h"
#include "lib/http/cpprest_transport.h"
#include "lib/kube/client.h"
#include "lib/kube/config.h"
#include "lib/kube/connect.h"
#include "lib/kube/events.h"
#include "lib/kube/leader_election.h"
#include "lib/observe/http_server.h"

namespace {

namespace vc = vnetipam::controller;
namespace base = vnetipam::base;
namespace http = vnetipam::http;
namespace kube = vnetipam::kube;
namespace azure = vnetipam::azure;

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string defaultIdentity() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
  return fmt::format("{}_{}", host, getpid());
}

int fatal(std::string_view message) {
  spdlog::error("{}", message);
  spdlog::default_logger()->flush();
  return 1;
}

constexpr int kNicWorkersPerWorker = 4;

// What the signal thread and the leader callbacks tell the main thread.
struct Lifecycle {
  std::mutex mutex;
  std::condition_variable changed;
  bool stopRequested = false;
  bool leading = false;
  std::atomic<bool> stopping{false};
  http::CancelSignal stop;
};

// The options of the command line, or the exit code when the process ends here: 2 for a bad flag,
// 0 after --help.
std::expected<vc::ControllerOptions, int> parseCommandLine(int argc, char** argv) {
  auto parsed = vc::parseOptions(std::span<const char* const>(
      const_cast<const char* const*>(argv) + 1, static_cast<std::size_t>(argc > 0 ? argc - 1 : 0)));
  if (!parsed) {
    std::fprintf(stderr, "vnet-ipam-controller: %s\n", parsed.error().c_str());
    return std::unexpected(2);
  }
  if (parsed->help) {
    std::fputs(std::string(vc::usageText()).c_str(), stdout);
    return std::unexpected(0);
  }
  return std::move(*parsed);
}

// The process-wide settings: the default lease identity, logging, the malloc arenas.
void setUpProcess(vc::ControllerOptions& options) {
  if (options.leaderElectionIdentity.empty()) options.leaderElectionIdentity = defaultIdentity();
  vnetipam::cli::setUpLogging({.name = "vnet-ipam-controller",
                               .format = options.logFormat,
                               .level = options.logLevel,
                               .flushOn = spdlog::level::warn});
  // One malloc arena: with one per thread (cpprest's pool, watches, workers) freed JSON stays
  // scattered over many arenas and RSS grows far beyond what is live (64 MiB at 5,000 nodes).
  mallopt(M_ARENA_MAX, 1);
}

// Blocks SIGTERM and SIGINT in this thread and every thread it starts (the signal thread takes
// them with sigwait) and ignores SIGPIPE; returns the blocked set.
sigset_t blockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signals;
}

// The API server's config and the transport to it.
struct KubeConnection {
  kube::KubeConfig config;
  std::unique_ptr<http::CpprestTransportImpl> transport;
};

// Reads the config (--kubeconfig, or the pod's service account) and makes the transport; the exit
// code 2 when either fails.
std::expected<KubeConnection, int> connectKubernetes(const vc::ControllerOptions& options) {
  auto kubeConfig =
      options.kubeconfig.empty() ? kube::loadInCluster() : kube::loadKubeconfig(options.kubeconfig);
  if (!kubeConfig) {
    std::fprintf(
        stderr, "vnet-ipam-controller: %s%s\n",
        options.kubeconfig.empty() ? "in-cluster config (no --kubeconfig): " : "--kubeconfig: ",
        kubeConfig.error().message.c_str());
    return std::unexpected(2);
  }
  auto transport = http::CpprestTransportImpl::create(
      kube::transportOptions(*kubeConfig, {.requestTimeout = std::chrono::seconds(5)}));
  if (!transport) {
    std::fprintf(stderr, "vnet-ipam-controller: --kubeconfig: %s\n",
                 transport.error().message.c_str());
    return std::unexpected(2);
  }
  return KubeConnection{.config = std::move(*kubeConfig), .transport = std::move(*transport)};
}

// The API server's clients, all on the connection's transport (which must outlive them).
struct KubeClients {
  KubeClients(const KubeConnection& connection, base::Clock& clock,
              const vc::ControllerOptions& options)
      : client(*connection.transport, clock,
               {.token = connection.config.token,
                .qps = options.kubeApiQps,
                .burst = options.kubeApiBurst,
                .userAgent = "vnet-ipam-controller"}),
        // Events and the lease have their own buckets: neither waits behind reconcile traffic.
        eventClient(*connection.transport, clock,
                    {.token = connection.config.token,
                     .qps = 10,
                     .burst = 50,
                     .userAgent = "vnet-ipam-controller"}),
        leaseClient(*connection.transport, clock,
                    {.token = connection.config.token,
                     .qps = 0,
                     .maxRetries = 1,
                     .userAgent = "vnet-ipam-controller"}) {}

  kube::Client client;
  kube::Client eventClient;
  kube::Client leaseClient;
};

// What --cloud azure adds; all null with --cloud none.
struct CloudParts {
  // One pacer for every ARM request of the process (declared first: the clients use it).
  std::unique_ptr<azure::ArmPacer> armPacer;
  std::unique_ptr<azure::AzureClients> azureClients;
  std::unique_ptr<vc::AzureCloud> cloud;
};

// With --cloud azure: reads --azure-config and --azure-ca-file, makes the ARM pacer and connects
// the Azure clients; the exit code 2 when any of it fails.
std::expected<CloudParts, int> connectCloud(const vc::ControllerOptions& options,
                                            base::Clock& clock, vc::ControllerMetrics& metrics) {
  CloudParts parts;
  if (options.cloud != vc::CloudKind::kAzure) return parts;
  auto azureConfig = azure::loadAzureConfig(options.azureConfig, azure::processEnvironment());
  if (!azureConfig) {
    std::fprintf(stderr, "vnet-ipam-controller: --azure-config: %s\n",
                 azureConfig.error().message.c_str());
    return std::unexpected(2);
  }
  std::string caPem;
  if (!options.azureCaFile.empty()) {
    auto text = readFile(options.azureCaFile);
    if (!text) {
      std::fprintf(stderr, "vnet-ipam-controller: --azure-ca-file: cannot read \"%s\"\n",
                   options.azureCaFile.c_str());
      return std::unexpected(2);
    }
    caPem = std::move(*text);
  }
  // The subscription's ARM limits are shared with every other tool that uses it: the pacer
  // keeps this process to its configured share (docs/design.md, "ARM calls") rather than
  // spending until ARM answers 429, which would throttle the others too.
  parts.armPacer = std::make_unique<azure::ArmPacer>(
      clock,
      azure::ArmPacerOptions{.readsPer5Min = options.azureReadBudgetPer5Min,
                             .writesPer5Min = options.azureWriteBudgetPer5Min,
                             .readReserve = options.azureReadReserve,
                             .writeReserve = options.azureWriteReserve,
                             .timeScale = options.azureBudgetTimeScale},
      &metrics);
  auto connected = azure::connectAzure(
      *azureConfig, clock,
      azure::ArmClientOptions{
          .readQps = 0, .writeQps = 0, .observer = &metrics, .pacer = parts.armPacer.get()},
      azure::CredentialOptions{.observer = &metrics}, std::move(caPem));
  if (!connected) {
    std::fprintf(stderr, "vnet-ipam-controller: --azure-config: %s\n",
                 connected.error().message.c_str());
    return std::unexpected(2);
  }
  parts.azureClients = std::move(*connected);
  parts.cloud = std::make_unique<vc::AzureCloud>(*parts.azureClients->network);
  return parts;
}

// Logs a watch's errors as warnings that name its collection.
std::function<void(const kube::Error&)> logWatchError(std::string what) {
  return [what](const kube::Error& error) { spdlog::warn("watch {}: {}", what, error.message); };
}

// The controller and what feeds it, members in construction order (destroyed in reverse): the
// queues, the event recorder, the controller, the subnet usage poller, the orphan sweeper and the
// watches of the three collections. `kubeClients`, `clock`, `cloud` and `metrics` must outlive it.
struct ControllerParts {
  ControllerParts(const vc::ControllerOptions& options, KubeClients& kubeClients,
                  base::Clock& clock, vc::AzureCloud* cloud, vc::ControllerMetrics& metrics)
      : recorder(kubeClients.eventClient, clock,
                 {.reportingController = "vnetipam.io/controller",
                  .reportingInstance = options.leaderElectionIdentity,
                  .log = [](std::string_view line) { spdlog::warn("{}", line); }}),
        events(recorder),
        controller(kubeClients.client, cloud, queue, &events, &metrics,
                   vc::ControllerConfig{
                       .nicOrphanGrace = std::chrono::seconds(options.nicOrphanGraceSeconds),
                       .foreignHold = std::chrono::seconds(options.foreignHoldSeconds)},
                   clock, &nicQueue),
        usagePoller(makeUsagePoller(options, cloud)),
        orphanSweeper(makeOrphanSweeper(options, cloud, clock, metrics)),
        subnetWatch(kubeClients.client, std::string(vc::kPodSubnetsPath),
                    handlersFor(vc::Controller::Collection::kSubnets, "podsubnets")),
        blockWatch(kubeClients.client, std::string(vc::kIPBlocksPath),
                   handlersFor(vc::Controller::Collection::kBlocks, "ipblocks")),
        nodeWatch(kubeClients.client, std::string(vc::kNodesPath),
                  handlersFor(vc::Controller::Collection::kNodes, "nodes", true)) {}

  // The usage poller (null without a cloud or with --subnet-usage-period-seconds 0); the controller
  // is given the store it fills.
  std::unique_ptr<vc::SubnetUsagePoller> makeUsagePoller(const vc::ControllerOptions& options,
                                                         vc::AzureCloud* cloud) {
    if (!(cloud && options.subnetUsagePeriodSeconds > 0)) return nullptr;
    controller.setSubnetUsageStore(&subnetUsage);
    return std::make_unique<vc::SubnetUsagePoller>(
        *cloud, subnetUsage,
        vc::SubnetUsagePoller::Hooks{
            .subnetIds = [this] { return controller.azureSubnetIds(); },
            .changed = [this](const std::string& id) { controller.subnetUsageChanged(id); }},
        std::chrono::seconds(options.subnetUsagePeriodSeconds));
  }

  // The orphan sweeper (null without a cloud or with --orphan-sweep-period-seconds 0); the
  // controller is given the trigger that wakes it.
  std::unique_ptr<vc::OrphanSweeper> makeOrphanSweeper(const vc::ControllerOptions& options,
                                                       vc::AzureCloud* cloud, base::Clock& clock,
                                                       vc::ControllerMetrics& metrics) {
    if (!(cloud && options.orphanSweepPeriodSeconds > 0)) return nullptr;
    auto created = std::make_unique<vc::OrphanSweeper>(
        *cloud,
        vc::OrphanSweeper::Hooks{.view =
                                     [this](std::span<const vnetipam::ipam::Prefix> prefixes) {
                                       return controller.orphanSweepView(prefixes);
                                     },
                                 .canWrite = [this] { return controller.canWrite(); }},
        &events, &metrics,
        vc::OrphanSweeper::Options{.period = std::chrono::seconds(options.orphanSweepPeriodSeconds),
                                   .grace = std::chrono::seconds(options.nicOrphanGraceSeconds)},
        clock);
    controller.setOrphanSweepTrigger([sweeper = created.get()] { sweeper->wake(); });
    return created;
  }

  // A collection's list and events go to the controller. `trimAfterList`: once a list is folded
  // in, its freed pages go back to the system (the Nodes', the biggest).
  vc::CollectionHandlers handlersFor(vc::Controller::Collection collection, std::string what,
                                     bool trimAfterList = false) {
    return {
        .onListBegin = [this, collection] { controller.beginList(collection); },
        .onListPage = [this, collection](
                          nlohmann::json& items) { controller.applyListPage(collection, items); },
        .onListEnd =
            [this, collection, trimAfterList] {
              controller.endList(collection);
              if (trimAfterList) malloc_trim(0);
            },
        .onEvent = [this, collection](
                       kube::WatchEventType type,
                       nlohmann::json& object) { controller.applyEvent(collection, type, object); },
        .onError = logWatchError(std::move(what))};
  }

  vc::WorkQueue queue;
  vc::WorkQueue nicQueue;
  kube::EventRecorder recorder;
  vc::RecorderEventSink events;
  vc::Controller controller;

  // The addresses other resources hold in the PodSubnets' Azure subnets (subnet_usage.h): the
  // VNETs' usage lists, read on a slow period on a thread of their own, apart from the queues.
  vc::SubnetUsageStore subnetUsage;
  std::unique_ptr<vc::SubnetUsagePoller> usagePoller;

  // Prefixes left on NICs that belong to no Node (orphan_sweep.h): a sweep of the PodSubnets'
  // Azure subnets every period on a thread of its own, started once this replica leads.
  std::unique_ptr<vc::OrphanSweeper> orphanSweeper;

  vc::CollectionWatch subnetWatch;
  vc::CollectionWatch blockWatch;
  vc::CollectionWatch nodeWatch;
};

// Registers the readiness check (every collection synced) and starts the metrics server; the
// error: the message to exit with.
std::expected<void, std::string> startServer(vnetipam::observe::HttpServer& server,
                                             const ControllerParts& parts) {
  server.addCheck("caches", vnetipam::observe::Probe::kReadiness,
                  [&parts]() -> std::expected<void, std::string> {
                    if (!parts.subnetWatch.hasSynced())
                      return std::unexpected("podsubnets not synced");
                    if (!parts.blockWatch.hasSynced())
                      return std::unexpected("ipblocks not synced");
                    if (!parts.nodeWatch.hasSynced()) return std::unexpected("nodes not synced");
                    return {};
                  });
  if (auto started = server.start(); !started) {
    return std::unexpected(fmt::format("--metrics-address: {}", started.error()));
  }
  return {};
}

// The signal thread: waits for one of `signals`, then asks the main thread to stop. `signals` and
// `life` must outlive the process's work (the thread is detached).
void startSignalThread(const sigset_t& signals, Lifecycle& life) {
  std::thread signalThread([&signals, &life] {
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("received signal {}: shutting down", received);
    life.stopping.store(true);
    std::lock_guard lock(life.mutex);
    life.stopRequested = true;
    life.changed.notify_all();
  });
  signalThread.detach();  // blocked in sigwait until a signal; the process exits around it
}

// Logs the start, starts the watches and waits until the three collections are listed or a stop
// is asked for; then the usage poller and the event recorder start.
void syncCaches(const vc::ControllerOptions& options, ControllerParts& parts, Lifecycle& life) {
  spdlog::info("vnet-ipam-controller {} starting: cloud={} workers={} identity={}", "v1alpha1",
               options.cloud == vc::CloudKind::kAzure ? "azure" : "none", options.workers,
               options.leaderElectionIdentity);
  parts.subnetWatch.start();
  parts.blockWatch.start();
  parts.nodeWatch.start();
  while (!(parts.subnetWatch.hasSynced() && parts.blockWatch.hasSynced() &&
           parts.nodeWatch.hasSynced())) {
    std::unique_lock lock(life.mutex);
    if (life.changed.wait_for(lock, std::chrono::milliseconds(50),
                              [&] { return life.stopRequested; })) {
      break;
    }
  }
  if (!life.stopRequested) spdlog::info("caches synced");
  if (parts.usagePoller) parts.usagePoller->start();  // the PodSubnets are known now
  parts.recorder.start();
}

// The leader elector and the thread it runs on (--leader-elect); empty otherwise.
struct Leadership {
  std::unique_ptr<kube::LeaderElector> elector;
  std::thread thread;
};

// The lease and the elector's callbacks: leading opens the controller's writes and wakes the main
// thread; losing the lease, but for a shutdown, ends the process with 1. The references must
// outlive the elector.
kube::LeaderElectionConfig leaderElectionConfig(const vc::ControllerOptions& options,
                                                vc::ControllerMetrics& metrics,
                                                vc::Controller& controller, Lifecycle& life) {
  return {.leaseNamespace = options.leaderElectionNamespace,
          .leaseName = options.leaderElectionName,
          .identity = options.leaderElectionIdentity,
          .onStartedLeading =
              [&options, &metrics, &controller, &life] {
                spdlog::info("became the leader ({})", options.leaderElectionIdentity);
                metrics.setLeader(true);
                controller.setWritable(true);
                std::lock_guard lock(life.mutex);
                life.leading = true;
                life.changed.notify_all();
              },
          .onStoppedLeading =
              [&metrics, &controller, &life] {
                controller.setWritable(false);
                metrics.setLeader(false);
                if (life.stopping.load()) return;
                spdlog::error("lost the leader lease: exiting so a fresh process takes over");
                spdlog::default_logger()->flush();
                std::_Exit(1);
              },
          .onNewLeader = [](const std::string& who) { spdlog::info("leader is {}", who); },
          .log = [](std::string_view line) { spdlog::warn("leader election: {}", line); }};
}

// Leadership: with --leader-elect the elector runs on a thread of its own until `life.stop`;
// without, this replica leads at once. The error: the message to exit with (bad lease settings).
std::expected<Leadership, std::string> startLeadership(
    const vc::ControllerOptions& options, kube::Client& leaseClient, base::Clock& clock,
    vc::ControllerMetrics& metrics, vc::Controller& controller, Lifecycle& life) {
  Leadership leadership;
  if (options.leaderElect) {
    kube::LeaderElectionConfig config = leaderElectionConfig(options, metrics, controller, life);
    if (auto invalid = kube::LeaderElector::validate(config)) {
      return std::unexpected(fmt::format("--leader-election-*: {}", *invalid));
    }
    leadership.elector =
        std::make_unique<kube::LeaderElector>(leaseClient, clock, std::move(config));
    leadership.thread =
        std::thread([elector = leadership.elector.get(), &life] { elector->run(life.stop); });
  } else {
    controller.setWritable(true);
    metrics.setLeader(true);
    std::lock_guard lock(life.mutex);
    life.leading = true;
  }
  return leadership;
}

// Waits until this replica leads or a stop is asked for.
void waitToLead(Lifecycle& life) {
  std::unique_lock lock(life.mutex);
  life.changed.wait(lock, [&] { return life.stopRequested || life.leading; });
}

// Once leading: every object is enqueued, the workers of both queues and the orphan sweeper start.
void startWorkers(const vc::ControllerOptions& options, ControllerParts& parts,
                  std::vector<std::thread>& workers) {
  parts.controller.enqueueAll();
  for (int i = 0; i < options.workers; ++i)
    workers.emplace_back([&parts] { parts.controller.runWorker(parts.queue); });
  // NIC reconciles mostly wait on Azure (a NIC PUT is a long-running operation polled for
  // seconds), so they get kNicWorkersPerWorker threads per worker.
  for (int i = 0; i < options.workers * kNicWorkersPerWorker; ++i)
    workers.emplace_back([&parts] { parts.controller.runWorker(parts.nicQueue); });
  if (parts.orphanSweeper) parts.orphanSweeper->start();
}

// Until a stop is asked for: freed memory goes back to the system every 10 s, and every object is
// enqueued again every 5 minutes.
void resyncUntilStopped(vc::Controller& controller, Lifecycle& life) {
  // Periodic drift check: every NIC is read again, every node decided again.
  std::unique_lock lock(life.mutex);
  auto nextResync = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (
      !life.changed.wait_for(lock, std::chrono::seconds(10), [&] { return life.stopRequested; })) {
    malloc_trim(0);  // hand freed pages of parsed JSON back to the system
    if (std::chrono::steady_clock::now() >= nextResync) {
      controller.enqueueAll();
      nextResync = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    }
  }
}

// The orderly shutdown, in the order its threads depend on each other.
void shutDown(Lifecycle& life, ControllerParts& parts, std::vector<std::thread>& workers,
              Leadership& leadership, vnetipam::observe::HttpServer& server) {
  // Shutdown: no new writes, in-flight reconciles finish, then the lease goes.
  life.stopping.store(true);
  parts.controller.setWritable(false);
  if (parts.usagePoller) parts.usagePoller->stop();
  if (parts.orphanSweeper) parts.orphanSweeper->stop();
  parts.queue.shutdown();
  parts.nicQueue.shutdown();
  for (auto& worker : workers)
    worker.join();
  life.stop.cancel();
  if (leadership.thread.joinable()) leadership.thread.join();
  parts.subnetWatch.stop();
  parts.blockWatch.stop();
  parts.nodeWatch.stop();
  parts.recorder.stop();
  server.stop();
  spdlog::info("stopped");
  spdlog::default_logger()->flush();
}

}  // namespace

// The steps of start-up and shutdown; the objects live here, each declared before what uses it.
int main(int argc, char** argv) {
  auto parsed = parseCommandLine(argc, argv);
  if (!parsed) return parsed.error();
  vc::ControllerOptions options = std::move(*parsed);
  setUpProcess(options);

  // Signals go to one thread, which asks the main thread to stop.
  const sigset_t signals = blockStopSignals();

  // Kubernetes.
  auto connection = connectKubernetes(options);
  if (!connection) return connection.error();
  base::SystemClock clock;
  KubeClients kubeClients(*connection, clock, options);

  auto registry = std::make_shared<prometheus::Registry>();
  vc::ControllerMetrics metrics(registry);

  // Azure.
  auto cloudParts = connectCloud(options, clock, metrics);
  if (!cloudParts) return cloudParts.error();

  ControllerParts parts(options, kubeClients, clock, cloudParts->cloud.get(), metrics);

  vnetipam::observe::HttpServer server(options.metricsAddress, registry);
  if (auto started = startServer(server, parts); !started) return fatal(started.error());
  metrics.setLeader(false);

  Lifecycle life;
  startSignalThread(signals, life);
  syncCaches(options, parts, life);

  // Leadership.
  auto leadership =
      startLeadership(options, kubeClients.leaseClient, clock, metrics, parts.controller, life);
  if (!leadership) return fatal(leadership.error());

  std::vector<std::thread> workers;
  waitToLead(life);
  if (!life.stopRequested) {
    startWorkers(options, parts, workers);
    resyncUntilStopped(parts.controller, life);
  }

  shutDown(life, parts, workers, *leadership, server);
  return 0;
}
