// The words of nic_conditions.h: reasons that fit metav1.Condition whatever the cloud sent,
// bounded messages, and lastTransitionTime moving only with the status.
#include "controller/nic_conditions.h"

#include <regex>

#include <gtest/gtest.h>

namespace vnetipam::controller {
namespace {

bool validReason(const std::string& reason) {
  static const std::regex kPattern("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$");
  return reason.size() <= kMaxReasonLength && std::regex_match(reason, kPattern);
}

TEST(NicConditionsTest, TheCloudsCodeIsTheReasonMadeValid) {
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kBadRequest, "PrivateIPAddressInUse"),
            "PrivateIPAddressInUse");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kServerError, "InternalServerError"),
            "InternalServerError");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kHttp, "some-code.with spaces"),
            "SomeCodeWithSpaces");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kBadRequest, "42-é-Odd:code"), "OddCode");
  for (const char* code : {"", "---", "9", "é"}) {
    EXPECT_EQ(nicFailureReason(azure::ErrorCode::kBadRequest, code), "BadRequest") << code;
  }
  const std::string longCode(500, 'A');
  EXPECT_TRUE(validReason(nicFailureReason(azure::ErrorCode::kHttp, longCode)));
}

TEST(NicConditionsTest, WithoutACodeTheKindOfFailureIsTheReason) {
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kTransport, ""), "TransportError");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kConnectFailed, ""), "ConnectFailed");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kThrottled, ""), "Throttled");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kServerError, ""), "ServerError");
  EXPECT_EQ(nicFailureReason(azure::ErrorCode::kTimeout, ""), "OperationTimedOut");
  for (int c = 0; c <= static_cast<int>(azure::ErrorCode::kHttp); ++c) {
    EXPECT_TRUE(validReason(nicFailureReason(static_cast<azure::ErrorCode>(c), ""))) << c;
  }
}

TEST(NicConditionsTest, MessagesAreBoundedOnACharacterBoundary) {
  EXPECT_EQ(boundedMessage("short"), "short");
  std::string text(kMaxConditionMessage - 4, 'x');
  text += "\xc3\xa9\xc3\xa9\xc3\xa9";  // three two-byte characters across the cut
  const std::string cut = boundedMessage(text);
  EXPECT_LE(cut.size(), kMaxConditionMessage);
  EXPECT_TRUE(cut.ends_with("x...")) << "no half character before the ellipsis";
}

TEST(NicConditionsTest, LastTransitionTimeMovesOnlyWithTheStatus) {
  const Time t0 = std::chrono::sys_days{std::chrono::year{2026} / 1 / 2};
  const api::Condition first =
      nextCondition(std::nullopt, api::kConditionProgrammed, false, "Throttled", "429", t0);
  EXPECT_EQ(first.lastTransitionTime, "2026-01-02T00:00:00Z");
  EXPECT_EQ(first.status, "False");
  const api::Condition other =
      nextCondition(first, api::kConditionProgrammed, false, "PrivateIPAddressInUse", "in use",
                    t0 + std::chrono::hours(1));
  EXPECT_EQ(other.lastTransitionTime, first.lastTransitionTime) << "still False";
  EXPECT_EQ(other.reason, "PrivateIPAddressInUse");
  const api::Condition back = nextCondition(other, api::kConditionProgrammed, true, "PrefixOnNIC",
                                            "on", t0 + std::chrono::hours(2));
  EXPECT_EQ(back.lastTransitionTime, "2026-01-02T02:00:00Z");

  EXPECT_TRUE(alreadyFailing(other, "PrivateIPAddressInUse"));
  EXPECT_FALSE(alreadyFailing(other, "Throttled"));
  EXPECT_FALSE(alreadyFailing(back, "PrefixOnNIC"));
  EXPECT_FALSE(alreadyFailing(std::nullopt, "Throttled"));
}

}  // namespace
}  // namespace vnetipam::controller
