// Where the API server is and how to authenticate to it: from a kubeconfig file or from the
// in-cluster service account. Everything a transport needs is resolved to bytes here (files read,
// base64 decoded, relative paths taken from the kubeconfig's directory), except the bearer token,
// which is a provider: a service account token is rotated on disk and must be re-read.
//
// Errors are kConfig and name the file and the key: `kubeconfig "/x/config":
// users[name=admin].user.client-key: file "/x/admin.key": No such file or directory`.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "lib/kube/error.h"

namespace vnetipam::kube {

// Returns the current bearer token ("" for none). Thread-safe; may read a file.
using TokenProvider = std::function<Result<std::string>()>;

struct KubeConfig {
  std::string server;  // "https://host:port"
  std::string caPem;   // empty: the system's trusted CAs
  std::string clientCertPem;
  std::string clientKeyPem;
  bool insecureSkipTlsVerify = false;
  TokenProvider token;  // never empty: returns "" when there is no token
  std::string origin;   // where this came from, for messages: `kubeconfig "/x" context "kind"`
};

// Decodes standard base64 (padding optional, whitespace ignored); nullopt on any other byte.
std::optional<std::string> decodeBase64(std::string_view text);

// Reads a kubeconfig. `context` empty: the file's current-context.
Result<KubeConfig> loadKubeconfig(const std::filesystem::path& file, std::string_view context = {});

struct InClusterSource {
  std::function<std::optional<std::string>(const char*)> getenv;  // default: std::getenv
  std::filesystem::path serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

// The service account of the pod this runs in: KUBERNETES_SERVICE_HOST/PORT and the token and
// ca.crt files. The token provider re-reads the token file whenever its mtime or size changes.
Result<KubeConfig> loadInCluster(const InClusterSource& source = {});

// A provider that reads `file` on first use and again whenever its mtime or size changes, so a
// rotated token is picked up without a restart. Trailing whitespace is dropped.
TokenProvider tokenFileProvider(std::filesystem::path file);

}  // namespace vnetipam::kube
