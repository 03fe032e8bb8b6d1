// api::matches: Kubernetes label selector semantics, one test per operator and for how the
// requirements combine.
#include "api/selector.h"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vnetipam::api {
namespace {

LabelSelectorRequirement req(std::string key, std::string_view op,
                             std::vector<std::string> values = {}) {
  return {.key = std::move(key), .op = std::string(op), .values = std::move(values)};
}

LabelSelector exprs(std::vector<LabelSelectorRequirement> requirements) {
  return {.matchExpressions = std::move(requirements)};
}

const Labels kBlueA = {{"pool", "blue"}, {"zone", "a"}};
const Labels kGreen = {{"pool", "green"}};
const Labels kNone = {};

TEST(SelectorTest, In) {
  const auto sel = exprs({req("pool", kSelectorOpIn, {"blue", "red"})});
  EXPECT_TRUE(matches(sel, kBlueA));
  EXPECT_FALSE(matches(sel, kGreen));
  EXPECT_FALSE(matches(sel, kNone)) << "In needs the key";
  EXPECT_FALSE(matches(sel, Labels{{"pool", ""}}));
}

TEST(SelectorTest, NotInMatchesNodesWithoutTheKey) {
  const auto sel = exprs({req("pool", kSelectorOpNotIn, {"blue", "red"})});
  EXPECT_FALSE(matches(sel, kBlueA));
  EXPECT_TRUE(matches(sel, kGreen));
  EXPECT_TRUE(matches(sel, kNone));
  EXPECT_TRUE(matches(sel, Labels{{"zone", "a"}}));
}

TEST(SelectorTest, Exists) {
  const auto sel = exprs({req("zone", kSelectorOpExists)});
  EXPECT_TRUE(matches(sel, kBlueA));
  EXPECT_TRUE(matches(sel, Labels{{"zone", ""}})) << "any value, even empty";
  EXPECT_FALSE(matches(sel, kGreen));
  EXPECT_FALSE(matches(sel, kNone));
}

TEST(SelectorTest, DoesNotExist) {
  const auto sel = exprs({req("zone", kSelectorOpDoesNotExist)});
  EXPECT_FALSE(matches(sel, kBlueA));
  EXPECT_FALSE(matches(sel, Labels{{"zone", ""}}));
  EXPECT_TRUE(matches(sel, kGreen));
  EXPECT_TRUE(matches(sel, kNone));
}

TEST(SelectorTest, MatchLabelsNeedEveryLabelWithItsValue) {
  const LabelSelector sel{.matchLabels = {{"pool", "blue"}, {"zone", "a"}}};
  EXPECT_TRUE(matches(sel, kBlueA));
  EXPECT_TRUE(matches(sel, Labels{{"pool", "blue"}, {"zone", "a"}, {"extra", "x"}}));
  EXPECT_FALSE(matches(sel, Labels{{"pool", "blue"}}));
  EXPECT_FALSE(matches(sel, Labels{{"pool", "blue"}, {"zone", "b"}}));
  EXPECT_FALSE(matches(sel, kNone));
  // An empty value is a value: it needs the key.
  const LabelSelector empty_value{.matchLabels = {{"pool", ""}}};
  EXPECT_TRUE(matches(empty_value, Labels{{"pool", ""}}));
  EXPECT_FALSE(matches(empty_value, kNone));
}

TEST(SelectorTest, EveryRequirementMustHold) {
  LabelSelector sel{.matchLabels = {{"pool", "blue"}},
                    .matchExpressions = {req("zone", kSelectorOpIn, {"a", "b"}),
                                         req("spot", kSelectorOpDoesNotExist)}};
  EXPECT_TRUE(matches(sel, kBlueA));
  EXPECT_FALSE(matches(sel, Labels{{"pool", "blue"}, {"zone", "c"}}));
  EXPECT_FALSE(matches(sel, Labels{{"pool", "blue"}, {"zone", "a"}, {"spot", "true"}}));
  EXPECT_FALSE(matches(sel, Labels{{"pool", "green"}, {"zone", "a"}}));
  // Two requirements on one key: both must hold.
  const auto both = exprs({req("zone", kSelectorOpExists), req("zone", kSelectorOpNotIn, {"a"})});
  EXPECT_FALSE(matches(both, kBlueA));
  EXPECT_TRUE(matches(both, Labels{{"zone", "b"}}));
  EXPECT_FALSE(matches(both, kNone));
}

TEST(SelectorTest, NoSelectorAndNoRequirementsSelectEverything) {
  EXPECT_TRUE(matches(std::optional<LabelSelector>(), kNone));
  EXPECT_TRUE(matches(std::optional<LabelSelector>(), kGreen));
  EXPECT_TRUE(matches(LabelSelector{}, kGreen));
  const std::optional<LabelSelector> blue = LabelSelector{.matchLabels = {{"pool", "blue"}}};
  EXPECT_TRUE(matches(blue, kBlueA));
  EXPECT_FALSE(matches(blue, kGreen));
}

TEST(SelectorTest, AnUnknownOperatorMatchesNothing) {
  EXPECT_FALSE(matches(exprs({req("pool", "Gt", {"1"})}), kBlueA));
  EXPECT_FALSE(matches(exprs({req("pool", "", {})}), kNone));
}

TEST(SelectorTest, DescribeSaysItInKubectlsWords) {
  EXPECT_EQ(describe(std::nullopt), "every node");
  EXPECT_EQ(describe(LabelSelector{.matchLabels = {{"pool", "a"}, {"tier", "web"}},
                                   .matchExpressions = {req("zone", "In", {"1", "2"}),
                                                        req("drain", "DoesNotExist", {})}}),
            "pool=a,tier=web,zone In (1,2),drain DoesNotExist");
}

}  // namespace
}  // namespace vnetipam::api
