#include "lib/base/file.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "unit/lib/base/temp_dir.h"

namespace vnetipam::base {
namespace {

namespace fs = std::filesystem;

class WriteFileAtomicallyTest : public ::testing::Test {
 protected:
  static std::string read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
};

TEST_F(WriteFileAtomicallyTest, CreatesTheDirectoryAndReplacesTheFileLeavingNoTemporary) {
  const fs::path conf = dir_ / "net.d";
  ASSERT_TRUE(writeFileAtomically(conf, "10-a.conflist", "first\n").has_value());
  ASSERT_TRUE(writeFileAtomically(conf, "10-a.conflist", "second\n").has_value());
  EXPECT_EQ(read(conf / "10-a.conflist"), "second\n");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(conf))
    ++entries;
  EXPECT_EQ(entries, 1u) << "the temporary file was renamed, not left behind";
}

TEST_F(WriteFileAtomicallyTest, AFailureIsKIoNamingThePathAndKeepsTheOldFile) {
  ASSERT_TRUE(writeFileAtomically(dir_, "state", "old").has_value());
  // A directory where the temporary file would go: creating it fails.
  fs::create_directory(dir_ / ".state.tmp");
  auto failed = writeFileAtomically(dir_, "state", "new");
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kIo);
  EXPECT_NE(failed.error().message.find(".state.tmp"), std::string::npos) << failed.error().message;
  EXPECT_EQ(read(dir_ / "state"), "old");
}

}  // namespace
}  // namespace vnetipam::base
