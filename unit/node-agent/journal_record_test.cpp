#include "node-agent/journal_record.h"

#include <string>

#include <gtest/gtest.h>

#include "unit/node-agent/temp_dir.h"

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
                                     .owner = {.containerID = std::move(id), .ifName = "eth0"},
                                     .podNamespace = "ns",
                                     .podName = "p"}};
}

JournalEntry release(std::string id, std::string_view address) {
  return JournalEntry{.kind = JournalEntry::Kind::kRelease,
                      .blockName = "b",
                      .blockCidr = cidr("10.0.0.0/28"),
                      .allocation = {.address = ip(address),
                                     .owner = {.containerID = std::move(id), .ifName = "eth0"}},
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

// The CNI network is optional both ways: a record without it (an earlier agent's, or an
// allocate that named none) loads with none and is written as before; a record with it is one
// an earlier agent reads (it ignores "net", as this one ignores fields it does not know).
TEST(JournalRecordTest, TheNetworkRoundTripsAndIsOptionalBothWays) {
  JournalEntry withNetwork = allocation("c1", "10.0.0.1");
  withNetwork.allocation.network = "net-b";
  const std::string line = encodeEntry(withNetwork);
  EXPECT_NE(line.find(R"("net":"net-b")"), std::string::npos) << line;
  auto decoded = decodeEntry(line);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, withNetwork);
  EXPECT_EQ(encodeEntry(allocation("c1", "10.0.0.1")).find("net"), std::string::npos);
  EXPECT_EQ(
      encodeEntry(allocation("c1", "10.0.0.1")),
      R"({"b":"b","c":"10.0.0.0/28","id":"c1","if":"eth0","ip":"10.0.0.1","ns":"ns","pod":"p","t":"a"})")
      << "without a network the record is byte for byte what it was";

  // What an earlier agent wrote loads with no network; what a later one may add is ignored.
  auto old = decodeEntry(
      R"({"t":"a","b":"b","c":"10.0.0.0/28","ip":"10.0.0.1","id":"c1","if":"eth0","ns":"ns","pod":"p"})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(old->allocation.network, "");
  auto later = decodeEntry(
      R"({"t":"a","b":"b","c":"10.0.0.0/28","ip":"10.0.0.1","id":"c1","if":"eth0","ns":"ns","pod":"p","net":"n","future":1})");
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->allocation.network, "n");

  RecordedState state;
  applyEntry(state, withNetwork);
  applyEntry(state, allocation("c2", "10.0.0.2"));
  const std::string snapshot = encodeSnapshot(state);
  auto loaded = decodeSnapshot(snapshot);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(*loaded, state);
  EXPECT_EQ(loaded->at("b").allocations.at(ip("10.0.0.1")).network, "net-b");
  EXPECT_EQ(loaded->at("b").allocations.at(ip("10.0.0.2")).network, "");
  EXPECT_NE(snapshot.find(R"("net":"net-b")"), std::string::npos) << snapshot;
  auto oldSnapshot = decodeSnapshot(
      R"({"v":1,"blocks":[{"b":"b","c":"10.0.0.0/28","alloc":[{"ip":"10.0.0.1","id":"c1","if":"eth0","ns":"ns","pod":"p"}],"cool":[]}]})");
  ASSERT_TRUE(oldSnapshot) << oldSnapshot.error().message;
  EXPECT_EQ(oldSnapshot->at("b").allocations.at(ip("10.0.0.1")).network, "");

  // A release names no network (it is keyed by address and owner): it ends a named allocation.
  applyEntry(state, release("c1", "10.0.0.1"));
  EXPECT_FALSE(state.at("b").allocations.contains(ip("10.0.0.1")));
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
  EXPECT_EQ(state.at("b").allocations.at(ip("10.0.0.1")).owner.containerID, "c2");
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
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorruption);
  EXPECT_NE(r.error().message.find("seq 7"), std::string::npos);
}

// A release time past what a TimePoint holds (nanoseconds in 64 bits: the year 2262), or an
// integer past int64, would overflow into another time; the record is refused instead (found by
// the journal fuzzer: the state replayed differed from the state written).
TEST(JournalRecordTest, ReleaseTimesOutsideATimePointAreRefused) {
  const char* const entry =
      R"({"t":"r","b":"b","c":"10.0.0.0/28","ip":"10.0.0.1","id":"c","if":"e","at":)";
  for (const char* at : {"-1", "9223372036855", "9223372036854775807", "9223372036854775808",
                         "18446744073709551615"}) {
    auto decoded = decodeEntry(std::string(entry) + at + "}");
    ASSERT_FALSE(decoded) << at;
    EXPECT_NE(decoded.error().message.find("\"at\""), std::string::npos) << decoded.error().message;
  }
  auto latest = decodeEntry(std::string(entry) + "9223372036854}");
  ASSERT_TRUE(latest) << latest.error().message;
  auto again = decodeEntry(encodeEntry(*latest));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *latest);

  const std::string snapshot =
      R"({"v":1,"blocks":[{"b":"b","c":"10.0.0.0/28","alloc":[],"cool":[{"ip":"10.0.0.1","at":)";
  EXPECT_FALSE(decodeSnapshot(snapshot + "9223372036855}]}]}"));
  EXPECT_TRUE(decodeSnapshot(snapshot + "1700000000000}]}]}"));
}

// A node with more allocations than fit in one entry-sized journal record (1 MiB): its snapshot
// compacts, comes back whole after a restart, and compacts again.
TEST(JournalRecordTest, ASnapshotOverAMebibyteCompactsAndReplays) {
  RecordedState state;
  for (int b = 0; b < 4; ++b) {
    const std::string block = "pods-10-" + std::to_string(b) + "-0-0-20";
    const ipam::Prefix blockCidr = cidr("10." + std::to_string(b) + ".0.0/20");
    for (int i = 1; i <= 2000; ++i) {
      JournalEntry e =
          allocation(std::string(56, 'c') + std::to_string(10'000'000 + b * 10'000 + i),
                     "10." + std::to_string(b) + "." + std::to_string(i / 256) + "." +
                         std::to_string(i % 256));
      e.blockName = block;
      e.blockCidr = blockCidr;
      e.allocation.podName = "web-" + std::to_string(i);
      e.allocation.podUID = "6f0e4b8a-0000-4000-8000-" + std::to_string(100'000'000'000 + i);
      applyEntry(state, e);
    }
  }
  const std::string snapshot = encodeSnapshot(state);
  ASSERT_GT(snapshot.size(), std::size_t{1} << 20);

  testing::TempDir dir;
  const auto path = dir.path() / "allocations.journal";
  JournalEntry released = allocation("", "10.1.0.7");
  released.kind = JournalEntry::Kind::kRelease;
  released.blockName = "pods-10-1-0-0-20";
  released.blockCidr = cidr("10.1.0.0/20");
  released.allocation = state.at(released.blockName).allocations.at(ip("10.1.0.7"));
  released.releasedAt = kAt;
  {
    auto opened = ipam::Journal::open(path);
    ASSERT_TRUE(opened) << opened.error().message;
    auto& journal = *opened->first;
    auto compacted = journal.compact(snapshot, journal.lastSeq());
    ASSERT_TRUE(compacted) << compacted.error().message;
    ASSERT_TRUE(journal.appendDurable(encodeEntry(released)));
  }
  RecordedState expected = state;
  applyEntry(expected, released);
  {
    auto opened = ipam::Journal::open(path);
    ASSERT_TRUE(opened) << opened.error().message;
    auto replayed = replay(opened->second);
    ASSERT_TRUE(replayed) << replayed.error().message;
    EXPECT_EQ(*replayed, expected);
    auto& journal = *opened->first;
    auto again = journal.compact(encodeSnapshot(*replayed), journal.lastSeq());
    ASSERT_TRUE(again) << again.error().message;
  }
  auto opened = ipam::Journal::open(path);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_TRUE(opened->second.entries.empty());
  auto replayed = replay(opened->second);
  ASSERT_TRUE(replayed) << replayed.error().message;
  EXPECT_EQ(*replayed, expected);
}

}  // namespace
}  // namespace vnetipam::agent
