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

// planNicStatus: the status writes, Events and Node condition of one NIC pass.

const Time kT0 = std::chrono::sys_days{std::chrono::year{2026} / 1 / 2};
const ipam::Prefix kA = *ipam::Prefix::parse("10.240.0.16/28");
const ipam::Prefix kB = *ipam::Prefix::parse("10.240.0.32/28");

NicStatusBlock statusBlock(std::string name, const ipam::Prefix& cidr, api::BlockPhase phase,
                           std::optional<api::Condition> programmed = std::nullopt) {
  return {.block = {.name = std::move(name), .cidr = cidr, .phase = phase},
          .programmed = std::move(programmed),
          .ipConfiguration = "vnetipam-x"};
}

TEST(NicStatusTest, AMoveToReadyCarriesProgrammedTrueInTheSameWrite) {
  const std::vector<NicStatusBlock> blocks = {statusBlock("a", kA, api::BlockPhase::kPending)};
  const std::vector<PhaseChange> changes = {
      {.name = "a", .from = api::BlockPhase::kPending, .to = api::BlockPhase::kReady}};
  const std::vector<ipam::Prefix> onNic = {kA};
  const NicStatusPlan plan = planNicStatus({.blocks = blocks,
                                            .phaseChanges = changes,
                                            .nicPrefixes = onNic,
                                            .nicId = "/nic/a",
                                            .putFailure = {},
                                            .nodeExists = true,
                                            .nodeCondition = {},
                                            .now = kT0});
  ASSERT_EQ(plan.writes.size(), 1u);
  EXPECT_EQ(plan.writes[0].phase, api::BlockPhase::kReady);
  ASSERT_TRUE(plan.writes[0].programmed);
  EXPECT_EQ(plan.writes[0].programmed->status, "True");
  EXPECT_EQ(plan.writes[0].programmed->reason, kReasonPrefixOnNic);
  EXPECT_EQ(plan.writes[0].programmed->message,
            "prefix 10.240.0.16/28 is on NIC /nic/a as ipConfiguration vnetipam-x");
  EXPECT_TRUE(plan.newlyFailing.empty());
  EXPECT_FALSE(plan.nodeCondition) << "a node whose NIC never failed costs no write";
}

TEST(NicStatusTest, AFailedPutMarksTheBlocksItWasToAddOncePerReason) {
  const api::Condition throttled =
      nextCondition(std::nullopt, api::kConditionProgrammed, false, "Throttled", "429", kT0);
  std::vector<NicStatusBlock> blocks = {
      statusBlock("new", kA, api::BlockPhase::kPending),
      statusBlock("same", kB, api::BlockPhase::kPending, throttled),
      statusBlock("on", *ipam::Prefix::parse("10.240.0.48/28"), api::BlockPhase::kReady),
      statusBlock("leaving", *ipam::Prefix::parse("10.240.0.64/28"), api::BlockPhase::kPending),
      statusBlock("refused", *ipam::Prefix::parse("10.240.0.80/28"), api::BlockPhase::kPending)};
  blocks[3].block.deleting = true;
  blocks[4].block.trust = Trust::kInvalid;
  const std::vector<ipam::Prefix> onNic = {*ipam::Prefix::parse("10.240.0.48/28")};
  const NicStatusInput input{.blocks = blocks,
                             .phaseChanges = {},
                             .nicPrefixes = onNic,
                             .nicId = "/nic/a",
                             .putFailure = NicPutFailure{.reason = "Throttled", .message = "m"},
                             .nodeExists = true,
                             .nodeCondition = {},
                             .now = kT0 + std::chrono::hours(1)};
  const NicStatusPlan plan = planNicStatus(input);
  EXPECT_EQ(plan.newlyFailing, std::vector<std::string>{"new"});
  ASSERT_EQ(plan.writes.size(), 1u);
  EXPECT_EQ(plan.writes[0].name, "new");
  EXPECT_EQ(plan.writes[0].phase, std::nullopt) << "a failure keeps the phase";
  EXPECT_EQ(plan.writes[0].programmed->reason, "Throttled");
  ASSERT_TRUE(plan.nodeCondition);
  EXPECT_EQ(plan.nodeCondition->type, api::kNodeConditionNicProgrammed);
  EXPECT_EQ(plan.nodeCondition->status, "False");
  EXPECT_FALSE(plan.nodeRecovered);

  NicStatusInput again = input;
  again.nodeCondition = plan.nodeCondition;
  EXPECT_FALSE(planNicStatus(again).nodeCondition) << "the same failure again: no Node write";
}

TEST(NicStatusTest, AVanishedPrefixSaysWhyInItsPendingWrite) {
  const std::vector<NicStatusBlock> blocks = {statusBlock("a", kA, api::BlockPhase::kReady)};
  const std::vector<PhaseChange> changes = {
      {.name = "a", .from = api::BlockPhase::kReady, .to = api::BlockPhase::kPending}};
  NicStatusInput input{.blocks = blocks,
                       .phaseChanges = changes,
                       .nicPrefixes = {},
                       .nicId = "/nic/a",
                       .putFailure = {},
                       .nodeExists = true,
                       .nodeCondition = {},
                       .now = kT0};
  NicStatusPlan plan = planNicStatus(input);
  ASSERT_EQ(plan.writes.size(), 1u);
  EXPECT_EQ(plan.writes[0].programmed->reason, kReasonPrefixVanished);
  input.putFailure = NicPutFailure{.reason = "PrivateIPAddressInUse", .message = "in use"};
  plan = planNicStatus(input);
  ASSERT_EQ(plan.writes.size(), 1u) << "one write for the block, not two";
  EXPECT_EQ(plan.writes[0].phase, api::BlockPhase::kPending);
  EXPECT_EQ(plan.writes[0].programmed->reason, "PrivateIPAddressInUse");
  EXPECT_EQ(plan.newlyFailing, std::vector<std::string>{"a"});
}

TEST(NicStatusTest, TheNodeConditionTurnsTrueOnlyAfterAFailure) {
  const api::Condition failing =
      nextCondition(std::nullopt, api::kNodeConditionNicProgrammed, false, "Throttled", "429", kT0);
  NicStatusInput input{.blocks = {},
                       .phaseChanges = {},
                       .nicPrefixes = {},
                       .nicId = "/nic/a",
                       .putFailure = {},
                       .nodeExists = true,
                       .nodeCondition = failing,
                       .now = kT0 + std::chrono::hours(1)};
  NicStatusPlan plan = planNicStatus(input);
  ASSERT_TRUE(plan.nodeCondition);
  EXPECT_EQ(plan.nodeCondition->status, "True");
  EXPECT_EQ(plan.nodeCondition->reason, kReasonNicProgrammed);
  EXPECT_EQ(plan.nodeCondition->lastTransitionTime, "2026-01-02T01:00:00Z");
  EXPECT_TRUE(plan.nodeRecovered);

  input.nodeCondition = plan.nodeCondition;
  EXPECT_FALSE(planNicStatus(input).nodeCondition) << "already True";
  input.nodeCondition = failing;
  input.nodeExists = false;
  EXPECT_FALSE(planNicStatus(input).nodeCondition) << "no Node to write";
}

TEST(NicStatusTest, AQuarantinedBlockSaysWhyOnceAndIsNotAmongAFailedPutsBlocks) {
  const std::vector<NicStatusBlock> blocks = {statusBlock("a", kA, api::BlockPhase::kPending),
                                              statusBlock("b", kB, api::BlockPhase::kPending)};
  const std::vector<QuarantinedBlock> quarantined = {
      {.name = "b",
       .why = {.reason = "PrivateIPAddressInUse", .message = "held by nic-x: 10.240.0.40"}}};
  NicStatusInput input{.blocks = blocks,
                       .phaseChanges = {},
                       .nicPrefixes = {},
                       .nicId = "/nic/a",
                       .putFailure = {},
                       .quarantined = quarantined,
                       .nodeExists = true,
                       .nodeCondition = {},
                       .now = kT0};
  NicStatusPlan plan = planNicStatus(input);
  ASSERT_EQ(plan.writes.size(), 1u);
  EXPECT_EQ(plan.writes[0].name, "b");
  EXPECT_EQ(plan.writes[0].phase, std::nullopt) << "stays Pending";
  EXPECT_EQ(plan.writes[0].programmed->status, "False");
  EXPECT_EQ(plan.writes[0].programmed->reason, "PrivateIPAddressInUse");
  EXPECT_EQ(plan.writes[0].programmed->message, "held by nic-x: 10.240.0.40");
  EXPECT_EQ(plan.newlyFailing, std::vector<std::string>{"b"});
  EXPECT_FALSE(plan.nodeCondition) << "the node is not stalled: no Node condition";

  // Said once: the same reason again writes nothing.
  const std::vector<NicStatusBlock> said = {
      statusBlock("a", kA, api::BlockPhase::kPending),
      statusBlock("b", kB, api::BlockPhase::kPending, plan.writes[0].programmed)};
  input.blocks = said;
  EXPECT_TRUE(planNicStatus(input).writes.empty());

  // The PUT of the others fails too: a gets that failure, b keeps its own reason.
  input.blocks = blocks;
  input.putFailure = NicPutFailure{.reason = "Throttled", .message = "429"};
  plan = planNicStatus(input);
  ASSERT_EQ(plan.writes.size(), 2u);
  EXPECT_EQ(plan.writes[0].programmed->reason, "Throttled");
  EXPECT_EQ(plan.writes[1].programmed->reason, "PrivateIPAddressInUse");

  // A Ready block whose prefix vanished and whose CIDR is held goes Pending with the hold's words.
  const std::vector<NicStatusBlock> ready = {statusBlock("b", kB, api::BlockPhase::kReady)};
  const std::vector<PhaseChange> changes = {
      {.name = "b", .from = api::BlockPhase::kReady, .to = api::BlockPhase::kPending}};
  input.blocks = ready;
  input.phaseChanges = changes;
  input.putFailure = {};
  plan = planNicStatus(input);
  ASSERT_EQ(plan.writes.size(), 1u);
  EXPECT_EQ(plan.writes[0].phase, api::BlockPhase::kPending);
  EXPECT_EQ(plan.writes[0].programmed->reason, "PrivateIPAddressInUse");
  EXPECT_EQ(plan.newlyFailing, std::vector<std::string>{"b"});
}

}  // namespace
}  // namespace vnetipam::controller
