#include "api/codec.h"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vnetipam::api {
namespace {

using nlohmann::json;

// An IPBlock as the API server returns it, with fields this version does not know at every level.
json fullIPBlock() {
  return json::parse(R"({
    "apiVersion": "vnetipam.io/v1alpha1",
    "kind": "IPBlock",
    "futureTopLevel": {"a": 1},
    "metadata": {
      "name": "pods-10-240-0-16-28",
      "uid": "6f1c2a8e-0000-4000-8000-000000000001",
      "resourceVersion": "12345",
      "generation": 2,
      "creationTimestamp": "2025-01-02T03:04:05Z",
      "deletionTimestamp": "2025-01-03T03:04:05Z",
      "labels": {"vnetipam.io/node": "node-1", "vnetipam.io/subnet": "pods"},
      "annotations": {"note": "x"},
      "finalizers": ["vnetipam.io/nic-release"],
      "ownerReferences": [{"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
                           "name": "pods", "uid": "u-1", "controller": true}],
      "managedFields": [{"manager": "vnet-ipam-controller", "operation": "Apply",
                         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
    },
    "spec": {"podSubnet": "pods", "cidr": "10.240.0.16/28", "nodeName": "node-1",
             "futureSpecField": ["x"]},
    "status": {
      "phase": "Ready", "used": 2, "capacity": 16,
      "allocations": [
        {"address": "10.240.0.17", "containerID": "c1", "ifName": "eth0",
         "podNamespace": "default", "podName": "web-0", "podUID": "u-web-0",
         "futureAllocationField": {"z": 1}},
        {"address": "10.240.0.18", "containerID": "c2", "ifName": "eth0",
         "podNamespace": "default", "podName": "web-1", "network": "net-b"}],
      "nic": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n",
              "ipConfiguration": "vnetipam-1", "futureNicField": true},
      "conditions": [{"type": "Programmed", "status": "True", "reason": "NicUpdated",
                      "message": "on the NIC", "lastTransitionTime": "2025-01-02T03:04:06Z",
                      "observedGeneration": 2, "futureConditionField": "y"}],
      "lastTransitionTime": "2025-01-02T03:04:07Z",
      "futureStatusField": 7
    }
  })");
}

json fullPodSubnet() {
  return json::parse(R"({
    "apiVersion": "vnetipam.io/v1alpha1",
    "kind": "PodSubnet",
    "metadata": {"name": "pods", "uid": "u-1", "resourceVersion": "7", "generation": 1,
                 "creationTimestamp": "2025-01-02T03:04:05Z",
                 "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
    "spec": {"cidr": "10.240.0.0/16", "blockPrefixLength": 27,
             "nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"},
                              "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["a", "b"],
                                 "futureRequirementField": 1},
                                {"key": "spot", "operator": "DoesNotExist"}],
                              "futureSelectorField": "z"},
             "minFreeIPsPerNode": 4,
             "maxBlocksPerNode": 8, "releaseDelaySeconds": 60,
             "reservedCIDRs": ["10.240.0.0/28"], "futureSpecField": {"b": 2}},
    "status": {"cidr": "10.240.0.0/16", "cidrs": ["10.240.0.0/16", "10.250.0.0/24"],
               "totalBlocks": 2048, "allocatedBlocks": 3,
               "allocatedIPs": 20, "foreignAddresses": 7,
               "conditions": [{"type": "Ready", "status": "True", "reason": "Carving",
                               "message": "", "lastTransitionTime": "2025-01-02T03:04:05Z"}],
               "futureStatusField": null}
  })");
}

TEST(CodecTest, IPBlockRoundTripKeepsEveryField) {
  const json j = fullIPBlock();
  auto block = ipBlockFromJson(j);
  ASSERT_TRUE(block) << block.error().message;
  EXPECT_EQ(toJson(*block), j);

  EXPECT_EQ(block->metadata.name, "pods-10-240-0-16-28");
  EXPECT_EQ(block->metadata.uid, "6f1c2a8e-0000-4000-8000-000000000001");
  EXPECT_EQ(block->metadata.resourceVersion, "12345");
  EXPECT_EQ(block->metadata.generation, 2);
  EXPECT_EQ(block->metadata.labels.at("vnetipam.io/node"), "node-1");
  EXPECT_EQ(block->metadata.annotations.at("note"), "x");
  EXPECT_EQ(block->metadata.finalizers, std::vector<std::string>{"vnetipam.io/nic-release"});
  EXPECT_EQ(block->metadata.creationTimestamp, "2025-01-02T03:04:05Z");
  EXPECT_EQ(block->metadata.deletionTimestamp, "2025-01-03T03:04:05Z");
  EXPECT_EQ(block->spec.podSubnet, "pods");
  EXPECT_EQ(block->spec.cidr, "10.240.0.16/28");
  EXPECT_EQ(block->spec.nodeName, "node-1");
  EXPECT_EQ(block->status.phase, BlockPhase::kReady);
  EXPECT_EQ(block->status.used, 2);
  ASSERT_EQ(block->status.allocations.size(), 2u);
  EXPECT_EQ(block->status.allocations[0],
            (IPAllocation{.address = "10.240.0.17",
                          .owner = {.containerID = "c1", .ifName = "eth0"},
                          .podNamespace = "default",
                          .podName = "web-0",
                          .podUID = "u-web-0",
                          .extra = {{"futureAllocationField", {{"z", 1}}}}}));
  EXPECT_EQ(block->status.allocations[1].podUID, "");
  EXPECT_EQ(block->status.allocations[0].network, "") << "absent: not named";
  EXPECT_EQ(block->status.allocations[1].network, "net-b");
  EXPECT_EQ(block->status.capacity, 16);
  ASSERT_TRUE(block->status.nic.has_value());
  EXPECT_EQ(block->status.nic->ipConfiguration, "vnetipam-1");
  ASSERT_EQ(block->status.conditions.size(), 1u);
  EXPECT_EQ(block->status.conditions[0].reason, "NicUpdated");
  EXPECT_EQ(block->status.conditions[0].observedGeneration, 2);
  EXPECT_EQ(block->status.lastTransitionTime, "2025-01-02T03:04:07Z");
  // Unknown fields land in the extra of their own level.
  EXPECT_EQ(block->extra, json({{"futureTopLevel", {{"a", 1}}}}));
  EXPECT_EQ(block->spec.extra, json({{"futureSpecField", {"x"}}}));
  EXPECT_EQ(block->status.extra, json({{"futureStatusField", 7}}));
  EXPECT_EQ(block->status.nic->extra, json({{"futureNicField", true}}));
  EXPECT_EQ(block->status.conditions[0].extra, json({{"futureConditionField", "y"}}));
}

TEST(CodecTest, PodSubnetRoundTripKeepsEveryField) {
  const json j = fullPodSubnet();
  auto subnet = podSubnetFromJson(j);
  ASSERT_TRUE(subnet) << subnet.error().message;
  EXPECT_EQ(toJson(*subnet), j);
  EXPECT_EQ(subnet->spec.cidr, "10.240.0.0/16");
  EXPECT_FALSE(subnet->spec.azureSubnetID.has_value());
  EXPECT_EQ(subnet->spec.blockPrefixLength, 27);
  ASSERT_TRUE(subnet->spec.nodeSelector.has_value());
  const LabelSelector& sel = *subnet->spec.nodeSelector;
  EXPECT_EQ(sel.matchLabels.at("kubernetes.io/os"), "linux");
  ASSERT_EQ(sel.matchExpressions.size(), 2u);
  EXPECT_EQ(sel.matchExpressions[0].key, "pool");
  EXPECT_EQ(sel.matchExpressions[0].op, "In");
  EXPECT_EQ(sel.matchExpressions[0].values, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sel.matchExpressions[0].extra, json({{"futureRequirementField", 1}}));
  EXPECT_EQ(sel.matchExpressions[1].op, "DoesNotExist");
  EXPECT_TRUE(sel.matchExpressions[1].values.empty());
  EXPECT_EQ(sel.extra, json({{"futureSelectorField", "z"}}));
  EXPECT_EQ(subnet->spec.minFreeIPsPerNode, 4);
  EXPECT_EQ(subnet->spec.maxBlocksPerNode, 8);
  EXPECT_EQ(subnet->spec.releaseDelaySeconds, 60);
  EXPECT_EQ(subnet->spec.reservedCIDRs, std::vector<std::string>{"10.240.0.0/28"});
  EXPECT_EQ(subnet->status.totalBlocks, 2048);
  EXPECT_EQ(subnet->status.allocatedBlocks, 3);
  EXPECT_EQ(subnet->status.allocatedIPs, 20);
  EXPECT_EQ(subnet->status.foreignAddresses, 7);
  EXPECT_EQ(subnet->status.cidrs, (std::vector<std::string>{"10.240.0.0/16", "10.250.0.0/24"}));
  EXPECT_EQ(subnet->status.conditions.at(0).type, "Ready");
  EXPECT_EQ(subnet->metadata.raw.at("managedFields"), j["metadata"]["managedFields"]);
}

TEST(CodecTest, ForeignAddressesAreWrittenOnlyWhenKnown) {
  PodSubnetStatus status{.cidr = "10.240.0.0/16", .totalBlocks = 1};
  EXPECT_FALSE(toJson(status).contains("foreignAddresses"));
  EXPECT_FALSE(toJson(status).contains("cidrs")) << "not carved: no ranges";
  status.foreignAddresses = 0;  // known and zero is not absent
  EXPECT_EQ(toJson(status).at("foreignAddresses"), 0);
  auto subnet = podSubnetFromJson(
      json::parse(R"({"metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/24"}, "status": {}})"));
  ASSERT_TRUE(subnet);
  EXPECT_EQ(subnet->status.foreignAddresses, std::nullopt);
}

TEST(CodecTest, ReadModifyWriteKeepsUnknownFieldsAndMetadata) {
  auto block = ipBlockFromJson(fullIPBlock());
  ASSERT_TRUE(block);
  block->status.used = 9;
  block->status.phase = BlockPhase::kReleasing;
  block->metadata.labels.erase("vnetipam.io/subnet");
  block->metadata.finalizers.clear();
  block->metadata.deletionTimestamp.reset();

  json expected = fullIPBlock();
  expected["status"]["used"] = 9;
  expected["status"]["phase"] = "Releasing";
  expected["metadata"]["labels"].erase("vnetipam.io/subnet");
  expected["metadata"].erase("finalizers");
  expected["metadata"].erase("deletionTimestamp");
  EXPECT_EQ(toJson(*block), expected);
}

// The map form of nodeSelector before it was a label selector: its keys are unknown fields of
// the selector, kept (and written back) but never read as requirements; validate() refuses a
// selector without requirements.
TEST(CodecTest, TheOldMapFormOfNodeSelectorHasNoRequirements) {
  const json j = json::parse(R"({"apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet",
      "metadata": {"name": "pods"},
      "spec": {"cidr": "10.240.0.0/16", "blockPrefixLength": 28, "minFreeIPsPerNode": 8,
               "maxBlocksPerNode": 16, "releaseDelaySeconds": 300,
               "nodeSelector": {"zone": "a"}}})");
  auto subnet = podSubnetFromJson(j);
  ASSERT_TRUE(subnet) << subnet.error().message;
  ASSERT_TRUE(subnet->spec.nodeSelector.has_value());
  EXPECT_TRUE(subnet->spec.nodeSelector->matchLabels.empty());
  EXPECT_TRUE(subnet->spec.nodeSelector->matchExpressions.empty());
  EXPECT_EQ(subnet->spec.nodeSelector->extra, json({{"zone", "a"}}));
  EXPECT_EQ(toJson(*subnet), j);
}

TEST(CodecTest, AbsentFieldsTakeTheCrdDefaults) {
  auto subnet = podSubnetFromJson(json::parse(R"({"metadata": {"name": "pods"},
                                                  "spec": {"cidr": "10.240.0.0/16"}})"));
  ASSERT_TRUE(subnet) << subnet.error().message;
  EXPECT_EQ(subnet->spec.blockPrefixLength, kDefaultBlockPrefixLength);
  EXPECT_EQ(subnet->spec.blockPrefixLength, 28);
  EXPECT_EQ(subnet->spec.minFreeIPsPerNode, 8);
  EXPECT_EQ(subnet->spec.maxBlocksPerNode, 16);
  EXPECT_EQ(subnet->spec.releaseDelaySeconds, 300);
  EXPECT_FALSE(subnet->spec.nodeSelector.has_value());
  EXPECT_TRUE(subnet->spec.reservedCIDRs.empty());
  EXPECT_EQ(subnet->status, PodSubnetStatus{});

  // The encoder writes the defaults, as the API server stores them, and no empty status.
  EXPECT_EQ(toJson(*subnet), json::parse(R"({
    "apiVersion": "vnetipam.io/v1alpha1", "kind": "PodSubnet", "metadata": {"name": "pods"},
    "spec": {"cidr": "10.240.0.0/16", "blockPrefixLength": 28, "minFreeIPsPerNode": 8,
             "maxBlocksPerNode": 16, "releaseDelaySeconds": 300}})"));
}

TEST(CodecTest, NullIsTheSameAsAbsent) {
  auto subnet = podSubnetFromJson(json::parse(R"({"metadata": {"name": "pods", "labels": null},
      "spec": {"cidr": "10.240.0.0/16", "azureSubnetID": null, "blockPrefixLength": null},
      "status": null})"));
  ASSERT_TRUE(subnet) << subnet.error().message;
  EXPECT_FALSE(subnet->spec.azureSubnetID.has_value());
  EXPECT_EQ(subnet->spec.blockPrefixLength, 28);
  EXPECT_TRUE(subnet->metadata.labels.empty());
}

TEST(CodecTest, NewBlockHasPendingPhaseAndNoStatusOnTheWire) {
  auto block = ipBlockFromJson(json::parse(R"({"metadata": {"name": "b"},
      "spec": {"podSubnet": "pods", "cidr": "10.240.0.16/28", "nodeName": "n"}})"));
  ASSERT_TRUE(block) << block.error().message;
  EXPECT_EQ(block->status.phase, BlockPhase::kPending);
  EXPECT_FALSE(toJson(*block).contains("status"));

  auto started = ipBlockFromJson(json::parse(R"({"spec": {}, "status": {"used": 1}})"));
  ASSERT_TRUE(started);
  EXPECT_EQ(started->status.phase, BlockPhase::kPending);
  EXPECT_EQ(toJson(*started)["status"],
            json::parse(R"({"phase": "Pending", "used": 1, "capacity": 0})"));
}

TEST(CodecTest, EncoderWritesApiVersionAndKind) {
  IPBlock block;
  block.metadata.name = "pods-10-240-0-16-28";
  block.spec = {.podSubnet = "pods", .cidr = "10.240.0.16/28", .nodeName = "n"};
  const json j = toJson(block);
  EXPECT_EQ(j["apiVersion"], "vnetipam.io/v1alpha1");
  EXPECT_EQ(j["kind"], "IPBlock");
  EXPECT_EQ(j["metadata"], json({{"name", "pods-10-240-0-16-28"}}));
  EXPECT_EQ(toJson(PodSubnet{})["kind"], "PodSubnet");
}

TEST(CodecTest, BlockPhaseNamesRoundTrip) {
  for (BlockPhase p : {BlockPhase::kPending, BlockPhase::kProgrammed, BlockPhase::kReady,
                       BlockPhase::kReleasing}) {
    EXPECT_EQ(parseBlockPhase(toString(p)), p);
  }
  EXPECT_EQ(toString(BlockPhase::kProgrammed), "Programmed");
  EXPECT_FALSE(parseBlockPhase("ready").has_value());
  EXPECT_FALSE(parseBlockPhase("").has_value());
}

TEST(CodecTest, ObjectMetaAlone) {
  auto meta = objectMetaFromJson(json::parse(R"({"name": "x", "namespace": "ignored",
                                                 "labels": {"a": "b"}})"));
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->name, "x");
  meta->labels.clear();
  meta->name = "y";
  EXPECT_EQ(toJson(*meta), json::parse(R"({"name": "y", "namespace": "ignored"})"));

  auto bad = objectMetaFromJson(json::array());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "metadata: expected an object, got array");
}

// Each decode error names the object and the JSON path of the offending field.
struct DecodeErrorCase {
  const char* json;
  const char* message;
};

class IPBlockDecodeErrorTest : public ::testing::TestWithParam<DecodeErrorCase> {};

TEST_P(IPBlockDecodeErrorTest, NamesObjectAndPath) {
  auto block = ipBlockFromJson(json::parse(GetParam().json));
  ASSERT_FALSE(block) << GetParam().json;
  EXPECT_EQ(block.error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(block.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Paths, IPBlockDecodeErrorTest,
    ::testing::Values(
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "spec": {"cidr": 5}})",
                        R"(IPBlock "x": spec.cidr: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "spec": []})",
                        R"(IPBlock "x": spec: expected an object, got array)"},
        DecodeErrorCase{R"({"spec": {"nodeName": true}})",
                        R"(IPBlock (no name): spec.nodeName: expected a string, got boolean)"},
        DecodeErrorCase{R"({"metadata": {"name": "x", "labels": {"k": 1}}})",
                        R"(IPBlock "x": metadata.labels[k]: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x", "finalizers": "f"}})",
                        R"(IPBlock "x": metadata.finalizers: expected an array, got string)"},
        DecodeErrorCase{R"({"metadata": {"name": "x", "finalizers": ["f", 2]}})",
                        R"(IPBlock "x": metadata.finalizers[1]: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x", "generation": "2"}})",
                        R"(IPBlock "x": metadata.generation: expected an integer, got string)"},
        DecodeErrorCase{R"({"metadata": "x"})",
                        R"(IPBlock (no name): metadata: expected an object, got string)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"allocations": {}}})",
                        R"(IPBlock "x": status.allocations: expected an array, got object)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "x"}, "status": {"allocations": [{"address": "a"}, 3]}})",
            R"(IPBlock "x": status.allocations[1]: expected an object, got number)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "x"}, "status": {"allocations": [{"ifName": 0}]}})",
            R"(IPBlock "x": status.allocations[0].ifName: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"used": 1.5}})",
                        R"(IPBlock "x": status.used: expected an integer, got number)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "x"}, "status": {"used": 18446744073709551615}})",
            R"(IPBlock "x": status.used: 18446744073709551615 is out of range for a 64-bit integer)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "x"}, "status": {"phase": "Done"}})",
            R"(IPBlock "x": status.phase: unknown phase "Done": expected one of Pending, Programmed, Ready, Releasing)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"phase": 1}})",
                        R"(IPBlock "x": status.phase: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"nic": {"id": 1}}})",
                        R"(IPBlock "x": status.nic.id: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"nic": "n"}})",
                        R"(IPBlock "x": status.nic: expected an object, got string)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"conditions": {}}})",
                        R"(IPBlock "x": status.conditions: expected an array, got object)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "x"}, "status": {"conditions": [{"type": "A"}, {"type": 2}]}})",
            R"(IPBlock "x": status.conditions[1].type: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "x"}, "status": {"conditions": [null]}})",
                        R"(IPBlock "x": status.conditions[0]: expected an object, got null)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "x"}, "status": {"conditions": [{"observedGeneration": "1"}]}})",
            R"(IPBlock "x": status.conditions[0].observedGeneration: expected an integer, got string)"},
        DecodeErrorCase{R"({"apiVersion": "v1", "metadata": {"name": "x"}})",
                        R"(IPBlock "x": apiVersion: expected "vnetipam.io/v1alpha1", got "v1")"},
        DecodeErrorCase{R"({"kind": "PodSubnet", "metadata": {"name": "x"}})",
                        R"(IPBlock "x": kind: expected "IPBlock", got "PodSubnet")"},
        DecodeErrorCase{R"([1])",
                        R"(IPBlock (no name): (top level): expected an object, got array)"}));

class PodSubnetDecodeErrorTest : public ::testing::TestWithParam<DecodeErrorCase> {};

TEST_P(PodSubnetDecodeErrorTest, NamesObjectAndPath) {
  auto subnet = podSubnetFromJson(json::parse(GetParam().json));
  ASSERT_FALSE(subnet) << GetParam().json;
  EXPECT_EQ(subnet.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Paths, PodSubnetDecodeErrorTest,
    ::testing::Values(
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"blockPrefixLength": "28"}})",
            R"(PodSubnet "p": spec.blockPrefixLength: expected an integer, got string)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"blockPrefixLength": 4294967296}})",
            R"(PodSubnet "p": spec.blockPrefixLength: 4294967296 is out of range for a 32-bit integer)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"minFreeIPsPerNode": -2147483649}})",
            R"(PodSubnet "p": spec.minFreeIPsPerNode: -2147483649 is out of range for a 32-bit integer)"},
        DecodeErrorCase{R"({"metadata": {"name": "p"}, "spec": {"azureSubnetID": {}}})",
                        R"(PodSubnet "p": spec.azureSubnetID: expected a string, got object)"},
        DecodeErrorCase{R"({"metadata": {"name": "p"}, "spec": {"nodeSelector": ["a"]}})",
                        R"(PodSubnet "p": spec.nodeSelector: expected an object, got array)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"matchLabels": {"os": 1}}}})",
            R"(PodSubnet "p": spec.nodeSelector.matchLabels[os]: expected a string, got number)"},
        // The map form of earlier versions with a key named like a field of the selector.
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"matchLabels": "x"}}})",
            R"(PodSubnet "p": spec.nodeSelector.matchLabels: expected an object, got string)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"matchExpressions": {}}}})",
            R"(PodSubnet "p": spec.nodeSelector.matchExpressions: expected an array, got object)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"matchExpressions": [1]}}})",
            R"(PodSubnet "p": spec.nodeSelector.matchExpressions[0]: expected an object, got number)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": [2]}]}}})",
            R"(PodSubnet "p": spec.nodeSelector.matchExpressions[0].values[0]: expected a string, got number)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"reservedCIDRs": ["10.0.0.0/28", 1]}})",
            R"(PodSubnet "p": spec.reservedCIDRs[1]: expected a string, got number)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "spec": {"releaseDelaySeconds": false}})",
            R"(PodSubnet "p": spec.releaseDelaySeconds: expected an integer, got boolean)"},
        DecodeErrorCase{R"({"metadata": {"name": "p"}, "status": {"cidr": 1}})",
                        R"(PodSubnet "p": status.cidr: expected a string, got number)"},
        DecodeErrorCase{R"({"metadata": {"name": "p"}, "status": {"allocatedIPs": "3"}})",
                        R"(PodSubnet "p": status.allocatedIPs: expected an integer, got string)"},
        DecodeErrorCase{
            R"({"metadata": {"name": "p"}, "status": {"conditions": [{"status": true}]}})",
            R"(PodSubnet "p": status.conditions[0].status: expected a string, got boolean)"},
        DecodeErrorCase{R"({"kind": "IPBlock", "metadata": {"name": "p"}})",
                        R"(PodSubnet "p": kind: expected "PodSubnet", got "IPBlock")"}));

TEST(CodecTest, LargeIntegersSurvive) {
  auto block =
      ipBlockFromJson(json::parse(R"({"status": {"used": 9223372036854775807, "capacity": 0}})"));
  ASSERT_TRUE(block) << block.error().message;
  EXPECT_EQ(block->status.used, INT64_MAX);
  EXPECT_EQ(toJson(*block)["status"]["used"], INT64_MAX);
}

// The controller's status apply: what it sets comes back through the decoder as it was set, and
// nothing it does not own (used, allocations) is in the body, not even as a zero.
// A block created already on its NIC (annotation vnetipam.io/programmed-on) has no status.phase
// until its phase first changes: every reader decodes it as Ready, with its CIDR's capacity and
// that NIC; any phase written later wins, and without the annotation an absent phase is Pending.
TEST(CodecTest, ABlockCreatedOnItsNicReadsAsReadyUntilAPhaseIsWritten) {
  json j = json::parse(R"({
    "apiVersion": "vnetipam.io/v1alpha1", "kind": "IPBlock",
    "metadata": {"name": "pods-10-240-0-16-28",
                 "annotations": {"vnetipam.io/programmed-on": "/subscriptions/s/nic-1"}},
    "spec": {"podSubnet": "pods", "cidr": "10.240.0.16/28", "nodeName": "node-1"}
  })");
  auto block = ipBlockFromJson(j);
  ASSERT_TRUE(block) << block.error().message;
  EXPECT_EQ(block->status.phase, BlockPhase::kReady);
  EXPECT_EQ(block->status.capacity, 16);
  ASSERT_TRUE(block->status.nic);
  EXPECT_EQ(block->status.nic->id, "/subscriptions/s/nic-1");

  // The agent's usage report alone does not give the block a phase.
  j["status"] = {{"used", 3}};
  block = ipBlockFromJson(j);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->status.phase, BlockPhase::kReady);
  EXPECT_EQ(block->status.used, 3);

  // A phase the controller wrote since wins, and so do its capacity and NIC.
  j["status"] = {{"phase", "Releasing"}, {"capacity", 16}, {"nic", {{"id", "nic-2"}}}};
  block = ipBlockFromJson(j);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->status.phase, BlockPhase::kReleasing);
  EXPECT_EQ(block->status.nic->id, "nic-2");

  // Without a cloud: Ready, and no NIC.
  j.erase("status");
  j["metadata"]["annotations"]["vnetipam.io/programmed-on"] = "none";
  block = ipBlockFromJson(j);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->status.phase, BlockPhase::kReady);
  EXPECT_FALSE(block->status.nic);

  // Without the annotation an absent phase is Pending, as always.
  j["metadata"].erase("annotations");
  block = ipBlockFromJson(j);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->status.phase, BlockPhase::kPending);
  EXPECT_EQ(block->status.capacity, 0);
}

TEST(CodecTest, IPBlockStatusApplyRoundTripsTheControllersFieldsOnly) {
  const Condition programmed{.type = "Programmed",
                             .status = "True",
                             .reason = "PrefixOnNIC",
                             .message = "on the NIC",
                             .lastTransitionTime = "2026-01-02T00:00:00Z",
                             .observedGeneration = 0,
                             .extra = json::object()};
  const IPBlockControllerStatus status{
      .phase = BlockPhase::kReady,
      .lastTransitionTime = "2026-01-02T00:00:01Z",
      .capacity = 16,
      .nic = NicRef{.id = "/nic/a", .ipConfiguration = "vnetipam-1", .extra = json::object()},
      .conditions = {programmed}};
  const json body = ipBlockStatusApply("pods-10-0-0-16-28", status);
  EXPECT_EQ(body["apiVersion"], "vnetipam.io/v1alpha1");
  EXPECT_EQ(body["kind"], "IPBlock");
  EXPECT_EQ(body["metadata"], json({{"name", "pods-10-0-0-16-28"}}));
  EXPECT_FALSE(body["status"].contains("used"));
  EXPECT_FALSE(body["status"].contains("allocations"));
  auto decoded = ipBlockFromJson(body);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->metadata.name, "pods-10-0-0-16-28");
  EXPECT_EQ((IPBlockControllerStatus{.phase = decoded->status.phase,
                                     .lastTransitionTime = decoded->status.lastTransitionTime,
                                     .capacity = decoded->status.capacity,
                                     .nic = decoded->status.nic,
                                     .conditions = decoded->status.conditions}),
            status);
}

// A field left unset is left out: a conditions-only apply (the Invalid condition of a refused
// block) carries no phase, capacity or nic.
TEST(CodecTest, IPBlockStatusApplyLeavesOutWhatIsNotSet) {
  const Condition invalid{.type = "Invalid",
                          .status = "True",
                          .reason = "Overlap",
                          .message = "m",
                          .lastTransitionTime = "2026-01-02T00:00:00Z",
                          .observedGeneration = 0,
                          .extra = json::object()};
  EXPECT_EQ(ipBlockStatusApply("b", {.phase = {},
                                     .lastTransitionTime = {},
                                     .capacity = {},
                                     .nic = {},
                                     .conditions = {invalid}})["status"],
            json::parse(R"({"conditions": [{"type": "Invalid", "status": "True",
                "reason": "Overlap", "message": "m",
                "lastTransitionTime": "2026-01-02T00:00:00Z"}]})"));
  EXPECT_EQ(ipBlockStatusApply("b", {})["status"], json::object());
}

TEST(CodecTest, PodSubnetStatusApplyRoundTrips) {
  PodSubnetStatus status;
  status.cidr = "10.0.0.0/16";
  status.totalBlocks = 4;
  status.allocatedBlocks = 1;
  status.allocatedIPs = 3;
  const json body = podSubnetStatusApply("pods", status);
  auto decoded = podSubnetFromJson(body);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->metadata.name, "pods");
  EXPECT_EQ(decoded->status, status);
  EXPECT_FALSE(body.contains("spec")) << "a status apply sends no spec";
}

TEST(CodecTest, FinalizersPatchSetsTheListUnderTheResourceVersion) {
  EXPECT_EQ(finalizersPatch({"vnetipam.io/agent-drain"}, "42"),
            json::parse(R"({"metadata": {"finalizers": ["vnetipam.io/agent-drain"],
                                         "resourceVersion": "42"}})"));
  EXPECT_EQ(finalizersPatch({}, "7")["metadata"]["finalizers"], json::array())
      << "an empty list removes every finalizer, it is not left out";
}

}  // namespace
}  // namespace vnetipam::api
