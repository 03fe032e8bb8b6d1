// Keeps the served-blocks file in step with the blocks the agent serves, and gives up blocks the
// controller is deleting: the agent's half of the drain handshake (api::kAgentDrainFinalizer).
//
// The order is the safety rule of served_blocks.h: a block being deleted stops getting new
// allocations at once (AllocationStore), then, once it holds no allocation, a pass
//   1. writes the served-blocks file without it (durably: a restart never serves it again), and
//   2. only then removes agent-drain from it with a JSON patch that tests the exact entry,
// after which the controller may return its CIDR to the pool. A pass that cannot write the file
// removes no finalizer. A patch that fails (the API server is away, the object changed) is tried
// again on the next pass.
//
// Passes run on a thread of their own: when kicked (a block starts deleting, a release empties a
// block that gets nothing new, the agent (re)started or resynchronised) and every retryInterval.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/kube/client.h"
#include "node-agent/allocation_store.h"
#include "node-agent/served_blocks.h"

namespace vnetipam::agent {

struct BlockKeeperOptions {
  std::filesystem::path stateDir;
  std::string nodeName;
  std::chrono::milliseconds retryInterval{1000};
};

class BlockKeeper {
 public:
  // `listBlocks` returns this node's IPBlocks as the informer caches them. `written` is what the
  // served-blocks file holds now (nullopt: nothing valid, the first pass writes it). `store`,
  // `client` must outlive the keeper.
  BlockKeeper(AllocationStore& store, kube::Client& client, BlockKeeperOptions options,
              std::function<std::vector<nlohmann::json>()> listBlocks,
              std::optional<std::vector<ServedBlock>> written);
  ~BlockKeeper();  // stop()s
  BlockKeeper(const BlockKeeper&) = delete;
  BlockKeeper& operator=(const BlockKeeper&) = delete;

  struct Pass {
    bool wrote = false;                // the served-blocks file was rewritten
    bool writeFailed = false;          // ... and that failed: no finalizer was touched
    std::vector<std::string> drained;  // blocks whose agent-drain this pass removed
  };
  // One pass, on the caller's thread. Not concurrently with itself (start() runs it).
  Pass step();

  void start();
  void stop();
  // Asks for a pass soon. Cheap, callable from any thread and under other locks.
  void kick();

 private:
  AllocationStore& store_;
  kube::Client& client_;
  const BlockKeeperOptions options_;
  std::function<std::vector<nlohmann::json>()> listBlocks_;
  std::optional<std::vector<ServedBlock>> written_;  // only the stepping thread

  std::mutex mu_;
  std::condition_variable wake_;
  bool kicked_ = false;    // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace vnetipam::agent

namespace vnetipam::agent {

// How the agent starts serving, decided while it waits for its first API sync.
enum class StartMode : std::uint8_t {
  kWait,           // keep waiting for the API server
  kFromApi,        // the IPBlock cache synced: serve what the API shows
  kFromPersisted,  // the API server did not answer within the bound: serve the persisted blocks
};
// `persistedValid`: the served-blocks file read back intact (even with no blocks: the agent then
// serves releases and its journal's allocations, and allocates nothing). A missing or damaged file
// never starts serving without the API server.
StartMode startMode(bool apiSynced, std::chrono::steady_clock::duration waited,
                    std::chrono::steady_clock::duration bound, bool persistedValid);

}  // namespace vnetipam::agent
