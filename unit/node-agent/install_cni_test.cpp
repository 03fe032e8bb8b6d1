#include "node-agent/install_cni.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit/node-agent/temp_dir.h"

namespace vnetipam::agent {
namespace {

namespace fs = std::filesystem;

std::expected<InstallCniOptions, std::string> parse(std::vector<const char*> args) {
  return parseInstallCniOptions(args);
}

void writeFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> listDir(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(InstallCniOptionsTest, FlagsAndPluginsInAnyOrder) {
  auto o = parse({"--dest-dir=/host/opt/cni/bin", "loopback", "--source-dir", "/a", "portmap",
                  "--source-dir=/b", "--log-format=json", "vnet-ipam"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->destDir, "/host/opt/cni/bin");
  EXPECT_EQ(o->sourceDirs, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(o->plugins, (std::vector<std::string>{"loopback", "portmap", "vnet-ipam"}));
  EXPECT_EQ(o->logFormat, cli::LogFormat::kJson);
}

TEST(InstallCniOptionsTest, NoSourceDirMeansTheImagesDirectories) {
  auto o = parse({"--dest-dir", "/d", "vnet-ipam"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_TRUE(o->sourceDirs.empty()) << "installPlugins then searches kDefaultPluginSourceDirs";
  EXPECT_EQ(kDefaultPluginSourceDirs[0], "/usr/local/bin");
  EXPECT_EQ(kDefaultPluginSourceDirs[1], "/usr/local/lib/cni");
}

TEST(InstallCniOptionsTest, ErrorsNameWhatIsWrong) {
  struct Case {
    std::vector<const char*> args;
    std::string error;
  };
  const Case cases[] = {
      {{"vnet-ipam"}, "--dest-dir: required"},
      {{"--dest-dir", "/d"}, "no plugin named: give one or more PLUGIN names"},
      {{"--dest-dir", "/d", "a/b"}, "\"a/b\" is not a plugin name (a file name, without '/')"},
      {{"--dest-dir", "/d", ".."}, "\"..\" is not a plugin name (a file name, without '/')"},
      {{"--dest-dir", "/d", "x", "x"}, "plugin \"x\" is named twice"},
      {{"--dest-dir", "/d", "--source-dir=", "x"}, "--source-dir: must not be empty"},
      {{"--dest-dir", "/d", "--socket", "/s", "x"}, "unknown flag --socket"},
      {{"--dest-dir", "/d", "-x"}, "unexpected argument \"-x\""},
  };
  for (const auto& c : cases) {
    auto o = parse(c.args);
    ASSERT_FALSE(o) << c.error;
    EXPECT_EQ(o.error(), c.error);
  }
}

TEST(InstallCniOptionsTest, Help) {
  auto o = parse({"x", "--help"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_TRUE(o->help);
}

TEST(FindPluginTest, TheFirstDirectoryHoldingItWins) {
  testing::TempDir dir;
  writeFile(dir.path() / "b" / "portmap", "from b");
  writeFile(dir.path() / "c" / "portmap", "from c");
  fs::create_directories(dir.path() / "a" / "portmap");  // a directory of that name: not a plugin
  const std::vector<std::string> dirs = {(dir.path() / "a").string(), (dir.path() / "b").string(),
                                         (dir.path() / "c").string()};
  auto found = findPlugin(dirs, "portmap");
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(*found, dir.path() / "b" / "portmap");
}

TEST(FindPluginTest, NotFoundListsWhereItLooked) {
  testing::TempDir dir;
  const std::vector<std::string> dirs = {(dir.path() / "a").string(), (dir.path() / "b").string()};
  auto found = findPlugin(dirs, "loopback");
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, base::ErrorCode::kNotFound);
  EXPECT_EQ(found.error().message,
            "plugin loopback: no regular file of that name in " + dirs[0] + ", " + dirs[1]);
}

TEST(InstallPluginTest, CopiesWithMode0755AndLeavesNoTemporaryFile) {
  testing::TempDir dir;
  const std::string content(200'000, 'x');  // more than one read of the copy loop
  writeFile(dir.path() / "src" / "vnet-ipam", content);
  ::chmod((dir.path() / "src" / "vnet-ipam").c_str(), 0600);
  fs::create_directories(dir.path() / "dest");
  ASSERT_TRUE(installPlugin(dir.path() / "src" / "vnet-ipam", dir.path() / "dest", "vnet-ipam"));
  EXPECT_EQ(readFile(dir.path() / "dest" / "vnet-ipam"), content);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "dest" / "vnet-ipam").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(listDir(dir.path() / "dest"), (std::vector<std::string>{"vnet-ipam"}));
}

// A runtime that opened (or is running) the old plugin keeps reading the old file: the new one
// arrives by rename, never by writing into the old one.
TEST(InstallPluginTest, ReplacesByRenameNotInPlace) {
  testing::TempDir dir;
  writeFile(dir.path() / "src" / "portmap", "new");
  writeFile(dir.path() / "dest" / "portmap", "old");
  const int old = ::open((dir.path() / "dest" / "portmap").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(old, 0);
  ASSERT_TRUE(installPlugin(dir.path() / "src" / "portmap", dir.path() / "dest", "portmap"));
  char buffer[8] = {};
  EXPECT_EQ(::pread(old, buffer, sizeof buffer, 0), 3);
  EXPECT_EQ(std::string(buffer), "old");
  ::close(old);
  EXPECT_EQ(readFile(dir.path() / "dest" / "portmap"), "new");
}

TEST(InstallPluginTest, UnusableDestinationIsAnErrorNamingIt) {
  testing::TempDir dir;
  writeFile(dir.path() / "src" / "loopback", "bin");
  const fs::path missing = dir.path() / "missing";
  auto result = installPlugin(dir.path() / "src" / "loopback", missing, "loopback");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, base::ErrorCode::kIo);
  EXPECT_EQ(result.error().message,
            "creating a temporary file in " + missing.string() + ": No such file or directory");

  // Root may write anywhere it has a directory, so "unwritable" here is a file where the
  // directory should be.
  const fs::path file = dir.path() / "a-file";
  writeFile(file, "");
  result = installPlugin(dir.path() / "src" / "loopback", file, "loopback");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "creating a temporary file in " + file.string() + ": Not a directory");
}

TEST(InstallPluginTest, AFailedCopyRemovesItsTemporaryFile) {
  testing::TempDir dir;
  fs::create_directories(dir.path() / "src" / "not-a-file");
  fs::create_directories(dir.path() / "dest");
  auto result = installPlugin(dir.path() / "src" / "not-a-file", dir.path() / "dest", "x");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "reading " + (dir.path() / "src" / "not-a-file").string() + ": Is a directory");
  EXPECT_TRUE(listDir(dir.path() / "dest").empty());
}

TEST(InstallPluginsTest, InstallsEachFromItsDirectory) {
  testing::TempDir dir;
  writeFile(dir.path() / "bin" / "vnet-ipam", "ipam");
  writeFile(dir.path() / "cni" / "loopback", "lo");
  fs::create_directories(dir.path() / "dest");
  InstallCniOptions options{
      .destDir = (dir.path() / "dest").string(),
      .sourceDirs = {(dir.path() / "bin").string(), (dir.path() / "cni").string()},
      .plugins = {"loopback", "vnet-ipam"}};
  auto result = installPlugins(options);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(listDir(dir.path() / "dest"), (std::vector<std::string>{"loopback", "vnet-ipam"}));
  EXPECT_EQ(readFile(dir.path() / "dest" / "loopback"), "lo");
  EXPECT_EQ(readFile(dir.path() / "dest" / "vnet-ipam"), "ipam");
}

TEST(InstallPluginsTest, AMissingPluginInstallsNothing) {
  testing::TempDir dir;
  writeFile(dir.path() / "bin" / "vnet-ipam", "ipam");
  fs::create_directories(dir.path() / "dest");
  InstallCniOptions options{.destDir = (dir.path() / "dest").string(),
                            .sourceDirs = {(dir.path() / "bin").string()},
                            .plugins = {"vnet-ipam", "portmap"}};
  auto result = installPlugins(options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, base::ErrorCode::kNotFound);
  EXPECT_NE(result.error().message.find("plugin portmap"), std::string::npos)
      << result.error().message;
  EXPECT_TRUE(listDir(dir.path() / "dest").empty());
}

TEST(InstallPluginsTest, ErrorsNameThePlugin) {
  testing::TempDir dir;
  writeFile(dir.path() / "bin" / "vnet-ipam", "ipam");
  InstallCniOptions options{.destDir = (dir.path() / "missing").string(),
                            .sourceDirs = {(dir.path() / "bin").string()},
                            .plugins = {"vnet-ipam"}};
  auto result = installPlugins(options);
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().message.starts_with("installing vnet-ipam: creating a temporary file"))
      << result.error().message;
}

TEST(InstallCniMainTest, ExitStatus) {
  testing::TempDir dir;
  writeFile(dir.path() / "bin" / "vnet-transparent", "t");
  fs::create_directories(dir.path() / "dest");
  const std::string dest = "--dest-dir=" + (dir.path() / "dest").string();
  const std::string source = "--source-dir=" + (dir.path() / "bin").string();
  std::vector<const char*> bad = {"vnet-transparent"};
  EXPECT_EQ(installCniMain(bad), 2) << "no --dest-dir";
  std::vector<const char*> missing = {dest.c_str(), source.c_str(), "loopback"};
  EXPECT_EQ(installCniMain(missing), 1);
  std::vector<const char*> good = {dest.c_str(), source.c_str(), "vnet-transparent"};
  EXPECT_EQ(installCniMain(good), 0);
  EXPECT_EQ(readFile(dir.path() / "dest" / "vnet-transparent"), "t");
}

}  // namespace
}  // namespace vnetipam::agent
