// The allocation core without sockets: a real journal in a temp dir, a hand-driven clock.
#include "node-agent/allocation_store.h"

#include <latch>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "lib/ipam/pod_gateway.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/node-agent/temp_dir.h"

namespace vnetipam::agent {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

ipam::Prefix cidr(std::string_view text) { return *ipam::Prefix::parse(text); }

class AllocationStoreTest : public ::testing::Test {
 protected:
  AllocationStoreTest() { start(); }

  // (Re)opens the journal and recovers a store from it, as the agent does at start.
  void start(ipam::JournalOptions journalOptions = {}) {
    store_.reset();
    journal_.reset();
    auto opened = ipam::Journal::open(dir_.path() / "allocations.journal", journalOptions);
    ASSERT_TRUE(opened) << opened.error().message;
    journal_ = std::move(opened->first);
    auto store = AllocationStore::recover(
        *journal_, opened->second,
        StoreOptions{.nodeName = "n1", .cooldown = 30s, .gcGrace = 60s, .compactAfterEntries = 50},
        clock_, &metrics_);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
  }
  // What the agent does once the informer has synced: blocks in, then ready.
  void serve(std::vector<ApiBlock> blocks) {
    for (const auto& b : blocks)
      store_->upsertBlock(b);
    store_->apiSynced();
    store_->setReady(true);
  }
  void restart(std::vector<ApiBlock> blocks) {
    start();
    serve(std::move(blocks));
  }

  Response allocate(const std::string& id, const std::string& ifName = "eth0",
                    const std::string& pod = "", const std::string& podUID = "") {
    Response r = store_->handle(Request{.op = Op::kAllocate,
                                        .owner = {.containerID = id, .ifName = ifName},
                                        .podNamespace = pod.empty() ? "" : "default",
                                        .podName = pod,
                                        .podUID = podUID});
    checkInvariants();
    return r;
  }
  // The requests of a plugin that names its network (the configuration's "name").
  Request in(const std::string& network, Op op, const std::string& id,
             const std::string& ifName = "eth0") {
    return Request{.op = op, .network = network, .owner = {.containerID = id, .ifName = ifName}};
  }
  Response allocateIn(const std::string& network, const std::string& id,
                      const std::string& ifName = "eth0") {
    Response r = store_->handle(in(network, Op::kAllocate, id, ifName));
    checkInvariants();
    return r;
  }
  Response gcOf(const std::string& network, std::vector<ipam::Owner> valid) {
    return store_->handle(
        Request{.op = Op::kGc, .network = network, .validAttachments = std::move(valid)});
  }
  static std::set<std::string> owners(const Response& r) {
    std::set<std::string> out;
    for (const auto& a : r.allocations)
      out.insert(a.owner.containerID + "/" + a.owner.ifName);
    return out;
  }
  std::set<std::string> collected() {
    std::set<std::string> out;
    for (const GcRelease& g : store_->collectGarbage(std::nullopt))
      out.insert(g.allocation.owner.containerID + "/" + g.allocation.owner.ifName);
    checkInvariants();
    return out;
  }
  Response release(const std::string& id, const std::string& ifName = "eth0") {
    Response r =
        store_->handle(Request{.op = Op::kRelease, .owner = {.containerID = id, .ifName = ifName}});
    checkInvariants();
    return r;
  }
  std::string addressOf(const Response& r) {
    EXPECT_TRUE(r.ok) << r.message << " " << r.details;
    EXPECT_EQ(r.allocations.size(), 1u);
    return r.allocations.empty() ? "" : r.allocations[0].address.toString();
  }
  void checkInvariants() {
    auto v = store_->invariantViolation();
    EXPECT_FALSE(v) << *v;
  }
  std::set<std::string> listed() {
    std::set<std::string> out;
    for (const auto& a : store_->handle(Request{.op = Op::kList}).allocations) {
      out.insert(a.owner.containerID + "/" + a.owner.ifName + "=" + a.address.toString());
    }
    return out;
  }

  static ApiBlock ready(std::string name, std::string_view prefix) {
    return ApiBlock{.name = std::move(name), .cidr = cidr(prefix), .ready = true};
  }

  TempDir dir_;
  base::testing::FakeClock clock_{ipam::TimePoint(std::chrono::hours(500'000))};
  AgentMetrics metrics_{std::make_shared<prometheus::Registry>()};
  std::unique_ptr<ipam::Journal> journal_;
  std::unique_ptr<AllocationStore> store_;
};

TEST_F(AllocationStoreTest, AllocatesFromAReadyBlockAndARetryGetsTheSameAddress) {
  serve({ready("pods-10-0-0-0-30", "10.0.0.0/30")});
  const Response first = allocate("c1", "eth0", "p1");
  EXPECT_EQ(addressOf(first), "10.0.0.0");
  EXPECT_EQ(first.allocations[0].blockName, "pods-10-0-0-0-30");
  EXPECT_EQ(first.allocations[0].block, cidr("10.0.0.0/30"));
  EXPECT_EQ(first.allocations[0].podName, "p1");
  EXPECT_EQ(addressOf(allocate("c1", "eth0", "p1")), "10.0.0.0");
  EXPECT_EQ(addressOf(allocate("c1", "net1")), "10.0.0.1") << "another interface, another owner";
  EXPECT_EQ(journal_->stats().durableSeq, journal_->stats().lastSeq)
      << "an answered allocation is fsynced";
}

TEST_F(AllocationStoreTest, UsageListsEachBlocksAllocationsByAddress) {
  serve({ready("a", "10.0.0.0/30"), ready("b", "10.0.1.0/30")});
  addressOf(allocate("c1", "eth0", "p1", "u1"));
  addressOf(allocate("c2", "eth0", "p2"));
  ASSERT_TRUE(release("c1").ok);
  addressOf(allocate("c3", "eth0", "p3", "u3"));  // after c2 in time, before it by address
  for (const BlockUsage& u : store_->usage()) {
    EXPECT_EQ(u.used, static_cast<std::int64_t>(u.allocations.size())) << u.name;
    if (u.name != "a") continue;
    ASSERT_EQ(u.allocations.size(), 2u);
    EXPECT_LT(u.allocations[0].address, u.allocations[1].address);
    std::set<std::string> owners;
    for (const Allocation& a : u.allocations)
      owners.insert(a.owner.containerID + "/" + a.podName + "/" + a.podUID);
    EXPECT_EQ(owners, (std::set<std::string>{"c2/p2/", "c3/p3/u3"}));
  }
}

// An admin's release request: the store decides it against its own journal order, and keeps that
// order across a restart and a compaction (the stale sandbox's allocation is older than the one
// the pod shows).
TEST_F(AllocationStoreTest, AReleaseRequestFreesOnlyAProvablyDeadOwnerInJournalOrder) {
  serve({ready("a", "10.0.0.0/29")});
  const std::string old = addressOf(allocate("c-old", "eth0", "web", "u1"));
  const std::string current = addressOf(allocate("c-new", "eth0", "web", "u1"));
  const std::string inflight = addressOf(allocate("c-inflight", "eth0", "web", "u1"));
  std::map<std::string, std::optional<PodState>> pods{
      {"default/web", PodState{.uid = "u1", .ips = {current}}}};
  const AllocationStore::PodStateLookup lookup =
      [&](const std::string& ns, const std::string& name) { return pods[ns + "/" + name]; };
  auto ask = [&](const std::string& address, const std::string& id) {
    return store_->releaseOnRequest(
        "a",
        api::ReleaseRequest{.address = address, .owner = {.containerID = id, .ifName = "eth0"}},
        lookup);
  };
  // Across a restart and a compaction, the journal order is kept.
  ASSERT_TRUE(store_->compactIfNeeded(/*force=*/true));
  restart({ready("a", "10.0.0.0/29")});

  EXPECT_EQ(ask(old, "c-wrong").reason, kRefuseOtherOwner);
  EXPECT_EQ(ask(inflight, "c-inflight").reason, kRefuseNotSuperseded)
      << "newer than what the pod shows: its ADD may be in flight";
  EXPECT_EQ(ask(current, "c-new").reason, kRefusePodUsesAddress);
  EXPECT_EQ(listed().size(), 3u);
  const auto released = ask(old, "c-old");
  EXPECT_TRUE(released.release) << released.why;
  EXPECT_EQ(released.reason, kReleaseStaleSandbox);
  EXPECT_EQ(listed(),
            (std::set<std::string>{"c-new/eth0=" + current, "c-inflight/eth0=" + inflight}));
  EXPECT_EQ(ask(old, "c-old").reason, kRefuseNotHeld) << "a repeated request is harmless";
  EXPECT_EQ(journal_->stats().durableSeq, journal_->stats().lastSeq) << "fsynced";

  pods.erase("default/web");
  EXPECT_EQ(ask(inflight, "c-inflight").reason, kReleasePodGone);
  restart({ready("a", "10.0.0.0/29")});
  EXPECT_EQ(listed(), std::set<std::string>{"c-new/eth0=" + current}) << "journalled";
}

// The protocol refuses a NUL in either part of an owner; the store must not depend on that. With
// the parts joined by a NUL, these two owners were one: the second got the first one's address and
// neither could release it for good.
TEST_F(AllocationStoreTest, OwnersWhosePartsJoinAlikeAreDistinct) {
  serve({ready("pods-10-0-0-0-30", "10.0.0.0/30")});
  const std::string idA("a\0b", 3), ifA = "c";
  const std::string idB = "a", ifB("b\0c", 3);
  const std::string first = addressOf(allocate(idA, ifA));
  const std::string second = addressOf(allocate(idB, ifB));
  EXPECT_NE(first, second);
  EXPECT_EQ(addressOf(allocate(idA, ifA)), first) << "a retry still finds its own";
  restart({ready("pods-10-0-0-0-30", "10.0.0.0/30")});
  const auto listedAfterRestart = store_->handle(Request{.op = Op::kList}).allocations;
  ASSERT_EQ(listedAfterRestart.size(), 2u);
  for (const Allocation& a : listedAfterRestart) {
    EXPECT_EQ(a.address.toString(), a.owner.containerID == idA ? first : second);
    EXPECT_EQ(a.owner.ifName, a.owner.containerID == idA ? ifA : ifB);
  }
  const Response released = release(idB, ifB);
  ASSERT_TRUE(released.ok);
  ASSERT_EQ(released.allocations.size(), 1u);
  EXPECT_EQ(released.allocations[0].address.toString(), second);
  EXPECT_EQ(
      store_->handle(Request{.op = Op::kCheck, .owner = {.containerID = idA, .ifName = ifA}}).ok,
      true)
      << "releasing one owner leaves the other";
  EXPECT_EQ(released.allocations[0].owner.containerID, idB);
  ASSERT_TRUE(release(idA, ifA).ok);
  EXPECT_TRUE(listed().empty());
}

// The journal records containerID and ifName as fields of their own; records as an earlier agent
// wrote them (an allocation, one released later, a snapshot) load into the struct-keyed index.
TEST_F(AllocationStoreTest, AJournalWrittenByAnEarlierAgentLoads) {
  store_.reset();
  ASSERT_TRUE(journal_->compact(
      R"({"v":1,"blocks":[{"b":"pods-10-0-0-0-29","c":"10.0.0.0/29",)"
      R"("alloc":[{"ip":"10.0.0.1","id":"old1","if":"eth0","ns":"default","pod":"p1"}],)"
      R"("cool":[]}]})",
      journal_->lastSeq()));
  for (
      const char* entry :
      {R"({"t":"a","b":"pods-10-0-0-0-29","c":"10.0.0.0/29","ip":"10.0.0.2","id":"old2","if":"net1","ns":"default","pod":"p2","uid":"u2"})",
       R"({"t":"a","b":"pods-10-0-0-0-29","c":"10.0.0.0/29","ip":"10.0.0.3","id":"old3","if":"eth0","ns":"default","pod":"p3"})",
       R"({"t":"r","b":"pods-10-0-0-0-29","c":"10.0.0.0/29","ip":"10.0.0.3","id":"old3","if":"eth0","at":0})"}) {
    ASSERT_TRUE(journal_->appendDurable(std::string_view(entry)));
  }
  restart({ready("pods-10-0-0-0-29", "10.0.0.0/29")});
  EXPECT_EQ(listed(), (std::set<std::string>{"old1/eth0=10.0.0.1", "old2/net1=10.0.0.2"}));
  EXPECT_EQ(addressOf(allocate("old2", "net1")), "10.0.0.2") << "its owner finds it again";
  ASSERT_TRUE(release("old1").ok);
  EXPECT_EQ(listed(), (std::set<std::string>{"old2/net1=10.0.0.2"}));
}

TEST_F(AllocationStoreTest, NotReadyOrNoUsableBlockAnswersTryAgainLater) {
  Response r = allocate("c1");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, ErrorCode::kTryAgainLater);
  EXPECT_NE(r.message.find("not ready"), std::string::npos) << r.message;

  serve({ApiBlock{.name = "b", .cidr = cidr("10.0.0.0/30"), .ready = false}});
  r = allocate("c1");
  EXPECT_EQ(r.code, ErrorCode::kTryAgainLater) << "a Programmed (not Ready) block is not used";
  EXPECT_NE(r.message.find("no free address on node n1"), std::string::npos) << r.message;
}

TEST_F(AllocationStoreTest, ExhaustionAnswersElevenAndCooldownHoldsReleasedAddresses) {
  serve({ready("b", "10.0.0.0/31")});
  const std::string a = addressOf(allocate("c1"));
  addressOf(allocate("c2"));
  Response full = allocate("c3");
  ASSERT_FALSE(full.ok);
  EXPECT_EQ(full.code, ErrorCode::kTryAgainLater);

  const Response released = release("c1");
  ASSERT_TRUE(released.ok);
  ASSERT_EQ(released.allocations.size(), 1u);
  EXPECT_EQ(released.allocations[0].address.toString(), a);
  EXPECT_EQ(allocate("c3").code, ErrorCode::kTryAgainLater) << "still cooling";
  clock_.advance(29s);
  EXPECT_EQ(allocate("c3").code, ErrorCode::kTryAgainLater) << "still cooling";
  clock_.advance(1s);
  EXPECT_EQ(addressOf(allocate("c3")), a);
}

TEST_F(AllocationStoreTest, ReleaseIsIdempotentAndOnlyTheOwnerReleases) {
  serve({ready("b", "10.0.0.0/30")});
  addressOf(allocate("c1"));
  Response other = release("c2");
  EXPECT_TRUE(other.ok);
  EXPECT_TRUE(other.allocations.empty());
  EXPECT_EQ(listed().size(), 1u);
  EXPECT_EQ(release("c1").allocations.size(), 1u);
  EXPECT_TRUE(release("c1").allocations.empty());
  EXPECT_TRUE(release("c1").ok);
}

// A runtime told that DEL succeeded never retries it: the release must be as durable as an
// allocation before the answer, and a release that cannot be made durable says so.
TEST_F(AllocationStoreTest, AnAnsweredReleaseIsFsyncedAndAFailedFsyncAnswersIoFailure) {
  bool failSync = false;
  start({.injectFault = [&](ipam::JournalFileOp op) {
    return failSync && op == ipam::JournalFileOp::kAppendSync ? EIO : 0;
  }});
  serve({ready("a", "10.0.0.0/30")});
  addressOf(allocate("c1"));
  addressOf(allocate("c2"));
  const auto syncsBefore = journal_->stats().syncs;
  ASSERT_TRUE(release("c1").ok);
  EXPECT_EQ(journal_->stats().durableSeq, journal_->stats().lastSeq)
      << "an answered release is fsynced";
  EXPECT_EQ(journal_->stats().syncs, syncsBefore + 1);
  EXPECT_TRUE(release("c1").ok) << "a repeated release is still ok";
  EXPECT_EQ(journal_->stats().syncs, syncsBefore + 1) << "nothing new to make durable";

  failSync = true;
  const Response r = release("c2");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, ErrorCode::kIoFailure);
  failSync = false;
  // After a restart the unconfirmed release may come back as a leak, never as a reuse: c2
  // still holds its address or nobody does.
  restart({ready("a", "10.0.0.0/30")});
  EXPECT_FALSE(listed().contains("c1/eth0=10.0.0.0")) << "the acknowledged release stays";
}

TEST_F(AllocationStoreTest, CheckVersionAndStatus) {
  serve({ready("b", "10.0.0.0/30")});
  addressOf(allocate("c1"));
  Response check =
      store_->handle({.op = Op::kCheck, .owner = {.containerID = "c1", .ifName = "eth0"}});
  EXPECT_TRUE(check.ok);
  Response unknown =
      store_->handle({.op = Op::kCheck, .owner = {.containerID = "c9", .ifName = "eth0"}});
  EXPECT_EQ(unknown.code, ErrorCode::kUnknownContainer);
  Response future = store_->handle({.version = 2, .op = Op::kStatus});
  EXPECT_EQ(future.code, ErrorCode::kIncompatibleVersion);
  EXPECT_NE(future.details.find("version 1"), std::string::npos);
  Response status = store_->handle({.op = Op::kStatus});
  EXPECT_TRUE(status.ready);
  EXPECT_EQ(status.freeIPs, 3u);
}

TEST_F(AllocationStoreTest, FillsTheFullestUsableBlockFirst) {
  serve({ready("a", "10.0.0.0/30"), ready("b", "10.0.1.0/30")});
  addressOf(allocate("c1"));  // both empty: the first by name
  store_->upsertBlock(ready("c", "10.0.2.0/30"));
  for (int i = 2; i <= 4; ++i) {
    EXPECT_EQ(allocate("c" + std::to_string(i)).allocations.at(0).blockName, "a");
  }
  EXPECT_EQ(allocate("c5").allocations.at(0).blockName, "b");
}

TEST_F(AllocationStoreTest, ABlockLeavingReadyGetsNoNewAllocationsButKeepsItsOwn) {
  serve({ready("a", "10.0.0.0/30")});
  const std::string held = addressOf(allocate("c1"));
  store_->upsertBlock(
      ApiBlock{.name = "a", .cidr = cidr("10.0.0.0/30"), .ready = true, .deleting = true});
  EXPECT_EQ(allocate("c2").code, ErrorCode::kTryAgainLater);
  EXPECT_EQ(addressOf(allocate("c1")), held) << "a retry still answers";
  store_->removeBlock("a");
  EXPECT_EQ(listed(), std::set<std::string>{"c1/eth0=" + held}) << "never lose an allocation";
  EXPECT_EQ(store_->usage().size(), 1u);
  EXPECT_FALSE(store_->usage()[0].inApi);
  release("c1");
  EXPECT_TRUE(store_->usage().empty()) << "an empty orphan is dropped";
}

TEST_F(AllocationStoreTest, RestartKeepsAllocationsAndCooling) {
  serve({ready("a", "10.0.0.0/30")});
  const std::string a1 = addressOf(allocate("c1", "eth0", "p1"));
  const std::string a2 = addressOf(allocate("c2"));
  release("c2");
  const auto before = listed();

  clock_.advance(10s);
  restart({ready("a", "10.0.0.0/30")});
  EXPECT_EQ(listed(), before);
  EXPECT_EQ(addressOf(allocate("c1", "eth0", "p1")), a1) << "a retried ADD after a restart";
  // c2's address still cools (released 10 s ago); the other two are free.
  std::set<std::string> handed;
  for (const char* id : {"n1", "n2"})
    handed.insert(addressOf(allocate(id)));
  EXPECT_FALSE(handed.contains(a2));
  EXPECT_FALSE(handed.contains(a1));
  EXPECT_EQ(allocate("n3").code, ErrorCode::kTryAgainLater);
  clock_.advance(20s);
  EXPECT_EQ(addressOf(allocate("n3")), a2);
}

TEST_F(AllocationStoreTest, ABlockGoneFromTheApiWhileDownIsKeptAndReported) {
  serve({ready("a", "10.0.0.0/30"), ready("b", "10.0.1.0/30")});
  const std::string held = addressOf(allocate("c1"));  // in a
  start();
  store_->upsertBlock(ready("b", "10.0.1.0/30"));
  EXPECT_EQ(store_->apiSynced(), std::vector<std::string>{"a"});
  store_->setReady(true);
  EXPECT_EQ(listed(), std::set<std::string>{"c1/eth0=" + held});
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(allocate("x" + std::to_string(i)).allocations.at(0).blockName, "b");
  }
  EXPECT_EQ(allocate("x9").code, ErrorCode::kTryAgainLater) << "nothing from the orphan";
}

TEST_F(AllocationStoreTest, GcReleasesAllocationsOfGonePodsAfterTheGrace) {
  serve({ready("a", "10.0.0.0/29")});
  addressOf(allocate("c1", "eth0", "alive"));
  const std::string gone = addressOf(allocate("c2", "eth0", "gone"));
  addressOf(allocate("c3"));  // no pod recorded: only CNI GC can collect it
  auto exists = AllocationStore::PodLookup([](const std::string& ns, const std::string& name) {
    return ns == "default" && name == "alive" ? LivePod("uid-alive") : std::nullopt;
  });

  EXPECT_TRUE(store_->collectGarbage(exists).empty()) << "first seen missing: grace starts";
  EXPECT_TRUE(store_->collectGarbage(std::nullopt).empty()) << "pods not synced: no decision";
  clock_.advance(59s);
  EXPECT_TRUE(store_->collectGarbage(exists).empty());
  clock_.advance(1s);
  auto released = store_->collectGarbage(exists);
  checkInvariants();
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].allocation.address.toString(), gone);
  EXPECT_EQ(released[0].reason, kReasonPodGone);
  EXPECT_EQ(released[0].why, "pod default/gone no longer exists on this node");
  EXPECT_EQ(listed().size(), 2u);
}

TEST_F(AllocationStoreTest, GcReleasesTheAllocationOfARecreatedPodAndKeepsTheNewOnes) {
  serve({ready("a", "10.0.0.0/29")});
  const std::string old = addressOf(allocate("old", "eth0", "web-0", "uid-A"));
  const std::string fresh = addressOf(allocate("new", "eth0", "web-0", "uid-B"));
  const std::string legacy = addressOf(allocate("legacy", "eth0", "web-0"));  // older plugin
  // web-0 was deleted and recreated: the API shows it with uid B.
  auto lookup = AllocationStore::PodLookup([](const std::string& ns, const std::string& name) {
    return ns == "default" && name == "web-0" ? LivePod("uid-B") : std::nullopt;
  });
  EXPECT_TRUE(store_->collectGarbage(lookup).empty()) << "the grace starts";
  clock_.advance(59s);
  EXPECT_TRUE(store_->collectGarbage(lookup).empty());
  clock_.advance(1s);
  auto released = store_->collectGarbage(lookup);
  checkInvariants();
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].allocation.owner.containerID, "old");
  EXPECT_EQ(released[0].allocation.address.toString(), old);
  EXPECT_EQ(released[0].allocation.podUID, "uid-A");
  EXPECT_EQ(released[0].reason, kReasonPodGone);
  EXPECT_EQ(released[0].why, "pod default/web-0 was recreated (uid uid-B, allocation's uid-A)");
  EXPECT_EQ(listed(), (std::set<std::string>{"new/eth0=" + fresh, "legacy/eth0=" + legacy}))
      << "the live pod's allocation and one without a UID (name only, as before) are kept";
}

TEST_F(AllocationStoreTest, ARecordedPodUIDSurvivesARestartAndIsListed) {
  serve({ready("a", "10.0.0.0/29")});
  addressOf(allocate("c1", "eth0", "web-0", "uid-A"));
  addressOf(allocate("c2", "eth0", "web-1"));
  restart({ready("a", "10.0.0.0/29")});
  std::map<std::string, std::string> uids;
  for (const auto& a : store_->handle(Request{.op = Op::kList}).allocations)
    uids[a.owner.containerID] = a.podUID;
  EXPECT_EQ(uids, (std::map<std::string, std::string>{{"c1", "uid-A"}, {"c2", ""}}));
  ASSERT_TRUE(store_->compactIfNeeded(/*force=*/true));
  restart({ready("a", "10.0.0.0/29")});
  Response checked =
      store_->handle(Request{.op = Op::kCheck, .owner = {.containerID = "c1", .ifName = "eth0"}});
  ASSERT_TRUE(checked.ok) << checked.message;
  EXPECT_EQ(checked.allocations.at(0).podUID, "uid-A") << "through a compacted snapshot too";
  auto recreated =
      AllocationStore::PodLookup([](const std::string&, const std::string& name) -> LivePod {
        return name == "web-0" ? LivePod("uid-B") : std::nullopt;
      });
  store_->collectGarbage(recreated);
  clock_.advance(60s);
  EXPECT_EQ(store_->collectGarbage(recreated).size(), 2u)
      << "web-0 recreated after the restart, web-1 gone";
}

TEST(PodVerdictTest, ComparesUIDsOnlyWhenTheAllocationRecordedOne) {
  EXPECT_EQ(podVerdict("uid-A", std::nullopt), PodVerdict::kGone);
  EXPECT_EQ(podVerdict("uid-A", LivePod("uid-A")), PodVerdict::kKeep);
  EXPECT_EQ(podVerdict("uid-A", LivePod("uid-B")), PodVerdict::kRecreated);
  // No UID recorded (an older plugin, an older journal): namespace/name decides, as before.
  EXPECT_EQ(podVerdict("", LivePod("uid-B")), PodVerdict::kKeep);
  EXPECT_EQ(podVerdict("", std::nullopt), PodVerdict::kGone);
  // A pod object without metadata.uid: nothing to compare.
  EXPECT_EQ(podVerdict("uid-A", LivePod("")), PodVerdict::kKeep);
}

TEST_F(AllocationStoreTest, APodThatShowsUpLateIsNotCollected) {
  serve({ready("a", "10.0.0.0/29")});
  addressOf(allocate("c1", "eth0", "late"));
  bool visible = false;
  auto exists = AllocationStore::PodLookup([&](const std::string&, const std::string&) {
    return visible ? LivePod("uid") : std::nullopt;
  });
  store_->collectGarbage(exists);
  clock_.advance(30s);
  visible = true;
  store_->collectGarbage(exists);
  visible = false;
  clock_.advance(40s);
  EXPECT_TRUE(store_->collectGarbage(exists).empty()) << "the grace restarts after it was seen";
}

TEST_F(AllocationStoreTest, CniGcMarksUnlistedAttachmentsAndReleasesThemAfterTheGrace) {
  serve({ready("a", "10.0.0.0/29")});
  addressOf(allocate("keep"));
  addressOf(allocate("stale"));
  addressOf(allocate("retried"));
  Response marked = store_->handle(Request{.op = Op::kGc, .validAttachments = {{"keep", "eth0"}}});
  ASSERT_TRUE(marked.ok);
  EXPECT_EQ(marked.allocations.size(), 2u);
  clock_.advance(30s);
  addressOf(allocate("retried"));  // the runtime still uses it: unmarked
  clock_.advance(30s);
  auto released = store_->collectGarbage(std::nullopt);
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].allocation.owner.containerID, "stale");
  EXPECT_EQ(released[0].reason, kReasonCniGc);
  checkInvariants();
}

// Several networks on one pod: eth0 and eth1 of one container are two attachments. Releasing or
// collecting eth1 leaves eth0 allocated, checkable, and at its address.
TEST_F(AllocationStoreTest, TwoInterfacesOfOneContainerAreTwoAttachments) {
  serve({ready("a", "10.0.0.0/29")});
  const std::string eth0 = addressOf(allocate("pod", "eth0"));
  const std::string eth1 = addressOf(allocate("pod", "eth1"));
  EXPECT_NE(eth0, eth1);
  const Response released = release("pod", "eth1");
  ASSERT_TRUE(released.ok);
  ASSERT_EQ(released.allocations.size(), 1u);
  EXPECT_EQ(released.allocations[0].address.toString(), eth1);
  const Response check =
      store_->handle(Request{.op = Op::kCheck, .owner = {.containerID = "pod", .ifName = "eth0"}});
  EXPECT_EQ(addressOf(check), eth0);
  EXPECT_FALSE(
      store_->handle(Request{.op = Op::kCheck, .owner = {.containerID = "pod", .ifName = "eth1"}})
          .ok);

  // The same network twice: its CNI GC listing only eth0 collects only eth1.
  ASSERT_TRUE(release("pod", "eth0").ok);
  const std::string first = addressOf(allocateIn("net", "pod", "eth0"));
  const std::string again = addressOf(allocateIn("net", "pod", "eth1"));
  ASSERT_TRUE(gcOf("net", {{"pod", "eth0"}}).ok);
  clock_.advance(61s);
  auto collected = store_->collectGarbage(std::nullopt);
  ASSERT_EQ(collected.size(), 1u);
  EXPECT_EQ(collected[0].allocation.owner.ifName, "eth1");
  EXPECT_EQ(collected[0].allocation.address.toString(), again);
  EXPECT_EQ(listed(), (std::set<std::string>{"pod/eth0=" + first}));
  checkInvariants();
}

TEST_F(AllocationStoreTest, CompactionKeepsEverythingAcrossARestart) {
  serve({ready("a", "10.0.0.0/26")});
  for (int i = 0; i < 40; ++i)
    addressOf(allocate("c" + std::to_string(i)));
  for (int i = 0; i < 40; i += 3)
    release("c" + std::to_string(i));
  const auto before = listed();
  auto compacted = store_->compactIfNeeded();
  ASSERT_TRUE(compacted) << compacted.error().message;
  EXPECT_TRUE(*compacted);
  EXPECT_EQ(journal_->stats().records, 1u);
  clock_.advance(1s);
  restart({ready("a", "10.0.0.0/26")});
  EXPECT_EQ(listed(), before);
  // 64 - 26 held - 14 cooling = 24 free.
  EXPECT_EQ(store_->freeIPs(), 24u);
}

TEST_F(AllocationStoreTest, AFailedFsyncAnswersIoFailureAndNeverHandsTheAddressOutTwice) {
  bool failSync = false;
  start({.injectFault = [&](ipam::JournalFileOp op) {
    return failSync && op == ipam::JournalFileOp::kAppendSync ? EIO : 0;
  }});
  serve({ready("a", "10.0.0.0/30")});
  const std::string first = addressOf(allocate("c1"));
  failSync = true;
  Response r = allocate("c2");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, ErrorCode::kIoFailure);
  failSync = false;
  // The journal is failed for good; memory still holds c2's address (a leak, not a reuse).
  EXPECT_EQ(allocate("c3").code, ErrorCode::kIoFailure);
  std::set<std::string> addresses;
  for (const auto& a : store_->handle({.op = Op::kList}).allocations) {
    EXPECT_TRUE(addresses.insert(a.address.toString()).second) << a.address.toString();
  }
  // After a restart only what was durable is back.
  restart({ready("a", "10.0.0.0/30")});
  EXPECT_TRUE(listed().contains("c1/eth0=" + first));
}

TEST_F(AllocationStoreTest, RandomOperationsKeepInvariantsAndSurviveRestarts) {
  serve({ready("a", "10.0.0.0/28"), ready("b", "10.0.0.16/29")});
  std::mt19937 rng(7);
  std::map<std::string, std::string> model;  // owner -> address
  for (int step = 0; step < 2000; ++step) {
    const std::string id = "c" + std::to_string(rng() % 30);
    switch (rng() % 10) {
      case 0: clock_.advance(std::chrono::seconds(rng() % 20)); break;
      case 1:
        if (step % 7 == 0) {
          restart({ready("a", "10.0.0.0/28"), ready("b", "10.0.0.16/29")});
          std::map<std::string, std::string> got;
          for (const auto& a : store_->handle({.op = Op::kList}).allocations) {
            got[a.owner.containerID] = a.address.toString();
          }
          ASSERT_EQ(got, model) << "step " << step;
        }
        break;
      case 2: ASSERT_TRUE(store_->compactIfNeeded()); break;
      case 3:
      case 4:
      case 5: {
        Response r = release(id);
        ASSERT_TRUE(r.ok);
        ASSERT_EQ(r.allocations.empty(), !model.contains(id));
        model.erase(id);
        break;
      }
      default: {
        Response r = allocate(id);
        if (!r.ok) {
          ASSERT_EQ(r.code, ErrorCode::kTryAgainLater);
          ASSERT_FALSE(model.contains(id));
          break;
        }
        const std::string address = r.allocations.at(0).address.toString();
        if (auto it = model.find(id); it != model.end()) {
          ASSERT_EQ(it->second, address);
        }
        for (const auto& [other, a] : model) {
          if (other != id) {
            ASSERT_NE(a, address) << "assigned twice at step " << step;
          }
        }
        model[id] = address;
      }
    }
  }
}

TEST_F(AllocationStoreTest, ConcurrentClientsNeverShareAnAddress) {
  serve({ready("a", "10.0.0.0/24")});
  constexpr int kThreads = 8, kRounds = 200;
  std::latch go(kThreads);
  std::mutex mu;
  std::map<std::string, std::string> holders;  // address -> owner, while held
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.arrive_and_wait();
      for (int i = 0; i < kRounds; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i % 20);
        Response r = store_->handle(
            Request{.op = Op::kAllocate, .owner = {.containerID = id, .ifName = "eth0"}});
        if (!r.ok) {
          if (r.code != ErrorCode::kTryAgainLater) ++errors;
          continue;
        }
        const std::string address = r.allocations.at(0).address.toString();
        {
          std::lock_guard lock(mu);
          auto [it, inserted] = holders.emplace(address, id);
          if (!inserted && it->second != id) ++errors;
        }
        if (i % 3 == 0) {
          std::lock_guard lock(mu);  // release under the lock: the map mirrors the store
          store_->handle(
              Request{.op = Op::kRelease, .owner = {.containerID = id, .ifName = "eth0"}});
          holders.erase(address);
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(errors.load(), 0);
  checkInvariants();
}

}  // namespace
}  // namespace vnetipam::agent

// ---- persisted blocks, Invalid blocks and draining ------------------------------------------

namespace vnetipam::agent {
namespace {

TEST_F(AllocationStoreTest, AnInvalidBlockIsNeverServed) {
  ApiBlock invalid = ready("pods-10-0-0-0-30", "10.0.0.0/30");
  invalid.invalid = true;
  serve({invalid});
  EXPECT_EQ(allocate("c1").code, ErrorCode::kTryAgainLater);
  EXPECT_TRUE(store_->servedBlocks().empty());
  EXPECT_EQ(store_->freeIPs(), 0u);
  invalid.invalid = false;
  store_->upsertBlock(invalid);
  EXPECT_EQ(addressOf(allocate("c1")), "10.0.0.0");
}

TEST_F(AllocationStoreTest, PersistedBlocksServeUntilTheApiSyncsAndAreDroppedIfItDoesNotShowThem) {
  serve({ready("a", "10.0.0.0/30")});
  const std::string held = addressOf(allocate("c1"));
  // Restart without the API server: the journal's allocation is held, the persisted blocks serve.
  start();
  store_->servePersisted(
      {{.name = "a", .cidr = cidr("10.0.0.0/30")}, {.name = "gone", .cidr = cidr("10.0.1.0/30")}});
  store_->setReady(true);
  EXPECT_EQ(addressOf(allocate("c1")), held) << "the journal's allocation is kept";
  EXPECT_NE(addressOf(allocate("c2")), held);
  EXPECT_EQ(store_->servedBlocks().size(), 2u);
  for (const BlockUsage& u : store_->usage()) {
    EXPECT_FALSE(u.inApi) << u.name << ": not reported before the API confirms it";
  }
  // The API answers: it shows "a" only. "gone" is no longer served.
  store_->upsertBlock(ready("a", "10.0.0.0/30"));
  store_->apiSynced();
  const auto served = store_->servedBlocks();
  ASSERT_EQ(served.size(), 1u);
  EXPECT_EQ(served[0].name, "a");
  for (const BlockUsage& u : store_->usage()) {
    if (u.name == "a") {
      EXPECT_TRUE(u.inApi);
    }
  }
  EXPECT_TRUE(store_->drainable("gone"));
  checkInvariants();
}

TEST_F(AllocationStoreTest, APersistedBlockDoesNotOverrideWhatTheApiShowed) {
  ApiBlock deleting = ready("a", "10.0.0.0/30");
  deleting.deleting = true;
  store_->upsertBlock(deleting);
  store_->servePersisted({{.name = "a", .cidr = cidr("10.0.0.0/30")}});
  store_->setReady(true);
  EXPECT_EQ(allocate("c1").code, ErrorCode::kTryAgainLater);
  EXPECT_TRUE(store_->servedBlocks().empty());
}

TEST_F(AllocationStoreTest, ADeletingBlockIsDrainableOnceEmptyAndTheHookSaysSo) {
  serve({ready("a", "10.0.0.0/30")});
  addressOf(allocate("c1"));
  std::vector<std::string> emptied;
  store_->setOnBlockEmptied([&](const std::string& name) { emptied.push_back(name); });
  EXPECT_FALSE(store_->drainable("a")) << "served";
  ApiBlock deleting = ready("a", "10.0.0.0/30");
  deleting.deleting = true;
  store_->upsertBlock(deleting);
  EXPECT_TRUE(store_->servedBlocks().empty());
  EXPECT_FALSE(store_->drainable("a")) << "still holds c1's address";
  EXPECT_EQ(allocate("c2").code, ErrorCode::kTryAgainLater) << "a deleting block gets nothing";
  EXPECT_TRUE(emptied.empty());
  ASSERT_TRUE(release("c1").ok);
  EXPECT_EQ(emptied, std::vector<std::string>{"a"});
  EXPECT_TRUE(store_->drainable("a"));
  EXPECT_TRUE(store_->drainable("never-seen"));
}

// ---- dual stack ----

Request dualAllocate(const std::string& id, const std::string& pod = "") {
  return Request{.op = Op::kAllocate,
                 .owner = {.containerID = id, .ifName = "eth0"},
                 .podNamespace = pod.empty() ? "" : "default",
                 .podName = pod,
                 .families = {ipam::Family::kV4, ipam::Family::kV6}};
}

std::vector<std::string> addresses(const Response& r) {
  EXPECT_TRUE(r.ok) << r.message << " " << r.details;
  std::vector<std::string> out;
  for (const Allocation& a : r.allocations)
    out.push_back(a.address.toString());
  return out;
}

TEST_F(AllocationStoreTest, ADualStackNodeServesOneAddressPerFamilyAndARetryTheSamePair) {
  serve({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/126")});
  const Response first = store_->handle(dualAllocate("c1", "p1"));
  checkInvariants();
  EXPECT_EQ(addresses(first), (std::vector<std::string>{"10.0.0.0", "fd00::"}));
  ASSERT_EQ(first.allocations.size(), 2u);
  EXPECT_EQ(first.allocations[0].gateway, ipam::kPodGatewayV4);
  EXPECT_EQ(first.allocations[1].gateway, ipam::kPodGatewayV6);
  EXPECT_EQ(first.allocations[1].blockName, "v6");
  EXPECT_EQ(first.allocations[1].podName, "p1");
  EXPECT_EQ(store_->handle(dualAllocate("c1", "p1")), first) << "a retried ADD: the same pair";
  EXPECT_EQ(journal_->stats().durableSeq, journal_->stats().lastSeq);
  EXPECT_EQ(addresses(store_->handle(
                Request{.op = Op::kCheck, .owner = {.containerID = "c1", .ifName = "eth0"}})),
            (std::vector<std::string>{"10.0.0.0", "fd00::"}))
      << "CHECK covers both";
  // A plugin of the previous release names no families: IPv4 alone, as before.
  EXPECT_EQ(addressOf(allocate("old", "eth0")), "10.0.0.1");
  EXPECT_EQ(listed(),
            (std::set<std::string>{"c1/eth0=10.0.0.0", "c1/eth0=fd00::", "old/eth0=10.0.0.1"}));
  const Response released = release("c1");
  EXPECT_EQ(addresses(released), (std::vector<std::string>{"10.0.0.0", "fd00::"}));
  EXPECT_EQ(journal_->stats().durableSeq, journal_->stats().lastSeq);
  EXPECT_EQ(listed(), (std::set<std::string>{"old/eth0=10.0.0.1"}));
  // Both survive a restart; so do their releases.
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2"))),
            (std::vector<std::string>{"10.0.0.2", "fd00::1"}));
  restart({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/126")});
  EXPECT_EQ(listed(),
            (std::set<std::string>{"old/eth0=10.0.0.1", "c2/eth0=10.0.0.2", "c2/eth0=fd00::1"}));
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2"))),
            (std::vector<std::string>{"10.0.0.2", "fd00::1"}));
}

TEST_F(AllocationStoreTest, BlocksAreCountedByStateAndFamily) {
  const auto gauges = [this] {
    return prometheus::TextSerializer().Serialize(metrics_.registry()->Collect());
  };
  // Every state of each family is there from the start, at 0.
  EXPECT_NE(gauges().find("vnetipam_agent_blocks{family=\"ipv6\",state=\"usable\"} 0"),
            std::string::npos)
      << gauges();
  serve({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/126"),
         ApiBlock{.name = "v6-pending", .cidr = cidr("fd00::10/126"), .ready = false}});
  const std::string text = gauges();
  for (const char* line : {"vnetipam_agent_blocks{family=\"ipv4\",state=\"usable\"} 1",
                           "vnetipam_agent_blocks{family=\"ipv6\",state=\"usable\"} 1",
                           "vnetipam_agent_blocks{family=\"ipv6\",state=\"not_ready\"} 1",
                           "vnetipam_agent_blocks{family=\"ipv4\",state=\"not_ready\"} 0"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  // A block gone from the API while it holds an address is orphaned, in its own family.
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c1"))),
            (std::vector<std::string>{"10.0.0.0", "fd00::"}));
  store_->removeBlock("v6");
  EXPECT_NE(gauges().find("vnetipam_agent_blocks{family=\"ipv6\",state=\"orphaned\"} 1"),
            std::string::npos)
      << gauges();
  EXPECT_NE(gauges().find("vnetipam_agent_blocks{family=\"ipv4\",state=\"orphaned\"} 0"),
            std::string::npos)
      << gauges();
}

TEST_F(AllocationStoreTest, TheFamilyOfABlockDecidesWhatItServes) {
  // IPv6 only: no IPv4 address, and a plugin that can take only IPv4 is refused rather than
  // handed an IPv6 address it cannot use.
  serve({ready("v6", "fd00::/126")});
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c1"))), (std::vector<std::string>{"fd00::"}));
  const Response legacy = allocate("old");
  EXPECT_FALSE(legacy.ok);
  EXPECT_EQ(legacy.code, ErrorCode::kTryAgainLater);
  EXPECT_NE(legacy.message.find("no free address on node n1"), std::string::npos) << legacy.message;
  EXPECT_EQ(store_->freeIPs(), 3u);
  // IPv4 only, asked for both: one IPv4 address, as today.
  store_->upsertBlock(ready("v4", "10.0.0.0/30"));
  store_->removeBlock("v6");  // holds c1's address: orphaned, not served
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2"))), (std::vector<std::string>{"10.0.0.0"}));
  checkInvariants();
}

TEST_F(AllocationStoreTest, WhenTheSecondFamilyCannotBeHadTheFirstIsGivenBack) {
  serve({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/127")});
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c1"))).size(), 2u);
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2"))).size(), 2u);
  EXPECT_EQ(store_->freeIPs(), 0u) << "IPv6 is the scarcest family";
  const ipam::Seq before = journal_->lastSeq();
  for (int i = 0; i < 5; ++i) {  // a runtime retrying the ADD
    const Response r = store_->handle(dualAllocate("c3"));
    checkInvariants();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.code, ErrorCode::kTryAgainLater);
    EXPECT_NE(r.message.find("no free IPv6 address on node n1"), std::string::npos) << r.message;
  }
  EXPECT_EQ(journal_->lastSeq(), before) << "a refused allocate journals nothing";
  EXPECT_EQ(listed().size(), 4u);
  // The IPv4 addresses it took were never answered: free at once, not cooling.
  EXPECT_EQ(addressOf(allocate("old")), "10.0.0.2");
  EXPECT_EQ(addressOf(allocate("old2")), "10.0.0.3");
  // The same for an IPv6 block that is not Ready yet: the family is served, so ADD waits for it.
  restart({ready("v4b", "10.0.1.0/30"),
           ApiBlock{.name = "v6b", .cidr = cidr("fd00:1::/126"), .ready = false}});
  const Response pending = store_->handle(dualAllocate("c4"));
  EXPECT_EQ(pending.code, ErrorCode::kTryAgainLater);
  EXPECT_FALSE(listed().contains("c4/eth0=10.0.1.0"));
}

// A crash between the two appends of a dual-stack allocate leaves the journal with the first
// address alone. It is held by its owner after the restart (never handed to another), and the
// owner's retried ADD completes the pair with it; DEL frees both.
TEST_F(AllocationStoreTest, ACrashBetweenTheTwoRecordsLeavesTheFirstHeldByItsOwner) {
  ASSERT_TRUE(journal_->appendDurable(std::string_view(
      R"({"t":"a","b":"v4","c":"10.0.0.0/31","ip":"10.0.0.0","id":"c1","if":"eth0","ns":"default","pod":"p1"})")));
  restart({ready("v4", "10.0.0.0/31"), ready("v6", "fd00::/126")});
  EXPECT_EQ(listed(), (std::set<std::string>{"c1/eth0=10.0.0.0"}));
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2"))),
            (std::vector<std::string>{"10.0.0.1", "fd00::"}))
      << "another owner never gets the half-allocated address";
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c1", "p1"))),
            (std::vector<std::string>{"10.0.0.0", "fd00::1"}));
  checkInvariants();
  EXPECT_EQ(addresses(release("c1")), (std::vector<std::string>{"10.0.0.0", "fd00::1"}));
  EXPECT_EQ(listed(), (std::set<std::string>{"c2/eth0=10.0.0.1", "c2/eth0=fd00::"}));
}

// The second append fails (a half-written record, as ENOSPC leaves): the allocate answers 5 and
// journals the release of the first, so after a restart nobody holds either address.
TEST_F(AllocationStoreTest, AFailedSecondRecordIsRolledBackInTheJournal) {
  int appends = 0;
  bool failSecond = false;
  start({.injectFault = [&](ipam::JournalFileOp op) {
    if (op != ipam::JournalFileOp::kAppendWrite || !failSecond) return 0;
    return ++appends == 2 ? ENOSPC : 0;
  }});
  serve({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/126")});
  failSecond = true;
  const Response r = store_->handle(dualAllocate("c1"));
  checkInvariants();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, ErrorCode::kIoFailure);
  EXPECT_EQ(appends, 3) << "the first record, the failed second, the first's release";
  EXPECT_TRUE(listed().empty());
  restart({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/126")});
  EXPECT_TRUE(listed().empty()) << "the journal holds the release of the first record";
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2"))),
            (std::vector<std::string>{"10.0.0.1", "fd00::"}))
      << "10.0.0.0 cools after its journalled release";
}

TEST_F(AllocationStoreTest, GcReleasesBothFamiliesOfAGonePod) {
  serve({ready("v4", "10.0.0.0/30"), ready("v6", "fd00::/126")});
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c1", "p1"))).size(), 2u);
  EXPECT_EQ(addresses(store_->handle(dualAllocate("c2", "p2"))).size(), 2u);
  const AllocationStore::PodLookup lookup = [](const std::string&, const std::string& name) {
    return name == "p2" ? LivePod(std::string()) : LivePod();
  };
  EXPECT_TRUE(store_->collectGarbage(lookup).empty());
  clock_.advance(61s);
  const auto released = store_->collectGarbage(lookup);
  std::set<std::string> freed;
  for (const GcRelease& g : released)
    freed.insert(g.allocation.address.toString());
  EXPECT_EQ(freed, (std::set<std::string>{"10.0.0.0", "fd00::"}));
  // CNI GC: an attachment missing from the valid list loses both families.
  Response marked = store_->handle(Request{.op = Op::kGc, .validAttachments = {}});
  EXPECT_EQ(marked.allocations.size(), 2u);
  clock_.advance(61s);
  EXPECT_EQ(store_->collectGarbage(std::nullopt).size(), 2u);
  EXPECT_TRUE(listed().empty());
  checkInvariants();
}

// A runtime sends one CNI GC per network, listing that network's attachments only: a GC of
// net-a judges net-a's allocations and leaves net-b's (the same pod's eth1) alone, whatever the
// grace period does, and the other way round.
TEST_F(AllocationStoreTest, TheGcOfOneNetworkLeavesAnotherNetworksAllocationsAlone) {
  serve({ready("a", "10.0.0.0/29")});
  const std::string eth0 = addressOf(allocateIn("net-a", "pod", "eth0"));
  const std::string eth1 = addressOf(allocateIn("net-b", "pod", "eth1"));
  addressOf(allocateIn("net-a", "gone", "eth0"));
  const Response marked = gcOf("net-a", {{"pod", "eth0"}});
  ASSERT_TRUE(marked.ok);
  EXPECT_EQ(owners(marked), (std::set<std::string>{"gone/eth0"}));
  EXPECT_EQ(marked.allocations.at(0).network, "net-a");
  clock_.advance(61s);
  EXPECT_EQ(collected(), (std::set<std::string>{"gone/eth0"}));
  EXPECT_EQ(listed(), (std::set<std::string>{"pod/eth0=" + eth0, "pod/eth1=" + eth1}));

  // net-b's GC with its attachment gone: eth1 goes, net-a's eth0 stays.
  EXPECT_EQ(owners(gcOf("net-b", {})), (std::set<std::string>{"pod/eth1"}));
  clock_.advance(61s);
  EXPECT_EQ(collected(), (std::set<std::string>{"pod/eth1"}));
  EXPECT_EQ(listed(), (std::set<std::string>{"pod/eth0=" + eth0}));

  // A mark one network's GC set is cleared only by that network's GC, not by another's.
  addressOf(allocateIn("net-b", "pod", "eth1"));
  EXPECT_EQ(owners(gcOf("net-b", {})), (std::set<std::string>{"pod/eth1"}));
  EXPECT_TRUE(owners(gcOf("net-a", {{"pod", "eth0"}, {"pod", "eth1"}})).empty());
  clock_.advance(61s);
  EXPECT_EQ(collected(), (std::set<std::string>{"pod/eth1"}));
}

// Allocations that record no network were made by a plugin that sent none, which ran only the
// agent's own network: a GC of that network (or one that names none) judges them, except one of
// a sandbox it lists alive under another interface; a GC of any other network never does.
TEST_F(AllocationStoreTest, AnAllocationWithoutANetworkIsJudgedOnlyByTheAgentsNetwork) {
  serve({ready("a", "10.0.0.0/29")});
  addressOf(allocate("legacy", "eth0", "p1"));
  addressOf(allocate("sandbox", "net1", "p2"));
  addressOf(allocateIn(std::string(kAgentNetworkName), "sandbox", "eth0"));
  addressOf(allocateIn("other", "sandbox", "net2"));
  EXPECT_TRUE(owners(gcOf("other", {{"sandbox", "net2"}})).empty())
      << "another network's GC does not judge them";
  EXPECT_TRUE(owners(gcOf("other", {})) == (std::set<std::string>{"sandbox/net2"}));
  ASSERT_TRUE(gcOf("other", {{"sandbox", "net2"}}).ok);  // unmark
  // The agent's network lists its own attachment: the sandbox lives, so its unnamed net1 stays;
  // legacy/eth0 is not listed and its sandbox not either.
  EXPECT_EQ(owners(gcOf(std::string(kAgentNetworkName), {{"sandbox", "eth0"}})),
            (std::set<std::string>{"legacy/eth0"}));
  // A plugin that names no network judges only what no network was named for.
  EXPECT_EQ(owners(gcOf("", {})), (std::set<std::string>{"legacy/eth0", "sandbox/net1"}));
  ASSERT_TRUE(gcOf("", {{"sandbox", "net1"}}).ok);
  clock_.advance(61s);
  EXPECT_EQ(collected(), (std::set<std::string>{"legacy/eth0"}));
  // Not leaked for ever: once the sandbox is gone from the agent's network's list, it goes.
  EXPECT_EQ(owners(gcOf(std::string(kAgentNetworkName), {})),
            (std::set<std::string>{"sandbox/eth0", "sandbox/net1"}));
  clock_.advance(61s);
  EXPECT_EQ(collected(), (std::set<std::string>{"sandbox/eth0", "sandbox/net1"}));
  EXPECT_EQ(listed().size(), 1u) << "other's sandbox/net2 is left";
}

// One network namespace has one interface of a name: an ADD for an attachment that holds an
// address for another network is refused (102) and takes nothing; the runtime's DEL after it
// frees nothing; the owning network's retried ADD, CHECK and DEL work as before, and so do the
// requests of a plugin that names no network.
TEST_F(AllocationStoreTest, AnAttachmentOfAnotherNetworkIsNeitherHandedOverNorReleased) {
  serve({ready("a", "10.0.0.0/29")});
  const std::string held = addressOf(allocateIn("net-a", "c1"));
  const Response refused = allocateIn("net-b", "c1");
  ASSERT_FALSE(refused.ok);
  EXPECT_EQ(refused.code, ErrorCode::kInterfaceExists);
  EXPECT_NE(refused.message.find("net-a"), std::string::npos) << refused.message;
  EXPECT_NE(refused.message.find(held), std::string::npos) << refused.message;
  EXPECT_EQ(listed(), (std::set<std::string>{"c1/eth0=" + held}));

  const Response del = store_->handle(in("net-b", Op::kRelease, "c1"));
  ASSERT_TRUE(del.ok);
  EXPECT_TRUE(del.allocations.empty());
  EXPECT_EQ(store_->handle(in("net-b", Op::kCheck, "c1")).code, ErrorCode::kUnknownContainer);
  EXPECT_EQ(listed(), (std::set<std::string>{"c1/eth0=" + held}));

  EXPECT_EQ(addressOf(allocateIn("net-a", "c1")), held) << "net-a's retried ADD";
  EXPECT_EQ(addressOf(store_->handle(in("net-a", Op::kCheck, "c1"))), held);
  EXPECT_EQ(addressOf(allocate("c1")), held) << "a plugin that names no network";
  EXPECT_EQ(addressOf(store_->handle(in("", Op::kCheck, "c1"))), held);
  const Response released = store_->handle(in("net-a", Op::kRelease, "c1"));
  EXPECT_EQ(addressOf(released), held);
  EXPECT_TRUE(listed().empty());

  // An allocation without a network (an earlier plugin's) is any network's: a plugin upgraded
  // between an ADD and its retry gets the same address.
  const std::string legacy = addressOf(allocate("c2"));
  EXPECT_EQ(addressOf(allocateIn("net-b", "c2")), legacy);
  EXPECT_EQ(addressOf(store_->handle(in("net-b", Op::kRelease, "c2"))), legacy);
  checkInvariants();
}

// The network is in the journal record and the snapshot: it survives a restart from either, and
// the answers carry it.
TEST_F(AllocationStoreTest, TheNetworkSurvivesRestartsAndCompaction) {
  serve({ready("a", "10.0.0.0/29")});
  addressOf(allocateIn("net-a", "c1"));
  addressOf(allocate("c2"));
  const auto networks = [&] {
    std::map<std::string, std::string> out;
    for (const auto& a : store_->handle(Request{.op = Op::kList}).allocations)
      out[a.owner.containerID] = a.network;
    return out;
  };
  const std::map<std::string, std::string> want{{"c1", "net-a"}, {"c2", ""}};
  EXPECT_EQ(networks(), want);
  restart({ready("a", "10.0.0.0/29")});
  EXPECT_EQ(networks(), want) << "replayed from the records";
  ASSERT_TRUE(store_->compactIfNeeded(/*force=*/true));
  restart({ready("a", "10.0.0.0/29")});
  EXPECT_EQ(networks(), want) << "loaded from the snapshot";
  EXPECT_EQ(owners(gcOf("net-b", {})), std::set<std::string>{}) << "still net-a's after restarts";
  EXPECT_EQ(owners(gcOf("net-a", {})), (std::set<std::string>{"c1/eth0"}));
}

}  // namespace
}  // namespace vnetipam::agent
