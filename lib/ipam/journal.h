// Durable allocation journal of the node agent: an append-only file of checksummed records with
// group commit, snapshot + compaction, and crash recovery.
//
// What a caller may rely on:
// - A record is *acknowledged* once a sync() (or appendDurable()) covering its sequence number
//   has returned success. An acknowledged record is recovered by every later open(), whatever
//   crash happened after the acknowledgement. Records that were never acknowledged may or may
//   not be recovered; when they are, they come back whole and in order.
// - Recovery drops only a torn tail: damage after which no valid record follows. Damage with a
//   valid record after it cannot come from a crash and may hold acknowledged records, so open()
//   refuses it with kCorruption (naming the file and offset) instead of returning a shorter list.
//   So does any damage to a snapshot a compaction wrote, even with nothing after it: it reached
//   the disk whole (written, fsynced, then renamed into place), so a crash never tears it.
// - Payloads are opaque bytes; the agent defines what a record means.
// - Sequence numbers start at 1 and grow by exactly 1 per record, across compactions.
// - After an fsync failure the journal is failed: every later call returns the same kIo error.
//   Restarting (a new open()) re-reads what actually reached the disk.
// - All member functions are thread-safe. One process may hold a journal at a time (a lock file
//   "<path>.lock" enforces it).
//
// On-disk format (all integers little-endian), versions 1 and 2:
//   file header, 16 bytes: magic "VIPJ" u32 | version u32 | reserved u32 = 0 | crc32c of the
//   first 12 bytes u32
//   record header, 24 bytes: magic "VIPR" u32 | payload length u32 | seq u64 | kind u8 |
//   reserved 3 bytes = 0 | crc32c u32 over the first 20 header bytes followed by the payload
//   then the payload bytes, no padding.
// Version 2 differs only in what it promises: the file was written by a compaction and starts
// with its snapshot, which may be longer than maxPayloadBytes (up to maxSnapshotBytes). A
// compaction writes version 2 only for such a snapshot, because a version 1 reader takes a record
// over its limit for a torn tail and would drop the whole state; every other file is version 1,
// which every version of the journal reads. Records appended later keep the file's version.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/base/unique_fd.h"
#include "lib/ipam/error.h"

namespace vnetipam::ipam {

using Seq = std::uint64_t;

enum class RecordKind : std::uint8_t {
  kEntry = 1,     // one change, applied on top of the snapshot and the entries before it
  kSnapshot = 2,  // the whole state; replaces everything before it
};

// The file operations whose failure the journal must survive or report. Tests inject failures
// at each of them through JournalOptions::injectFault.
enum class JournalFileOp {
  kAppendWrite,    // writing a record to the journal
  kAppendSync,     // the group-commit fdatasync of the journal
  kSnapshotWrite,  // writing the new file during compaction or creation
  kSnapshotSync,   // fsync of that new file
  kRename,         // renaming the new file over the journal
  kDirSync,        // fsync of the directory after the rename
};

struct JournalOptions {
  // Larger payloads are refused by append() and treated as damage by recovery (a length field
  // beyond it is far more likely a flipped bit than a real record).
  std::uint32_t maxPayloadBytes = 1u << 20;
  // The same for snapshots (compact() and recovery), kept apart because a snapshot holds the
  // whole state: 256 MiB is about 250,000 allocations with every field at its longest (about
  // 1 KiB each in the agent's snapshot), over a million typical ones, and four fully allocated
  // IPv4 /16 blocks; a node runs a few hundred pods. A snapshot is written and fsynced in one
  // file before it is renamed into place, so its length is not guessed at by torn-tail recovery,
  // which is what the entry limit protects. The effective limit is never below maxPayloadBytes.
  std::uint32_t maxSnapshotBytes = 256u << 20;
  // Operator override for a kCorruption refusal: truncate at the first damaged record even
  // though valid records follow it, losing them. Never set this by default; it exists so a
  // human who has decided the damaged data is expendable can bring the node back.
  bool truncateCorruptTail = false;
  // Group commit gathering: the longest the leader of an fsync waits for more writers to join
  // it. It only waits when several sync() callers were active around the previous fsync (served
  // by it or waiting during it; a lone writer is never delayed), only until as many have joined,
  // and never longer than recent fsyncs took on average (so nobody waits longer than a follower
  // that just missed an fsync would have). Zero: no gathering, every leader syncs at once.
  std::chrono::microseconds groupCommitWindow{2000};
  // Test seam, not for production: called before each operation; a non-zero return is an errno
  // the operation then fails with. An injected kAppendWrite fault first writes half the record,
  // the worst a real ENOSPC can leave behind. A function rather than a file-system interface
  // because these six points are all the journal's I/O decisions hinge on.
  std::function<int(JournalFileOp)> injectFault;
};

struct RecoveredRecord {
  Seq seq = 0;
  std::vector<std::byte> payload;

  bool operator==(const RecoveredRecord&) const = default;
};

// What open() found on disk.
struct Recovered {
  // The latest snapshot, if any, and the entries after it in sequence order.
  std::optional<RecoveredRecord> snapshot;
  std::vector<RecoveredRecord> entries;

  // A torn tail (or, with truncateCorruptTail, damage) that was cut off the file.
  struct Dropped {
    std::uint64_t offset = 0;  // where the file now ends
    std::uint64_t bytes = 0;   // how many bytes were removed
    std::string reason;        // what was wrong with the record at offset
  };
  std::optional<Dropped> dropped;

  bool created = false;          // no journal (or an empty or half-created one) was there
  bool removedStaleTmp = false;  // a compaction interrupted before its rename was cleaned up
};

struct JournalStats {
  std::uint64_t fileBytes = 0;  // current size of the journal file
  std::uint64_t records = 0;    // records in the file, the snapshot included
  std::uint64_t entriesSinceSnapshot = 0;
  Seq lastSeq = 0;                  // last appended (0: none yet)
  Seq durableSeq = 0;               // last covered by a completed fsync
  std::uint64_t syncs = 0;          // fdatasync calls made for group commit since open()
  std::uint64_t syncedCallers = 0;  // sync() calls those fdatasyncs served (waiting callers)
  std::uint64_t gathers = 0;        // fsync leaders that first waited for their group to join
  std::uint64_t syncWaiters = 0;    // sync() calls in progress right now
};

class Journal {
 public:
  // Opens (or creates) the journal at path and recovers its records. Removes a stale compaction
  // file and truncates a torn tail (both reported in Recovered), and makes everything recovered
  // durable before returning, so the caller may treat recovered state as acknowledged. Never
  // changes the file when it refuses it.
  // Errors: kCorruption (damage a crash cannot explain, such as a damaged snapshot or damage
  // before a valid record; a foreign file; an unknown version),
  // kConflict (another Journal holds the lock), kIo. Returned by pointer because a Journal owns
  // the mutex its waiting callers sleep on, so it cannot move.
  static Result<std::pair<std::unique_ptr<Journal>, Recovered>> open(std::filesystem::path path,
                                                                     JournalOptions options = {});

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  // Closes the file without syncing: records not acknowledged by then were never promised.
  // Precondition: no call is in progress on another thread.
  ~Journal();

  // Writes one entry with write(2), without fsync, and returns its sequence number. Cheap; make
  // it durable with sync(). Errors: kInvalidArgument (payload too large), kIo (the record was
  // not written and its sequence number is not used; the journal stays usable if the file could
  // be cut back, otherwise it is failed).
  Result<Seq> append(std::span<const std::byte> payload);
  Result<Seq> append(std::string_view payload);

  // Blocks until an fsync covering every record up to upTo has completed. Group commit: one
  // caller at a time runs fdatasync for everything written so far while the others wait for it,
  // so N concurrent callers cost about one fsync. When several callers were active around the
  // previous fsync, the leader first waits (bounded, see JournalOptions::groupCommitWindow) for
  // as many to join, so writers that arrive a moment apart share one fsync instead of
  // alternating between a group of one and a group of the rest. Errors: kInvalidArgument (upTo was
  // never appended), kIo (an fsync failed; the journal is failed).
  Result<void> sync(Seq upTo);

  // append() then sync() of that record.
  Result<Seq> appendDurable(std::span<const std::byte> payload);
  Result<Seq> appendDurable(std::string_view payload);

  // Replaces the journal with a new file holding only a snapshot record, and returns the
  // snapshot's sequence number. `through` is the last sequence number the snapshot reflects; it
  // must be lastSeq() (the caller pauses appends while it takes the snapshot and compacts),
  // otherwise kConflict, because entries after it would be lost. The snapshot makes every record
  // up to it durable, so pending sync() callers return success. Crash-safe: the new file is
  // written under "<path>.tmp", fsynced, renamed over the journal and the directory fsynced; a
  // crash at any point leaves either the old or the new file. Errors: kInvalidArgument (larger
  // than maxSnapshotBytes), kConflict, kIo (before the rename the old journal stays in use and
  // intact, and a later compaction may succeed; the directory is opened before the rename, so
  // running out of descriptors is such an error; a failed directory fsync fails the journal,
  // since the rename's durability is then unknown).
  Result<Seq> compact(std::span<const std::byte> snapshot, Seq through);
  Result<Seq> compact(std::string_view snapshot, Seq through);

  // Size and counts, so the agent can decide when to compact.
  JournalStats stats() const;
  Seq lastSeq() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  Journal(std::filesystem::path path, JournalOptions options, base::UniqueFd fd,
          base::UniqueFd lock, std::uint64_t fileBytes, std::uint64_t records,
          std::uint64_t entriesSinceSnapshot, Seq lastSeq);

  // Requires mu_ (held by `lock`), as the leader of the next fsync: waits, bounded, for the
  // callers of the previous group to join this one.
  void gatherLocked(std::unique_lock<std::mutex>& lock);
  // Requires mu_. sync() calls in progress that the last fdatasync did not cover.
  std::size_t unsatisfiedLocked() const;
  // Requires mu_. Every later call returns this error; wakes waiting sync() callers.
  std::unexpected<Error> markFailed(Error error);

  const std::filesystem::path path_;
  const JournalOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // signalled when a sync finishes or a compaction swaps files
  std::condition_variable gatherCv_;  // signalled when a caller joins a gathering leader
  base::UniqueFd fd_;
  base::UniqueFd lock_;             // flock held for the Journal's lifetime
  std::vector<std::byte> scratch_;  // encoding buffer of append(), reused to avoid allocations
  std::uint64_t fileBytes_;
  std::uint64_t records_;
  std::uint64_t entriesSinceSnapshot_;
  Seq lastSeq_;
  Seq durableSeq_;
  std::uint64_t syncs_ = 0;
  std::uint64_t syncedCallers_ = 0;
  std::uint64_t gathers_ = 0;
  bool syncInProgress_ = false;
  bool gathering_ = false;                    // the leader waits for callers to join (gatherCv_)
  std::multiset<Seq> waitingUpTo_;            // the upTo of every sync() call in progress
  std::size_t lastGroup_ = 0;                 // sync() calls active around the previous fdatasync
  std::chrono::nanoseconds fsyncAverage_{0};  // moving average of fdatasync durations
  std::optional<Error> failed_;
};

}  // namespace vnetipam::ipam
