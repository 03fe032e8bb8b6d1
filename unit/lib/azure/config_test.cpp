#include "lib/azure/config.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

namespace vnetipam::azure {
namespace {

using Env = std::map<std::string, std::string, std::less<>>;

EnvLookup envOf(Env env) {
  return [env = std::move(env)](std::string_view name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

constexpr std::string_view kSecretFile = R"({
  "cloud": "AzurePublicCloud", "tenantId": "tenant-1", "subscriptionId": "sub-1",
  "resourceGroup": "rg", "location": "eastus", "vnetName": "vnet", "subnetName": "nodes",
  "aadClientId": "client-1", "aadClientSecret": "s3cret-value", "useInstanceMetadata": true,
  "vmType": "standard"
})";

Result<AzureConfig> parse(std::string_view text, Env env = {}, EndpointOverrides overrides = {}) {
  return parseAzureConfig(text, "azure.json \"/etc/kubernetes/azure.json\"", envOf(std::move(env)),
                          overrides);
}

TEST(AzureConfigTest, ReadsTheConventionKeysAndDefaultsToThePublicCloud) {
  auto config = parse(kSecretFile);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->cloud, "AzurePublicCloud");
  EXPECT_EQ(config->tenantId, "tenant-1");
  EXPECT_EQ(config->subscriptionId, "sub-1");
  EXPECT_EQ(config->resourceGroup, "rg");
  EXPECT_EQ(config->location, "eastus");
  EXPECT_EQ(config->vnetName, "vnet");
  EXPECT_EQ(config->vnetResourceGroup, "rg");  // defaults to resourceGroup
  EXPECT_EQ(config->subnetName, "nodes");
  EXPECT_EQ(config->aadClientId, "client-1");
  EXPECT_EQ(config->aadClientSecret, "s3cret-value");
  EXPECT_EQ(config->credential, CredentialKind::kClientSecret);
  EXPECT_EQ(config->endpoints.resourceManager, "https://management.azure.com");
  EXPECT_EQ(config->endpoints.authorityHost, "https://login.microsoftonline.com");
  EXPECT_EQ(config->endpoints.imds, "http://169.254.169.254");
  EXPECT_EQ(config->endpoints.tokenAudience, "https://management.azure.com/");
}

TEST(AzureConfigTest, MatchesKeysCaseInsensitively) {
  auto config = parse(R"({"TenantID":"t","SUBSCRIPTIONID":"s","resourcegroup":"rg",
    "AADClientID":"c","aadclientsecret":"x","VnetResourceGroup":"netrg","Cloud":"azurecloud"})");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->tenantId, "t");
  EXPECT_EQ(config->subscriptionId, "s");
  EXPECT_EQ(config->aadClientId, "c");
  EXPECT_EQ(config->vnetResourceGroup, "netrg");
  EXPECT_EQ(config->cloud, "AzurePublicCloud");
}

TEST(AzureConfigTest, TheSameKeyInTwoSpellingsIsAnError) {
  auto config = parse(R"({"tenantId":"a","tenantID":"b","subscriptionId":"s","resourceGroup":"r",
    "aadClientId":"c","aadClientSecret":"x"})");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ErrorCode::kConfig);
  EXPECT_NE(config.error().message.find("\"tenantId\""), std::string::npos);
  EXPECT_NE(config.error().message.find("\"tenantID\""), std::string::npos);
  EXPECT_NE(config.error().message.find("/etc/kubernetes/azure.json"), std::string::npos);
}

TEST(AzureConfigTest, AWrongTypeNamesTheKeyAndWhatIsValid) {
  auto config = parse(R"({"subscriptionId":"s","resourceGroup":"r",
    "useManagedIdentityExtension":"true"})");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().message,
            "azure.json \"/etc/kubernetes/azure.json\": key \"useManagedIdentityExtension\" must "
            "be true or false, not a string");
  auto number = parse(R"({"subscriptionId":12,"resourceGroup":"r"})");
  ASSERT_FALSE(number.has_value());
  EXPECT_NE(number.error().message.find("key \"subscriptionId\" must be a string, not a number"),
            std::string::npos);
}

TEST(AzureConfigTest, BadJsonGivesTheLineAndNeverQuotesTheFile) {
  auto config = parse("{\n\"aadClientSecret\": \"s3cret-value\",\n\"x\": }");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ErrorCode::kConfig);
  EXPECT_NE(config.error().message.find("line 3"), std::string::npos) << config.error().message;
  EXPECT_EQ(config.error().message.find("s3cret"), std::string::npos);
  auto array = parse("[1]");
  ASSERT_FALSE(array.has_value());
  EXPECT_NE(array.error().message.find("must be a JSON object, not an array"), std::string::npos);
}

TEST(AzureConfigTest, RequiredKeysAreNamed) {
  auto noSub = parse(R"({"resourceGroup":"r","aadClientId":"c","aadClientSecret":"x"})");
  ASSERT_FALSE(noSub.has_value());
  EXPECT_NE(noSub.error().message.find("key \"subscriptionId\" is required"), std::string::npos);
  auto noRg = parse(R"({"subscriptionId":"s","aadClientId":"c","aadClientSecret":"x"})");
  ASSERT_FALSE(noRg.has_value());
  EXPECT_NE(noRg.error().message.find("key \"resourceGroup\" is required"), std::string::npos);
  auto noClient = parse(R"({"subscriptionId":"s","resourceGroup":"r","aadClientSecret":"x"})");
  ASSERT_FALSE(noClient.has_value());
  EXPECT_NE(noClient.error().message.find("\"aadClientId\""), std::string::npos);
  auto noTenant = parse(
      R"({"subscriptionId":"s","resourceGroup":"r","aadClientId":"c","aadClientSecret":"x"})");
  ASSERT_FALSE(noTenant.has_value());
  EXPECT_NE(noTenant.error().message.find("\"tenantId\""), std::string::npos);
  auto none = parse(R"({"subscriptionId":"s","resourceGroup":"r"})");
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message.find("no credential"), std::string::npos);
}

TEST(AzureConfigTest, AnUnknownCloudListsTheValidOnes) {
  auto config = parse(R"({"cloud":"Mars","subscriptionId":"s","resourceGroup":"r",
    "useManagedIdentityExtension":true})");
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("key \"cloud\" is \"Mars\""), std::string::npos);
  EXPECT_NE(config.error().message.find("AzureChinaCloud"), std::string::npos);
}

TEST(AzureConfigTest, OtherCloudsHaveTheirOwnEndpoints) {
  auto config = parse(R"({"cloud":"AzureChinaCloud","subscriptionId":"s","resourceGroup":"r",
    "useManagedIdentityExtension":true})");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->endpoints.resourceManager, "https://management.chinacloudapi.cn");
  EXPECT_EQ(config->endpoints.tokenAudience, "https://management.chinacloudapi.cn/");
}

TEST(AzureConfigTest, ManagedIdentityWinsOverTheMsiPlaceholderSecret) {
  auto config = parse(R"({"subscriptionId":"s","resourceGroup":"r","aadClientId":"msi",
    "aadClientSecret":"msi","useManagedIdentityExtension":true,
    "userAssignedIdentityID":"11111111-2222-3333-4444-555555555555"})");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->credential, CredentialKind::kManagedIdentity);
  EXPECT_EQ(config->aadClientSecret, "");
  EXPECT_EQ(config->userAssignedIdentityID, "11111111-2222-3333-4444-555555555555");
}

TEST(AzureConfigTest, WorkloadIdentityEnvironmentTakesPrecedence) {
  auto config = parse(R"({"tenantId":"file-tenant","subscriptionId":"s","resourceGroup":"r",
    "aadClientId":"file-client","aadClientSecret":"x","useManagedIdentityExtension":true})",
                      {{"AZURE_CLIENT_ID", "env-client"},
                       {"AZURE_TENANT_ID", "env-tenant"},
                       {"AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/t"},
                       {"AZURE_AUTHORITY_HOST", "https://login.example.com/"}});
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->credential, CredentialKind::kWorkloadIdentity);
  EXPECT_EQ(config->aadClientId, "env-client");
  EXPECT_EQ(config->tenantId, "env-tenant");
  EXPECT_EQ(config->federatedTokenFile, "/var/run/secrets/azure/tokens/t");
  EXPECT_EQ(config->endpoints.authorityHost, "https://login.example.com");
}

TEST(AzureConfigTest, WorkloadIdentityFromTheFileNeedsItsTokenFile) {
  auto config = parse(R"({"tenantId":"t","subscriptionId":"s","resourceGroup":"r",
    "aadClientId":"c","useFederatedWorkloadIdentityExtension":true})");
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("\"aadFederatedTokenFile\""), std::string::npos);
  auto ok = parse(R"({"tenantId":"t","subscriptionId":"s","resourceGroup":"r",
    "aadClientId":"c","useFederatedWorkloadIdentityExtension":true,
    "aadFederatedTokenFile":"/tok"})");
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->credential, CredentialKind::kWorkloadIdentity);
  EXPECT_EQ(ok->federatedTokenFile, "/tok");
}

TEST(AzureConfigTest, EndpointOverridesPointTheClientAtTheMock) {
  const std::string file = R"({"subscriptionId":"s","resourceGroup":"r",
    "useManagedIdentityExtension":true,"resourceManagerEndpoint":"https://arm.file/"})";
  auto fromFile = parse(file);
  ASSERT_TRUE(fromFile.has_value()) << fromFile.error().message;
  EXPECT_EQ(fromFile->endpoints.resourceManager, "https://arm.file");

  auto fromEnv = parse(file, {{"VNETIPAM_AZURE_ARM_ENDPOINT", "http://127.0.0.1:8080/arm"},
                              {"VNETIPAM_AZURE_AUTHORITY_HOST", "http://127.0.0.1:8080/aad"},
                              {"VNETIPAM_AZURE_IMDS_ENDPOINT", "http://127.0.0.1:8080/imds"},
                              {"AZURE_AUTHORITY_HOST", "https://ignored"}});
  ASSERT_TRUE(fromEnv.has_value()) << fromEnv.error().message;
  EXPECT_EQ(fromEnv->endpoints.resourceManager, "http://127.0.0.1:8080/arm");
  EXPECT_EQ(fromEnv->endpoints.authorityHost, "http://127.0.0.1:8080/aad");
  EXPECT_EQ(fromEnv->endpoints.imds, "http://127.0.0.1:8080/imds");

  auto fromFlags = parse(file, {{"VNETIPAM_AZURE_ARM_ENDPOINT", "http://env"}},
                         {.resourceManager = "http://flag:1", .imds = "http://imds:2"});
  ASSERT_TRUE(fromFlags.has_value()) << fromFlags.error().message;
  EXPECT_EQ(fromFlags->endpoints.resourceManager, "http://flag:1");
  EXPECT_EQ(fromFlags->endpoints.imds, "http://imds:2");

  auto bad = parse(file, {}, {.authorityHost = "login.example.com"});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("the authority host override \"login.example.com\" must "
                                     "be an http:// or https:// URL"),
            std::string::npos);
}

TEST(AzureConfigTest, LoadNamesAMissingFile) {
  auto config = loadAzureConfig("/nonexistent/azure.json", envOf({}));
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().message, "azure.json \"/nonexistent/azure.json\": cannot be read");
}

TEST(AzureConfigTest, LoadReadsAFile) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("azure-config-test-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << kSecretFile;
  auto config = loadAzureConfig(path, envOf({}));
  std::filesystem::remove(path);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->origin, "azure.json \"" + path.string() + "\"");
  EXPECT_EQ(config->subscriptionId, "sub-1");
}

}  // namespace
}  // namespace vnetipam::azure
