#include "lib/kube/config.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "unit/lib/base/temp_dir.h"

namespace vnetipam::kube {
namespace {

namespace fs = std::filesystem;

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(dir_ / "certs"); }

  fs::path write(const fs::path& relative, const std::string& content) {
    const fs::path path = dir_ / relative;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  base::testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
};

TEST(DecodeBase64, DecodesWithAndWithoutPaddingAndRejectsGarbage) {
  EXPECT_EQ(decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(decodeBase64("aGVsbG8"), "hello");
  EXPECT_EQ(decodeBase64("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(decodeBase64(""), "");
  EXPECT_FALSE(decodeBase64("aGV*bG8=").has_value());
  EXPECT_FALSE(decodeBase64("a").has_value());
}

TEST_F(KubeconfigTest, ReadsBase64DataAndTheCurrentContext) {
  // "CA PEM" / "CERT PEM" / "KEY PEM" in base64.
  const fs::path file = write("config", R"(
apiVersion: v1
kind: Config
current-context: kind
contexts:
- name: other
  context: {cluster: wrong, user: wrong}
- name: kind
  context: {cluster: kind-cluster, user: kind-admin}
clusters:
- name: kind-cluster
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Q0EgUEVN
users:
- name: kind-admin
  user:
    client-certificate-data: Q0VSVCBQRU0=
    client-key-data: S0VZIFBFTQ==
)");
  auto config = loadKubeconfig(file);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->server, "https://127.0.0.1:6443");
  EXPECT_EQ(config->caPem, "CA PEM");
  EXPECT_EQ(config->clientCertPem, "CERT PEM");
  EXPECT_EQ(config->clientKeyPem, "KEY PEM");
  EXPECT_FALSE(config->insecureSkipTlsVerify);
  ASSERT_TRUE(config->token);
  EXPECT_EQ(config->token().value(), "");
  EXPECT_NE(config->origin.find("\"kind\""), std::string::npos) << config->origin;
}

TEST_F(KubeconfigTest, ResolvesPathsRelativeToTheKubeconfigAndReadsTokenFile) {
  write("certs/ca.crt", "CA FROM FILE");
  write("certs/token", "secret-token\n");
  const fs::path file = write("config", R"(
current-context: c
contexts:
- name: c
  context: {cluster: k, user: u}
clusters:
- name: k
  cluster:
    server: https://k:443
    certificate-authority: certs/ca.crt
    insecure-skip-tls-verify: true
users:
- name: u
  user:
    tokenFile: certs/token
)");
  auto config = loadKubeconfig(file);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->caPem, "CA FROM FILE");
  EXPECT_TRUE(config->insecureSkipTlsVerify);
  EXPECT_EQ(config->token().value(), "secret-token");
}

TEST_F(KubeconfigTest, AnExplicitContextOverridesTheCurrentOne) {
  const fs::path file = write("config", R"(
current-context: a
contexts:
- {name: a, context: {cluster: ca}}
- {name: b, context: {cluster: cb, user: ub}}
clusters:
- {name: ca, cluster: {server: https://a}}
- {name: cb, cluster: {server: https://b}}
users:
- {name: ub, user: {token: tok-b}}
)");
  auto config = loadKubeconfig(file, "b");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->server, "https://b");
  EXPECT_EQ(config->token().value(), "tok-b");
}

TEST_F(KubeconfigTest, AMissingCertificateFileNamesTheFileAndTheKey) {
  const fs::path file = write("config", R"(
current-context: c
contexts:
- {name: c, context: {cluster: k, user: admin}}
clusters:
- {name: k, cluster: {server: https://k}}
users:
- name: admin
  user: {client-certificate: admin.crt, client-key: admin.key}
)");
  auto config = loadKubeconfig(file);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ErrorCode::kConfig);
  const std::string& message = config.error().message;
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("users[name=admin].user.client-certificate"), std::string::npos)
      << message;
  EXPECT_NE(message.find((dir_ / "admin.crt").string()), std::string::npos) << message;
}

TEST_F(KubeconfigTest, BadBase64AndMissingEntriesNameTheKey) {
  const fs::path badData = write("bad-data", R"(
current-context: c
contexts:
- {name: c, context: {cluster: k}}
clusters:
- {name: k, cluster: {server: https://k, certificate-authority-data: "!!notbase64"}}
)");
  auto config = loadKubeconfig(badData);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("clusters[name=k].cluster.certificate-authority-data"),
            std::string::npos)
      << config.error().message;

  const fs::path noCluster = write("no-cluster", R"(
current-context: c
contexts:
- {name: c, context: {cluster: missing}}
clusters:
- {name: k, cluster: {server: https://k}}
)");
  config = loadKubeconfig(noCluster);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("clusters: no entry named \"missing\""), std::string::npos)
      << config.error().message;

  config = loadKubeconfig(dir_ / "does-not-exist");
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("does-not-exist"), std::string::npos);

  const fs::path notYaml = write("not-yaml", "clusters: [unclosed\n");
  config = loadKubeconfig(notYaml);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("not valid YAML"), std::string::npos);
}

TEST_F(KubeconfigTest, ExecAuthIsRefusedByName) {
  const fs::path file = write("config", R"(
current-context: c
contexts:
- {name: c, context: {cluster: k, user: u}}
clusters:
- {name: k, cluster: {server: https://k}}
users:
- {name: u, user: {exec: {command: aws}}}
)");
  auto config = loadKubeconfig(file);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("users[name=u].user.exec"), std::string::npos)
      << config.error().message;
}

TEST_F(KubeconfigTest, InClusterUsesEnvAndServiceAccountFilesAndRereadsARotatedToken) {
  write("certs/ca.crt", "CLUSTER CA");
  const fs::path token = write("certs/token", "first");
  std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "fd00::1"},
                                         {"KUBERNETES_SERVICE_PORT", "443"}};
  InClusterSource source{.getenv = [&](const char* name) -> std::optional<std::string> {
                           const auto it = env.find(name);
                           if (it == env.end()) return std::nullopt;
                           return it->second;
                         },
                         .serviceAccountDir = dir_ / "certs"};
  auto config = loadInCluster(source);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->server, "https://[fd00::1]:443");
  EXPECT_EQ(config->caPem, "CLUSTER CA");
  EXPECT_EQ(config->token().value(), "first");

  // Rotation: new content and a new mtime (set explicitly: the file system's clock may be coarse).
  std::ofstream(token, std::ios::binary | std::ios::trunc) << "second-token";
  fs::last_write_time(token, fs::last_write_time(token) + std::chrono::seconds(5));
  EXPECT_EQ(config->token().value(), "second-token");

  env.erase("KUBERNETES_SERVICE_HOST");
  auto missing = loadInCluster(source);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
}

}  // namespace
}  // namespace vnetipam::kube
