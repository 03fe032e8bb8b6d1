// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of iSCSI, ext4 metadata and
// most storage logs. Software only, table-driven (slicing-by-8): fast enough for a journal whose
// cost is dominated by fsync, and free of CPU feature detection.
//
// Conventions a caller may rely on:
// - crc32c(data) is the standard value: crc32c("123456789") == 0xE3069283, crc32c("") == 0.
// - crc32cExtend(crc32c(a), b) == crc32c(a followed by b), so a record checksum can cover a
//   header and a payload held in different buffers without copying them together.
// - Pure functions of their arguments; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace vnetipam::ipam {

std::uint32_t crc32cExtend(std::uint32_t crc, std::span<const std::byte> data);

inline std::uint32_t crc32c(std::span<const std::byte> data) { return crc32cExtend(0, data); }

inline std::uint32_t crc32c(std::string_view text) {
  return crc32c(std::as_bytes(std::span(text.data(), text.size())));
}

}  // namespace vnetipam::ipam
