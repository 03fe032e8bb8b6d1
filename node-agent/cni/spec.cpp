#include "node-agent/cni/spec.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "node-agent/cni/input_bounds.h"

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
  if (!value.is_string()) {
    return failWith(kDecodeFailure,
                    fmt::format("{} must be a string, not {}", field, value.type_name()));
  }
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
  // A message may echo input (a path, a name); dumpJson cannot throw on bytes that are not UTF-8.
  return dumpJson(doc);
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
                                      printable(command)));
  }
  env.command = *known;
  // VERSION reads nothing else, so nothing else can make it fail.
  if (env.command == Command::kVersion) return env;
  // Every value read below is checked here, before anything stores, compares or echoes it.
  const std::array<std::pair<const char*, std::size_t>, 3> texts = {{
      {"CNI_NETNS", kMaxNetnsBytes},
      {"CNI_ARGS", kMaxEnvListBytes},
      {"CNI_PATH", kMaxEnvListBytes},
  }};
  for (const auto& [key, limit] : texts) {
    if (auto ok = checkEnvText(key, get(key), limit); !ok) return std::unexpected(ok.error());
  }
  if (const auto id = get("CNI_CONTAINERID"); !id.empty()) {
    if (auto ok = checkContainerId(id); !ok) return std::unexpected(ok.error());
  }
  if (const auto ifName = get("CNI_IFNAME"); !ifName.empty()) {
    if (auto ok = checkIfName(ifName); !ok) return std::unexpected(ok.error());
  }
  env.containerID = get("CNI_CONTAINERID");
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
      if (auto ok = require("CNI_CONTAINERID", env.containerID); !ok)
        return std::unexpected(ok.error());
      if (auto ok = require("CNI_NETNS", env.netns); !ok) return std::unexpected(ok.error());
      if (auto ok = require("CNI_IFNAME", env.ifName); !ok) return std::unexpected(ok.error());
      break;
    case Command::kDel:
      if (auto ok = require("CNI_CONTAINERID", env.containerID); !ok)
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
        return failWith(kInvalidEnvironment, fmt::format("CNI_ARGS \"{}\": \"{}\" is not KEY=VALUE",
                                                         printable(env.rawArgs), printable(pair)));
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
  // Every field is type-checked before it is read: a get<>() of the wrong type throws, and an
  // integer of the wrong size wraps.
  const auto wrongType = [](const std::string& field, std::string_view want, const json& value) {
    return failWith(kDecodeFailure,
                    fmt::format("{} must be {}, not {}", field, want, value.type_name()));
  };
  const auto optionalString = [&](const json& object, const char* key,
                                  const std::string& where) -> Outcome<std::string> {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::string();
    if (!it->is_string()) return wrongType(fmt::format("{}.{}", where, key), "a string", *it);
    return it->get<std::string>();
  };
  const auto list = [&](const char* key) -> Outcome<const json*> {
    const auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return nullptr;
    if (!it->is_array()) return wrongType(key, "a list", *it);
    return &*it;
  };
  Result result;
  auto interfaces = list("interfaces");
  if (!interfaces) return std::unexpected(interfaces.error());
  if (*interfaces != nullptr) {
    for (std::size_t n = 0; n < (*interfaces)->size(); ++n) {
      const json& i = (**interfaces)[n];
      const std::string where = fmt::format("interfaces[{}]", n);
      if (!i.is_object()) return wrongType(where, "an object", i);
      Interface iface;
      for (const auto& [key, field] : {std::pair{"name", &iface.name}, std::pair{"mac", &iface.mac},
                                       std::pair{"sandbox", &iface.sandbox}}) {
        auto value = optionalString(i, key, where);
        if (!value) return std::unexpected(value.error());
        *field = std::move(*value);
      }
      if (const auto mtu = i.find("mtu"); mtu != i.end() && !mtu->is_null()) {
        const auto value = integerIn(*mtu, 0, UINT32_MAX);
        if (!value) {
          return failWith(kDecodeFailure,
                          fmt::format("{}.mtu must be an integer 0..{}", where, UINT32_MAX));
        }
        iface.mtu = static_cast<std::uint32_t>(*value);
      }
      result.interfaces.push_back(std::move(iface));
    }
  }
  auto ips = list("ips");
  if (!ips) return std::unexpected(ips.error());
  if (*ips != nullptr) {
    for (std::size_t n = 0; n < (*ips)->size(); ++n) {
      const json& i = (**ips)[n];
      const std::string where = fmt::format("ips[{}]", n);
      if (!i.is_object() || !i.contains("address") || !i["address"].is_string()) {
        return failWith(kDecodeFailure,
                        fmt::format("{}.address must be a string \"address/length\"", where));
      }
      auto cidr = parseCidrAddress(i["address"].get<std::string>());
      if (!cidr) {
        return failWith(kDecodeFailure, fmt::format("{}.address: {}", where, cidr.error().msg));
      }
      IPConfig ipc{.address = cidr->first, .prefixLength = cidr->second};
      if (i.contains("gateway") && !i["gateway"].is_null()) {
        auto gw = parseAddress(i["gateway"], where + ".gateway");
        if (!gw) return std::unexpected(gw.error());
        ipc.gateway = *gw;
      }
      if (i.contains("interface") && !i["interface"].is_null()) {
        const auto index = integerIn(i["interface"], 0, INT32_MAX);
        if (!index) {
          return failWith(kDecodeFailure,
                          fmt::format("{}.interface must be an index 0..{}", where, INT32_MAX));
        }
        ipc.interface = static_cast<int>(*index);
      }
      result.ips.push_back(ipc);
    }
  }
  auto routes = list("routes");
  if (!routes) return std::unexpected(routes.error());
  if (*routes != nullptr) {
    for (std::size_t n = 0; n < (*routes)->size(); ++n) {
      const json& r = (**routes)[n];
      const std::string where = fmt::format("routes[{}]", n);
      if (!r.is_object() || !r.contains("dst") || !r["dst"].is_string()) {
        return failWith(kDecodeFailure,
                        fmt::format("{}.dst must be a string \"prefix/length\"", where));
      }
      auto cidr = parseCidrAddress(r["dst"].get<std::string>());
      if (!cidr)
        return failWith(kDecodeFailure, fmt::format("{}.dst: {}", where, cidr.error().msg));
      RouteEntry route{.dst = ipam::Prefix::masked(cidr->first, cidr->second)};
      if (r.contains("gw") && !r["gw"].is_null()) {
        auto gw = parseAddress(r["gw"], where + ".gw");
        if (!gw) return std::unexpected(gw.error());
        route.gw = *gw;
      }
      for (const auto& [key, value] : r.items()) {
        if (key != "dst" && key != "gw") route.extra[key] = value;
      }
      result.routes.push_back(std::move(route));
    }
  }
  if (const auto dns = doc.find("dns"); dns != doc.end() && !dns->is_null()) {
    if (!dns->is_object()) return wrongType("dns", "an object", *dns);
    result.dns = *dns;
  }
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
  auto parsed = parseBoundedJson(stdinText, "the network configuration on stdin");
  if (!parsed) return std::unexpected(parsed.error());
  json doc = std::move(*parsed);
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
                                printable(conf.cniVersion), supportedList()));
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
