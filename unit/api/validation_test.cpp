#include "api/validation.h"

#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/codec.h"

namespace vnetipam::api {
namespace {

using nlohmann::json;

// --- The shared case table -------------------------------------------------------------------
// unit/api/testdata/validation_cases.json holds one case per rule. The same file is run against
// the CRDs' OpenAPI + CEL validation (see its description), so the C++ rules and the API server's
// cannot drift apart unnoticed: a case passes only if both sides agree on valid/invalid, on the
// field path, and on the key phrase of the message.

struct SharedCase {
  std::string name;
  json object;
  json old;                         // null: a create
  std::optional<std::string> path;  // nullopt: the object is valid
  std::string message;
};

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const SharedCase& c, std::ostream* os) { *os << c.name; }

std::vector<SharedCase> loadSharedCases() {
  std::ifstream in(VNETIPAM_SOURCE_DIR "/unit/api/testdata/validation_cases.json");
  std::vector<SharedCase> cases;
  if (!in) return {{.name = "missing case file", .object = json()}};
  const json doc = json::parse(in);
  for (const json& c : doc.at("cases")) {
    SharedCase sc{.name = c.at("name").get<std::string>(),
                  .object = c.at("object"),
                  .old = c.value("old", json())};
    if (c.contains("path")) sc.path = c.at("path").get<std::string>();
    sc.message = c.value("message", "");
    cases.push_back(std::move(sc));
  }
  return cases;
}

template <typename Object>
std::vector<FieldError> validateCase(const Object& obj, const json& old_json,
                                     Result<Object> (*decode)(const json&)) {
  std::vector<FieldError> errors = validate(obj);
  if (!old_json.is_null()) {
    auto old = decode(old_json);
    if (!old) return {{"old", old.error().message}};
    for (FieldError& e : validateUpdate(old->spec, obj.spec))
      errors.push_back(std::move(e));
  }
  return errors;
}

std::vector<FieldError> runCase(const SharedCase& c) {
  if (c.object.is_null()) return {{"case file", "cannot read unit/api/testdata"}};
  if (c.object.at("kind") == "PodSubnet") {
    auto subnet = podSubnetFromJson(c.object);
    if (!subnet) return {{"decode", subnet.error().message}};
    return validateCase(*subnet, c.old, &podSubnetFromJson);
  }
  auto block = ipBlockFromJson(c.object);
  if (!block) return {{"decode", block.error().message}};
  return validateCase(*block, c.old, &ipBlockFromJson);
}

std::string listErrors(const std::vector<FieldError>& errors) {
  std::string out;
  for (const FieldError& e : errors)
    out += "\n  " + toString(e);
  return out.empty() ? " (none)" : out;
}

class SharedValidationCaseTest : public ::testing::TestWithParam<SharedCase> {};

TEST_P(SharedValidationCaseTest, AgreesWithTheCrd) {
  const SharedCase& c = GetParam();
  const std::vector<FieldError> errors = runCase(c);
  if (!c.path) {
    EXPECT_TRUE(errors.empty()) << c.name << ": expected valid, got" << listErrors(errors);
    return;
  }
  bool found = false;
  for (const FieldError& e : errors) {
    const std::string text = toString(e);
    if (text.starts_with(*c.path) && text.find(c.message) != std::string::npos) found = true;
  }
  EXPECT_TRUE(found) << c.name << ": expected an error at \"" << *c.path << "\" containing \""
                     << c.message << "\", got" << listErrors(errors);
}

std::string caseName(const ::testing::TestParamInfo<SharedCase>& info) {
  std::string out;
  for (char ch : info.param.name) {
    const bool alnum =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (alnum) {
      out += ch;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_')
    out.pop_back();
  return out + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Table, SharedValidationCaseTest, ::testing::ValuesIn(loadSharedCases()),
                         caseName);

TEST(SharedValidationCaseTest, TableCoversEveryRule) {
  const auto cases = loadSharedCases();
  ASSERT_GT(cases.size(), 50u);
  std::set<std::string> paths;
  for (const SharedCase& c : cases) {
    if (c.path) paths.insert(*c.path);
  }
  for (const char* p : {"spec",
                        "spec.azureSubnetID",
                        "spec.cidr",
                        "spec.blockPrefixLength",
                        "spec.nodeSelector",
                        "spec.minFreeIPsPerNode",
                        "spec.maxBlocksPerNode",
                        "spec.releaseDelaySeconds",
                        "spec.reservedCIDRs",
                        "spec.reservedCIDRs[0]",
                        "spec.nodeName",
                        "spec.podSubnet",
                        "",
                        "status.used",
                        "status.nic.ipConfiguration",
                        "status.conditions[0].status",
                        "status.conditions[0].reason",
                        "spec.nodeSelector.matchLabels",
                        "spec.nodeSelector.matchExpressions[0].key",
                        "spec.nodeSelector.matchExpressions[0].operator",
                        "spec.nodeSelector.matchExpressions[0].values",
                        "spec.nodeSelector.matchExpressions[0].values[0]"}) {
    EXPECT_TRUE(paths.contains(p)) << "no failing case for " << p;
  }
}

// --- Rules the table cannot show ---------------------------------------------------------------

PodSubnetSpec v4Spec() {
  PodSubnetSpec s;
  s.cidr = "10.240.0.0/16";
  return s;
}

TEST(ValidationTest, ReportsEveryProblemNotJustTheFirst) {
  PodSubnetSpec s = v4Spec();
  s.cidr = "10.240.0.5/16";
  s.minFreeIPsPerNode = -1;
  s.maxBlocksPerNode = 0;
  s.releaseDelaySeconds = -1;
  s.reservedCIDRs = {"x"};
  const auto errors = validate(s);
  ASSERT_EQ(errors.size(), 5u) << listErrors(errors);
  EXPECT_EQ(
      errors[0],
      (FieldError{"spec.cidr", "\"10.240.0.5/16\" is not aligned: did you mean 10.240.0.0/16?"}));
  EXPECT_EQ(errors[1].path, "spec.minFreeIPsPerNode");
  EXPECT_EQ(errors[2].path, "spec.maxBlocksPerNode");
  EXPECT_EQ(errors[3].path, "spec.releaseDelaySeconds");
  EXPECT_EQ(errors[4].path, "spec.reservedCIDRs[0]");
}

TEST(ValidationTest, ValidSpecsHaveNoErrors) {
  EXPECT_TRUE(validate(v4Spec()).empty());
  EXPECT_TRUE(validate(IPBlockSpec{.podSubnet = "pods", .cidr = "10.240.0.16/28", .nodeName = "n"})
                  .empty());
}

TEST(ValidationTest, BlockPrefixLengthBoundsPerFamily) {
  PodSubnetSpec s = v4Spec();
  for (int len : {16, 28, 32}) {
    s.blockPrefixLength = len;
    EXPECT_TRUE(validate(s).empty()) << len;
  }
  for (int len : {15, 33, 0, -1, 64}) {
    s.blockPrefixLength = len;
    EXPECT_FALSE(validate(s).empty()) << len;
  }
  s.cidr = "fd00::/64";
  for (int len : {112, 120, 128}) {
    s.blockPrefixLength = len;
    EXPECT_TRUE(validate(s).empty()) << len;
  }
  // 64-111: a block larger than the 2^16 addresses one agent's allocator serves.
  for (int len : {111, 80, 64, 129, 28}) {
    s.blockPrefixLength = len;
    EXPECT_FALSE(validate(s).empty()) << len;
  }
  // Without a cidr the family is unknown: the union of both ranges.
  s.cidr.reset();
  s.azureSubnetID =
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
      "virtualNetworks/v/subnets/n";
  for (int len : {16, 28, 80, 128}) {
    s.blockPrefixLength = len;
    EXPECT_TRUE(validate(s).empty()) << len;
  }
  for (int len : {15, 129}) {
    s.blockPrefixLength = len;
    EXPECT_FALSE(validate(s).empty()) << len;
  }
}

TEST(ValidationTest, InvalidCidrStillChecksBlockLengthAgainstBothFamilies) {
  PodSubnetSpec s = v4Spec();
  s.cidr = "nonsense";
  s.blockPrefixLength = 200;
  const auto errors = validate(s);
  ASSERT_EQ(errors.size(), 2u) << listErrors(errors);
  EXPECT_EQ(errors[1].path, "spec.blockPrefixLength");
}

TEST(ValidationTest, EmptyStringsAreRequiredValues) {
  PodSubnetSpec s;
  s.cidr = "";
  const auto errors = validate(s);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(toString(errors[0]), "spec.cidr: required: expected a CIDR prefix like 10.240.0.0/16");

  const auto block_errors = validate(IPBlockSpec{});
  ASSERT_EQ(block_errors.size(), 3u) << listErrors(block_errors);
  EXPECT_EQ(toString(block_errors[0]),
            "spec.podSubnet: required: expected the name of a PodSubnet");
  EXPECT_EQ(block_errors[1].path, "spec.cidr");
  EXPECT_EQ(toString(block_errors[2]), "spec.nodeName: required: expected the name of a Node");
}

TEST(ValidationTest, CidrLongerThanTheCrdAllows) {
  PodSubnetSpec s = v4Spec();
  s.cidr = std::string(46, '0') + ":/64";
  const auto errors = validate(s);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].path, "spec.cidr");
  EXPECT_NE(errors[0].message.find("at most 49"), std::string::npos) << errors[0].message;
}

TEST(ValidationTest, TooManyNodeSelectorLabels) {
  PodSubnetSpec s = v4Spec();
  LabelSelector& sel = s.nodeSelector.emplace();
  for (int i = 0; i < 33; ++i)
    sel.matchLabels["k" + std::to_string(i)] = "v";
  const auto errors = validate(s);
  ASSERT_EQ(errors.size(), 1u) << listErrors(errors);
  EXPECT_EQ(toString(errors[0]),
            "spec.nodeSelector.matchLabels: has 33 labels: at most 32 are allowed");
}

TEST(ValidationTest, TooManyNodeSelectorExpressionsAndValues) {
  PodSubnetSpec s = v4Spec();
  LabelSelector& sel = s.nodeSelector.emplace();
  for (int i = 0; i < 33; ++i)
    sel.matchExpressions.push_back({.key = "k" + std::to_string(i), .op = "Exists"});
  std::vector<std::string> values(65, "v");
  sel.matchExpressions[0] = {.key = "k", .op = "In", .values = values};
  const auto errors = validate(s);
  ASSERT_EQ(errors.size(), 2u) << listErrors(errors);
  EXPECT_EQ(toString(errors[0]),
            "spec.nodeSelector.matchExpressions: has 33 items: at most 32 are allowed");
  EXPECT_EQ(toString(errors[1]),
            "spec.nodeSelector.matchExpressions[0].values: has 65 items: at most 64 are allowed");
}

// Every rule of a requirement, reported at the field Kubernetes reports it at.
TEST(ValidationTest, NodeSelectorRequirementRules) {
  PodSubnetSpec s = v4Spec();
  s.nodeSelector = LabelSelector{.matchExpressions = {
                                     {.key = "a", .op = "In"},
                                     {.key = "b", .op = "NotIn", .values = {}},
                                     {.key = "c", .op = "Exists", .values = {"x"}},
                                     {.key = "d", .op = "DoesNotExist", .values = {"x"}},
                                     {.key = "e", .op = "Gt", .values = {"1"}},
                                     {.key = "bad key", .op = "In", .values = {"bad value"}},
                                     {.key = "f", .op = "NotIn", .values = {"x", "y"}},
                                 }};
  const auto errors = validate(s);
  ASSERT_EQ(errors.size(), 7u) << listErrors(errors);
  const std::string p = "spec.nodeSelector.matchExpressions";
  EXPECT_EQ(errors[0].path, p + "[0].values");
  EXPECT_EQ(errors[0].message,
            "must be specified when operator is In: the values the label may (In) or may not "
            "(NotIn) have");
  EXPECT_EQ(errors[1].path, p + "[1].values");
  EXPECT_EQ(errors[2].path, p + "[2].values");
  EXPECT_EQ(errors[2].message,
            "may not be specified when operator is Exists: it tests only whether the node has "
            "the label");
  EXPECT_EQ(errors[3].path, p + "[3].values");
  EXPECT_EQ(toString(errors[4]),
            p + "[4].operator: Unsupported value: \"Gt\": supported values: \"In\", \"NotIn\", "
                "\"Exists\", \"DoesNotExist\"");
  EXPECT_EQ(errors[5].path, p + "[5].key");
  EXPECT_EQ(errors[6].path, p + "[5].values[0]");
}

TEST(ValidationTest, ANodeSelectorWithoutRequirementsIsRefused) {
  PodSubnetSpec s = v4Spec();
  s.nodeSelector = LabelSelector{};
  auto errors = validate(s);
  ASSERT_EQ(errors.size(), 1u) << listErrors(errors);
  EXPECT_EQ(errors[0].path, "spec.nodeSelector");
  EXPECT_NE(errors[0].message.find("leave nodeSelector out to select every node"),
            std::string::npos);
  // No selector at all is valid: it selects every node.
  s.nodeSelector.reset();
  EXPECT_TRUE(validate(s).empty());
}

TEST(ValidationTest, AzureSubnetIdShape) {
  EXPECT_TRUE(isAzureSubnetID(
      "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
      "Microsoft.Network/virtualNetworks/vnet/subnets/pods"));
  EXPECT_TRUE(
      isAzureSubnetID("/subscriptions/s/resourcegroups/g/providers/MICROSOFT.NETWORK/"
                      "VirtualNetworks/v/Subnets/n"));
  EXPECT_FALSE(isAzureSubnetID(""));
  EXPECT_FALSE(
      isAzureSubnetID("subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                      "virtualNetworks/v/subnets/n"));
  EXPECT_FALSE(
      isAzureSubnetID("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                      "virtualNetworks/v/subnets/n/"));
  EXPECT_FALSE(
      isAzureSubnetID("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                      "virtualNetworks/v/subnets"));
  EXPECT_FALSE(
      isAzureSubnetID("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                      "networkInterfaces/v/subnets/n"));
  EXPECT_FALSE(
      isAzureSubnetID("/subscriptions/s/resourceGroups/g/providers/MicrosoftXNetwork/"
                      "virtualNetworks/v/subnets/n"));
}

TEST(ValidationTest, ConditionRules) {
  IPBlockStatus status;
  const Condition good{.type = "Programmed",
                       .status = "True",
                       .reason = "NicUpdated",
                       .message = "",
                       .lastTransitionTime = "2025-01-02T03:04:05Z"};
  status.conditions = {good};
  EXPECT_TRUE(validate(status).empty());

  Condition c = good;
  c.type = "";
  status.conditions = {c};
  EXPECT_EQ(validate(status).at(0).path, "status.conditions[0].type");

  status.conditions = {good, good};
  auto errors = validate(status);
  ASSERT_EQ(errors.size(), 1u) << listErrors(errors);
  EXPECT_EQ(toString(errors[0]),
            "status.conditions[1].type: duplicate condition type \"Programmed\"");

  for (const char* reason : {"", "1Bad", "Bad,", "Bad:", "Bad reason"}) {
    c = good;
    c.reason = reason;
    status.conditions = {c};
    EXPECT_EQ(validate(status).at(0).path, "status.conditions[0].reason") << reason;
  }
  for (const char* reason : {"A", "Nic_Updated", "a:b,c_"}) {
    c = good;
    c.reason = reason;
    status.conditions = {c};
    EXPECT_TRUE(validate(status).empty()) << reason;
  }
  c = good;
  c.lastTransitionTime = "";
  status.conditions = {c};
  EXPECT_EQ(validate(status).at(0).path, "status.conditions[0].lastTransitionTime");
  c = good;
  c.observedGeneration = -1;
  status.conditions = {c};
  EXPECT_EQ(validate(status).at(0).path, "status.conditions[0].observedGeneration");

  status.conditions.assign(17, good);
  for (std::size_t i = 0; i < status.conditions.size(); ++i) {
    status.conditions[i].type = "T" + std::to_string(i);
  }
  EXPECT_EQ(validate(status).at(0).path, "status.conditions");
}

TEST(ValidationTest, PodSubnetStatus) {
  PodSubnetStatus status{.cidr = "10.240.0.0/16", .totalBlocks = 4096, .allocatedBlocks = 1};
  EXPECT_TRUE(validate(status).empty());
  status.cidr = "10.240.0.1/16";
  status.allocatedIPs = -1;
  const auto errors = validate(status);
  ASSERT_EQ(errors.size(), 2u) << listErrors(errors);
  EXPECT_EQ(errors[0].path, "status.cidr");
  EXPECT_EQ(errors[1].path, "status.allocatedIPs");
}

TEST(ValidationTest, IPBlockNameOnlyCheckedOnceSpecIsValid) {
  IPBlock block;
  block.metadata.name = "anything";
  block.spec = {.podSubnet = "pods", .cidr = "10.240.0.17/28", .nodeName = "n"};
  const auto errors = validate(block);
  ASSERT_EQ(errors.size(), 1u) << listErrors(errors);
  EXPECT_EQ(errors[0].path, "spec.cidr");
}

TEST(ValidationUpdateTest, IPBlockSpecIsImmutable) {
  const IPBlockSpec old{.podSubnet = "pods", .cidr = "10.240.0.16/28", .nodeName = "n1"};
  EXPECT_TRUE(validateUpdate(old, old).empty());
  const IPBlockSpec changed{.podSubnet = "pods2", .cidr = "10.240.0.32/28", .nodeName = "n2"};
  const auto errors = validateUpdate(old, changed);
  ASSERT_EQ(errors.size(), 3u) << listErrors(errors);
  EXPECT_EQ(toString(errors[0]),
            "spec.podSubnet: is immutable: delete the block and create a new one instead");
  EXPECT_EQ(errors[1].path, "spec.cidr");
  EXPECT_EQ(errors[2].path, "spec.nodeName");
}

TEST(ValidationUpdateTest, PodSubnetCarvingFieldsAreImmutableTheRestIsNot) {
  const PodSubnetSpec old = v4Spec();
  PodSubnetSpec tuned = old;
  tuned.minFreeIPsPerNode = 64;
  tuned.maxBlocksPerNode = 2;
  tuned.releaseDelaySeconds = 0;
  tuned.nodeSelector = LabelSelector{.matchLabels = {{"pool", "pods"}}};
  tuned.reservedCIDRs = {"10.240.0.0/24"};
  EXPECT_TRUE(validateUpdate(old, tuned).empty()) << listErrors(validateUpdate(old, tuned));

  PodSubnetSpec moved = old;
  moved.cidr.reset();
  moved.azureSubnetID =
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/n";
  moved.blockPrefixLength = 27;
  const auto errors = validateUpdate(old, moved);
  ASSERT_EQ(errors.size(), 3u) << listErrors(errors);
  EXPECT_EQ(errors[0].path, "spec.azureSubnetID");
  EXPECT_EQ(errors[1].path, "spec.cidr");
  EXPECT_EQ(errors[2].path, "spec.blockPrefixLength");
}

TEST(ValidationUpdateTest, AlsoValidatesTheNewSpec) {
  const PodSubnetSpec old = v4Spec();
  PodSubnetSpec bad = old;
  bad.maxBlocksPerNode = 0;
  const auto errors = validateUpdate(old, bad);
  ASSERT_EQ(errors.size(), 1u) << listErrors(errors);
  EXPECT_EQ(errors[0].path, "spec.maxBlocksPerNode");
}

TEST(ValidationTest, DescribeNamesTheObject) {
  const std::vector<FieldError> errors = {{"spec.cidr", "bad"}, {"spec.nodeName", "worse"}};
  EXPECT_EQ(describe("IPBlock", "b", errors),
            "IPBlock \"b\": spec.cidr: bad; spec.nodeName: worse");
}

}  // namespace
}  // namespace vnetipam::api
