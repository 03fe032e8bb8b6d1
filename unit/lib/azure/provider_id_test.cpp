#include "lib/azure/provider_id.h"

#include <gtest/gtest.h>

namespace vnetipam::azure {
namespace {

constexpr std::string_view kVm =
    "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/"
    "node-1";
constexpr std::string_view kUniform =
    "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
    "virtualMachineScaleSets/pool/virtualMachines/17";

TEST(ParseProviderIdTest, AStandaloneOrFlexibleVm) {
  auto ref = parseProviderId(kVm);
  ASSERT_TRUE(ref.has_value()) << ref.error().message;
  EXPECT_EQ(ref->kind, AzureVmRef::Kind::kVirtualMachine);
  EXPECT_FALSE(ref->uniformScaleSet());
  EXPECT_EQ(ref->subscriptionId, "sub");
  EXPECT_EQ(ref->resourceGroup, "rg");
  EXPECT_EQ(ref->name, "node-1");
  EXPECT_EQ(ref->instanceId, "");
  EXPECT_EQ(ref->resourceId(), kVm.substr(8));
}

TEST(ParseProviderIdTest, AUniformScaleSetVm) {
  auto ref = parseProviderId(kUniform);
  ASSERT_TRUE(ref.has_value()) << ref.error().message;
  EXPECT_TRUE(ref->uniformScaleSet());
  EXPECT_EQ(ref->name, "pool");
  EXPECT_EQ(ref->instanceId, "17");
  EXPECT_EQ(ref->resourceId(), kUniform.substr(8));
}

TEST(ParseProviderIdTest, KeywordsAreCaseInsensitiveNamesKeptAsWritten) {
  // The cloud provider writes the resource group lower-cased on some clusters.
  auto ref = parseProviderId(
      "azure:///subscriptions/SUB/resourcegroups/MC_rg/providers/microsoft.compute/"
      "VIRTUALMACHINESCALESETS/Pool/VirtualMachines/0");
  ASSERT_TRUE(ref.has_value()) << ref.error().message;
  EXPECT_EQ(ref->resourceGroup, "MC_rg");
  EXPECT_EQ(ref->name, "Pool");
  EXPECT_EQ(ref->instanceId, "0");
}

TEST(ParseProviderIdTest, RefusesEverythingElse) {
  for (std::string_view bad : {
           "",
           "aws:///us-east-1a/i-123",
           "azure://subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/n",  // no leading / after the scheme
           "azure:///subscriptions/sub/resourceGroups/rg",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/a/extra",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/"
           "virtualMachines/a",
           "azure:///subscriptions/sub/resourceGroups//providers/Microsoft.Compute/"
           "virtualMachines/a",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/a?api-version=1",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/a%2Fb",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/..",
           "azure:///subscriptions/sub/resourceGroups/./providers/Microsoft.Compute/"
           "virtualMachines/a",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachines/a b",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachineScaleSets/pool/virtualMachines/abc",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachineScaleSets/pool/virtualMachines/",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachineScaleSets/pool",
           "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/"
           "virtualMachineScaleSets/pool/virtualMachines/0/networkInterfaces/nic",
       }) {
    auto ref = parseProviderId(bad);
    ASSERT_FALSE(ref.has_value()) << bad;
    EXPECT_EQ(ref.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(ref.error().message.find("does not name an Azure VM"), std::string::npos);
  }
}

}  // namespace
}  // namespace vnetipam::azure
