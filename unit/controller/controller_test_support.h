// Shared set-up of the controller's wiring tests: a Controller on the fake API server (and,
// when asked, the fake cloud), a hand-driven wall clock, recorded events, and helpers that play
// the watch (hand the fake's objects to the controller) and run the queue until it is quiet.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "controller/controller.h"
#include "unit/controller/fake_cloud.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/lib/kube/fake_api_server.h"

namespace vnetipam::controller::testing {

using kube::testing::FakeApiServer;

// The providerID of the VM the Azure-mode tests give their node, and their pod subnet's ARM id.
inline constexpr const char* kVm =
    "azure:///subscriptions/s/resourceGroups/rg/providers/"
    "Microsoft.Compute/virtualMachines/vm-a";
inline constexpr const char* kSubnetId =
    "/subscriptions/s/resourceGroups/rg/providers/"
    "Microsoft.Network/virtualNetworks/v/subnets/pods";

struct RecordedEvent {
  std::string kind;
  std::string name;
  std::string reason;
  std::string note;
};

class RecordingEvents final : public EventSink {
 public:
  void record(const kube::ObjectReference& regarding, kube::EventType, std::string_view reason,
              std::string_view, std::string_view note) override {
    events.push_back({regarding.kind, regarding.name, std::string(reason), std::string(note)});
  }
  bool has(std::string_view reason) const {
    for (const auto& e : events)
      if (e.reason == reason) return true;
    return false;
  }
  std::vector<RecordedEvent> events;
};

inline nlohmann::json nodeJson(const std::string& name, const std::string& providerID = "",
                               nlohmann::json labels = nlohmann::json::object()) {
  nlohmann::json node = {
      {"apiVersion", "v1"},
      {"kind", "Node"},
      {"metadata", {{"name", name}, {"uid", "node-uid-" + name}, {"labels", std::move(labels)}}}};
  if (!providerID.empty()) node["spec"]["providerID"] = providerID;
  return node;
}

inline nlohmann::json subnetJson(const std::string& name, nlohmann::json spec,
                                 const std::string& created = "2026-01-01T00:00:00Z") {
  return {{"apiVersion", "vnetipam.io/v1alpha1"},
          {"kind", "PodSubnet"},
          {"metadata",
           {{"name", name},
            {"uid", "subnet-uid-" + name},
            {"generation", 1},
            {"resourceVersion", "1"},
            {"creationTimestamp", created}}},
          {"spec", std::move(spec)}};
}

inline nlohmann::json blockJson(const std::string& subnet, const std::string& cidr,
                                const std::string& node, const std::string& name) {
  return {{"apiVersion", "vnetipam.io/v1alpha1"},
          {"kind", "IPBlock"},
          {"metadata", {{"name", name}, {"finalizers", {"vnetipam.io/nic-release"}}}},
          {"spec", {{"podSubnet", subnet}, {"cidr", cidr}, {"nodeName", node}}}};
}

inline std::string blockPathOf(const std::string& name) {
  return std::string(kIPBlocksPath) + "/" + name;
}

class ControllerFixture : public ::testing::Test {
 protected:
  explicit ControllerFixture(bool withCloud = false) : withCloud_(withCloud) {}

  void SetUp() override {
    ControllerConfig config;
    config.nicOrphanGrace = std::chrono::seconds(120);
    config.leakGrace = std::chrono::seconds(60);
    config.statusInterval = std::chrono::milliseconds(0);
    controller_ = std::make_unique<Controller>(client_, withCloud_ ? &cloud_ : nullptr, queue_,
                                               &events_, nullptr, config, clock_);
    controller_->setWritable(true);
  }

  // Plays the watch: every IPBlock the fake API server holds, as a fresh list.
  void syncBlocks() {
    nlohmann::json items = api_.items(std::string(kIPBlocksPath));
    controller_->applyBlockList(items);
  }
  void addNode(const nlohmann::json& node) {
    controller_->applyNodeEvent(kube::WatchEventType::kAdded, node);
  }
  void addSubnet(const nlohmann::json& subnet) {
    api_.put(std::string(kPodSubnetsPath) + "/" + subnet["metadata"]["name"].get<std::string>(),
             subnet);
    controller_->applySubnetEvent(kube::WatchEventType::kAdded, subnet);
  }

  // Processes every ready key, then plays the watch, until nothing is left to do.
  void runUntilQuiet(int maxRounds = 20) {
    for (int round = 0; round < maxRounds; ++round) {
      syncBlocks();
      if (queue_.depth() == 0) return;
      while (queue_.depth() > 0) {
        auto key = queue_.get();
        ASSERT_TRUE(key);
        controller_->process(*key);
        queue_.done(*key);
      }
    }
    FAIL() << "the queue never became quiet";
  }

  // What the node's agent does once it serves nothing from a block being deleted: removes
  // vnetipam.io/agent-drain (and nothing else).
  void dropAgentDrain(const std::string& name) {
    auto block = api_.get(blockPathOf(name));
    ASSERT_TRUE(block) << name;
    nlohmann::json finalizers = nlohmann::json::array();
    for (const auto& f : (*block)["metadata"].value("finalizers", nlohmann::json::array())) {
      if (f != "vnetipam.io/agent-drain") finalizers.push_back(f);
    }
    ASSERT_TRUE(
        client_.mergePatch(blockPathOf(name), {{"metadata", {{"finalizers", finalizers}}}}));
  }

  std::vector<nlohmann::json> blocksOf(const std::string& node) const {
    std::vector<nlohmann::json> out;
    for (const auto& b : api_.items(std::string(kIPBlocksPath))) {
      if (b["spec"]["nodeName"] == node) out.push_back(b);
    }
    return out;
  }

  bool withCloud_;
  FakeApiServer api_;
  // Calendar time starts at 2026-01-02 (the PodSubnets' creationTimestamps are the day before).
  base::testing::FakeClock clock_{std::chrono::sys_days{std::chrono::year{2026} / 1 / 2}};
  kube::Client client_{api_, clock_, kube::ClientOptions{.qps = 0, .maxRetries = 0}};
  FakeCloud cloud_;
  WorkQueue queue_;
  RecordingEvents events_;
  std::unique_ptr<Controller> controller_;
};

}  // namespace vnetipam::controller::testing
