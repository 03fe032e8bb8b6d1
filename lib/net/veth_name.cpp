#include "lib/net/veth_name.h"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "lib/net/link.h"

namespace vnetipam::net {

namespace {

constexpr std::string_view kLegacyIfName = "eth0";

}  // namespace

Result<std::string> hostVethName(std::string_view prefix, std::string_view containerID,
                                 std::string_view ifName) {
  if (containerID.empty()) {
    return fail(ErrorCode::kInvalidArgument, "host veth name: the container id is empty");
  }
  if (ifName.empty()) {
    return fail(ErrorCode::kInvalidArgument, "host veth name: the interface name is empty");
  }
  if (prefix.empty() || prefix.size() > kMaxHostVethPrefix) {
    return fail(
        ErrorCode::kInvalidArgument,
        fmt::format("host veth prefix '{}' must be 1..{} characters", prefix, kMaxHostVethPrefix));
  }
  if (auto ok = validateInterfaceName(prefix); !ok) return std::unexpected(ok.error());
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  const auto mix = [&hash](std::string_view text) {
    for (const char c : text) {
      hash ^= static_cast<std::uint8_t>(c);
      hash *= 0x100000001b3ULL;  // FNV prime
    }
  };
  mix(containerID);
  // eth0 hashes the container id alone, as every release did before interface names counted: an
  // upgraded agent must find (and its GC must keep) the veths of the pods an older one made.
  if (ifName != kLegacyIfName) {
    mix("/");
    mix(ifName);
  }
  const std::string hex = fmt::format("{:016x}", hash);
  return std::string(prefix) + hex.substr(0, kMaxInterfaceName - prefix.size());
}

Result<std::string> legacyHostVethName(std::string_view prefix, std::string_view containerID) {
  return hostVethName(prefix, containerID, kLegacyIfName);
}

bool isHostVethName(std::string_view prefix, std::string_view name) {
  if (prefix.empty() || prefix.size() > kMaxHostVethPrefix || name.size() != kMaxInterfaceName ||
      !name.starts_with(prefix)) {
    return false;
  }
  return std::ranges::all_of(name.substr(prefix.size()), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

}  // namespace vnetipam::net
