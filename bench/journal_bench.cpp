// Durable allocation journal: appends per second, with one fsync per record and with group
// commit (concurrent appendDurable callers sharing fsyncs, or one caller batching appends).
//
//   cmake --build build --target journal_bench &&
//     ./build/bench/journal_bench --benchmark_min_time=1
//
// The journal lives in a fresh directory under $VNETIPAM_BENCH_DIR (default: the system temp
// directory), removed afterwards. fsync cost is the disk's, so run it on the file system the
// agent's journal will use; a tmpfs makes every "durable" number meaningless.
//
// How to read it: a durable append costs at least one fsync of latency, so C concurrent callers
// can at best complete C records per fsync. items_per_second is the total over all threads;
// records_per_fsync shows how many records each fsync covered.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include "lib/ipam/journal.h"

namespace vnetipam::ipam {
namespace {

namespace fs = std::filesystem;

// About what an allocation record will hold: address, container id prefix, interface, owner.
const std::string kPayload =
    "alloc 10.240.1.37 ctr=3f2a9c1e77b0 if=eth0 pod=default/web-7f9c5-abcde";

fs::path makeTempDir() {
  const char* base = std::getenv("VNETIPAM_BENCH_DIR");
  std::string tmpl =
      ((base != nullptr ? fs::path(base) : fs::temp_directory_path()) / "journal_bench.XXXXXX")
          .string();
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

// One journal shared by all threads of a benchmark run, opened by Setup before the threads start
// and removed by Teardown after they all finish.
struct SharedJournal {
  fs::path dir;
  std::unique_ptr<Journal> journal;
  std::string error;
  std::chrono::steady_clock::time_point opened;
};
SharedJournal* shared = nullptr;

void openJournal(const benchmark::State&) {
  shared = new SharedJournal{makeTempDir(), nullptr, {}};
  if (shared->dir.empty()) {
    shared->error = "cannot create a temp directory";
    return;
  }
  auto opened = Journal::open(shared->dir / "alloc.journal");
  if (!opened) {
    shared->error = opened.error().message;
    return;
  }
  shared->journal = std::move(opened->first);
  shared->opened = std::chrono::steady_clock::now();
}

void removeJournal(const benchmark::State&) {
  shared->journal.reset();
  std::error_code ignored;
  if (!shared->dir.empty()) fs::remove_all(shared->dir, ignored);
  delete shared;
  shared = nullptr;
}

Journal* journalOrSkip(benchmark::State& state) {
  if (!shared->journal) state.SkipWithError(shared->error.c_str());
  return shared->journal.get();
}

// Every thread has left the timed loop when this runs; counters are summed over threads, so
// only thread 0 reports. ms_per_fsync is wall time over fsyncs: with a group of waiters always
// queued it is the disk's fsync latency, the number that bounds everything else here.
void report(benchmark::State& state, const Journal& j, std::int64_t recordsPerIteration = 1) {
  state.SetItemsProcessed(state.iterations() * recordsPerIteration);
  if (state.thread_index() != 0) return;
  const JournalStats st = j.stats();
  if (st.syncs > 0) {
    const std::chrono::duration<double, std::milli> wall =
        std::chrono::steady_clock::now() - shared->opened;
    state.counters["records_per_fsync"] =
        static_cast<double>(st.lastSeq) / static_cast<double>(st.syncs);
    state.counters["ms_per_fsync"] = wall.count() / static_cast<double>(st.syncs);
  }
}

// Baseline: the CPU cost of encoding, checksumming and write(2), with no fsync at all.
void BM_AppendNoSync(benchmark::State& state) {
  Journal* jp = journalOrSkip(state);
  if (jp == nullptr) return;
  Journal& j = *jp;
  for (auto _ : state) {
    auto seq = j.append(kPayload);
    if (!seq) {
      state.SkipWithError(seq.error().message.c_str());
      break;
    }
    if (j.stats().fileBytes > (64u << 20)) {  // keep the file bounded on fast machines
      state.PauseTiming();
      (void)j.compact("snapshot", *seq);
      state.ResumeTiming();
    }
  }
  report(state, j);
}
BENCHMARK(BM_AppendNoSync)->Setup(openJournal)->Teardown(removeJournal);

// N concurrent callers, each waiting for its own record to be durable (the agent serving N
// concurrent CNI ADDs). With one thread that is one fsync per record, what a journal without
// group commit achieves; with more, group commit lets one fsync cover every record written while
// the previous fsync ran.
void BM_AppendDurable(benchmark::State& state) {
  Journal* jp = journalOrSkip(state);
  if (jp == nullptr) return;
  Journal& j = *jp;
  for (auto _ : state) {
    auto seq = j.appendDurable(kPayload);
    if (!seq) {
      state.SkipWithError(seq.error().message.c_str());
      break;
    }
  }
  report(state, j);
}
BENCHMARK(BM_AppendDurable)
    ->Setup(openJournal)
    ->Teardown(removeJournal)
    ->Threads(1)
    ->Threads(8)
    ->Threads(32)
    ->Threads(64)
    ->UseRealTime();

// One caller appending a batch, then one sync for the whole batch ("many appends, one fsync").
void BM_AppendBatchOneSync(benchmark::State& state) {
  Journal* jp = journalOrSkip(state);
  if (jp == nullptr) return;
  Journal& j = *jp;
  const auto batch = state.range(0);
  for (auto _ : state) {
    Seq last = 0;
    for (std::int64_t i = 0; i < batch; ++i) {
      auto seq = j.append(kPayload);
      if (!seq) {
        state.SkipWithError(seq.error().message.c_str());
        break;
      }
      last = *seq;
    }
    if (auto synced = j.sync(last); !synced) {
      state.SkipWithError(synced.error().message.c_str());
      break;
    }
  }
  report(state, j, batch);
}
BENCHMARK(BM_AppendBatchOneSync)
    ->Setup(openJournal)
    ->Teardown(removeJournal)
    ->Arg(8)
    ->Arg(64)
    ->Arg(256)
    ->UseRealTime();

}  // namespace
}  // namespace vnetipam::ipam
