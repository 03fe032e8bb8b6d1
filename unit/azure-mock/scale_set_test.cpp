// Scale-set VMs in the mock, in both orchestration modes, as the published Microsoft.Compute
// API has them: a uniform scale set's VMs and NICs are read through Microsoft.Compute paths and
// cannot be written there (no PUT of the scale-set NIC; the scale-set VM's ipConfigurations have
// no prefix length), while a flexible scale set's VMs are ordinary VMs with ordinary NICs.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/azure-mock/conformance.h"

namespace vnetipam::azuremock {
namespace {

using nlohmann::json;
using testing::expectConforms;
using testing::expectError;
using testing::kRg;
using testing::MockFixture;
using testing::parsed;

json scaleSetTopology() {
  json doc = testing::exampleTopology();
  doc["virtualMachineScaleSets"] = json::parse(R"([
    {"name": "pool", "orchestrationMode": "Uniform"},
    {"name": "flex", "orchestrationMode": "Flexible"}])");
  doc["networkInterfaces"].push_back(json::parse(
      R"({"name": "pool-nic", "virtualMachineScaleSet": "pool", "instanceId": "3",
          "subnet": "rg1-vnet/default", "primaryIP": "172.20.2.30"})"));
  doc["networkInterfaces"].push_back(json::parse(
      R"({"name": "flex-nic", "subnet": "rg1-vnet/default", "primaryIP": "172.20.2.31"})"));
  doc["virtualMachines"].push_back(json::parse(
      R"({"virtualMachineScaleSet": "pool", "instanceId": "3", "networkInterfaces": ["pool-nic"]})"));
  doc["virtualMachines"].push_back(json::parse(
      R"({"name": "flex_a1b2", "virtualMachineScaleSet": "flex", "networkInterfaces": ["flex-nic"]})"));
  return doc;
}

struct ScaleSetFixture : MockFixture {
  ScaleSetFixture() {
    auto ok = state.load(scaleSetTopology());
    if (!ok) throw std::runtime_error(ok.error());
  }
};

const std::string kPoolVm =
    std::string(kRg) +
    "/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/3";
const std::string kPoolNic = kPoolVm + "/networkInterfaces/pool-nic";

TEST(ScaleSet, AUniformVmAndItsNicAreReadThroughCompute) {
  ScaleSetFixture m;
  auto vm = m.call("GET", kPoolVm + "?api-version=2023-09-01");
  expectConforms(vm, "VirtualMachineScaleSetVM");
  const json doc = parsed(vm);
  EXPECT_EQ(doc["name"], "pool_3");
  EXPECT_EQ(doc["instanceId"], "3");
  EXPECT_EQ(doc["type"], "Microsoft.Compute/virtualMachineScaleSets/virtualMachines");
  EXPECT_EQ(doc["properties"]["networkProfile"]["networkInterfaces"][0]["id"], kPoolNic);
  const json& config =
      doc["properties"]["networkProfileConfiguration"]["networkInterfaceConfigurations"][0];
  EXPECT_EQ(config["name"], "pool-nic");
  EXPECT_EQ(config["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"],
            testing::kSubnetId);

  // NetworkInterfaces_GetVirtualMachineScaleSetNetworkInterface, api-version 2017-03-30 (the
  // spec's enum) or 2018-10-01; the answer is the 2018-10-01 folder's NetworkInterface.
  for (const char* api : {"2017-03-30", "2018-10-01"}) {
    auto nic = m.call("GET", kPoolNic + "?api-version=" + api);
    expectConforms(nic, "NetworkInterface@2018-10-01");
    EXPECT_EQ(parsed(nic)["id"], kPoolNic);
    EXPECT_EQ(parsed(nic)["properties"]["virtualMachine"]["id"], kPoolVm);
    EXPECT_EQ(parsed(nic)["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
              "172.20.2.30");
  }
  expectConforms(m.call("GET", kPoolVm + "/networkInterfaces?api-version=2017-03-30"),
                 "NetworkInterfaceListResult@2018-10-01");
  // Its address is taken in the subnet like any NIC's.
  const json usage = parsed(m.call(
      "GET",
      std::string(kRg) +
          "/providers/Microsoft.Network/virtualNetworks/rg1-vnet/usages?api-version=2024-05-01"));
  EXPECT_EQ(usage["value"][0]["currentValue"], 4.0) << usage;  // 2 NICs + pool-nic + flex-nic
}

// The scale-set NIC reads answer with the 2018-10-01 definitions (vmssNetworkInterface.json
// refers to that folder's networkInterface.json), which have no nicType on the NIC and no type
// or privateIPAddressPrefixLength on an ipConfiguration: none of them comes back, through the GET
// or the list, at either api-version.
TEST(ScaleSet, AUniformVmsNicIsReadInThe2018Shape) {
  ScaleSetFixture m;
  const auto expectOldShape = [](const json& nic) {
    ASSERT_TRUE(nic.contains("properties")) << nic;
    EXPECT_FALSE(nic["properties"].contains("nicType")) << nic;
    ASSERT_FALSE(nic["properties"]["ipConfigurations"].empty()) << nic;
    for (const auto& config : nic["properties"]["ipConfigurations"]) {
      EXPECT_FALSE(config.contains("type")) << config;
      EXPECT_FALSE(config["properties"].contains("privateIPAddressPrefixLength")) << config;
    }
  };
  for (const char* api : {"2017-03-30", "2018-10-01"}) {
    SCOPED_TRACE(api);
    const auto get = m.call("GET", kPoolNic + "?api-version=" + api);
    expectConforms(get, "NetworkInterface@2018-10-01");
    expectOldShape(parsed(get));
    const auto list = m.call("GET", kPoolVm + "/networkInterfaces?api-version=" + api);
    expectConforms(list, "NetworkInterfaceListResult@2018-10-01");
    const json value = parsed(list)["value"];
    ASSERT_EQ(value.size(), 1u) << value;
    EXPECT_EQ(value[0]["id"], kPoolNic);
    expectOldShape(value[0]);
    EXPECT_EQ(value[0], parsed(get));
  }
  // An ordinary NIC of the same mock keeps the 2024-05-01 shape, nicType and type included.
  const auto ordinary = m.getNic();
  expectConforms(ordinary, "NetworkInterface");
  const json nic = parsed(ordinary);
  EXPECT_EQ(nic["properties"]["nicType"], "Standard");
  EXPECT_EQ(nic["properties"]["ipConfigurations"][0]["type"],
            "Microsoft.Network/networkInterfaces/ipConfigurations");
}

// The 2018-10-01 facts themselves: a NIC in the 2024-05-01 shape (the mock's ordinary NIC) is
// not a 2018-10-01 NetworkInterface, and exactly for the fields that version lacks; so the
// checks above would fail if a scale-set NIC came back with nicType or an ipConfiguration type.
TEST(ScaleSet, The2018DefinitionsRefuseTheNewerFields) {
  // The scale-set NIC operations' answers are defined next to them, in the same folder.
  const std::string_view vmss = azure::testing::kVmssNicSpec;
  const std::string folder(vmss.substr(0, vmss.rfind('/') + 1));
  for (const char* name : {"NetworkInterface@2018-10-01", "NetworkInterfaceListResult@2018-10-01",
                           "NetworkInterfaceIPConfiguration@2018-10-01"})
    EXPECT_EQ(azure::testing::armSchema().at(name).file, folder + "networkInterface.json") << name;

  ScaleSetFixture m;
  json nic = parsed(m.getNic());
  ASSERT_TRUE(nic["properties"].contains("nicType")) << nic;
  const auto problems = azure::testing::schemaProblems(nic, "NetworkInterface@2018-10-01");
  const auto names = [&] {
    std::vector<std::string> out;
    for (const auto& p : problems)
      out.push_back(p.substr(0, p.find(':')));
    std::ranges::sort(out);
    return out;
  }();
  EXPECT_EQ(names, (std::vector<std::string>{"$.properties.ipConfigurations[0].type",
                                             "$.properties.nicType"}))
      << ::testing::PrintToString(problems);
  // Without them it conforms.
  nic["properties"].erase("nicType");
  nic["properties"]["ipConfigurations"][0].erase("type");
  EXPECT_TRUE(azure::testing::schemaProblems(nic, "NetworkInterface@2018-10-01").empty());
  // A prefix configuration's length has no place in that version either.
  json config = nic["properties"]["ipConfigurations"][0];
  config["properties"]["privateIPAddressPrefixLength"] = 28;
  EXPECT_EQ(
      azure::testing::schemaProblems(config, "NetworkInterfaceIPConfiguration@2018-10-01").size(),
      1u);
  EXPECT_TRUE(azure::testing::schemaProblems(config, "NetworkInterfaceIPConfiguration").empty());
}

// A scale-set NIC a topology gives a prefix configuration: the 2018-10-01 shape has no
// privateIPAddressPrefixLength, so the prefix stays in CIDR form in privateIPAddress.
TEST(ScaleSet, AScaleSetNicsPrefixHasNoLengthField) {
  MockFixture m;
  json doc = scaleSetTopology();
  for (auto& nic : doc["networkInterfaces"]) {
    if (nic["name"] != "pool-nic") continue;
    nic.erase("primaryIP");
    nic.erase("subnet");
    nic["ipConfigurations"] = json::parse(R"([
      {"name": "ipconfig1", "primary": true, "subnet": "rg1-vnet/default",
       "privateIPAddress": "172.20.2.30"},
      {"name": "vnetipam-172-20-2-64-28", "subnet": "rg1-vnet/default",
       "privateIPAddress": "172.20.2.64/28"}])");
  }
  auto ok = m.state.load(doc);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  const auto get = m.call("GET", kPoolNic + "?api-version=2018-10-01");
  expectConforms(get, "NetworkInterface@2018-10-01");
  const json configs = parsed(get)["properties"]["ipConfigurations"];
  ASSERT_EQ(configs.size(), 2u) << configs;
  EXPECT_EQ(configs[1]["properties"]["privateIPAddress"], "172.20.2.64/28");
  EXPECT_EQ(configs[1]["properties"]["privateIPAddressVersion"], "IPv4");
  EXPECT_FALSE(configs[1]["properties"].contains("privateIPAddressPrefixLength"));
}

TEST(ScaleSet, AUniformVmsNicCannotBeWritten) {
  ScaleSetFixture m;
  // The published API has GETs only for scale-set NICs.
  for (const char* method : {"PUT", "DELETE", "PATCH"}) {
    auto r = m.call(method, kPoolNic + "?api-version=2017-03-30", "{}");
    EXPECT_EQ(r.status, 405) << method << r.body;
    EXPECT_EQ(r.header("Allow"), "GET");
  }
  // Nor through its scale-set VM: this mock serves no writes of Microsoft.Compute resources, and
  // the spec's VM ipConfigurations could not carry a prefix anyway (wire_test).
  EXPECT_EQ(m.call("PUT", kPoolVm + "?api-version=2023-09-01", "{}").status, 405);
  // It is not a Microsoft.Network NIC: not listed with them, not at their path.
  const json list = parsed(m.call(
      "GET",
      std::string(kRg) + "/providers/Microsoft.Network/networkInterfaces?api-version=2024-05-01"));
  for (const auto& nic : list["value"])
    EXPECT_NE(nic["name"], "pool-nic");
  EXPECT_EQ(m.getNic("pool-nic").status, 404);
}

TEST(ScaleSet, ScaleSetNicApiVersions) {
  ScaleSetFixture m;
  auto r = m.call("GET", kPoolNic + "?api-version=2024-05-01");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(parsed(r)["error"]["code"], "NoRegisteredProviderFound");
  EXPECT_EQ(parsed(r)["error"]["message"],
            "No registered resource provider found for location 'eastus' and API version "
            "'2024-05-01' for type 'virtualMachineScaleSets/virtualMachines/networkInterfaces'. "
            "The supported api-versions are '2017-03-30,2018-10-01'.");
  EXPECT_EQ(parsed(m.call("GET", kPoolVm + "?api-version=2024-05-01"))["error"]["code"],
            "NoRegisteredProviderFound");
}

TEST(ScaleSet, MissingScaleSetMembersAre404) {
  ScaleSetFixture m;
  const std::string base =
      std::string(kRg) + "/providers/Microsoft.Compute/virtualMachineScaleSets/";
  // Microsoft.Compute's routes: Compute's common.json CloudError (ComputeCloudError here).
  for (const std::string& path : {base + "nope/virtualMachines/3?api-version=2023-09-01",
                                  base + "pool/virtualMachines/9?api-version=2023-09-01",
                                  // A flexible scale set has no child VMs.
                                  base + "flex/virtualMachines/0?api-version=2023-09-01"}) {
    SCOPED_TRACE(path);
    expectError(m.call("GET", path), "ComputeCloudError", 404, "ResourceNotFound");
  }
  auto nic = m.call("GET", kPoolVm + "/networkInterfaces/other?api-version=2017-03-30");
  EXPECT_EQ(nic.status, 404);
  EXPECT_EQ(parsed(nic)["error"]["code"], "ResourceNotFound");
  // A uniform VM is not a Microsoft.Compute/virtualMachines resource.
  EXPECT_EQ(m.call("GET",
                   std::string(kRg) +
                       "/providers/Microsoft.Compute/virtualMachines/pool_3?api-version=2023-09-01")
                .status,
            404);
}

// The scale-set VM route is Microsoft.Compute's (VirtualMachineScaleSetVMs_Get): what it refuses
// follows Compute's common.json CloudError (ComputeCloudError here), as its 404s do above.
TEST(ScaleSet, ScaleSetVmErrorsAreComputesCloudErrors) {
  ScaleSetFixture m;
  testing::expectComputeRefusals(m, kPoolVm, "2023-9-1");
}

TEST(ScaleSet, AFlexibleVmIsAnOrdinaryVmThatNamesItsScaleSet) {
  ScaleSetFixture m;
  auto vm = m.call(
      "GET", std::string(kRg) +
                 "/providers/Microsoft.Compute/virtualMachines/flex_a1b2?api-version=2023-09-01");
  expectConforms(vm, "VirtualMachine");
  EXPECT_EQ(parsed(vm)["properties"]["virtualMachineScaleSet"]["id"],
            std::string(kRg) + "/providers/Microsoft.Compute/virtualMachineScaleSets/flex");
  // Its NIC takes a prefix like any other.
  json body = testing::nicBody({testing::prefixConfig("p", "172.20.2.48/28")});
  body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "172.20.2.31";
  auto put = m.putNic(body, {}, "flex-nic");
  EXPECT_EQ(put.status, 200) << put.body;
}

TEST(ScaleSet, TheStateDocumentKeepsBothModes) {
  ScaleSetFixture m;
  const json saved = m.state.toJson();
  ScaleSetFixture again;
  ASSERT_TRUE(again.state.load(saved).has_value());
  EXPECT_EQ(again.state.toJson(), saved);
  EXPECT_NE(again.state.findNic(kPoolNic), nullptr);
  const auto* vm = again.state.findVirtualMachine(kPoolVm);
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->instanceId, "3");
  ASSERT_NE(again.state.findScaleSet(std::string(kRg) +
                                     "/providers/Microsoft.Compute/virtualMachineScaleSets/flex"),
            nullptr);
}

TEST(ScaleSet, BadTopologiesAreRefused) {
  MockFixture m;
  const auto refused = [&](const char* set, const char* vm) {
    json doc = testing::exampleTopology();
    doc["virtualMachineScaleSets"] = json::parse(set);
    doc["virtualMachines"].push_back(json::parse(vm));
    auto ok = m.state.load(doc);
    return ok ? std::string() : ok.error();
  };
  EXPECT_NE(refused(R"([{"name": "p", "orchestrationMode": "Manual"}])",
                    R"({"name": "x", "networkInterfaces": []})")
                .find("orchestrationMode"),
            std::string::npos);
  EXPECT_NE(refused(R"([{"name": "p", "orchestrationMode": "Uniform"}])",
                    R"({"virtualMachineScaleSet": "p", "networkInterfaces": []})")
                .find("needs an instanceId"),
            std::string::npos);
  EXPECT_NE(refused(R"([{"name": "p", "orchestrationMode": "Flexible"}])",
                    R"({"name": "x", "virtualMachineScaleSet": "p", "instanceId": "0",
                        "networkInterfaces": []})")
                .find("has no instanceId"),
            std::string::npos);
  EXPECT_NE(
      refused(R"([])", R"({"name": "x", "virtualMachineScaleSet": "q", "networkInterfaces": []})")
          .find("not in the topology"),
      std::string::npos);
}

}  // namespace
}  // namespace vnetipam::azuremock
