#include "node-agent/journal_record.h"

#include <gtest/gtest.h>

namespace vnetipam::agent {
namespace {

ipam::IPAddress ip(std::string_view text) { return *ipam::IPAddress::parse(text); }
ipam::Prefix cidr(std::string_view text) { return *ipam::Prefix::parse(text); }
const ipam::TimePoint kAt = ipam::TimePoint(std::chrono::milliseconds(1'790'000'000'123));

JournalEntry allocation(std::string id, std::string_view address) {
  return JournalEntry{.kind = JournalEntry::Kind::kAllocate,
                      .blockName = "b",
                      .blockCidr = cidr("10.0.0.0/28"),
                      .allocation = {.address = ip(address),
                                     .containerID = std::move(id),
                                     .ifName = "eth0",
                                     .podNamespace = "ns",
                                     .podName = "p"}};
}

JournalEntry release(std::string id, std::string_view address) {
  return JournalEntry{
      .kind = JournalEntry::Kind::kRelease,
      .blockName = "b",
      .blockCidr = cidr("10.0.0.0/28"),
      .allocation = {.address = ip(address), .containerID = std::move(id), .ifName = "eth0"},
      .releasedAt = kAt};
}

TEST(JournalRecordTest, EntriesRoundTrip) {
  for (const JournalEntry& e : {allocation("c1", "10.0.0.1"), release("c1", "10.0.0.1")}) {
    auto decoded = decodeEntry(encodeEntry(e));
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(*decoded, e) << encodeEntry(e);
  }
}

TEST(JournalRecordTest, APodUIDRoundTripsAndIsOptional) {
  JournalEntry withUID = allocation("c1", "10.0.0.1");
  withUID.allocation.podUID = "6f0e4b8a-uid";
  auto decoded = decodeEntry(encodeEntry(withUID));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, withUID) << encodeEntry(withUID);
  EXPECT_NE(encodeEntry(withUID).find(R"("uid":"6f0e4b8a-uid")"), std::string::npos);
  EXPECT_EQ(encodeEntry(allocation("c1", "10.0.0.1")).find("uid"), std::string::npos)
      << "without a UID the record is what it was before UIDs";

  // A record an agent wrote before UIDs existed loads, with no UID.
  auto old = decodeEntry(
      R"({"t":"a","b":"b","c":"10.0.0.0/28","ip":"10.0.0.1","id":"c1","if":"eth0","ns":"ns","pod":"p"})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(*old, allocation("c1", "10.0.0.1"));

  RecordedState state;
  applyEntry(state, withUID);
  applyEntry(state, allocation("c2", "10.0.0.2"));
  auto snapshot = decodeSnapshot(encodeSnapshot(state));
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  EXPECT_EQ(*snapshot, state);
  EXPECT_EQ(snapshot->at("b").allocations.at(ip("10.0.0.1")).podUID, "6f0e4b8a-uid");
  EXPECT_EQ(snapshot->at("b").allocations.at(ip("10.0.0.2")).podUID, "");

  auto oldSnapshot = decodeSnapshot(
      R"({"v":1,"blocks":[{"b":"b","c":"10.0.0.0/28","alloc":[{"ip":"10.0.0.1","id":"c1","if":"eth0","ns":"ns","pod":"p"}],"cool":[]}]})");
  ASSERT_TRUE(oldSnapshot) << oldSnapshot.error().message;
  EXPECT_EQ(oldSnapshot->at("b").allocations.at(ip("10.0.0.1")),
            allocation("c1", "10.0.0.1").allocation);
}

TEST(JournalRecordTest, SnapshotRoundTrips) {
  RecordedState state;
  applyEntry(state, allocation("c1", "10.0.0.1"));
  applyEntry(state, allocation("c2", "10.0.0.2"));
  applyEntry(state, release("c2", "10.0.0.2"));
  auto decoded = decodeSnapshot(encodeSnapshot(state));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, state);
  ASSERT_EQ(state.at("b").allocations.size(), 1u);
  EXPECT_EQ(state.at("b").released.at(ip("10.0.0.2")), kAt);
}

TEST(JournalRecordTest, AStaleReleaseByAnotherOwnerIsIgnored) {
  RecordedState state;
  applyEntry(state, allocation("c1", "10.0.0.1"));
  applyEntry(state, release("someone-else", "10.0.0.1"));
  EXPECT_EQ(state.at("b").allocations.size(), 1u);
  EXPECT_TRUE(state.at("b").released.empty());
}

TEST(JournalRecordTest, AReallocationEndsTheCooldown) {
  RecordedState state;
  applyEntry(state, allocation("c1", "10.0.0.1"));
  applyEntry(state, release("c1", "10.0.0.1"));
  applyEntry(state, allocation("c2", "10.0.0.1"));
  EXPECT_TRUE(state.at("b").released.empty());
  EXPECT_EQ(state.at("b").allocations.at(ip("10.0.0.1")).containerID, "c2");
}

TEST(JournalRecordTest, UndecodableRecordsAreRefused) {
  for (const char* bad :
       {"", "{}", R"({"t":"x","b":"b","c":"10.0.0.0/28","ip":"10.0.0.1"})",
        R"({"t":"a","b":"b","c":"10.0.0.1/28","ip":"10.0.0.1","id":"c","if":"e"})",
        R"({"t":"r","b":"b","c":"10.0.0.0/28","ip":"10.0.0.1","id":"c","if":"e"})"}) {
    EXPECT_FALSE(decodeEntry(bad)) << bad;
  }
  EXPECT_FALSE(decodeSnapshot(R"({"v":2,"blocks":[]})"));
  EXPECT_FALSE(decodeSnapshot(R"({"v":1,"blocks":[{"b":"x","c":"10.0.0.0/28"}]})"));

  ipam::Recovered recovered;
  recovered.entries.push_back({.seq = 7, .payload = {std::byte{'{'}}});
  auto r = replay(recovered);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ipam::ErrorCode::kCorruption);
  EXPECT_NE(r.error().message.find("seq 7"), std::string::npos);
}

}  // namespace
}  // namespace vnetipam::agent
