#include "controller/work_key.h"

#include <fmt/format.h>

namespace vnetipam::controller {

std::string_view toString(WorkKind kind) {
  switch (kind) {
    case WorkKind::kPodSubnet: return "podsubnet";
    case WorkKind::kNode: return "node";
    case WorkKind::kNic: return "nic";
  }
  return "unknown";
}

std::string toString(const WorkKey& key) {
  return fmt::format("{}/{}", toString(key.kind), key.name);
}

}  // namespace vnetipam::controller
