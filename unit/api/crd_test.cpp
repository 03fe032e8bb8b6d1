// Cross-checks the CRD manifests in crds/ against the C++ contract in api/: names, defaults and
// limits equal api/constants.h, every field is documented (so `kubectl explain` teaches), and the
// fields of the schema are exactly the fields the codec writes.
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "api/codec.h"
#include "api/constants.h"

namespace vnetipam::api {
namespace {

using nlohmann::json;

std::string crdPath(const char* file) { return std::string(VNETIPAM_SOURCE_DIR) + "/crds/" + file; }

constexpr const char* kPodSubnetFile = "vnetipam.io_podsubnets.yaml";
constexpr const char* kIPBlockFile = "vnetipam.io_ipblocks.yaml";

YAML::Node loadCrd(const char* file) { return YAML::LoadFile(crdPath(file)); }
YAML::Node version(const YAML::Node& crd) { return crd["spec"]["versions"][0]; }
YAML::Node rootSchema(const YAML::Node& crd) { return version(crd)["schema"]["openAPIV3Schema"]; }

std::vector<std::string> strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  for (const auto& n : seq)
    out.push_back(n.as<std::string>());
  return out;
}

// Calls f(path, schema) for every schema below `schema`: properties ("spec.cidr"), list items
// ("spec.reservedCIDRs[]") and map values ("spec.nodeSelector.matchLabels{}").
void forEachSchema(const YAML::Node& schema, const std::string& path,
                   const std::function<void(const std::string&, const YAML::Node&)>& f) {
  if (const YAML::Node props = schema["properties"]) {
    for (const auto& kv : props) {
      const std::string key = kv.first.as<std::string>();
      const std::string child = path.empty() ? key : path + "." + key;
      f(child, kv.second);
      forEachSchema(kv.second, child, f);
    }
  }
  if (const YAML::Node items = schema["items"]) {
    f(path + "[]", items);
    forEachSchema(items, path + "[]", f);
  }
  if (const YAML::Node values = schema["additionalProperties"]; values && values.IsMap()) {
    f(path + "{}", values);
    forEachSchema(values, path + "{}", f);
  }
}

// All CEL rules at one schema node, joined, for checking the numbers in them.
std::string rulesAt(const YAML::Node& schema) {
  std::string out;
  for (const auto& v : schema["x-kubernetes-validations"])
    out += v["rule"].as<std::string>() + "\n";
  return out;
}

class CrdFileTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CrdFileTest, StatesTheKubernetesVersionItNeeds) {
  std::ifstream in(crdPath(GetParam()));
  ASSERT_TRUE(in) << crdPath(GetParam());
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("Requires Kubernetes >= 1.32"), std::string::npos);
}

TEST_P(CrdFileTest, IsAClusterScopedV1alpha1CrdWithStatusSubresource) {
  const YAML::Node crd = loadCrd(GetParam());
  EXPECT_EQ(crd["apiVersion"].as<std::string>(), "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd["kind"].as<std::string>(), "CustomResourceDefinition");
  const YAML::Node spec = crd["spec"];
  EXPECT_EQ(spec["group"].as<std::string>(), kGroup);
  EXPECT_EQ(spec["scope"].as<std::string>(), "Cluster");
  EXPECT_EQ(crd["metadata"]["name"].as<std::string>(),
            fmt::format("{}.{}", spec["names"]["plural"].as<std::string>(), kGroup));
  EXPECT_EQ(strings(spec["names"]["categories"]), std::vector<std::string>{std::string(kCategory)});
  ASSERT_EQ(spec["versions"].size(), 1u);
  const YAML::Node v = version(crd);
  EXPECT_EQ(v["name"].as<std::string>(), kVersion);
  EXPECT_TRUE(v["served"].as<bool>());
  EXPECT_TRUE(v["storage"].as<bool>());
  ASSERT_TRUE(v["subresources"]["status"]);
  EXPECT_TRUE(v["subresources"]["status"].IsMap());
  EXPECT_EQ(strings(rootSchema(crd)["required"]), std::vector<std::string>{"spec"});
}

TEST_P(CrdFileTest, EveryFieldHasADescription) {
  const YAML::Node root = rootSchema(loadCrd(GetParam()));
  EXPECT_FALSE(root["description"].as<std::string>("").empty());
  int checked = 0;
  forEachSchema(root, "", [&](const std::string& path, const YAML::Node& schema) {
    // The API server refuses anything but `type` under metadata, so it cannot carry one.
    if (path == "metadata") return;
    ++checked;
    EXPECT_FALSE(schema["description"].as<std::string>("").empty())
        << path << " has no description";
  });
  EXPECT_GT(checked, 15);
}

TEST_P(CrdFileTest, EveryRuleHasAMessageAndBoundedInputs) {
  const YAML::Node root = rootSchema(loadCrd(GetParam()));
  auto check = [](const std::string& path, const YAML::Node& schema) {
    const YAML::Node rules = schema["x-kubernetes-validations"];
    if (!rules) return;
    for (const auto& r : rules) {
      EXPECT_FALSE(r["rule"].as<std::string>("").empty()) << path;
      EXPECT_TRUE(!r["message"].as<std::string>("").empty() ||
                  !r["messageExpression"].as<std::string>("").empty())
          << path << ": rule without a message: " << r["rule"].as<std::string>("");
    }
    // Unbounded strings make the CEL cost estimate fail.
    if (schema["type"].as<std::string>("") == "string") {
      EXPECT_TRUE(schema["maxLength"]) << path << " has CEL rules but no maxLength";
    }
  };
  check("", root);
  forEachSchema(root, "", check);
}

std::string kindOfFile(const ::testing::TestParamInfo<const char*>& param) {
  return param.param == kPodSubnetFile ? "PodSubnet" : "IPBlock";
}

INSTANTIATE_TEST_SUITE_P(Both, CrdFileTest, ::testing::Values(kPodSubnetFile, kIPBlockFile),
                         kindOfFile);

struct Column {
  std::string name;
  std::string jsonPath;
  std::string type;
  bool operator==(const Column&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Column& c) {
  return os << c.name << " " << c.jsonPath << " " << c.type;
}

std::vector<Column> columns(const YAML::Node& crd) {
  std::vector<Column> out;
  for (const auto& c : version(crd)["additionalPrinterColumns"]) {
    out.push_back({c["name"].as<std::string>(), c["jsonPath"].as<std::string>(),
                   c["type"].as<std::string>()});
  }
  return out;
}

TEST(PodSubnetCrdTest, Names) {
  const YAML::Node names = loadCrd(kPodSubnetFile)["spec"]["names"];
  EXPECT_EQ(names["kind"].as<std::string>(), kPodSubnetKind);
  EXPECT_EQ(names["plural"].as<std::string>(), kPodSubnetPlural);
  EXPECT_EQ(names["singular"].as<std::string>(), "podsubnet");
  EXPECT_EQ(names["listKind"].as<std::string>(), "PodSubnetList");
  EXPECT_EQ(strings(names["shortNames"]),
            std::vector<std::string>{std::string(kPodSubnetShortName)});
}

TEST(PodSubnetCrdTest, PrinterColumns) {
  const std::vector<Column> expected = {
      {"CIDR", ".status.cidr", "string"},
      {"BLOCKS", ".status.allocatedBlocks", "integer"},
      {"TOTAL", ".status.totalBlocks", "integer"},
      {"IPS", ".status.allocatedIPs", "integer"},
      {"FOREIGN", ".status.foreignAddresses", "integer"},
      {"READY", R"(.status.conditions[?(@.type=="Ready")].status)", "string"},
      {"AGE", ".metadata.creationTimestamp", "date"},
  };
  EXPECT_EQ(columns(loadCrd(kPodSubnetFile)), expected);
  EXPECT_FALSE(version(loadCrd(kPodSubnetFile))["selectableFields"]);
}

TEST(PodSubnetCrdTest, DefaultsAndLimitsEqualTheConstants) {
  const YAML::Node root = rootSchema(loadCrd(kPodSubnetFile));
  const YAML::Node spec = root["properties"]["spec"];
  const YAML::Node p = spec["properties"];
  EXPECT_EQ(p["blockPrefixLength"]["default"].as<int>(), kDefaultBlockPrefixLength);
  EXPECT_EQ(p["minFreeIPsPerNode"]["default"].as<int>(), kDefaultMinFreeIPsPerNode);
  EXPECT_EQ(p["maxBlocksPerNode"]["default"].as<int>(), kDefaultMaxBlocksPerNode);
  EXPECT_EQ(p["releaseDelaySeconds"]["default"].as<std::int64_t>(), kDefaultReleaseDelaySeconds);

  // The decoder's defaults are the same numbers.
  const auto decoded = podSubnetFromJson(json::parse(R"({"spec": {}})"));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->spec.blockPrefixLength, p["blockPrefixLength"]["default"].as<int>());
  EXPECT_EQ(decoded->spec.minFreeIPsPerNode, p["minFreeIPsPerNode"]["default"].as<int>());
  EXPECT_EQ(decoded->spec.maxBlocksPerNode, p["maxBlocksPerNode"]["default"].as<int>());
  EXPECT_EQ(decoded->spec.releaseDelaySeconds,
            p["releaseDelaySeconds"]["default"].as<std::int64_t>());

  EXPECT_EQ(p["blockPrefixLength"]["minimum"].as<int>(), kMinBlockPrefixLengthV4);
  EXPECT_EQ(p["blockPrefixLength"]["maximum"].as<int>(), kMaxBlockPrefixLengthV6);
  EXPECT_EQ(p["minFreeIPsPerNode"]["minimum"].as<int>(), 0);
  EXPECT_EQ(p["maxBlocksPerNode"]["minimum"].as<int>(), 1);
  EXPECT_EQ(p["maxBlocksPerNode"]["maximum"].as<int>(), kMaxMaxBlocksPerNode);
  EXPECT_EQ(p["releaseDelaySeconds"]["minimum"].as<int>(), 0);
  EXPECT_EQ(p["cidr"]["maxLength"].as<int>(), kMaxCidrLength);
  EXPECT_EQ(p["reservedCIDRs"]["items"]["maxLength"].as<int>(), kMaxCidrLength);
  EXPECT_EQ(p["reservedCIDRs"]["maxItems"].as<int>(), kMaxReservedCIDRs);
  EXPECT_EQ(p["azureSubnetID"]["maxLength"].as<int>(), kMaxAzureSubnetIDLength);
  const YAML::Node selector = p["nodeSelector"]["properties"];
  EXPECT_EQ(selector["matchLabels"]["maxProperties"].as<int>(), kMaxNodeSelectorLabels);
  EXPECT_EQ(selector["matchLabels"]["additionalProperties"]["maxLength"].as<int>(),
            kMaxLabelValueLength);
  EXPECT_EQ(selector["matchExpressions"]["maxItems"].as<int>(), kMaxNodeSelectorExpressions);
  const YAML::Node requirement = selector["matchExpressions"]["items"]["properties"];
  EXPECT_EQ(requirement["key"]["maxLength"].as<int>(), kMaxLabelKeyLength);
  EXPECT_EQ(strings(requirement["operator"]["enum"]),
            (std::vector<std::string>{std::string(kSelectorOpIn), std::string(kSelectorOpNotIn),
                                      std::string(kSelectorOpExists),
                                      std::string(kSelectorOpDoesNotExist)}));
  EXPECT_EQ(requirement["values"]["maxItems"].as<int>(), kMaxNodeSelectorValues);
  EXPECT_EQ(requirement["values"]["items"]["maxLength"].as<int>(), kMaxLabelValueLength);
  EXPECT_NE(
      rulesAt(selector["matchLabels"]).find(fmt::format("k.size() <= {}", kMaxLabelKeyLength)),
      std::string::npos);
  EXPECT_EQ(root["properties"]["status"]["properties"]["conditions"]["maxItems"].as<int>(),
            kMaxConditions);

  // The per-family ranges live in CEL; the numbers in the rules are the constants.
  const std::string rules = rulesAt(spec);
  for (const std::string& bound :
       {fmt::format("self.blockPrefixLength >= {}", kMinBlockPrefixLengthV4),
        fmt::format("self.blockPrefixLength <= {}", kMaxBlockPrefixLengthV4),
        fmt::format("self.blockPrefixLength >= {}", kMinBlockPrefixLengthV6),
        fmt::format("self.blockPrefixLength <= {}", kMaxBlockPrefixLengthV6)}) {
    EXPECT_NE(rules.find(bound), std::string::npos) << bound;
  }
  EXPECT_NE(
      rulesAt(root).find(fmt::format("self.metadata.name.size() <= {}", kMaxPodSubnetNameLength)),
      std::string::npos);
}

TEST(IPBlockCrdTest, Names) {
  const YAML::Node names = loadCrd(kIPBlockFile)["spec"]["names"];
  EXPECT_EQ(names["kind"].as<std::string>(), kIPBlockKind);
  EXPECT_EQ(names["plural"].as<std::string>(), kIPBlockPlural);
  EXPECT_EQ(names["singular"].as<std::string>(), "ipblock");
  EXPECT_EQ(names["listKind"].as<std::string>(), "IPBlockList");
  EXPECT_EQ(strings(names["shortNames"]), std::vector<std::string>{std::string(kIPBlockShortName)});
}

TEST(IPBlockCrdTest, PrinterColumnsAndSelectableNodeName) {
  const YAML::Node crd = loadCrd(kIPBlockFile);
  const std::vector<Column> expected = {
      {"NODE", ".spec.nodeName", "string"},           {"CIDR", ".spec.cidr", "string"},
      {"SUBNET", ".spec.podSubnet", "string"},        {"USED", ".status.used", "integer"},
      {"CAPACITY", ".status.capacity", "integer"},    {"PHASE", ".status.phase", "string"},
      {"AGE", ".metadata.creationTimestamp", "date"},
  };
  EXPECT_EQ(columns(crd), expected);
  const YAML::Node selectable = version(crd)["selectableFields"];
  ASSERT_TRUE(selectable && selectable.IsSequence());
  ASSERT_EQ(selectable.size(), 1u);
  EXPECT_EQ(selectable[0]["jsonPath"].as<std::string>(), ".spec.nodeName");
}

TEST(IPBlockCrdTest, SpecIsRequiredAndBounded) {
  const YAML::Node root = rootSchema(loadCrd(kIPBlockFile));
  const YAML::Node spec = root["properties"]["spec"];
  EXPECT_EQ(strings(spec["required"]), (std::vector<std::string>{"podSubnet", "cidr", "nodeName"}));
  const YAML::Node p = spec["properties"];
  EXPECT_EQ(p["cidr"]["maxLength"].as<int>(), kMaxCidrLength);
  EXPECT_EQ(p["nodeName"]["maxLength"].as<int>(), kMaxDns1123SubdomainLength);
  EXPECT_EQ(p["podSubnet"]["maxLength"].as<int>(), kMaxDns1123SubdomainLength);
  for (const char* field : {"podSubnet", "cidr", "nodeName"}) {
    EXPECT_NE(rulesAt(p[field]).find("self == oldSelf"), std::string::npos)
        << "spec." << field << " is not immutable";
  }
  const std::string cidr_rules = rulesAt(p["cidr"]);
  for (const std::string& bound : {fmt::format("prefixLength() >= {}", kMinBlockPrefixLengthV4),
                                   fmt::format("prefixLength() <= {}", kMaxBlockPrefixLengthV4),
                                   fmt::format("prefixLength() >= {}", kMinBlockPrefixLengthV6),
                                   fmt::format("prefixLength() <= {}", kMaxBlockPrefixLengthV6)}) {
    EXPECT_NE(cidr_rules.find(bound), std::string::npos) << bound;
  }
  const YAML::Node status = root["properties"]["status"]["properties"];
  std::vector<std::string> phases;
  for (BlockPhase phase : {BlockPhase::kPending, BlockPhase::kProgrammed, BlockPhase::kReady,
                           BlockPhase::kReleasing}) {
    phases.emplace_back(toString(phase));
  }
  EXPECT_EQ(strings(status["phase"]["enum"]), phases);
  EXPECT_EQ(status["conditions"]["maxItems"].as<int>(), kMaxConditions);
  const YAML::Node allocations = status["allocations"];
  EXPECT_EQ(allocations["maxItems"].as<int>(), kMaxBlockAllocations);
  EXPECT_EQ(allocations["x-kubernetes-list-type"].as<std::string>(), "map");
  EXPECT_EQ(strings(allocations["x-kubernetes-list-map-keys"]),
            std::vector<std::string>{"address"});
  const YAML::Node item = allocations["items"];
  EXPECT_EQ(strings(item["required"]),
            (std::vector<std::string>{"address", "containerID", "ifName"}));
  for (const auto& [field, bound] :
       std::vector<std::pair<const char*, int>>{{"address", kMaxAddressLength},
                                                {"containerID", kMaxContainerIDLength},
                                                {"ifName", kMaxIfNameLength},
                                                {"podNamespace", kMaxPodNamespaceLength},
                                                {"podName", kMaxPodNameLength},
                                                {"podUID", kMaxPodUIDLength},
                                                {"network", kMaxNetworkNameLength}}) {
    EXPECT_EQ(item["properties"][field]["maxLength"].as<int>(), bound) << field;
  }
}

// The set of field paths a schema declares, and the set the codec writes for a fully populated
// object, must be the same: a field missing from the schema would be pruned by the API server, a
// field missing from the codec would be lost on every read.
std::set<std::string> schemaPaths(const YAML::Node& root) {
  std::set<std::string> out;
  forEachSchema(root, "", [&](const std::string& path, const YAML::Node&) {
    if (path.starts_with("spec") || path.starts_with("status")) out.insert(path);
  });
  return out;
}

void jsonPaths(const json& j, const std::string& path, std::set<std::string>& out) {
  if (!path.empty()) out.insert(path);
  if (j.is_object()) {
    const bool is_map = path.ends_with("matchLabels");
    for (const auto& [k, v] : j.items()) {
      jsonPaths(v, is_map ? path + "{}" : (path.empty() ? k : path + "." + k), out);
    }
  } else if (j.is_array() && !j.empty()) {
    jsonPaths(j[0], path + "[]", out);
  }
}

Condition fullCondition() {
  return {.type = "Ready",
          .status = "True",
          .reason = "R",
          .message = "m",
          .lastTransitionTime = "2025-01-02T03:04:05Z",
          .observedGeneration = 1};
}

TEST(CrdFieldsTest, PodSubnetSchemaHasExactlyTheCodecsFields) {
  PodSubnet s;
  s.spec.azureSubnetID = "id";
  s.spec.cidr = "10.0.0.0/16";
  s.spec.nodeSelector = LabelSelector{
      .matchLabels = {{"k", "v"}}, .matchExpressions = {{.key = "k", .op = "In", .values = {"v"}}}};
  s.spec.reservedCIDRs = {"10.0.0.0/28"};
  s.status = {.cidr = "10.0.0.0/16",
              .cidrs = {"10.0.0.0/16"},
              .foreignAddresses = 3,
              .conditions = {fullCondition()}};
  const json j = toJson(s);
  std::set<std::string> written;
  jsonPaths(j["spec"], "spec", written);
  jsonPaths(j["status"], "status", written);
  EXPECT_EQ(schemaPaths(rootSchema(loadCrd(kPodSubnetFile))), written);
}

TEST(CrdFieldsTest, IPBlockSchemaHasExactlyTheCodecsFields) {
  IPBlock b;
  b.spec = {.podSubnet = "p", .cidr = "10.0.0.0/28", .nodeName = "n"};
  b.status.nic = NicRef{.id = "id", .ipConfiguration = "c"};
  b.status.conditions = {fullCondition()};
  b.status.allocations = {{.address = "10.0.0.1",
                           .owner = {.containerID = "c", .ifName = "eth0"},
                           .podNamespace = "ns",
                           .podName = "p",
                           .podUID = "u",
                           .network = "n"}};
  b.status.lastTransitionTime = "2025-01-02T03:04:05Z";
  const json j = toJson(b);
  std::set<std::string> written;
  jsonPaths(j["spec"], "spec", written);
  jsonPaths(j["status"], "status", written);
  EXPECT_EQ(schemaPaths(rootSchema(loadCrd(kIPBlockFile))), written);
}

}  // namespace
}  // namespace vnetipam::api
