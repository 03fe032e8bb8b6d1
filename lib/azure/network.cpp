#include "lib/azure/network.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::azure {

namespace {

using nlohmann::json;

std::string str(const json& doc, std::string_view key) {
  if (!doc.is_object()) return {};
  const auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& child(const json& doc, std::string_view key) {
  static const json kNull;
  if (!doc.is_object()) return kNull;
  const auto it = doc.find(key);
  return it != doc.end() ? *it : kNull;
}

bool flag(const json& doc, std::string_view key) {
  const json& value = child(doc, key);
  return value.is_boolean() && value.get<bool>();
}

Result<void> requireId(const json& doc, std::string_view what) {
  if (str(doc, "id").empty()) {
    return fail(ErrorCode::kBadResponse, fmt::format("{} from ARM has no \"id\"", what));
  }
  return {};
}

// An ARM id we are willing to put in a request path.
Result<void> checkId(std::string_view id, std::string_view what) {
  const bool ok = id.starts_with("/subscriptions/") &&
                  id.find_first_of("?# \t\r\n%") == std::string_view::npos &&
                  id.find("/../") == std::string_view::npos && !id.ends_with('/');
  if (!ok) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{} id \"{}\" is not an ARM resource id "
                            "(/subscriptions/<id>/resourceGroups/<rg>/providers/...)",
                            what, id));
  }
  return {};
}

std::string withVersion(std::string_view id, std::string_view version) {
  return fmt::format("{}?api-version={}", id, version);
}

}  // namespace

std::optional<ipam::Prefix> NicIpConfig::prefix() const {
  const auto slash = privateIPAddress.find('/');
  std::optional<int> length = prefixLength;
  std::string_view address = privateIPAddress;
  if (slash != std::string::npos) {
    address = address.substr(0, slash);
    int parsed = 0;
    const std::string_view tail = std::string_view(privateIPAddress).substr(slash + 1);
    const auto [end, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), parsed);
    if (ec != std::errc() || end != tail.data() + tail.size()) return std::nullopt;
    length = parsed;
  }
  if (!length || address.empty()) return std::nullopt;
  const auto ip = ipam::IPAddress::parse(address);
  if (!ip || *length < 0 || *length > ipam::bitLength(ip->family())) return std::nullopt;
  // A configured prefix of the full address length is a single address, not a block.
  if (*length == ipam::bitLength(ip->family())) return std::nullopt;
  return ipam::Prefix::masked(*ip, *length);
}

Result<Subnet> parseSubnet(const json& doc) {
  if (auto ok = requireId(doc, "subnet"); !ok) return std::unexpected(ok.error());
  Subnet subnet{.id = str(doc, "id"), .name = str(doc, "name"), .raw = doc};
  const json& props = child(doc, "properties");
  if (const auto one = str(props, "addressPrefix"); !one.empty()) {
    subnet.addressPrefixes.push_back(one);
  }
  if (const json& many = child(props, "addressPrefixes"); many.is_array()) {
    for (const auto& prefix : many) {
      if (prefix.is_string() &&
          std::ranges::find(subnet.addressPrefixes, prefix.get<std::string>()) ==
              subnet.addressPrefixes.end()) {
        subnet.addressPrefixes.push_back(prefix.get<std::string>());
      }
    }
  }
  subnet.provisioningState = str(props, "provisioningState");
  if (const json& configs = child(props, "ipConfigurations"); configs.is_array()) {
    for (const auto& item : configs) {
      if (const std::string id = str(item, "id"); !id.empty()) {
        subnet.ipConfigurationIds.push_back(id);
      }
    }
  }
  return subnet;
}

Result<VirtualNetwork> parseVirtualNetwork(const json& doc) {
  if (auto ok = requireId(doc, "virtual network"); !ok) return std::unexpected(ok.error());
  VirtualNetwork vnet{
      .id = str(doc, "id"), .name = str(doc, "name"), .location = str(doc, "location"), .raw = doc};
  const json& props = child(doc, "properties");
  if (const json& prefixes = child(child(props, "addressSpace"), "addressPrefixes");
      prefixes.is_array()) {
    for (const auto& prefix : prefixes)
      if (prefix.is_string()) vnet.addressPrefixes.push_back(prefix.get<std::string>());
  }
  if (const json& subnets = child(props, "subnets"); subnets.is_array()) {
    for (const auto& item : subnets) {
      auto subnet = parseSubnet(item);
      if (!subnet) return std::unexpected(subnet.error());
      vnet.subnets.push_back(std::move(*subnet));
    }
  }
  return vnet;
}

Result<VirtualMachine> parseVirtualMachine(const json& doc) {
  if (auto ok = requireId(doc, "virtual machine"); !ok) return std::unexpected(ok.error());
  VirtualMachine vm{
      .id = str(doc, "id"), .name = str(doc, "name"), .location = str(doc, "location"), .raw = doc};
  const json& nics = child(child(child(doc, "properties"), "networkProfile"), "networkInterfaces");
  if (nics.is_array()) {
    for (const auto& nic : nics) {
      if (str(nic, "id").empty()) continue;
      vm.nics.push_back({str(nic, "id"), flag(child(nic, "properties"), "primary")});
    }
  }
  // A VM with one NIC may leave "primary" unset; that NIC is the primary.
  if (vm.nics.size() == 1) vm.nics.front().primary = true;
  std::ranges::stable_partition(vm.nics, [](const auto& nic) { return nic.primary; });
  return vm;
}

Result<NetworkInterface> parseNetworkInterface(const json& doc) {
  if (auto ok = requireId(doc, "network interface"); !ok) return std::unexpected(ok.error());
  // The etag is sent back in If-Match: a header value, so visible ASCII (and the space a weak
  // etag's W/ form never needs, but RFC 9110 allows) only, and not endless.
  const std::string etag = str(doc, "etag");
  constexpr std::size_t kMaxEtagBytes = 1024;
  if (etag.size() > kMaxEtagBytes ||
      !std::ranges::all_of(etag, [](char c) { return c >= 0x20 && c < 0x7F; })) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("network interface {}: the etag is not a usable header value ({} "
                            "bytes, visible ASCII and at most {} expected)",
                            str(doc, "id"), etag.size(), kMaxEtagBytes));
  }
  NetworkInterface nic{.id = str(doc, "id"),
                       .name = str(doc, "name"),
                       .location = str(doc, "location"),
                       .etag = str(doc, "etag"),
                       .raw = doc};
  const json& props = child(doc, "properties");
  nic.provisioningState = str(props, "provisioningState");
  nic.virtualMachineId = str(child(props, "virtualMachine"), "id");
  if (const json& configs = child(props, "ipConfigurations"); configs.is_array()) {
    for (const auto& item : configs) {
      const json& p = child(item, "properties");
      NicIpConfig config{.id = str(item, "id"),
                         .name = str(item, "name"),
                         .primary = flag(p, "primary"),
                         .privateIPAddress = str(p, "privateIPAddress"),
                         .allocationMethod = str(p, "privateIPAllocationMethod"),
                         .subnetId = str(child(p, "subnet"), "id"),
                         .provisioningState = str(p, "provisioningState")};
      if (config.name.empty()) {
        return fail(ErrorCode::kBadResponse,
                    fmt::format("network interface {}: an ipConfiguration has no name", nic.id));
      }
      // An address length: 0..128 whatever the family (prefix() checks it against the address).
      // get<int>() would wrap a larger number into that range, so the value is read whole.
      if (const json& length = child(p, "privateIPAddressPrefixLength"); !length.is_null()) {
        const bool inRange = (length.is_number_unsigned() && length.get<std::uint64_t>() <= 128) ||
                             (length.is_number_integer() && length.get<std::int64_t>() >= 0 &&
                              length.get<std::int64_t>() <= 128);
        if (!inRange) {
          return fail(
              ErrorCode::kBadResponse,
              fmt::format("network interface {}: ipConfiguration {} has "
                          "privateIPAddressPrefixLength {}, not an integer in 0..128",
                          nic.id, config.name,
                          length.is_number() ? length.dump() : std::string(length.type_name())));
        }
        config.prefixLength = length.get<int>();
      }
      nic.ipConfigs.push_back(std::move(config));
    }
  }
  return nic;
}

Result<std::optional<SubnetUsage>> parseVirtualNetworkUsage(const json& doc) {
  const std::string kind = str(child(doc, "name"), "value");
  if (!kind.empty() && kind != "SubnetSpace") return std::optional<SubnetUsage>();
  SubnetUsage usage{.subnetId = str(doc, "id"), .used = std::nullopt, .limit = std::nullopt};
  if (usage.subnetId.empty()) {
    return fail(ErrorCode::kBadResponse, "a virtual network usage from ARM has no \"id\"");
  }
  // Numbers ("format": "double") that count addresses: a whole number from 0 to 2^53 (where a
  // double stops counting exactly; an IPv6 /64 is larger and reads as unknown), else unknown.
  const auto count = [&](std::string_view key) -> Result<std::optional<std::int64_t>> {
    const json& value = child(doc, key);
    if (value.is_null()) return std::optional<std::int64_t>();
    if (!value.is_number()) {
      return fail(ErrorCode::kBadResponse,
                  fmt::format("virtual network usage of {}: \"{}\" is a {}, not a number",
                              usage.subnetId, key, value.type_name()));
    }
    const double number = value.get<double>();
    constexpr double kExact = 9007199254740992.0;  // 2^53
    if (!(number >= 0 && number <= kExact) ||
        number != static_cast<double>(static_cast<std::int64_t>(number))) {
      return std::optional<std::int64_t>();
    }
    return std::optional<std::int64_t>(static_cast<std::int64_t>(number));
  };
  auto used = count("currentValue");
  if (!used) return std::unexpected(used.error());
  auto limit = count("limit");
  if (!limit) return std::unexpected(limit.error());
  usage.used = *used;
  usage.limit = *limit;
  return std::optional<SubnetUsage>(std::move(usage));
}

std::string ipConfigName(const ipam::Prefix& prefix) {
  std::string address = prefix.address().toString();
  std::ranges::replace(address, '.', '-');
  std::ranges::replace(address, ':', '-');
  return fmt::format("{}{}-{}", kIpConfigNamePrefix, address, prefix.length());
}

std::optional<ipam::Prefix> prefixOfIpConfigName(std::string_view name) {
  if (!name.starts_with(kIpConfigNamePrefix)) return std::nullopt;
  std::string_view rest = name.substr(kIpConfigNamePrefix.size());
  const std::size_t dash = rest.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  std::string address(rest.substr(0, dash));
  // Four dash-separated parts are an IPv4 address; anything else is tried as IPv6.
  const bool v4 = std::ranges::count(address, '-') == 3;
  std::ranges::replace(address, '-', v4 ? '.' : ':');
  auto prefix = ipam::Prefix::parse(fmt::format("{}/{}", address, rest.substr(dash + 1)));
  // Only a name ipConfigName makes (canonical address, host bits clear) stands for a prefix.
  if (!prefix || ipConfigName(*prefix) != name) return std::nullopt;
  return *prefix;
}

std::optional<NicConfigRef> parseNicIpConfigurationId(std::string_view id) {
  // /subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Network/networkInterfaces/<nic>/
  // ipConfigurations/<name>: ten segments after the leading slash, names compared ignoring case.
  if (!id.starts_with('/')) return std::nullopt;
  std::vector<std::string_view> seg;
  for (std::size_t start = 1; start <= id.size();) {
    const std::size_t end = std::min(id.find('/', start), id.size());
    seg.push_back(id.substr(start, end - start));
    start = end + 1;
  }
  const auto is = [&](std::size_t i, std::string_view word) { return text::iequals(seg[i], word); };
  if (seg.size() != 10 || std::ranges::any_of(seg, &std::string_view::empty)) return std::nullopt;
  if (!is(0, "subscriptions") || !is(2, "resourceGroups") || !is(4, "providers") ||
      !is(5, "Microsoft.Network") || !is(6, "networkInterfaces") || !is(8, "ipConfigurations")) {
    return std::nullopt;
  }
  const std::size_t cut = id.size() - seg[9].size() - std::string_view("/ipConfigurations/").size();
  return NicConfigRef{.nicId = std::string(id.substr(0, cut)), .name = std::string(seg[9])};
}

IpConfigDiff dropNicPrefixes(const NetworkInterface& nic, std::span<const ipam::Prefix> prefixes) {
  IpConfigDiff diff{.ipConfigurations = json::array()};
  const json& raw = child(child(nic.raw, "properties"), "ipConfigurations");
  for (std::size_t i = 0; i < nic.ipConfigs.size(); ++i) {
    const NicIpConfig& config = nic.ipConfigs[i];
    const auto prefix = config.prefix();
    if (config.name.starts_with(kIpConfigNamePrefix) && prefix &&
        std::ranges::find(prefixes, *prefix) != prefixes.end()) {
      diff.removed.push_back(*prefix);
      continue;
    }
    diff.ipConfigurations.push_back(raw.is_array() && i < raw.size() ? raw[i] : json::object());
  }
  return diff;
}

Result<IpConfigDiff> diffNicPrefixes(const NetworkInterface& nic,
                                     std::span<const ipam::Prefix> desired) {
  IpConfigDiff diff{.ipConfigurations = json::array()};
  const json& raw = child(child(nic.raw, "properties"), "ipConfigurations");
  std::vector<ipam::Prefix> present;
  std::string primarySubnet;
  for (std::size_t i = 0; i < nic.ipConfigs.size(); ++i) {
    const NicIpConfig& config = nic.ipConfigs[i];
    if (config.primary) primarySubnet = config.subnetId;
    const auto prefix = config.prefix();
    const bool wanted = prefix && std::ranges::find(desired, *prefix) != desired.end();
    if (config.name.starts_with(kIpConfigNamePrefix) && !wanted) {
      if (prefix) diff.removed.push_back(*prefix);
      continue;  // ours and no longer desired (or ours and not a block at all): dropped
    }
    if (prefix) present.push_back(*prefix);
    diff.ipConfigurations.push_back(raw.is_array() && i < raw.size() ? raw[i] : json::object());
  }
  for (const ipam::Prefix& prefix : desired) {
    if (std::ranges::find(present, prefix) != present.end()) continue;
    if (primarySubnet.empty()) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("network interface {}: no primary ipConfiguration with a subnet, "
                              "so there is no subnet to put {} in",
                              nic.id, prefix.toString()));
    }
    diff.ipConfigurations.push_back(
        json{{"name", ipConfigName(prefix)},
             {"properties",
              {{"privateIPAddress", prefix.toString()},
               {"privateIPAddressPrefixLength", prefix.length()},
               {"privateIPAllocationMethod", "Static"},
               {"privateIPAddressVersion", prefix.family() == ipam::Family::kV4 ? "IPv4" : "IPv6"},
               {"primary", false},
               {"subnet", {{"id", primarySubnet}}}}}});
    present.push_back(prefix);
    diff.added.push_back(prefix);
  }
  return diff;
}

NetworkClient::NetworkClient(ArmClient& arm, int maxConflicts)
    : arm_(arm), maxConflicts_(maxConflicts) {}

Result<VirtualNetwork> NetworkClient::getVirtualNetwork(std::string_view vnetId) {
  if (auto ok = checkId(vnetId, "virtual network"); !ok) return std::unexpected(ok.error());
  auto doc = arm_.get("GetVirtualNetwork", withVersion(vnetId, kNetworkApiVersion));
  if (!doc) return std::unexpected(doc.error());
  return parseVirtualNetwork(*doc);
}

Result<Subnet> NetworkClient::getSubnet(std::string_view subnetId) {
  if (auto ok = checkId(subnetId, "subnet"); !ok) return std::unexpected(ok.error());
  auto doc = arm_.get("GetSubnet", withVersion(subnetId, kNetworkApiVersion));
  if (!doc) return std::unexpected(doc.error());
  return parseSubnet(*doc);
}

Result<VirtualMachine> NetworkClient::getVirtualMachine(std::string_view vmId) {
  if (auto ok = checkId(vmId, "VM"); !ok) return std::unexpected(ok.error());
  auto doc = arm_.get("GetVirtualMachine", withVersion(vmId, kComputeApiVersion));
  if (!doc) return std::unexpected(doc.error());
  return parseVirtualMachine(*doc);
}

Result<std::vector<NetworkInterface>> NetworkClient::getVirtualMachineNics(
    const VirtualMachine& vm) {
  std::vector<NetworkInterface> nics;
  for (const auto& ref : vm.nics) {
    auto nic = getNic(ref.id);
    if (!nic) return std::unexpected(nic.error());
    nics.push_back(std::move(*nic));
  }
  return nics;
}

Result<NetworkInterface> NetworkClient::getNic(std::string_view nicId) {
  if (auto ok = checkId(nicId, "network interface"); !ok) return std::unexpected(ok.error());
  auto doc = arm_.get("GetNetworkInterface", withVersion(nicId, kNetworkApiVersion));
  if (!doc) return std::unexpected(doc.error());
  return parseNetworkInterface(*doc);
}

Result<NetworkInterface> NetworkClient::putNic(const NetworkInterface& nic) {
  if (auto ok = checkId(nic.id, "network interface"); !ok) return std::unexpected(ok.error());
  // The reference [R]: NRP is believed to honour If-Match on NICs though the spec declares no
  // such parameter; we always send it, so a concurrent writer is detected wherever it is
  // enforced, and at worst it is ignored.
  auto doc = arm_.put("PutNetworkInterface", withVersion(nic.id, kNetworkApiVersion), nic.raw,
                      nic.etag.empty() ? std::nullopt : std::optional<std::string>(nic.etag));
  if (!doc) return std::unexpected(doc.error());
  return parseNetworkInterface(*doc);
}

Result<int> NetworkClient::listNicAttachments(
    std::string_view resourceGroupId,
    const std::function<void(std::vector<NicAttachment>& page)>& onPage) {
  const std::string collection =
      fmt::format("{}/providers/Microsoft.Network/networkInterfaces", resourceGroupId);
  if (auto ok = checkId(collection, "resource group"); !ok) return std::unexpected(ok.error());
  // All a page's NICs would be a tree of several MiB; these are the members read below.
  static constexpr std::string_view kKeep[] = {"id", "properties", "virtualMachine", "primary"};
  return arm_.forEachPage(
      "ListNetworkInterfaces", withVersion(collection, kNetworkApiVersion),
      [&onPage](json& items) -> Result<void> {
        std::vector<NicAttachment> page;
        for (const json& item : items) {
          const json& props = child(item, "properties");
          NicAttachment nic{.nicId = str(item, "id"),
                            .virtualMachineId = str(child(props, "virtualMachine"), "id"),
                            .primary = flag(props, "primary")};
          if (nic.nicId.empty()) {
            return fail(ErrorCode::kBadResponse, "a network interface of the list has no id");
          }
          if (!nic.virtualMachineId.empty()) page.push_back(std::move(nic));
        }
        onPage(page);
        return {};
      },
      kKeep);
}

Result<std::vector<SubnetUsage>> NetworkClient::listVirtualNetworkUsage(std::string_view vnetId) {
  if (auto ok = checkId(vnetId, "virtual network"); !ok) return std::unexpected(ok.error());
  auto items = arm_.list("ListVirtualNetworkUsage",
                         withVersion(fmt::format("{}/usages", vnetId), kNetworkApiVersion));
  if (!items) return std::unexpected(items.error());
  std::vector<SubnetUsage> usages;
  usages.reserve(items->size());
  for (const auto& item : *items) {
    auto usage = parseVirtualNetworkUsage(item);
    if (!usage) return std::unexpected(usage.error());
    if (*usage) usages.push_back(std::move(**usage));
  }
  return usages;
}

Result<void> NetworkClient::writeNic(const NetworkInterface& nic) {
  if (auto ok = checkId(nic.id, "network interface"); !ok) return std::unexpected(ok.error());
  auto doc = arm_.put("PutNetworkInterface", withVersion(nic.id, kNetworkApiVersion), nic.raw,
                      nic.etag.empty() ? std::nullopt : std::optional<std::string>(nic.etag),
                      ArmClient::ReadBack::kNo);
  if (!doc) return std::unexpected(doc.error());
  return {};
}

Result<NicPrefixChange> NetworkClient::setNicPrefixes(std::string_view nicId,
                                                      std::span<const ipam::Prefix> desired) {
  auto nic = getNic(nicId);
  if (!nic) return std::unexpected(nic.error());
  return setNicPrefixes(std::move(*nic), desired);
}

Result<NicPrefixChange> NetworkClient::setNicPrefixes(NetworkInterface nic,
                                                      std::span<const ipam::Prefix> desired) {
  NicPrefixChange change;
  for (;;) {
    auto diff = diffNicPrefixes(nic, desired);
    if (!diff) return std::unexpected(diff.error());
    if (!diff->changed()) {
      change.nic = std::move(nic);
      return change;
    }
    nic.raw["properties"]["ipConfigurations"] = std::move(diff->ipConfigurations);
    auto written = writeNic(nic);
    if (!written && written.error().code == ErrorCode::kPreconditionFailed &&
        change.conflicts < maxConflicts_) {
      // Someone else wrote the NIC since we read it: read again and re-apply our desired set
      // (a diff against the new state, so their change is kept).
      ++change.conflicts;
      auto again = getNic(nic.id);
      if (!again) return std::unexpected(again.error());
      nic = std::move(*again);
      continue;
    }
    if (!written) return std::unexpected(written.error());
    auto sent = parseNetworkInterface(nic.raw);
    change.nic = sent ? std::move(*sent) : std::move(nic);
    change.added = std::move(diff->added);
    change.removed = std::move(diff->removed);
    change.written = true;
    return change;
  }
}

Result<NicPrefixChange> NetworkClient::removeNicPrefixes(std::string_view nicId,
                                                         std::span<const ipam::Prefix> prefixes) {
  NicPrefixChange change;
  for (;;) {
    auto nic = getNic(nicId);
    if (!nic) return std::unexpected(nic.error());
    IpConfigDiff diff = dropNicPrefixes(*nic, prefixes);
    if (!diff.changed()) {
      change.nic = std::move(*nic);
      return change;
    }
    nic->raw["properties"]["ipConfigurations"] = std::move(diff.ipConfigurations);
    auto written = writeNic(*nic);
    if (!written && written.error().code == ErrorCode::kPreconditionFailed &&
        change.conflicts < maxConflicts_) {
      // Someone wrote the NIC since we read it: drop the same prefixes from what it is now.
      ++change.conflicts;
      continue;
    }
    if (!written) return std::unexpected(written.error());
    auto sent = parseNetworkInterface(nic->raw);
    change.nic = sent ? std::move(*sent) : std::move(*nic);
    change.removed = std::move(diff.removed);
    change.written = true;
    return change;
  }
}

}  // namespace vnetipam::azure
