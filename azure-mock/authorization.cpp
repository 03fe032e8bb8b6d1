#include "azure-mock/authorization.h"

#include <algorithm>

#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::azuremock {
namespace {

using text::asciiLower;

// Glob match, "*" for any run of characters, ignoring ASCII case. Iterative with one backtrack
// point, so a pattern of many stars stays linear in practice and never recurses.
bool globMatches(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, starP = std::string_view::npos, starT = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      starP = p++;
      starT = t;
    } else if (p < pattern.size() && asciiLower(pattern[p]) == asciiLower(text[t])) {
      ++p;
      ++t;
    } else if (starP != std::string_view::npos) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

// The member of `doc` whose key equals `key` ignoring case (the Azure CLI accepts "Actions" and
// "actions"); nullptr when absent.
const nlohmann::json* member(const nlohmann::json& doc, std::string_view key) {
  for (const auto& [k, v] : doc.items()) {
    if (text::iequals(k, key)) return &v;
  }
  return nullptr;
}

std::expected<std::vector<std::string>, std::string> stringList(const nlohmann::json& doc,
                                                                std::string_view key) {
  std::vector<std::string> out;
  const auto* list = member(doc, key);
  if (list == nullptr) return out;
  if (!list->is_array()) return std::unexpected(fmt::format("\"{}\": not a list", key));
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto& item = (*list)[i];
    if (!item.is_string() || item.get_ref<const std::string&>().empty())
      return std::unexpected(fmt::format("\"{}\"[{}]: not a non-empty string", key, i));
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

std::expected<RoleDefinition, std::string> parseRoleDefinition(const nlohmann::json& doc) {
  if (!doc.is_object()) return std::unexpected("a role definition must be a JSON object");
  RoleDefinition role;
  if (const auto* name = member(doc, "Name"); name != nullptr && name->is_string())
    role.name = name->get<std::string>();
  auto actions = stringList(doc, "Actions");
  if (!actions) return std::unexpected(actions.error());
  auto notActions = stringList(doc, "NotActions");
  if (!notActions) return std::unexpected(notActions.error());
  if (actions->empty()) return std::unexpected("\"Actions\": the role grants nothing");
  role.actions = std::move(*actions);
  role.notActions = std::move(*notActions);
  return role;
}

bool permits(const RoleDefinition& role, std::string_view action) {
  const auto matches = [&](const std::string& pattern) { return globMatches(pattern, action); };
  return std::ranges::any_of(role.actions, matches) &&
         std::ranges::none_of(role.notActions, matches);
}

std::optional<std::string> requiredAction(ArmResourceKind kind, std::string_view method) {
  const bool get = method == "GET";
  const bool put = method == "PUT";
  const bool del = method == "DELETE";
  switch (kind) {
    case ArmResourceKind::kVirtualNetwork:
      if (get) return "Microsoft.Network/virtualNetworks/read";
      break;
    case ArmResourceKind::kVirtualNetworkUsage:
      // Its own action, "Get the IP usages for each subnet of the virtual network" in Azure's
      // resource provider operations list; virtualNetworks/read does not grant it.
      if (get) return "Microsoft.Network/virtualNetworks/usages/read";
      break;
    case ArmResourceKind::kSubnet:
      if (get) return "Microsoft.Network/virtualNetworks/subnets/read";
      break;
    case ArmResourceKind::kNetworkInterface:
      if (get) return "Microsoft.Network/networkInterfaces/read";
      if (put) return "Microsoft.Network/networkInterfaces/write";
      if (del) return "Microsoft.Network/networkInterfaces/delete";
      break;
    case ArmResourceKind::kNicIpConfiguration:
      if (get) return "Microsoft.Network/networkInterfaces/ipconfigurations/read";
      break;
    case ArmResourceKind::kVirtualMachine:
      if (get) return "Microsoft.Compute/virtualMachines/read";
      break;
    // The Microsoft.Compute operations for a scale set's VMs and their NICs (the scale-set NIC
    // reads are served under the Microsoft.Compute path: vmssNetworkInterface.json).
    case ArmResourceKind::kScaleSetVirtualMachine:
      if (get) return "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read";
      break;
    case ArmResourceKind::kScaleSetNetworkInterface:
      if (get)
        return "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read";
      break;
    case ArmResourceKind::kNetworkOperation:
      if (get) return "Microsoft.Network/locations/operations/read";
      break;
    case ArmResourceKind::kNetworkOperationResult:
      if (get) return "Microsoft.Network/locations/operationResults/read";
      break;
  }
  return std::nullopt;
}

std::vector<std::string> linkedSubnets(const nlohmann::json& nicBody) {
  std::vector<std::string> out;
  const auto configs = nicBody.is_object() ? nicBody.find("properties") : nicBody.end();
  if (configs == nicBody.end() || !configs->is_object()) return out;
  const auto list = configs->find("ipConfigurations");
  if (list == configs->end() || !list->is_array()) return out;
  for (const auto& config : *list) {
    if (!config.is_object()) continue;
    const auto props = config.find("properties");
    if (props == config.end() || !props->is_object()) continue;
    const auto subnet = props->find("subnet");
    if (subnet == props->end() || !subnet->is_object()) continue;
    const auto id = subnet->find("id");
    if (id == subnet->end() || !id->is_string()) continue;
    const auto& text = id->get_ref<const std::string&>();
    const bool seen =
        std::ranges::any_of(out, [&](const std::string& s) { return text::iequals(s, text); });
    if (!seen) out.push_back(text);
  }
  return out;
}

}  // namespace vnetipam::azuremock
