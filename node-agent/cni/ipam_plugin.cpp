#include "node-agent/cni/ipam_plugin.h"

#include <algorithm>

#include <fmt/format.h>

#include "lib/ipam/owner.h"
#include "lib/ipam/pod_gateway.h"
#include "node-agent/cni/input_bounds.h"

namespace vnetipam::cni {
namespace {

using ipam::kPodGatewayV4;

// The network is the configuration's "name": the CNI spec keys an attachment by network,
// container ID and interface, and a runtime's GC lists one network's attachments. The spec bounds
// no name's length and the protocol carries at most kMaxNetworkBytes: a longer one is not named,
// so that network is served as every network was before networks were named (the agent's rules
// for an allocation of no network), instead of being refused.
std::string networkOf(const NetConf& conf) {
  return conf.name.size() <= agent::kMaxNetworkBytes ? conf.name : std::string();
}

agent::Request requestFor(agent::Op op, const Env& env, const NetConf& conf) {
  agent::Request request{.op = op,
                         .network = networkOf(conf),
                         .owner = env.attachment(),
                         .podNamespace = env.podNamespace,
                         .podName = env.podName};
  // Only allocate records it; the other operations are keyed by containerID+ifName alone.
  if (op == agent::Op::kAllocate) {
    request.podUID = podUIDFromArgs(env);
    // Both: the agent answers the families the node serves (an older agent, IPv4 alone).
    request.families = {ipam::Family::kV4, ipam::Family::kV6};
  }
  return request;
}

// Who this call is about, for every message.
std::string owner(const Env& env) {
  std::string who = ipam::toString(env.attachment());
  if (!env.podName.empty()) who += fmt::format(" (pod {}/{})", env.podNamespace, env.podName);
  return who;
}

// One round trip. A transport failure becomes `unreachableCode` (11 for the pod paths, 50 for
// STATUS); an agent's refusal passes its code through.
Outcome<agent::Response> ask(AgentClient& client, const IpamConfig& config,
                             const agent::Request& request, std::string_view doing,
                             int unreachableCode = kTryAgainLater) {
  auto response = client.call(config.socket, request, config.timeout);
  if (!response) {
    return failWith(unreachableCode,
                    fmt::format("vnet-ipam: {}: the node agent is not reachable at {} (it may be "
                                "starting; try again)",
                                doing, config.socket),
                    response.error().message);
  }
  if (!response->ok) {
    return failWith(static_cast<int>(response->code),
                    fmt::format("vnet-ipam: {}: {}", doing, response->message), response->details);
  }
  return std::move(*response);
}

Outcome<Result> add(AgentClient& client, const Env& env, const NetConf& conf) {
  auto config = parseIpamConfig(conf);
  if (!config) return std::unexpected(config.error());
  const std::string doing = fmt::format("allocate for {}", owner(env));
  auto response = ask(client, *config, requestFor(agent::Op::kAllocate, env, conf), doing);
  if (!response) return std::unexpected(response.error());
  const auto& allocations = response->allocations;
  const bool oneEach = !allocations.empty() && allocations.size() <= 2 &&
                       (allocations.size() == 1 ||
                        allocations[0].address.family() != allocations[1].address.family());
  if (!oneEach) {
    return failWith(kInternal,
                    fmt::format("vnet-ipam: {}: the agent answered {} allocations, expected one "
                                "address per family",
                                doing, allocations.size()));
  }
  Result result;
  for (const agent::Allocation& a : allocations) {
    const ipam::Family family = a.address.family();
    // An older agent sends no gateway: its single IPv4 address takes the IPv4 one.
    result.ips.push_back(
        IPConfig{.address = a.address,
                 .prefixLength = family == ipam::Family::kV4 ? config->addressPrefixLength : 128,
                 .gateway = a.gateway.value_or(ipam::podGateway(family))});
  }
  // IPv4 first, whatever order the agent used: the runtime reports ips[0] as the pod's primary IP.
  std::ranges::stable_sort(result.ips, std::less<>(),
                           [](const IPConfig& c) { return c.address.family(); });
  if (config->routesConfigured) {
    result.routes = config->routes;
  } else {
    // A default route per family the pod has an address of, via that family's gateway.
    for (const IPConfig& ip : result.ips) {
      const ipam::Family family = ip.address.family();
      result.routes.push_back(
          RouteEntry{.dst = ipam::Prefix::masked(ipam::IPAddress::fromBits(family, 0), 0),
                     .gw = ipam::podGateway(family)});
    }
  }
  return result;
}

Outcome<void> del(AgentClient& client, const Env& env, const NetConf& conf) {
  auto config = parseIpamConfig(conf);
  if (!config) return std::unexpected(config.error());
  auto response = ask(client, *config, requestFor(agent::Op::kRelease, env, conf),
                      fmt::format("release for {}", owner(env)));
  if (!response) return std::unexpected(response.error());
  return {};
}

Outcome<void> check(AgentClient& client, const Env& env, const NetConf& conf) {
  auto config = parseIpamConfig(conf);
  if (!config) return std::unexpected(config.error());
  const std::string doing = fmt::format("check {}", owner(env));
  auto response = ask(client, *config, requestFor(agent::Op::kCheck, env, conf), doing);
  if (!response) return std::unexpected(response.error());
  if (!conf.prevResult) return {};
  // Every family the agent holds for the attachment must be in the result the runtime kept.
  for (const agent::Allocation& a : response->allocations) {
    const bool listed = std::ranges::any_of(
        conf.prevResult->ips, [&](const IPConfig& ipc) { return ipc.address == a.address; });
    if (!listed) {
      return failWith(kLayoutMismatch,
                      fmt::format("vnet-ipam: {}: the agent holds {} for it, which prevResult "
                                  "does not list",
                                  doing, a.address.toString()));
    }
  }
  return {};
}

Outcome<void> gc(AgentClient& client, const Env&, const NetConf& conf) {
  auto config = parseIpamConfig(conf);
  if (!config) return std::unexpected(config.error());
  // The attachments the runtime lists are those of this network alone: the agent judges only
  // this network's allocations by them.
  agent::Request request{.op = agent::Op::kGc, .network = networkOf(conf)};
  request.validAttachments = conf.validAttachments;
  auto response = ask(client, *config, request,
                      fmt::format("gc of network {} with {} valid attachments", conf.name,
                                  request.validAttachments.size()));
  if (!response) return std::unexpected(response.error());
  return {};
}

Outcome<void> status(AgentClient& client, const Env&, const NetConf& conf) {
  auto config = parseIpamConfig(conf);
  if (!config) return std::unexpected(config.error());
  auto response =
      ask(client, *config, agent::Request{.op = agent::Op::kStatus}, "status", kPluginNotAvailable);
  if (!response) {
    // Whatever the agent said (not ready, exhausted): the plugin cannot serve ADD now.
    Error e = response.error();
    e.code = kPluginNotAvailable;
    return std::unexpected(std::move(e));
  }
  if (!response->ready) {
    return failWith(kPluginNotAvailable,
                    fmt::format("vnet-ipam: the node agent at {} is not ready", config->socket));
  }
  if (response->freeIPs == 0) {
    return failWith(
        kPluginNotAvailable,
        fmt::format("vnet-ipam: the node agent at {} has no free address", config->socket));
  }
  return {};
}

}  // namespace

std::string podUIDFromArgs(const Env& env) {
  std::string uid;
  // The last one wins, as for K8S_POD_NAMESPACE and K8S_POD_NAME (see parseEnv).
  for (const auto& [key, value] : env.args) {
    if (key == "K8S_POD_UID") uid = value;
  }
  return uid;
}

base::Result<agent::Response> SocketAgentClient::call(const std::string& socketPath,
                                                      const agent::Request& request,
                                                      std::chrono::milliseconds timeout) {
  return agent::callAgent(socketPath, request, timeout);
}

Outcome<IpamConfig> parseIpamConfig(const NetConf& conf) {
  IpamConfig config;
  const auto& section = conf.ipam;
  const auto invalid = [](std::string msg) {
    return failWith(kInvalidConfig, "vnet-ipam: " + msg);
  };
  if (section.contains("socket")) {
    if (!section["socket"].is_string() || section["socket"].get<std::string>().empty()) {
      return invalid("\"ipam.socket\" must be the path of the agent's unix socket");
    }
    config.socket = section["socket"].get<std::string>();
  }
  if (section.contains("timeoutMs")) {
    const auto timeout = integerIn(section["timeoutMs"], 1, 600000);
    if (!timeout) return invalid("\"ipam.timeoutMs\" must be an integer 1..600000");
    config.timeout = std::chrono::milliseconds(*timeout);
  }
  if (section.contains("addressPrefixLength")) {
    const auto length = integerIn(section["addressPrefixLength"], 1, 32);
    if (!length) return invalid("\"ipam.addressPrefixLength\" must be an integer 1..32");
    config.addressPrefixLength = static_cast<int>(*length);
  }
  if (section.contains("routes")) {
    if (!section["routes"].is_array()) return invalid("\"ipam.routes\" must be a list");
    auto parsed = parseResult(nlohmann::json{{"routes", section["routes"]}});
    if (!parsed) return invalid("\"ipam.routes\": " + parsed.error().msg);
    config.routes = std::move(parsed->routes);
    config.routesConfigured = true;
  } else {
    config.routes.push_back(
        RouteEntry{.dst = ipam::Prefix::masked(ipam::IPAddress::v4(0), 0), .gw = kPodGatewayV4});
  }
  return config;
}

Plugin makeIpamPlugin(AgentClient& client) {
  return Plugin{
      .name = "vnet-ipam",
      .add = [&client](const Env& e, const NetConf& c) { return add(client, e, c); },
      .del = [&client](const Env& e, const NetConf& c) { return del(client, e, c); },
      .check = [&client](const Env& e, const NetConf& c) { return check(client, e, c); },
      .gc = [&client](const Env& e, const NetConf& c) { return gc(client, e, c); },
      .status = [&client](const Env& e, const NetConf& c) { return status(client, e, c); },
  };
}

}  // namespace vnetipam::cni
