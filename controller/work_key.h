// The work queue's key: which reconciler (kind) and which object (name). Typed rather than a
// prefixed string so the dispatch is a switch on the kind and no name can be taken for another
// kind's key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace vnetipam::controller {

enum class WorkKind : std::uint8_t {
  kPodSubnet,  // name: a PodSubnet; podsubnet_reconciler.cpp
  kNode,       // name: a Node (which may be gone); node_reconciler.cpp
  kNic,        // name: a Node, for its NIC; nic_reconciler.cpp
};

// "podsubnet", "node", "nic": for logs.
std::string_view toString(WorkKind kind);

struct WorkKey {
  WorkKind kind = WorkKind::kNode;
  std::string name;

  bool operator==(const WorkKey&) const = default;
};

inline WorkKey subnetKey(std::string name) { return {WorkKind::kPodSubnet, std::move(name)}; }
inline WorkKey nodeKey(std::string name) { return {WorkKind::kNode, std::move(name)}; }
inline WorkKey nicKey(std::string name) { return {WorkKind::kNic, std::move(name)}; }

// "node/a", for logs and test failures.
std::string toString(const WorkKey& key);
inline std::ostream& operator<<(std::ostream& out, const WorkKey& key) {
  return out << toString(key);
}

}  // namespace vnetipam::controller

template <>
struct std::hash<vnetipam::controller::WorkKey> {
  std::size_t operator()(const vnetipam::controller::WorkKey& key) const noexcept {
    const std::size_t h = std::hash<std::string>{}(key.name);
    return h ^ (static_cast<std::size_t>(key.kind) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};
