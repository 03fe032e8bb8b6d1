// Small helpers shared by the state (state.cpp, state_writes.cpp) and the three reconciler files
// (podsubnet_reconciler.cpp, node_reconciler.cpp, nic_reconciler.cpp). Not part of the controller's
// interface: only those files include it.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "controller/state.h"
#include "lib/ipam/ip.h"

namespace vnetipam::controller {

inline std::optional<std::uint64_t> parseVersion(const std::string& rv) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(rv.data(), rv.data() + rv.size(), value);
  if (ec != std::errc() || end != rv.data() + rv.size()) return std::nullopt;
  return value;
}

// True when `candidate` is not older than `current` (resourceVersions are etcd revisions; the API
// says to treat them as opaque, so anything unparsable counts as newer).
inline bool notOlder(const std::string& candidate, const std::string& current) {
  const auto a = parseVersion(candidate);
  const auto b = parseVersion(current);
  return !a || !b || *a >= *b;
}

inline std::int64_t prefixSize(const ipam::Prefix& prefix) { return prefix.countedSize(); }

inline std::string blockPath(std::string_view name) {
  return fmt::format("{}/{}", kIPBlocksPath, name);
}

}  // namespace vnetipam::controller
