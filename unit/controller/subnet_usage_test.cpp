// The addresses others hold in a PodSubnet's Azure subnet (subnet_usage.h): the pure parts, the
// poller against the fake cloud, and the controller turning a usage into status.foreignAddresses
// and the vnetipam_podsubnet_foreign_addresses gauge.
#include "controller/subnet_usage.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "api/codec.h"
#include "unit/controller/controller_test_support.h"

namespace vnetipam::controller::testing {
namespace {

using nlohmann::json;

constexpr const char* kVnet =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v";
constexpr const char* kOtherVnet =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/w";

TEST(SubnetUsage, TheVnetOfASubnetId) {
  EXPECT_EQ(vnetOfSubnet(kSubnetId), std::string(kVnet));
  // ARM ids ignore case; the VNET keeps the case it was written in.
  EXPECT_EQ(vnetOfSubnet("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                         "VIRTUALNETWORKS/V/SUBNETS/pods"),
            std::string("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                        "VIRTUALNETWORKS/V"));
  EXPECT_EQ(vnetOfSubnet(std::string(kVnet)), std::nullopt);
  EXPECT_EQ(vnetOfSubnet(std::string(kVnet) + "/subnets/"), std::nullopt);
  EXPECT_EQ(vnetOfSubnet(std::string(kVnet) + "/subnets/a/b"), std::nullopt);
  EXPECT_EQ(vnetOfSubnet("/subnets/a"), std::nullopt);
}

TEST(SubnetUsage, ForeignIsTheUsageLessOursNeverBelowZero) {
  EXPECT_EQ(foreignAddresses(23, 16), 7);
  EXPECT_EQ(foreignAddresses(16, 16), 0);
  EXPECT_EQ(foreignAddresses(10, 16), 0) << "a block programmed after the usage was read";
  EXPECT_EQ(foreignAddresses(std::nullopt, 16), std::nullopt);
}

TEST(SubnetUsage, TheStoreSaysWhenAValueChangesAndIgnoresCase) {
  SubnetUsageStore store;
  EXPECT_EQ(store.used(kSubnetId), std::nullopt);
  EXPECT_TRUE(store.set(kSubnetId, 5));
  EXPECT_FALSE(store.set(kSubnetId, 5));
  EXPECT_EQ(store.used("/SUBSCRIPTIONS/s/resourceGroups/rg/providers/Microsoft.Network/"
                       "virtualNetworks/v/subnets/PODS"),
            5);
  EXPECT_TRUE(store.set(kSubnetId, std::nullopt));
  EXPECT_EQ(store.used(kSubnetId), std::nullopt);
}

azure::SubnetUsage usage(std::string id, std::optional<std::int64_t> used) {
  return {.subnetId = std::move(id), .used = used, .limit = 251};
}

TEST(SubnetUsagePoller, OneReadPerVnetAndUnknownWhereAzureDoesNotCount) {
  FakeCloud cloud;
  SubnetUsageStore store;
  const std::string nodes = std::string(kVnet) + "/subnets/nodes";
  const std::string gateway = std::string(kVnet) + "/subnets/GatewaySubnet";
  const std::string other = std::string(kOtherVnet) + "/subnets/pods";
  cloud.setUsages(kVnet, {usage(nodes, 9), usage(kSubnetId, 23), usage(gateway, std::nullopt)});
  cloud.setUsages(kOtherVnet, {});
  const auto prefixes = [](std::initializer_list<std::string_view> texts) {
    std::vector<ipam::Prefix> out;
    for (const std::string_view text : texts)
      out.push_back(*ipam::Prefix::parse(text));
    return out;
  };
  cloud.setSubnet(kSubnetId, prefixes({"10.0.0.0/24"}));
  cloud.setSubnet(gateway, prefixes({"10.0.255.0/27"}));
  cloud.setSubnet(other, prefixes({"10.1.0.0/24"}));
  std::vector<std::string> changed;
  SubnetUsagePoller poller(cloud, store,
                           {.subnetIds =
                                [&] {
                                  // Two PodSubnets may name one subnet, in another case too (the
                                  // controller refuses the second, but the poller need not know).
                                  return std::vector<std::string>{
                                      kSubnetId, gateway, other,
                                      "/subscriptions/s/resourceGroups/rg/providers/"
                                      "Microsoft.Network/virtualNetworks/v/subnets/PODS",
                                      "not-an-id"};
                                },
                            .changed = [&](const std::string& id) { changed.push_back(id); }},
                           std::chrono::seconds(300));
  EXPECT_TRUE(poller.pollOnce().empty());
  EXPECT_EQ(cloud.usageReads, (std::vector<std::string>{kVnet, kOtherVnet}));
  EXPECT_EQ(store.used(kSubnetId), 23);
  EXPECT_EQ(store.used(gateway), std::nullopt) << "-1 in Azure's answer: not counted";
  EXPECT_EQ(store.used(other), std::nullopt) << "a subnet the list does not name";
  EXPECT_EQ(store.used(nodes), std::nullopt) << "no PodSubnet is on it: not kept";
  EXPECT_EQ(changed, (std::vector<std::string>{kSubnetId, gateway, other}));

  // Nothing moved: nobody is told. Then the pod subnet's usage grows.
  changed.clear();
  EXPECT_TRUE(poller.pollOnce().empty());
  EXPECT_TRUE(changed.empty());
  cloud.setUsages(kVnet, {usage(kSubnetId, 30)});
  EXPECT_TRUE(poller.pollOnce().empty());
  EXPECT_EQ(store.used(kSubnetId), 30);
  EXPECT_EQ(changed, (std::vector<std::string>{kSubnetId}));

  // Each subnet is read for its prefixes too (one GET each); a prefix added to one is told.
  EXPECT_EQ(store.prefixes(kSubnetId)->prefixes, prefixes({"10.0.0.0/24"}));
  EXPECT_EQ(store.prefixes(nodes), std::nullopt);
  changed.clear();
  cloud.setSubnet(kSubnetId, prefixes({"10.0.0.0/24", "10.0.8.0/24"}));
  EXPECT_TRUE(poller.pollOnce().empty());
  EXPECT_EQ(store.prefixes(kSubnetId)->prefixes, prefixes({"10.0.0.0/24", "10.0.8.0/24"}));
  // A read that started before the one kept is dropped: it may show the subnet as it was.
  const std::uint64_t kept = store.prefixes(kSubnetId)->ticket;
  EXPECT_FALSE(store.setPrefixes(kSubnetId, prefixes({"10.0.0.0/24"}), kept - 1));
  EXPECT_EQ(store.prefixes(kSubnetId)->prefixes, prefixes({"10.0.0.0/24", "10.0.8.0/24"}));
  EXPECT_GT(store.beginRead(), kept);
  EXPECT_EQ(changed, (std::vector<std::string>{kSubnetId}));

  // A failed read keeps the last count and says which VNET failed.
  changed.clear();
  cloud.failUsages(azure::Error{.code = azure::ErrorCode::kForbidden,
                                .message = "AuthorizationFailed: no usages/read",
                                .httpStatus = 403,
                                .azureCode = "AuthorizationFailed"});
  const auto errors = poller.pollOnce();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find(kVnet), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("AuthorizationFailed"), std::string::npos) << errors[0];
  EXPECT_EQ(store.used(kSubnetId), 30);
  EXPECT_TRUE(changed.empty());
}

TEST(SubnetUsagePoller, PollsOnItsOwnThreadAtStartAndStops) {
  FakeCloud cloud;
  SubnetUsageStore store;
  cloud.setUsages(kVnet, {usage(kSubnetId, 4)});
  std::mutex mutex;
  std::condition_variable seen;
  bool changed = false;
  SubnetUsagePoller poller(cloud, store,
                           {.subnetIds = [] { return std::vector<std::string>{kSubnetId}; },
                            .changed =
                                [&](const std::string&) {
                                  std::lock_guard lock(mutex);
                                  changed = true;
                                  seen.notify_all();
                                }},
                           std::chrono::seconds(3600));
  poller.start();
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(seen.wait_for(lock, std::chrono::seconds(10), [&] { return changed; }));
  }
  poller.stop();  // returns although the next poll is an hour away
  EXPECT_EQ(store.used(kSubnetId), 4);
}

class SubnetUsageControllerTest : public ControllerFixture {
 protected:
  SubnetUsageControllerTest() : ControllerFixture(true) {}

  void SetUp() override {
    ControllerFixture::SetUp();
    // The same controller, with metrics to read the gauge from.
    ControllerConfig config;
    config.statusInterval = std::chrono::milliseconds(0);
    controller_ =
        std::make_unique<Controller>(client_, &cloud_, queue_, &events_, &metrics_, config, clock_);
    controller_->setWritable(true);
    controller_->setSubnetUsageStore(&store_);
  }

  std::optional<json> foreignInStatus() {
    auto subnet = api_.get(std::string(kPodSubnetsPath) + "/pods");
    if (!subnet) return std::nullopt;
    const json status = (*subnet).value("status", json::object());
    if (!status.contains("foreignAddresses")) return std::nullopt;
    return status["foreignAddresses"];
  }

  std::string gauges() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  ControllerMetrics metrics_{registry_};
  SubnetUsageStore store_;
};

TEST_F(SubnetUsageControllerTest, ForeignAddressesAreTheUsageLessTheBlocksOnNics) {
  cloud_.addNode(kVm, "nic-a");
  cloud_.setSubnet(kSubnetId, {*ipam::Prefix::parse("10.0.0.0/24")});
  addNode(nodeJson("a", kVm));
  addSubnet(subnetJson("pods", {{"azureSubnetID", kSubnetId}}));
  runUntilQuiet();
  const auto mine = blocksOf("a");
  ASSERT_EQ(mine.size(), 1u);
  ASSERT_EQ(api::ipBlockFromJson(mine[0])->status.phase, api::BlockPhase::kReady) << mine[0].dump();
  // Not read yet: no field, no series.
  EXPECT_EQ(foreignInStatus(), std::nullopt);
  EXPECT_EQ(gauges().find("vnetipam_podsubnet_foreign_addresses{"), std::string::npos);

  // Azure counts 23 addresses in the subnet: the node's /28 (16), the VM's own address and six
  // that other resources hold, say a private endpoint and a load balancer's frontend.
  cloud_.setUsages(kVnet, {{.subnetId = kSubnetId, .used = 23, .limit = 251}});
  SubnetUsagePoller poller(
      cloud_, store_,
      {.subnetIds = [this] { return controller_->azureSubnetIds(); },
       .changed = [this](const std::string& id) { controller_->subnetUsageChanged(id); }},
      std::chrono::seconds(300));
  EXPECT_TRUE(poller.pollOnce().empty());
  EXPECT_EQ(cloud_.usageReads, std::vector<std::string>{kVnet});
  runUntilQuiet();
  EXPECT_EQ(foreignInStatus(), json(7));
  EXPECT_NE(gauges().find("vnetipam_podsubnet_foreign_addresses{podsubnet=\"pods\"} 7"),
            std::string::npos)
      << gauges();

  // Another resource takes ten more: the next read says so.
  cloud_.setUsages(kVnet, {{.subnetId = kSubnetId, .used = 33, .limit = 251}});
  EXPECT_TRUE(poller.pollOnce().empty());
  runUntilQuiet();
  EXPECT_EQ(foreignInStatus(), json(17));

  // Azure stops counting the subnet: unknown again, the field and the series go.
  cloud_.setUsages(kVnet, {});
  EXPECT_TRUE(poller.pollOnce().empty());
  runUntilQuiet();
  EXPECT_EQ(foreignInStatus(), std::nullopt);
  EXPECT_EQ(gauges().find("vnetipam_podsubnet_foreign_addresses{"), std::string::npos);
}

TEST_F(SubnetUsageControllerTest, APodSubnetWithACidrHasNoForeignAddresses) {
  addSubnet(subnetJson("pods", {{"cidr", "10.1.0.0/24"}}));
  runUntilQuiet();
  EXPECT_TRUE(controller_->azureSubnetIds().empty()) << "nothing for the poller to read";
  EXPECT_EQ(foreignInStatus(), std::nullopt);
}

}  // namespace
}  // namespace vnetipam::controller::testing
