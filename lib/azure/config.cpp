#include "lib/azure/config.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lib/base/text.h"

namespace vnetipam::azure {

namespace {

using text::asciiLower;

// Cloud endpoints [R]: recalled from go-autorest's environments.go, not checked against a source
// in this project's reference. The public cloud is the one the reference documents.
struct CloudDefaults {
  std::string_view name;
  std::string_view resourceManager;
  std::string_view authorityHost;
  std::string_view tokenAudience;
};
constexpr std::array<CloudDefaults, 3> kClouds = {{
    {"AzurePublicCloud", "https://management.azure.com", "https://login.microsoftonline.com",
     "https://management.azure.com/"},
    {"AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
     "https://management.chinacloudapi.cn/"},
    {"AzureUSGovernmentCloud", "https://management.usgovcloudapi.net",
     "https://login.microsoftonline.us", "https://management.usgovcloudapi.net/"},
}};
constexpr std::string_view kImds = "http://169.254.169.254";

const CloudDefaults* findCloud(std::string_view name) {
  const std::string key = asciiLower(name);
  if (key.empty() || key == "azurepubliccloud" || key == "azurecloud") return &kClouds[0];
  if (key == "azurechinacloud") return &kClouds[1];
  if (key == "azureusgovernment" || key == "azureusgovernmentcloud") return &kClouds[2];
  return nullptr;
}

enum class Kind { kString, kBool };
struct Key {
  std::string_view name;  // the convention's spelling, used in messages
  Kind kind;
};
// The keys this project reads. Others (vmType, routeTableName, ...) belong to the cloud provider.
constexpr std::array<Key, 16> kKeys = {{
    {"cloud", Kind::kString},
    {"tenantId", Kind::kString},
    {"subscriptionId", Kind::kString},
    {"resourceGroup", Kind::kString},
    {"location", Kind::kString},
    {"vnetName", Kind::kString},
    {"vnetResourceGroup", Kind::kString},
    {"subnetName", Kind::kString},
    {"aadClientId", Kind::kString},
    {"aadClientSecret", Kind::kString},
    {"useManagedIdentityExtension", Kind::kBool},
    {"userAssignedIdentityID", Kind::kString},
    {"aadFederatedTokenFile", Kind::kString},
    {"useFederatedWorkloadIdentityExtension", Kind::kBool},
    {"resourceManagerEndpoint", Kind::kString},
    {"aadClientCertPath", Kind::kString},
}};

std::string_view typeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    default: return "a number";
  }
}

struct Values {
  std::map<std::string, std::string> strings;  // by lower-cased key
  std::map<std::string, bool> bools;
  std::string str(std::string_view key) const {
    const auto it = strings.find(asciiLower(key));
    return it == strings.end() ? std::string() : it->second;
  }
  bool flag(std::string_view key) const {
    const auto it = bools.find(asciiLower(key));
    return it != bools.end() && it->second;
  }
};

Result<Values> readKeys(const nlohmann::json& doc, std::string_view origin) {
  Values values;
  std::map<std::string, std::string> seen;  // lower-cased key -> spelling in the file
  for (const auto& [name, value] : doc.items()) {
    const std::string key = asciiLower(name);
    const auto known =
        std::ranges::find_if(kKeys, [&](const Key& k) { return asciiLower(k.name) == key; });
    if (known == kKeys.end()) continue;
    if (const auto [it, inserted] = seen.emplace(key, name); !inserted) {
      return fail(ErrorCode::kConfig,
                  fmt::format("{}: keys \"{}\" and \"{}\" are the same key (keys match "
                              "case-insensitively); keep one",
                              origin, it->second, name));
    }
    if (value.is_null()) continue;  // as Go's JSON decoding: null leaves the zero value
    if (known->kind == Kind::kString) {
      if (!value.is_string()) {
        return fail(ErrorCode::kConfig, fmt::format("{}: key \"{}\" must be a string, not {}",
                                                    origin, known->name, typeName(value)));
      }
      values.strings[key] = value.get<std::string>();
    } else {
      if (!value.is_boolean()) {
        return fail(ErrorCode::kConfig, fmt::format("{}: key \"{}\" must be true or false, not {}",
                                                    origin, known->name, typeName(value)));
      }
      values.bools[key] = value.get<bool>();
    }
  }
  return values;
}

// Checks a base URL and drops trailing slashes. `what` names where it came from.
Result<std::string> baseUrl(std::string url, std::string_view what, std::string_view origin) {
  if (!url.starts_with("https://") && !url.starts_with("http://")) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: {} \"{}\" must be an http:// or https:// URL", origin, what, url));
  }
  while (url.ends_with('/'))
    url.pop_back();
  if (url.find('?') != std::string::npos || url.find('#') != std::string::npos) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: {} \"{}\" must not carry a query or fragment", origin, what, url));
  }
  return url;
}

std::string envOr(const EnvLookup& env, std::string_view name, std::string fallback) {
  if (auto value = env(name); value && !value->empty()) return *value;
  return fallback;
}

}  // namespace

std::string_view toString(CredentialKind kind) {
  switch (kind) {
    case CredentialKind::kClientSecret: return "client secret";
    case CredentialKind::kManagedIdentity: return "managed identity";
    case CredentialKind::kWorkloadIdentity: return "workload identity";
  }
  return "unknown";
}

EnvLookup processEnvironment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Result<AzureConfig> parseAzureConfig(std::string_view text, std::string_view origin,
                                     const EnvLookup& env, const EndpointOverrides& overrides) {
  // No exceptions escape: a parse error is a value naming the file and the byte.
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Only the position: the parser's own text quotes the input, which may hold the secret.
    const auto upTo = text.substr(0, std::min(e.byte, text.size()));
    const auto line = 1 + std::ranges::count(upTo, '\n');
    return fail(ErrorCode::kConfig,
                fmt::format("{}: not valid JSON (syntax error on line {})", origin, line));
  }
  if (!doc.is_object()) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: must be a JSON object, not {}", origin, typeName(doc)));
  }
  auto values = readKeys(doc, origin);
  if (!values) return std::unexpected(values.error());

  AzureConfig config;
  config.origin = std::string(origin);
  const CloudDefaults* cloud = findCloud(values->str("cloud"));
  if (cloud == nullptr) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: key \"cloud\" is \"{}\"; valid: AzurePublicCloud (or AzureCloud, "
                            "or empty), AzureChinaCloud, AzureUSGovernmentCloud",
                            origin, values->str("cloud")));
  }
  config.cloud = std::string(cloud->name);
  config.tenantId = envOr(env, "AZURE_TENANT_ID", values->str("tenantId"));
  config.subscriptionId = values->str("subscriptionId");
  config.resourceGroup = values->str("resourceGroup");
  config.location = values->str("location");
  config.vnetName = values->str("vnetName");
  config.vnetResourceGroup = values->str("vnetResourceGroup");
  if (config.vnetResourceGroup.empty()) config.vnetResourceGroup = config.resourceGroup;
  config.subnetName = values->str("subnetName");
  config.aadClientId = envOr(env, "AZURE_CLIENT_ID", values->str("aadClientId"));
  config.aadClientSecret = values->str("aadClientSecret");
  if (config.aadClientSecret == "msi") config.aadClientSecret.clear();
  config.useManagedIdentityExtension = values->flag("useManagedIdentityExtension");
  config.userAssignedIdentityID = values->str("userAssignedIdentityID");
  config.federatedTokenFile = envOr(env, "AZURE_FEDERATED_TOKEN_FILE", {});
  if (config.federatedTokenFile.empty() && values->flag("useFederatedWorkloadIdentityExtension")) {
    config.federatedTokenFile = values->str("aadFederatedTokenFile");
    if (config.federatedTokenFile.empty()) {
      return fail(ErrorCode::kConfig,
                  fmt::format("{}: key \"useFederatedWorkloadIdentityExtension\" is true but "
                              "\"aadFederatedTokenFile\" is empty and AZURE_FEDERATED_TOKEN_FILE "
                              "is unset",
                              origin));
    }
  }

  if (config.subscriptionId.empty()) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: key \"subscriptionId\" is required (the subscription of the "
                            "cluster's resources)",
                            origin));
  }
  if (config.resourceGroup.empty()) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: key \"resourceGroup\" is required (the resource group of the "
                            "cluster's VMs and NICs)",
                            origin));
  }

  if (!config.federatedTokenFile.empty()) {
    config.credential = CredentialKind::kWorkloadIdentity;
    if (config.aadClientId.empty() || config.tenantId.empty()) {
      return fail(ErrorCode::kConfig,
                  fmt::format("{}: workload identity needs a client id and a tenant: set "
                              "AZURE_CLIENT_ID and AZURE_TENANT_ID, or keys \"aadClientId\" and "
                              "\"tenantId\"",
                              origin));
    }
  } else if (config.useManagedIdentityExtension) {
    config.credential = CredentialKind::kManagedIdentity;
  } else if (!config.aadClientSecret.empty()) {
    config.credential = CredentialKind::kClientSecret;
    if (config.aadClientId.empty()) {
      return fail(
          ErrorCode::kConfig,
          fmt::format("{}: key \"aadClientId\" is required with \"aadClientSecret\"", origin));
    }
    if (config.tenantId.empty()) {
      return fail(ErrorCode::kConfig,
                  fmt::format("{}: key \"tenantId\" is required with \"aadClientSecret\"", origin));
    }
  } else if (!values->str("aadClientCertPath").empty()) {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: key \"aadClientCertPath\": certificate credentials are not "
                            "supported; use aadClientSecret, useManagedIdentityExtension or "
                            "workload identity",
                            origin));
  } else {
    return fail(ErrorCode::kConfig,
                fmt::format("{}: no credential: set key \"aadClientSecret\" (with "
                            "\"aadClientId\"), key \"useManagedIdentityExtension\": true, or the "
                            "workload identity environment (AZURE_FEDERATED_TOKEN_FILE)",
                            origin));
  }

  struct Source {
    std::string value;
    std::string_view what;
  };
  auto pick = [](std::initializer_list<Source> sources) {
    for (const auto& source : sources)
      if (!source.value.empty()) return source;
    return Source{};
  };
  const std::string fileArm = values->str("resourceManagerEndpoint");
  const Source arm =
      pick({{overrides.resourceManager, "the ARM endpoint override"},
            {envOr(env, "VNETIPAM_AZURE_ARM_ENDPOINT", {}), "VNETIPAM_AZURE_ARM_ENDPOINT"},
            {fileArm, "key \"resourceManagerEndpoint\""},
            {std::string(cloud->resourceManager), "the cloud's ARM endpoint"}});
  const Source authority =
      pick({{overrides.authorityHost, "the authority host override"},
            {envOr(env, "VNETIPAM_AZURE_AUTHORITY_HOST", {}), "VNETIPAM_AZURE_AUTHORITY_HOST"},
            {envOr(env, "AZURE_AUTHORITY_HOST", {}), "AZURE_AUTHORITY_HOST"},
            {std::string(cloud->authorityHost), "the cloud's authority"}});
  const Source imds =
      pick({{overrides.imds, "the IMDS endpoint override"},
            {envOr(env, "VNETIPAM_AZURE_IMDS_ENDPOINT", {}), "VNETIPAM_AZURE_IMDS_ENDPOINT"},
            {std::string(kImds), "the IMDS address"}});
  auto armUrl = baseUrl(arm.value, arm.what, origin);
  if (!armUrl) return std::unexpected(armUrl.error());
  auto authorityUrl = baseUrl(authority.value, authority.what, origin);
  if (!authorityUrl) return std::unexpected(authorityUrl.error());
  auto imdsUrl = baseUrl(imds.value, imds.what, origin);
  if (!imdsUrl) return std::unexpected(imdsUrl.error());
  config.endpoints = Endpoints{*armUrl, *authorityUrl, *imdsUrl, std::string(cloud->tokenAudience)};
  return config;
}

Result<AzureConfig> loadAzureConfig(const std::filesystem::path& path, const EnvLookup& env,
                                    const EndpointOverrides& overrides) {
  const std::string origin = fmt::format("azure.json \"{}\"", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::kConfig, fmt::format("{}: cannot be read", origin));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(ErrorCode::kConfig, fmt::format("{}: read failed", origin));
  return parseAzureConfig(text.str(), origin, env, overrides);
}

}  // namespace vnetipam::azure
