// The agent's decision on an admin's release request, and the handler that answers each
// annotation entry once.
#include "node-agent/release_request.h"

#include <gtest/gtest.h>

#include "api/codec.h"
#include "api/constants.h"

namespace vnetipam::agent {
namespace {

using nlohmann::json;

const api::ReleaseRequest kRequest{.address = "10.0.0.9",
                                   .owner = {.containerID = "c-old", .ifName = "eth0"}};

ReleaseFacts stale() {
  return ReleaseFacts{.held = HeldAllocation{.owner = {.containerID = "c-old", .ifName = "eth0"},
                                             .podNamespace = "default",
                                             .podName = "web",
                                             .podUID = "u1",
                                             .allocatedSeq = 5},
                      .pod = PodState{.uid = "u1", .ips = {"10.0.0.4"}},
                      .currentAllocationSeq = 7};
}

TEST(DecideRelease, AStaleSandboxOfALivePodSupersededByANewerAllocationIsReleased) {
  const auto d = decideRelease(kRequest, stale());
  EXPECT_TRUE(d.release);
  EXPECT_EQ(d.reason, kReleaseStaleSandbox);
  EXPECT_NE(d.why.find("10.0.0.4"), std::string::npos) << d.why;
}

TEST(DecideRelease, ANewerAllocationThePodDoesNotShowYetIsAnAddInFlight) {
  ReleaseFacts f = stale();
  f.currentAllocationSeq = 3;  // the pod's shown address is older: this one is the new sandbox
  EXPECT_EQ(decideRelease(kRequest, f).reason, kRefuseNotSuperseded);
  f.currentAllocationSeq.reset();  // the pod shows no address the agent holds for it
  EXPECT_FALSE(decideRelease(kRequest, f).release);
  f.pod->ips.clear();  // its first ADD in flight
  EXPECT_EQ(decideRelease(kRequest, f).reason, kRefuseNotSuperseded);
  f = stale();
  f.held->allocatedSeq = 0;  // order unknown: never released on order
  EXPECT_EQ(decideRelease(kRequest, f).reason, kRefuseNotSuperseded);
}

TEST(DecideRelease, OnlyExactlyTheRequestedOwnerOfAHeldAddress) {
  ReleaseFacts f = stale();
  api::ReleaseRequest other = kRequest;
  other.owner.containerID = "c-wrong";
  auto d = decideRelease(other, f);
  EXPECT_FALSE(d.release);
  EXPECT_EQ(d.reason, kRefuseOtherOwner);
  EXPECT_NE(d.why.find("container c-old interface eth0"), std::string::npos) << d.why;
  other = kRequest;
  other.owner.ifName = "net1";
  EXPECT_EQ(decideRelease(other, f).reason, kRefuseOtherOwner);
  f.held.reset();
  EXPECT_EQ(decideRelease(kRequest, f).reason, kRefuseNotHeld) << "released already: harmless";
}

TEST(DecideRelease, APodGoneOrRecreatedReleasesAPodUsingTheAddressDoesNot) {
  ReleaseFacts f = stale();
  f.pod.reset();
  EXPECT_EQ(decideRelease(kRequest, f).reason, kReleasePodGone);
  f = stale();
  f.pod->uid = "u2";
  f.currentAllocationSeq.reset();
  EXPECT_EQ(decideRelease(kRequest, f).reason, kReleasePodRecreated);
  f.held->podUID = "";  // no UID recorded: namespace/name decides, and the pod is there
  EXPECT_FALSE(decideRelease(kRequest, f).release);
  f = stale();
  f.pod->ips = {"10.0.0.4", "10.0.0.9"};
  EXPECT_EQ(decideRelease(kRequest, f).reason, kRefusePodUsesAddress);
  f = stale();
  f.held->podName = "";
  EXPECT_EQ(decideRelease(kRequest, f).reason, kRefuseNoPodRecorded);
}

TEST(PodStateFromJson, PodIPsElsePodIP) {
  EXPECT_EQ(podStateFromJson(json::parse(R"({"metadata": {"uid": "u"}, "status":
              {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}})"))
                .ips,
            (std::vector<std::string>{"10.0.0.1", "fd00::1"}));
  const PodState s = podStateFromJson(json::parse(R"({"metadata": {"uid": "u"},
                                                     "status": {"podIP": "10.0.0.2"}})"));
  EXPECT_EQ(s.uid, "u");
  EXPECT_EQ(s.ips, std::vector<std::string>{"10.0.0.2"});
  EXPECT_TRUE(podStateFromJson(json::parse(R"({"status": 3})")).ips.empty());
}

json blockWith(const std::string& annotation, const std::string& uid = "uid-b1") {
  json j{{"metadata", {{"name", "b1"}, {"uid", uid}}},
         {"spec", {{"podSubnet", "p"}, {"cidr", "10.0.0.0/28"}, {"nodeName", "n1"}}}};
  if (!annotation.empty()) j["metadata"]["annotations"] = {{api::kReleaseAnnotation, annotation}};
  return j;
}

TEST(ReleaseRequestHandler, AnswersEachEntryOnceAndAgainOnlyAfterItLeft) {
  ReleaseRequestHandler handler;
  std::vector<std::string> decided, answered;
  auto decide = [&](const std::string& block, const api::ReleaseRequest& r) {
    decided.push_back(block + " " + api::describe(r));
    return ReleaseDecision{.release = r.owner.containerID == "c1", .reason = kReleasePodGone};
  };
  auto onAnswer = [&](const std::string&, const std::string& uid, const api::ReleaseRequest& r,
                      const ReleaseDecision& d) {
    answered.push_back(uid + " " + r.owner.containerID + (d.release ? " released" : " refused"));
  };
  const std::string two = api::toAnnotation(
      {{.address = "10.0.0.1", .owner = {.containerID = "c1", .ifName = "eth0"}},
       {.address = "10.0.0.2", .owner = {.containerID = "c2", .ifName = "eth0"}}});
  EXPECT_EQ(handler.sweep({blockWith(two)}, decide, onAnswer), 2u);
  EXPECT_EQ(answered, (std::vector<std::string>{"uid-b1 c1 released", "uid-b1 c2 refused"}));
  EXPECT_EQ(handler.sweep({blockWith(two)}, decide, onAnswer), 0u) << "answered already";
  EXPECT_EQ(decided.size(), 2u);

  // The tool removed c1's entry; c2's stays answered. Written again, c1 is decided afresh.
  const std::string one = api::toAnnotation(
      {{.address = "10.0.0.2", .owner = {.containerID = "c2", .ifName = "eth0"}}});
  EXPECT_EQ(handler.sweep({blockWith(one)}, decide, onAnswer), 0u);
  EXPECT_EQ(handler.sweep({blockWith(two)}, decide, onAnswer), 1u);
  EXPECT_EQ(decided.back(), "b1 10.0.0.1 (container c1 interface eth0)");
  // A block recreated under its name (another uid) is another request.
  EXPECT_EQ(handler.sweep({blockWith(two, "uid-b1-new")}, decide, onAnswer), 2u);
  // No annotation, a malformed one: nothing decided.
  EXPECT_EQ(handler.sweep({blockWith(""), blockWith("{not json")}, decide, onAnswer), 0u);
  EXPECT_EQ(handler.sweep({blockWith(R"([{"address": "10.0.0.1"}])")}, decide, onAnswer), 0u);
}

TEST(ReleaseAnnotation, RoundTripsAndRefusesWhatIsNotAListOfOwners) {
  const std::vector<api::ReleaseRequest> requests{
      {.address = "10.0.0.1", .owner = {.containerID = "c1", .ifName = "eth0"}},
      {.address = "fd00::1",
       .owner = {.containerID = "c2", .ifName = "net1"},
       .extra = {{"note", "x"}}}};
  auto decoded = api::releaseRequestsFromAnnotation(api::toAnnotation(requests));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, requests);
  for (const char* bad : {"", "{}", "[1]", R"([{"address": "a", "containerID": "c"}])",
                          R"([{"address": "a", "containerID": "c", "ifName": "0123456789abcdef"}])",
                          "[[[[[[[[[[]]]]]]]]]]"}) {
    EXPECT_FALSE(api::releaseRequestsFromAnnotation(bad)) << bad;
  }
  std::vector<api::ReleaseRequest> many(
      static_cast<std::size_t>(api::kMaxReleaseRequests) + 1,
      {.address = "a", .owner = {.containerID = "c", .ifName = "e"}});
  EXPECT_FALSE(api::releaseRequestsFromAnnotation(api::toAnnotation(many)));
}

}  // namespace
}  // namespace vnetipam::agent
