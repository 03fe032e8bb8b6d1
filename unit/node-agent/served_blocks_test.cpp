// The served-blocks file: what reads back is exactly what was written, and anything else (a
// missing, torn, damaged, foreign or future file) reads as "no persisted blocks".
#include "node-agent/served_blocks.h"

#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lib/ipam/crc32c.h"
#include "unit/node-agent/temp_dir.h"

namespace vnetipam::agent {
namespace {

using testing::TempDir;

ipam::Prefix cidr(std::string_view text) { return *ipam::Prefix::parse(text); }

const std::vector<ServedBlock> kBlocks = {
    {.name = "pods-10-0-0-16-28", .cidr = cidr("10.0.0.16/28")},
    {.name = "pods-10-0-0-0-28", .cidr = cidr("10.0.0.0/28")},
    {.name = "v6", .cidr = cidr("fd00::/120")}};

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

TEST(ServedBlocksTest, ReadsBackWhatWasWrittenSortedByName) {
  TempDir dir;
  ASSERT_TRUE(saveServedBlocks(dir.path(), "n1", kBlocks));
  auto loaded = loadServedBlocks(dir.path(), "n1");
  ASSERT_TRUE(loaded) << loaded.error();
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0], kBlocks[1]);
  EXPECT_EQ((*loaded)[1], kBlocks[0]);
  EXPECT_EQ((*loaded)[2], kBlocks[2]);
  // Nothing but the file itself is left in the directory (the temporary file was renamed).
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
    ++files;
  EXPECT_EQ(files, 1u);

  ASSERT_TRUE(saveServedBlocks(dir.path(), "n1", {}));
  loaded = loadServedBlocks(dir.path(), "n1");
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_TRUE(loaded->empty()) << "an empty set is a valid set";
}

TEST(ServedBlocksTest, AMissingFileIsNoBlocks) {
  TempDir dir;
  EXPECT_FALSE(loadServedBlocks(dir.path(), "n1"));
  EXPECT_FALSE(loadServedBlocks(dir.path() / "absent", "n1"));
}

TEST(ServedBlocksTest, EveryDamageIsNoBlocks) {
  const std::string good = encodeServedBlocks("n1", kBlocks);
  ASSERT_TRUE(decodeServedBlocks(good, "n1"));
  // Every single flipped bit, every truncation and an appended byte are refused.
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = good;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      auto decoded = decodeServedBlocks(damaged, "n1");
      if (decoded) {
        // A flip that still decodes must not be able to name other blocks: only the header's
        // hex case can flip harmlessly ('a' <-> 'A').
        EXPECT_EQ(*decoded, *decodeServedBlocks(good, "n1")) << "byte " << i << " bit " << bit;
      }
    }
  }
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decodeServedBlocks(good.substr(0, n), "n1")) << "cut at " << n;
  }
  EXPECT_FALSE(decodeServedBlocks(good + " ", "n1"));
  EXPECT_FALSE(decodeServedBlocks("", "n1"));
  EXPECT_FALSE(decodeServedBlocks("garbage\n{}", "n1"));

  TempDir dir;
  ASSERT_TRUE(saveServedBlocks(dir.path(), "n1", kBlocks));
  std::string text = readFile(dir.path() / kServedBlocksFile);
  text[text.size() - 3] = 'X';
  writeFile(dir.path() / kServedBlocksFile, text);
  auto loaded = loadServedBlocks(dir.path(), "n1");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().find("checksum"), std::string::npos) << loaded.error();
}

TEST(ServedBlocksTest, AnotherVersionOrNodeIsNoBlocks) {
  const std::string body = R"({"node":"n1","blocks":[{"name":"a","cidr":"10.0.0.0/28"}]})";
  auto file = [&](int version, const std::string& b) {
    return fmt::format("vnet-ipam-served-blocks {} {:08x} {}\n{}", version, ipam::crc32c(b),
                       b.size(), b);
  };
  ASSERT_TRUE(decodeServedBlocks(file(1, body), "n1"));
  auto future = decodeServedBlocks(file(2, body), "n1");
  ASSERT_FALSE(future);
  EXPECT_NE(future.error().find("version 2"), std::string::npos) << future.error();
  EXPECT_FALSE(decodeServedBlocks(file(0, body), "n1"));
  auto foreign = decodeServedBlocks(file(1, body), "n2");
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().find("n1"), std::string::npos) << foreign.error();
  // A body with the right checksum but a bad entry is refused too.
  EXPECT_FALSE(decodeServedBlocks(
      file(1, R"({"node":"n1","blocks":[{"name":"a","cidr":"10.0.0.1/28"}]})"), "n1"));
  EXPECT_FALSE(
      decodeServedBlocks(file(1, R"({"node":"n1","blocks":[{"name":"a","cidr":"10.0.0.0/28"},)"
                                 R"({"name":"a","cidr":"10.0.0.16/28"}]})"),
                         "n1"));
  EXPECT_FALSE(decodeServedBlocks(file(1, R"({"node":"n1"})"), "n1"));
}

}  // namespace
}  // namespace vnetipam::agent
