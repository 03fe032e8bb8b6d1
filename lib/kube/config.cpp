#include "lib/kube/config.h"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vnetipam::kube {

namespace fs = std::filesystem;

std::optional<std::string> decodeBase64(std::string_view text) {
  static constexpr std::array<signed char, 256> kValues = [] {
    std::array<signed char, 256> values{};
    values.fill(-1);
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
      values[static_cast<unsigned char>(kAlphabet[i])] = static_cast<signed char>(i);
    }
    return values;
  }();
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  bool padding = false;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const signed char value = kValues[static_cast<unsigned char>(c)];
    if (value < 0 || padding) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    if (++count == 4) {
      out.push_back(static_cast<char>((bits >> 16) & 0xff));
      out.push_back(static_cast<char>((bits >> 8) & 0xff));
      out.push_back(static_cast<char>(bits & 0xff));
      bits = 0;
      count = 0;
    }
  }
  if (count == 1) return std::nullopt;
  if (count == 2) out.push_back(static_cast<char>((bits >> 4) & 0xff));
  if (count == 3) {
    out.push_back(static_cast<char>((bits >> 10) & 0xff));
    out.push_back(static_cast<char>((bits >> 2) & 0xff));
  }
  return out;
}

namespace {

Result<std::string> readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(ErrorCode::kConfig,
                fmt::format("file \"{}\": {}", path.string(), std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string trimRight(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  return s;
}

// Reads one kubeconfig and reports errors as `kubeconfig "<file>": <key>: <problem>`.
class KubeconfigReader {
 public:
  explicit KubeconfigReader(fs::path file) : file_(std::move(file)) {}

  Result<KubeConfig> read(std::string_view wantedContext) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(file_.string());
    } catch (const YAML::BadFile&) {
      return failAt("", fmt::format("cannot read the file: {}", std::strerror(errno)));
    } catch (const YAML::Exception& e) {
      return failAt("", fmt::format("not valid YAML: {}", e.what()));
    }
    if (!root.IsMap()) return failAt("", "expected a mapping at the top level");

    std::string contextName(wantedContext);
    if (contextName.empty()) {
      auto current = scalar(root, "current-context", "current-context");
      if (!current) return std::unexpected(current.error());
      if (current->empty())
        return failAt("current-context", "missing, and no context was asked for");
      contextName = *current;
    }
    auto context = findNamed(root, "contexts", "context", contextName);
    if (!context) return std::unexpected(context.error());
    const std::string contextKey = fmt::format("contexts[name={}].context", contextName);
    auto clusterName = scalar(*context, "cluster", contextKey + ".cluster");
    if (!clusterName) return std::unexpected(clusterName.error());
    if (clusterName->empty()) return failAt(contextKey + ".cluster", "missing");
    auto userName = scalar(*context, "user", contextKey + ".user");
    if (!userName) return std::unexpected(userName.error());

    KubeConfig config;
    config.origin = fmt::format("kubeconfig \"{}\" context \"{}\"", file_.string(), contextName);
    config.token = [] { return Result<std::string>(std::string()); };

    auto cluster = findNamed(root, "clusters", "cluster", *clusterName);
    if (!cluster) return std::unexpected(cluster.error());
    const std::string clusterKey = fmt::format("clusters[name={}].cluster", *clusterName);
    auto server = scalar(*cluster, "server", clusterKey + ".server");
    if (!server) return std::unexpected(server.error());
    if (server->empty()) return failAt(clusterKey + ".server", "missing");
    config.server = *server;
    if (auto ca = fileOrData(*cluster, clusterKey, "certificate-authority"); !ca) {
      return std::unexpected(ca.error());
    } else {
      config.caPem = std::move(*ca);
    }
    if (auto insecure = cluster->operator[]("insecure-skip-tls-verify"); insecure) {
      try {
        config.insecureSkipTlsVerify = insecure.as<bool>();
      } catch (const YAML::Exception&) {
        return failAt(clusterKey + ".insecure-skip-tls-verify", "expected true or false");
      }
    }

    if (!userName->empty()) {
      auto user = findNamed(root, "users", "user", *userName);
      if (!user) return std::unexpected(user.error());
      const std::string userKey = fmt::format("users[name={}].user", *userName);
      if (auto cert = fileOrData(*user, userKey, "client-certificate"); !cert) {
        return std::unexpected(cert.error());
      } else {
        config.clientCertPem = std::move(*cert);
      }
      if (auto key = fileOrData(*user, userKey, "client-key"); !key) {
        return std::unexpected(key.error());
      } else {
        config.clientKeyPem = std::move(*key);
      }
      if (config.clientCertPem.empty() != config.clientKeyPem.empty()) {
        return failAt(userKey, "client-certificate and client-key must be given together");
      }
      auto token = scalar(*user, "token", userKey + ".token");
      if (!token) return std::unexpected(token.error());
      auto tokenFile = scalar(*user, "tokenFile", userKey + ".tokenFile");
      if (!tokenFile) return std::unexpected(tokenFile.error());
      if (!token->empty()) {
        config.token = [value = *token] { return Result<std::string>(value); };
      } else if (!tokenFile->empty()) {
        config.token = tokenFileProvider(resolve(*tokenFile));
      }
      for (const char* unsupported : {"exec", "auth-provider", "username"}) {
        if ((*user)[unsupported]) {
          return failAt(fmt::format("{}.{}", userKey, unsupported),
                        "not supported; use a client certificate, token or tokenFile");
        }
      }
    }
    return config;
  }

 private:
  std::unexpected<Error> failAt(std::string_view key, std::string_view problem) const {
    if (key.empty()) {
      return fail(ErrorCode::kConfig,
                  fmt::format("kubeconfig \"{}\": {}", file_.string(), problem));
    }
    return fail(ErrorCode::kConfig,
                fmt::format("kubeconfig \"{}\": {}: {}", file_.string(), key, problem));
  }

  // A string member, "" when absent.
  Result<std::string> scalar(const YAML::Node& map, const char* name,
                             const std::string& key) const {
    const YAML::Node node = map[name];
    if (!node || node.IsNull()) return std::string();
    if (!node.IsScalar()) return failAt(key, "expected a string");
    return node.as<std::string>();
  }

  // The `inner` mapping of the entry of list `listName` whose name is `name`.
  Result<YAML::Node> findNamed(const YAML::Node& root, const char* listName, const char* inner,
                               const std::string& name) const {
    const YAML::Node list = root[listName];
    if (!list || !list.IsSequence()) return failAt(listName, "missing or not a list");
    for (const YAML::Node& entry : list) {
      if (!entry.IsMap() || !entry["name"] || !entry["name"].IsScalar()) continue;
      if (entry["name"].as<std::string>() != name) continue;
      const YAML::Node value = entry[inner];
      if (!value || !value.IsMap()) {
        return failAt(fmt::format("{}[name={}].{}", listName, name, inner),
                      "missing or not a mapping");
      }
      return value;
    }
    return failAt(listName, fmt::format("no entry named \"{}\"", name));
  }

  fs::path resolve(const std::string& path) const {
    const fs::path p(path);
    return p.is_absolute() ? p : file_.parent_path() / p;
  }

  // `<name>-data` (base64) wins over `<name>` (a path, relative to the kubeconfig's directory).
  Result<std::string> fileOrData(const YAML::Node& map, const std::string& mapKey,
                                 const std::string& name) const {
    const std::string dataName = name + "-data";
    auto data = scalar(map, dataName.c_str(), mapKey + "." + dataName);
    if (!data) return std::unexpected(data.error());
    if (!data->empty()) {
      auto decoded = decodeBase64(*data);
      if (!decoded) return failAt(mapKey + "." + dataName, "not valid base64");
      return std::move(*decoded);
    }
    auto path = scalar(map, name.c_str(), mapKey + "." + name);
    if (!path) return std::unexpected(path.error());
    if (path->empty()) return std::string();
    auto content = readFile(resolve(*path));
    if (!content) return failAt(mapKey + "." + name, content.error().message);
    return content;
  }

  fs::path file_;
};

}  // namespace

Result<KubeConfig> loadKubeconfig(const fs::path& file, std::string_view context) {
  return KubeconfigReader(file).read(context);
}

TokenProvider tokenFileProvider(fs::path file) {
  struct State {
    std::mutex mutex;
    fs::file_time_type mtime{};
    std::uintmax_t size = 0;
    bool loaded = false;
    std::string token;
  };
  return [file = std::move(file), state = std::make_shared<State>()]() -> Result<std::string> {
    std::lock_guard lock(state->mutex);
    std::error_code ec;
    const auto mtime = fs::last_write_time(file, ec);
    const auto size = ec ? 0 : fs::file_size(file, ec);
    if (ec) {
      return fail(ErrorCode::kConfig,
                  fmt::format("token file \"{}\": {}", file.string(), ec.message()));
    }
    if (!state->loaded || mtime != state->mtime || size != state->size) {
      auto content = readFile(file);
      if (!content) {
        return fail(ErrorCode::kConfig, fmt::format("token {}", content.error().message));
      }
      state->token = trimRight(std::move(*content));
      state->mtime = mtime;
      state->size = size;
      state->loaded = true;
    }
    return state->token;
  };
}

Result<KubeConfig> loadInCluster(const InClusterSource& source) {
  auto getenv = source.getenv ? source.getenv : [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  const auto host = getenv("KUBERNETES_SERVICE_HOST");
  const auto port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return fail(ErrorCode::kConfig,
                "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be "
                "set (is this running in a pod?)");
  }
  KubeConfig config;
  // An IPv6 service address needs brackets in a URL.
  const bool ipv6 = host->find(':') != std::string::npos;
  config.server = fmt::format("https://{}{}{}:{}", ipv6 ? "[" : "", *host, ipv6 ? "]" : "", *port);
  const fs::path caFile = source.serviceAccountDir / "ca.crt";
  auto ca = readFile(caFile);
  if (!ca)
    return fail(ErrorCode::kConfig, fmt::format("in-cluster config: CA {}", ca.error().message));
  config.caPem = std::move(*ca);
  config.token = tokenFileProvider(source.serviceAccountDir / "token");
  if (auto first = config.token(); !first) {
    return fail(ErrorCode::kConfig, fmt::format("in-cluster config: {}", first.error().message));
  }
  config.origin =
      fmt::format("in-cluster service account \"{}\"", source.serviceAccountDir.string());
  return config;
}

}  // namespace vnetipam::kube
