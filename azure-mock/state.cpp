// The rules a NIC PUT must pass. Each comes from the published Microsoft.Network API and
// measurements; [V] marks a rule verified there:
//   - a prefix only on a non-primary ipConfiguration, only options.prefixLength (/28), no public
//     IP with a prefix, all ipConfigurations of a NIC in one subnet              [V]
//   - a static prefix is aligned and inside the subnet; nothing overlaps the subnet's 5 reserved
//     addresses, another NIC's addresses or prefixes, or this NIC's other configurations [V]
//   - If-Match / If-None-Match per the RPC table; 412 PreconditionFailed with
//     PreconditionFailedEtagMismatch details                                     [V]
//   - one running operation per NIC (409 AnotherOperationInProgress)             [V]
// Error codes marked [R] below are not confirmed in a source; each is a 400 CloudError, which is
// what a client must handle whatever the exact code is.
#include "azure-mock/state.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "azure-mock/wire.h"

namespace vnetipam::azuremock {

using nlohmann::json;

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

json CloudError::toJson() const {
  json error = {{"code", code}, {"message", message}};
  if (!target.empty()) error["target"] = target;
  error["details"] = details;
  return json{{"error", std::move(error)}};
}

std::string_view toString(OperationStatus s) {
  switch (s) {
    case OperationStatus::kInProgress: return "InProgress";
    case OperationStatus::kSucceeded: return "Succeeded";
    case OperationStatus::kFailed: return "Failed";
  }
  return "Failed";
}

const IpConfiguration* NetworkInterface::primaryConfiguration() const {
  for (const auto& c : ipConfigurations) {
    if (c.primary) return &c;
  }
  return nullptr;
}

namespace {

CloudError badRequest(std::string code, std::string message) {
  return CloudError{.status = 400, .code = std::move(code), .message = std::move(message)};
}

CloudError invalidFormat(std::string message) {
  return badRequest("InvalidRequestFormat", "Cannot parse the request. " + std::move(message));
}

std::string resourceGroupId(std::string_view sub, std::string_view rg) {
  return fmt::format("/subscriptions/{}/resourceGroups/{}", sub, rg);
}

std::string configId(std::string_view nicId, std::string_view name) {
  return fmt::format("{}/ipConfigurations/{}", nicId, name);
}

// What one requested ipConfiguration asks for, before rules and allocation.
struct RequestedConfig {
  std::string name;
  std::optional<bool> primary;
  bool dynamic = true;
  std::string subnetId;
  std::optional<int> prefixLength;
  std::optional<std::string> address;
  bool hasPublicIp = false;
};

std::expected<RequestedConfig, CloudError> parseRequestedConfig(const json& c, std::size_t index) {
  const auto where = [&](std::string_view field) {
    return fmt::format("properties.ipConfigurations[{}]{}", index, field);
  };
  if (!c.is_object()) return std::unexpected(invalidFormat(where(" must be an object")));
  RequestedConfig out;
  if (!c.contains("name") || !c["name"].is_string() || c["name"].get<std::string>().empty())
    return std::unexpected(invalidFormat(where(".name must be a non-empty string")));
  out.name = c["name"].get<std::string>();
  const json empty = json::object();
  const json& p = c.contains("properties") ? c["properties"] : empty;
  if (!p.is_object()) return std::unexpected(invalidFormat(where(".properties must be an object")));
  if (p.contains("primary") && !p["primary"].is_null()) {
    if (!p["primary"].is_boolean())
      return std::unexpected(invalidFormat(where(".properties.primary must be a boolean")));
    out.primary = p["primary"].get<bool>();
  }
  if (p.contains("privateIPAllocationMethod") && !p["privateIPAllocationMethod"].is_null()) {
    const auto& m = p["privateIPAllocationMethod"];
    if (!m.is_string() || (m != "Static" && m != "Dynamic"))
      return std::unexpected(
          invalidFormat(where(".properties.privateIPAllocationMethod must be Static or Dynamic")));
    out.dynamic = m == "Dynamic";
  }
  if (p.contains("subnet") && !p["subnet"].is_null()) {
    const auto& s = p["subnet"];
    if (!s.is_object() || !s.contains("id") || !s["id"].is_string())
      return std::unexpected(invalidFormat(where(".properties.subnet must be {\"id\": string}")));
    out.subnetId = s["id"].get<std::string>();
  }
  if (p.contains("privateIPAddressPrefixLength") && !p["privateIPAddressPrefixLength"].is_null()) {
    const auto& l = p["privateIPAddressPrefixLength"];
    if (!l.is_number_integer() || l.get<std::int64_t>() < 1 || l.get<std::int64_t>() > 128)
      return std::unexpected(invalidFormat(
          where(".properties.privateIPAddressPrefixLength must be an integer from 1 to 128")));
    out.prefixLength = static_cast<int>(l.get<std::int64_t>());
  }
  if (p.contains("privateIPAddress") && !p["privateIPAddress"].is_null()) {
    if (!p["privateIPAddress"].is_string())
      return std::unexpected(invalidFormat(where(".properties.privateIPAddress must be a string")));
    out.address = p["privateIPAddress"].get<std::string>();
  }
  if (p.contains("privateIPAddressVersion") && !p["privateIPAddressVersion"].is_null()) {
    // The mock's subnets are IPv4 only.
    if (p["privateIPAddressVersion"] != "IPv4")
      return std::unexpected(badRequest(
          "PrivateIPAddressVersionNotSupported",  // [R]
          fmt::format("{}: the mock's subnets are IPv4 only; privateIPAddressVersion must be IPv4",
                      where(""))));
  }
  out.hasPublicIp = p.contains("publicIPAddress") && !p["publicIPAddress"].is_null();
  return out;
}

// Who holds an address a request asks for.
struct Taken {
  std::string_view owner;
  bool reserved = false;
  ipam::U128 last = 0;
};

// First aligned run of `size` addresses in the subnet that overlaps nothing `takenIn` reports:
// the lowest free slot, as a walk over every holder sorted by address would find.
template <typename TakenIn>
std::optional<ipam::U128> firstFit(const Subnet& subnet, ipam::U128 size, const TakenIn& takenIn) {
  for (const ipam::Prefix& prefix : subnet.prefixes) {
    const ipam::U128 end = prefix.last().bits();
    ipam::U128 candidate = prefix.first().bits();
    while (candidate <= end && end - candidate >= size - 1) {
      const std::optional<Taken> t = takenIn(candidate, candidate + size - 1);
      if (!t) return candidate;
      // Every aligned start up to t->last overlaps t: move past it.
      if (t->last >= end) break;
      candidate = (t->last + 1 + size - 1) / size * size;
    }
  }
  return std::nullopt;
}

}  // namespace

bool Subnet::contains(const ipam::Prefix& p) const {
  return std::ranges::any_of(prefixes, [&](const ipam::Prefix& mine) { return mine.contains(p); });
}

MockState::MockState(StateOptions options, base::Clock& clock, RandomSource& random)
    : options_(std::move(options)), clock_(clock), random_(random) {}

std::string MockState::newEtag() { return fmt::format("W/\"{}\"", random_.guid()); }

// ---- lookups ----

const VirtualNetwork* MockState::findVirtualNetwork(std::string_view id) const {
  auto it = vnets_.find(toLower(id));
  return it == vnets_.end() ? nullptr : &it->second;
}
const Subnet* MockState::findSubnet(std::string_view id) const {
  auto it = subnets_.find(toLower(id));
  return it == subnets_.end() ? nullptr : &it->second;
}
const VirtualMachine* MockState::findVirtualMachine(std::string_view id) const {
  auto it = vms_.find(toLower(id));
  return it == vms_.end() ? nullptr : &it->second;
}
const VirtualMachineScaleSet* MockState::findScaleSet(std::string_view id) const {
  auto it = scaleSets_.find(toLower(id));
  return it == scaleSets_.end() ? nullptr : &it->second;
}
const NetworkInterface* MockState::findNic(std::string_view id) const {
  auto it = nics_.find(toLower(id));
  return it == nics_.end() ? nullptr : &it->second;
}
const AsyncOperation* MockState::findOperation(std::string_view id) const {
  auto it = operations_.find(toLower(id));
  return it == operations_.end() ? nullptr : &it->second;
}
bool MockState::resourceGroupExists(std::string_view resourceGroupId) const {
  return resourceGroups_.contains(toLower(resourceGroupId));
}
bool MockState::subscriptionExists(std::string_view subscriptionId) const {
  const std::string prefix = toLower(fmt::format("/subscriptions/{}/", subscriptionId));
  auto it = resourceGroups_.lower_bound(prefix);
  return it != resourceGroups_.end() && it->first.starts_with(prefix);
}

std::vector<const NetworkInterface*> MockState::nicsInResourceGroup(
    std::string_view resourceGroupId) const {
  const std::string prefix =
      toLower(resourceGroupId) + "/providers/microsoft.network/networkinterfaces/";
  std::vector<const NetworkInterface*> out;
  for (auto it = nics_.lower_bound(prefix); it != nics_.end() && it->first.starts_with(prefix);
       ++it)
    out.push_back(&it->second);
  return out;
}

std::vector<SubnetUsage> MockState::subnetUsages(const VirtualNetwork& vnet) const {
  std::vector<SubnetUsage> out;
  for (const auto& id : vnet.subnetIds) {
    const Subnet* subnet = findSubnet(id);
    if (subnet == nullptr) continue;
    const auto held = index_.heldCount(toLower(subnet->id));
    ipam::U128 size = 0;
    for (const ipam::Prefix& prefix : subnet->prefixes)
      size += prefix.size();
    out.push_back(SubnetUsage{.subnetId = subnet->id,
                              .used = held.byConfigurations,
                              .limit = size > held.reserved ? size - held.reserved : 0});
  }
  return out;
}

std::vector<std::string> MockState::ipConfigurationIdsInSubnet(std::string_view subnetId) const {
  std::vector<std::string> out;
  for (const auto& [_, nic] : nics_) {
    for (const auto& c : nic.ipConfigurations) {
      if (iequals(c.subnetId, subnetId)) out.push_back(configId(nic.id, c.name));
    }
  }
  return out;
}

// ---- NIC PUT ----

namespace {

// The configuration of `existing` (when there is one) of that name, compared case-insensitively.
const IpConfiguration* existingConfig(const NetworkInterface* existing, std::string_view name) {
  if (existing == nullptr) return nullptr;
  for (const auto& c : existing->ipConfigurations) {
    if (toLower(c.name) == toLower(name)) return &c;
  }
  return nullptr;
}

// The list as a whole: at least one configuration, at most options.maxIpConfigsPerNic, no two of
// one name.
std::expected<void, CloudError> checkConfigurationList(
    std::string_view nicId, const std::vector<RequestedConfig>& requested,
    const StateOptions& options) {
  if (requested.empty())
    return std::unexpected(badRequest("NetworkInterfaceMustHaveAtLeastOneIpConfiguration",  // [R]
                                      fmt::format("Network interface {} must have at least one "
                                                  "IP configuration.",
                                                  nicId)));
  if (requested.size() > options.maxIpConfigsPerNic)
    return std::unexpected(badRequest(
        "TooManyIpConfigurationsPerNic",  // [R]
        fmt::format("Network interface {} has {} IP configurations; at most {} are allowed.", nicId,
                    requested.size(), options.maxIpConfigsPerNic)));
  std::map<std::string, std::size_t> byName;
  for (std::size_t i = 0; i < requested.size(); ++i) {
    if (!byName.emplace(toLower(requested[i].name), i).second)
      return std::unexpected(badRequest(
          "DuplicateResourceName",  // [R]
          fmt::format("Network interface {} has more than one IP configuration named {}.", nicId,
                      requested[i].name)));
  }
  return {};
}

// The index of the primary configuration in `requested`.
std::expected<std::size_t, CloudError> choosePrimary(
    std::string_view nicId, const NetworkInterface* existing,
    const std::vector<RequestedConfig>& requested) {
  // Exactly one primary. Unmarked means: the only configuration, or the one that was primary.
  std::optional<std::size_t> primary;
  std::size_t marked = 0;
  for (std::size_t i = 0; i < requested.size(); ++i) {
    if (requested[i].primary.value_or(false)) {
      primary = i;
      ++marked;
    }
  }
  if (marked == 0) {
    if (requested.size() == 1) {
      primary = 0;
    } else {
      for (std::size_t i = 0; i < requested.size(); ++i) {
        const auto* old = existingConfig(existing, requested[i].name);
        if (old != nullptr && old->primary && !requested[i].primary.has_value()) primary = i;
      }
    }
  }
  if (marked > 1 || !primary)
    return std::unexpected(badRequest(
        "NicMustHaveOnePrimaryIpConfiguration",  // [R]
        fmt::format("Network interface {} must have exactly one primary IP configuration; the "
                    "request marks {}.",
                    nicId, marked)));
  return *primary;
}

// The subnet every configuration is in.
std::expected<const Subnet*, CloudError> commonSubnet(std::string_view nicId,
                                                      const NetworkInterface* existing,
                                                      const std::vector<RequestedConfig>& requested,
                                                      std::size_t primary, const MockState& state) {
  // One subnet for all: the primary's (kept from before when the request leaves it out).
  std::string subnetId = requested[primary].subnetId;
  if (subnetId.empty()) {
    if (const auto* old = existingConfig(existing, requested[primary].name))
      subnetId = old->subnetId;
  }
  if (subnetId.empty())
    return std::unexpected(invalidFormat(
        fmt::format("The primary IP configuration {} of {} needs properties.subnet.id.",
                    requested[primary].name, nicId)));
  const Subnet* subnet = state.findSubnet(subnetId);
  if (subnet == nullptr)
    return std::unexpected(badRequest(
        "InvalidResourceReference",
        fmt::format(
            "Resource {} referenced by resource {} was not found. Please make sure that the "
            "referenced resource exists, and that both resources are in the same region.",
            subnetId, nicId)));
  for (const auto& r : requested) {
    if (!r.subnetId.empty() && toLower(r.subnetId) != toLower(subnet->id))
      return std::unexpected(badRequest(
          "IpConfigurationsOnNicMustBeInSameSubnet",  // [R]
          fmt::format("IP configuration {} is in subnet {}, but all IP configurations of a network "
                      "interface must be in the same subnet, {}.",
                      configId(nicId, r.name), r.subnetId, subnet->id)));
  }
  return subnet;
}

// Prefix rules.
std::expected<void, CloudError> checkPrefixRules(std::string_view nicId,
                                                 const std::vector<RequestedConfig>& requested,
                                                 std::size_t primary, const StateOptions& options) {
  for (std::size_t i = 0; i < requested.size(); ++i) {
    const auto& r = requested[i];
    if (!r.prefixLength) continue;
    const std::string id = configId(nicId, r.name);
    if (i == primary)
      return std::unexpected(badRequest(
          "PrivateIPAddressPrefixNotAllowedOnPrimaryIpConfiguration",  // [R]
          fmt::format("IP configuration {} is primary; a private IP address prefix is only "
                      "allowed on a secondary IP configuration.",
                      id)));
    if (*r.prefixLength != options.prefixLength)
      return std::unexpected(badRequest(
          "InvalidPrivateIPAddressPrefixLength",  // [R]
          fmt::format("IP configuration {} asks for privateIPAddressPrefixLength {}; only {} is "
                      "supported.",
                      id, *r.prefixLength, options.prefixLength)));
    if (r.hasPublicIp)
      return std::unexpected(badRequest(
          "PublicIPAddressNotAllowedWithPrivateIPAddressPrefix",  // [R]
          fmt::format("IP configuration {} has a private IP address prefix and a public IP "
                      "address; a prefix cannot have a public IP address.",
                      id)));
  }
  return {};
}

// What the Static configuration `r` of the NIC `nicId` asks for: its address, or its prefix.
std::expected<ipam::Prefix, CloudError> staticPrefix(std::string_view nicId,
                                                     const RequestedConfig& r) {
  const std::string id = configId(nicId, r.name);
  if (!r.address)
    return std::unexpected(invalidFormat(
        fmt::format("IP configuration {} is Static but has no privateIPAddress.", id)));
  std::string_view text = *r.address;
  const auto slash = text.find('/');
  auto addr = ipam::IPAddress::parse(text.substr(0, slash));
  if (!addr || addr->family() != ipam::Family::kV4)
    return std::unexpected(badRequest(
        "InvalidPrivateIPAddress",  // [R]
        fmt::format("IP configuration {}: privateIPAddress \"{}\" is not an IPv4 address{}.", id,
                    text, r.prefixLength ? " or a prefix a.b.c.d/n" : "")));
  ipam::Prefix p = ipam::Prefix::masked(*addr, 32);
  if (r.prefixLength) {
    if (slash != std::string_view::npos &&
        text.substr(slash + 1) != std::to_string(*r.prefixLength))
      return std::unexpected(badRequest(
          "InvalidPrivateIPAddressPrefixLength",  // [R]
          fmt::format("IP configuration {}: privateIPAddress {} does not have the length "
                      "privateIPAddressPrefixLength gives ({}).",
                      id, text, *r.prefixLength)));
    auto made = ipam::Prefix::make(*addr, *r.prefixLength);
    if (!made)
      return std::unexpected(badRequest(
          "InvalidPrivateIPAddressPrefix",  // [R]
          fmt::format("IP configuration {}: {}/{} is not aligned to its length; the block it is "
                      "in is {}.",
                      id, addr->toString(), *r.prefixLength,
                      ipam::Prefix::masked(*addr, *r.prefixLength).toString())));
    p = *made;
  } else if (slash != std::string_view::npos) {
    return std::unexpected(badRequest(
        "InvalidPrivateIPAddress",  // [R]
        fmt::format("IP configuration {}: privateIPAddress \"{}\" has a prefix length but no "
                    "privateIPAddressPrefixLength.",
                    id, text)));
  }
  return p;
}

// Gives each requested configuration of one NIC its address or prefix in the subnet, in the
// three passes resolveConfigurations makes, and builds the configurations.
class Allocation {
 public:
  Allocation(std::string_view nicId, const std::vector<RequestedConfig>& requested,
             std::size_t primary, const Subnet& subnet, const MockState& state)
      : nicId_(nicId),
        requested_(requested),
        primary_(primary),
        subnet_(subnet),
        state_(state),
        subnetKey_(toLower(subnet.id)),
        nicKey_(toLower(nicId)),
        out_(requested.size()),
        done_(requested.size(), false) {}

  // Dynamic configurations of `existing` that the request keeps hold on to their address.
  std::expected<void, CloudError> keepExisting(const NetworkInterface* existing);
  // Static configurations take what they ask for.
  std::expected<void, CloudError> claimStatic();
  // The rest take the first free slot of their size.
  std::expected<void, CloudError> claimDynamic();

  // The configurations, once all three passes have succeeded.
  std::vector<IpConfiguration> configurations() && { return std::move(out_); }

 private:
  struct Claimed {
    ipam::U128 first;
    ipam::U128 last;
    std::string owner;
  };

  // Who holds an address in [first, last], if anyone does. Other NICs and the reserved
  // addresses are in the index; what this request claims is added to `claimed_` as it goes. The
  // index answers first: the order in which ARM names a holder.
  std::optional<Taken> takenIn(ipam::U128 first, ipam::U128 last) const;
  // Gives configuration i the prefix p, if it is in the subnet and free.
  std::expected<void, CloudError> claim(std::size_t i, const ipam::Prefix& p);

  std::string_view nicId_;
  const std::vector<RequestedConfig>& requested_;
  std::size_t primary_;
  const Subnet& subnet_;
  const MockState& state_;
  const std::string subnetKey_;
  const std::string nicKey_;
  std::vector<Claimed> claimed_;
  std::vector<IpConfiguration> out_;
  std::vector<bool> done_;
};

std::optional<Taken> Allocation::takenIn(ipam::U128 first, ipam::U128 last) const {
  if (const auto* h = state_.addressIndex().findOverlap(subnetKey_, first, last, nicKey_))
    return Taken{.owner = h->owner, .reserved = h->reserved, .last = h->last};
  for (const auto& c : claimed_) {
    if (c.first <= last && first <= c.last) return Taken{.owner = c.owner, .last = c.last};
  }
  return std::nullopt;
}

std::expected<void, CloudError> Allocation::claim(std::size_t i, const ipam::Prefix& p) {
  const std::string id = configId(nicId_, requested_[i].name);
  if (!subnet_.contains(p))
    return std::unexpected(
        badRequest("PrivateIPAddressNotInSubnet",  // [R]
                   fmt::format("IP configuration {} asks for {}, which is not in subnet {} ({}).",
                               id, p.length() == 32 ? p.address().toString() : p.toString(),
                               subnet_.id, ipam::toString(subnet_.prefixes))));
  if (const auto o = takenIn(p.first().bits(), p.last().bits())) {
    const std::string text = p.length() == 32 ? p.address().toString() : p.toString();
    if (o->reserved)
      return std::unexpected(badRequest(
          "PrivateIPAddressIsReserved",  // [R]
          fmt::format("IP configuration {} asks for {}, which overlaps {}: the first four and "
                      "the last address of a subnet are reserved.",
                      id, text, o->owner)));
    return std::unexpected(
        badRequest("PrivateIPAddressInUse",
                   fmt::format("IP configuration {} is using the same private IP address {} as IP "
                               "configuration {}.",
                               id, text, o->owner)));
  }
  claimed_.push_back({p.first().bits(), p.last().bits(), id});
  out_[i] = IpConfiguration{.name = requested_[i].name,
                            .primary = i == primary_,
                            .dynamic = requested_[i].dynamic,
                            .subnetId = subnet_.id,
                            .prefix = requested_[i].prefixLength ? std::optional(p) : std::nullopt,
                            .address = p.address()};
  done_[i] = true;
  return {};
}

std::expected<void, CloudError> Allocation::keepExisting(const NetworkInterface* existing) {
  for (std::size_t i = 0; i < requested_.size(); ++i) {
    const auto& r = requested_[i];
    const auto* old = existingConfig(existing, r.name);
    if (!r.dynamic || old == nullptr || !old->dynamic) continue;
    if (old->prefix.has_value() != r.prefixLength.has_value()) continue;
    if (toLower(old->subnetId) != subnetKey_) continue;
    auto p = old->prefix.value_or(ipam::Prefix::masked(old->address, 32));
    if (auto ok = claim(i, p); !ok) return std::unexpected(ok.error());
  }
  return {};
}

std::expected<void, CloudError> Allocation::claimStatic() {
  for (std::size_t i = 0; i < requested_.size(); ++i) {
    if (requested_[i].dynamic || done_[i]) continue;
    const auto p = staticPrefix(nicId_, requested_[i]);
    if (!p) return std::unexpected(p.error());
    if (auto ok = claim(i, *p); !ok) return std::unexpected(ok.error());
  }
  return {};
}

std::expected<void, CloudError> Allocation::claimDynamic() {
  const auto taken = [this](ipam::U128 first, ipam::U128 last) { return takenIn(first, last); };
  for (std::size_t i = 0; i < requested_.size(); ++i) {
    if (done_[i]) continue;
    const int length = requested_[i].prefixLength.value_or(32);
    const ipam::U128 size = ipam::U128{1} << (32 - length);
    auto start = firstFit(subnet_, size, taken);
    if (!start)
      return std::unexpected(badRequest(
          "SubnetIsFull", fmt::format("Subnet {} with address prefix {} does not have enough "
                                      "capacity for {} IP addresses.",
                                      subnet_.name, ipam::toString(subnet_.prefixes),
                                      static_cast<std::uint64_t>(size))));
    auto p = ipam::Prefix::make(ipam::IPAddress::fromBits(ipam::Family::kV4, *start), length);
    if (!p) return std::unexpected(invalidFormat(p.error().message));  // cannot happen: aligned
    if (auto ok = claim(i, *p); !ok) return std::unexpected(ok.error());
  }
  return {};
}

// Applies the rules to `requested` for the NIC `nicId` (whose current state is `existing`, if
// any) and allocates every dynamic address, around the addresses other NICs hold (read from
// `state`).
std::expected<std::vector<IpConfiguration>, CloudError> resolveConfigurations(
    std::string_view nicId, const NetworkInterface* existing,
    const std::vector<RequestedConfig>& requested, const MockState& state,
    const StateOptions& options) {
  if (auto ok = checkConfigurationList(nicId, requested, options); !ok)
    return std::unexpected(ok.error());
  const auto primary = choosePrimary(nicId, existing, requested);
  if (!primary) return std::unexpected(primary.error());
  const auto subnet = commonSubnet(nicId, existing, requested, *primary, state);
  if (!subnet) return std::unexpected(subnet.error());
  if (auto ok = checkPrefixRules(nicId, requested, *primary, options); !ok)
    return std::unexpected(ok.error());

  Allocation allocation(nicId, requested, *primary, **subnet, state);
  // 1. Dynamic configurations that exist already keep what they hold.
  if (auto ok = allocation.keepExisting(existing); !ok) return std::unexpected(ok.error());
  // 2. Static configurations get exactly what they ask for.
  if (auto ok = allocation.claimStatic(); !ok) return std::unexpected(ok.error());
  // 3. New dynamic configurations take the first free address or aligned block.
  if (auto ok = allocation.claimDynamic(); !ok) return std::unexpected(ok.error());
  return std::move(allocation).configurations();
}

CloudError anotherOperationInProgress(const NetworkInterface& nic) {
  return CloudError{.status = 409,
                    .code = "AnotherOperationInProgress",
                    .message = fmt::format("Another operation on this or dependent resource is in "
                                           "progress. Operation id: {}.",
                                           nic.pendingOperationId)};
}

}  // namespace

std::expected<NicPutResult, CloudError> MockState::putNic(std::string_view nicId, const json& body,
                                                          const NicPutPreconditions& pre,
                                                          std::string operationId,
                                                          bool failOperation) {
  const std::string key = toLower(nicId);
  auto found = nics_.find(key);
  NetworkInterface* existing = found == nics_.end() ? nullptr : &found->second;

  if (existing != nullptr && !existing->pendingOperationId.empty())
    return std::unexpected(anotherOperationInProgress(*existing));
  // RPC Addendum table: If-Match needs the resource and (unless "*") its etag; If-None-Match: *
  // needs it absent.
  const auto preconditionFailed = [&](std::string detailCode, std::string detailMessage) {
    return std::unexpected(CloudError{
        .status = 412,
        .code = "PreconditionFailed",
        .message = "Precondition failed.",
        .details = json::array(
            {{{"code", std::move(detailCode)}, {"message", std::move(detailMessage)}}})});
  };
  if (pre.ifMatch) {
    if (existing == nullptr)
      return preconditionFailed(
          "PreconditionFailedResourceNotFound",
          fmt::format("If-Match header {} given but resource {} does not exist.", *pre.ifMatch,
                      nicId));
    if (*pre.ifMatch != "*" && *pre.ifMatch != existing->etag)
      return preconditionFailed(
          "PreconditionFailedEtagMismatch",
          fmt::format("Etag provided in if-match header {} does not match etag {} of resource {} "
                      "in NRP data store.",
                      *pre.ifMatch, existing->etag, existing->id));
  }
  if (pre.ifNoneMatch && existing != nullptr &&
      (*pre.ifNoneMatch == "*" || *pre.ifNoneMatch == existing->etag))
    return preconditionFailed(
        "PreconditionFailedResourceExists",
        fmt::format("If-None-Match header {} given but resource {} exists with etag {}.",
                    *pre.ifNoneMatch, existing->id, existing->etag));

  if (!body.is_object())
    return std::unexpected(invalidFormat("The body must be a JSON object (a NetworkInterface)."));
  std::string location = existing != nullptr ? existing->location : "";
  if (body.contains("location") && !body["location"].is_null()) {
    if (!body["location"].is_string())
      return std::unexpected(invalidFormat("location must be a string."));
    const std::string asked = body["location"].get<std::string>();
    const auto norm = [](std::string s) {
      std::erase(s, ' ');
      return toLower(s);
    };
    if (existing != nullptr && norm(asked) != norm(existing->location))
      return std::unexpected(badRequest(
          "InvalidResourceLocation",  // [R]
          fmt::format("The resource {} already exists in location {}; it cannot be moved to {}.",
                      existing->id, existing->location, asked)));
    location = asked;
  }
  if (location.empty())
    return std::unexpected(badRequest("LocationRequired",  // [R]
                                      "The location property is required for this definition."));
  const json empty = json::object();
  const json& props = body.contains("properties") ? body["properties"] : empty;
  if (!props.is_object()) return std::unexpected(invalidFormat("properties must be an object."));
  if (!props.contains("ipConfigurations") || !props["ipConfigurations"].is_array())
    return std::unexpected(invalidFormat("properties.ipConfigurations must be an array."));
  std::vector<RequestedConfig> requested;
  for (std::size_t i = 0; i < props["ipConfigurations"].size(); ++i) {
    auto r = parseRequestedConfig(props["ipConfigurations"][i], i);
    if (!r) return std::unexpected(r.error());
    requested.push_back(std::move(*r));
  }
  NetworkInterface next;
  if (existing != nullptr) {
    next = *existing;
  } else {
    next.id = std::string(nicId);
    next.name = std::string(nicId.substr(nicId.rfind('/') + 1));
    next.resourceGuid = random_.guid();
    const std::uint64_t mac = random_.next();
    next.macAddress = fmt::format("00-0D-3A-{:02X}-{:02X}-{:02X}", (mac >> 16) & 0xff,
                                  (mac >> 8) & 0xff, mac & 0xff);
  }
  next.location = location;
  for (const char* flag : {"enableIPForwarding", "enableAcceleratedNetworking"}) {
    if (!props.contains(flag) || props[flag].is_null()) continue;
    if (!props[flag].is_boolean())
      return std::unexpected(invalidFormat(fmt::format("properties.{} must be a boolean.", flag)));
    (std::string_view(flag) == "enableIPForwarding" ? next.enableIPForwarding
                                                    : next.enableAcceleratedNetworking) =
        props[flag].get<bool>();
  }
  if (body.contains("tags") && !body["tags"].is_null()) {
    if (!body["tags"].is_object()) return std::unexpected(invalidFormat("tags must be an object."));
    next.tags = body["tags"];
  }
  auto configs = resolveConfigurations(next.id, existing, requested, *this, options_);
  if (!configs) return std::unexpected(configs.error());

  next.etag = newEtag();
  next.ipConfigurations = std::move(*configs);
  for (auto& c : next.ipConfigurations)
    c.etag = next.etag;
  next.provisioningState = "Updating";
  next.pendingOperationId = operationId;

  AsyncOperation op{.id = operationId,
                    .subscriptionId = next.id.substr(15, next.id.find('/', 15) - 15),
                    .location = next.location,
                    .nicId = next.id,
                    .due = clock_.now() + options_.asyncDelay,
                    .willFail = failOperation};
  if (existing != nullptr) {
    op.previous = *existing;
    op.previous->pendingOperationId.clear();
  }
  const bool created = existing == nullptr;
  storeNic(key, std::move(next));
  startOperation(std::move(op));
  return NicPutResult{.created = created, .operationId = std::move(operationId)};
}

std::expected<NicDeleteResult, CloudError> MockState::deleteNic(std::string_view nicId,
                                                                std::string operationId) {
  const std::string key = toLower(nicId);
  auto found = nics_.find(key);
  if (found == nics_.end()) return NicDeleteResult{};
  NetworkInterface& nic = found->second;
  if (!nic.pendingOperationId.empty()) return std::unexpected(anotherOperationInProgress(nic));
  // ARM's wording, as the Terraform and Packer Azure providers report it from NRP.
  if (!nic.virtualMachineId.empty())
    return std::unexpected(badRequest(
        "NicInUse",
        fmt::format("Network Interface {} is used by existing resource {}. In order to delete the "
                    "network interface, it must be dissociated from the resource. To learn more, "
                    "see aka.ms/deletenic.",
                    nic.id, nic.virtualMachineId)));
  AsyncOperation op{.id = operationId,
                    .subscriptionId = nic.id.substr(15, nic.id.find('/', 15) - 15),
                    .location = nic.location,
                    .nicId = nic.id,
                    .due = clock_.now() + options_.asyncDelay,
                    .deletes = true};
  // Until it is gone the NIC keeps its addresses, and the SDN what was committed.
  op.previous = nic;
  nic.provisioningState = "Deleting";
  nic.pendingOperationId = operationId;
  startOperation(std::move(op));
  return NicDeleteResult{.found = true, .operationId = std::move(operationId)};
}

void MockState::startOperation(AsyncOperation op) {
  const std::string operationKey = toLower(op.id);
  auto& stored = operations_[operationKey];
  stored = std::move(op);
  ++revision_;
  if (options_.asyncDelay <= std::chrono::milliseconds::zero())
    complete(stored);
  else
    pendingOperations_.emplace(stored.due, operationKey);
}

void MockState::complete(AsyncOperation& op) {
  const std::string key = toLower(op.nicId);
  if (op.deletes) {
    eraseNic(key);
    op.status = OperationStatus::kSucceeded;
  } else if (op.willFail) {
    // The NIC goes back to what it was (gone, if the PUT created it), marked Failed.
    if (op.previous) {
      NetworkInterface restored = std::move(*op.previous);
      restored.provisioningState = "Failed";
      restored.etag = newEtag();
      for (auto& c : restored.ipConfigurations)
        c.etag = restored.etag;
      storeNic(key, std::move(restored));
    } else {
      eraseNic(key);
    }
    op.status = OperationStatus::kFailed;
    op.error = CloudError{.status = 200,
                          .code = "NetworkingInternalOperationError",  // [R]
                          .message =
                              "An unknown error occurred while processing the request "
                              "(injected by azure-vnet-mock)."};
  } else {
    if (auto it = nics_.find(key); it != nics_.end()) {
      it->second.provisioningState = "Succeeded";
      it->second.pendingOperationId.clear();
    }
    op.status = OperationStatus::kSucceeded;
  }
  op.previous.reset();
  ++revision_;
}

void MockState::storeNic(const std::string& key, NetworkInterface nic) {
  index_.removeNic(key);
  auto& stored = nics_[key];
  stored = std::move(nic);
  index_.addNic(key, stored);
}

void MockState::eraseNic(const std::string& key) {
  index_.removeNic(key);
  nics_.erase(key);
}

bool MockState::advance() {
  const auto now = clock_.now();
  std::vector<std::string> due;
  while (!pendingOperations_.empty() && pendingOperations_.begin()->first <= now) {
    due.push_back(pendingOperations_.begin()->second);
    pendingOperations_.erase(pendingOperations_.begin());
  }
  // In id order, as a walk over every operation would: a failing one draws a new etag.
  std::ranges::sort(due);
  bool changed = false;
  for (const auto& key : due) {
    auto it = operations_.find(key);
    if (it == operations_.end() || it->second.status != OperationStatus::kInProgress ||
        it->second.due > now)
      continue;
    complete(it->second);
    changed = true;
  }
  return changed;
}

std::expected<std::vector<ipam::Prefix>, CloudError> MockState::checkSubnetPrefixes(
    const json& texts, const VirtualNetwork& vnet, std::string_view where,
    std::string_view selfId) const {
  if (!texts.is_array() || texts.empty())
    return std::unexpected(invalidFormat(fmt::format(
        "{}: \"addressPrefix\" or \"addressPrefixes\" (non-empty) is required", where)));
  std::vector<ipam::Prefix> out;
  for (const json& text : texts) {
    auto p = ipam::Prefix::parse(text.is_string() ? text.get<std::string>() : "");
    if (!p) return std::unexpected(invalidFormat(fmt::format("{}: {}", where, p.error().message)));
    if (p->family() != ipam::Family::kV4 || p->length() > 29)
      return std::unexpected(badRequest(
          "InvalidAddressPrefixFormat",  // [R]
          fmt::format("{}: {} is not an IPv4 prefix of length /29 or shorter (Azure's smallest; "
                      "the mock models IPv4 only)",
                      where, p->toString())));
    if (std::ranges::none_of(vnet.addressSpace, [&](const auto& a) { return a.contains(*p); }))
      return std::unexpected(badRequest(
          "NetcfgSubnetRangeOutsideVnet",  // [R]
          fmt::format("{}: {} is outside the address space of virtual network {} ({})", where,
                      p->toString(), vnet.name, ipam::toString(vnet.addressSpace))));
    if (const auto twice =
            std::ranges::find_if(out, [&](const ipam::Prefix& q) { return q.overlaps(*p); });
        twice != out.end())
      return std::unexpected(badRequest("NetcfgSubnetRangesOverlap",  // [R]
                                        fmt::format("{}: {} overlaps {} of the same subnet", where,
                                                    p->toString(), twice->toString())));
    for (const auto& otherId : vnet.subnetIds) {
      if (iequals(otherId, selfId)) continue;
      const Subnet* other = findSubnet(otherId);
      if (other == nullptr) continue;
      for (const ipam::Prefix& q : other->prefixes) {
        if (q.overlaps(*p))
          return std::unexpected(badRequest("NetcfgSubnetRangesOverlap",  // [R]
                                            fmt::format("{}: {} overlaps subnet {} ({})", where,
                                                        p->toString(), other->name, q.toString())));
      }
    }
    out.push_back(*p);
  }
  return out;
}

std::expected<const Subnet*, CloudError> MockState::setSubnetPrefixes(std::string_view subnetId,
                                                                      const json& body) {
  const auto found = subnets_.find(toLower(subnetId));
  if (found == subnets_.end())
    return std::unexpected(CloudError{.status = 404,
                                      .code = "NotFound",  // [R]
                                      .message = fmt::format("Resource {} not found.", subnetId)});
  Subnet& subnet = found->second;
  const VirtualNetwork* vnet = findVirtualNetwork(subnet.vnetId);
  if (vnet == nullptr)
    return std::unexpected(CloudError{.status = 404, .code = "NotFound", .message = "no VNET"});
  if (!body.is_object() || !body.contains("properties") || !body["properties"].is_object())
    return std::unexpected(invalidFormat("the subnet body needs a \"properties\" object"));
  const json& props = body["properties"];
  json texts = props.contains("addressPrefixes") ? props["addressPrefixes"] : json::array();
  if (props.contains("addressPrefix")) texts = json::array({props["addressPrefix"]});
  auto prefixes = checkSubnetPrefixes(texts, *vnet, "properties", subnet.id);
  if (!prefixes) return std::unexpected(prefixes.error());
  // A prefix goes only while nothing but Azure's own addresses is held in it: check every one
  // before dropping any.
  const std::string key = toLower(subnet.id);
  for (const ipam::Prefix& old : subnet.prefixes) {
    if (std::ranges::find(*prefixes, old) != prefixes->end()) continue;
    if (!index_.onlyReservedIn(key, old))
      return std::unexpected(badRequest(
          "InUseSubnetCannotBeUpdated",  // [R]
          fmt::format("Subnet {} is in use: an ipConfiguration holds an address in {}, which "
                      "the update would remove.",
                      subnet.name, old.toString())));
  }
  for (const ipam::Prefix& old : subnet.prefixes) {
    if (std::ranges::find(*prefixes, old) == prefixes->end()) index_.removeSubnetPrefix(key, old);
  }
  for (const ipam::Prefix& p : *prefixes) {
    if (std::ranges::find(subnet.prefixes, p) == subnet.prefixes.end())
      index_.addSubnetPrefix(subnet, p);
  }
  subnet.prefixes = std::move(*prefixes);
  return &subnet;
}

std::expected<void, std::string> MockState::checkIndexes() const {
  AddressIndex rebuilt;
  for (const auto& [_, subnet] : subnets_)
    rebuilt.addSubnet(subnet);
  for (const auto& [key, nic] : nics_) {
    if (key != toLower(nic.id))
      return std::unexpected(fmt::format("NIC {} is stored under key {}", nic.id, key));
    rebuilt.addNic(key, nic);
  }
  using Row = std::tuple<ipam::U128, ipam::U128, std::string, bool, std::string, std::size_t>;
  const auto rows = [](const AddressIndex& index) {
    std::vector<Row> out;
    for (const auto* h : index.all())
      out.emplace_back(h->first, h->last, h->owner, h->reserved, h->nicKey, h->configIndex);
    std::ranges::sort(out);
    return out;
  };
  const auto want = rows(rebuilt);
  const auto have = rows(index_);
  if (want.size() != have.size())
    return std::unexpected(
        fmt::format("the address index holds {} intervals; the NICs and "
                    "subnets hold {}",
                    have.size(), want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] != have[i])
      return std::unexpected(fmt::format("the address index has {} where the NICs have {}",
                                         std::get<2>(have[i]), std::get<2>(want[i])));
  }
  std::set<std::pair<base::Clock::TimePoint, std::string>> running;
  for (const auto& [key, op] : operations_) {
    if (op.status == OperationStatus::kInProgress) running.emplace(op.due, key);
  }
  if (running != pendingOperations_)
    return std::unexpected(fmt::format("{} operations are InProgress but {} are queued",
                                       running.size(), pendingOperations_.size()));
  return {};
}

Routes MockState::routes() const {
  Routes out;
  const auto addFrom = [&](const NetworkInterface& nic) {
    const auto* primary = nic.primaryConfiguration();
    if (primary == nullptr) return;
    for (const auto& c : nic.ipConfigurations) {
      if (c.prefix) out[*c.prefix] = primary->address;
    }
  };
  for (const auto& [_, nic] : nics_) {
    if (nic.pendingOperationId.empty()) {
      addFrom(nic);
      continue;
    }
    // While a PUT runs, the fabric still routes what was committed before it.
    const auto* op = findOperation(nic.pendingOperationId);
    if (op != nullptr && op->previous) addFrom(*op->previous);
  }
  return out;
}

// ---- topology / state documents ----

namespace {

using LoadError = std::string;

std::expected<std::string, LoadError> stringField(const json& obj, std::string_view field,
                                                  std::string_view where,
                                                  std::optional<std::string> fallback = {}) {
  const std::string f(field);
  if (!obj.contains(f) || obj[f].is_null()) {
    if (fallback) return *fallback;
    return std::unexpected(fmt::format("{}: \"{}\" is required", where, field));
  }
  if (!obj[f].is_string() || obj[f].get<std::string>().empty())
    return std::unexpected(fmt::format("{}: \"{}\" must be a non-empty string", where, field));
  return obj[f].get<std::string>();
}

// Where a resource lives: the id of its resource group, and its location.
struct Place {
  std::string rgId;
  std::string location;
};

// The scale set an entry names ("virtualMachineScaleSet"), and for a uniform one the id of
// its VM ("instanceId"), under which that VM's NICs live. Empty strings when it names none.
struct Member {
  std::string scaleSetId;
  std::string instanceId;
  std::string vmId;
};

}  // namespace

// Reads a topology or state document into `fresh`, one section after the other: each section
// may name what the ones before it hold. The first error ends it.
class MockState::Loader {
 public:
  Loader(const json& doc, MockState& fresh) : doc_(doc), fresh_(fresh) {}

  // Reads the whole document, or stops at its first error.
  std::expected<void, LoadError> run();

 private:
  // A member function reading one entry of a list, given its place in the document.
  using EntryLoader = std::expected<void, LoadError> (Loader::*)(const json& entry,
                                                                 const std::string& where);

  std::expected<void, LoadError> readDefaults();
  std::expected<Place, LoadError> placeOf(const json& e, std::string_view where);
  std::expected<json, LoadError> listOf(std::string_view field) const;
  std::expected<void, LoadError> forEachEntry(std::string_view field, EntryLoader load);
  std::expected<void, LoadError> loadResourceGroups();
  std::expected<void, LoadError> loadVirtualNetwork(const json& v, const std::string& where);
  std::expected<void, LoadError> loadSubnets(const json& v, const std::string& where,
                                             VirtualNetwork& vnet);
  void indexSubnetNames();
  std::expected<std::string, LoadError> subnetRef(const std::string& ref,
                                                  std::string_view where) const;
  std::expected<void, LoadError> loadScaleSet(const json& v, const std::string& where);
  std::expected<Member, LoadError> memberOf(const json& e, const Place& place,
                                            std::string_view where) const;
  std::expected<void, LoadError> loadNic(const json& n, const std::string& where);
  std::expected<std::vector<RequestedConfig>, LoadError> requestedConfigs(
      const json& n, const std::string& where) const;
  std::expected<void, LoadError> loadVirtualMachine(const json& v, const std::string& where);
  std::expected<void, LoadError> attachNics(const json& v, const std::string& where,
                                            const Place& place, VirtualMachine& vm);
  std::expected<void, LoadError> loadOperations();
  void finishUpdates();

  const json& doc_;
  MockState& fresh_;
  // The document's subscriptionId, resourceGroup and location: every resource's defaults.
  std::string defSub_;
  std::string defRg_;
  std::string defLoc_;
  // (lower-cased VNET name, lower-cased subnet name) -> subnet id.
  std::map<std::pair<std::string, std::string>, std::string> subnetsByName_;
};

std::expected<void, LoadError> MockState::Loader::run() {
  if (auto ok = readDefaults(); !ok) return ok;
  if (auto ok = loadResourceGroups(); !ok) return ok;
  if (auto ok = forEachEntry("virtualNetworks", &Loader::loadVirtualNetwork); !ok) return ok;
  indexSubnetNames();
  // Scale sets first: NICs and VMs name theirs.
  if (auto ok = forEachEntry("virtualMachineScaleSets", &Loader::loadScaleSet); !ok) return ok;
  if (auto ok = forEachEntry("networkInterfaces", &Loader::loadNic); !ok) return ok;
  if (auto ok = forEachEntry("virtualMachines", &Loader::loadVirtualMachine); !ok) return ok;
  if (auto ok = loadOperations(); !ok) return ok;
  finishUpdates();
  return {};
}

// The document's defaults; its own resource group exists.
std::expected<void, LoadError> MockState::Loader::readDefaults() {
  const auto defSub = stringField(doc_, "subscriptionId", "topology");
  if (!defSub) return std::unexpected(defSub.error());
  const auto defRg = stringField(doc_, "resourceGroup", "topology");
  if (!defRg) return std::unexpected(defRg.error());
  const auto defLoc = stringField(doc_, "location", "topology");
  if (!defLoc) return std::unexpected(defLoc.error());
  defSub_ = *defSub;
  defRg_ = *defRg;
  defLoc_ = *defLoc;
  if (!placeOf(doc_, "topology")) return std::unexpected("topology: bad defaults");
  return {};
}

// Where a resource lives: its own subscriptionId/resourceGroup/location or the document's.
// Its resource group exists from then on.
std::expected<Place, LoadError> MockState::Loader::placeOf(const json& e, std::string_view where) {
  auto sub = stringField(e, "subscriptionId", where, defSub_);
  auto rg = stringField(e, "resourceGroup", where, defRg_);
  auto loc = stringField(e, "location", where, defLoc_);
  if (!sub || !rg || !loc)
    return std::unexpected(!sub ? sub.error() : !rg ? rg.error() : loc.error());
  const std::string id = resourceGroupId(*sub, *rg);
  fresh_.resourceGroups_.emplace(toLower(id), id);
  return Place{id, *loc};
}

// The document's list `field`; empty when it has none.
std::expected<json, LoadError> MockState::Loader::listOf(std::string_view field) const {
  const std::string f(field);
  if (!doc_.contains(f)) return json::array();
  if (!doc_[f].is_array()) return std::unexpected(fmt::format("\"{}\" must be an array", f));
  return doc_[f];
}

// Reads each entry of the list `field` with `load`, which names it as "field[i]".
std::expected<void, LoadError> MockState::Loader::forEachEntry(std::string_view field,
                                                               EntryLoader load) {
  auto list = listOf(field);
  if (!list) return std::unexpected(list.error());
  for (std::size_t i = 0; i < list->size(); ++i) {
    if (auto ok = (this->*load)((*list)[i], fmt::format("{}[{}]", field, i)); !ok) return ok;
  }
  return {};
}

// "resourceGroups": more resource groups of the document's subscription, by name.
std::expected<void, LoadError> MockState::Loader::loadResourceGroups() {
  auto rgs = listOf("resourceGroups");
  if (!rgs) return std::unexpected(rgs.error());
  for (const auto& rg : *rgs) {
    if (!rg.is_string()) return std::unexpected("\"resourceGroups\" must list names");
    if (!placeOf(json{{"resourceGroup", rg}}, "resourceGroups"))
      return std::unexpected("bad resource group");
  }
  return {};
}

// One entry of "virtualNetworks": its address space and its subnets.
std::expected<void, LoadError> MockState::Loader::loadVirtualNetwork(const json& v,
                                                                     const std::string& where) {
  if (!v.is_object()) return std::unexpected(where + ": must be an object");
  auto name = stringField(v, "name", where);
  if (!name) return std::unexpected(name.error());
  auto place = placeOf(v, where);
  if (!place) return std::unexpected(place.error());
  VirtualNetwork vnet{
      .id = fmt::format("{}/providers/Microsoft.Network/virtualNetworks/{}", place->rgId, *name),
      .name = *name,
      .location = place->location,
      .etag = stringField(v, "etag", where, fresh_.newEtag()).value_or(""),
      .resourceGuid = stringField(v, "resourceGuid", where, fresh_.random_.guid()).value_or("")};
  if (!v.contains("addressPrefixes") || !v["addressPrefixes"].is_array() ||
      v["addressPrefixes"].empty())
    return std::unexpected(where + ": \"addressPrefixes\" must be a non-empty array");
  for (const auto& text : v["addressPrefixes"]) {
    auto p = ipam::Prefix::parse(text.is_string() ? text.get<std::string>() : "");
    if (!p || p->family() != ipam::Family::kV4)
      return std::unexpected(fmt::format("{}: addressPrefixes: {}", where,
                                         p ? "the mock models IPv4 only" : p.error().message));
    vnet.addressSpace.push_back(*p);
  }
  if (auto ok = loadSubnets(v, where, vnet); !ok) return ok;
  if (!fresh_.vnets_.emplace(toLower(vnet.id), vnet).second)
    return std::unexpected(fmt::format("{}: duplicate virtual network {}", where, *name));
  return {};
}

// The "subnets" of the VNET entry `v`, added to `vnet` and the index.
std::expected<void, LoadError> MockState::Loader::loadSubnets(const json& v,
                                                              const std::string& where,
                                                              VirtualNetwork& vnet) {
  if (!v.contains("subnets") || !v["subnets"].is_array())
    return std::unexpected(where + ": \"subnets\" must be an array");
  for (std::size_t j = 0; j < v["subnets"].size(); ++j) {
    const json& s = v["subnets"][j];
    const std::string swhere = fmt::format("{}.subnets[{}]", where, j);
    auto sname = stringField(s, "name", swhere);
    if (!sname) return std::unexpected(sname.error());
    json texts = s.contains("addressPrefixes") ? s["addressPrefixes"] : json::array();
    if (s.contains("addressPrefix")) texts = json::array({s["addressPrefix"]});
    auto prefixes = fresh_.checkSubnetPrefixes(texts, vnet, swhere, "");
    if (!prefixes) return std::unexpected(prefixes.error().message);
    Subnet subnet{.id = fmt::format("{}/subnets/{}", vnet.id, *sname),
                  .name = *sname,
                  .vnetId = vnet.id,
                  .prefixes = std::move(*prefixes)};
    if (!fresh_.subnets_.emplace(toLower(subnet.id), subnet).second)
      return std::unexpected(fmt::format("{}: duplicate subnet {}", swhere, *sname));
    fresh_.index_.addSubnet(subnet);
    vnet.subnetIds.push_back(subnet.id);
  }
  return {};
}

// Every subnet by its VNET's name and its own, for subnetRef.
void MockState::Loader::indexSubnetNames() {
  for (const auto& [_, s] : fresh_.subnets_) {
    subnetsByName_.emplace(
        std::pair{toLower(fresh_.vnets_.at(toLower(s.vnetId)).name), toLower(s.name)}, s.id);
  }
}

// The id of the subnet `ref` names.
// "vnet/subnet" names the subnet of the one virtual network of that name (the first by id
// if several have it); a full id also works.
std::expected<std::string, LoadError> MockState::Loader::subnetRef(const std::string& ref,
                                                                   std::string_view where) const {
  if (ref.starts_with("/")) {
    if (const auto* s = fresh_.findSubnet(ref)) return s->id;
  } else if (auto slash = ref.find('/'); slash != std::string::npos) {
    auto it = subnetsByName_.find({toLower(ref.substr(0, slash)), toLower(ref.substr(slash + 1))});
    if (it != subnetsByName_.end()) return it->second;
  }
  return std::unexpected(fmt::format(
      "{}: subnet \"{}\" is not in the topology (write vnet/subnet or a subnet id)", where, ref));
}

// One entry of "virtualMachineScaleSets".
std::expected<void, LoadError> MockState::Loader::loadScaleSet(const json& v,
                                                               const std::string& where) {
  if (!v.is_object()) return std::unexpected(where + ": must be an object");
  auto name = stringField(v, "name", where);
  if (!name) return std::unexpected(name.error());
  auto place = placeOf(v, where);
  if (!place) return std::unexpected(place.error());
  // OrchestrationMode (virtualMachineScaleSet.json): "Uniform" or "Flexible".
  auto mode = stringField(v, "orchestrationMode", where, "Uniform");
  if (!mode) return std::unexpected(mode.error());
  if (*mode != "Uniform" && *mode != "Flexible")
    return std::unexpected(fmt::format(
        "{}: orchestrationMode must be \"Uniform\" or \"Flexible\", got \"{}\"", where, *mode));
  VirtualMachineScaleSet ss{
      .id = fmt::format("{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}", place->rgId,
                        *name),
      .name = *name,
      .location = place->location,
      .orchestrationMode = *mode};
  if (!fresh_.scaleSets_.emplace(toLower(ss.id), ss).second)
    return std::unexpected(fmt::format("{}: duplicate scale set {}", where, *name));
  return {};
}

// The scale set, instance and VM the entry `e` (a NIC or a VM at `place`) names; see Member.
std::expected<Member, LoadError> MockState::Loader::memberOf(const json& e, const Place& place,
                                                             std::string_view where) const {
  auto set = stringField(e, "virtualMachineScaleSet", where, "");
  auto instance = stringField(e, "instanceId", where, "");
  if (!set || !instance) return std::unexpected(!set ? set.error() : instance.error());
  if (set->empty()) {
    if (!instance->empty())
      return std::unexpected(fmt::format("{}: instanceId needs a virtualMachineScaleSet", where));
    return Member{};
  }
  const std::string id =
      fmt::format("{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}", place.rgId, *set);
  const auto it = fresh_.scaleSets_.find(toLower(id));
  if (it == fresh_.scaleSets_.end())
    return std::unexpected(fmt::format("{}: scale set \"{}\" is not in the topology", where, *set));
  const bool uniform = it->second.orchestrationMode == "Uniform";
  if (uniform == instance->empty())
    return std::unexpected(fmt::format("{}: a VM of a {} scale set {} instanceId", where,
                                       it->second.orchestrationMode,
                                       uniform ? "needs an" : "has no"));
  Member m{.scaleSetId = it->second.id, .instanceId = *instance};
  if (uniform) m.vmId = fmt::format("{}/virtualMachines/{}", it->second.id, *instance);
  return m;
}

// One entry of "networkInterfaces": its configurations pass the rules a NIC PUT does.
std::expected<void, LoadError> MockState::Loader::loadNic(const json& n, const std::string& where) {
  if (!n.is_object()) return std::unexpected(where + ": must be an object");
  // A NIC saved while its DELETE ran is gone: operations running at save time finished with
  // it (see "operations" below).
  if (n.value("provisioningState", json()) == "Deleting") return {};
  auto name = stringField(n, "name", where);
  if (!name) return std::unexpected(name.error());
  auto place = placeOf(n, where);
  if (!place) return std::unexpected(place.error());
  auto member = memberOf(n, *place, where);
  if (!member) return std::unexpected(member.error());
  if (!member->scaleSetId.empty() && member->vmId.empty())
    return std::unexpected(where +
                           ": a flexible scale set's NICs are ordinary NICs; name only their VM's");
  // A uniform scale-set VM's NIC is a child of that VM.
  const std::string id =
      member->vmId.empty()
          ? fmt::format("{}/providers/Microsoft.Network/networkInterfaces/{}", place->rgId, *name)
          : fmt::format("{}/networkInterfaces/{}", member->vmId, *name);
  const auto requested = requestedConfigs(n, where);
  if (!requested) return std::unexpected(requested.error());
  auto configs = resolveConfigurations(id, nullptr, *requested, fresh_, fresh_.options_);
  if (!configs) return std::unexpected(fmt::format("{}: {}", where, configs.error().message));
  NetworkInterface nic{
      .id = id,
      .name = *name,
      .location = place->location,
      .etag = stringField(n, "etag", where, fresh_.newEtag()).value_or(""),
      .resourceGuid = stringField(n, "resourceGuid", where, fresh_.random_.guid()).value_or(""),
      .provisioningState = stringField(n, "provisioningState", where, "Succeeded").value_or("")};
  const std::uint64_t mac = fresh_.random_.next();
  nic.macAddress = stringField(n, "macAddress", where,
                               fmt::format("00-0D-3A-{:02X}-{:02X}-{:02X}", (mac >> 16) & 0xff,
                                           (mac >> 8) & 0xff, mac & 0xff))
                       .value_or("");
  nic.enableIPForwarding = n.value("enableIPForwarding", false);
  nic.enableAcceleratedNetworking = n.value("enableAcceleratedNetworking", false);
  if (n.contains("tags") && n["tags"].is_object()) nic.tags = n["tags"];
  nic.ipConfigurations = std::move(*configs);
  // A state document records which configurations were Dynamic; a topology's are Dynamic,
  // as Azure makes a primary configuration by default.
  for (std::size_t j = 0; j < nic.ipConfigurations.size(); ++j) {
    nic.ipConfigurations[j].etag = nic.etag;
    nic.ipConfigurations[j].dynamic =
        n.contains("ipConfigurations") ? n["ipConfigurations"][j].value("dynamic", true) : true;
  }
  const std::string key = toLower(id);
  if (fresh_.nics_.contains(key))
    return std::unexpected(fmt::format("{}: duplicate network interface {}", where, *name));
  fresh_.storeNic(key, std::move(nic));
  return {};
}

// What the NIC entry `n` asks for, as a PUT would: its "ipConfigurations" (a state document's),
// or one primary configuration from "subnet" and "primaryIP" (a topology's). All Static.
std::expected<std::vector<RequestedConfig>, LoadError> MockState::Loader::requestedConfigs(
    const json& n, const std::string& where) const {
  std::vector<RequestedConfig> requested;
  if (n.contains("ipConfigurations")) {
    if (!n["ipConfigurations"].is_array())
      return std::unexpected(where + ": \"ipConfigurations\" must be an array");
    for (std::size_t j = 0; j < n["ipConfigurations"].size(); ++j) {
      const json& c = n["ipConfigurations"][j];
      const std::string cwhere = fmt::format("{}.ipConfigurations[{}]", where, j);
      auto cname = stringField(c, "name", cwhere);
      auto subnet = stringField(c, "subnet", cwhere);
      auto address = stringField(c, "privateIPAddress", cwhere);
      if (!cname || !subnet || !address)
        return std::unexpected(!cname ? cname.error() : !subnet ? subnet.error() : address.error());
      auto subnetId = subnetRef(*subnet, cwhere);
      if (!subnetId) return std::unexpected(subnetId.error());
      RequestedConfig r{.name = *cname,
                        .primary = c.value("primary", false),
                        .dynamic = false,
                        .subnetId = *subnetId,
                        .address = *address};
      if (auto slash = address->find('/'); slash != std::string::npos)
        r.prefixLength = std::atoi(address->c_str() + slash + 1);
      requested.push_back(std::move(r));
    }
  } else {
    auto subnet = stringField(n, "subnet", where);
    auto primaryIp = stringField(n, "primaryIP", where);
    if (!subnet || !primaryIp) return std::unexpected(!subnet ? subnet.error() : primaryIp.error());
    auto subnetId = subnetRef(*subnet, where);
    if (!subnetId) return std::unexpected(subnetId.error());
    requested.push_back(RequestedConfig{.name = "ipconfig1",
                                        .primary = true,
                                        .dynamic = false,
                                        .subnetId = *subnetId,
                                        .address = *primaryIp});
  }
  return requested;
}

// One entry of "virtualMachines": it takes its NICs, which must be loaded and on no other VM.
std::expected<void, LoadError> MockState::Loader::loadVirtualMachine(const json& v,
                                                                     const std::string& where) {
  if (!v.is_object()) return std::unexpected(where + ": must be an object");
  auto place = placeOf(v, where);
  if (!place) return std::unexpected(place.error());
  auto member = memberOf(v, *place, where);
  if (!member) return std::unexpected(member.error());
  // A uniform scale set's VM is named {scaleSet}_{instanceId}, as Azure names them.
  const std::string defaultName =
      member->vmId.empty()
          ? std::string()
          : fmt::format("{}_{}", member->scaleSetId.substr(member->scaleSetId.rfind('/') + 1),
                        member->instanceId);
  auto name = stringField(v, "name", where, defaultName);
  if (!name || name->empty())
    return std::unexpected(name ? where + ": \"name\" is missing" : name.error());
  VirtualMachine vm{.id = member->vmId.empty()
                              ? fmt::format("{}/providers/Microsoft.Compute/virtualMachines/{}",
                                            place->rgId, *name)
                              : member->vmId,
                    .name = *name,
                    .location = place->location,
                    .vmId = stringField(v, "vmId", where, fresh_.random_.guid()).value_or(""),
                    .scaleSetId = member->scaleSetId,
                    .instanceId = member->instanceId};
  if (auto ok = attachNics(v, where, *place, vm); !ok) return ok;
  if (!fresh_.vms_.emplace(toLower(vm.id), vm).second)
    return std::unexpected(fmt::format("{}: duplicate virtual machine {}", where, *name));
  return {};
}

// The "networkInterfaces" of the VM entry `v`: each NIC named is put on `vm`.
std::expected<void, LoadError> MockState::Loader::attachNics(const json& v,
                                                             const std::string& where,
                                                             const Place& place,
                                                             VirtualMachine& vm) {
  if (!v.contains("networkInterfaces") || !v["networkInterfaces"].is_array())
    return std::unexpected(where + ": \"networkInterfaces\" must be an array of NIC names");
  for (const auto& ref : v["networkInterfaces"]) {
    const std::string text = ref.is_string() ? ref.get<std::string>() : "";
    const std::string nicId =
        text.starts_with("/") ? text
        : vm.instanceId.empty()
            ? fmt::format("{}/providers/Microsoft.Network/networkInterfaces/{}", place.rgId, text)
            : fmt::format("{}/networkInterfaces/{}", vm.id, text);
    auto it = fresh_.nics_.find(toLower(nicId));
    if (it == fresh_.nics_.end())
      return std::unexpected(
          fmt::format("{}: network interface \"{}\" is not in the topology", where, text));
    if (!it->second.virtualMachineId.empty())
      return std::unexpected(fmt::format("{}: network interface \"{}\" is already on {}", where,
                                         text, it->second.virtualMachineId));
    it->second.virtualMachineId = vm.id;
    it->second.primaryOnVm = vm.nicIds.empty();  // the VM's first NIC is its primary
    vm.nicIds.push_back(it->second.id);
  }
  return {};
}

// "operations": a state document's finished operations.
std::expected<void, LoadError> MockState::Loader::loadOperations() {
  auto ops = listOf("operations");
  if (!ops) return std::unexpected(ops.error());
  for (const auto& o : *ops) {
    if (!o.is_object() || !o.contains("id") || !o["id"].is_string())
      return std::unexpected("operations: each needs an \"id\"");
    // Operations that were running when the state was saved finished with it: the NICs were
    // saved as they were meant to become (a NIC being deleted was not loaded at all).
    AsyncOperation op{.id = o["id"].get<std::string>(),
                      .subscriptionId = o.value("subscriptionId", ""),
                      .location = o.value("location", ""),
                      .nicId = o.value("nicId", ""),
                      .status = o.value("status", "") == "Failed" ? OperationStatus::kFailed
                                                                  : OperationStatus::kSucceeded,
                      .deletes = o.value("deletes", false)};
    if (op.status == OperationStatus::kFailed && o.contains("error") && o["error"].is_object())
      op.error = CloudError{.status = 200,
                            .code = o["error"].value("code", ""),
                            .message = o["error"].value("message", "")};
    fresh_.operations_[toLower(op.id)] = std::move(op);
  }
  return {};
}

// A NIC saved while its PUT ran was saved as the PUT would leave it: Succeeded.
void MockState::Loader::finishUpdates() {
  for (auto& [_, nic] : fresh_.nics_) {
    if (nic.provisioningState == "Updating") nic.provisioningState = "Succeeded";
  }
}

std::expected<void, std::string> MockState::load(const json& doc) {
  if (!doc.is_object()) return std::unexpected("the topology must be a JSON object");
  MockState fresh(options_, clock_, random_);
  // The loader checks what it reads field by field; an optional field of the wrong type (read
  // with a default) ends up here, refused like any other, rather than ending the process.
  try {
    if (auto loaded = Loader(doc, fresh).run(); !loaded) return std::unexpected(loaded.error());
  } catch (const json::exception& e) {
    return std::unexpected(fmt::format("a field has the wrong type: {}", e.what()));
  }
  vnets_ = std::move(fresh.vnets_);
  subnets_ = std::move(fresh.subnets_);
  vms_ = std::move(fresh.vms_);
  scaleSets_ = std::move(fresh.scaleSets_);
  nics_ = std::move(fresh.nics_);
  operations_ = std::move(fresh.operations_);
  resourceGroups_ = std::move(fresh.resourceGroups_);
  index_ = std::move(fresh.index_);
  pendingOperations_ = std::move(fresh.pendingOperations_);
  ++revision_;
  return {};
}

json MockState::toJson() const {
  // Every resource names its own subscription and group, so the defaults below only need to be
  // present; they are taken from the first resource group.
  std::string sub = "00000000-0000-0000-0000-000000000000", rg = "default", location = "eastus";
  const auto splitRg = [](std::string_view id) {
    // /subscriptions/{sub}/resourceGroups/{rg}/...
    std::vector<std::string> parts;
    std::size_t pos = 1;
    while (pos <= id.size()) {
      auto next = id.find('/', pos);
      if (next == std::string_view::npos) next = id.size();
      parts.emplace_back(id.substr(pos, next - pos));
      pos = next + 1;
    }
    return std::pair{parts.size() > 1 ? parts[1] : "", parts.size() > 3 ? parts[3] : ""};
  };
  if (!resourceGroups_.empty()) std::tie(sub, rg) = splitRg(resourceGroups_.begin()->second);
  if (!vnets_.empty()) location = vnets_.begin()->second.location;
  json doc = {{"subscriptionId", sub}, {"resourceGroup", rg}, {"location", location}};
  json rgs = json::array();
  for (const auto& [_, id] : resourceGroups_) {
    auto [s, r] = splitRg(id);
    if (toLower(s) == toLower(sub)) rgs.push_back(r);
  }
  doc["resourceGroups"] = rgs;
  json vnets = json::array();
  for (const auto& [_, v] : vnets_) {
    auto [s, r] = splitRg(v.id);
    json subnets = json::array();
    for (const auto& id : v.subnetIds) {
      const auto& s2 = subnets_.at(toLower(id));
      json prefixes = json::array();
      for (const auto& p : s2.prefixes)
        prefixes.push_back(p.toString());
      subnets.push_back({{"name", s2.name}, {"addressPrefixes", std::move(prefixes)}});
    }
    json prefixes = json::array();
    for (const auto& p : v.addressSpace)
      prefixes.push_back(p.toString());
    vnets.push_back({{"name", v.name},
                     {"subscriptionId", s},
                     {"resourceGroup", r},
                     {"location", v.location},
                     {"etag", v.etag},
                     {"resourceGuid", v.resourceGuid},
                     {"addressPrefixes", prefixes},
                     {"subnets", subnets}});
  }
  doc["virtualNetworks"] = vnets;
  json nics = json::array();
  for (const auto& [_, n] : nics_) {
    auto [s, r] = splitRg(n.id);
    json configs = json::array();
    for (const auto& c : n.ipConfigurations) {
      configs.push_back(
          {{"name", c.name},
           {"primary", c.primary},
           {"dynamic", c.dynamic},
           {"subnet", c.subnetId},
           {"privateIPAddress", c.prefix ? c.prefix->toString() : c.address.toString()}});
    }
    nics.push_back({{"name", n.name},
                    {"subscriptionId", s},
                    {"resourceGroup", r},
                    {"location", n.location},
                    {"etag", n.etag},
                    {"resourceGuid", n.resourceGuid},
                    {"macAddress", n.macAddress},
                    {"provisioningState", n.provisioningState},
                    {"pendingOperationId", n.pendingOperationId},
                    {"enableIPForwarding", n.enableIPForwarding},
                    {"enableAcceleratedNetworking", n.enableAcceleratedNetworking},
                    {"tags", n.tags},
                    {"ipConfigurations", configs}});
    // A uniform scale-set VM's NIC is saved under that VM, where load() puts it back.
    if (const auto* vm = findVirtualMachine(n.virtualMachineId); vm && !vm->instanceId.empty()) {
      nics.back()["virtualMachineScaleSet"] = vm->scaleSetId.substr(vm->scaleSetId.rfind('/') + 1);
      nics.back()["instanceId"] = vm->instanceId;
    }
  }
  doc["networkInterfaces"] = nics;
  json scaleSets = json::array();
  for (const auto& [_, ss] : scaleSets_) {
    auto [s, r] = splitRg(ss.id);
    scaleSets.push_back({{"name", ss.name},
                         {"subscriptionId", s},
                         {"resourceGroup", r},
                         {"location", ss.location},
                         {"orchestrationMode", ss.orchestrationMode}});
  }
  doc["virtualMachineScaleSets"] = scaleSets;
  json vms = json::array();
  for (const auto& [_, v] : vms_) {
    auto [s, r] = splitRg(v.id);
    json vm = {{"name", v.name},         {"subscriptionId", s}, {"resourceGroup", r},
               {"location", v.location}, {"vmId", v.vmId},      {"networkInterfaces", v.nicIds}};
    if (!v.scaleSetId.empty())
      vm["virtualMachineScaleSet"] = v.scaleSetId.substr(v.scaleSetId.rfind('/') + 1);
    if (!v.instanceId.empty()) vm["instanceId"] = v.instanceId;
    vms.push_back(std::move(vm));
  }
  doc["virtualMachines"] = vms;
  json ops = json::array();
  for (const auto& [_, o] : operations_) {
    json op = {{"id", o.id},
               {"subscriptionId", o.subscriptionId},
               {"location", o.location},
               {"nicId", o.nicId},
               {"status", toString(o.status)}};
    if (o.deletes) op["deletes"] = true;
    if (o.error) op["error"] = {{"code", o.error->code}, {"message", o.error->message}};
    ops.push_back(std::move(op));
  }
  doc["operations"] = ops;
  return doc;
}

std::string RandomSource::guid() {
  const std::uint64_t a = next();
  const std::uint64_t b = next();
  return fmt::format("{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}", a >> 32, (a >> 16) & 0xffff,
                     a & 0xfff, 8 | (b >> 62), (b >> 48) & 0xfff, b & 0xffffffffffffULL);
}

}  // namespace vnetipam::azuremock
