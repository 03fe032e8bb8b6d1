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
#include <fstream>
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

}  // namespace

int main(int argc, char** argv) {
  auto parsed = vc::parseOptions(std::span<const char* const>(
      const_cast<const char* const*>(argv) + 1, static_cast<std::size_t>(argc > 0 ? argc - 1 : 0)));
  if (!parsed) {
    std::fprintf(stderr, "vnet-ipam-controller: %s\n", parsed.error().c_str());
    return 2;
  }
  vc::ControllerOptions options = std::move(*parsed);
  if (options.help) {
    std::fputs(std::string(vc::usageText()).c_str(), stdout);
    return 0;
  }
  if (options.leaderElectionIdentity.empty()) options.leaderElectionIdentity = defaultIdentity();
  vnetipam::cli::setUpLogging({.name = "vnet-ipam-controller",
                               .format = options.logFormat,
                               .level = options.logLevel,
                               .flushOn = spdlog::level::warn});
  // One malloc arena: with one per thread (cpprest's pool, watches, workers) freed JSON stays
  // scattered over many arenas and RSS grows far beyond what is live (64 MiB at 5,000 nodes).
  mallopt(M_ARENA_MAX, 1);

  // Signals go to one thread, which asks the main thread to stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Kubernetes.
  auto kubeConfig =
      options.kubeconfig.empty() ? kube::loadInCluster() : kube::loadKubeconfig(options.kubeconfig);
  if (!kubeConfig) {
    std::fprintf(
        stderr, "vnet-ipam-controller: %s%s\n",
        options.kubeconfig.empty() ? "in-cluster config (no --kubeconfig): " : "--kubeconfig: ",
        kubeConfig.error().message.c_str());
    return 2;
  }
  auto transport = http::CpprestTransportImpl::create(
      kube::transportOptions(*kubeConfig, {.requestTimeout = std::chrono::seconds(5)}));
  if (!transport) {
    std::fprintf(stderr, "vnet-ipam-controller: --kubeconfig: %s\n",
                 transport.error().message.c_str());
    return 2;
  }
  base::SystemClock clock;
  kube::Client client(**transport, clock,
                      {.token = kubeConfig->token,
                       .qps = options.kubeApiQps,
                       .burst = options.kubeApiBurst,
                       .userAgent = "vnet-ipam-controller"});
  // Events and the lease have their own buckets: neither waits behind reconcile traffic.
  kube::Client eventClient(
      **transport, clock,
      {.token = kubeConfig->token, .qps = 10, .burst = 50, .userAgent = "vnet-ipam-controller"});
  kube::Client leaseClient(
      **transport, clock,
      {.token = kubeConfig->token, .qps = 0, .maxRetries = 1, .userAgent = "vnet-ipam-controller"});

  auto registry = std::make_shared<prometheus::Registry>();
  vc::ControllerMetrics metrics(registry);

  // Azure.
  // One pacer for every ARM request of the process (declared first: the clients use it).
  std::unique_ptr<azure::ArmPacer> armPacer;
  std::unique_ptr<azure::AzureClients> azureClients;
  std::unique_ptr<vc::AzureCloud> cloud;
  if (options.cloud == vc::CloudKind::kAzure) {
    auto azureConfig = azure::loadAzureConfig(options.azureConfig, azure::processEnvironment());
    if (!azureConfig) {
      std::fprintf(stderr, "vnet-ipam-controller: --azure-config: %s\n",
                   azureConfig.error().message.c_str());
      return 2;
    }
    std::string caPem;
    if (!options.azureCaFile.empty()) {
      auto text = readFile(options.azureCaFile);
      if (!text) {
        std::fprintf(stderr, "vnet-ipam-controller: --azure-ca-file: cannot read \"%s\"\n",
                     options.azureCaFile.c_str());
        return 2;
      }
      caPem = std::move(*text);
    }
    // The subscription's ARM limits are shared with every other tool that uses it: the pacer
    // keeps this process to its configured share (docs/design.md, "ARM calls") rather than
    // spending until ARM answers 429, which would throttle the others too.
    armPacer = std::make_unique<azure::ArmPacer>(
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
            .readQps = 0, .writeQps = 0, .observer = &metrics, .pacer = armPacer.get()},
        azure::CredentialOptions{.observer = &metrics}, std::move(caPem));
    if (!connected) {
      std::fprintf(stderr, "vnet-ipam-controller: --azure-config: %s\n",
                   connected.error().message.c_str());
      return 2;
    }
    azureClients = std::move(*connected);
    cloud = std::make_unique<vc::AzureCloud>(*azureClients->network);
  }

  vc::WorkQueue queue;
  vc::WorkQueue nicQueue;
  kube::EventRecorder recorder(eventClient, clock,
                               {.reportingController = "vnetipam.io/controller",
                                .reportingInstance = options.leaderElectionIdentity,
                                .log = [](std::string_view line) { spdlog::warn("{}", line); }});
  vc::RecorderEventSink events(recorder);
  vc::Controller controller(
      client, cloud.get(), queue, &events, &metrics,
      vc::ControllerConfig{.nicOrphanGrace = std::chrono::seconds(options.nicOrphanGraceSeconds),
                           .foreignHold = std::chrono::seconds(options.foreignHoldSeconds)},
      clock, &nicQueue);

  // The addresses other resources hold in the PodSubnets' Azure subnets (subnet_usage.h): the
  // VNETs' usage lists, read on a slow period on a thread of their own, apart from the queues.
  vc::SubnetUsageStore subnetUsage;
  std::unique_ptr<vc::SubnetUsagePoller> usagePoller;
  if (cloud && options.subnetUsagePeriodSeconds > 0) {
    controller.setSubnetUsageStore(&subnetUsage);
    usagePoller = std::make_unique<vc::SubnetUsagePoller>(
        *cloud, subnetUsage,
        vc::SubnetUsagePoller::Hooks{
            .subnetIds = [&] { return controller.azureSubnetIds(); },
            .changed = [&](const std::string& id) { controller.subnetUsageChanged(id); }},
        std::chrono::seconds(options.subnetUsagePeriodSeconds));
  }

  // Prefixes left on NICs that belong to no Node (orphan_sweep.h): a sweep of the PodSubnets'
  // Azure subnets every period on a thread of its own, started once this replica leads.
  std::unique_ptr<vc::OrphanSweeper> orphanSweeper;
  if (cloud && options.orphanSweepPeriodSeconds > 0) {
    orphanSweeper = std::make_unique<vc::OrphanSweeper>(
        *cloud,
        vc::OrphanSweeper::Hooks{.view =
                                     [&](std::span<const vnetipam::ipam::Prefix> prefixes) {
                                       return controller.orphanSweepView(prefixes);
                                     },
                                 .canWrite = [&] { return controller.canWrite(); }},
        &events, &metrics,
        vc::OrphanSweeper::Options{.period = std::chrono::seconds(options.orphanSweepPeriodSeconds),
                                   .grace = std::chrono::seconds(options.nicOrphanGraceSeconds)},
        clock);
    controller.setOrphanSweepTrigger([sweeper = orphanSweeper.get()] { sweeper->wake(); });
  }

  auto logWatchError = [](std::string what) {
    return [what](const kube::Error& error) { spdlog::warn("watch {}: {}", what, error.message); };
  };
  vc::CollectionWatch subnetWatch(
      client, std::string(vc::kPodSubnetsPath),
      {.onListBegin = [&] { controller.beginList(vc::Controller::Collection::kSubnets); },
       .onListPage =
           [&](nlohmann::json& items) {
             controller.applyListPage(vc::Controller::Collection::kSubnets, items);
           },
       .onListEnd = [&] { controller.endList(vc::Controller::Collection::kSubnets); },
       .onEvent = [&](kube::WatchEventType type,
                      nlohmann::json& object) { controller.applySubnetEvent(type, object); },
       .onError = logWatchError("podsubnets")});
  vc::CollectionWatch blockWatch(
      client, std::string(vc::kIPBlocksPath),
      {.onListBegin = [&] { controller.beginList(vc::Controller::Collection::kBlocks); },
       .onListPage =
           [&](nlohmann::json& items) {
             controller.applyListPage(vc::Controller::Collection::kBlocks, items);
           },
       .onListEnd = [&] { controller.endList(vc::Controller::Collection::kBlocks); },
       .onEvent = [&](kube::WatchEventType type,
                      nlohmann::json& object) { controller.applyBlockEvent(type, object); },
       .onError = logWatchError("ipblocks")});
  vc::CollectionWatch nodeWatch(
      client, std::string(vc::kNodesPath),
      {.onListBegin = [&] { controller.beginList(vc::Controller::Collection::kNodes); },
       .onListPage =
           [&](nlohmann::json& items) {
             controller.applyListPage(vc::Controller::Collection::kNodes, items);
           },
       .onListEnd =
           [&] {
             controller.endList(vc::Controller::Collection::kNodes);
             malloc_trim(0);  // a big list's pages are freed: give the memory back
           },
       .onEvent = [&](kube::WatchEventType type,
                      nlohmann::json& object) { controller.applyNodeEvent(type, object); },
       .onError = logWatchError("nodes")});

  vnetipam::observe::HttpServer server(options.metricsAddress, registry);
  server.addCheck("caches", vnetipam::observe::Probe::kReadiness,
                  [&]() -> std::expected<void, std::string> {
                    if (!subnetWatch.hasSynced()) return std::unexpected("podsubnets not synced");
                    if (!blockWatch.hasSynced()) return std::unexpected("ipblocks not synced");
                    if (!nodeWatch.hasSynced()) return std::unexpected("nodes not synced");
                    return {};
                  });
  if (auto started = server.start(); !started) {
    return fatal(fmt::format("--metrics-address: {}", started.error()));
  }
  metrics.setLeader(false);

  Lifecycle life;
  std::thread signalThread([&] {
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("received signal {}: shutting down", received);
    life.stopping.store(true);
    std::lock_guard lock(life.mutex);
    life.stopRequested = true;
    life.changed.notify_all();
  });
  signalThread.detach();  // blocked in sigwait until a signal; the process exits around it

  spdlog::info("vnet-ipam-controller {} starting: cloud={} workers={} identity={}", "v1alpha1",
               options.cloud == vc::CloudKind::kAzure ? "azure" : "none", options.workers,
               options.leaderElectionIdentity);
  subnetWatch.start();
  blockWatch.start();
  nodeWatch.start();
  while (!(subnetWatch.hasSynced() && blockWatch.hasSynced() && nodeWatch.hasSynced())) {
    std::unique_lock lock(life.mutex);
    if (life.changed.wait_for(lock, std::chrono::milliseconds(50),
                              [&] { return life.stopRequested; })) {
      break;
    }
  }
  if (!life.stopRequested) spdlog::info("caches synced");
  if (usagePoller) usagePoller->start();  // the PodSubnets are known now
  recorder.start();

  // Leadership.
  std::unique_ptr<kube::LeaderElector> elector;
  std::thread electorThread;
  if (options.leaderElect) {
    kube::LeaderElectionConfig config{
        .leaseNamespace = options.leaderElectionNamespace,
        .leaseName = options.leaderElectionName,
        .identity = options.leaderElectionIdentity,
        .onStartedLeading =
            [&] {
              spdlog::info("became the leader ({})", options.leaderElectionIdentity);
              metrics.setLeader(true);
              controller.setWritable(true);
              std::lock_guard lock(life.mutex);
              life.leading = true;
              life.changed.notify_all();
            },
        .onStoppedLeading =
            [&] {
              controller.setWritable(false);
              metrics.setLeader(false);
              if (life.stopping.load()) return;
              spdlog::error("lost the leader lease: exiting so a fresh process takes over");
              spdlog::default_logger()->flush();
              std::_Exit(1);
            },
        .onNewLeader = [](const std::string& who) { spdlog::info("leader is {}", who); },
        .log = [](std::string_view line) { spdlog::warn("leader election: {}", line); }};
    if (auto invalid = kube::LeaderElector::validate(config)) {
      return fatal(fmt::format("--leader-election-*: {}", *invalid));
    }
    elector = std::make_unique<kube::LeaderElector>(leaseClient, clock, std::move(config));
    electorThread = std::thread([&] { elector->run(life.stop); });
  } else {
    controller.setWritable(true);
    metrics.setLeader(true);
    std::lock_guard lock(life.mutex);
    life.leading = true;
  }

  std::vector<std::thread> workers;
  {
    std::unique_lock lock(life.mutex);
    life.changed.wait(lock, [&] { return life.stopRequested || life.leading; });
  }
  if (!life.stopRequested) {
    controller.enqueueAll();
    for (int i = 0; i < options.workers; ++i)
      workers.emplace_back([&] { controller.runWorker(queue); });
    // NIC reconciles mostly wait on Azure (a NIC PUT is a long-running operation polled for
    // seconds), so they get kNicWorkersPerWorker threads per worker.
    for (int i = 0; i < options.workers * kNicWorkersPerWorker; ++i)
      workers.emplace_back([&] { controller.runWorker(nicQueue); });
    if (orphanSweeper) orphanSweeper->start();
    // Periodic drift check: every NIC is read again, every node decided again.
    std::unique_lock lock(life.mutex);
    auto nextResync = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (!life.changed.wait_for(lock, std::chrono::seconds(10),
                                  [&] { return life.stopRequested; })) {
      malloc_trim(0);  // hand freed pages of parsed JSON back to the system
      if (std::chrono::steady_clock::now() >= nextResync) {
        controller.enqueueAll();
        nextResync = std::chrono::steady_clock::now() + std::chrono::minutes(5);
      }
    }
  }

  // Shutdown: no new writes, in-flight reconciles finish, then the lease goes.
  life.stopping.store(true);
  controller.setWritable(false);
  if (usagePoller) usagePoller->stop();
  if (orphanSweeper) orphanSweeper->stop();
  queue.shutdown();
  nicQueue.shutdown();
  for (auto& worker : workers)
    worker.join();
  life.stop.cancel();
  if (electorThread.joinable()) electorThread.join();
  subnetWatch.stop();
  blockWatch.stop();
  nodeWatch.stop();
  recorder.stop();
  server.stop();
  spdlog::info("stopped");
  spdlog::default_logger()->flush();
  return 0;
}
