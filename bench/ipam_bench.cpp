// Allocation benchmarks for the pure IPAM core.
//
//   cmake --build build --target ipam_bench && ./build/bench/ipam_bench
//
// Targets: allocateNext over a /8 carved into /28 blocks (1,048,576 blocks) <= 200 ns
// even at 99 % full; an in-block allocate+release pair <= 100 ns.
#include <random>

#include <benchmark/benchmark.h>

#include "lib/ipam/block_allocator.h"
#include "lib/ipam/subnet_blocks.h"

namespace vnetipam::ipam {
namespace {

// Fills the set to `percent` % with randomly chosen blocks (so free blocks are scattered, the hard
// case for a search), then measures allocateNext + release of the block it got, so the pool stays
// at the same fill for the whole run. The pair is timed together because PauseTiming's own cost
// (hundreds of ns) would swamp allocateNext alone: the pair is an upper bound on allocateNext.
void BM_SubnetAllocateNextAndRelease(benchmark::State& state) {
  const auto percent = static_cast<double>(state.range(0));
  SubnetBlockSet set = SubnetBlockSet::carve(Prefix::parse("10.0.0.0/8").value(), 28).value();
  std::mt19937_64 rng(1);
  const auto target =
      static_cast<std::uint64_t>(static_cast<double>(set.usableCount()) * percent / 100.0);
  std::uniform_int_distribution<std::uint64_t> pick(0, set.blockCount() - 1);
  while (set.allocatedCount() < target) {
    const std::uint64_t i = pick(rng);
    if (!set.isExcluded(i)) (void)set.occupy(set.blockAt(i));
  }
  set.finishOccupying();
  for (auto _ : state) {
    auto block = set.allocateNext();
    benchmark::DoNotOptimize(block);
    (void)set.release(*block);
  }
  state.counters["fill_percent"] = percent;
}
BENCHMARK(BM_SubnetAllocateNextAndRelease)->Arg(0)->Arg(50)->Arg(99);

// One pod ADD + DEL against a /28 block with a realistic 64-hex-digit container id, cooldown 0
// so the block never runs dry. Half the block is held by other pods.
void BM_BlockAllocateRelease(benchmark::State& state) {
  BlockAllocator block =
      BlockAllocator::create(Prefix::parse("10.240.0.16/28").value(), std::chrono::seconds(0))
          .value();
  const TimePoint now{};
  for (int i = 0; i < 8; ++i) {
    (void)block.allocate(Owner{std::string(64, 'a') + std::to_string(i), "eth0"}, now);
  }
  const Owner owner{"4f0c1a3b9d7e6f5a4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c", "eth0"};
  for (auto _ : state) {
    auto address = block.allocate(owner, now);
    benchmark::DoNotOptimize(address);
    (void)block.release(*address, owner, now);
  }
}
BENCHMARK(BM_BlockAllocateRelease);

}  // namespace
}  // namespace vnetipam::ipam
