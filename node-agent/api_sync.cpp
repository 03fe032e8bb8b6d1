#include "node-agent/api_sync.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/constants.h"

namespace vnetipam::agent {

using nlohmann::json;

std::expected<ApiBlock, std::string> apiBlockFromJson(const json& object,
                                                      const std::string& nodeName) {
  const std::string name = object.value("/metadata/name"_json_pointer, std::string());
  if (name.empty()) return std::unexpected(std::string("IPBlock without metadata.name"));
  const json& spec = object.value("spec", json::object());
  const std::string node = spec.value("nodeName", std::string());
  if (node != nodeName) {
    return std::unexpected(
        fmt::format("IPBlock {}: spec.nodeName is \"{}\", not this node {}", name, node, nodeName));
  }
  auto cidr = ipam::Prefix::parse(spec.value("cidr", std::string()));
  if (!cidr) {
    return std::unexpected(fmt::format("IPBlock {}: spec.cidr: {}", name, cidr.error().message));
  }
  const json& status = object.value("status", json::object());
  const std::string phase = status.is_object() ? status.value("phase", std::string()) : "";
  const bool deleting =
      object.contains("/metadata/deletionTimestamp"_json_pointer) || phase == "Releasing";
  return ApiBlock{.name = name, .cidr = *cidr, .ready = phase == "Ready", .deleting = deleting};
}

std::size_t UsageReporter::report(const std::vector<BlockUsage>& usage) {
  std::size_t written = 0;
  std::map<std::string, std::int64_t, std::less<>> seen;
  for (const BlockUsage& block : usage) {
    if (!block.inApi) continue;
    seen[block.name] = block.used;
    auto last = written_.find(block.name);
    if (last != written_.end() && last->second == block.used) continue;
    const json patch{{"apiVersion", api::kApiVersion},
                     {"kind", api::kIPBlockKind},
                     {"metadata", {{"name", block.name}}},
                     {"status", {{"used", block.used}}}};
    auto applied =
        client_.applyStatus(fmt::format("{}/{}", kIPBlocksPath, block.name), patch,
                            {.fieldManager = std::string(api::kAgentFieldManager), .force = true});
    if (metrics_) metrics_->usageReported(applied.has_value());
    if (!applied) {
      // Forget what we wrote so the next batch tries again.
      written_.erase(block.name);
      if (applied.error().code != kube::ErrorCode::kNotFound) {
        spdlog::warn("IPBlock {}: writing status.used={}: {}", block.name, block.used,
                     applied.error().message);
      }
      continue;
    }
    written_[block.name] = block.used;
    ++written;
  }
  // Blocks that left: forget them, so a block recreated under the same name is written again.
  std::erase_if(written_, [&](const auto& entry) { return !seen.contains(entry.first); });
  return written;
}

}  // namespace vnetipam::agent
