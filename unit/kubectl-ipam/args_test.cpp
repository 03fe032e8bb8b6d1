#include "kubectl-ipam/args.h"

#include <vector>

#include <gtest/gtest.h>

namespace vnetipam::kubectl_ipam {
namespace {

std::expected<Args, std::string> parse(std::vector<const char*> argv) { return parseArgs(argv); }

TEST(Args, Commands) {
  auto a = parse({"show", "--node", "n1", "-o", "json", "--kubeconfig=/k", "--context", "c"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->command, Command::kShow);
  EXPECT_EQ(a->node, "n1");
  EXPECT_EQ(a->output, Output::kJson);
  EXPECT_EQ(a->kubeconfig, "/k");
  EXPECT_EQ(a->context, "c");
  a = parse({"why", "web", "-n", "prod"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->command, Command::kWhy);
  EXPECT_EQ(a->pod, "web");
  EXPECT_EQ(a->ns, "prod");
  a = parse({"why", "-nprod", "web"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->ns, "prod");
  EXPECT_EQ(parse({"why", "web"})->ns, "default");
  EXPECT_EQ(parse({"check", "-o=json"})->output, Output::kJson);
  EXPECT_EQ(parse({"check", "--help"})->command, Command::kHelp);
  EXPECT_EQ(parse({"-h"})->command, Command::kHelp);
}

TEST(Args, CheckOfOnePodSubnet) {
  auto a = parse({"check", "--podsubnet", "pods"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->podSubnet, "pods");
  EXPECT_EQ(parse({"show", "--podsubnet", "pods"}).error(), "--podsubnet: only for check");
  EXPECT_EQ(parse({"check", "--podsubnet="}).error(), "--podsubnet: empty value");
}

TEST(Args, Errors) {
  EXPECT_EQ(parse({}).error(), "no command: show, check, why or release");
  EXPECT_EQ(parse({"drop"}).error(), "unknown command \"drop\": show, check, why or release");
  EXPECT_EQ(parse({"show", "--bogus", "x"}).error(), "unknown flag --bogus");
  EXPECT_EQ(parse({"show", "-o", "yaml"}).error(), "--output: \"yaml\" is not table or json");
  EXPECT_EQ(parse({"show", "--node"}).error(), "--node: missing value");
  EXPECT_EQ(parse({"why"}).error(), "why: name the pod: kubectl ipam why POD [-n NS]");
  EXPECT_EQ(parse({"why", "a", "b"}).error(), "why: unexpected argument \"b\"");
  EXPECT_EQ(parse({"check", "--node", "n"}).error(), "--node: only for show");
  EXPECT_EQ(parse({"show", "-n", "x"}).error(), "--namespace: only for why");
  EXPECT_EQ(parse({"check", "extra"}).error(), "check: unexpected argument \"extra\"");
}

TEST(Args, ReleaseFromAReport) {
  auto a = parse({"release", "--from-report", "r.json", "--dry-run", "--timeout", "90s"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->command, Command::kRelease);
  EXPECT_EQ(a->fromReport, "r.json");
  EXPECT_TRUE(a->dryRun);
  EXPECT_EQ(a->timeoutSeconds, 90);
  a = parse({"release", "--from-report=-"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_FALSE(a->dryRun);
  EXPECT_EQ(a->timeoutSeconds, 60);
  EXPECT_NE(parse({"release"}).error().find("--from-report FILE"), std::string::npos);
  EXPECT_EQ(parse({"check", "--dry-run"}).error(),
            "--from-report, --dry-run and --timeout: only for release");
  EXPECT_EQ(parse({"release", "--from-report", "r", "--timeout", "0"}).error(),
            "--timeout: \"0\" is not a number of seconds from 1 to 3600");
  EXPECT_NE(usage().find("kubectl ipam release --from-report FILE"), std::string::npos);
}

TEST(KubeconfigPath, FlagThenFirstOfKubeconfigThenHome) {
  std::map<std::string, std::string> env{{"HOME", "/home/u"}};
  const GetEnv getenv = [&](const char* name) -> std::optional<std::string> {
    const auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional(it->second);
  };
  Args args;
  EXPECT_EQ(kubeconfigPath(args, getenv).value(), "/home/u/.kube/config");
  env["KUBECONFIG"] = ":/a/one:/b/two";
  EXPECT_EQ(kubeconfigPath(args, getenv).value(), "/a/one");
  args.kubeconfig = "/flag";
  EXPECT_EQ(kubeconfigPath(args, getenv).value(), "/flag");
  env.clear();
  EXPECT_FALSE(kubeconfigPath(Args{}, getenv));
}

}  // namespace
}  // namespace vnetipam::kubectl_ipam
