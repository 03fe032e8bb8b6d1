// ExecIpamDelegate runs a real executable (a shell script written by the test) the way the spec
// says: found in CNI_PATH, same environment, same stdin, its error passed through.
#include "node-agent/cni/delegate.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vnetipam::cni {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class DelegateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("vnetipam-cni-delegate-{}", ::getpid());
    fs::create_directories(dir_);
    // Echoes what it saw: the command, a variable, and stdin's name; fails on DEL.
    write("echo-ipam", R"SH(#!/bin/sh
input=$(cat)
if [ "$CNI_COMMAND" = DEL ]; then
  echo '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"'"$CNI_CONTAINERID"'"}'
  exit 1
fi
name=$(printf '%s' "$input" | sed 's/.*"name":"\([^"]*\)".*/\1/')
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1"}],"dns":{"domain":"'"$CNI_COMMAND-$name-$CNI_ARGS"'"}}'
)SH");
    write("crash-ipam", "#!/bin/sh\ncat >/dev/null\necho oops\nexit 3\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    fs::permissions(dir_ / name, fs::perms::owner_all);
  }
  Env env(Command command) {
    Env e;
    e.command = command;
    e.containerID = "ctr";
    e.path = {"/nonexistent", dir_.string()};
    e.all = {{"CNI_COMMAND", "SOMETHING"},
             {"CNI_CONTAINERID", "ctr"},
             {"CNI_ARGS", "A=1"},
             {"PATH", "/usr/bin:/bin"}};
    return e;
  }
  NetConf conf(const std::string& type) {
    auto c = parseNetConf(
        json{{"cniVersion", "1.0.0"}, {"name", "net9"}, {"type", "x"}, {"ipam", {{"type", type}}}}
            .dump());
    EXPECT_TRUE(c);
    return *c;
  }
  fs::path dir_;
};

TEST_F(DelegateTest, AddGetsTheSameEnvAndStdinAndItsResultIsParsed) {
  ExecIpamDelegate delegate;
  auto result = delegate.run(Command::kAdd, env(Command::kAdd), conf("echo-ipam"));
  ASSERT_TRUE(result) << result.error().msg;
  ASSERT_EQ(result->ips.size(), 1U);
  EXPECT_EQ(result->ips[0].address.toString(), "10.1.2.3");
  EXPECT_EQ(result->ips[0].prefixLength, 24);
  EXPECT_EQ(result->dns["domain"], "ADD-net9-A=1");
}

TEST_F(DelegateTest, DelegateErrorsPassThrough) {
  ExecIpamDelegate delegate;
  auto del = delegate.run(Command::kDel, env(Command::kDel), conf("echo-ipam"));
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().code, 11);
  EXPECT_EQ(del.error().msg, "busy");
  EXPECT_EQ(del.error().details, "ctr");

  auto crash = delegate.run(Command::kAdd, env(Command::kAdd), conf("crash-ipam"));
  ASSERT_FALSE(crash);
  EXPECT_EQ(crash.error().code, kInternal);
  EXPECT_NE(crash.error().msg.find("exited 3"), std::string::npos) << crash.error().msg;
}

TEST_F(DelegateTest, StartedCallsRunWhileTheCallerWorks) {
  // The delegate waits on a FIFO the test opens only after start() returned: start() must not
  // wait for it, and finish() gets its answer.
  const auto fifo = dir_ / "gate";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  write("gated-ipam", fmt::format("#!/bin/sh\ncat >/dev/null\nread line < {}\n"
                                  "echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":"
                                  "\"10.9.9.9/24\"}}]}}'\n",
                                  fifo.string()));
  ExecIpamDelegate delegate;
  const auto e = env(Command::kAdd);
  const auto c = conf("gated-ipam");
  auto call = delegate.start(Command::kAdd, e, c);
  std::ofstream(fifo) << "go\n";
  auto result = call->finish();
  ASSERT_TRUE(result) << result.error().msg;
  ASSERT_EQ(result->ips.size(), 1U);
  EXPECT_EQ(result->ips[0].address.toString(), "10.9.9.9");

  // Not found: the error comes from finish(), as from run().
  auto missing = delegate.start(Command::kAdd, e, conf("no-such-ipam"))->finish();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, kInvalidConfig);
}

TEST_F(DelegateTest, FindPluginSearchesCniPath) {
  EXPECT_EQ(*findPlugin("echo-ipam", {"/nonexistent", dir_.string()}),
            (dir_ / "echo-ipam").string());
  const auto missing = findPlugin("nope", {"/a", "/b"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, kInvalidConfig);
  EXPECT_NE(missing.error().msg.find("/a:/b"), std::string::npos);
  EXPECT_EQ(findPlugin("../bin/sh", {dir_.string()}).error().code, kInvalidConfig);
  EXPECT_EQ(findPlugin("", {dir_.string()}).error().code, kInvalidConfig);
}

}  // namespace
}  // namespace vnetipam::cni
