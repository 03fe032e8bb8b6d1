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
  EXPECT_EQ(parse({}).error(), "no command: show, check or why");
  EXPECT_EQ(parse({"release"}).error(), "unknown command \"release\": show, check or why");
  EXPECT_EQ(parse({"show", "--bogus", "x"}).error(), "unknown flag --bogus");
  EXPECT_EQ(parse({"show", "-o", "yaml"}).error(), "--output: \"yaml\" is not table or json");
  EXPECT_EQ(parse({"show", "--node"}).error(), "--node: missing value");
  EXPECT_EQ(parse({"why"}).error(), "why: name the pod: kubectl ipam why POD [-n NS]");
  EXPECT_EQ(parse({"why", "a", "b"}).error(), "why: unexpected argument \"b\"");
  EXPECT_EQ(parse({"check", "--node", "n"}).error(), "--node: only for show");
  EXPECT_EQ(parse({"show", "-n", "x"}).error(), "--namespace: only for why");
  EXPECT_EQ(parse({"check", "extra"}).error(), "check: unexpected argument \"extra\"");
}

TEST(Args, HelpDoesNotOfferWhatIsNotBuilt) {
  EXPECT_EQ(usage().find("release"), std::string::npos);
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
