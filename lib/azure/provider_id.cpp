#include "lib/azure/provider_id.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::azure {

namespace {

constexpr std::string_view kScheme = "azure://";

Error invalid(std::string_view providerID, std::string_view why) {
  return Error{ErrorCode::kInvalidArgument,
               fmt::format("providerID \"{}\" does not name an Azure VM: {}", providerID, why)};
}

// A character ARM never puts in a resource id, or one that would change what the id means when
// it is pasted into a request target.
bool badCharacter(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x21 || u == 0x7f || c == '?' || c == '#' || c == '%' || c == '\\';
}

}  // namespace

std::string AzureVmRef::resourceGroupId() const {
  return fmt::format("/subscriptions/{}/resourceGroups/{}", subscriptionId, resourceGroup);
}

std::string AzureVmRef::resourceId() const {
  if (kind == Kind::kUniformScaleSetMachine)
    return fmt::format(
        "{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
        resourceGroupId(), name, instanceId);
  return fmt::format("{}/providers/Microsoft.Compute/virtualMachines/{}", resourceGroupId(), name);
}

Result<AzureVmRef> parseProviderId(std::string_view providerID) {
  if (!providerID.starts_with(kScheme))
    return std::unexpected(invalid(providerID, "it does not start with azure://"));
  const std::string_view id = providerID.substr(kScheme.size());
  if (!id.starts_with('/'))
    return std::unexpected(invalid(providerID, "the resource id must start with /subscriptions/"));
  if (std::ranges::any_of(id, badCharacter))
    return std::unexpected(
        invalid(providerID, "it has a character no ARM resource id has (space, ?, #, %, \\)"));
  std::vector<std::string_view> parts;
  for (std::string_view rest = id.substr(1);;) {
    const auto slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  if (std::ranges::any_of(parts, [](std::string_view p) { return p.empty(); }))
    return std::unexpected(invalid(providerID, "it has an empty path segment"));
  // A request target with them would name another resource once a server normalises the path.
  if (std::ranges::any_of(parts, [](std::string_view p) { return p == "." || p == ".."; }))
    return std::unexpected(invalid(providerID, "it has a . or .. path segment"));
  using text::iequals;
  const bool common = parts.size() >= 8 && iequals(parts[0], "subscriptions") &&
                      iequals(parts[2], "resourceGroups") && iequals(parts[4], "providers") &&
                      iequals(parts[5], "Microsoft.Compute");
  if (common && parts.size() == 8 && iequals(parts[6], "virtualMachines"))
    return AzureVmRef{.kind = AzureVmRef::Kind::kVirtualMachine,
                      .subscriptionId = std::string(parts[1]),
                      .resourceGroup = std::string(parts[3]),
                      .name = std::string(parts[7])};
  if (common && parts.size() == 10 && iequals(parts[6], "virtualMachineScaleSets") &&
      iequals(parts[8], "virtualMachines")) {
    if (!std::ranges::all_of(parts[9], [](char c) { return c >= '0' && c <= '9'; }))
      return std::unexpected(invalid(providerID, "a scale set instance id is a decimal number"));
    return AzureVmRef{.kind = AzureVmRef::Kind::kUniformScaleSetMachine,
                      .subscriptionId = std::string(parts[1]),
                      .resourceGroup = std::string(parts[3]),
                      .name = std::string(parts[7]),
                      .instanceId = std::string(parts[9])};
  }
  return std::unexpected(invalid(
      providerID,
      "expected /subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/"
      "virtualMachines/<name> or .../virtualMachineScaleSets/<name>/virtualMachines/<instance>"));
}

}  // namespace vnetipam::azure
