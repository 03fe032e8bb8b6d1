#include "node-agent/block_keeper.h"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

#include "api/constants.h"
#include "node-agent/api_sync.h"

namespace vnetipam::agent {
namespace {

std::vector<ServedBlock> sorted(std::vector<ServedBlock> blocks) {
  std::sort(blocks.begin(), blocks.end(),
            [](const ServedBlock& a, const ServedBlock& b) { return a.name < b.name; });
  return blocks;
}

}  // namespace

BlockKeeper::BlockKeeper(AllocationStore& store, kube::Client& client, BlockKeeperOptions options,
                         std::function<std::vector<nlohmann::json>()> listBlocks,
                         std::optional<std::vector<ServedBlock>> written)
    : store_(store),
      client_(client),
      options_(std::move(options)),
      listBlocks_(std::move(listBlocks)) {
  if (written) written_ = sorted(std::move(*written));
}

BlockKeeper::~BlockKeeper() { stop(); }

BlockKeeper::Pass BlockKeeper::step() {
  Pass pass;
  // 1. The file follows the served set. Written before any finalizer is looked at, so that a
  // block whose finalizer this pass removes is already out of the file.
  std::vector<ServedBlock> served = sorted(store_.servedBlocks());
  if (!written_ || *written_ != served) {
    if (auto saved = saveServedBlocks(options_.stateDir, options_.nodeName, served); !saved) {
      spdlog::error("writing the served blocks: {}; no block is given up until it succeeds",
                    saved.error().message);
      pass.writeFailed = true;
      return pass;
    }
    spdlog::info("served blocks persisted: {}", served.size());
    written_ = std::move(served);
    pass.wrote = true;
  }
  // 2. Give up what the controller deletes, once nothing in it is held.
  for (const nlohmann::json& object : listBlocks_()) {
    auto target = drainTargetFromJson(object, options_.nodeName);
    if (!target) continue;
    const bool persisted = std::ranges::any_of(
        *written_, [&](const ServedBlock& b) { return b.name == target->name; });
    // drainable(): the store allocates nothing from it and holds no address in it. Neither can
    // change back: a block being deleted never becomes usable again.
    if (persisted || !store_.drainable(target->name)) {
      spdlog::debug(
          "IPBlock {} is being deleted: keeping {} while it is served or holds "
          "allocations",
          target->name, api::kAgentDrainFinalizer);
      continue;
    }
    if (auto removed = removeAgentDrain(client_, *target); !removed) {
      spdlog::warn("IPBlock {}: removing finalizer {}: {}; trying again", target->name,
                   api::kAgentDrainFinalizer, removed.error().message);
      continue;
    }
    spdlog::info("IPBlock {}: holds no allocation and is no longer served: removed {}",
                 target->name, api::kAgentDrainFinalizer);
    pass.drained.push_back(target->name);
  }
  return pass;
}

void BlockKeeper::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      kicked_ = false;
      lock.unlock();
      (void)step();
      lock.lock();
      wake_.wait_for(lock, options_.retryInterval, [&] { return stopping_ || kicked_; });
    }
  });
}

void BlockKeeper::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BlockKeeper::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  wake_.notify_all();
}

}  // namespace vnetipam::agent

namespace vnetipam::agent {

StartMode startMode(bool apiSynced, std::chrono::steady_clock::duration waited,
                    std::chrono::steady_clock::duration bound, bool persistedValid) {
  if (apiSynced) return StartMode::kFromApi;
  if (persistedValid && waited >= bound) return StartMode::kFromPersisted;
  return StartMode::kWait;
}

}  // namespace vnetipam::agent
