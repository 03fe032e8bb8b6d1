// Fuzz target: what the node agent reads back at start, its journal file. The input becomes the
// journal file in a private directory; ipam::Journal::open() recovers it and
// agent::replay() decodes the records (node-agent/journal_record.h) into the recorded state.
//
// Records carry a CRC32C, which random mutation almost never gets right, so most inputs would
// stop at the first checksum. The first byte therefore picks how the rest is used:
//   even: the rest is the file, byte for byte (damage, torn tails, foreign files);
//   odd:  the rest is a list of records, each a kind byte (1 entry, 2 snapshot, else either), a
//         one-byte payload length and the payload, which this target writes as a well-formed
//         file with sequence numbers and checksums filled in, so the payloads reach the decoders.
// The rest also goes to decodeEntry and decodeSnapshot directly.
#include "lib/ipam/journal.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "fuzz/fuzz_target.h"
#include "lib/ipam/crc32c.h"
#include "node-agent/journal_record.h"

namespace vnetipam::fuzz {

const char* const kTargetName = "journal";

namespace {

// The on-disk format of lib/ipam/journal.h, version 1.
constexpr std::uint32_t kFileMagic = 0x4A504956U;    // "VIPJ"
constexpr std::uint32_t kRecordMagic = 0x52504956U;  // "VIPR"

void putLe32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
}
void putLe64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
}

std::string wellFormedFile(std::string_view records) {
  std::string file;
  putLe32(file, kFileMagic);
  putLe32(file, 1);
  putLe32(file, 0);
  putLe32(file, ipam::crc32c(std::string_view(file)));
  std::uint64_t seq = 1;
  while (records.size() >= 2) {
    const auto kind = static_cast<unsigned char>(records[0]);
    const std::size_t length =
        std::min<std::size_t>(static_cast<unsigned char>(records[1]), records.size() - 2);
    const std::string_view payload = records.substr(2, length);
    records.remove_prefix(2 + length);
    std::string header;
    putLe32(header, kRecordMagic);
    putLe32(header, static_cast<std::uint32_t>(payload.size()));
    putLe64(header, seq++);
    header.push_back(static_cast<char>(kind == 2 ? 2 : kind == 1 ? 1 : 1 + kind % 2));
    header.append(3, '\0');
    const std::uint32_t crc = ipam::crc32cExtend(ipam::crc32c(std::string_view(header)),
                                                 std::as_bytes(std::span(payload)));
    putLe32(header, crc);
    file += header;
    file += payload;
  }
  return file;
}

// A private directory for the process's journal, on tmpfs when there is one: open() fsyncs.
const std::filesystem::path& workDir() {
  static const std::filesystem::path dir = [] {
    std::string base = "/dev/shm";
    if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') base = tmp;
    if (::access(base.c_str(), W_OK) != 0) base = "/tmp";
    std::string pattern = base + "/vnet-ipam-fuzz-journal.XXXXXX";
    fuzzCheck(::mkdtemp(pattern.data()) != nullptr, "cannot make a temporary directory");
    const std::filesystem::path made(pattern);
    // Removed at exit; a process afl-fuzz kills leaves it behind, in the temporary directory.
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(workDir(), ignored);
    });
    return made;
  }();
  return dir;
}

}  // namespace

void fuzzOne(std::string_view input) {
  if (input.empty()) return;
  const bool structured = (static_cast<unsigned char>(input[0]) & 1U) != 0;
  const std::string_view rest = input.substr(1);

  (void)agent::decodeEntry(rest);
  (void)agent::decodeSnapshot(rest);

  const std::filesystem::path dir = workDir();
  const std::filesystem::path path = dir / "journal";
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored))
    std::filesystem::remove_all(entry.path(), ignored);
  {
    const std::string file = structured ? wellFormedFile(rest) : std::string(rest);
    std::ofstream out(path, std::ios::binary);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
    fuzzCheck(out.good(), "cannot write the journal file");
  }
  // Small enough that a length field can pass it with a few mutations.
  auto opened = ipam::Journal::open(path, {.maxPayloadBytes = 4096, .groupCommitWindow = {}});
  if (!opened) return;
  auto& [journal, recovered] = *opened;
  if (auto state = agent::replay(recovered)) {
    // What was recovered can be written back and read again: the agent compacts after start.
    const std::string snapshot = agent::encodeSnapshot(*state);
    const auto again = agent::decodeSnapshot(snapshot);
    fuzzCheck(again.has_value() && *again == *state,
              "a replayed state does not survive a snapshot");
    (void)journal->compact(snapshot, journal->lastSeq());
  }
}

}  // namespace vnetipam::fuzz
