// The wire facts below come from the published Microsoft.Network API and measurements. Where a
// fact is unverified, the mock picks the stricter behaviour: it requires a bearer token on every
// ARM call, requires Content-Type: application/json on PUT, enforces If-Match on NIC PUT, and
// refuses api-versions older than 2024-03-01 (the first with privateIPAddressPrefixLength).
#include "azure-mock/arm_handler.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "azure-mock/authorization.h"
#include "azure-mock/identity.h"
#include "azure-mock/wire.h"

namespace vnetipam::azuremock {

using nlohmann::json;

namespace {

// Stable Microsoft.Network api-versions whose NIC ipConfiguration has privateIPAddressPrefixLength.
constexpr std::array kNetworkApiVersions = {"2024-03-01", "2024-05-01", "2024-07-01", "2024-10-01",
                                            "2025-01-01", "2025-03-01", "2025-05-01", "2025-07-01"};
// Microsoft.Compute stable versions: unverified; recent ones the Azure SDKs use.
constexpr std::array kComputeApiVersions = {"2023-03-01", "2023-07-01", "2023-09-01",
                                            "2024-03-01", "2024-07-01", "2024-11-01"};
// The scale-set NIC reads (NetworkInterfaces_GetVirtualMachineScaleSetNetworkInterface and
// _ListVirtualMachineScaleSetVMNetworkInterfaces) are published once, in
// specification/network/resource-manager/Microsoft.Network/stable/2018-10-01/
// vmssNetworkInterface.json of Azure/azure-rest-api-specs, whose api-version parameter is the
// enum ["2017-03-30"]; the REST reference calls them with 2018-10-01, the folder's version.
constexpr std::array kScaleSetNicApiVersions = {"2017-03-30", "2018-10-01"};

std::string resourceNotFound(std::string_view type, std::string_view name, std::string_view rg) {
  return fmt::format(
      "The Resource '{}/{}' under resource group '{}' was not found. For more "
      "details please go to https://aka.ms/ARMResourceNotFoundFix",
      type, name, rg);
}

// ---- rendering (the 2024-05-01 response shapes of NetworkInterface and VirtualMachine; a
// uniform scale-set VM's NIC in the 2018-10-01 one, scaleSetNicJson) ----

json ipConfigurationJson(const NetworkInterface& nic, const IpConfiguration& c) {
  json props = {{"provisioningState", nic.provisioningState},
                {"privateIPAllocationMethod", c.dynamic ? "Dynamic" : "Static"},
                {"subnet", {{"id", c.subnetId}}},
                {"primary", c.primary},
                {"privateIPAddressVersion", "IPv4"}};
  if (c.prefix) {
    props["privateIPAddress"] = c.prefix->toString();
    props["privateIPAddressPrefixLength"] = c.prefix->length();
  } else {
    props["privateIPAddress"] = c.address.toString();
  }
  return {{"name", c.name},
          {"id", fmt::format("{}/ipConfigurations/{}", nic.id, c.name)},
          {"etag", c.etag},
          {"type", "Microsoft.Network/networkInterfaces/ipConfigurations"},
          {"properties", std::move(props)}};
}

json nicJson(const NetworkInterface& nic) {
  json configs = json::array();
  for (const auto& c : nic.ipConfigurations)
    configs.push_back(ipConfigurationJson(nic, c));
  json props = {
      {"provisioningState", nic.provisioningState},
      {"resourceGuid", nic.resourceGuid},
      {"ipConfigurations", std::move(configs)},
      {"dnsSettings", {{"dnsServers", json::array()}, {"appliedDnsServers", json::array()}}},
      {"macAddress", nic.macAddress},
      {"enableAcceleratedNetworking", nic.enableAcceleratedNetworking},
      {"enableIPForwarding", nic.enableIPForwarding},
      {"nicType", "Standard"}};
  if (!nic.virtualMachineId.empty()) {
    props["virtualMachine"] = {{"id", nic.virtualMachineId}};
    props["primary"] = nic.primaryOnVm;
  }
  return {{"name", nic.name},
          {"id", nic.id},
          {"etag", nic.etag},
          {"type", "Microsoft.Network/networkInterfaces"},
          {"location", nic.location},
          {"tags", nic.tags},
          {"properties", std::move(props)}};
}

// A uniform scale-set VM's NIC as its reads answer it. The spec publishes those reads
// (NetworkInterfaces_GetVirtualMachineScaleSetNetworkInterface and
// _ListVirtualMachineScaleSetVMNetworkInterfaces) only in
// specification/network/resource-manager/Microsoft.Network/stable/2018-10-01/
// vmssNetworkInterface.json, whose answers are that folder's networkInterface.json definitions:
// a NetworkInterfacePropertiesFormat without nicType (nor any later field), and ipConfigurations
// (NetworkInterfaceIPConfiguration) without type and without privateIPAddressPrefixLength. So
// this is nicJson's NIC less those fields. A prefix configuration (a topology may give one)
// keeps its CIDR form in privateIPAddress, the only place that shape has for it [R].
json scaleSetNicJson(const NetworkInterface& nic) {
  json doc = nicJson(nic);
  json& props = doc["properties"];
  props.erase("nicType");
  for (json& config : props["ipConfigurations"]) {
    config.erase("type");
    config["properties"].erase("privateIPAddressPrefixLength");
  }
  return doc;
}

json subnetJson(const MockState& state, const Subnet& s) {
  json configs = json::array();
  for (const auto& id : state.ipConfigurationIdsInSubnet(s.id))
    configs.push_back({{"id", id}});
  const auto* vnet = state.findVirtualNetwork(s.vnetId);
  json props = {{"provisioningState", "Succeeded"},
                {"ipConfigurations", std::move(configs)},
                {"delegations", json::array()},
                {"privateEndpointNetworkPolicies", "Disabled"},
                {"privateLinkServiceNetworkPolicies", "Enabled"},
                {"purpose", ""}};
  // SubnetPropertiesFormat (virtualNetwork.json, 2024-05-01) has addressPrefix ("The address
  // prefix for the subnet.") and addressPrefixes ("List of address prefixes for the subnet."),
  // neither required: a subnet of one prefix is read with addressPrefix, one of several with
  // addressPrefixes [R] (the spec does not say which appears when; clients read both).
  if (s.prefixes.size() == 1) {
    props["addressPrefix"] = s.prefixes.front().toString();
  } else {
    json prefixes = json::array();
    for (const auto& p : s.prefixes)
      prefixes.push_back(p.toString());
    props["addressPrefixes"] = std::move(prefixes);
  }
  return {{"name", s.name},
          {"id", s.id},
          {"etag", vnet != nullptr ? vnet->etag : ""},
          {"type", "Microsoft.Network/virtualNetworks/subnets"},
          {"properties", std::move(props)}};
}

json vnetJson(const MockState& state, const VirtualNetwork& v) {
  json prefixes = json::array();
  for (const auto& p : v.addressSpace)
    prefixes.push_back(p.toString());
  json subnets = json::array();
  for (const auto& id : v.subnetIds) {
    if (const auto* s = state.findSubnet(id)) subnets.push_back(subnetJson(state, *s));
  }
  return {{"name", v.name},
          {"id", v.id},
          {"etag", v.etag},
          {"type", "Microsoft.Network/virtualNetworks"},
          {"location", v.location},
          {"properties",
           {{"provisioningState", "Succeeded"},
            {"resourceGuid", v.resourceGuid},
            {"addressSpace", {{"addressPrefixes", std::move(prefixes)}}},
            {"subnets", std::move(subnets)},
            {"virtualNetworkPeerings", json::array()},
            {"enableDdosProtection", false}}}};
}

json networkProfileJson(const VirtualMachine& vm) {
  json nics = json::array();
  for (std::size_t i = 0; i < vm.nicIds.size(); ++i)
    nics.push_back({{"id", vm.nicIds[i]}, {"properties", {{"primary", i == 0}}}});
  return {{"networkInterfaces", std::move(nics)}};
}

json vmJson(const VirtualMachine& vm) {
  json props = {{"vmId", vm.vmId},
                {"provisioningState", "Succeeded"},
                {"networkProfile", networkProfileJson(vm)}};
  // A flexible scale set's VM names its scale set (VirtualMachineProperties.
  // virtualMachineScaleSet, a SubResource, in virtualMachine.json).
  if (!vm.scaleSetId.empty()) props["virtualMachineScaleSet"] = {{"id", vm.scaleSetId}};
  return {{"name", vm.name},
          {"id", vm.id},
          {"type", "Microsoft.Compute/virtualMachines"},
          {"location", vm.location},
          {"properties", std::move(props)}};
}

// A uniform scale set's VM, as VirtualMachineScaleSetVM (virtualMachineScaleSet.json,
// 2023-09-01): its NICs in networkProfile, and the configuration they are made from in
// networkProfileConfiguration. That configuration's ipConfigurations
// (VirtualMachineScaleSetIPConfigurationProperties) have a subnet, primary and
// privateIPAddressVersion, and no address, allocation method or prefix length: the spec gives
// no way to ask for a prefix on a uniform scale-set VM's NIC.
json scaleSetVmJson(const MockState& state, const VirtualMachine& vm) {
  json configurations = json::array();
  for (std::size_t i = 0; i < vm.nicIds.size(); ++i) {
    const auto* nic = state.findNic(vm.nicIds[i]);
    if (nic == nullptr) continue;
    json ipConfigurations = json::array();
    for (const auto& c : nic->ipConfigurations) {
      const auto family = c.prefix ? c.prefix->family() : c.address.family();
      json props = {{"subnet", {{"id", c.subnetId}}},
                    {"primary", c.primary},
                    {"privateIPAddressVersion", family == ipam::Family::kV6 ? "IPv6" : "IPv4"}};
      ipConfigurations.push_back({{"name", c.name}, {"properties", std::move(props)}});
    }
    json props = {{"primary", i == 0},
                  {"enableAcceleratedNetworking", nic->enableAcceleratedNetworking},
                  {"enableIPForwarding", nic->enableIPForwarding},
                  {"ipConfigurations", std::move(ipConfigurations)}};
    configurations.push_back({{"name", nic->name}, {"properties", std::move(props)}});
  }
  json props = {{"latestModelApplied", true},
                {"vmId", vm.vmId},
                {"provisioningState", "Succeeded"},
                {"networkProfile", networkProfileJson(vm)},
                {"networkProfileConfiguration",
                 {{"networkInterfaceConfigurations", std::move(configurations)}}}};
  return {{"name", vm.name},
          {"id", vm.id},
          {"type", "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"},
          {"location", vm.location},
          {"instanceId", vm.instanceId},
          {"properties", std::move(props)}};
}

}  // namespace

std::string ArmResponse::header(std::string_view name) const { return findHeader(headers, name); }

json FaultOptions::toJson() const {
  return {{"throttleRate", throttleRate},
          {"retryAfterSeconds", retryAfterSeconds},
          {"errorRate", errorRate},
          {"latencyMs", latency.count()},
          {"asyncFailRate", asyncFailRate}};
}

std::expected<FaultOptions, std::string> FaultOptions::fromJson(const json& j, FaultOptions base) {
  if (!j.is_object()) return std::unexpected("faults must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (!value.is_number()) return std::unexpected(fmt::format("faults.{} must be a number", key));
    const double v = value.get<double>();
    const bool rate = key == "throttleRate" || key == "errorRate" || key == "asyncFailRate";
    if (rate && !(v >= 0 && v <= 1))
      return std::unexpected(fmt::format("faults.{} must be between 0 and 1, got {}", key, v));
    if (!rate && !(v >= 0 && v <= 3600000))
      return std::unexpected(
          fmt::format("faults.{} must be between 0 and 3600000, got {}", key, v));
    if (key == "throttleRate")
      base.throttleRate = v;
    else if (key == "errorRate")
      base.errorRate = v;
    else if (key == "asyncFailRate")
      base.asyncFailRate = v;
    else if (key == "retryAfterSeconds")
      base.retryAfterSeconds = static_cast<int>(v);
    else if (key == "latencyMs")
      base.latency = std::chrono::milliseconds(static_cast<std::int64_t>(v));
    else
      return std::unexpected(fmt::format(
          "unknown fault \"{}\": expected throttleRate, retryAfterSeconds, errorRate, latencyMs, "
          "asyncFailRate",
          key));
  }
  return base;
}

ArmHandler::ArmHandler(MockState& state, HandlerOptions options, base::Clock& clock,
                       RandomSource& random, std::function<std::int64_t()> unixNow)
    : state_(state),
      options_(std::move(options)),
      clock_(clock),
      random_(random),
      unixNow_(std::move(unixNow)),
      limits_(RateLimitOptions{.subscriptionLimits = options_.subscriptionLimits,
                               .readsPer5Min = options_.readsPer5Min,
                               .writesPer5Min = options_.writesPer5Min,
                               .timeScale = options_.timeScale},
              clock) {
  // An empty key would make every token's signature something anyone can compute.
  if (options_.tokenKey.empty()) throw std::invalid_argument("ArmHandler: tokenKey is empty");
}

void ArmHandler::tick() {
  std::lock_guard lock(mutex_);
  state_.advance();
}

std::pair<Routes, std::uint64_t> ArmHandler::snapshotRoutes() {
  std::lock_guard lock(mutex_);
  return {state_.routes(), state_.revision()};
}

std::pair<json, std::uint64_t> ArmHandler::stateDocument() {
  std::lock_guard lock(mutex_);
  return {state_.toJson(), state_.revision()};
}

json ArmHandler::countersJson() const {
  return {{"armRequests", armRequests_},
          {"armWrites", armWrites_},
          {"throttled", throttled_},
          {"serverErrors", serverErrors_},
          {"conflicts", conflicts_}};
}

void ArmHandler::recordRetryAfter(const std::string& clientId, const ArmRequest& request,
                                  const ArmResponse& response) {
  if (response.status == 429) ++throttled_;
  if (response.status >= 500) ++serverErrors_;
  if (response.status == 409) ++conflicts_;
  if (response.status != 429 && response.status != 409 && response.status != 503) return;
  // The mock only sends delta-seconds.
  const std::string text = response.header("Retry-After");
  std::int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || seconds <= 0) return;
  ++retryAfterWindows_;
  auto& until = retryAfterUntil_[{clientId, toLower(request.path)}];
  until = std::max(until, clock_.now() + std::chrono::seconds(seconds));
}

void ArmHandler::checkRetryAfter(const std::string& clientId, const ArmRequest& request) {
  const auto it = retryAfterUntil_.find({clientId, toLower(request.path)});
  if (it == retryAfterUntil_.end()) return;
  const auto now = clock_.now();
  if (now >= it->second) {
    retryAfterUntil_.erase(it);
    return;
  }
  ++retryAfterViolations_;
  if (retryAfterOffenders_.size() < 100) {
    retryAfterOffenders_.push_back(
        {{"clientId", clientId},
         {"method", request.method},
         {"path", request.path},
         {"earlyByMs",
          std::chrono::duration_cast<std::chrono::milliseconds>(it->second - now).count()}});
  }
}

ArmResponse ArmHandler::handle(const ArmRequest& request) {
  std::lock_guard lock(mutex_);
  try {
    state_.advance();
    return route(request);
  } catch (const std::exception& e) {
    // Nothing should get here; if something does, the caller still gets the ARM shape.
    return error(500, "InternalServerError",
                 fmt::format("azure-vnet-mock failed to handle the request: {}", e.what()));
  }
}

ArmResponse ArmHandler::route(const ArmRequest& request) {
  if (request.body.size() > options_.maxBodyBytes)
    return error(413, "RequestEntityTooLarge",  // [R]
                 fmt::format("The request content size {} exceeds the maximum of {} bytes.",
                             request.body.size(), options_.maxBodyBytes));
  if (request.path.empty() || request.path.front() != '/')
    return error(400, "InvalidRequestFormat",
                 "Cannot parse the request: the path must start with /.");
  std::vector<std::string> segments;
  std::string_view rest = std::string_view(request.path).substr(1);
  while (true) {
    const auto slash = rest.find('/');
    auto decoded = percentDecode(rest.substr(0, slash), false);
    if (!decoded || decoded->find('/') != std::string::npos)
      return error(400, "InvalidRequestFormat",
                   "Cannot parse the request: the path has a bad percent-encoding.");
    segments.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  if (segments.size() > 1 && segments.back().empty()) segments.pop_back();  // one trailing '/'
  auto query = parseForm(request.query);
  if (!query)
    return error(400, "InvalidRequestFormat",
                 "Cannot parse the request: the query string is malformed or repeats a parameter.");
  if (std::ranges::any_of(segments, [](const auto& s) { return s.empty(); }) || segments.empty())
    return error(404, "NotFound", fmt::format("No route for {} {}.", request.method, request.path));

  const std::string first = toLower(segments[0]);
  if (first == "subscriptions") return handleArm(request, segments, *query);
  if (first == "mock") return handleAdmin(request, segments);
  if (first == "metadata" || (segments.size() >= 3 && iequals(segments[1], "oauth2")))
    return handleToken(request, segments, *query);
  return error(404, "NotFound", fmt::format("No route for {} {}.", request.method, request.path));
}

ArmResponse ArmHandler::handleAdmin(const ArmRequest& request,
                                    const std::vector<std::string>& segments) {
  const std::string what = segments.size() == 2 ? toLower(segments[1]) : "";
  if (what == "healthz" && request.method == "GET") return jsonResponse(200, {{"status", "ok"}});
  // Everything else here reads the whole state or changes how the mock fails: not for any peer
  // that can reach the port.
  switch (adminAccess(request.peerAddress, findHeader(request.headers, "Authorization"),
                      options_.adminToken)) {
    case AdminAccess::kAllowed: break;
    case AdminAccess::kUnauthenticated: {
      auto r = error(401, "AuthenticationFailed",
                     "Authentication failed. The /mock endpoints need the admin bearer token "
                     "(--admin-token-file) from a peer off loopback.");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    case AdminAccess::kForbidden:
      return error(
          403, "AuthorizationFailed",
          "The Authorization header does not carry the admin bearer token (--admin-token-file).");
  }
  if (what == "state" && request.method == "GET") {
    json doc = state_.toJson();
    json routes = json::array();
    for (const auto& [block, via] : state_.routes())
      routes.push_back({{"prefix", block.toString()}, {"nextHop", via.toString()}});
    doc["routes"] = std::move(routes);
    doc["faults"] = options_.faults.toJson();
    doc["revision"] = state_.revision();
    doc["counters"] = countersJson();
    doc["rateLimits"] = limits_.toJson();
    doc["retryAfterViolations"] = retryAfterViolations_;
    doc["retryAfter"] = {{"scope", "client+resource"},
                         {"windows", retryAfterWindows_},
                         {"violations", retryAfterOffenders_}};
    return jsonResponse(200, doc);
  }
  if (what == "faults" && request.method == "GET")
    return jsonResponse(200, options_.faults.toJson());
  if (what == "faults" && request.method == "PUT") {
    auto body = parseJsonBody(request.body);
    if (!body) {
      if (body.error().code == "InvalidRequestContent") return errorResponse(body.error());
      return error(400, "InvalidRequestFormat", "Cannot parse the request: the body is not JSON.");
    }
    auto faults = FaultOptions::fromJson(*body, options_.faults);
    if (!faults) return error(400, "InvalidFaults", faults.error());
    options_.faults = *faults;
    return jsonResponse(200, options_.faults.toJson());
  }
  if (what == "state" || what == "faults" || what == "healthz")
    return error(405, "MethodNotAllowed",
                 fmt::format("{} is not allowed on {}.", request.method, request.path));
  return error(404, "NotFound", fmt::format("No route for {} {}.", request.method, request.path));
}

namespace {

// "2024-05-01" or "2024-05-01-preview".
bool wellFormedApiVersion(std::string_view v) {
  if (v.size() != 10 && !(v.size() == 18 && v.substr(10) == "-preview")) return false;
  for (std::size_t i = 0; i < 10; ++i) {
    const bool digit = v[i] >= '0' && v[i] <= '9';
    if ((i == 4 || i == 7) ? v[i] != '-' : !digit) return false;
  }
  return true;
}

// Where a page of a list starts: the $skipToken of a nextLink the mock handed out (the index of
// the first item), 0 without one.
std::expected<std::size_t, CloudError> skipToken(const std::map<std::string, std::string>& query) {
  const auto t = query.find("$skipToken");
  if (t == query.end()) return 0;
  const auto& text = t->second;
  const bool digits = !text.empty() && text.size() < 10 &&
                      std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
  if (!digits)
    return std::unexpected(
        CloudError{.status = 400,
                   .code = "InvalidSkipToken",  // [R]
                   .message = fmt::format("The $skipToken '{}' is not valid.", text)});
  return std::stoul(text);
}

// 403 for a request the role does not allow, as ARM words it; nullopt when it may go on. A NIC
// PUT also needs the join action on every subnet its body links.
std::optional<ArmResponse> authorize(const RoleDefinition& role, ArmResourceKind kind,
                                     const ArmRequest& request, const std::string& clientId) {
  const std::string client = clientId.empty() ? "unknown" : clientId;
  const auto action = requiredAction(kind, request.method);
  if (!action) return std::nullopt;  // a method the type does not serve: 405 comes later
  if (!permits(role, *action)) {
    return error(403, "AuthorizationFailed",
                 fmt::format("The client '{0}' with object id '{0}' does not have authorization "
                             "to perform action '{1}' over scope '{2}' or the scope is invalid. "
                             "If access was recently granted, please refresh your credentials.",
                             client, *action, request.path));
  }
  if (kind != ArmResourceKind::kNetworkInterface || request.method != "PUT" ||
      permits(role, kSubnetJoinAction))
    return std::nullopt;
  auto body = parseJsonBody(request.body);
  if (!body) return std::nullopt;  // the PUT refuses it as a bad body
  const auto subnets = linkedSubnets(*body);
  if (subnets.empty()) return std::nullopt;
  return error(
      403, "LinkedAuthorizationFailed",
      fmt::format("The client '{0}' with object id '{0}' has permission to perform "
                  "action '{1}' on scope '{2}'; however, it does not have permission to "
                  "perform action(s) '{3}' on the linked scope(s) '{4}' (respectively) "
                  "or the linked scope(s) are invalid.",
                  client, *action, request.path, kSubnetJoinAction, fmt::join(subnets, ",")));
}

// The kinds of resource an ARM path names, as classifyPath tells them apart.
enum class Kind {
  kUnknown,
  kVnet,
  kVnetUsages,
  kSubnets,
  kSubnet,
  kNics,
  kNic,
  kNicConfigs,
  kNicConfig,
  kVm,
  kScaleSetVm,
  kScaleSetVmNics,
  kScaleSetVmNic,
  kOperation,
  kOperationResult
};

// Whether the path's segment `i` is there and is `word`, in any case.
bool segmentIs(const std::vector<std::string>& seg, std::size_t i, std::string_view word) {
  return i < seg.size() && iequals(seg[i], word);
}

// Shape of the path: which provider and resource type. kUnknown for a path the mock does not
// serve.
Kind classifyPath(const std::vector<std::string>& seg) {
  const auto is = [&](std::size_t i, std::string_view word) { return segmentIs(seg, i, word); };
  Kind kind = Kind::kUnknown;
  if (seg.size() == 8 && is(2, "providers") && is(3, "Microsoft.Network") && is(4, "locations") &&
      is(6, "operations")) {
    kind = Kind::kOperation;
  } else if (seg.size() == 8 && is(2, "providers") && is(3, "Microsoft.Network") &&
             is(4, "locations") && is(6, "operationResults")) {
    kind = Kind::kOperationResult;
  } else if (seg.size() >= 7 && is(2, "resourceGroups") && is(4, "providers")) {
    if (is(5, "Microsoft.Network") && is(6, "virtualNetworks")) {
      if (seg.size() == 8) kind = Kind::kVnet;
      if (seg.size() == 9 && is(8, "usages")) kind = Kind::kVnetUsages;
      if (seg.size() == 9 && is(8, "subnets")) kind = Kind::kSubnets;
      if (seg.size() == 10 && is(8, "subnets")) kind = Kind::kSubnet;
    } else if (is(5, "Microsoft.Network") && is(6, "networkInterfaces")) {
      if (seg.size() == 7) kind = Kind::kNics;
      if (seg.size() == 8) kind = Kind::kNic;
      if (seg.size() == 9 && is(8, "ipConfigurations")) kind = Kind::kNicConfigs;
      if (seg.size() == 10 && is(8, "ipConfigurations")) kind = Kind::kNicConfig;
    } else if (is(5, "Microsoft.Compute") && is(6, "virtualMachines") && seg.size() == 8) {
      kind = Kind::kVm;
    } else if (is(5, "Microsoft.Compute") && is(6, "virtualMachineScaleSets") &&
               is(8, "virtualMachines")) {
      if (seg.size() == 10) kind = Kind::kScaleSetVm;
      if (seg.size() == 11 && is(10, "networkInterfaces")) kind = Kind::kScaleSetVmNics;
      if (seg.size() == 12 && is(10, "networkInterfaces")) kind = Kind::kScaleSetVmNic;
    }
  }
  return kind;
}

// The 404 for a path of no kind: InvalidResourceType under a provider the mock serves, NotFound
// for anything else.
ArmResponse unknownResource(const ArmRequest& request, const std::vector<std::string>& seg) {
  if (seg.size() >= 7 && segmentIs(seg, 4, "providers") &&
      (segmentIs(seg, 5, "Microsoft.Network") || segmentIs(seg, 5, "Microsoft.Compute")))
    return error(404, "InvalidResourceType",
                 fmt::format("The resource type '{}' could not be found in the namespace "
                             "'{}'.",
                             seg[6], seg[5]));
  return error(404, "NotFound", fmt::format("No route for {} {}.", request.method, request.path));
}

// The resource type whose actions a role must grant for a request to this kind.
ArmResourceKind resourceKindOf(Kind kind) {
  switch (kind) {
    case Kind::kVnet: return ArmResourceKind::kVirtualNetwork;
    case Kind::kVnetUsages: return ArmResourceKind::kVirtualNetworkUsage;
    case Kind::kSubnets:
    case Kind::kSubnet: return ArmResourceKind::kSubnet;
    case Kind::kNics:
    case Kind::kNic: return ArmResourceKind::kNetworkInterface;
    case Kind::kNicConfigs:
    case Kind::kNicConfig: return ArmResourceKind::kNicIpConfiguration;
    case Kind::kVm: return ArmResourceKind::kVirtualMachine;
    case Kind::kScaleSetVm: return ArmResourceKind::kScaleSetVirtualMachine;
    case Kind::kScaleSetVmNics:
    case Kind::kScaleSetVmNic: return ArmResourceKind::kScaleSetNetworkInterface;
    case Kind::kOperationResult: return ArmResourceKind::kNetworkOperationResult;
    case Kind::kOperation:
    case Kind::kUnknown: break;
  }
  return ArmResourceKind::kNetworkOperation;
}

// Method. A NIC takes PUT and DELETE too, a subnet PUT (its address prefixes); everything else is
// read-only here. The 405 for a method the kind does not take, nullopt for one it does.
std::optional<ArmResponse> methodNotAllowed(Kind kind, const std::string& method) {
  const bool nicWritable = kind == Kind::kNic;
  const bool allowed = method == "GET" ||
                       (nicWritable && (method == "PUT" || method == "DELETE")) ||
                       (kind == Kind::kSubnet && method == "PUT");
  if (allowed) return std::nullopt;
  auto r = error(405, "MethodNotAllowed",  // [R]
                 fmt::format("The mock does not implement {} on this resource type.", method));
  r.headers.emplace_back("Allow", nicWritable             ? "GET, PUT, DELETE"
                                  : kind == Kind::kSubnet ? "GET, PUT"
                                                          : "GET");
  return r;
}

}  // namespace

// One ARM request on its way through handleArm: what its steps learn, for the steps after them,
// the resource's handler and finish().
struct ArmHandler::ArmCall {
  const ArmRequest& request;
  const std::vector<std::string>& seg;
  const std::map<std::string, std::string>& query;
  const std::string& sub;  // the subscription the path names
  // ARM's tracing headers: the request id doubles as the async operation id.
  std::string requestId;
  std::string correlationId;
  std::string clientRequestId;
  std::string auth;      // the Authorization header
  std::string clientId;  // the bearer token's appid (accessTokenClientId), "" without one
  // The scheme and host this request reached: the base of every URL the mock hands out.
  std::string base;
  // The request limits (rate_limits.h) are counted once the caller is authenticated; their
  // remaining-* headers go on every response from then on.
  Admission admission;
  Kind kind = Kind::kUnknown;
  std::string apiVersion;  // once checked
  // Once the parents are checked: the resource group's id, and "{rgId}/providers/{ns}/{type}".
  std::string rgId;
  std::string providerBase;

  // The Azure-AsyncOperation URL of an operation (.../operations/{id}).
  std::string operationUrl(std::string_view subscription, std::string_view location,
                           std::string_view id) const {
    return fmt::format(
        "{}/subscriptions/{}/providers/Microsoft.Network/locations/{}/operations/{}"
        "?api-version={}",
        base, subscription, location, id, apiVersion);
  }
  // The Location URL of an operation (.../operationResults/{id}).
  std::string operationResultUrl(std::string_view subscription, std::string_view location,
                                 std::string_view id) const {
    return fmt::format(
        "{}/subscriptions/{}/providers/Microsoft.Network/locations/{}/operationResults/{}"
        "?api-version={}",
        base, subscription, location, id, apiVersion);
  }
};

// The checks every ARM request goes through, in order (the first refusal is the answer), then the
// handler of its resource; every response leaves through finish().
ArmResponse ArmHandler::handleArm(const ArmRequest& request, const std::vector<std::string>& seg,
                                  const std::map<std::string, std::string>& query) {
  ArmCall call{
      .request = request, .seg = seg, .query = query, .sub = seg.size() > 1 ? seg[1] : seg[0]};
  beginCall(call);

  // 1. Authentication, as ARM does it before anything else.
  if (options_.requireAuth) {
    if (auto refused = authenticate(call); refused) return finish(call, std::move(*refused));
  }

  // 2. Throttling: ARM's subscription limits and the NRP's, then injected throttling and server
  // errors.
  if (auto refused = throttle(call); refused) return finish(call, std::move(*refused));

  // 3. Shape of the path: which provider and resource type.
  call.kind = classifyPath(seg);
  if (call.kind == Kind::kUnknown) return finish(call, unknownResource(request, seg));

  // 3b. Authorization, when the mock runs under a role (--role-file).
  if (options_.role) {
    if (auto refused = authorize(*options_.role, resourceKindOf(call.kind), request, call.clientId);
        refused)
      return finish(call, std::move(*refused));
  }

  // 4. api-version.
  auto apiVersion = apiVersionOf(call);
  if (!apiVersion) return finish(call, std::move(apiVersion.error()));
  call.apiVersion = std::move(*apiVersion);

  // 5. Method.
  if (auto refused = methodNotAllowed(call.kind, request.method); refused)
    return finish(call, std::move(*refused));

  // 6. Parents, then the resource.
  return finish(call, serveResource(call));
}

// What handleArm does first for every request: the tracing ids, the request counters, the
// caller's client id (the appid of a bearer token the mock signed, expired or not), the
// Retry-After check of a write, and the base of the URLs.
void ArmHandler::beginCall(ArmCall& call) {
  const ArmRequest& request = call.request;
  const auto& method = request.method;
  const bool isWrite =
      method == "PUT" || method == "DELETE" || method == "POST" || method == "PATCH";
  call.requestId = random_.guid();
  call.correlationId = findHeader(request.headers, "x-ms-correlation-request-id");
  if (call.correlationId.empty() || call.correlationId.size() > 128)
    call.correlationId = call.requestId;
  call.clientRequestId = findHeader(request.headers, "x-ms-client-request-id");

  ++armRequests_;
  if (isWrite) ++armWrites_;
  call.auth = findHeader(request.headers, "Authorization");
  const std::string& auth = call.auth;
  call.clientId = auth.size() > 7 && iequals(std::string_view(auth).substr(0, 7), "Bearer ")
                      ? accessTokenClientId(options_.tokenKey, std::string_view(auth).substr(7))
                      : std::string();
  if (isWrite) checkRetryAfter(call.clientId, request);

  const std::string host = findHeader(request.headers, "Host").empty()
                               ? options_.fallbackHost
                               : findHeader(request.headers, "Host");
  call.base = fmt::format("{}://{}", options_.scheme, host);
}

// What every ARM response gets on its way out: ARM's tracing headers, the request limits'
// remaining-* headers (once the request was counted), the injected latency; and its Retry-After
// is accounted (recordRetryAfter).
ArmResponse ArmHandler::finish(const ArmCall& call, ArmResponse r) {
  r.headers.emplace_back("x-ms-request-id", call.requestId);
  r.headers.emplace_back("x-ms-correlation-request-id", call.correlationId);
  if (!call.clientRequestId.empty() && call.clientRequestId.size() <= 128)
    r.headers.emplace_back("x-ms-client-request-id", call.clientRequestId);
  r.headers.insert(r.headers.end(), call.admission.headers.begin(), call.admission.headers.end());
  r.delay = options_.faults.latency;
  recordRetryAfter(call.clientId, call.request, r);
  return r;
}

// Authentication, as ARM does it before anything else. Every 401 carries ARM's bearer
// challenge, from which clients learn the authority and tenant to get a token from
// (`Bearer authorization_uri="https://login.windows.net/{tenant}", error="invalid_token",
// error_description="..."`, as ARM sends it and Azure/aks-engine's ARM test double in
// pkg/armhelpers replays it). The mock is its own Entra ID, so the authority is this host; the
// tenant is the first configured client's ("common" with none), standing in for the
// subscription's home tenant. The 401, or nullopt for a valid token.
std::optional<ArmResponse> ArmHandler::authenticate(const ArmCall& call) const {
  const auto unauthorized = [&](std::string code, std::string message,
                                std::string_view description) {
    auto r = error(401, std::move(code), std::move(message));
    const std::string tenant =
        options_.clients.empty() ? "common" : options_.clients.front().tenantId;
    std::string quoted(description);
    std::ranges::replace(quoted, '"', '\'');  // a quoted-string must not end early
    r.headers.emplace_back(
        "WWW-Authenticate",
        fmt::format(R"(Bearer authorization_uri="{}/{}", error="invalid_token", )"
                    R"(error_description="{}")",
                    call.base, tenant, quoted));
    return r;
  };
  const std::string& auth = call.auth;
  if (auth.empty())
    return unauthorized("AuthenticationFailed",
                        "Authentication failed. The 'Authorization' header is missing.",
                        "The authentication failed because of missing 'Authorization' header.");
  if (auth.size() < 7 || !iequals(std::string_view(auth).substr(0, 7), "Bearer "))
    return unauthorized("AuthenticationFailedInvalidHeader",
                        "Authentication failed. The 'Authorization' header is provided in an "
                        "invalid format.",
                        "The authentication failed because of invalid 'Authorization' header.");
  if (auto bad = checkAccessToken(options_.tokenKey, std::string_view(auth).substr(7), unixNow_());
      !bad.empty())
    return unauthorized("InvalidAuthenticationToken", bad, bad);
  return std::nullopt;
}

// Throttling: counts the request against ARM's subscription limits and the NRP's (filling
// call.admission), then draws the injected throttling and server errors. The 429, 500 or 503, or
// nullopt for a request that goes on.
std::optional<ArmResponse> ArmHandler::throttle(ArmCall& call) {
  const auto& seg = call.seg;
  const ArmOperation operation = armOperationOf(call.request.method);
  const bool network =
      (seg.size() > 3 && iequals(seg[2], "providers") && iequals(seg[3], "Microsoft.Network")) ||
      (seg.size() > 5 && iequals(seg[4], "providers") && iequals(seg[5], "Microsoft.Network"));
  call.admission = limits_.admit(seg.size() > 1 ? seg[1] : "", call.clientId, operation, network);
  if (!call.admission.allowed) {
    auto r = error(429, call.admission.code, call.admission.message);  // [R]
    r.headers.emplace_back("Retry-After", std::to_string(call.admission.retryAfterSeconds));
    return r;
  }
  if (random_.chance(options_.faults.throttleRate)) {
    auto r = error(429, "SubscriptionRequestsThrottled",  // [R]
                   fmt::format("Number of requests exceeded the limit (injected by "
                               "azure-vnet-mock). Please try again after '{}' seconds.",
                               options_.faults.retryAfterSeconds));
    r.headers.emplace_back("Retry-After", std::to_string(options_.faults.retryAfterSeconds));
    // The injected 429 says none of this kind of request remains: finish() copies these headers
    // into the response.
    const std::string remainingHeader =
        operation == ArmOperation::kRead    ? "x-ms-ratelimit-remaining-subscription-reads"
        : operation == ArmOperation::kWrite ? "x-ms-ratelimit-remaining-subscription-writes"
                                            : "x-ms-ratelimit-remaining-subscription-deletes";
    for (auto& [k, v] : call.admission.headers) {
      if (k == remainingHeader) v.assign(1, '0');  // not = "0": GCC 12 -Wrestrict false positive
    }
    return r;
  }
  if (random_.chance(options_.faults.errorRate)) {
    if (random_.next() % 2 == 0)
      return error(500, "InternalServerError",
                   "Encountered internal server error (injected by azure-vnet-mock).");
    auto r = error(503, "ServiceUnavailable",
                   "The service is unavailable (injected by azure-vnet-mock).");
    r.headers.emplace_back("Retry-After", std::to_string(options_.faults.retryAfterSeconds));
    return r;
  }
  return std::nullopt;
}

// api-version, with ARM's three answers (codes and wording as ARM sends them):
// - none: 400 MissingApiVersionParameter, "The api-version query parameter (?api-version=) is
//   required for all requests." (quoted from ARM in MicrosoftDocs/feedback#2279 and
//   Azure/azure-dev#3914);
// - not a version at all: 400 InvalidApiVersionParameter, "The api-version '{v}' is invalid.
//   The supported versions are '{v1},{v2},...'." (the form ARM answers for a version it cannot
//   serve, quoted in hashicorp/vault-plugin-secrets-azure#13 and Azure/azure-sdk-for-net#3160);
// - a well-formed version the resource type does not have: 400 NoRegisteredProviderFound, "No
//   registered resource provider found for location {location} and API version {api-version}
//   for type {resource-type}.", with the supported versions, as Microsoft Learn's "Resolve
//   errors for resource provider registration" documents it ("The resource type doesn't
//   support the API version"; "The error message should give you suggestions for the
//   supported locations and API versions").
// The request's api-version, or the 400.
std::expected<std::string, ArmResponse> ArmHandler::apiVersionOf(const ArmCall& call) const {
  const Kind kind = call.kind;
  auto v = call.query.find("api-version");
  if (v == call.query.end())
    return std::unexpected(error(400, "MissingApiVersionParameter",
                                 "The api-version query parameter (?api-version=) is required "
                                 "for all requests."));
  const bool scaleSetNic = kind == Kind::kScaleSetVmNics || kind == Kind::kScaleSetVmNic;
  // A VM's and a uniform scale set's VM's paths are Microsoft.Compute's.
  const bool compute = kind == Kind::kVm || kind == Kind::kScaleSetVm;
  const auto& versions = scaleSetNic ? std::span<const char* const>(kScaleSetNicApiVersions)
                         : compute   ? std::span<const char* const>(kComputeApiVersions)
                                     : std::span<const char* const>(kNetworkApiVersions);
  if (std::ranges::find(versions, v->second) != versions.end()) return v->second;
  const std::string supported = fmt::format("{}", fmt::join(versions, ","));
  if (!wellFormedApiVersion(v->second))
    return std::unexpected(
        error(400, "InvalidApiVersionParameter",
              fmt::format("The api-version '{}' is invalid. The supported versions are "
                          "'{}'.",
                          v->second, supported)));
  const std::string type = kind == Kind::kOperation         ? "locations/operations"
                           : kind == Kind::kOperationResult ? "locations/operationResults"
                           : scaleSetNic
                               ? "virtualMachineScaleSets/virtualMachines/networkInterfaces"
                           : kind == Kind::kScaleSetVm ? "virtualMachineScaleSets/virtualMachines"
                                                       : call.seg[6];
  return std::unexpected(
      error(400, "NoRegisteredProviderFound",
            fmt::format("No registered resource provider found for location '{}' and "
                        "API version '{}' for type '{}'. The supported api-versions "
                        "are '{}'.",
                        locationFor(call.sub), v->second, type, supported)));
}

// Parents, then the resource: the subscription; the operation reads (they have no resource
// group); the resource group; then the handler of the resource's kind.
ArmResponse ArmHandler::serveResource(ArmCall& call) {
  const auto& seg = call.seg;
  if (!state_.subscriptionExists(call.sub))
    return error(404, "SubscriptionNotFound",
                 fmt::format("The subscription '{}' could not be found.", call.sub));
  if (call.kind == Kind::kOperation) return getOperation(call);
  if (call.kind == Kind::kOperationResult) return getOperationResult(call);
  call.rgId = fmt::format("/subscriptions/{}/resourceGroups/{}", call.sub, seg[3]);
  if (!state_.resourceGroupExists(call.rgId))
    return error(404, "ResourceGroupNotFound",
                 fmt::format("Resource group '{}' could not be found.", seg[3]));
  call.providerBase = fmt::format("{}/providers/{}/{}", call.rgId, seg[5], seg[6]);

  switch (call.kind) {
    case Kind::kVnet:
    case Kind::kVnetUsages:
    case Kind::kSubnets:
    case Kind::kSubnet: return serveVirtualNetwork(call);
    case Kind::kVm: return getVirtualMachine(call);
    case Kind::kScaleSetVm:
    case Kind::kScaleSetVmNics:
    case Kind::kScaleSetVmNic: return serveScaleSetVm(call);
    case Kind::kNics: return listNics(call);
    case Kind::kNic:
    case Kind::kNicConfigs:
    case Kind::kNicConfig: return serveNic(call);
    default: break;
  }
  return error(404, "NotFound",
               fmt::format("No route for {} {}.", call.request.method, call.request.path));
}

// GET of an operation's status (the Azure-AsyncOperation URL).
ArmResponse ArmHandler::getOperation(const ArmCall& call) const {
  const auto& seg = call.seg;
  const auto* op = state_.findOperation(seg[7]);
  if (op == nullptr || !iequals(op->subscriptionId, call.sub))
    return error(404, "ResourceNotFound", fmt::format("The operation '{}' was not found.", seg[7]));
  // Always 200, as ARM answers an operation status: a 4xx/5xx would mean reading the status
  // itself failed.
  // AzureAsyncOperationResult (network.json, 2024-05-01) has a status and, when it failed,
  // an error: nothing else.
  json body = {{"status", toString(op->status)}};
  if (op->error) body["error"] = {{"code", op->error->code}, {"message", op->error->message}};
  auto r = jsonResponse(200, body);
  if (op->status == OperationStatus::kInProgress) r.headers.emplace_back("Retry-After", "1");
  return r;
}

// GET of an operation's result (the Location URL).
ArmResponse ArmHandler::getOperationResult(const ArmCall& call) const {
  // The Location a DELETE hands out (its final state is read "via location":
  // specification/network/resource-manager/Microsoft.Network/stable/2024-05-01/
  // networkInterface.json in Azure/azure-rest-api-specs). ARM's RPC: 202 with Location while
  // the operation runs, then 200 (with the resource) or 204 (none, as after a DELETE); a failed
  // operation answers with its error.
  const auto& seg = call.seg;
  const auto* op = state_.findOperation(seg[7]);
  if (op == nullptr || !iequals(op->subscriptionId, call.sub))
    return error(404, "ResourceNotFound", fmt::format("The operation '{}' was not found.", seg[7]));
  if (op->status == OperationStatus::kInProgress) {
    ArmResponse r{.status = 202};
    r.headers.emplace_back("Location",
                           call.operationResultUrl(op->subscriptionId, op->location, op->id));
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  if (op->status == OperationStatus::kFailed)
    return error(500, op->error ? op->error->code : "InternalServerError",  // [R]
                 op->error ? op->error->message : "The operation failed.");
  const auto* nic = op->deletes ? nullptr : state_.findNic(op->nicId);
  if (nic == nullptr) return ArmResponse{.status = 204};
  return jsonResponse(200, nicJson(*nic));
}

// A virtual network and what the mock serves under it: GET of the VNET, its usages
// (listVnetUsages), its subnets, and GET or PUT of one subnet (serveSubnet).
ArmResponse ArmHandler::serveVirtualNetwork(const ArmCall& call) {
  const auto& seg = call.seg;
  const auto* vnet = state_.findVirtualNetwork(fmt::format("{}/{}", call.providerBase, seg[7]));
  if (vnet == nullptr)
    return error(404, "ResourceNotFound",
                 resourceNotFound("Microsoft.Network/virtualNetworks", seg[7], seg[3]));
  if (call.kind == Kind::kVnet) return jsonResponse(200, vnetJson(state_, *vnet));
  if (call.kind == Kind::kVnetUsages) return listVnetUsages(call, *vnet);
  if (call.kind == Kind::kSubnets) {
    json value = json::array();
    for (const auto& id : vnet->subnetIds) {
      if (const auto* s = state_.findSubnet(id)) value.push_back(subnetJson(state_, *s));
    }
    return jsonResponse(200, {{"value", std::move(value)}});
  }
  return serveSubnet(call, *vnet);
}

// VirtualNetworks_ListUsage (virtualNetwork.json, 2024-05-01): a
// VirtualNetworkListUsageResult, pageable through nextLink, one VirtualNetworkUsage per
// subnet with its id, currentValue and limit (numbers, "format": "double"), name {value,
// localizedValue} and unit "Count", as the spec's example VirtualNetworkListUsage.json
// shows them.
ArmResponse ArmHandler::listVnetUsages(const ArmCall& call, const VirtualNetwork& vnet) const {
  auto skip = skipToken(call.query);
  if (!skip) return errorResponse(skip.error());
  const auto usages = state_.subnetUsages(vnet);
  json value = json::array();
  const std::size_t pageSize = std::max<std::size_t>(1, options_.listPageSize);
  for (std::size_t i = *skip; i < usages.size() && i < *skip + pageSize; ++i) {
    value.push_back(
        {{"id", usages[i].subnetId},
         {"currentValue", static_cast<double>(usages[i].used)},
         {"limit", static_cast<double>(usages[i].limit)},
         {"name", {{"value", "SubnetSpace"}, {"localizedValue", "Subnet size and usage"}}},
         {"unit", "Count"}});
  }
  json body = {{"value", std::move(value)}};
  if (*skip + pageSize < usages.size())
    body["nextLink"] = fmt::format("{}{}?api-version={}&$skipToken={}", call.base,
                                   call.request.path, call.apiVersion, *skip + pageSize);
  return jsonResponse(200, body);
}

// GET of a subnet of `vnet`, or PUT of its address prefixes.
ArmResponse ArmHandler::serveSubnet(const ArmCall& call, const VirtualNetwork& vnet) {
  const auto& seg = call.seg;
  const auto* subnet = state_.findSubnet(fmt::format("{}/subnets/{}", vnet.id, seg[9]));
  if (call.request.method == "PUT" && subnet != nullptr) {
    // Subnets_CreateOrUpdate on an existing subnet: its address prefixes change (a new
    // subnet is not modelled). Answered at once, 200 with the subnet, as the spec allows.
    if (!toLower(findHeader(call.request.headers, "Content-Type")).starts_with("application/json"))
      return error(415, "UnsupportedMediaType",  // [R]
                   "Only 'application/json' is supported.");
    auto parsedBody = parseJsonBody(call.request.body);
    if (!parsedBody) return errorResponse(parsedBody.error());
    auto updated = state_.setSubnetPrefixes(subnet->id, *parsedBody);
    if (!updated) return errorResponse(updated.error());
    return jsonResponse(200, subnetJson(state_, **updated));
  }
  if (subnet == nullptr)
    return error(404, "NotFound",  // [R]
                 fmt::format("Resource {}/subnets/{} not found.", vnet.id, seg[9]));
  return jsonResponse(200, subnetJson(state_, *subnet));
}

// GET of a VM (not a uniform scale set's: those are read under their scale set).
ArmResponse ArmHandler::getVirtualMachine(const ArmCall& call) const {
  const auto& seg = call.seg;
  const auto* vm = state_.findVirtualMachine(fmt::format("{}/{}", call.providerBase, seg[7]));
  if (vm == nullptr || !vm->instanceId.empty())
    return error(404, "ResourceNotFound",
                 resourceNotFound("Microsoft.Compute/virtualMachines", seg[7], seg[3]));
  return jsonResponse(200, vmJson(*vm));
}

// GET of a uniform scale set's VM, of its NICs or of one of them.
ArmResponse ArmHandler::serveScaleSetVm(const ArmCall& call) const {
  // A uniform scale set's VM and its NICs: read-only here, as the published API has them
  // (the NICs have GETs only; the VM's networkProfileConfiguration cannot carry a prefix).
  const auto& seg = call.seg;
  const auto* set = state_.findScaleSet(fmt::format("{}/{}", call.providerBase, seg[7]));
  if (set == nullptr)
    return error(404, "ResourceNotFound",
                 resourceNotFound("Microsoft.Compute/virtualMachineScaleSets", seg[7], seg[3]));
  const auto* vm = state_.findVirtualMachine(fmt::format("{}/virtualMachines/{}", set->id, seg[9]));
  if (vm == nullptr || vm->instanceId.empty())
    return error(404, "ResourceNotFound",  // [R]
                 resourceNotFound("Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
                                  fmt::format("{}/{}", seg[7], seg[9]), seg[3]));
  if (call.kind == Kind::kScaleSetVm) return jsonResponse(200, scaleSetVmJson(state_, *vm));
  if (call.kind == Kind::kScaleSetVmNics) {
    json value = json::array();
    for (const auto& id : vm->nicIds) {
      if (const auto* nic = state_.findNic(id)) value.push_back(scaleSetNicJson(*nic));
    }
    return jsonResponse(200, {{"value", std::move(value)}});
  }
  const auto* nic = state_.findNic(fmt::format("{}/networkInterfaces/{}", vm->id, seg[11]));
  if (nic == nullptr)
    return error(404, "ResourceNotFound",
                 resourceNotFound("Microsoft.Network/networkInterfaces", seg[11], seg[3]));
  return jsonResponse(200, scaleSetNicJson(*nic));
}

// The list of the resource group's NICs, a page at a time (nextLink).
ArmResponse ArmHandler::listNics(const ArmCall& call) const {
  auto skipped = skipToken(call.query);
  if (!skipped) return errorResponse(skipped.error());
  const std::size_t skip = *skipped;
  const auto nics = state_.nicsInResourceGroup(call.rgId);
  json value = json::array();
  const std::size_t pageSize = std::max<std::size_t>(1, options_.listPageSize);
  for (std::size_t i = skip; i < nics.size() && i < skip + pageSize; ++i)
    value.push_back(nicJson(*nics[i]));
  json body = {{"value", std::move(value)}};
  if (skip + pageSize < nics.size())
    body["nextLink"] = fmt::format("{}{}?api-version={}&$skipToken={}", call.base,
                                   call.request.path, call.apiVersion, skip + pageSize);
  return jsonResponse(200, body);
}

// A NIC and its ipConfigurations: PUT (putNic) or DELETE (deleteNic) of the NIC, or GET of the
// NIC, of its ipConfigurations or of one of them.
ArmResponse ArmHandler::serveNic(const ArmCall& call) {
  const auto& seg = call.seg;
  const std::string nicId = fmt::format("{}/{}", call.providerBase, seg[7]);
  const auto* nic = state_.findNic(nicId);
  const OperationUrl operationUrl = [&call](std::string_view subscription,
                                            std::string_view location, std::string_view id) {
    return call.operationUrl(subscription, location, id);
  };
  if (call.request.method == "PUT")
    return putNic(call.request, nicId, nic, call.apiVersion, operationUrl, call.requestId);
  if (call.request.method == "DELETE") return deleteNic(call, nic, operationUrl);
  if (nic == nullptr)
    return error(404, "ResourceNotFound",
                 resourceNotFound("Microsoft.Network/networkInterfaces", seg[7], seg[3]));
  if (call.kind == Kind::kNic) return jsonResponse(200, nicJson(*nic));
  json value = json::array();
  for (const auto& c : nic->ipConfigurations) {
    if (call.kind == Kind::kNicConfig && iequals(c.name, seg[9]))
      return jsonResponse(200, ipConfigurationJson(*nic, c));
    value.push_back(ipConfigurationJson(*nic, c));
  }
  if (call.kind == Kind::kNicConfig)
    return error(404, "NotFound",  // [R]
                 fmt::format("Resource {}/ipConfigurations/{} not found.", nic->id, seg[9]));
  return jsonResponse(200, {{"value", std::move(value)}});
}

// DELETE of a NIC (nullptr: not there).
ArmResponse ArmHandler::deleteNic(const ArmCall& call, const NetworkInterface* nic,
                                  const OperationUrl& operationUrl) {
  // NetworkInterfaces_Delete answers 200, 202 or 204 and is long-running
  // (specification/network/resource-manager/Microsoft.Network/stable/2024-05-01/
  // networkInterface.json). Like NRP the mock answers 204 for a NIC that is not there and
  // 202 with an empty body, Azure-AsyncOperation, Location (.../operationResults/{id})
  // and Retry-After otherwise, as recorded Network DELETEs show.
  if (nic == nullptr) return ArmResponse{.status = 204};
  if (!nic->pendingOperationId.empty()) return anotherOperationInProgress(*nic, operationUrl);
  auto deleted = state_.deleteNic(nic->id, call.requestId);
  if (!deleted) return errorResponse(deleted.error());
  const auto* op = state_.findOperation(deleted->operationId);
  ArmResponse r{.status = 202};
  if (op != nullptr) {
    r.headers.emplace_back("Azure-AsyncOperation",
                           call.operationUrl(op->subscriptionId, op->location, op->id));
    r.headers.emplace_back("Location",
                           call.operationResultUrl(op->subscriptionId, op->location, op->id));
  }
  r.headers.emplace_back("Retry-After", retryAfterForOperation());
  return r;
}

ArmResponse ArmHandler::putNic(const ArmRequest& request, const std::string& nicId,
                               const NetworkInterface* existing, const std::string& apiVersion,
                               const OperationUrl& operationUrl, const std::string& requestId) {
  if (existing != nullptr && !existing->pendingOperationId.empty())
    return anotherOperationInProgress(*existing, operationUrl);
  const std::string contentType = toLower(findHeader(request.headers, "Content-Type"));
  if (!contentType.starts_with("application/json"))
    return error(415, "UnsupportedMediaType",  // [R]
                 fmt::format("The content media type '{}' is not supported. Only "
                             "'application/json' is supported.",
                             findHeader(request.headers, "Content-Type")));
  auto parsedBody = parseJsonBody(request.body);
  if (!parsedBody) return errorResponse(parsedBody.error());
  const json& body = *parsedBody;
  NicPutPreconditions pre;
  if (auto h = findHeader(request.headers, "If-Match"); !h.empty()) pre.ifMatch = h;
  if (auto h = findHeader(request.headers, "If-None-Match"); !h.empty()) pre.ifNoneMatch = h;
  const bool fail = random_.chance(options_.faults.asyncFailRate);
  auto result =
      state_.putNic(existing != nullptr ? existing->id : nicId, body, pre, requestId, fail);
  if (!result) return errorResponse(result.error());
  const auto* nic = state_.findNic(nicId);
  const auto* op = state_.findOperation(result->operationId);
  // A created NIC whose operation failed at once (no delay) is gone again: answer with the body
  // as it was written, which is what Azure returns before the operation ends.
  auto r = jsonResponse(result->created ? 201 : 200,
                        nic != nullptr ? nicJson(*nic) : json{{"id", nicId}});
  if (op != nullptr)
    r.headers.emplace_back("Azure-AsyncOperation",
                           operationUrl(op->subscriptionId, op->location, op->id));
  r.headers.emplace_back("Retry-After", retryAfterForOperation());
  (void)apiVersion;
  return r;
}

ArmResponse ArmHandler::anotherOperationInProgress(const NetworkInterface& nic,
                                                   const OperationUrl& operationUrl) const {
  // A write while this NIC's last operation still runs: 409, pointing at that operation.
  const auto* op = state_.findOperation(nic.pendingOperationId);
  const std::string url = op != nullptr ? operationUrl(op->subscriptionId, op->location, op->id)
                                        : nic.pendingOperationId;
  return error(409, "AnotherOperationInProgress",
               fmt::format("Another operation on this or dependent resource is in progress. To "
                           "retrieve status of the operation use uri: {}",
                           url));
}

std::string ArmHandler::locationFor(std::string_view subscription) const {
  // ARM names the location the request was for; the mock keeps no location per resource group,
  // so it names that of a NIC in the subscription, as every topology has one.
  const std::string prefix = toLower(fmt::format("/subscriptions/{}/", subscription));
  std::string location;
  state_.forEachNic([&](const NetworkInterface& nic) {
    if (location.empty() && toLower(nic.id).starts_with(prefix)) location = nic.location;
  });
  return location.empty() ? "eastus" : location;
}

std::string ArmHandler::retryAfterForOperation() const {
  const auto delayMs = state_.options().asyncDelay.count();
  return std::to_string(std::max<std::int64_t>(1, (delayMs + 999) / 1000));
}

}  // namespace vnetipam::azuremock
