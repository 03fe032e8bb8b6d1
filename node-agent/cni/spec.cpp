#include "node-agent/cni/spec.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace vnetipam::cni {
namespace {

using nlohmann::json;

std::string supportedList() {
  std::string out;
  for (const auto v : kSupportedVersions) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  while (true) {
    const auto at = text.find(sep);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

Outcome<ipam::IPAddress> parseAddress(const json& value, std::string_view field) {
  if (!value.is_string())
    return failWith(kDecodeFailure, fmt::format("{} must be a string", field));
  auto addr = ipam::IPAddress::parse(value.get<std::string>());
  if (!addr) return failWith(kDecodeFailure, fmt::format("{}: {}", field, addr.error().message));
  return *addr;
}

}  // namespace

bool isSupportedVersion(std::string_view version) {
  return std::ranges::find(kSupportedVersions, version) != kSupportedVersions.end();
}

int compareVersions(std::string_view a, std::string_view b) {
  const auto pa = split(a, '.');
  const auto pb = split(b, '.');
  for (std::size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    int x = 0;
    int y = 0;
    if (i < pa.size()) std::from_chars(pa[i].data(), pa[i].data() + pa[i].size(), x);
    if (i < pb.size()) std::from_chars(pb[i].data(), pb[i].data() + pb[i].size(), y);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

std::string errorJson(const Error& error, std::string_view version) {
  json doc = {{"cniVersion", isSupportedVersion(version) ? version : kLatestVersion},
              {"code", error.code},
              {"msg", error.msg}};
  if (!error.details.empty()) doc["details"] = error.details;
  return doc.dump();
}

std::string_view toString(Command command) {
  switch (command) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kGc: return "GC";
    case Command::kStatus: return "STATUS";
    case Command::kVersion: return "VERSION";
  }
  return "?";
}

Outcome<Env> parseEnv(const std::map<std::string, std::string>& environment) {
  const auto get = [&](const char* key) -> std::string {
    const auto it = environment.find(key);
    return it == environment.end() ? std::string() : it->second;
  };
  Env env;
  env.all = environment;
  const std::string command = get("CNI_COMMAND");
  static constexpr std::array<Command, 6> kCommands = {Command::kAdd,    Command::kDel,
                                                       Command::kCheck,  Command::kGc,
                                                       Command::kStatus, Command::kVersion};
  const auto known =
      std::ranges::find_if(kCommands, [&](Command c) { return toString(c) == command; });
  if (known == kCommands.end()) {
    return failWith(kInvalidEnvironment,
                    command.empty()
                        ? std::string("CNI_COMMAND is not set")
                        : fmt::format("CNI_COMMAND \"{}\" is not one of ADD, DEL, CHECK, GC, "
                                      "STATUS, VERSION",
                                      command));
  }
  env.command = *known;
  env.containerId = get("CNI_CONTAINERID");
  env.netns = get("CNI_NETNS");
  env.ifName = get("CNI_IFNAME");
  env.rawArgs = get("CNI_ARGS");
  const std::string cniPath = get("CNI_PATH");
  for (const auto dir : split(cniPath, ':')) {
    if (!dir.empty()) env.path.emplace_back(dir);
  }

  const auto require = [&](const char* key, const std::string& value) -> Outcome<void> {
    if (!value.empty()) return {};
    return failWith(kInvalidEnvironment,
                    fmt::format("{} is required for {}", key, toString(env.command)));
  };
  switch (env.command) {
    case Command::kAdd:
    case Command::kCheck:
      if (auto ok = require("CNI_CONTAINERID", env.containerId); !ok)
        return std::unexpected(ok.error());
      if (auto ok = require("CNI_NETNS", env.netns); !ok) return std::unexpected(ok.error());
      if (auto ok = require("CNI_IFNAME", env.ifName); !ok) return std::unexpected(ok.error());
      break;
    case Command::kDel:
      if (auto ok = require("CNI_CONTAINERID", env.containerId); !ok)
        return std::unexpected(ok.error());
      if (auto ok = require("CNI_IFNAME", env.ifName); !ok) return std::unexpected(ok.error());
      break;
    case Command::kGc:
      if (env.path.empty()) {
        return failWith(kInvalidEnvironment, "CNI_PATH is required for GC");
      }
      break;
    case Command::kStatus:
    case Command::kVersion: break;
  }

  if (!env.rawArgs.empty()) {
    for (const auto pair : split(env.rawArgs, ';')) {
      if (pair.empty()) continue;
      const auto eq = pair.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return failWith(kInvalidEnvironment,
                        fmt::format("CNI_ARGS \"{}\": \"{}\" is not KEY=VALUE", env.rawArgs, pair));
      }
      env.args.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
      if (env.args.back().first == "K8S_POD_NAMESPACE") env.podNamespace = env.args.back().second;
      if (env.args.back().first == "K8S_POD_NAME") env.podName = env.args.back().second;
    }
  }
  return env;
}

Outcome<std::pair<ipam::IPAddress, int>> parseCidrAddress(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return failWith(kDecodeFailure, fmt::format("\"{}\" is not an address/length", text));
  }
  auto addr = ipam::IPAddress::parse(text.substr(0, slash));
  if (!addr) return failWith(kDecodeFailure, addr.error().message);
  const auto lenText = text.substr(slash + 1);
  int length = -1;
  const auto [end, ec] = std::from_chars(lenText.data(), lenText.data() + lenText.size(), length);
  if (ec != std::errc() || end != lenText.data() + lenText.size() || length < 0 ||
      length > ipam::bitLength(addr->family())) {
    return failWith(kDecodeFailure, fmt::format("\"{}\": the prefix length must be 0..{}", text,
                                                ipam::bitLength(addr->family())));
  }
  return std::pair{*addr, length};
}

Outcome<Result> parseResult(const json& doc) {
  if (!doc.is_object()) return failWith(kDecodeFailure, "a result must be a JSON object");
  Result result;
  if (doc.contains("interfaces")) {
    if (!doc["interfaces"].is_array()) return failWith(kDecodeFailure, "interfaces must be a list");
    for (const auto& i : doc["interfaces"]) {
      if (!i.is_object()) return failWith(kDecodeFailure, "interfaces[] must be objects");
      Interface iface;
      iface.name = i.value("name", "");
      iface.mac = i.value("mac", "");
      iface.sandbox = i.value("sandbox", "");
      if (i.contains("mtu") && i["mtu"].is_number_unsigned())
        iface.mtu = i["mtu"].get<std::uint32_t>();
      result.interfaces.push_back(std::move(iface));
    }
  }
  if (doc.contains("ips")) {
    if (!doc["ips"].is_array()) return failWith(kDecodeFailure, "ips must be a list");
    for (const auto& i : doc["ips"]) {
      if (!i.is_object() || !i.contains("address") || !i["address"].is_string()) {
        return failWith(kDecodeFailure, "ips[].address must be a string \"address/length\"");
      }
      auto cidr = parseCidrAddress(i["address"].get<std::string>());
      if (!cidr) return failWith(kDecodeFailure, "ips[].address: " + cidr.error().msg);
      IPConfig ipc{.address = cidr->first, .prefixLength = cidr->second};
      if (i.contains("gateway") && !i["gateway"].is_null()) {
        auto gw = parseAddress(i["gateway"], "ips[].gateway");
        if (!gw) return std::unexpected(gw.error());
        ipc.gateway = *gw;
      }
      if (i.contains("interface") && i["interface"].is_number_integer()) {
        ipc.interface = i["interface"].get<int>();
      }
      result.ips.push_back(ipc);
    }
  }
  if (doc.contains("routes")) {
    if (!doc["routes"].is_array()) return failWith(kDecodeFailure, "routes must be a list");
    for (const auto& r : doc["routes"]) {
      if (!r.is_object() || !r.contains("dst") || !r["dst"].is_string()) {
        return failWith(kDecodeFailure, "routes[].dst must be a string \"prefix/length\"");
      }
      auto cidr = parseCidrAddress(r["dst"].get<std::string>());
      if (!cidr) return failWith(kDecodeFailure, "routes[].dst: " + cidr.error().msg);
      RouteEntry route{.dst = ipam::Prefix::masked(cidr->first, cidr->second)};
      if (r.contains("gw") && !r["gw"].is_null()) {
        auto gw = parseAddress(r["gw"], "routes[].gw");
        if (!gw) return std::unexpected(gw.error());
        route.gw = *gw;
      }
      for (const auto& [key, value] : r.items()) {
        if (key != "dst" && key != "gw") route.extra[key] = value;
      }
      result.routes.push_back(std::move(route));
    }
  }
  if (doc.contains("dns") && doc["dns"].is_object()) result.dns = doc["dns"];
  return result;
}

json toJson(const Result& result, std::string_view version) {
  const bool ipVersionField = compareVersions(version, "1.0.0") < 0;
  json doc = {{"cniVersion", version}};
  if (!result.interfaces.empty()) {
    json list = json::array();
    for (const auto& i : result.interfaces) {
      json item = {{"name", i.name}};
      if (!i.mac.empty()) item["mac"] = i.mac;
      if (i.mtu) item["mtu"] = *i.mtu;
      if (!i.sandbox.empty()) item["sandbox"] = i.sandbox;
      list.push_back(std::move(item));
    }
    doc["interfaces"] = std::move(list);
  }
  json ips = json::array();
  for (const auto& ipc : result.ips) {
    json item;
    if (ipVersionField) item["version"] = ipc.address.family() == ipam::Family::kV4 ? "4" : "6";
    item["address"] = fmt::format("{}/{}", ipc.address.toString(), ipc.prefixLength);
    if (ipc.gateway) item["gateway"] = ipc.gateway->toString();
    if (ipc.interface) item["interface"] = *ipc.interface;
    ips.push_back(std::move(item));
  }
  doc["ips"] = std::move(ips);
  if (!result.routes.empty()) {
    json routes = json::array();
    for (const auto& r : result.routes) {
      json item = r.extra.is_object() ? r.extra : json::object();
      item["dst"] = r.dst.toString();
      if (r.gw) item["gw"] = r.gw->toString();
      routes.push_back(std::move(item));
    }
    doc["routes"] = std::move(routes);
  }
  if (!result.dns.empty()) doc["dns"] = result.dns;
  return doc;
}

Outcome<NetConf> parseNetConf(std::string_view stdinText) {
  json doc = json::parse(stdinText, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return failWith(kDecodeFailure, "the network configuration on stdin is not JSON");
  }
  if (!doc.is_object()) {
    return failWith(kDecodeFailure, "the network configuration on stdin must be a JSON object");
  }
  const auto requiredString = [&](const char* key) -> Outcome<std::string> {
    if (!doc.contains(key) || !doc[key].is_string() || doc[key].get<std::string>().empty()) {
      return failWith(
          kInvalidConfig,
          fmt::format("the network configuration needs \"{}\" (a non-empty string)", key));
    }
    return doc[key].get<std::string>();
  };
  NetConf conf;
  auto version = requiredString("cniVersion");
  if (!version) return std::unexpected(version.error());
  conf.cniVersion = *version;
  if (!isSupportedVersion(conf.cniVersion)) {
    return failWith(kIncompatibleVersion,
                    fmt::format("cniVersion \"{}\" is not supported; supported versions: {}",
                                conf.cniVersion, supportedList()));
  }
  auto name = requiredString("name");
  if (!name) return std::unexpected(name.error());
  conf.name = *name;
  auto type = requiredString("type");
  if (!type) return std::unexpected(type.error());
  conf.type = *type;

  if (doc.contains("ipam")) {
    if (!doc["ipam"].is_object()) return failWith(kInvalidConfig, "\"ipam\" must be an object");
    conf.ipam = doc["ipam"];
    if (conf.ipam.contains("type")) {
      if (!conf.ipam["type"].is_string()) {
        return failWith(kInvalidConfig, "\"ipam.type\" must be a string");
      }
      conf.ipamType = conf.ipam["type"].get<std::string>();
    }
  }
  if (doc.contains("prevResult") && !doc["prevResult"].is_null()) {
    auto prev = parseResult(doc["prevResult"]);
    if (!prev) return failWith(kDecodeFailure, "prevResult: " + prev.error().msg);
    conf.prevResult = std::move(*prev);
  }
  if (doc.contains("runtimeConfig") && doc["runtimeConfig"].is_object()) {
    conf.runtimeConfig = doc["runtimeConfig"];
  }
  if (doc.contains("cni.dev/valid-attachments")) {
    const auto& list = doc["cni.dev/valid-attachments"];
    if (!list.is_array()) {
      return failWith(kInvalidConfig, "\"cni.dev/valid-attachments\" must be a list");
    }
    for (const auto& a : list) {
      if (!a.is_object() || !a.contains("containerID") || !a["containerID"].is_string() ||
          !a.contains("ifname") || !a["ifname"].is_string()) {
        return failWith(kInvalidConfig,
                        "\"cni.dev/valid-attachments\" entries need string containerID and ifname");
      }
      conf.validAttachments.push_back(
          {a["containerID"].get<std::string>(), a["ifname"].get<std::string>()});
    }
  }
  conf.raw = std::move(doc);
  return conf;
}

}  // namespace vnetipam::cni
