#include "lib/ipam/journal.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/ipam/crc32c.h"
#include "unit/lib/base/temp_dir.h"

namespace vnetipam::ipam {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

// ---- helpers ---------------------------------------------------------------------------------

Bytes toBytes(std::string_view s) {
  const auto b = std::as_bytes(std::span(s.data(), s.size()));
  return Bytes(b.begin(), b.end());
}

std::string toString(const Bytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

Bytes readFile(const fs::path& p) {
  Bytes bytes(static_cast<std::size_t>(fs::file_size(p)));
  std::ifstream in(p, std::ios::binary);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(bytes.size())) << "reading " << p;
  return bytes;
}

void writeFile(const fs::path& p, std::span<const std::byte> bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "writing " << p;
}

// Payload of record i: sizes vary (including empty) so cuts land at every kind of boundary.
std::string payloadFor(int i) {
  static constexpr int kSizes[] = {64, 0, 1, 17, 64, 200, 3};
  const int size = kSizes[i % 7];
  std::string s = "rec" + std::to_string(i) + ":";
  while (static_cast<int>(s.size()) < size)
    s += static_cast<char>('a' + (static_cast<std::size_t>(i) + s.size()) % 26);
  return s.substr(0, static_cast<std::size_t>(size));
}

std::vector<std::string> payloads(const Recovered& r) {
  std::vector<std::string> out;
  for (const auto& e : r.entries)
    out.push_back(toString(e.payload));
  return out;
}

std::vector<Seq> seqs(const Recovered& r) {
  std::vector<Seq> out;
  for (const auto& e : r.entries)
    out.push_back(e.seq);
  return out;
}

std::vector<std::string> firstPayloads(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back(payloadFor(i));
  return out;
}

struct Opened {
  std::unique_ptr<Journal> journal;
  Recovered recovered;
};

Opened openOk(const fs::path& p, JournalOptions options = {}) {
  auto r = Journal::open(p, std::move(options));
  if (!r) {
    ADD_FAILURE() << "open " << p << ": " << toString(r.error().code) << ": " << r.error().message;
    return {};
  }
  return Opened{std::move(r->first), std::move(r->second)};
}

// An encoder written independently of journal.cpp: it pins the on-disk format, and builds files
// the writer would never produce (gaps, unknown kinds, foreign versions).
void putLe(Bytes& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i)
    out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

Bytes fileHeader(std::uint32_t version = 1) {
  Bytes h;
  putLe(h, 0x4A504956u, 4);  // "VIPJ"
  putLe(h, version, 4);
  putLe(h, 0, 4);
  putLe(h, crc32c(h), 4);
  return h;
}

void addRecord(Bytes& file, std::uint8_t kind, Seq seq, std::string_view payload) {
  Bytes r;
  putLe(r, 0x52504956u, 4);  // "VIPR"
  putLe(r, payload.size(), 4);
  putLe(r, seq, 8);
  putLe(r, kind, 1);
  putLe(r, 0, 3);
  const auto p = std::as_bytes(std::span(payload.data(), payload.size()));
  putLe(r, crc32cExtend(crc32c(r), p), 4);
  r.insert(r.end(), p.begin(), p.end());
  file.insert(file.end(), r.begin(), r.end());
}

// What the agent's snapshot of a few allocations looks like, near enough.
std::string snapshotOf(int allocations) {
  std::string s;
  for (int i = 1; i <= allocations; ++i)
    s += "10.240.0." + std::to_string(i) + " ctr-" + std::to_string(i) + " default/web-" +
         std::to_string(i) + "\n";
  return s;
}

// A snapshot of at least `bytes` bytes.
std::string snapshotOfSize(std::size_t bytes) {
  std::string s;
  for (int i = 0; s.size() < bytes; ++i)
    s += "10.240." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + " ctr-" +
         std::to_string(i) + " default/web-" + std::to_string(i) + "\n";
  return s;
}

std::uint32_t formatVersion(const Bytes& file) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= std::to_integer<std::uint32_t>(file.at(4 + static_cast<std::size_t>(i))) << (8 * i);
  return v;
}

// Takes every free descriptor but `spare` (under a lowered soft limit, so there are few to
// take), as a process that leaks sockets would; gives them back and restores the limit when it
// goes out of scope. Nothing that needs a descriptor may run in between, assertions included.
class DescriptorExhaustion {
 public:
  explicit DescriptorExhaustion(int spare) {
    ok_ = ::getrlimit(RLIMIT_NOFILE, &saved_) == 0;
    if (!ok_) return;
    rlimit low = saved_;
    low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 512);
    ok_ = ::setrlimit(RLIMIT_NOFILE, &low) == 0;
    while (ok_) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        ok_ = errno == EMFILE;
        break;
      }
      taken_.push_back(fd);
    }
    for (int i = 0; i < spare && !taken_.empty(); ++i) {
      ::close(taken_.back());
      taken_.pop_back();
    }
  }
  ~DescriptorExhaustion() {
    for (int fd : taken_)
      ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  DescriptorExhaustion(const DescriptorExhaustion&) = delete;
  DescriptorExhaustion& operator=(const DescriptorExhaustion&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
  std::vector<int> taken_;
};

class JournalTest : public ::testing::Test {
 protected:
  // Writes n records with appendDurable; returns the file size after each one.
  std::vector<std::uint64_t> writeDurable(Journal& j, int from, int n) {
    std::vector<std::uint64_t> ends;
    for (int i = from; i < from + n; ++i) {
      auto seq = j.appendDurable(payloadFor(i));
      EXPECT_TRUE(seq) << seq.error().message;
      ends.push_back(j.stats().fileBytes);
    }
    return ends;
  }

  base::testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
  fs::path path_ = dir_ / "alloc.journal";
};

// ---- round trip and format -------------------------------------------------------------------

TEST_F(JournalTest, RoundTripKeepsPayloadsAndSeqsAndContinuesNumbering) {
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_TRUE(o.recovered.created);
    EXPECT_TRUE(o.recovered.entries.empty());
    EXPECT_FALSE(o.recovered.snapshot);
    for (int i = 0; i < 10; ++i) {
      auto seq = o.journal->appendDurable(payloadFor(i));
      ASSERT_TRUE(seq) << seq.error().message;
      EXPECT_EQ(*seq, static_cast<Seq>(i + 1));
    }
    const auto st = o.journal->stats();
    EXPECT_EQ(st.records, 10u);
    EXPECT_EQ(st.lastSeq, 10u);
    EXPECT_EQ(st.durableSeq, 10u);
    EXPECT_EQ(st.fileBytes, fs::file_size(path_));
  }
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  EXPECT_FALSE(o.recovered.created);
  EXPECT_FALSE(o.recovered.dropped);
  EXPECT_EQ(payloads(o.recovered), firstPayloads(10));
  EXPECT_EQ(seqs(o.recovered), (std::vector<Seq>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(o.journal->stats().durableSeq, 10u);
  auto next = o.journal->append("eleven");
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 11u);
}

TEST_F(JournalTest, OnDiskFormatIsPinned) {
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ASSERT_TRUE(o.journal->appendDurable("10.240.0.17 web-0"));
    ASSERT_TRUE(o.journal->appendDurable(""));
  }
  Bytes expected = fileHeader();
  addRecord(expected, 1, 1, "10.240.0.17 web-0");
  addRecord(expected, 1, 2, "");
  EXPECT_EQ(readFile(path_), expected);
}

TEST_F(JournalTest, AppendIsDurableOnlyAfterSync) {
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  auto& j = *o.journal;
  ASSERT_TRUE(j.append("a"));
  ASSERT_TRUE(j.append("b"));
  EXPECT_EQ(j.stats().lastSeq, 2u);
  EXPECT_EQ(j.stats().durableSeq, 0u);
  ASSERT_TRUE(j.sync(1));
  EXPECT_EQ(j.stats().durableSeq, 2u) << "one fsync covers everything written before it";
  EXPECT_EQ(j.stats().syncs, 1u);
  ASSERT_TRUE(j.sync(2));
  EXPECT_EQ(j.stats().syncs, 1u) << "already durable: no second fsync";
  auto bad = j.sync(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(JournalTest, OversizePayloadIsRefused) {
  JournalOptions options;
  options.maxPayloadBytes = 16;
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  auto big = o.journal->append(std::string(17, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(big.error().message.find("17 bytes"), std::string::npos) << big.error().message;
  EXPECT_TRUE(o.journal->append(std::string(16, 'x')));
  EXPECT_EQ(o.journal->lastSeq(), 1u);
}

TEST_F(JournalTest, SecondOpenOfTheSameJournalIsRefused) {
  auto first = openOk(path_);
  ASSERT_TRUE(first.journal);
  auto second = Journal::open(path_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find(path_.string()), std::string::npos);
  first.journal.reset();
  EXPECT_TRUE(Journal::open(path_));
}

// ---- group commit ----------------------------------------------------------------------------

TEST_F(JournalTest, GroupCommitFromEightThreadsKeepsEveryAcknowledgedRecord) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  std::map<Seq, std::string> acked;
  std::uint64_t syncs = 0;
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    std::vector<std::vector<std::pair<Seq, std::string>>> perThread(kThreads);
    std::atomic<int> failures{0};
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          for (int i = 0; i < kPerThread; ++i) {
            std::string p = "thread" + std::to_string(t) + "-" + std::to_string(i);
            auto seq = o.journal->appendDurable(p);
            if (!seq) {
              ++failures;
              return;
            }
            perThread[static_cast<std::size_t>(t)].emplace_back(*seq, std::move(p));
          }
        });
      }
    }
    ASSERT_EQ(failures.load(), 0);
    for (const auto& v : perThread) {
      for (std::size_t i = 1; i < v.size(); ++i)
        EXPECT_LT(v[i - 1].first, v[i].first);
      for (const auto& [seq, p] : v)
        EXPECT_TRUE(acked.emplace(seq, p).second) << "dup " << seq;
    }
    syncs = o.journal->stats().syncs;
  }
  ASSERT_EQ(acked.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_LT(syncs, acked.size()) << "no group commit happened at all";
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  ASSERT_EQ(o.recovered.entries.size(), acked.size());
  Seq expectedSeq = 1;
  for (const auto& e : o.recovered.entries) {
    ASSERT_EQ(e.seq, expectedSeq++);
    EXPECT_EQ(toString(e.payload), acked.at(e.seq));
  }
}

// While one fsync is in flight, seven more appenders arrive. All seven must be covered by one
// more fsync, not seven: that is what group commit means.
TEST_F(JournalTest, WaitersDuringAnFsyncShareTheNextOne) {
  std::latch leaderInFsync(1);
  std::latch releaseLeader(1);
  std::atomic<bool> first{true};
  JournalOptions options;
  options.injectFault = [&](JournalFileOp op) {
    if (op == JournalFileOp::kAppendSync && first.exchange(false)) {
      leaderInFsync.count_down();
      releaseLeader.wait();
    }
    return 0;
  };
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  Journal& j = *o.journal;
  std::atomic<int> ok{0};
  {
    std::vector<std::jthread> threads;
    threads.emplace_back([&] { ok += j.appendDurable("leader").has_value() ? 1 : 0; });
    leaderInFsync.wait();
    for (int i = 0; i < 7; ++i) {
      threads.emplace_back(
          [&, i] { ok += j.appendDurable("follower" + std::to_string(i)).has_value() ? 1 : 0; });
    }
    while (j.lastSeq() < 8)
      std::this_thread::yield();
    releaseLeader.count_down();
  }
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(j.stats().syncs, 2u);
  EXPECT_EQ(j.stats().durableSeq, 8u);
}

// Builds a previous group of three: the first fsync is held until three more callers wait
// behind it; they then share the second fsync (after its leader waited in vain for the first
// fsync's writer to come back: four writers were active).
void formGroupOfThree(Journal& j, std::latch& firstFsyncEntered, std::latch& releaseFirstFsync) {
  std::vector<std::jthread> threads;
  threads.emplace_back([&] { EXPECT_TRUE(j.appendDurable("leader")); });
  firstFsyncEntered.wait();
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] { EXPECT_TRUE(j.appendDurable("member" + std::to_string(i))); });
  while (j.stats().syncWaiters < 4)
    std::this_thread::yield();
  releaseFirstFsync.count_down();
}

TEST_F(JournalTest, ALoneWriterNeverWaitsToGatherAGroup) {
  JournalOptions options;
  options.groupCommitWindow = std::chrono::seconds(10);
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(o.journal->appendDurable(payloadFor(i)));
  const auto st = o.journal->stats();
  EXPECT_EQ(st.syncs, 20u) << "one writer at a time: one fsync per record";
  EXPECT_EQ(st.syncedCallers, 20u);
  EXPECT_EQ(st.gathers, 0u) << "a lone writer must never wait for a group";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// After an fsync that served a group, the next leader waits for the group to come back, but
// only boundedly: a writer whose group never returns is still answered promptly, and the
// leader after it (its group was one) syncs at once again.
TEST_F(JournalTest, GatheringAfterAGroupIsBoundedAndStopsWhenTheGroupShrinks) {
  std::latch firstFsyncEntered(1);
  std::latch releaseFirstFsync(1);
  std::atomic<bool> first{true};
  JournalOptions options;
  options.groupCommitWindow = std::chrono::seconds(10);
  options.injectFault = [&](JournalFileOp op) {
    if (op == JournalFileOp::kAppendSync && first.exchange(false)) {
      firstFsyncEntered.count_down();
      releaseFirstFsync.wait();
    }
    return 0;
  };
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  Journal& j = *o.journal;
  formGroupOfThree(j, firstFsyncEntered, releaseFirstFsync);
  auto st = j.stats();
  EXPECT_EQ(st.syncs, 2u);
  EXPECT_EQ(st.syncedCallers, 4u) << "the second fsync served the three who waited";
  EXPECT_EQ(st.gathers, 1u)
      << "four writers were active around the first fsync: the second leader waited for the "
         "fourth, which did not come back, and then synced the three";

  // Alone now: the leader waits (no longer than the average fsync, far below the 10 s window)
  // for the group of three, which does not come.
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(j.appendDurable("alone"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  st = j.stats();
  EXPECT_EQ(st.gathers, 2u);
  EXPECT_EQ(st.syncs, 3u);
  ASSERT_TRUE(j.appendDurable("alone again"));
  EXPECT_EQ(j.stats().gathers, 2u) << "the last group was one: no more waiting";
  EXPECT_EQ(j.stats().syncs, 4u);
}

// ---- I/O failures ----------------------------------------------------------------------------

TEST_F(JournalTest, FsyncFailureFailsEveryWaiterAndEveryLaterCallWithoutRetrying) {
  std::latch leaderInFsync(1);
  std::latch releaseLeader(1);
  std::atomic<int> syncCalls{0};
  JournalOptions options;
  options.injectFault = [&](JournalFileOp op) {
    if (op != JournalFileOp::kAppendSync) return 0;
    if (++syncCalls == 1) {
      leaderInFsync.count_down();
      releaseLeader.wait();
      return EIO;
    }
    return 0;
  };
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  Journal& j = *o.journal;
  std::atomic<int> ioErrors{0};
  {
    std::vector<std::jthread> threads;
    auto run = [&](std::string p) {
      auto r = j.appendDurable(p);
      if (!r && r.error().code == ErrorCode::kIo) ++ioErrors;
    };
    threads.emplace_back(run, "leader");
    leaderInFsync.wait();
    for (int i = 0; i < 3; ++i)
      threads.emplace_back(run, "waiter" + std::to_string(i));
    while (j.lastSeq() < 4)
      std::this_thread::yield();
    releaseLeader.count_down();
  }
  EXPECT_EQ(ioErrors.load(), 4) << "every caller waiting on the failed fsync must see it";
  EXPECT_EQ(syncCalls.load(), 1) << "a failed fsync must never be retried";

  auto later = j.append("after");
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().code, ErrorCode::kIo);
  EXPECT_NE(later.error().message.find(path_.string()), std::string::npos);
  EXPECT_NE(later.error().message.find("Input/output error"), std::string::npos)
      << later.error().message;
  EXPECT_FALSE(j.sync(1));
  EXPECT_FALSE(j.compact("state", j.lastSeq()));
  EXPECT_EQ(syncCalls.load(), 1);
}

TEST_F(JournalTest, FailedWriteLeavesNoPartialRecordAndJournalContinues) {
  int writes = 0;
  JournalOptions options;
  options.injectFault = [&](JournalFileOp op) {
    return op == JournalFileOp::kAppendWrite && ++writes == 2 ? ENOSPC : 0;
  };
  {
    auto o = openOk(path_, options);
    ASSERT_TRUE(o.journal);
    Journal& j = *o.journal;
    ASSERT_TRUE(j.append("first"));
    const auto sizeBefore = fs::file_size(path_);
    auto failed = j.append("second, never written");
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, ErrorCode::kIo);
    EXPECT_NE(failed.error().message.find("No space left"), std::string::npos)
        << failed.error().message;
    EXPECT_EQ(fs::file_size(path_), sizeBefore) << "the half-written record must be cut off";
    auto third = j.appendDurable("third");
    ASSERT_TRUE(third) << third.error().message;
    EXPECT_EQ(*third, 2u) << "the failed append must not use up a sequence number";
  }
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  EXPECT_FALSE(o.recovered.dropped);
  EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"first", "third"}));
}

// ---- compaction ------------------------------------------------------------------------------

TEST_F(JournalTest, CompactionKeepsStateAndSurvivesReopen) {
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    Journal& j = *o.journal;
    writeDurable(j, 0, 10);
    const auto before = j.stats().fileBytes;

    auto stale = j.compact("state through 9", 9);
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
    EXPECT_EQ(j.stats().fileBytes, before) << "a refused compaction must change nothing";

    auto snap = j.compact("state through 10", 10);
    ASSERT_TRUE(snap) << snap.error().message;
    EXPECT_EQ(*snap, 11u);
    const auto st = j.stats();
    EXPECT_EQ(st.records, 1u);
    EXPECT_EQ(st.entriesSinceSnapshot, 0u);
    EXPECT_EQ(st.fileBytes, 16u + 24u + std::string_view("state through 10").size());
    EXPECT_EQ(st.fileBytes, fs::file_size(path_));
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(j.appendDurable("after" + std::to_string(i)));
    EXPECT_EQ(j.stats().entriesSinceSnapshot, 3u);
  }
  EXPECT_FALSE(fs::exists(fs::path(path_.string() + ".tmp")));
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  ASSERT_TRUE(o.recovered.snapshot);
  EXPECT_EQ(o.recovered.snapshot->seq, 11u);
  EXPECT_EQ(toString(o.recovered.snapshot->payload), "state through 10");
  EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"after0", "after1", "after2"}));
  EXPECT_EQ(seqs(o.recovered), (std::vector<Seq>{12, 13, 14}));
  EXPECT_EQ(o.journal->stats().records, 4u);
  EXPECT_EQ(o.journal->stats().entriesSinceSnapshot, 3u);
}

TEST_F(JournalTest, CompactionMakesPendingAppendsDurableWithoutAnFsyncOfTheOldFile) {
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  Journal& j = *o.journal;
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(j.append(payloadFor(i)));
  EXPECT_EQ(j.stats().durableSeq, 0u);
  ASSERT_TRUE(j.compact("state through 3", 3));
  EXPECT_EQ(j.stats().durableSeq, 4u);
  EXPECT_TRUE(j.sync(3));
  EXPECT_EQ(j.stats().syncs, 0u);
}

TEST_F(JournalTest, StaleCompactionFilesAreIgnoredAndRemoved) {
  const fs::path tmp = path_.string() + ".tmp";
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 5);
  }
  // A compaction that died while writing: garbage in the tmp file.
  writeFile(tmp, toBytes("half a snapsh"));
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_TRUE(o.recovered.removedStaleTmp);
    EXPECT_EQ(payloads(o.recovered), firstPayloads(5));
    EXPECT_FALSE(fs::exists(tmp));
  }
  // A compaction that died after its fsync but before the rename: a complete, valid journal in
  // the tmp file. The rename is the commit point, so the old file still rules.
  Bytes complete = fileHeader();
  addRecord(complete, 2, 6, "snapshot that was never installed");
  writeFile(tmp, complete);
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  EXPECT_TRUE(o.recovered.removedStaleTmp);
  EXPECT_FALSE(o.recovered.snapshot);
  EXPECT_EQ(payloads(o.recovered), firstPayloads(5));
  EXPECT_FALSE(fs::exists(tmp));
}

// A failure at each step of compaction stands for a crash there: before the rename the old file
// must stay complete and in use, after it the new one is the journal.
TEST_F(JournalTest, CompactionFailureBeforeRenameKeepsTheOldJournalInUse) {
  for (JournalFileOp failing :
       {JournalFileOp::kSnapshotWrite, JournalFileOp::kSnapshotSync, JournalFileOp::kRename}) {
    SCOPED_TRACE(static_cast<int>(failing));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    bool armed = false;
    JournalOptions options;
    options.injectFault = [&](JournalFileOp op) { return armed && op == failing ? EIO : 0; };
    {
      auto o = openOk(path_, options);
      ASSERT_TRUE(o.journal);
      Journal& j = *o.journal;
      writeDurable(j, 0, 5);
      armed = true;
      auto r = j.compact("state", 5);
      armed = false;
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, ErrorCode::kIo);
      EXPECT_FALSE(fs::exists(fs::path(path_.string() + ".tmp")));
      auto after = j.appendDurable("after failed compaction");
      ASSERT_TRUE(after) << after.error().message;
      EXPECT_EQ(*after, 6u);
    }
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_FALSE(o.recovered.snapshot);
    auto expected = firstPayloads(5);
    expected.push_back("after failed compaction");
    EXPECT_EQ(payloads(o.recovered), expected);
  }
}

TEST_F(JournalTest, DirectoryFsyncFailureAfterRenameFailsTheJournal) {
  bool armed = false;
  JournalOptions options;
  options.injectFault = [&](JournalFileOp op) {
    return armed && op == JournalFileOp::kDirSync ? EIO : 0;
  };
  {
    auto o = openOk(path_, options);
    ASSERT_TRUE(o.journal);
    Journal& j = *o.journal;
    writeDurable(j, 0, 5);
    armed = true;
    auto r = j.compact("state", 5);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kIo);
    EXPECT_NE(r.error().message.find("directory"), std::string::npos) << r.error().message;
    armed = false;
    EXPECT_FALSE(j.append("must not be accepted: which file survives a crash is unknown"));
  }
  // The rename did happen, so a reopen sees the new file.
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  ASSERT_TRUE(o.recovered.snapshot);
  EXPECT_EQ(o.recovered.snapshot->seq, 6u);
  EXPECT_TRUE(o.recovered.entries.empty());
}

// ---- damaged snapshots ---------------------------------------------------------------------

// What a clean shutdown leaves: a file holding only the snapshot its last compaction wrote. That
// snapshot reached the disk whole (written and fsynced before the rename), so damage to it is not
// a torn tail even with nothing after it: dropping it would forget every acknowledged allocation.
TEST_F(JournalTest, AFlippedBitInTheOnlySnapshotIsCorruptionAndTheFileIsLeftAlone) {
  const std::string snapshot = snapshotOf(6);
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 6);
    ASSERT_TRUE(o.journal->compact(snapshot, 6));
  }
  Bytes damaged = readFile(path_);
  ASSERT_EQ(damaged.size(), 16u + 24u + snapshot.size());
  damaged[16 + 24 + snapshot.size() / 2] ^= std::byte{0x04};
  writeFile(path_, damaged);

  auto r = Journal::open(path_);
  ASSERT_FALSE(r) << "recovered " << (r->second.snapshot ? "the" : "no") << " snapshot and "
                  << r->second.entries.size() << " entries from a damaged snapshot";
  EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
  EXPECT_NE(r.error().message.find(path_.string()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("offset 16"), std::string::npos) << r.error().message;
  EXPECT_EQ(readFile(path_), damaged) << "a refused recovery must not modify the file";
  EXPECT_FALSE(Journal::open(path_)) << "and it must refuse again";
}

TEST_F(JournalTest, EveryByteFlipOrCutOfASnapshotIsCorruption) {
  const std::string snapshot = snapshotOf(3);
  for (const bool entriesAfter : {false, true}) {
    SCOPED_TRACE(entriesAfter ? "entries after the snapshot" : "the snapshot alone");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    {
      auto o = openOk(path_);
      ASSERT_TRUE(o.journal);
      writeDurable(*o.journal, 0, 3);
      ASSERT_TRUE(o.journal->compact(snapshot, 3));
      if (entriesAfter) writeDurable(*o.journal, 3, 2);
    }
    const Bytes full = readFile(path_);
    const std::size_t snapshotEnd = 16 + 24 + snapshot.size();
    const fs::path damagedPath = dir_ / "damaged.journal";
    auto expectRefused = [&](const Bytes& damaged) {
      writeFile(damagedPath, damaged);
      auto r = Journal::open(damagedPath);
      ASSERT_FALSE(r) << "recovered " << r->second.entries.size() << " entries";
      EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
      EXPECT_NE(r.error().message.find("offset 16"), std::string::npos) << r.error().message;
      EXPECT_EQ(readFile(damagedPath), damaged);
    };
    for (std::size_t i = 16; i < snapshotEnd; ++i) {
      for (std::byte mask : {std::byte{0x01}, std::byte{0x80}, std::byte{0xFF}}) {
        SCOPED_TRACE("byte " + std::to_string(i) + " mask " +
                     std::to_string(std::to_integer<int>(mask)));
        Bytes damaged = full;
        damaged[i] ^= mask;
        expectRefused(damaged);
      }
    }
    // A cut no crash can make (the file was complete before its rename): from the first whole
    // record header on. A version 1 file cut inside that header could be a new journal whose
    // first entry was torn, which is all recovery can tell from so few bytes.
    if (!entriesAfter) {
      for (std::size_t cut = 16 + 24; cut < snapshotEnd; ++cut) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        expectRefused(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut)));
      }
    }
  }
}

TEST_F(JournalTest, ATornEntryAfterASnapshotIsStillATornTail) {
  std::vector<std::uint64_t> ends;
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 3);
    ASSERT_TRUE(o.journal->compact(snapshotOf(3), 3));
    ends = writeDurable(*o.journal, 3, 2);
  }
  const Bytes full = readFile(path_);
  Bytes cut(full.begin(), full.end() - 5);
  writeFile(path_, cut);
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  ASSERT_TRUE(o.recovered.snapshot);
  EXPECT_EQ(toString(o.recovered.snapshot->payload), snapshotOf(3));
  EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{payloadFor(3)}));
  ASSERT_TRUE(o.recovered.dropped);
  EXPECT_EQ(o.recovered.dropped->offset, ends[0]);
}

TEST_F(JournalTest, OperatorCanDiscardADamagedSnapshotExplicitly) {
  for (const std::size_t size : {std::size_t{200}, std::size_t{100}}) {
    // With maxPayloadBytes 150, the 200-byte snapshot is written as version 2.
    SCOPED_TRACE("snapshot of " + std::to_string(size) + " bytes");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    JournalOptions options;
    options.maxPayloadBytes = 150;
    {
      auto o = openOk(path_, options);
      ASSERT_TRUE(o.journal);
      ASSERT_TRUE(o.journal->compact(std::string(size, 's'), 0));
    }
    Bytes damaged = readFile(path_);
    EXPECT_EQ(formatVersion(damaged), size > 150 ? 2u : 1u);
    damaged[50] ^= std::byte{0x10};
    writeFile(path_, damaged);
    ASSERT_FALSE(Journal::open(path_, options));
    options.truncateCorruptTail = true;
    {
      auto o = openOk(path_, options);
      ASSERT_TRUE(o.journal);
      EXPECT_FALSE(o.recovered.snapshot);
      EXPECT_TRUE(o.recovered.entries.empty());
      ASSERT_TRUE(o.recovered.dropped);
      EXPECT_EQ(o.recovered.dropped->offset, 16u);
      EXPECT_NE(o.recovered.dropped->reason.find("truncateCorruptTail"), std::string::npos);
      ASSERT_TRUE(o.journal->appendDurable("after"));
    }
    options.truncateCorruptTail = false;
    auto o = openOk(path_, options);
    ASSERT_TRUE(o.journal);
    EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"after"}));
    EXPECT_EQ(formatVersion(readFile(path_)), 1u) << "a journal without its snapshot is version 1";
  }
}

// ---- snapshots over the entry limit ------------------------------------------------------------

TEST_F(JournalTest, ASnapshotOverTheEntryLimitCompactsReopensAndCompactsAgain) {
  const std::string big = snapshotOfSize(3u << 19);  // 1.5 MiB: over the default 1 MiB limit
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 5);
    auto snap = o.journal->compact(big, 5);
    ASSERT_TRUE(snap) << snap.error().message;
    EXPECT_EQ(*snap, 6u);
    EXPECT_EQ(o.journal->stats().fileBytes, fs::file_size(path_));
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(o.journal->appendDurable("after" + std::to_string(i)));
  }
  // Version 2, so that an older agent refuses the file instead of dropping the snapshot it
  // cannot read.
  Bytes expected = fileHeader(2);
  addRecord(expected, 2, 6, big);
  for (int i = 0; i < 3; ++i)
    addRecord(expected, 1, static_cast<Seq>(7 + i), "after" + std::to_string(i));
  EXPECT_EQ(readFile(path_), expected);

  const std::string bigger = big + snapshotOfSize(1u << 20);
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_FALSE(o.recovered.dropped);
    ASSERT_TRUE(o.recovered.snapshot);
    EXPECT_EQ(o.recovered.snapshot->seq, 6u);
    EXPECT_EQ(toString(o.recovered.snapshot->payload), big);
    EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"after0", "after1", "after2"}));
    EXPECT_EQ(seqs(o.recovered), (std::vector<Seq>{7, 8, 9}));
    auto again = o.journal->compact(bigger, 9);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(*again, 10u);
  }
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ASSERT_TRUE(o.recovered.snapshot);
    EXPECT_EQ(o.recovered.snapshot->seq, 10u);
    EXPECT_EQ(toString(o.recovered.snapshot->payload), bigger);
    EXPECT_TRUE(o.recovered.entries.empty());
    // Once the state fits the entry limit again, the file is version 1 again.
    ASSERT_TRUE(o.journal->compact("small again", 10));
  }
  EXPECT_EQ(formatVersion(readFile(path_)), 1u);
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  ASSERT_TRUE(o.recovered.snapshot);
  EXPECT_EQ(toString(o.recovered.snapshot->payload), "small again");
}

TEST_F(JournalTest, ADamagedOrCutSnapshotOverTheEntryLimitIsCorruption) {
  const std::string big = snapshotOfSize(3u << 19);
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ASSERT_TRUE(o.journal->compact(big, 0));
  }
  const Bytes full = readFile(path_);
  ASSERT_EQ(formatVersion(full), 2u);
  const fs::path damagedPath = dir_ / "damaged.journal";
  std::vector<Bytes> cases;
  // Magic, length (low and high byte), seq, kind, checksum, and payload start, middle and end.
  for (std::size_t i :
       {std::size_t{16}, std::size_t{20}, std::size_t{23}, std::size_t{24}, std::size_t{32},
        std::size_t{36}, std::size_t{40}, full.size() / 2, full.size() - 1}) {
    Bytes damaged = full;
    damaged[i] ^= std::byte{0x80};
    cases.push_back(std::move(damaged));
  }
  for (std::size_t cut :
       {std::size_t{16 + 10}, std::size_t{16 + 24}, full.size() / 2, full.size() - 1}) {
    cases.emplace_back(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
  }
  for (std::size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    writeFile(damagedPath, cases[c]);
    auto r = Journal::open(damagedPath);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
    EXPECT_NE(r.error().message.find("offset 16"), std::string::npos) << r.error().message;
    EXPECT_EQ(readFile(damagedPath), cases[c]);
  }
}

TEST_F(JournalTest, SnapshotsHaveTheirOwnLimit) {
  JournalOptions options;
  options.maxPayloadBytes = 16;
  options.maxSnapshotBytes = 64;
  {
    auto o = openOk(path_, options);
    ASSERT_TRUE(o.journal);
    Journal& j = *o.journal;
    auto tooBig = j.compact(std::string(65, 's'), 0);
    ASSERT_FALSE(tooBig);
    EXPECT_EQ(tooBig.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(tooBig.error().message.find("65 bytes"), std::string::npos) << tooBig.error().message;
    EXPECT_NE(tooBig.error().message.find("maxSnapshotBytes"), std::string::npos);
    ASSERT_TRUE(j.compact(std::string(16, 's'), 0));
    EXPECT_EQ(formatVersion(readFile(path_)), 1u)
        << "what a version 1 reader reads stays version 1";
    ASSERT_TRUE(j.compact(std::string(64, 's'), 1));
    EXPECT_EQ(formatVersion(readFile(path_)), 2u);
    EXPECT_FALSE(j.append(std::string(17, 'e'))) << "entries keep their own limit";
  }
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  ASSERT_TRUE(o.recovered.snapshot);
  EXPECT_EQ(toString(o.recovered.snapshot->payload), std::string(64, 's'));
}

// Journals written before version 2 existed open as they always did, and a small snapshot is
// still written in that format, so an older agent can read what this one leaves behind.
TEST_F(JournalTest, VersionOneJournalsStillOpenAndSmallSnapshotsStayVersionOne) {
  Bytes file = fileHeader(1);
  addRecord(file, 2, 5, "snapshot through 4");
  addRecord(file, 1, 6, "e6");
  addRecord(file, 1, 7, "e7");
  writeFile(path_, file);
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_FALSE(o.recovered.dropped);
    ASSERT_TRUE(o.recovered.snapshot);
    EXPECT_EQ(o.recovered.snapshot->seq, 5u);
    EXPECT_EQ(toString(o.recovered.snapshot->payload), "snapshot through 4");
    EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"e6", "e7"}));
    ASSERT_TRUE(o.journal->appendDurable("e8"));
  }
  addRecord(file, 1, 8, "e8");
  EXPECT_EQ(readFile(path_), file);
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ASSERT_TRUE(o.journal->compact("snapshot through 8", 8));
  }
  Bytes compacted = fileHeader(1);
  addRecord(compacted, 2, 9, "snapshot through 8");
  EXPECT_EQ(readFile(path_), compacted);
}

// ---- running out of descriptors --------------------------------------------------------------

// EMFILE is what a descriptor leak elsewhere in the agent looks like to the journal. Compaction
// needs three descriptors (directory, new file, and the old one stays open): with none or one
// left it must fail before the rename, so the journal stays intact and usable and a later
// compaction can succeed; it must never fail after the rename, which would fail the journal.
TEST_F(JournalTest, RunningOutOfDescriptorsFailsACompactionButNotTheJournal) {
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  Journal& j = *o.journal;
  writeDurable(j, 0, 5);
  const Bytes before = readFile(path_);
  for (int spare : {0, 1}) {
    SCOPED_TRACE("spare descriptors: " + std::to_string(spare));
    Result<Seq> r;
    bool exhausted = false;
    {
      DescriptorExhaustion full(spare);
      exhausted = full.ok();
      r = j.compact("state", 5);
    }
    ASSERT_TRUE(exhausted);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kIo);
    EXPECT_NE(r.error().message.find(std::generic_category().message(EMFILE)), std::string::npos)
        << r.error().message;
    EXPECT_EQ(readFile(path_), before);
    EXPECT_FALSE(fs::exists(fs::path(path_.string() + ".tmp")));
  }
  auto after = j.appendDurable("after");
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(*after, 6u);
  auto compacted = j.compact("state", 6);
  ASSERT_TRUE(compacted) << compacted.error().message;
}

TEST_F(JournalTest, RunningOutOfDescriptorsFailsAnOpenWithAnError) {
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 3);
  }
  const fs::path fresh = dir_ / "fresh.journal";
  for (const fs::path& p : {path_, fresh}) {
    for (int spare = 0; spare < 2; ++spare) {
      SCOPED_TRACE(p.string() + ", spare descriptors: " + std::to_string(spare));
      Result<std::pair<std::unique_ptr<Journal>, Recovered>> r;
      bool exhausted = false;
      {
        DescriptorExhaustion full(spare);
        exhausted = full.ok();
        r = Journal::open(p);
      }
      ASSERT_TRUE(exhausted);
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, ErrorCode::kIo);
      EXPECT_NE(r.error().message.find(std::generic_category().message(EMFILE)), std::string::npos)
          << r.error().message;
    }
  }
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  EXPECT_EQ(payloads(o.recovered), firstPayloads(3));
}

// ---- crash recovery --------------------------------------------------------------------------

// K acknowledged records, then a few more (synced or not makes no difference to the bytes). A
// crash can leave any prefix of the file; at every cut, recovery must return exactly the records
// that lie wholly before the cut, cut the rest off, and go on appending cleanly.
TEST_F(JournalTest, TruncationAtEveryByteOfTheLastRecordsRecoversExactlyTheCompleteOnes) {
  constexpr int kAcked = 20;
  constexpr int kMore = 5;
  std::vector<std::uint64_t> ends;
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ends = writeDurable(*o.journal, 0, kAcked);
    for (int i = kAcked; i < kAcked + kMore; ++i) {
      ASSERT_TRUE(o.journal->append(payloadFor(i)));
      ends.push_back(o.journal->stats().fileBytes);
    }
  }
  const Bytes full = readFile(path_);
  ASSERT_EQ(full.size(), ends.back());
  const fs::path cutPath = dir_ / "cut.journal";
  const std::uint64_t from = ends[kAcked - 3];  // start of the last two acknowledged records
  for (std::uint64_t cut = from; cut <= full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    writeFile(cutPath, std::span(full).first(static_cast<std::size_t>(cut)));
    int complete = 0;
    while (complete < static_cast<int>(ends.size()) &&
           ends[static_cast<std::size_t>(complete)] <= cut) {
      ++complete;
    }
    const std::uint64_t goodEnd = ends[static_cast<std::size_t>(complete - 1)];
    {
      auto o = openOk(cutPath);
      ASSERT_TRUE(o.journal);
      ASSERT_EQ(payloads(o.recovered), firstPayloads(complete));
      EXPECT_EQ(o.recovered.entries.back().seq, static_cast<Seq>(complete));
      if (cut == goodEnd) {
        EXPECT_FALSE(o.recovered.dropped);
      } else {
        ASSERT_TRUE(o.recovered.dropped);
        EXPECT_EQ(o.recovered.dropped->offset, goodEnd);
        EXPECT_EQ(o.recovered.dropped->bytes, cut - goodEnd);
      }
      EXPECT_EQ(fs::file_size(cutPath), goodEnd);
      auto next = o.journal->appendDurable("after crash");
      ASSERT_TRUE(next) << next.error().message;
      EXPECT_EQ(*next, static_cast<Seq>(complete + 1));
    }
    auto again = openOk(cutPath);
    ASSERT_TRUE(again.journal);
    EXPECT_FALSE(again.recovered.dropped);
    ASSERT_EQ(again.recovered.entries.size(), static_cast<std::size_t>(complete + 1));
    EXPECT_EQ(toString(again.recovered.entries.back().payload), "after crash");
  }
}

TEST_F(JournalTest, TruncationInsideTheFirstRecordKeepsAnEmptyJournal) {
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 1);
  }
  const Bytes full = readFile(path_);
  const fs::path cutPath = dir_ / "cut.journal";
  for (std::size_t cut = 16; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    writeFile(cutPath, std::span(full).first(cut));
    auto o = openOk(cutPath);
    ASSERT_TRUE(o.journal);
    EXPECT_TRUE(o.recovered.entries.empty());
    EXPECT_EQ(o.recovered.dropped.has_value(), cut > 16);
    EXPECT_EQ(fs::file_size(cutPath), 16u);
  }
}

TEST_F(JournalTest, EveryByteFlipInTheLastRecordDropsExactlyThatRecord) {
  constexpr int kRecords = 8;
  std::vector<std::uint64_t> ends;
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ends = writeDurable(*o.journal, 0, kRecords);
  }
  const Bytes full = readFile(path_);
  const std::uint64_t lastStart = ends[kRecords - 2];
  const fs::path flipPath = dir_ / "flip.journal";
  for (std::size_t i = lastStart; i < full.size(); ++i) {
    for (std::byte mask : {std::byte{0x01}, std::byte{0x80}, std::byte{0xFF}}) {
      SCOPED_TRACE("byte " + std::to_string(i) + " mask " +
                   std::to_string(std::to_integer<int>(mask)));
      Bytes damaged = full;
      damaged[i] ^= mask;
      writeFile(flipPath, damaged);
      auto o = openOk(flipPath);
      ASSERT_TRUE(o.journal);
      EXPECT_EQ(payloads(o.recovered), firstPayloads(kRecords - 1));
      ASSERT_TRUE(o.recovered.dropped);
      EXPECT_EQ(o.recovered.dropped->offset, lastStart);
      EXPECT_EQ(o.recovered.dropped->bytes, full.size() - lastStart);
    }
  }
}

// Damage followed by a valid record is not a crash: the damaged record was written before one
// that reached the disk, so it may have been acknowledged. Recovery must refuse loudly rather
// than return a shorter list, and must leave the file as it found it.
TEST_F(JournalTest, EveryByteFlipInAnEarlyRecordIsCorruptionNotATornTail) {
  constexpr int kRecords = 8;
  std::vector<std::uint64_t> ends;
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ends = writeDurable(*o.journal, 0, kRecords);
  }
  const Bytes full = readFile(path_);
  const std::size_t start = ends[1];  // record index 2, seq 3
  const std::size_t end = ends[2];
  const fs::path flipPath = dir_ / "flip.journal";
  for (std::size_t i = start; i < end; ++i) {
    SCOPED_TRACE("byte " + std::to_string(i));
    Bytes damaged = full;
    damaged[i] ^= std::byte{0x01};
    writeFile(flipPath, damaged);
    auto r = Journal::open(flipPath);
    ASSERT_FALSE(r) << "recovered " << r->second.entries.size() << " records from a damaged log";
    EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
    EXPECT_NE(r.error().message.find(flipPath.string()), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("offset " + std::to_string(start)), std::string::npos)
        << r.error().message;
    EXPECT_EQ(readFile(flipPath), damaged) << "a refused recovery must not modify the file";
  }
}

TEST_F(JournalTest, OperatorCanTruncateAtCorruptionExplicitly) {
  std::vector<std::uint64_t> ends;
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    ends = writeDurable(*o.journal, 0, 6);
  }
  Bytes damaged = readFile(path_);
  damaged[ends[1] + 20] ^= std::byte{0x40};  // the checksum of seq 3
  writeFile(path_, damaged);
  ASSERT_FALSE(Journal::open(path_));
  JournalOptions options;
  options.truncateCorruptTail = true;
  auto o = openOk(path_, options);
  ASSERT_TRUE(o.journal);
  EXPECT_EQ(payloads(o.recovered), firstPayloads(2));
  ASSERT_TRUE(o.recovered.dropped);
  EXPECT_EQ(o.recovered.dropped->offset, ends[1]);
  EXPECT_EQ(o.recovered.dropped->bytes, damaged.size() - ends[1]);
  EXPECT_NE(o.recovered.dropped->reason.find("truncateCorruptTail"), std::string::npos);
}

TEST_F(JournalTest, ZeroFilledTailAfterTheLastRecordIsATornTail) {
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    writeDurable(*o.journal, 0, 3);
  }
  Bytes bytes = readFile(path_);
  const auto goodSize = bytes.size();
  bytes.resize(goodSize + 4096, std::byte{0});  // what some file systems show after a crash
  writeFile(path_, bytes);
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  EXPECT_EQ(payloads(o.recovered), firstPayloads(3));
  ASSERT_TRUE(o.recovered.dropped);
  EXPECT_EQ(o.recovered.dropped->bytes, 4096u);
  EXPECT_NE(o.recovered.dropped->reason.find("magic"), std::string::npos);
}

// ---- file header -----------------------------------------------------------------------------

TEST_F(JournalTest, ZeroLengthFileStartsAnEmptyJournal) {
  writeFile(path_, {});
  {
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_TRUE(o.recovered.created);
    EXPECT_TRUE(o.recovered.entries.empty());
    EXPECT_FALSE(o.recovered.dropped);
    EXPECT_EQ(fs::file_size(path_), 16u);
    ASSERT_TRUE(o.journal->appendDurable("first"));
  }
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"first"}));
}

TEST_F(JournalTest, PartialHeaderFromAnInterruptedCreationStartsAnEmptyJournal) {
  const Bytes header = fileHeader();
  for (std::size_t n = 1; n < header.size(); ++n) {
    SCOPED_TRACE("header bytes " + std::to_string(n));
    writeFile(path_, std::span(header).first(n));
    {
      auto o = openOk(path_);
      ASSERT_TRUE(o.journal);
      EXPECT_TRUE(o.recovered.created);
      EXPECT_TRUE(o.recovered.entries.empty());
      ASSERT_TRUE(o.recovered.dropped);
      EXPECT_EQ(o.recovered.dropped->bytes, n);
      ASSERT_TRUE(o.journal->appendDurable("x"));
    }
    auto o = openOk(path_);
    ASSERT_TRUE(o.journal);
    EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"x"}));
  }
}

TEST_F(JournalTest, ForeignOrFutureFilesAreRefusedAndLeftAlone) {
  struct Case {
    std::string name;
    Bytes bytes;
    std::string mentions;
  };
  Bytes future = fileHeader(3);
  Bytes flippedHeader = fileHeader();
  flippedHeader[13] ^= std::byte{0x01};
  // Version 2 promises a snapshot first; the writer never makes one without.
  Bytes emptyVersion2 = fileHeader(2);
  Bytes entryFirstVersion2 = fileHeader(2);
  addRecord(entryFirstVersion2, 1, 1, "entry");
  const std::vector<Case> cases = {
      {"short foreign file", toBytes("hello"), "not the start of a journal header"},
      {"foreign file", toBytes("#!/bin/sh\necho not a journal\n"), "not a vnet-ipam journal"},
      {"future version", future, "version 3"},
      {"damaged header", flippedHeader, "checksum"},
      {"version 2 without a snapshot", emptyVersion2, "version 2 journal starts with a snapshot"},
      {"version 2 starting with an entry", entryFirstVersion2, "version 2 journal starts with"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    writeFile(path_, c.bytes);
    auto r = Journal::open(path_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(path_.string()), std::string::npos) << r.error().message;
    EXPECT_EQ(readFile(path_), c.bytes);
  }
}

// ---- records the writer never produces -------------------------------------------------------

TEST_F(JournalTest, SequenceGapsAndRestartsAreCorruption) {
  struct Case {
    std::string name;
    std::vector<Seq> seqs;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"gap", {1, 2, 4}, "seq 4 after seq 2"},
      {"repeat", {1, 2, 2}, "seq 2 after seq 2"},
      {"backwards", {5, 6, 3}, "seq 3 after seq 6"},
      {"zero", {0, 1}, "seq 0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes file = fileHeader();
    for (Seq s : c.seqs)
      addRecord(file, 1, s, "p" + std::to_string(s));
    writeFile(path_, file);
    auto r = Journal::open(path_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << r.error().message;
  }
}

TEST_F(JournalTest, UnknownRecordKindIsCorruption) {
  Bytes file = fileHeader();
  addRecord(file, 1, 1, "entry");
  addRecord(file, 9, 2, "from a newer agent");
  writeFile(path_, file);
  auto r = Journal::open(path_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
  EXPECT_NE(r.error().message.find("kind 9"), std::string::npos) << r.error().message;
}

TEST_F(JournalTest, SnapshotReplacesEverythingBeforeIt) {
  Bytes file = fileHeader();
  addRecord(file, 1, 1, "e1");
  addRecord(file, 1, 2, "e2");
  addRecord(file, 2, 3, "s3");
  addRecord(file, 1, 4, "e4");
  writeFile(path_, file);
  auto o = openOk(path_);
  ASSERT_TRUE(o.journal);
  ASSERT_TRUE(o.recovered.snapshot);
  EXPECT_EQ(o.recovered.snapshot->seq, 3u);
  EXPECT_EQ(toString(o.recovered.snapshot->payload), "s3");
  EXPECT_EQ(payloads(o.recovered), (std::vector<std::string>{"e4"}));
  EXPECT_EQ(o.journal->stats().entriesSinceSnapshot, 1u);
  EXPECT_EQ(o.journal->stats().records, 4u);
}

}  // namespace
}  // namespace vnetipam::ipam
