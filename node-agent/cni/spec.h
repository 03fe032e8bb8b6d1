// The CNI specification (1.1.0, older versions accepted) as values: the plugin environment, the
// network configuration on stdin, results in each version's shape, and the spec's error object.
//
// Nothing here does I/O: parseEnv takes a lookup function and parseNetConf takes the stdin text,
// so every rule is testable without a runtime. Errors are the spec's codes with a message that
// names the variable or field and what would be valid.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/ipam/ip.h"
#include "lib/ipam/owner.h"
#include "node-agent/cni_error_codes.h"

namespace vnetipam::cni {

// Every version this project's plugins read and write. 0.1.0/0.2.0 (the ip4/ip6 result shape)
// are not accepted: no runtime still sends them.
inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0",
                                                                       "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";
bool isSupportedVersion(std::string_view version);
// Orders dotted versions numerically ("0.10.0" > "0.4.0"); unparsable parts count as 0.
int compareVersions(std::string_view a, std::string_view b);

// The error codes (the spec's and this project's own): node-agent/cni_error_codes.h.

struct Error {
  int code = kInternal;
  std::string msg;
  std::string details;
};

template <typename T>
using Outcome = std::expected<T, Error>;

inline std::unexpected<Error> failWith(int code, std::string msg, std::string details = {}) {
  return std::unexpected(Error{code, std::move(msg), std::move(details)});
}

// {"cniVersion":...,"code":...,"msg":...,"details":...} (details only when set). `version` is the
// configuration's version when it is one we speak, else kLatestVersion.
std::string errorJson(const Error& error, std::string_view version);

enum class Command : std::uint8_t { kAdd, kDel, kCheck, kGc, kStatus, kVersion };
std::string_view toString(Command command);

// The CNI_* environment of one invocation.
struct Env {
  Command command = Command::kVersion;
  std::string containerID;                                // CNI_CONTAINERID
  std::string netns;                                      // CNI_NETNS (may be empty on DEL)
  std::string ifName;                                     // CNI_IFNAME
  std::string rawArgs;                                    // CNI_ARGS as given
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS split
  std::vector<std::string> path;                          // CNI_PATH split on ':'
  std::string podNamespace;                               // K8S_POD_NAMESPACE from CNI_ARGS
  std::string podName;                                    // K8S_POD_NAME from CNI_ARGS
  // The whole process environment, passed unchanged to a delegated plugin.
  std::map<std::string, std::string> all;

  // The attachment this call is about: CNI_CONTAINERID and CNI_IFNAME.
  ipam::Owner attachment() const { return {.containerID = containerID, .ifName = ifName}; }
};

using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// Reads and checks the environment for its command, as the spec requires: ADD and CHECK need
// CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME; DEL needs CNI_CONTAINERID and CNI_IFNAME; GC needs
// CNI_PATH; STATUS and VERSION need nothing more. Code 4 naming the variable otherwise (also for an
// unknown CNI_COMMAND or a CNI_ARGS pair without '=').
Outcome<Env> parseEnv(const std::map<std::string, std::string>& environment);

// ---- results ----------------------------------------------------------------------------------

struct Interface {
  std::string name;
  std::string mac;
  std::optional<std::uint32_t> mtu;
  std::string sandbox;  // the pod's netns path; empty for a host-side interface
};

struct IPConfig {
  ipam::IPAddress address;
  int prefixLength = 32;
  std::optional<ipam::IPAddress> gateway;
  std::optional<int> interface;  // index into Result::interfaces
};

struct RouteEntry {
  ipam::Prefix dst;
  std::optional<ipam::IPAddress> gw;
  nlohmann::json extra = nlohmann::json::object();  // mtu, advmss, priority, table, scope: kept
};

struct Result {
  std::vector<Interface> interfaces;
  std::vector<IPConfig> ips;
  std::vector<RouteEntry> routes;
  nlohmann::json dns = nlohmann::json::object();
};

// Reads a result of any supported version (with or without ips[].version). Code 6 naming the field.
Outcome<Result> parseResult(const nlohmann::json& doc);
// Writes the result in `version`'s shape: 0.3.x and 0.4.0 carry ips[].version ("4"/"6"), 1.0.0+
// do not. Precondition: isSupportedVersion(version).
nlohmann::json toJson(const Result& result, std::string_view version);

// "a.b.c.d/n" as address + length, host bits allowed (unlike ipam::Prefix).
Outcome<std::pair<ipam::IPAddress, int>> parseCidrAddress(std::string_view text);

// ---- network configuration ---------------------------------------------------------------------

struct NetConf {
  std::string cniVersion;
  std::string name;
  std::string type;
  nlohmann::json raw;  // the whole object as received (plugin-specific keys live here)
  nlohmann::json ipam = nlohmann::json::object();  // the "ipam" section, if any
  std::string ipamType;                            // ipam.type, if any
  std::optional<Result> prevResult;
  nlohmann::json runtimeConfig = nlohmann::json::object();
  std::vector<ipam::Owner> validAttachments;  // GC: cni.dev/valid-attachments
};

// Parses stdin. Not JSON or not an object: 6. cniVersion, name or type missing or not a string:
// 7. A cniVersion we do not speak: 1, listing the supported ones. A malformed prevResult: 6.
Outcome<NetConf> parseNetConf(std::string_view stdinText);

}  // namespace vnetipam::cni
