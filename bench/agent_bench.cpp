// The node agent's allocation path end to end: allocate + release pairs per second over its unix
// socket, durable (every allocation and every release fsynced in the journal before its answer;
// group commit), with 1 and 8 concurrent clients, each on its own connection as the CNI plugin
// would be.
//
//   cmake --build build --target agent_bench &&
//     ./build/bench/agent_bench --benchmark_min_time=3
//
// It runs the agent's real core in-process (AllocationStore + SocketServer from
// node-agent/, no API server: one Ready /16 block, cooldown 0 so addresses recycle), because the
// socket, the request handling and the journal are what a CNI ADD+DEL pays for. The journal
// lives in a fresh directory under $VNETIPAM_BENCH_DIR (default: the system temp directory),
// removed afterwards. fsync cost is the disk's: run it on the file system the agent's state dir
// uses; on a tmpfs the number is the CPU ceiling, not a durable one.
//
// items_per_second is allocate+release pairs per second over all clients; fsyncs_per_pair
// shows how well group commit shares fsyncs among clients (each pair waits for two: 2.0 with one
// client, 0.25 when every fsync covers all 8 clients), and callers_per_fsync how many waiting
// requests one fsync answered on average.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include "lib/ipam/journal.h"
#include "node-agent/allocation_store.h"
#include "node-agent/socket_server.h"

namespace vnetipam::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct BenchAgent {
  fs::path dir;
  std::unique_ptr<ipam::Journal> journal;
  std::unique_ptr<AllocationStore> store;
  std::unique_ptr<SocketServer> server;
  std::string socket;

  ~BenchAgent() {
    if (server) server->stop();
    store.reset();
    journal.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::unique_ptr<BenchAgent> startAgent() {
  auto agent = std::make_unique<BenchAgent>();
  const char* base = std::getenv("VNETIPAM_BENCH_DIR");
  std::string tmpl =
      ((base != nullptr ? fs::path(base) : fs::temp_directory_path()) / "agent_bench.XXXXXX")
          .string();
  if (::mkdtemp(tmpl.data()) == nullptr) return nullptr;
  agent->dir = tmpl;
  auto opened = ipam::Journal::open(agent->dir / "allocations.journal");
  if (!opened) return nullptr;
  agent->journal = std::move(opened->first);
  auto store = AllocationStore::recover(
      *agent->journal, opened->second,
      StoreOptions{.nodeName = "bench", .cooldown = 0s, .compactAfterEntries = 200'000},
      base::systemClock());
  if (!store) return nullptr;
  agent->store = std::move(*store);
  agent->store->upsertBlock(ApiBlock{
      .name = "pods-10-64-0-0-16", .cidr = *ipam::Prefix::parse("10.64.0.0/16"), .ready = true});
  agent->store->apiSynced();
  agent->store->setReady(true);
  agent->socket = (agent->dir / "agent.sock").string();
  AllocationStore* s = agent->store.get();
  agent->server =
      std::make_unique<SocketServer>(agent->socket, [s](const Request& r) { return s->handle(r); });
  if (!agent->server->start()) return nullptr;
  return agent;
}

std::unique_ptr<BenchAgent> gAgent;
std::uint64_t gSyncsAtStart = 0;  // recovery and setup syncs are not the benchmark's
std::uint64_t gCallersAtStart = 0;

// Once per run, before any thread starts, and after all have stopped.
void startRun(const benchmark::State&) {
  spdlog::set_level(spdlog::level::warn);
  gAgent = startAgent();
  if (gAgent) {
    const auto stats = gAgent->journal->stats();
    gSyncsAtStart = stats.syncs;
    gCallersAtStart = stats.syncedCallers;
  }
}
void stopRun(const benchmark::State&) { gAgent.reset(); }

void BM_AllocateReleasePairs(benchmark::State& state) {
  std::optional<AgentConnection> conn;
  if (gAgent) {
    if (auto c = AgentConnection::open(gAgent->socket, 5s)) conn = std::move(*c);
  }
  std::uint64_t i = 0;
  const std::string prefix = "bench-" + std::to_string(state.thread_index()) + "-";
  for (auto _ : state) {
    if (!conn) {
      state.SkipWithError("could not start the agent or connect to it");
      break;
    }
    Request request{.op = Op::kAllocate,
                    .owner = {.containerID = prefix + std::to_string(i++), .ifName = "eth0"},
                    .podNamespace = "default",
                    .podName = "bench"};
    auto allocated = conn->call(request, 5s);
    if (!allocated || !allocated->ok) {
      state.SkipWithError("allocate failed");
      break;
    }
    request.op = Op::kRelease;
    auto released = conn->call(request, 5s);
    if (!released || !released->ok) {
      state.SkipWithError("release failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  // fsyncs so far divided by this thread's share of pairs: exact once every thread is done, an
  // estimate for the threads that finish first (benchmark sums counters across threads, so
  // report it from thread 0 only).
  if (state.thread_index() == 0 && gAgent && state.iterations() > 0) {
    const auto syncs = gAgent->journal->stats().syncs - gSyncsAtStart;
    state.counters["fsyncs_per_pair"] =
        benchmark::Counter(static_cast<double>(syncs) / (static_cast<double>(state.iterations()) *
                                                         static_cast<double>(state.threads())));
    const auto callers = gAgent->journal->stats().syncedCallers - gCallersAtStart;
    if (syncs > 0) {
      state.counters["callers_per_fsync"] =
          benchmark::Counter(static_cast<double>(callers) / static_cast<double>(syncs));
    }
  }
}
BENCHMARK(BM_AllocateReleasePairs)
    ->Setup(startRun)
    ->Teardown(stopRun)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

}  // namespace
}  // namespace vnetipam::agent
