// BlockKeeper: the served-blocks file follows the served set, and agent-drain is removed only
// from an empty block being deleted, only after the file no longer holds it, and with a JSON
// patch that tests the exact entry.
#include "node-agent/block_keeper.h"

#include <fstream>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "node-agent/api_sync.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/node-agent/temp_dir.h"

namespace vnetipam::agent {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::TempDir;

constexpr std::string_view kDrain = "vnetipam.io/agent-drain";

// Answers every request with 200, or with `failWith` when set, and records, with each request,
// the blocks the served-blocks file held at that moment.
class RecordingTransport final : public http::HttpTransport {
 public:
  explicit RecordingTransport(std::filesystem::path stateDir) : stateDir_(std::move(stateDir)) {}
  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    auto onDisk = loadServedBlocks(stateDir_, "n1");
    seen.push_back({request, onDisk ? *onDisk : std::vector<ServedBlock>{}});
    if (status != 200) return http::HttpResponse{status, {}, R"({"kind":"Status"})"};
    return http::HttpResponse{200, {}, "{}"};
  }
  http::Result<http::HttpResponse> stream(const http::HttpRequest&,
                                          const std::function<bool(std::string_view)>&,
                                          http::CancelSignal&) override {
    return std::unexpected(http::Error{http::ErrorCode::kConnectFailed, "no streams here"});
  }
  std::vector<std::pair<http::HttpRequest, std::vector<ServedBlock>>> seen;
  int status = 200;

 private:
  std::filesystem::path stateDir_;
};

json blockObject(const std::string& name, const std::string& node, const std::string& cidr,
                 bool deleting, std::vector<std::string> finalizers) {
  json j{{"apiVersion", "vnetipam.io/v1alpha1"},
         {"kind", "IPBlock"},
         {"metadata", {{"name", name}, {"uid", "uid-" + name}, {"resourceVersion", "7"}}},
         {"spec", {{"podSubnet", "pods"}, {"cidr", cidr}, {"nodeName", node}}},
         {"status", {{"phase", "Ready"}}}};
  if (deleting) j["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z";
  if (!finalizers.empty()) j["metadata"]["finalizers"] = finalizers;
  return j;
}

class BlockKeeperTest : public ::testing::Test {
 protected:
  BlockKeeperTest() : transport_(dir_.path()) {
    auto opened = ipam::Journal::open(dir_.path() / "allocations.journal");
    EXPECT_TRUE(opened);
    journal_ = std::move(opened->first);
    auto store = AllocationStore::recover(*journal_, opened->second,
                                          StoreOptions{.nodeName = "n1", .cooldown = 0s}, clock_);
    EXPECT_TRUE(store);
    store_ = std::move(*store);
    store_->setReady(true);
  }

  // What the informer handler does for each object.
  void show(const json& object) {
    auto block = apiBlockFromJson(object, "n1");
    ASSERT_TRUE(block) << block.error();
    store_->upsertBlock(*block);
  }
  BlockKeeper keeper(std::optional<std::vector<ServedBlock>> written = std::nullopt) {
    return BlockKeeper(
        *store_, client_, {.stateDir = dir_.path(), .nodeName = "n1"}, [this] { return objects_; },
        std::move(written));
  }
  Response allocate(const std::string& id) {
    return store_->handle(
        Request{.op = Op::kAllocate, .owner = {.containerID = id, .ifName = "eth0"}});
  }
  Response release(const std::string& id) {
    return store_->handle(
        Request{.op = Op::kRelease, .owner = {.containerID = id, .ifName = "eth0"}});
  }
  std::vector<std::string> persistedNames() {
    auto loaded = loadServedBlocks(dir_.path(), "n1");
    EXPECT_TRUE(loaded) << loaded.error();
    std::vector<std::string> names;
    for (const auto& b : loaded.value_or(std::vector<ServedBlock>{}))
      names.push_back(b.name);
    return names;
  }
  std::vector<http::HttpRequest> patches() {
    std::vector<http::HttpRequest> out;
    for (const auto& [request, onDisk] : transport_.seen) {
      if (request.method == "PATCH") out.push_back(request);
    }
    return out;
  }

  TempDir dir_;
  RecordingTransport transport_;
  base::testing::FakeClock clock_{ipam::TimePoint(std::chrono::hours(500'000))};
  kube::Client client_{transport_, clock_, {.qps = 0, .maxRetries = 0}};
  std::unique_ptr<ipam::Journal> journal_;
  std::unique_ptr<AllocationStore> store_;
  std::vector<json> objects_;
};

TEST_F(BlockKeeperTest, PersistsTheServedSetWhenItChanges) {
  objects_ = {blockObject("a", "n1", "10.0.0.0/30", false, {std::string(kDrain)})};
  show(objects_[0]);
  BlockKeeper k = keeper();
  EXPECT_TRUE(k.step().wrote);
  EXPECT_EQ(persistedNames(), std::vector<std::string>{"a"});
  EXPECT_FALSE(k.step().wrote) << "unchanged: no write";
  objects_.push_back(blockObject("b", "n1", "10.0.0.4/30", false, {std::string(kDrain)}));
  show(objects_[1]);
  EXPECT_TRUE(k.step().wrote);
  EXPECT_EQ(persistedNames(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(patches().empty()) << "nothing is being deleted";

  // What a restart read back is not written again.
  BlockKeeper again = keeper(loadServedBlocks(dir_.path(), "n1").value());
  EXPECT_FALSE(again.step().wrote);
}

TEST_F(BlockKeeperTest, RemovesAgentDrainOnlyOnceTheBlockIsEmptyAndAfterPersistingItsDrop) {
  json object = blockObject("a", "n1", "10.0.0.0/30", false,
                            {"example.com/other", std::string(kDrain), "vnetipam.io/nic-release"});
  objects_ = {object};
  show(object);
  BlockKeeper k = keeper();
  k.step();
  ASSERT_TRUE(allocate("c1").ok);

  object["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z";
  objects_ = {object};
  show(object);
  auto pass = k.step();
  EXPECT_TRUE(pass.wrote);
  EXPECT_TRUE(persistedNames().empty()) << "a deleting block is no longer served";
  EXPECT_TRUE(pass.drained.empty());
  EXPECT_TRUE(patches().empty()) << "c1 still holds an address in it";

  ASSERT_TRUE(release("c1").ok);
  pass = k.step();
  EXPECT_EQ(pass.drained, std::vector<std::string>{"a"});
  const std::vector<http::HttpRequest> sent = patches();
  ASSERT_EQ(sent.size(), 1u);
  const http::HttpRequest& patch = sent[0];
  EXPECT_EQ(patch.target, "/apis/vnetipam.io/v1alpha1/ipblocks/a");
  EXPECT_EQ(patch.headers.at("Content-Type"), "application/json-patch+json");
  EXPECT_EQ(json::parse(patch.body), json::parse(R"([
    {"op": "test", "path": "/metadata/uid", "value": "uid-a"},
    {"op": "test", "path": "/metadata/finalizers/1", "value": "vnetipam.io/agent-drain"},
    {"op": "remove", "path": "/metadata/finalizers/1"}])"));
  // The file on disk at the moment of the PATCH no longer held the block.
  for (const auto& [request, onDisk] : transport_.seen) {
    if (request.method != "PATCH") continue;
    for (const auto& b : onDisk)
      EXPECT_NE(b.name, "a");
  }
}

TEST_F(BlockKeeperTest, ABlockServedUntilThisPassIsDroppedFromTheFileBeforeItsPatch) {
  // Never allocated from, Ready, then deleted: one pass both rewrites the file and patches.
  json object = blockObject("a", "n1", "10.0.0.0/30", false, {std::string(kDrain)});
  objects_ = {object};
  show(object);
  BlockKeeper k = keeper();
  k.step();
  ASSERT_EQ(persistedNames(), std::vector<std::string>{"a"});
  object["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z";
  objects_ = {object};
  show(object);
  auto pass = k.step();
  EXPECT_TRUE(pass.wrote);
  EXPECT_EQ(pass.drained, std::vector<std::string>{"a"});
  ASSERT_EQ(patches().size(), 1u);
  ASSERT_EQ(transport_.seen.size(), 1u);
  EXPECT_TRUE(transport_.seen[0].second.empty()) << "persisted first";
}

TEST_F(BlockKeeperTest, NoPatchWhenTheFileCannotBeWritten) {
  json object = blockObject("a", "n1", "10.0.0.0/30", false, {std::string(kDrain)});
  objects_ = {object};
  show(object);
  BlockKeeper k = keeper();
  k.step();
  object["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z";
  objects_ = {object};
  show(object);
  // A directory where the file goes: the rename fails.
  std::filesystem::remove(dir_.path() / kServedBlocksFile);
  std::filesystem::create_directory(dir_.path() / kServedBlocksFile);
  std::ofstream(dir_.path() / kServedBlocksFile / "x") << "x";
  auto pass = k.step();
  EXPECT_TRUE(pass.writeFailed);
  EXPECT_TRUE(patches().empty()) << "never a patch before the drop is durable";
  std::filesystem::remove_all(dir_.path() / kServedBlocksFile);
  pass = k.step();
  EXPECT_TRUE(pass.wrote);
  EXPECT_EQ(pass.drained, std::vector<std::string>{"a"});
}

TEST_F(BlockKeeperTest, LeavesBlocksAloneThatAreNotDeletingOrNotDrainedByIt) {
  objects_ = {
      blockObject("live", "n1", "10.0.0.0/30", false, {std::string(kDrain)}),
      blockObject("no-finalizer", "n1", "10.0.0.4/30", true, {"vnetipam.io/nic-release"}),
      blockObject("other-node", "n2", "10.0.0.8/30", true, {std::string(kDrain)}),
  };
  show(objects_[0]);
  BlockKeeper k = keeper();
  k.step();
  EXPECT_TRUE(patches().empty());
}

TEST_F(BlockKeeperTest, AFailedPatchIsTriedAgain) {
  objects_ = {blockObject("a", "n1", "10.0.0.0/30", true, {std::string(kDrain)})};
  show(objects_[0]);
  BlockKeeper k = keeper();
  transport_.status = 422;  // the test op failed: the object changed
  EXPECT_TRUE(k.step().drained.empty());
  transport_.status = 200;
  EXPECT_EQ(k.step().drained, std::vector<std::string>{"a"});
  EXPECT_EQ(patches().size(), 2u);
}

TEST(StartModeTest, ServesFromTheApiOrAfterTheBoundFromAnIntactFileOnly) {
  EXPECT_EQ(startMode(true, 0s, 5s, false), StartMode::kFromApi);
  EXPECT_EQ(startMode(true, 10s, 5s, true), StartMode::kFromApi);
  EXPECT_EQ(startMode(false, 4s, 5s, true), StartMode::kWait);
  EXPECT_EQ(startMode(false, 5s, 5s, true), StartMode::kFromPersisted);
  EXPECT_EQ(startMode(false, 1h, 5s, false), StartMode::kWait)
      << "a missing or damaged file never serves without the API server";
}

}  // namespace
}  // namespace vnetipam::agent
