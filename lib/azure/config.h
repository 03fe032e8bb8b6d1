// The Azure cloud configuration: the cloud-provider convention file `/etc/kubernetes/azure.json`,
// the workload-identity environment, and endpoint overrides so one binary talks to Azure or to
// azure-vnet-mock.
//
// What a caller may rely on:
// - Keys are matched case-insensitively, as cloud-provider-azure's YAML-as-JSON parser does
//   ("tenantID" and "tenantId" are the same key; both present is an error). Unknown keys are
//   ignored: the file is shared with the cloud provider.
// - A bad file fails with kConfig naming the file and the key and what would be valid.
// - Precedence: AZURE_CLIENT_ID / AZURE_TENANT_ID override aadClientId / tenantId, and
//   AZURE_FEDERATED_TOKEN_FILE forces workload identity. Then managed identity
//   (useManagedIdentityExtension), then a client secret. aadClientSecret "msi" is not a secret
//   (AKS writes it for managed identity).
// - Endpoints: EndpointOverrides (flags) > VNETIPAM_AZURE_* environment > AZURE_AUTHORITY_HOST
//   (authority only) > azure.json resourceManagerEndpoint (ARM only) > the cloud's defaults.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lib/azure/error.h"

namespace vnetipam::azure {

enum class CredentialKind { kClientSecret, kManagedIdentity, kWorkloadIdentity };
std::string_view toString(CredentialKind kind);

// Base URLs without a trailing slash. A path prefix is allowed ("http://127.0.0.1:8080/arm").
struct Endpoints {
  std::string resourceManager;  // ARM: "https://management.azure.com"
  std::string authorityHost;    // Entra ID: "https://login.microsoftonline.com"
  std::string imds;             // instance metadata: "http://169.254.169.254"
  std::string tokenAudience;    // the resource a token is for: "https://management.azure.com/"
};

// Empty fields keep what the file, the environment or the cloud says.
struct EndpointOverrides {
  std::string resourceManager;
  std::string authorityHost;
  std::string imds;
};

struct AzureConfig {
  std::string cloud;  // normalised: AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud
  std::string tenantId;
  std::string subscriptionId;
  std::string resourceGroup;
  std::string location;
  std::string vnetName;
  std::string vnetResourceGroup;  // defaults to resourceGroup
  std::string subnetName;
  std::string aadClientId;
  std::string aadClientSecret;  // a secret: never log it
  bool useManagedIdentityExtension = false;
  std::string userAssignedIdentityID;  // a client id, or an ARM id containing /subscriptions/
  std::string federatedTokenFile;      // workload identity: re-read on every token refresh
  CredentialKind credential = CredentialKind::kClientSecret;
  Endpoints endpoints;
  std::string
      origin;  // where this came from, for messages: azure.json "/etc/kubernetes/azure.json"
};

// Reads an environment variable; nullopt when unset. Tests inject a map.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup processEnvironment();

// `origin` names the source in messages (e.g. the file path).
Result<AzureConfig> parseAzureConfig(std::string_view text, std::string_view origin,
                                     const EnvLookup& env, const EndpointOverrides& overrides = {});
Result<AzureConfig> loadAzureConfig(const std::filesystem::path& path, const EnvLookup& env,
                                    const EndpointOverrides& overrides = {});

}  // namespace vnetipam::azure
