// api/conditions.h: lastTransitionTime moves only with the status, whoever writes the condition,
// and a bounded message is cut at a UTF-8 character boundary.
#include "api/conditions.h"

#include <string>

#include <gtest/gtest.h>

namespace vnetipam::api {
namespace {

constexpr std::string_view kT0 = "2026-01-01T00:00:00Z";
constexpr std::string_view kT1 = "2026-01-01T00:05:00Z";

Condition make(std::string status, std::string time = "") {
  return Condition{.type = "Programmed",
                   .status = std::move(status),
                   .reason = "R",
                   .message = "m",
                   .lastTransitionTime = std::move(time),
                   .observedGeneration = 0,
                   .extra = nlohmann::json::object()};
}

TEST(ConditionsTest, TheTimeIsKeptWhileTheStatusHolds) {
  const Condition before = make("False", std::string(kT0));
  EXPECT_EQ(transitionTime(&before, "False", kT1), kT0);
  EXPECT_EQ(transitionTime(&before, "True", kT1), kT1) << "a new status is a transition";
  EXPECT_EQ(transitionTime(nullptr, "False", kT1), kT1) << "a first condition starts now";
  const Condition untimed = make("False");
  EXPECT_EQ(transitionTime(&untimed, "False", kT1), kT1) << "a condition without a time gets one";
}

TEST(ConditionsTest, NextConditionKeepsItsOwnFieldsAndTakesOnlyTheTime) {
  const Condition before = make("True", std::string(kT0));
  Condition next = make("True", "ignored");
  next.reason = "Other";
  next.observedGeneration = 7;
  next.extra = {{"future", 1}};
  const Condition written = nextCondition(&before, next, kT1);
  EXPECT_EQ(written.lastTransitionTime, kT0);
  EXPECT_EQ(written.reason, "Other");
  EXPECT_EQ(written.observedGeneration, 7);
  EXPECT_EQ(written.extra, (nlohmann::json{{"future", 1}}));
  EXPECT_EQ(nextCondition(&before, make("False"), kT1).lastTransitionTime, kT1);
}

TEST(ConditionsTest, AMessageIsBoundedOnlyWhenAsked) {
  Condition next = make("False");
  next.message = std::string(100, 'x');
  EXPECT_EQ(nextCondition(nullptr, next, kT0).message.size(), 100u);
  const std::string cut = nextCondition(nullptr, next, kT0, 10).message;
  EXPECT_EQ(cut, "xxxxxxx...");
}

TEST(ConditionsTest, ABoundedMessageNeverEndsInACutCharacter) {
  EXPECT_EQ(boundedMessage("short", 10), "short");
  // "é" is two bytes: a cut after byte 8 would split the one that starts at byte 7.
  const std::string text = "abcdef" + std::string("\xC3\xA9\xC3\xA9\xC3\xA9");
  const std::string cut = boundedMessage(text, 10);
  EXPECT_LE(cut.size(), 10u);
  EXPECT_EQ(cut, "abcdef...");
}

}  // namespace
}  // namespace vnetipam::api
