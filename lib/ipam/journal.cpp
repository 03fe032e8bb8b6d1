#include "lib/ipam/journal.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <iterator>
#include <system_error>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ipam/crc32c.h"

namespace vnetipam::ipam {

namespace {

namespace fs = std::filesystem;
using base::UniqueFd;
using Bytes = std::span<const std::byte>;

constexpr std::uint32_t kFileMagic = 0x4A504956u;    // "VIPJ" as little-endian bytes
constexpr std::uint32_t kRecordMagic = 0x52504956u;  // "VIPR"
// Version 1: any file. Version 2: a compacted file whose snapshot may exceed the entry limit
// (see journal.h); a version 1 reader refuses it by its version instead of dropping the snapshot.
constexpr std::uint32_t kFormatVersion1 = 1;
constexpr std::uint32_t kFormatVersion2 = 2;
constexpr std::size_t kFileHeaderSize = 16;
constexpr std::size_t kRecordHeaderSize = 24;
constexpr std::size_t kRecordCrcOffset = 20;  // the checksum covers the header bytes before it

// ---- little-endian encoding ----------------------------------------------------------------

void putLe32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}

void putLe64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}

std::uint32_t getLe32(Bytes b, std::size_t off) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i)
    v |= std::to_integer<std::uint32_t>(b[off + i]) << (8 * i);
  return v;
}

std::uint64_t getLe64(Bytes b, std::size_t off) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i)
    v |= std::to_integer<std::uint64_t>(b[off + i]) << (8 * i);
  return v;
}

std::array<std::byte, kFileHeaderSize> encodeFileHeader(std::uint32_t version = kFormatVersion1) {
  std::array<std::byte, kFileHeaderSize> h{};
  putLe32(&h[0], kFileMagic);
  putLe32(&h[4], version);
  putLe32(&h[8], 0);
  putLe32(&h[12], crc32c(Bytes(h.data(), 12)));
  return h;
}

// The header of a record holding payload (its checksum covers the payload).
std::array<std::byte, kRecordHeaderSize> encodeRecordHeader(RecordKind kind, Seq seq,
                                                            Bytes payload) {
  std::array<std::byte, kRecordHeaderSize> h{};
  putLe32(&h[0], kRecordMagic);
  putLe32(&h[4], static_cast<std::uint32_t>(payload.size()));
  putLe64(&h[8], seq);
  h[16] = static_cast<std::byte>(kind);
  const std::uint32_t crc = crc32cExtend(crc32c(Bytes(h.data(), kRecordCrcOffset)), payload);
  putLe32(&h[kRecordCrcOffset], crc);
  return h;
}

void encodeRecord(std::vector<std::byte>& out, RecordKind kind, Seq seq, Bytes payload) {
  const auto h = encodeRecordHeader(kind, seq, payload);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), payload.begin(), payload.end());
}

// ---- decoding --------------------------------------------------------------------------------

// The longest payload a record of each kind may announce.
struct PayloadLimits {
  std::uint32_t entry = 0;
  std::uint32_t snapshot = 0;

  static PayloadLimits of(const JournalOptions& options) {
    return {options.maxPayloadBytes, std::max(options.maxPayloadBytes, options.maxSnapshotBytes)};
  }
  std::uint32_t forKind(std::uint8_t kind) const {
    return kind == static_cast<std::uint8_t>(RecordKind::kSnapshot) ? snapshot : entry;
  }
};

// A record whose checksum holds. Kind and reserved bytes are not judged here: a valid checksum
// over an unknown kind is a format question, not damage.
struct ParsedRecord {
  std::uint8_t kind = 0;
  bool reservedZero = true;
  Seq seq = 0;
  Bytes payload;
  std::size_t end = 0;
};

// Either a record, or what is wrong with the bytes at that offset.
struct ParseOutcome {
  std::optional<ParsedRecord> record;
  std::string problem;
};

ParseOutcome parseRecordAt(Bytes file, std::size_t off, PayloadLimits limits) {
  const std::size_t avail = file.size() - off;
  if (avail < kRecordHeaderSize) {
    return {{}, fmt::format("incomplete record header ({} of {} bytes)", avail, kRecordHeaderSize)};
  }
  const std::uint32_t magic = getLe32(file, off);
  if (magic != kRecordMagic) {
    return {{}, fmt::format("bad record magic {:#010x}, expected {:#010x}", magic, kRecordMagic)};
  }
  const std::uint32_t length = getLe32(file, off + 4);
  // A flipped bit in the kind byte cannot turn an entry (1) into a snapshot (2), so an entry's
  // length is still judged by the entry limit.
  const std::uint32_t maxPayload = limits.forKind(std::to_integer<std::uint8_t>(file[off + 16]));
  if (length > maxPayload) {
    return {{}, fmt::format("payload length {} exceeds the limit of {} bytes", length, maxPayload)};
  }
  if (avail - kRecordHeaderSize < length) {
    return {{},
            fmt::format("incomplete record: header announces {} payload bytes, {} present", length,
                        avail - kRecordHeaderSize)};
  }
  const Bytes payload = file.subspan(off + kRecordHeaderSize, length);
  const std::uint32_t stored = getLe32(file, off + kRecordCrcOffset);
  const std::uint32_t computed = crc32cExtend(crc32c(file.subspan(off, kRecordCrcOffset)), payload);
  if (stored != computed) {
    return {
        {},
        fmt::format("checksum mismatch (stored {:#010x}, computed {:#010x})", stored, computed)};
  }
  ParsedRecord r;
  r.kind = std::to_integer<std::uint8_t>(file[off + 16]);
  r.reservedZero = file[off + 17] == std::byte{0} && file[off + 18] == std::byte{0} &&
                   file[off + 19] == std::byte{0};
  r.seq = getLe64(file, off + 8);
  r.payload = payload;
  r.end = off + kRecordHeaderSize + length;
  return {r, {}};
}

struct LaterRecord {
  std::size_t offset = 0;
  Seq seq = 0;
};

// The first offset at or after `from` holding a valid record with a sequence number above
// `after`. Such a record behind damage proves the damage is not a torn tail.
std::optional<LaterRecord> findValidRecordAfter(Bytes file, std::size_t from, Seq after,
                                                PayloadLimits limits) {
  for (std::size_t q = from; q + kRecordHeaderSize <= file.size(); ++q) {
    if (getLe32(file, q) != kRecordMagic) continue;
    const ParseOutcome p = parseRecordAt(file, q, limits);
    if (p.record && p.record->seq > after) return LaterRecord{q, p.record->seq};
  }
  return std::nullopt;
}

// What the file header says: the format version, or a creation cut short (version 0).
struct FileHeader {
  std::uint32_t version = 0;
  bool tornCreation() const { return version == 0; }
};

Result<FileHeader> checkFileHeader(const std::string& name, Bytes file) {
  const auto expected = encodeFileHeader();
  if (file.size() < kFileHeaderSize) {
    // Shorter than a header: there cannot be a record in it, so if what is there is the start of
    // our header, the file was cut while being created and nothing can have been acknowledged.
    // (Only version 1 headers are ever written alone; a version 2 file is renamed into place.)
    if (std::equal(file.begin(), file.end(), expected.begin())) return FileHeader{};
    return fail(ErrorCode::kCorruption,
                fmt::format("journal {}: its {} bytes are not the start of a journal header; not "
                            "a vnet-ipam journal, refusing to overwrite it",
                            name, file.size()));
  }
  const std::uint32_t magic = getLe32(file, 0);
  if (magic != kFileMagic) {
    return fail(ErrorCode::kCorruption,
                fmt::format("journal {}: not a vnet-ipam journal: offset 0 holds {:#010x}, "
                            "expected the magic {:#010x} (\"VIPJ\")",
                            name, magic, kFileMagic));
  }
  const std::uint32_t version = getLe32(file, 4);
  if (version != kFormatVersion1 && version != kFormatVersion2) {
    return fail(ErrorCode::kCorruption,
                fmt::format("journal {}: format version {} at offset 4 is not supported (this "
                            "build reads versions {} and {}), or the file header is damaged",
                            name, version, kFormatVersion1, kFormatVersion2));
  }
  const std::uint32_t stored = getLe32(file, 12);
  const std::uint32_t computed = crc32c(file.first(12));
  if (stored != computed) {
    return fail(ErrorCode::kCorruption,
                fmt::format("journal {}: file header (offset 0-15) fails its checksum (stored "
                            "{:#010x}, computed {:#010x})",
                            name, stored, computed));
  }
  if (getLe32(file, 8) != 0) {
    return fail(ErrorCode::kCorruption,
                fmt::format("journal {}: reserved header field at offset 8 is {:#x}, expected 0; "
                            "written by a newer version?",
                            name, getLe32(file, 8)));
  }
  return FileHeader{version};
}

struct ScanSummary {
  std::size_t validEnd = kFileHeaderSize;  // end of the last good record
  std::uint64_t records = 0;
  std::uint64_t entriesSinceSnapshot = 0;
  Seq lastSeq = 0;
  std::string dropReason;  // why the bytes after validEnd are not records
};

// Whether damage at the first record (offset 16) can be what a crash leaves of the first entry
// appended to a new journal. Such a file was created holding only its header (renamed into place
// whole), so a crash leaves a prefix of that entry's header (magic, any length, seq 1, kind
// entry, reserved zero, any checksum) or zeros where the file grew but its data never landed.
// The other first record there is, a compaction's snapshot, is never torn, and no flipped bit
// turns it into that prefix: its kind (2) differs from an entry's (1) in two bits.
bool couldBeTornFirstEntry(Bytes file) {
  const Bytes h =
      file.subspan(kFileHeaderSize, std::min(kRecordHeaderSize, file.size() - kFileHeaderSize));
  if (std::all_of(h.begin(), h.end(), [](std::byte b) { return b == std::byte{0}; })) return true;
  std::array<std::byte, kRecordHeaderSize> expected{};
  putLe32(&expected[0], kRecordMagic);
  putLe64(&expected[8], 1);
  expected[16] = static_cast<std::byte>(RecordKind::kEntry);
  for (std::size_t i = 0; i < h.size(); ++i) {
    const bool anyValue = (i >= 4 && i < 8) || i >= kRecordCrcOffset;  // length, checksum
    if (!anyValue && h[i] != expected[i]) return false;
  }
  return true;
}

// Reads the records after the header into out. Stops at the first damaged record: a torn tail
// is reported for truncation; damage a crash cannot explain is kCorruption unless the operator
// asked to truncate anyway. Damage is a torn tail only when no valid record follows it and it is
// not the snapshot a compaction starts its file with (a version 2 file always starts with one; a
// version 1 file does unless its first record looks like a new journal's first entry).
//
// One crash can look like mid-log damage: the kernel writing back a later page of the unsynced
// tail before an earlier one, then losing power. We refuse that case too. The file cannot tell
// it apart from damage to acknowledged records, and the costs are lopsided: a false alarm costs
// an operator decision (truncateCorruptTail), a wrong guess forgets allocations and hands the
// same IP to two pods.
Result<ScanSummary> scanRecords(const std::string& name, Bytes file, std::uint32_t version,
                                const JournalOptions& options, Recovered& out) {
  const PayloadLimits limits = PayloadLimits::of(options);
  ScanSummary s;
  std::size_t off = kFileHeaderSize;
  while (off < file.size()) {
    const ParseOutcome p = parseRecordAt(file, off, limits);
    if (!p.record) {
      s.dropReason = fmt::format("{} at offset {}", p.problem, off);
      const std::string discard = fmt::format(
          "Restore the file, or reopen with truncateCorruptTail to discard the {} bytes from "
          "offset {}",
          file.size() - off, off);
      const auto later = findValidRecordAfter(file, off + 1, s.lastSeq, limits);
      if (later) {
        if (!options.truncateCorruptTail) {
          return fail(
              ErrorCode::kCorruption,
              fmt::format("journal {}: record at offset {} is damaged ({}), yet a valid record "
                          "(seq {}) follows at offset {}. A crash only tears the end of the "
                          "journal, so the damaged bytes may hold acknowledged records; refusing "
                          "to drop them. {}",
                          name, off, p.problem, later->seq, later->offset, discard));
        }
        s.dropReason +=
            fmt::format("; valid records from seq {} at offset {} discarded by truncateCorruptTail",
                        later->seq, later->offset);
      } else if (s.records == 0 && (version == kFormatVersion2 || !couldBeTornFirstEntry(file))) {
        if (!options.truncateCorruptTail) {
          return fail(
              ErrorCode::kCorruption,
              fmt::format("journal {}: the first record, at offset {}, is damaged ({}). It is "
                          "not the first entry of a new journal, the only first record a crash "
                          "can tear: it is the snapshot a compaction wrote, fsynced before its "
                          "file was renamed into place, so this is corruption of acknowledged "
                          "state; refusing to drop it. {}",
                          name, off, p.problem, discard));
        }
        s.dropReason += "; a damaged snapshot discarded by truncateCorruptTail";
      }
      return s;
    }
    const ParsedRecord& r = *p.record;
    const bool knownKind = r.kind == static_cast<std::uint8_t>(RecordKind::kEntry) ||
                           r.kind == static_cast<std::uint8_t>(RecordKind::kSnapshot);
    if (!knownKind || !r.reservedZero) {
      return fail(ErrorCode::kCorruption,
                  fmt::format("journal {}: record at offset {} (seq {}) has kind {} or reserved "
                              "bytes this build does not know; written by a newer version?",
                              name, off, r.seq, r.kind));
    }
    if (version == kFormatVersion2 && s.records == 0 &&
        r.kind != static_cast<std::uint8_t>(RecordKind::kSnapshot)) {
      return fail(ErrorCode::kCorruption,
                  fmt::format("journal {}: record at offset {} (seq {}) is an entry, but a version "
                              "2 journal starts with a snapshot",
                              name, off, r.seq));
    }
    // A checksummed record out of sequence is no torn write: it is a bug or spliced files, and
    // guessing which side to keep could lose acknowledged records.
    if (s.records == 0 ? r.seq == 0 : r.seq != s.lastSeq + 1) {
      return fail(ErrorCode::kCorruption,
                  fmt::format("journal {}: record at offset {} has seq {} after seq {}; sequence "
                              "numbers must start at 1 and grow by exactly one",
                              name, off, r.seq, s.lastSeq));
    }
    RecoveredRecord rec{r.seq, std::vector<std::byte>(r.payload.begin(), r.payload.end())};
    if (r.kind == static_cast<std::uint8_t>(RecordKind::kSnapshot)) {
      out.snapshot = std::move(rec);
      out.entries.clear();
      s.entriesSinceSnapshot = 0;
    } else {
      out.entries.push_back(std::move(rec));
      ++s.entriesSinceSnapshot;
    }
    ++s.records;
    s.lastSeq = r.seq;
    off = r.end;
    s.validEnd = off;
  }
  if (version == kFormatVersion2 && s.records == 0) {
    return fail(ErrorCode::kCorruption,
                fmt::format("journal {}: a version 2 journal starts with a snapshot, but this one "
                            "ends at offset {}, after its file header",
                            name, file.size()));
  }
  return s;
}

// ---- file operations -----------------------------------------------------------------------

std::string errnoText(int err) { return std::generic_category().message(err); }

std::unexpected<Error> ioFail(const std::string& name, std::string_view what, int err) {
  return fail(ErrorCode::kIo, fmt::format("journal {}: {}: {}", name, what, errnoText(err)));
}

int injected(const JournalOptions& options, JournalFileOp op) {
  return options.injectFault ? options.injectFault(op) : 0;
}

fs::path withSuffix(const fs::path& path, std::string_view suffix) {
  fs::path p = path;
  p += suffix;
  return p;
}

fs::path directoryOf(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// Returns 0 or an errno.
int pwriteAll(int fd, Bytes data, std::uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress and no error: do not spin
    data = data.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

Result<std::vector<std::byte>> readAll(const std::string& name, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ioFail(name, "fstat", errno);
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (true) {
    if (got == bytes.size()) bytes.resize(bytes.size() + 4096);  // the file grew meanwhile
    const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ioFail(name, fmt::format("reading at offset {}", got), errno);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

// Writes the parts, one after the other, into a new file at tmp and fsyncs it; on failure
// removes tmp. An fsync failure here is harmless to retry later: the file is thrown away, not
// trusted. Parts rather than one buffer, so a snapshot is written from the caller's bytes
// instead of a copy of them.
Result<UniqueFd> writeSyncedFile(const std::string& name, const fs::path& tmp,
                                 std::span<const Bytes> parts, const JournalOptions& options) {
  std::uint64_t size = 0;
  for (const Bytes part : parts)
    size += part.size();
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ioFail(name, fmt::format("creating {}", tmp.string()), errno);
  std::string_view step = "writing";
  int err = injected(options, JournalFileOp::kSnapshotWrite);
  std::uint64_t offset = 0;
  for (const Bytes part : parts) {
    if (err != 0) break;
    err = pwriteAll(fd.get(), part, offset);
    offset += part.size();
  }
  if (err == 0) {
    step = "fsync of";
    err = injected(options, JournalFileOp::kSnapshotSync);
    if (err == 0 && ::fsync(fd.get()) != 0) err = errno;
  }
  if (err != 0) {
    ::unlink(tmp.c_str());
    return ioFail(name, fmt::format("{} {} ({} bytes)", step, tmp.string(), size), err);
  }
  return fd;
}

// What an installed file replaced, for the caller to decide whether its journal is still whole.
enum class InstallStage { kBeforeRename, kAfterRename };

struct InstallError {
  InstallStage stage;
  Error error;
};

// Makes the parts, concatenated, the content of path atomically: tmp file, fsync, rename,
// directory fsync. Returns the open new file (appends go after the parts).
std::expected<UniqueFd, InstallError> installFile(const std::string& name, const fs::path& path,
                                                  std::span<const Bytes> parts,
                                                  const JournalOptions& options) {
  // The directory is opened first: with no descriptor left (EMFILE, ENFILE) the install then
  // fails before the rename, with the old journal intact and in use, instead of after it, where
  // the rename's durability would be unknown and the journal would have to fail.
  const fs::path dir = directoryOf(path);
  const UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd.valid()) {
    return std::unexpected(InstallError{
        InstallStage::kBeforeRename,
        ioFail(name, fmt::format("opening directory {}", dir.string()), errno).error()});
  }
  const fs::path tmp = withSuffix(path, ".tmp");
  auto fd = writeSyncedFile(name, tmp, parts, options);
  if (!fd) return std::unexpected(InstallError{InstallStage::kBeforeRename, fd.error()});
  int err = injected(options, JournalFileOp::kRename);
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return std::unexpected(
        InstallError{InstallStage::kBeforeRename,
                     ioFail(name, fmt::format("renaming {} over it", tmp.string()), err).error()});
  }
  err = injected(options, JournalFileOp::kDirSync);
  if (err == 0 && ::fsync(dirFd.get()) != 0) err = errno;
  if (err != 0) {
    return std::unexpected(InstallError{
        InstallStage::kAfterRename,
        ioFail(name,
               fmt::format("fsync of directory {} after the rename (the rename may not be durable)",
                           dir.string()),
               err)
            .error()});
  }
  return std::move(*fd);
}

}  // namespace

// ---- Journal ---------------------------------------------------------------------------------

Journal::Journal(fs::path path, JournalOptions options, UniqueFd fd, UniqueFd lock,
                 std::uint64_t fileBytes, std::uint64_t records, std::uint64_t entriesSinceSnapshot,
                 Seq lastSeq)
    : path_(std::move(path)),
      options_(std::move(options)),
      fd_(std::move(fd)),
      lock_(std::move(lock)),
      fileBytes_(fileBytes),
      records_(records),
      entriesSinceSnapshot_(entriesSinceSnapshot),
      lastSeq_(lastSeq),
      durableSeq_(lastSeq) {}

Journal::~Journal() = default;

Result<std::pair<std::unique_ptr<Journal>, Recovered>> Journal::open(fs::path path,
                                                                     JournalOptions options) {
  const std::string name = path.string();

  // The lock comes first: the stale-tmp cleanup below would destroy a live compaction.
  const fs::path lockPath = withSuffix(path, ".lock");
  UniqueFd lock(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) {
    return ioFail(name, fmt::format("creating lock file {}", lockPath.string()), errno);
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      return fail(ErrorCode::kConflict,
                  fmt::format("journal {}: already open by another Journal (lock file {} is "
                              "held); only one agent may own a node's journal",
                              name, lockPath.string()));
    }
    return ioFail(name, fmt::format("locking {}", lockPath.string()), err);
  }

  Recovered recovered;
  // A tmp file is a compaction that never reached its rename: the journal itself is still the
  // complete old state, so the tmp is garbage whatever it holds.
  const fs::path tmp = withSuffix(path, ".tmp");
  if (::unlink(tmp.c_str()) == 0) {
    recovered.removedStaleTmp = true;
  } else if (errno != ENOENT) {
    return ioFail(name, fmt::format("removing stale compaction file {}", tmp.string()), errno);
  }

  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  bool fresh = false;
  std::vector<std::byte> bytes;
  ScanSummary scan;
  if (!fd.valid()) {
    if (errno != ENOENT) return ioFail(name, "opening", errno);
    fresh = true;
  } else {
    auto read = readAll(name, fd.get());
    if (!read) return std::unexpected(read.error());
    bytes = std::move(*read);
    auto header = checkFileHeader(name, bytes);
    if (!header) return std::unexpected(header.error());
    if (header->tornCreation()) {
      fresh = true;
      if (!bytes.empty()) {
        recovered.dropped = Recovered::Dropped{
            0, bytes.size(),
            fmt::format("partial file header ({} of {} bytes)", bytes.size(), kFileHeaderSize)};
      }
    } else {
      auto scanned = scanRecords(name, bytes, header->version, options, recovered);
      if (!scanned) return std::unexpected(scanned.error());
      scan = std::move(*scanned);
      // A version 2 file promises a snapshot first; with none left (truncateCorruptTail dropped
      // it, the only way a scan of one succeeds without records) nothing was recovered, so start
      // a new version 1 journal rather than break the promise.
      if (header->version == kFormatVersion2 && scan.records == 0) {
        fresh = true;
        if (scan.validEnd < bytes.size()) {
          recovered.dropped =
              Recovered::Dropped{kFileHeaderSize, bytes.size() - kFileHeaderSize, scan.dropReason};
        }
      }
    }
  }

  if (fresh) {
    recovered.created = true;
    const auto header = encodeFileHeader();
    const Bytes parts[] = {header};
    auto created = installFile(name, path, parts, options);
    if (!created) return std::unexpected(std::move(created.error().error));
    auto journal = std::unique_ptr<Journal>(new Journal(std::move(path), std::move(options),
                                                        std::move(*created), std::move(lock),
                                                        kFileHeaderSize, 0, 0, 0));
    return std::pair{std::move(journal), std::move(recovered)};
  }

  if (scan.validEnd < bytes.size()) {
    if (::ftruncate(fd.get(), static_cast<off_t>(scan.validEnd)) != 0) {
      return ioFail(name, fmt::format("cutting the torn tail at offset {}", scan.validEnd), errno);
    }
    recovered.dropped =
        Recovered::Dropped{scan.validEnd, bytes.size() - scan.validEnd, scan.dropReason};
  }
  // The previous process may have died after writing records it never synced: they sit in the
  // page cache, and we are about to hand them out as state. Make them (and the truncation)
  // durable first, so nothing the agent builds on can vanish in a later power loss.
  if (::fsync(fd.get()) != 0) return ioFail(name, "fsync after recovery", errno);

  auto journal = std::unique_ptr<Journal>(
      new Journal(std::move(path), std::move(options), std::move(fd), std::move(lock),
                  scan.validEnd, scan.records, scan.entriesSinceSnapshot, scan.lastSeq));
  return std::pair{std::move(journal), std::move(recovered)};
}

std::unexpected<Error> Journal::markFailed(Error error) {
  failed_ = error;
  cv_.notify_all();
  gatherCv_.notify_all();
  return std::unexpected(std::move(error));
}

Result<Seq> Journal::append(std::span<const std::byte> payload) {
  if (payload.size() > options_.maxPayloadBytes) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("journal {}: payload of {} bytes exceeds the limit of {} bytes "
                            "(JournalOptions::maxPayloadBytes)",
                            path_.string(), payload.size(), options_.maxPayloadBytes));
  }
  const std::lock_guard lock(mu_);
  if (failed_) return std::unexpected(*failed_);
  const Seq seq = lastSeq_ + 1;
  scratch_.clear();
  encodeRecord(scratch_, RecordKind::kEntry, seq, payload);

  int err = injected(options_, JournalFileOp::kAppendWrite);
  if (err != 0) {
    (void)pwriteAll(fd_.get(), Bytes(scratch_).first(scratch_.size() / 2), fileBytes_);
  } else {
    err = pwriteAll(fd_.get(), scratch_, fileBytes_);
  }
  if (err != 0) {
    // A partial record left in place would sit in front of the next one, and recovery would
    // then rightly call it mid-log corruption. Cut it off; if even that fails, later records
    // cannot be put behind a clean boundary, so the journal fails.
    if (::ftruncate(fd_.get(), static_cast<off_t>(fileBytes_)) != 0) {
      const int truncErr = errno;
      return markFailed(Error{
          ErrorCode::kIo,
          fmt::format("journal {}: writing record seq {} at offset {} failed ({}), and cutting "
                      "the partial record off failed too ({}); the journal is failed, restart "
                      "to recover from disk",
                      path_.string(), seq, fileBytes_, errnoText(err), errnoText(truncErr))});
    }
    return fail(ErrorCode::kIo,
                fmt::format("journal {}: writing record seq {} ({} bytes) at offset {} failed: "
                            "{}; the record was not written",
                            path_.string(), seq, scratch_.size(), fileBytes_, errnoText(err)));
  }
  fileBytes_ += scratch_.size();
  lastSeq_ = seq;
  ++records_;
  ++entriesSinceSnapshot_;
  return seq;
}

Result<Seq> Journal::append(std::string_view payload) {
  return append(std::as_bytes(std::span(payload.data(), payload.size())));
}

Result<void> Journal::sync(Seq upTo) {
  std::unique_lock lock(mu_);
  if (upTo > lastSeq_) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("journal {}: sync up to seq {}, but the last record appended is seq {}",
                            path_.string(), upTo, lastSeq_));
  }
  if (failed_) return std::unexpected(*failed_);
  if (durableSeq_ >= upTo) return {};
  const auto me = waitingUpTo_.insert(upTo);
  struct Leave {
    std::multiset<Seq>& waiting;
    std::multiset<Seq>::iterator me;
    ~Leave() { waiting.erase(me); }
  } leave{waitingUpTo_, me};
  if (gathering_ && unsatisfiedLocked() >= lastGroup_) gatherCv_.notify_one();
  while (true) {
    if (failed_) return std::unexpected(*failed_);
    if (durableSeq_ >= upTo) return {};
    if (syncInProgress_) {
      cv_.wait(lock);
      continue;
    }
    // Lead one group commit: everything written so far, including what other threads appended
    // while the previous fsync ran. Appends continue while this fsync runs; they are covered by
    // the next one. fdatasync suffices: it also flushes the file size, which appends change.
    syncInProgress_ = true;
    gatherLocked(lock);
    const Seq target = lastSeq_;
    const std::uint64_t bytes = fileBytes_;
    const std::size_t group = unsatisfiedLocked();  // each appended before calling: covered
    const int fd = fd_.get();  // compact() waits for syncInProgress_ to clear before swapping
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    int err = injected(options_, JournalFileOp::kAppendSync);
    if (err == 0 && ::fdatasync(fd) != 0) err = errno;
    const auto took = std::chrono::steady_clock::now() - started;
    lock.lock();
    syncInProgress_ = false;
    ++syncs_;
    if (err != 0) {
      // Never retry: after a failed fsync Linux may have dropped the dirty pages or marked them
      // clean, so a second fsync can succeed without the data ever reaching the disk (the 2018
      // PostgreSQL "fsyncgate"). Only re-reading the file after a restart tells the truth.
      return markFailed(Error{
          ErrorCode::kIo,
          fmt::format("journal {}: fdatasync of records through seq {} ({} bytes) failed: {}; "
                      "the journal is failed and will not retry, restart to recover from disk",
                      path_.string(), target, bytes, errnoText(err))});
    }
    syncedCallers_ += group;
    // A moving average over about eight fsyncs: one slow fsync does not stretch the window.
    const auto tookNs = std::chrono::duration_cast<std::chrono::nanoseconds>(took);
    fsyncAverage_ = syncs_ == 1 ? tookNs : fsyncAverage_ + (tookNs - fsyncAverage_) / 8;
    durableSeq_ = std::max(durableSeq_, target);
    // The writers active now: the group just served and those who arrived during its fsync.
    // Counting only the group would let groups that happened to split (5 and 3 of 8 writers)
    // keep splitting, each leader waiting for its own half only.
    lastGroup_ = group + unsatisfiedLocked();
    cv_.notify_all();
  }
}

std::size_t Journal::unsatisfiedLocked() const {
  return static_cast<std::size_t>(
      std::distance(waitingUpTo_.upper_bound(durableSeq_), waitingUpTo_.end()));
}

void Journal::gatherLocked(std::unique_lock<std::mutex>& lock) {
  // Only when several writers were active around the previous fsync: a lone writer syncs at once.
  // The callers of that group are typically a round trip away from their next record (answer the
  // client, read its next request); waiting for them costs at most one average fsync, while not
  // waiting costs the latecomers a whole extra fsync after this one.
  if (lastGroup_ <= 1 || unsatisfiedLocked() >= lastGroup_) return;
  const auto window = std::min<std::chrono::nanoseconds>(options_.groupCommitWindow, fsyncAverage_);
  if (window <= std::chrono::nanoseconds::zero()) return;
  gathering_ = true;
  ++gathers_;
  gatherCv_.wait_for(lock, window, [&] { return failed_ || unsatisfiedLocked() >= lastGroup_; });
  gathering_ = false;
}

Result<Seq> Journal::appendDurable(std::span<const std::byte> payload) {
  auto seq = append(payload);
  if (!seq) return seq;
  if (auto synced = sync(*seq); !synced) return std::unexpected(synced.error());
  return seq;
}

Result<Seq> Journal::appendDurable(std::string_view payload) {
  return appendDurable(std::as_bytes(std::span(payload.data(), payload.size())));
}

Result<Seq> Journal::compact(std::span<const std::byte> snapshot, Seq through) {
  const std::uint32_t limit = PayloadLimits::of(options_).snapshot;
  if (snapshot.size() > limit) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("journal {}: snapshot of {} bytes exceeds the limit of {} bytes "
                            "(JournalOptions::maxSnapshotBytes)",
                            path_.string(), snapshot.size(), limit));
  }
  std::unique_lock lock(mu_);
  // Holding mu_ from here on keeps appends and new group commits out until the swap is done.
  cv_.wait(lock, [&] { return !syncInProgress_; });
  if (failed_) return std::unexpected(*failed_);
  if (through != lastSeq_) {
    return fail(ErrorCode::kConflict,
                fmt::format("journal {}: snapshot reflects records through seq {}, but the journal "
                            "holds records through seq {}; the later ones would be lost. Take the "
                            "snapshot and compact while appends are paused",
                            path_.string(), through, lastSeq_));
  }
  const Seq seq = lastSeq_ + 1;
  // Version 1 whenever a version 1 reader would read the snapshot, so that an older agent can
  // still open the journal after a downgrade; only a longer snapshot needs version 2.
  const auto header = encodeFileHeader(
      snapshot.size() > options_.maxPayloadBytes ? kFormatVersion2 : kFormatVersion1);
  const auto recordHeader = encodeRecordHeader(RecordKind::kSnapshot, seq, snapshot);
  const Bytes parts[] = {header, recordHeader, snapshot};
  const std::uint64_t fileBytes = kFileHeaderSize + kRecordHeaderSize + snapshot.size();

  auto installed = installFile(path_.string(), path_, parts, options_);
  if (!installed) {
    // Before the rename the old journal is untouched and still ours: report, keep going.
    // After it, we cannot tell which file a crash would leave, so neither is safe to append to.
    if (installed.error().stage == InstallStage::kBeforeRename) {
      return std::unexpected(std::move(installed.error().error));
    }
    return markFailed(std::move(installed.error().error));
  }
  fd_ = std::move(*installed);
  fileBytes_ = fileBytes;
  records_ = 1;
  entriesSinceSnapshot_ = 0;
  lastSeq_ = seq;
  durableSeq_ = seq;  // the snapshot holds every record before it, now durably
  cv_.notify_all();
  return seq;
}

Result<Seq> Journal::compact(std::string_view snapshot, Seq through) {
  return compact(std::as_bytes(std::span(snapshot.data(), snapshot.size())), through);
}

JournalStats Journal::stats() const {
  const std::lock_guard lock(mu_);
  return JournalStats{fileBytes_,     records_,    entriesSinceSnapshot_,
                      lastSeq_,       durableSeq_, syncs_,
                      syncedCallers_, gathers_,    waitingUpTo_.size()};
}

Seq Journal::lastSeq() const {
  const std::lock_guard lock(mu_);
  return lastSeq_;
}

}  // namespace vnetipam::ipam
