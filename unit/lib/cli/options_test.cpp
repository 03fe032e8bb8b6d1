#include "lib/cli/options.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "lib/cli/logging.h"

namespace vnetipam::cli {
namespace {

struct Toy {
  std::string name = "default";
  int count = 3;
  double rate = 1.5;
  bool enabled = false;
  std::string address = "0.0.0.0:1";
  LogFormat format = LogFormat::kText;
  std::string level = "info";
  bool help = false;
};

using Table = SetterTable<Toy>;

const Table& table() {
  static const Table t = {
      {"name", Table::text(&Toy::name)},
      {"count", Table::integer(&Toy::count, 1, 10)},
      {"rate", Table::number(&Toy::rate, 0)},
      {"enabled", Table::boolean(&Toy::enabled)},
      {"address", Table::hostPort(&Toy::address, HostPart::kRequired)},
      {"log-format", Table::logFormat(&Toy::format)},
      {"log-level", Table::logLevel(&Toy::level)},
  };
  return t;
}

std::expected<Toy, std::string> parse(std::vector<const char*> args, Toy start = {}) {
  return parseCommandLine<Toy>(args, table(), std::move(start));
}

class TempFile {
 public:
  explicit TempFile(const std::string& text)
      : path_(std::filesystem::temp_directory_path() /
              ("cli_options_test_" + std::to_string(::getpid()) + "_" + std::to_string(next_++))) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int next_ = 0;
  std::filesystem::path path_;
};

TEST(CliOptionsTest, SplitsBothSpellingsInOrder) {
  std::vector<const char*> args = {"--a", "1", "--b=x=y", "--c="};
  auto split = splitArgs(args);
  ASSERT_TRUE(split) << split.error();
  EXPECT_FALSE(split->help);
  EXPECT_EQ(split->flags, (KeyValues{{"a", "1"}, {"b", "x=y"}, {"c", ""}}));
}

TEST(CliOptionsTest, SplitErrors) {
  std::vector<const char*> positional = {"value"};
  EXPECT_EQ(splitArgs(positional).error(), "unexpected argument \"value\"");
  std::vector<const char*> bare = {"--"};
  EXPECT_EQ(splitArgs(bare).error(), "unexpected argument \"--\"");
  std::vector<const char*> missing = {"--a", "1", "--b"};
  EXPECT_EQ(splitArgs(missing).error(), "--b: missing value");
}

TEST(CliOptionsTest, PositionalArgumentsOnlyWhenAllowed) {
  std::vector<const char*> args = {"one", "--a", "two", "--b=3", "four"};
  EXPECT_EQ(splitArgs(args).error(), "unexpected argument \"one\"");
  auto split = splitArgs(args, Positional::kAllowed);
  ASSERT_TRUE(split) << split.error();
  EXPECT_EQ(split->flags, (KeyValues{{"a", "two"}, {"b", "3"}})) << "a flag's value stays its own";
  EXPECT_EQ(split->positional, (std::vector<std::string>{"one", "four"}));
  std::vector<const char*> dash = {"x", "-y"};
  EXPECT_EQ(splitArgs(dash, Positional::kAllowed).error(), "unexpected argument \"-y\"");
  std::vector<const char*> empty = {""};
  EXPECT_EQ(splitArgs(empty, Positional::kAllowed).error(), "unexpected argument \"\"");
}

TEST(CliOptionsTest, HelpWinsOverEverythingAfterIt) {
  auto options = parse({"--count", "5", "-h", "--nonsense"}, Toy{.name = "from-env"});
  ASSERT_TRUE(options) << options.error();
  EXPECT_TRUE(options->help);
  EXPECT_EQ(options->count, 3);
  EXPECT_EQ(options->name, "default");
}

TEST(CliOptionsTest, AppliesEverySetter) {
  auto options =
      parse({"--name", "n", "--count=7", "--rate", "0.25", "--enabled", "true", "--address",
             "127.0.0.1:80", "--log-format", "json", "--log-level", "debug"});
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->name, "n");
  EXPECT_EQ(options->count, 7);
  EXPECT_EQ(options->rate, 0.25);
  EXPECT_TRUE(options->enabled);
  EXPECT_EQ(options->address, "127.0.0.1:80");
  EXPECT_EQ(options->format, LogFormat::kJson);
  EXPECT_EQ(options->level, "debug");
}

TEST(CliOptionsTest, StartsFromTheCallersValues) {
  auto options = parse({"--count", "2"}, Toy{.name = "from-env"});
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->name, "from-env");
  EXPECT_EQ(options->count, 2);
}

TEST(CliOptionsTest, FlagErrorsNameTheFlag) {
  EXPECT_EQ(parse({"--count", "11"}).error(), "--count: \"11\" is not an integer in 1..10");
  EXPECT_EQ(parse({"--count", "2x"}).error(), "--count: \"2x\" is not an integer in 1..10");
  EXPECT_EQ(parse({"--rate", "-1"}).error(), "--rate: \"-1\" is not a number >= 0");
  EXPECT_EQ(parse({"--enabled", "yes"}).error(), "--enabled: \"yes\" is not true or false");
  EXPECT_EQ(parse({"--name="}).error(), "--name: must not be empty");
  EXPECT_EQ(parse({"--address", ":80"}).error(), "--address: \":80\" is not HOST:PORT");
  EXPECT_EQ(parse({"--log-format", "xml"}).error(), "--log-format: \"xml\" is not text or json");
  EXPECT_EQ(parse({"--log-level", "trace"}).error(),
            "--log-level: \"trace\" is not debug, info, warn or error");
  EXPECT_EQ(parse({"--colour", "red"}).error(), "unknown flag --colour");
}

TEST(CliOptionsTest, HostPortOptionalHost) {
  std::string out;
  EXPECT_FALSE(parseHostPort(":9091", HostPart::kOptional, out));
  EXPECT_EQ(out, ":9091");
  EXPECT_TRUE(parseHostPort(":9091", HostPart::kRequired, out));
  EXPECT_TRUE(parseHostPort("host", HostPart::kOptional, out));
  EXPECT_TRUE(parseHostPort("host:65536", HostPart::kOptional, out));
  EXPECT_FALSE(parseHostPort("[::1]:0", HostPart::kRequired, out));
}

TEST(CliOptionsTest, ConfigFileFirstThenFlags) {
  TempFile file("name: file\ncount: 4\nenabled: true\n");
  auto options = parse({"--count", "9", "--config", file.path().c_str()});
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->name, "file");
  EXPECT_EQ(options->count, 9);  // the flag wins though it came first
  EXPECT_TRUE(options->enabled);
}

TEST(CliOptionsTest, JsonConfigFileAndEmptyFile) {
  TempFile json(R"({"rate": "2.5", "log-format": "json"})");
  TempFile empty("");
  auto options = parse({"--config", json.path().c_str(), "--config", empty.path().c_str()});
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->rate, 2.5);
  EXPECT_EQ(options->format, LogFormat::kJson);
}

TEST(CliOptionsTest, ConfigFileErrorsNameTheFileAndKey) {
  TempFile badValue("count: 0\n");
  const std::string prefix = "--config \"" + badValue.path() + "\": ";
  EXPECT_EQ(parse({"--config", badValue.path().c_str()}).error(),
            prefix + "count: \"0\" is not an integer in 1..10");

  TempFile unknown("colour: red\n");
  EXPECT_EQ(parse({"--config", unknown.path().c_str()}).error(),
            "--config \"" + unknown.path() + "\": unknown option \"colour\"");

  TempFile nested("name:\n  first: a\n");
  EXPECT_EQ(parse({"--config", nested.path().c_str()}).error(),
            "--config \"" + nested.path() + "\": name: expected a single value");

  TempFile list("- a\n- b\n");
  EXPECT_EQ(parse({"--config", list.path().c_str()}).error(),
            "--config \"" + list.path() + "\": expected a mapping of options");

  TempFile broken("{name: [");
  EXPECT_TRUE(parse({"--config", broken.path().c_str()})
                  .error()
                  .starts_with("--config \"" + broken.path() + "\": not YAML or JSON: "));

  EXPECT_EQ(parse({"--config", "/nonexistent/cli.yaml"}).error(),
            "--config \"/nonexistent/cli.yaml\": cannot read the file");
}

TEST(CliOptionsTest, ConfigEntriesInFileOrderStopAtFirstError) {
  TempFile file("b: 1\na: 2\nc: 3\n");
  std::vector<std::string> seen;
  auto error = forEachConfigEntry(file.path(), [&](const std::string& key, const std::string&) {
    seen.push_back(key);
    return key == "a" ? std::optional<std::string>("no a") : std::nullopt;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(error, "--config \"" + file.path() + "\": no a");
}

TEST(CliLoggingTest, JsonLinesEscapeTheMessage) {
  testing::internal::CaptureStderr();
  setUpLogging({.name = "cli-test", .format = LogFormat::kJson, .level = "info"});
  spdlog::debug("not shown at info");
  spdlog::info("say \"hi\"\\ then\nnext\tline \x01");
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStderr();
  std::istringstream lines(out);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line)) << out;
  const auto parsed = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << line;
  EXPECT_EQ(parsed.at("msg"), "say \"hi\"\\ then\nnext\tline \x01");
  EXPECT_EQ(parsed.at("level"), "info");
  EXPECT_EQ(parsed.at("logger"), "cli-test");
  EXPECT_TRUE(parsed.at("time").get<std::string>().ends_with("Z"));
  EXPECT_FALSE(std::getline(lines, line)) << "one line per message: " << out;
}

TEST(CliLoggingTest, TextLinesAtTheLevel) {
  testing::internal::CaptureStderr();
  setUpLogging({.name = "cli-test", .format = LogFormat::kText, .level = "warn"});
  spdlog::info("quiet");
  spdlog::warn("loud");
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find("quiet"), std::string::npos) << out;
  EXPECT_NE(out.find("warning loud\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace vnetipam::cli
