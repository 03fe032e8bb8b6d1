#include "lib/ipam/crc32c.h"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vnetipam::ipam {
namespace {

std::vector<std::byte> bytesOf(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values)
    out.push_back(static_cast<std::byte>(v));
  return out;
}

// Bit-at-a-time reference, straight from the definition, to check the sliced tables against.
std::uint32_t referenceCrc32c(std::span<const std::byte> data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::byte b : data) {
    c ^= std::to_integer<std::uint32_t>(b);
    for (int bit = 0; bit < 8; ++bit)
      c = (c & 1u) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(Crc32cTest, CheckValue) { EXPECT_EQ(crc32c("123456789"), 0xE3069283u); }

TEST(Crc32cTest, EmptyInputIsZero) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32cExtend(0x12345678u, {}), 0x12345678u);
}

// RFC 3720 (iSCSI) appendix B.4 test vectors.
TEST(Crc32cTest, Rfc3720Vectors) {
  std::vector<std::byte> zeros(32, std::byte{0x00});
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  std::vector<std::byte> ones(32, std::byte{0xFF});
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  std::vector<std::byte> ascending;
  std::vector<std::byte> descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<std::byte>(i));
    descending.push_back(static_cast<std::byte>(31 - i));
  }
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending), 0x113FDB5Cu);
  const auto iscsiRead =
      bytesOf({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
               0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
               0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
               0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
  EXPECT_EQ(crc32c(iscsiRead), 0xD9963A56u);
}

TEST(Crc32cTest, MatchesBitwiseReferenceAtEveryLengthAndAlignment) {
  std::vector<std::byte> data(300);
  std::uint32_t x = 0x9E3779B9u;
  for (auto& b : data) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  const std::span<const std::byte> all(data);
  for (std::size_t start = 0; start < 9; ++start) {
    for (std::size_t len = 0; start + len <= 80; ++len) {
      const auto part = all.subspan(start, len);
      ASSERT_EQ(crc32c(part), referenceCrc32c(part)) << "start " << start << " len " << len;
    }
  }
  EXPECT_EQ(crc32c(all), referenceCrc32c(all));
}

TEST(Crc32cTest, ExtendEqualsWholeAtEverySplit) {
  const std::string text = "allocate 10.240.0.17 to pod default/web-0 eth0, container 3f2a...";
  const auto whole = crc32c(text);
  const auto bytes = std::as_bytes(std::span(text.data(), text.size()));
  for (std::size_t split = 0; split <= bytes.size(); ++split) {
    EXPECT_EQ(crc32cExtend(crc32c(bytes.first(split)), bytes.subspan(split)), whole)
        << "split " << split;
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string text = "10.240.0.16/28 node-a";
  const auto original = crc32c(text);
  for (std::size_t i = 0; i < text.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = text;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      EXPECT_NE(crc32c(flipped), original) << "byte " << i << " bit " << bit;
    }
  }
}

}  // namespace
}  // namespace vnetipam::ipam
