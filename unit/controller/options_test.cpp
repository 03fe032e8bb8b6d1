#include "controller/options.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vnetipam::controller {
namespace {

std::expected<ControllerOptions, std::string> parse(std::vector<const char*> args) {
  return parseOptions(args);
}

TEST(OptionsTest, DefaultsAreTheContractsDefaults) {
  auto options = parse({});
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->cloud, CloudKind::kAzure);
  EXPECT_EQ(options->azureConfig, "/etc/kubernetes/azure.json");
  EXPECT_EQ(options->metricsAddress, "0.0.0.0:9090");
  EXPECT_TRUE(options->leaderElect);
  EXPECT_EQ(options->leaderElectionNamespace, "kube-system");
  EXPECT_EQ(options->leaderElectionName, "vnet-ipam-controller");
  EXPECT_EQ(options->workers, 4);
  EXPECT_EQ(options->kubeApiQps, 50);
  EXPECT_EQ(options->kubeApiBurst, 100);
  EXPECT_EQ(options->nicOrphanGraceSeconds, 120);
  EXPECT_EQ(options->orphanSweepPeriodSeconds, 300);
  EXPECT_EQ(options->logFormat, LogFormat::kText);
  EXPECT_EQ(options->logLevel, "info");
}

TEST(OptionsTest, FlagsInBothSpellings) {
  auto options = parse({"--cloud", "none", "--workers=8", "--leader-elect", "false", "--log-format",
                        "json", "--kube-api-qps", "12.5"});
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->cloud, CloudKind::kNone);
  EXPECT_EQ(options->workers, 8);
  EXPECT_FALSE(options->leaderElect);
  EXPECT_EQ(options->logFormat, LogFormat::kJson);
  EXPECT_EQ(options->kubeApiQps, 12.5);
}

TEST(OptionsTest, ABadValueNamesTheFlagAndWhatIsValid) {
  auto options = parse({"--cloud", "gcp"});
  ASSERT_FALSE(options);
  EXPECT_EQ(options.error(), "--cloud: \"gcp\" is not azure or none");
  EXPECT_EQ(parse({"--bogus", "1"}).error(), "unknown flag --bogus");
  EXPECT_EQ(parse({"--workers"}).error(), "--workers: missing value");
  EXPECT_FALSE(parse({"--metrics-address", "9090"}));
  // The orphan sweep: 0 turns it off, a day at most.
  EXPECT_EQ(parse({"--orphan-sweep-period-seconds", "0"})->orphanSweepPeriodSeconds, 0);
  EXPECT_FALSE(parse({"--orphan-sweep-period-seconds", "-1"}));
  EXPECT_FALSE(parse({"--orphan-sweep-period-seconds", "86401"}));
}

TEST(OptionsTest, AConfigFileSetsKeysAndFlagsWin) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("vnetipam-options-test-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(path);
    out << "cloud: none\nworkers: 2\nnic-orphan-grace-seconds: 30\nleader-elect: false\n";
  }
  auto options = parse({"--workers", "6", "--config", path.c_str()});
  std::filesystem::remove(path);
  ASSERT_TRUE(options) << options.error();
  EXPECT_EQ(options->cloud, CloudKind::kNone);
  EXPECT_EQ(options->workers, 6) << "the flag wins over the file";
  EXPECT_EQ(options->nicOrphanGraceSeconds, 30);
  EXPECT_FALSE(options->leaderElect);
}

TEST(OptionsTest, AConfigFileErrorNamesTheFileAndTheKey) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("vnetipam-options-bad-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(path);
    out << R"({"workers": 0})";
  }
  auto options = parse({"--config", path.c_str()});
  std::filesystem::remove(path);
  ASSERT_FALSE(options);
  EXPECT_NE(options.error().find(path.string()), std::string::npos) << options.error();
  EXPECT_NE(options.error().find("workers"), std::string::npos) << options.error();
  EXPECT_NE(parse({"--config", "/nonexistent/x.yaml"}).error().find("cannot read"),
            std::string::npos);
}

}  // namespace
}  // namespace vnetipam::controller
